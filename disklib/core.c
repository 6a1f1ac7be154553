/* The core: opening stacks, the one wrapper that checks every request
 * before a driver sees it, the defaults for ops a driver leaves out, and
 * size changes.
 *
 * Every public I/O entry point runs the same sequence at the disk it is
 * called on: flags, read-only, alignment; then, holding the disk's resize
 * lock shared (only disks whose driver resizes have one) so that the size
 * cannot change under the request, the range check against the live size;
 * then the request is split to the driver's limits and passed to the
 * driver under its thread-model lock. Decorators call the same entry
 * points on the disk below, so each part of a stack checks for itself. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <syslog.h>

#include "disklib/ctx.h"
#include "disklib/driver.h"
#include "disklib/util.h"

struct dl_listener {
    dl_resize_fn fn;
    void *opaque;
    struct dl_listener *next;
};

static const struct dl_req no_req;

/* ---- properties ---- */

uint64_t dl_size(const struct dl_disk *d)
{
    return atomic_load_explicit(&((struct dl_disk *)d)->size,
                                memory_order_acquire);
}
uint32_t dl_sector_size(const struct dl_disk *d) { return d->lss; }
uint32_t dl_physical_sector_size(const struct dl_disk *d) { return d->pss; }
bool dl_read_only(const struct dl_disk *d) { return d->read_only; }
bool dl_can_resize(const struct dl_disk *d) { return d->can_resize; }
const char *dl_kind(const struct dl_disk *d) { return d->drv->name; }
const char *dl_source(const struct dl_disk *d)
{
    return d->source ? d->source : "";
}
size_t dl_nchildren(const struct dl_disk *d) { return d->nchild; }
struct dl_disk *dl_child(const struct dl_disk *d, size_t i)
{
    return i < d->nchild ? d->child[i] : NULL;
}
enum dl_unmap_behavior dl_unmap_behavior(const struct dl_disk *d)
{
    return d->unmap_behavior;
}

const char *dl_unmap_behavior_name(enum dl_unmap_behavior b)
{
    switch (b) {
    case DL_UNMAP_IGNORED: return "ignored";
    case DL_UNMAP_UNSPECIFIED: return "unspecified";
    case DL_UNMAP_ZEROES: return "zeroes";
    }
    return "?";
}

bool dl_disk_id(const struct dl_disk *d, uint8_t ret[16])
{
    if (!d->has_id)
        return false;
    memcpy(ret, d->id, 16);
    return true;
}

int dl_disk_set_source(struct dl_disk *d, const char *fmt, ...)
{
    char *s;
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    free(d->source);
    d->source = s;
    return 0;
}

/* ---- request guards ---- */

static inline void io_enter(struct dl_disk *d)
{
    if (d->can_resize && d->drv->resize)
        pthread_rwlock_rdlock(&d->resize_lock);
}

static inline void io_leave(struct dl_disk *d)
{
    if (d->can_resize && d->drv->resize)
        pthread_rwlock_unlock(&d->resize_lock);
}

static inline void serial_enter(struct dl_disk *d)
{
    if (d->serial_lock)
        pthread_mutex_lock(d->serial_lock);
}

static inline void serial_leave(struct dl_disk *d)
{
    if (d->serial_lock)
        pthread_mutex_unlock(d->serial_lock);
}

static inline int check_range(struct dl_disk *d, uint64_t off, uint64_t len)
{
    uint64_t size = dl_size(d);

    if (off > size || len > size - off)
        return -ERANGE;
    return 0;
}

static inline int check_request(struct dl_disk *d, uint64_t off,
                                uint64_t len, uint32_t flags,
                                uint32_t allowed, bool writes)
{
    if (flags & ~allowed)
        return -EINVAL;
    if (writes && d->read_only)
        return -EROFS;
    if (!is_aligned(off | len, d->lss))
        return -EINVAL;
    return 0;
}

/* The checks of every entry point, in order: flags, read-only, alignment,
 * then (under the resize lock) the range. On success the resize lock is
 * held: end with io_leave. */
static int begin(struct dl_disk *d, uint64_t off, uint64_t len,
                 const struct dl_req *rq, uint32_t allowed, bool writes)
{
    int r = check_request(d, off, len, rq->flags, allowed, writes);

    if (r < 0)
        return r;
    io_enter(d);
    r = check_range(d, off, len);
    if (r < 0)
        io_leave(d);
    return r;
}

static void trace(struct dl_disk *d, const char *op, uint64_t off,
                  uint64_t len, uint32_t flags, int r)
{
    if (_likely_(!dl_ctx_tracing(d->ctx)))
        return;
    if (dl_ctx_debug_level(d->ctx, d->drv->name) >= 2 ||
        dl_ctx_debug_level(d->ctx, "core") >= 2)
        dl_log(d->ctx, LOG_DEBUG, d->drv->name,
               "%s off=%" PRIu64 " len=%" PRIu64 " flags=%#x -> %d", op, off,
               len, flags, r);
}

static inline bool forwards(const struct dl_disk *d)
{
    return d->nchild == 1;
}

/* ---- read / write ---- */

/* A layer seen alone: what it holds, zeroes elsewhere. */
#define LAYER_READ_SECTORS 2048

static int layer_read_whole(struct dl_disk *d, void *buf, uint64_t off,
                            uint64_t len)
{
    const uint64_t lss = d->lss;
    uint64_t bits[LAYER_READ_SECTORS / 64];

    while (len) {
        uint64_t ns = MIN(len / lss, LAYER_READ_SECTORS), i = 0;
        struct dl_presence p = {.bits = bits, .nsect = ns};
        int r;

        memset(bits, 0, sizeof(bits));
        r = d->drv->layer->read(d, buf, off, ns * lss, &p);
        if (r < 0)
            return r;
        while (i < ns) {
            uint64_t j = i;

            if (dl_presence_test(&p, i)) {
                i++;
                continue;
            }
            while (j < ns && !dl_presence_test(&p, j))
                j++;
            memset((uint8_t *)buf + i * lss, 0, (j - i) * lss);
            i = j;
        }
        buf = (uint8_t *)buf + ns * lss;
        off += ns * lss;
        len -= ns * lss;
    }
    return 0;
}

static int do_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                   const struct dl_req *rq)
{
    uint64_t max = d->max_io ? d->max_io : len;
    int r = 0;

    if (!d->drv->read && d->drv->layer) {
        serial_enter(d);
        r = layer_read_whole(d, buf, off, len);
        serial_leave(d);
        return r;
    }
    if (!d->drv->read)
        return dl_pread(d->child[0], buf, off, len, rq);
    serial_enter(d);
    while (len) {
        uint64_t n = MIN(len, max);

        r = d->drv->read(d, buf, off, n, rq);
        if (r < 0)
            break;
        buf = (char *)buf + n;
        off += n;
        len -= n;
    }
    serial_leave(d);
    return r;
}

int dl_pread(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
             const struct dl_req *rq)
{
    int r;

    if (!rq)
        rq = &no_req;
    r = begin(d, off, len, rq, 0, false);
    if (r == 0) {
        if (len)
            r = do_read(d, buf, off, len, rq);
        io_leave(d);
    }
    trace(d, "read", off, len, rq->flags, r);
    return r;
}

static int do_write(struct dl_disk *d, const void *buf, uint64_t off,
                    uint64_t len, const struct dl_req *rq)
{
    uint64_t max = d->max_io ? d->max_io : len;
    int r = 0;

    if (!d->drv->write)
        return dl_pwrite(d->child[0], buf, off, len, rq);
    serial_enter(d);
    while (len) {
        uint64_t n = MIN(len, max);

        r = d->drv->write(d, buf, off, n, rq);
        if (r < 0)
            break;
        buf = (const char *)buf + n;
        off += n;
        len -= n;
    }
    serial_leave(d);
    return r;
}

int dl_pwrite(struct dl_disk *d, const void *buf, uint64_t off, uint64_t len,
              const struct dl_req *rq)
{
    int r;

    if (!rq)
        rq = &no_req;
    r = begin(d, off, len, rq, DL_F_FUA, true);
    if (r == 0) {
        if (len)
            r = do_write(d, buf, off, len, rq);
        io_leave(d);
    }
    trace(d, "write", off, len, rq->flags, r);
    return r;
}

/* ---- flush ---- */

int dl_flush(struct dl_disk *d, const struct dl_req *rq)
{
    int r;

    if (!rq)
        rq = &no_req;
    if (rq->flags)
        return -EINVAL;
    if (!d->drv->flush) {
        if (forwards(d))
            return dl_flush(d->child[0], rq);
        return 0; /* open checked no_volatile_cache */
    }
    io_enter(d);
    serial_enter(d);
    r = d->drv->flush(d, rq);
    serial_leave(d);
    io_leave(d);
    trace(d, "flush", 0, 0, 0, r);
    return r;
}

/* ---- zero / unmap ---- */

static int write_zeroes(struct dl_disk *d, uint64_t off, uint64_t len,
                        const struct dl_req *rq)
{
    struct dl_req wrq = {.flags = rq->flags & DL_F_FUA,
                         .initiator = rq->initiator};
    size_t zlen;
    const void *z = dl_zero_buffer(d->ctx, &zlen);
    uint64_t max = d->max_io ? MIN(d->max_io, zlen) : zlen;
    int r = 0;

    while (len && r == 0) {
        uint64_t n = MIN(len, max);

        if (d->drv->write)
            r = d->drv->write(d, z, off, n, &wrq);
        else
            r = dl_pwrite(d->child[0], z, off, n, &wrq);
        off += n;
        len -= n;
    }
    return r;
}

static int do_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                    const struct dl_req *rq)
{
    uint64_t max = d->max_discard ? d->max_discard : len;
    int r = 0;

    while (len && r == 0) {
        uint64_t n = MIN(len, max);

        /* a layer alone: nothing below, so it may simply forget */
        r = d->drv->unmap ? d->drv->unmap(d, off, n, rq)
                          : d->drv->layer->unmap(d, off, n, true);
        off += n;
        len -= n;
    }
    return r;
}

static int do_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                   const struct dl_req *rq)
{
    uint64_t max = d->max_discard ? d->max_discard : len;
    int r = -EOPNOTSUPP;

    if (!d->drv->zero && forwards(d))
        return dl_zero(d->child[0], off, len, rq);
    serial_enter(d);
    if (d->drv->zero) {
        uint64_t o = off, l = len;

        r = 0;
        while (l && r == 0) {
            uint64_t n = MIN(l, max);

            r = d->drv->zero(d, o, n, rq);
            if (r == -EOPNOTSUPP && o != off) {
                /* the driver gave up part way: the rest by writes */
                off = o;
                len = l;
                break;
            }
            o += n;
            l -= n;
        }
    }
    if (r == -EOPNOTSUPP) {
        if ((rq->flags & DL_F_MAY_TRIM) &&
            (d->drv->unmap || (d->drv->layer && d->drv->layer->unmap)) &&
            d->unmap_behavior == DL_UNMAP_ZEROES && !(rq->flags & DL_F_FUA))
            r = do_unmap(d, off, len, rq);
        else
            r = write_zeroes(d, off, len, rq);
    }
    serial_leave(d);
    return r;
}

int dl_zero(struct dl_disk *d, uint64_t off, uint64_t len,
            const struct dl_req *rq)
{
    int r;

    if (!rq)
        rq = &no_req;
    r = begin(d, off, len, rq, DL_F_FUA | DL_F_MAY_TRIM, true);
    if (r == 0) {
        if (len)
            r = do_zero(d, off, len, rq);
        io_leave(d);
    }
    trace(d, "zero", off, len, rq->flags, r);
    return r;
}

int dl_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
             const struct dl_req *rq)
{
    int r;
    const bool can = d->drv->unmap || (d->drv->layer && d->drv->layer->unmap);

    if (!rq)
        rq = &no_req;
    if (!can && forwards(d))
        return dl_unmap(d->child[0], off, len, rq);
    r = begin(d, off, len, rq, 0, true);
    if (r == 0) {
        /* without an unmap op, or when it is ignored: nothing to do */
        if (len && can && d->unmap_behavior != DL_UNMAP_IGNORED) {
            serial_enter(d);
            r = do_unmap(d, off, len, rq);
            serial_leave(d);
        }
        io_leave(d);
    }
    trace(d, "unmap", off, len, rq->flags, r);
    return r;
}

int dl_prealloc(struct dl_disk *d, uint64_t off, uint64_t len,
                const struct dl_req *rq)
{
    int r;

    if (!rq)
        rq = &no_req;
    if (!d->drv->prealloc && forwards(d))
        return dl_prealloc(d->child[0], off, len, rq);
    r = begin(d, off, len, rq, 0, true);
    if (r == 0) {
        if (len && d->drv->prealloc) {
            serial_enter(d);
            r = d->drv->prealloc(d, off, len, rq);
            serial_leave(d);
        }
        io_leave(d);
    }
    return r;
}

/* ---- extents ---- */

/* The driver's report is clipped to the request, merged where adjacent
 * pieces have the same type, and gaps are reported as data. */
struct ext_piece {
    uint64_t off, len;
    unsigned type;
};

struct ext_state {
    dl_extent_fn fn;
    void *opaque;
    uint64_t pos, end;      /* next offset to report, end of the request */
    uint64_t p_off, p_len;  /* pending piece, not yet passed on */
    unsigned p_type;
    /* For a driver whose thread model holds a lock during the op, pieces
     * are kept here and passed on after the lock is released: the caller
     * may do I/O on the same disk from its callback. */
    bool keep;
    struct ext_piece *kept;
    size_t nkept, cap;
};

static int ext_pass(struct ext_state *s, uint64_t off, uint64_t len,
                    unsigned type)
{
    if (s->keep) {
        if (s->nkept == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            struct ext_piece *k = realloc(s->kept, cap * sizeof(*k));

            if (!k)
                return -ENOMEM;
            s->kept = k;
            s->cap = cap;
        }
        s->kept[s->nkept++] = (struct ext_piece){off, len, type};
        return 0;
    }
    return s->fn(s->opaque, off, len, type);
}

static int ext_emit(struct ext_state *s, uint64_t off, uint64_t len,
                    unsigned type)
{
    int r;

    if (!len)
        return 0;
    if (s->p_len && s->p_type == type && s->p_off + s->p_len == off) {
        s->p_len += len;
        return 0;
    }
    if (s->p_len) {
        r = ext_pass(s, s->p_off, s->p_len, s->p_type);
        if (r)
            return r;
    }
    s->p_off = off;
    s->p_len = len;
    s->p_type = type;
    return 0;
}

static int ext_collect(void *opaque, uint64_t off, uint64_t len,
                       unsigned type)
{
    struct ext_state *s = opaque;
    uint64_t end;
    int r;

    if (len == 0 || off >= s->end || off + len <= s->pos)
        return 0;
    end = MIN(off + len, s->end);
    if (off < s->pos)
        off = s->pos;
    if (off > s->pos) {
        r = ext_emit(s, s->pos, off - s->pos, 0);
        if (r)
            return r;
    }
    r = ext_emit(s, off, end - off,
                 type & (DL_EXTENT_HOLE | DL_EXTENT_ZERO | DL_EXTENT_UNHELD));
    if (r)
        return r;
    s->pos = end;
    return 0;
}

int dl_extents(struct dl_disk *d, uint64_t off, uint64_t len, dl_extent_fn fn,
               void *opaque)
{
    struct ext_state s = {.fn = fn, .opaque = opaque, .pos = off,
                          .end = off + len};
    int r;

    if (!is_aligned(off | len, d->lss))
        return -EINVAL;
    if (!d->drv->extents && forwards(d))
        return dl_extents(d->child[0], off, len, fn, opaque);
    io_enter(d);
    r = check_range(d, off, len);
    if (r == 0 && len) {
        if (d->drv->extents) {
            s.keep = d->serial_lock != NULL;
            serial_enter(d);
            r = d->drv->extents(d, off, len, ext_collect, &s);
            serial_leave(d);
        }
        if (r == 0 && s.pos < s.end)
            r = ext_emit(&s, s.pos, s.end - s.pos, 0);
        if (r == 0 && s.p_len)
            r = ext_pass(&s, s.p_off, s.p_len, s.p_type);
        for (size_t i = 0; r == 0 && i < s.nkept; i++)
            r = fn(opaque, s.kept[i].off, s.kept[i].len, s.kept[i].type);
        free(s.kept);
    }
    io_leave(d);
    return r;
}

static int sum_allocated(void *opaque, uint64_t off, uint64_t len,
                         unsigned type)
{
    if (!(type & DL_EXTENT_HOLE))
        *(uint64_t *)opaque += len;
    return 0;
}

int dl_allocated(struct dl_disk *d, uint64_t *ret)
{
    uint64_t total = 0;
    int r;

    if (!d->drv->allocated) {
        if (!d->drv->extents && forwards(d))
            return dl_allocated(d->child[0], ret);
        r = dl_extents(d, 0, dl_size(d), sum_allocated, &total);
        if (r < 0)
            return r;
        *ret = total;
        return 0;
    }
    io_enter(d);
    serial_enter(d);
    r = d->drv->allocated(d, &total);
    serial_leave(d);
    io_leave(d);
    if (r < 0)
        return r;
    *ret = MIN(total, dl_size(d));
    return 0;
}

/* ---- layers ---- */

int dl_layer_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                  struct dl_presence *p)
{
    int r;

    if (!d->drv->layer) {
        /* a whole disk as a layer holds every sector */
        r = dl_pread(d, buf, off, len, NULL);
        if (r == 0)
            dl_presence_mark(p, 0, len / d->lss);
        return r;
    }
    r = begin(d, off, len, &no_req, 0, false);
    if (r < 0)
        return r;
    if (len) {
        serial_enter(d);
        r = d->drv->layer->read(d, buf, off, len, p);
        serial_leave(d);
    }
    io_leave(d);
    trace(d, "layer-read", off, len, 0, r);
    return r;
}

int dl_layer_write_no_overwrite(struct dl_disk *d, const void *buf,
                                uint64_t off, uint64_t len)
{
    int r;

    if (!d->drv->layer || !d->drv->layer->write_no_overwrite)
        return -EOPNOTSUPP;
    /* a read cache is filled even when it is logically read-only (an
     * autocache layer); normal writes to it are refused */
    r = begin(d, off, len, &no_req, 0, false);
    if (r < 0)
        return r;
    if (len) {
        serial_enter(d);
        r = d->drv->layer->write_no_overwrite(d, buf, off, len);
        serial_leave(d);
    }
    io_leave(d);
    trace(d, "layer-fill", off, len, 0, r);
    return r;
}

int dl_layer_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                   bool next_is_zero)
{
    int r;

    if (!d->drv->layer || !d->drv->layer->unmap)
        return dl_unmap(d, off, len, NULL);
    r = begin(d, off, len, &no_req, 0, true);
    if (r < 0)
        return r;
    if (len) {
        serial_enter(d);
        r = d->drv->layer->unmap(d, off, len, next_is_zero);
        serial_leave(d);
    }
    io_leave(d);
    trace(d, next_is_zero ? "layer-unmap-zero" : "layer-unmap", off, len, 0,
          r);
    return r;
}

int dl_disk_exclusive(struct dl_disk *d, int (*fn)(struct dl_disk *, void *),
                      void *opaque)
{
    int r;

    if (!d->drv->resize)
        return -EINVAL; /* no lock to hold */
    pthread_rwlock_wrlock(&d->resize_lock);
    r = fn(d, opaque);
    pthread_rwlock_unlock(&d->resize_lock);
    return r;
}

/* ---- resize ---- */

static void notify_listeners(struct dl_disk *d)
{
    uint64_t size = dl_size(d);
    LOCK_GUARD(&d->listen_lock);

    for (struct dl_listener *l = d->listeners; l; l = l->next)
        l->fn(l->opaque, d, size);
}

void dl_disk_set_size(struct dl_disk *d, uint64_t size)
{
    struct dl_disk *c = d, *p;

    atomic_store_explicit(&d->size, size, memory_order_release);
    notify_listeners(d);
    for (p = d->parent; p; c = p, p = p->parent) {
        uint64_t s;

        if (p->drv->child_resized)
            s = p->drv->child_resized(p, c);
        else if (p->nchild == 1)
            s = dl_size(c);
        else
            break; /* a driver with several children decides itself */
        atomic_store_explicit(&p->size, s, memory_order_release);
        notify_listeners(p);
    }
}

int dl_resize(struct dl_disk *d, uint64_t new_size, char **ret_msg)
{
    int r;

    if (d->read_only) {
        dl_msg(ret_msg, "the disk is read-only");
        return -EROFS;
    }
    if (!d->can_resize) {
        dl_msg(ret_msg, "%s cannot change its size", d->drv->name);
        return -EOPNOTSUPP;
    }
    if (!is_aligned(new_size, d->lss)) {
        dl_msg(ret_msg,
               "size %" PRIu64 " is not a multiple of the %" PRIu32
               "-byte sector size",
               new_size, d->lss);
        return -EINVAL;
    }
    if (new_size > (uint64_t)INT64_MAX) {
        dl_msg(ret_msg, "size %" PRIu64 " is larger than 2^63-1 bytes",
               new_size);
        return -EINVAL;
    }
    if (!d->drv->resize)
        return dl_resize(d->child[0], new_size, ret_msg);
    pthread_rwlock_wrlock(&d->resize_lock);
    if (new_size == dl_size(d)) {
        r = 0;
    } else {
        serial_enter(d);
        r = d->drv->resize(d, new_size, ret_msg);
        serial_leave(d);
    }
    pthread_rwlock_unlock(&d->resize_lock);
    if (r < 0)
        dl_msg(ret_msg, "%s: resize failed: %s", d->drv->name, strerror(-r));
    return r;
}

int dl_add_resize_listener(struct dl_disk *d, dl_resize_fn fn, void *opaque)
{
    struct dl_listener *l = calloc(1, sizeof(*l));
    LOCK_GUARD(&d->listen_lock);

    if (!l)
        return -ENOMEM;
    l->fn = fn;
    l->opaque = opaque;
    l->next = d->listeners;
    d->listeners = l;
    return 0;
}

void dl_remove_resize_listener(struct dl_disk *d, dl_resize_fn fn,
                               void *opaque)
{
    LOCK_GUARD(&d->listen_lock);

    for (struct dl_listener **pl = &d->listeners; *pl; pl = &(*pl)->next) {
        if ((*pl)->fn == fn && (*pl)->opaque == opaque) {
            struct dl_listener *l = *pl;

            *pl = l->next;
            free(l);
            return;
        }
    }
}

/* ---- reservations ---- */

struct dl_disk *dl_pr_disk(struct dl_disk *d,
                           const struct dl_pr_ops **ret_ops)
{
    for (; d; d = forwards(d) ? d->child[0] : NULL) {
        if (d->drv->pr) {
            *ret_ops = d->drv->pr;
            return d;
        }
    }
    return NULL;
}

/* ---- live settings ---- */

struct dl_disk *dl_find_part(struct dl_disk *d, const char *kind)
{
    for (; d; d = forwards(d) ? d->child[0] : NULL)
        if (strcmp(d->drv->name, kind) == 0)
            return d;
    return NULL;
}

int dl_settings_show(struct dl_disk *part, char **ret_text)
{
    if (!part->drv->settings_show)
        return -EOPNOTSUPP;
    return part->drv->settings_show(part, ret_text);
}

int dl_settings_set(struct dl_disk *part, const char *cmd, char **ret_msg)
{
    if (!part->drv->settings_set) {
        dl_msg(ret_msg, "%s has no settings to change", part->drv->name);
        return -EOPNOTSUPP;
    }
    return part->drv->settings_set(part, cmd, ret_msg);
}

/* ---- open / close ---- */

/* "file '/x/base.img'": the kind and the first path or string setting. */
static void part_name(const struct dl_node *n, char *buf, size_t len)
{
    for (size_t i = 0; i < n->drv->nparams; i++) {
        const struct dl_param *p = &n->drv->params[i];

        if ((p->type == DL_P_PATH || p->type == DL_P_STRING) && n->v[i].set) {
            snprintf(buf, len, "%s '%s'", n->drv->name, n->v[i].s);
            return;
        }
    }
    snprintf(buf, len, "%s", n->drv->name);
}

static void disk_free(struct dl_disk *d)
{
    struct dl_listener *l, *next;

    if (!d)
        return;
    if (d->opened && d->drv->close)
        d->drv->close(d);
    for (size_t i = 0; i < d->nchild; i++)
        disk_free(d->child[i]);
    free(d->child);
    for (l = d->listeners; l; l = next) {
        next = l->next;
        free(l);
    }
    pthread_mutex_destroy(&d->serial);
    pthread_rwlock_destroy(&d->resize_lock);
    pthread_mutex_destroy(&d->listen_lock);
    pthread_mutex_destroy(&d->rl_lock);
    pthread_cond_destroy(&d->rl_cond);
    free(d->source);
    free(d->state);
    free(d);
}

static int open_node(struct dl_ctx *ctx, const struct dl_node *n,
                     struct dl_disk *parent, struct dl_disk *below,
                     unsigned flags, struct dl_disk **ret, char **ret_msg);

int dl_open_child(struct dl_disk *d, const struct dl_node *n, size_t i,
                  unsigned flags, struct dl_disk *below, char **ret_msg)
{
    if (i >= n->nchild || i >= d->nchild)
        return -EINVAL;
    return open_node(d->ctx, n->child[i], d, below, flags, &d->child[i],
                     ret_msg);
}

int dl_open_part(struct dl_disk *d, const struct dl_node *n, unsigned flags,
                 struct dl_disk *below, struct dl_disk **ret, char **ret_msg)
{
    return open_node(d->ctx, n, d, below, flags, ret, ret_msg);
}

void dl_close_part(struct dl_disk *part)
{
    disk_free(part);
}

static int check_geometry(struct dl_disk *d, char **msg)
{
    uint64_t size = dl_size(d);

    if (d->lss < 512 || !is_pow2(d->lss)) {
        dl_msg(msg, "logical sector size %" PRIu32
               " is not a power of two of at least 512", d->lss);
        return -EINVAL;
    }
    if (d->pss < d->lss || !is_pow2(d->pss)) {
        dl_msg(msg, "physical sector size %" PRIu32
               " is not a power of two of at least the logical %" PRIu32,
               d->pss, d->lss);
        return -EINVAL;
    }
    if (!is_aligned(size, d->lss)) {
        dl_msg(msg, "size %" PRIu64 " is not a multiple of the %" PRIu32
               "-byte sector size", size, d->lss);
        return -EINVAL;
    }
    if (size > (uint64_t)INT64_MAX) {
        dl_msg(msg, "size %" PRIu64 " is larger than 2^63-1 bytes", size);
        return -EINVAL;
    }
    return 0;
}

static int open_node(struct dl_ctx *ctx, const struct dl_node *n,
                     struct dl_disk *parent, struct dl_disk *below,
                     unsigned flags, struct dl_disk **ret, char **ret_msg)
{
    const struct dl_driver *drv = n->drv;
    _cleanup_free_ char *msg = NULL;
    struct dl_disk *d;
    /* In a dry run every part is opened without writing, but drivers
     * still learn which parts are meant to be writable (a layered disk
     * checks its write path). */
    /* A read cache marked read-only is read-only for writes only: it is
     * opened writable so that reads can fill it. */
    bool ro = (flags & DL_OPEN_RDONLY) || (n->read_only && !n->read_cache);
    unsigned cflags = flags | (ro ? DL_OPEN_RDONLY : 0);
    pthread_rwlockattr_t rwa;
    int r;

    d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->drv = drv;
    d->ctx = ctx;
    d->parent = parent;
    d->below = below;
    pthread_mutex_init(&d->serial, NULL);
    pthread_rwlockattr_init(&rwa);
    pthread_rwlockattr_setkind_np(&rwa,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&d->resize_lock, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    pthread_mutex_init(&d->listen_lock, NULL);
    pthread_mutex_init(&d->rl_lock, NULL);
    pthread_cond_init(&d->rl_cond, NULL);
    d->state = calloc(1, drv->state_size ? drv->state_size : 1);
    if (!d->state) {
        r = -ENOMEM;
        goto fail;
    }
    if (n->nchild) {
        d->child = calloc(n->nchild, sizeof(*d->child));
        if (!d->child) {
            r = -ENOMEM;
            goto fail;
        }
        d->nchild = n->nchild;
    }
    if (!drv->opens_children) {
        for (size_t i = 0; i < n->nchild; i++) {
            r = open_node(ctx, n->child[i], d, NULL, cflags, &d->child[i],
                          ret_msg);
            if (r < 0)
                goto fail_quiet;
        }
    }

    /* a decorator reads back unmapped ranges as the disk below does,
     * unless its open says otherwise */
    if (d->nchild == 1 && !drv->opens_children)
        d->unmap_behavior = d->child[0]->unmap_behavior;
    d->opened = true;
    r = drv->open(d, n, cflags, &msg);
    d->below = NULL;
    if (r < 0)
        goto fail;

    if (d->nchild == 1 && d->lss == 0) {
        struct dl_disk *c = d->child[0];

        atomic_store(&d->size, dl_size(c));
        d->lss = c->lss;
        d->pss = c->pss;
        if (c->has_id && !d->has_id) {
            d->has_id = true;
            memcpy(d->id, c->id, 16);
        }
    }
    r = check_geometry(d, &msg);
    if (r < 0)
        goto fail;

    if (d->nchild == 1) {
        struct dl_disk *c = d->child[0];

        if (c->read_only)
            d->read_only = true;
        if (!drv->unmap)
            d->unmap_behavior = c->unmap_behavior;
        d->can_resize = drv->resize || c->can_resize;
    } else {
        if (!drv->write)
            d->read_only = true;
        if (!drv->unmap && !(drv->layer && drv->layer->unmap))
            d->unmap_behavior = DL_UNMAP_IGNORED;
        d->can_resize = drv->resize != NULL && !d->fixed_size;
        if (!drv->read && !drv->layer) {
            dl_msg(&msg, "driver has no read operation");
            r = -EINVAL;
            goto fail;
        }
        if (!drv->flush && !d->no_volatile_cache) {
            dl_msg(&msg, "driver has neither flush nor a cache-free claim");
            r = -EINVAL;
            goto fail;
        }
    }
    if (ro || n->read_only || (flags & DL_OPEN_DRY_RUN))
        d->read_only = true;

    switch (drv->thread_model) {
    case DL_THREAD_PARALLEL:
        d->serial_lock = NULL;
        break;
    case DL_THREAD_SERIALIZE_DISK:
        d->serial_lock = &d->serial;
        break;
    case DL_THREAD_SERIALIZE_ALL:
        d->serial_lock = dl_ctx_driver_lock(ctx, drv);
        if (!d->serial_lock) {
            r = -ENOMEM;
            goto fail;
        }
        break;
    }
    *ret = d;
    return 0;

fail:
    if (ret_msg && !*ret_msg) {
        char part[512];

        part_name(n, part, sizeof(part));
        if (msg)
            dl_msg(ret_msg, "%s%s%s: %s", n->where ? n->where : "",
                   n->where ? ": " : "", part, msg);
        else
            dl_msg(ret_msg, "%s%s%s: %s", n->where ? n->where : "",
                   n->where ? ": " : "", part, strerror(-r));
    }
fail_quiet:
    disk_free(d);
    return r;
}

int dl_open(struct dl_ctx *ctx, const struct dl_node *n, unsigned flags,
            struct dl_disk **ret, char **ret_msg)
{
    return open_node(ctx, n, NULL, NULL, flags, ret, ret_msg);
}

void dl_close(struct dl_disk *d)
{
    disk_free(d);
}

/* ---- description ---- */

void dl_describe(struct dl_disk *d, FILE *out, int indent)
{
    char sz[24];
    const char *src = dl_source(d);
    /* the parts of a disk that resizes may change with its lock held */
    const bool lock = d->drv->resize != NULL;

    fprintf(out, "%*s%s%s%s size=%" PRIu64 " (%s) sector=%" PRIu32
            " physical=%" PRIu32 " %s unmap=%s%s\n",
            indent, "", d->drv->name, *src ? " " : "", src, dl_size(d),
            dl_format_size(dl_size(d), sz, sizeof(sz)), d->lss, d->pss,
            d->read_only ? "ro" : "rw",
            dl_unmap_behavior_name(d->unmap_behavior),
            d->can_resize ? " resizable" : "");
    if (lock)
        pthread_rwlock_rdlock(&d->resize_lock);
    for (size_t i = 0; i < d->nchild; i++)
        dl_describe(d->child[i], out, indent + 2);
    if (lock)
        pthread_rwlock_unlock(&d->resize_lock);
}
