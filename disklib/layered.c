/* layered — a disk made of layers, top first.
 *
 * Reads fall through from the top: the first layer holding a sector
 * supplies it, runs of sectors not held yet go on to the next layer, and
 * sectors no layer holds read as zeroes. A layer below the top is seen
 * only up to its visible size, the smallest size of it and every layer
 * above (fixed when the stack is built or changed); the top layer's size
 * is the disk's size, read live. A whole disk (one without layer
 * operations) is a layer that holds every sector.
 *
 * Writes go to the top layer, and on down while a layer is write-through.
 * A read-cache layer is filled, after a read, with what came from below,
 * without overwriting a write that came in between. Unmap walks the write
 * path telling each layer whether everything below reads zero there.
 *
 * Layer numbers count from the bottom (0 is the base) and never change
 * while the layer exists: layers are only pushed and popped at the top.
 * Snapshot pushes an empty layer and freezes the old top read-only;
 * revert drops a pushed top; commit merges a pushed top into the layer
 * below and drops it. They run with every request on the disk drained
 * (the core's exclusive section), so no write is lost or lands in the
 * wrong layer.
 *
 * Locking: the layer list (d->child, s->li, s->n) changes only inside the
 * exclusive section and under s->lock; requests read it holding the
 * disk's request lock, views (open layer/N files) under s->lock. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <syslog.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

#define MAX_SECTORS ((1u << 20) / 512) /* per request: max_io / 512 */
#define BITMAP_WORDS (MAX_SECTORS / 64)
#define MAX_CACHES 8

struct layer_info {
    bool read_cache, write_through;
    bool snapshot;       /* pushed by a snapshot */
    bool frozen;         /* read-only because a snapshot is above it */
    bool configured_ro;  /* read-only by configuration or by position */
    uint64_t visible;    /* bytes; the top's is its live size */
    unsigned views;      /* open layer/N files; protected by lock */
};

struct layered_state {
    pthread_mutex_t lock;
    struct layer_info *li; /* parallel to d->child, top first */
};

static struct layer_info *info(struct dl_disk *d, size_t i)
{
    return &((struct layered_state *)d->state)->li[i];
}

static uint64_t visible(struct dl_disk *d, size_t i)
{
    return i == 0 ? dl_size(d->child[0]) : info(d, i)->visible;
}

/* The write path: the top and each layer below a write-through one. */
static size_t write_path_len(struct dl_disk *d)
{
    size_t i = 0;

    while (i + 1 < d->nchild && info(d, i)->write_through)
        i++;
    return i + 1;
}

/* Called with the list stable: visible sizes, unmap behaviour. */
static void derive(struct dl_disk *d)
{
    uint64_t v = UINT64_MAX;
    enum dl_unmap_behavior ub = DL_UNMAP_ZEROES;
    size_t wp = write_path_len(d);

    for (size_t i = 0; i < d->nchild; i++) {
        v = MIN(v, dl_size(d->child[i]));
        info(d, i)->visible = v;
    }
    /* all zeroes stays zeroes; once a write-through layer is passed a
     * mixed result is ignored, else unspecified */
    for (size_t i = 0; i < wp; i++) {
        enum dl_unmap_behavior l = dl_unmap_behavior(d->child[i]);

        if (ub == DL_UNMAP_ZEROES && l == DL_UNMAP_ZEROES)
            ub = DL_UNMAP_ZEROES;
        else if (i > 0 || ub == DL_UNMAP_IGNORED || l == DL_UNMAP_IGNORED)
            ub = DL_UNMAP_IGNORED;
        else
            ub = DL_UNMAP_UNSPECIFIED;
    }
    d->unmap_behavior = ub;
    d->pss = d->child[0]->pss;
}

/* "layer 1 (ram)": how messages name a layer. */
static void layer_name(struct dl_disk *d, size_t i, char *buf, size_t len)
{
    const char *src = dl_source(d->child[i]);

    snprintf(buf, len, "layer %zu (%s%s%s)", d->nchild - 1 - i,
             dl_kind(d->child[i]), *src ? " " : "", src);
}

static int layered_open(struct dl_disk *d, const struct dl_node *n,
                        unsigned flags, char **ret_msg)
{
    struct layered_state *s = d->state;
    bool ro = flags & DL_OPEN_RDONLY;
    unsigned caches = 0;
    char name[512];
    int r;

    pthread_mutex_init(&s->lock, NULL);
    if (n->nchild == 0) {
        dl_msg(ret_msg, "a layered disk needs at least one layer");
        return -EINVAL;
    }
    s->li = calloc(n->nchild, sizeof(*s->li));
    if (!s->li)
        return -ENOMEM;
    for (size_t i = 0; i < n->nchild; i++) {
        s->li[i].read_cache = n->child[i]->read_cache;
        s->li[i].write_through = n->child[i]->write_through;
        s->li[i].snapshot = n->child[i]->snapshot;
        s->li[i].frozen = n->child[i]->frozen;
    }
    /* Which layers open read-only: once a configured layer is not
     * write-through, everything below is only read; read caches are
     * written always. Layers pushed by snapshots do not count: the layer
     * they froze stays writable underneath, so that commit can merge
     * into it. */
    {
        bool ro_so_far = ro;

        for (size_t i = 0; i < n->nchild; i++) {
            s->li[i].configured_ro = (ro_so_far && !s->li[i].read_cache) ||
                                     n->child[i]->read_only;
            if (!s->li[i].write_through && !s->li[i].snapshot)
                ro_so_far = true;
        }
    }
    /* Bottom up, so that a layer can take size and sector size from the
     * one below. A read cache is opened writable to be filled, even when
     * it is read-only for writes. */
    for (size_t i = n->nchild; i-- > 0;) {
        bool open_ro = s->li[i].configured_ro && !s->li[i].read_cache;

        r = dl_open_child(d, n, i,
                          (flags & ~DL_OPEN_RDONLY) |
                              (open_ro ? DL_OPEN_RDONLY : 0),
                          i + 1 < n->nchild ? d->child[i + 1] : NULL,
                          ret_msg);
        if (r < 0)
            return r; /* the message names the part */
        if (s->li[i].frozen || s->li[i].configured_ro)
            d->child[i]->read_only = true;
    }
    for (size_t i = 0; i < n->nchild; i++) {
        struct dl_disk *l = d->child[i];

        layer_name(d, i, name, sizeof(name));
        if (l->lss != d->child[n->nchild - 1]->lss) {
            dl_msg(ret_msg, "%s: sector size %" PRIu32 " differs from %" PRIu32
                   " of the layer at the bottom", name, l->lss,
                   d->child[n->nchild - 1]->lss);
            return -EINVAL;
        }
        if (s->li[i].read_cache) {
            if (!l->drv->layer || !l->drv->layer->write_no_overwrite) {
                dl_msg(ret_msg, "%s cannot be a read cache", name);
                return -EINVAL;
            }
            if (++caches > MAX_CACHES) {
                dl_msg(ret_msg, "at most %d read-cache layers", MAX_CACHES);
                return -EINVAL;
            }
        }
        if (s->li[i].write_through && i + 1 == n->nchild) {
            dl_msg(ret_msg, "%s is write-through but has no layer below",
                   name);
            return -EINVAL;
        }
        if (s->li[i].write_through && i > 0 && !s->li[i - 1].write_through) {
            dl_msg(ret_msg, "%s is write-through, but the layer above it is "
                   "not: writes never reach it", name);
            return -EINVAL;
        }
        if (s->li[i].frozen && i == 0) {
            dl_msg(ret_msg, "%s is frozen by a snapshot but has no layer "
                   "above it", name);
            return -EINVAL;
        }
    }
    if (!ro) {
        for (size_t i = 0; i < write_path_len(d); i++) {
            /* in a dry run every part is read-only: judge by what the
             * configuration says */
            if (s->li[i].configured_ro ||
                (!(flags & DL_OPEN_DRY_RUN) && dl_read_only(d->child[i]))) {
                layer_name(d, i, name, sizeof(name));
                dl_msg(ret_msg, "%s is read-only but in the write path of a "
                       "writable disk", name);
                return -EROFS;
            }
        }
    }
    d->lss = d->child[0]->lss;
    atomic_store(&d->size, dl_size(d->child[0]));
    d->read_only = ro;
    d->max_io = 1u << 20;
    d->max_discard = 1u << 20;
    for (size_t i = 0; i < n->nchild; i++) /* the first id from the top */
        if (d->child[i]->has_id && !d->has_id) {
            d->has_id = true;
            memcpy(d->id, d->child[i]->id, 16);
        }
    derive(d);
    dl_disk_set_source(d, "%zu layers", d->nchild);
    return 0;
}

static void layered_close(struct dl_disk *d)
{
    struct layered_state *s = d->state;

    free(s->li);
    pthread_mutex_destroy(&s->lock);
}

/* ---- reading ---- */

static bool all_set(const uint64_t *bits, uint64_t ns)
{
    for (uint64_t w = 0; w < ns / 64; w++)
        if (bits[w] != UINT64_MAX)
            return false;
    if (ns % 64)
        return (bits[ns / 64] | ~((1ull << (ns % 64)) - 1)) == UINT64_MAX;
    return true;
}

/* The next run of sectors whose bit is clear, at or after *i; false when
 * there is none before ns. */
static bool next_clear_run(const uint64_t *bits, uint64_t ns, uint64_t *i,
                           uint64_t *ret_end)
{
    struct dl_presence p = {.bits = (uint64_t *)bits, .nsect = ns};
    uint64_t a = *i, b;

    while (a < ns && dl_presence_test(&p, a))
        a++;
    if (a >= ns)
        return false;
    b = a;
    while (b < ns && !dl_presence_test(&p, b))
        b++;
    *i = a;
    *ret_end = b;
    return true;
}

static int layered_read(struct dl_disk *d, void *buf, uint64_t off,
                        uint64_t len, const struct dl_req *rq)
{
    const uint32_t lss = d->lss;
    const uint64_t ns = len / lss;
    uint64_t bits[BITMAP_WORDS] = {0};
    uint64_t cache_bits[MAX_CACHES][BITMAP_WORDS];
    size_t cache_layer[MAX_CACHES], ncache = 0;
    uint8_t *out = buf;
    int r;

    for (size_t i = 0; i < d->nchild && !all_set(bits, ns); i++) {
        uint64_t vis = visible(d, i), lim, a = 0, b;

        if (off >= vis)
            break; /* beyond it, and below: zeroes */
        lim = MIN(ns, (vis - off) / lss);
        while (next_clear_run(bits, lim, &a, &b)) {
            struct dl_presence p = {.bits = bits, .base = a, .nsect = b - a};

            r = dl_layer_read(d->child[i], out + a * lss, off + a * lss,
                              (b - a) * lss, &p);
            if (r < 0)
                return r;
            a = b;
        }
        if (info(d, i)->read_cache) {
            memcpy(cache_bits[ncache], bits, sizeof(bits));
            cache_layer[ncache++] = i;
        }
    }
    /* what no layer holds reads as zeroes */
    {
        uint64_t a = 0, b;

        while (next_clear_run(bits, ns, &a, &b)) {
            memset(out + a * lss, 0, (b - a) * lss);
            a = b;
        }
    }
    /* fill the read caches with what they did not hold */
    for (size_t k = 0; k < ncache; k++) {
        size_t i = cache_layer[k];
        uint64_t vis = visible(d, i), lim, a = 0, b;

        if (off >= vis)
            continue;
        lim = MIN(ns, (vis - off) / lss);
        while (next_clear_run(cache_bits[k], lim, &a, &b)) {
            r = dl_layer_write_no_overwrite(d->child[i], out + a * lss,
                                            off + a * lss, (b - a) * lss);
            if (r < 0)
                dl_debug(d->ctx, "layered",
                         "filling the read cache of layer %zu: %s",
                         d->nchild - 1 - i, strerror(-r));
            a = b;
        }
    }
    return 0;
}

/* ---- writing ---- */

static int layered_write(struct dl_disk *d, const void *buf, uint64_t off,
                         uint64_t len, const struct dl_req *rq)
{
    size_t wp = write_path_len(d);

    for (size_t i = 0; i < wp; i++) {
        uint64_t size = dl_size(d->child[i]);
        int r;

        if (off >= size)
            break;
        r = dl_pwrite(d->child[i], buf, off, MIN(len, size - off), rq);
        if (r < 0)
            return r;
    }
    return 0;
}

static int layered_flush(struct dl_disk *d, const struct dl_req *rq)
{
    size_t wp = write_path_len(d);

    for (size_t i = 0; i < wp; i++) {
        int r = dl_flush(d->child[i], rq);

        if (r < 0)
            return r;
    }
    return 0;
}

static int layered_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                         const struct dl_req *rq)
{
    size_t wp = write_path_len(d);

    for (size_t i = 0; i < wp; i++) {
        uint64_t size = dl_size(d->child[i]);
        bool next_is_zero = i + 1 == d->nchild || off >= visible(d, i + 1);
        int r;

        if (off >= size)
            break;
        r = dl_layer_unmap(d->child[i], off, MIN(len, size - off),
                           next_is_zero);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- extents ---- */

struct merge {
    struct dl_disk *d;
    size_t layer;
    dl_extent_fn fn;
    void *opaque;
};

static int merge_range(struct dl_disk *d, size_t i, uint64_t off,
                       uint64_t len, dl_extent_fn fn, void *opaque);

static int merge_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct merge *m = opaque;

    if (type & DL_EXTENT_UNHELD)
        return merge_range(m->d, m->layer + 1, off, len, m->fn, m->opaque);
    return m->fn(m->opaque, off, len, type);
}

static int merge_range(struct dl_disk *d, size_t i, uint64_t off,
                       uint64_t len, dl_extent_fn fn, void *opaque)
{
    uint64_t end = off + len, lim;
    int r = 0;

    if (!len)
        return 0;
    if (i == d->nchild)
        return fn(opaque, off, len, DL_EXTENT_HOLE | DL_EXTENT_ZERO);
    lim = MIN(end, visible(d, i));
    if (lim > off) {
        struct merge m = {.d = d, .layer = i, .fn = fn, .opaque = opaque};

        r = dl_extents(d->child[i], off, lim - off, merge_cb, &m);
    }
    if (r == 0 && lim < end)
        r = fn(opaque, MAX(lim, off), end - MAX(lim, off),
               DL_EXTENT_HOLE | DL_EXTENT_ZERO);
    return r;
}

static int layered_extents(struct dl_disk *d, uint64_t off, uint64_t len,
                           dl_extent_fn fn, void *opaque)
{
    return merge_range(d, 0, off, len, fn, opaque);
}

/* ---- size ---- */

static int layered_resize(struct dl_disk *d, uint64_t new_size,
                          char **ret_msg)
{
    /* the top layer's size is the disk's; child_resized follows it */
    return dl_resize(d->child[0], new_size, ret_msg);
}

static uint64_t layered_child_resized(struct dl_disk *d, struct dl_disk *c)
{
    return dl_size(d->child[0]);
}

/* ---- layers seen from outside ---- */

struct dl_disk *dl_layered_of(struct dl_disk *d)
{
    for (; d; d = d->nchild == 1 ? d->child[0] : NULL)
        if (d->drv == &dl_layered_driver)
            return d;
    return NULL;
}

size_t dl_layer_count(struct dl_disk *d)
{
    struct layered_state *s = d->state;
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = d->nchild;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int dl_layer_describe(struct dl_disk *d, unsigned number,
                      struct dl_layer_desc *ret)
{
    struct layered_state *s = d->state;
    struct dl_disk *l;
    size_t i;
    int r = 0;

    pthread_mutex_lock(&s->lock);
    if (number >= d->nchild) {
        r = -ENOENT;
        goto out;
    }
    i = d->nchild - 1 - number;
    l = d->child[i];
    *ret = (struct dl_layer_desc){
        .number = number,
        .kind = dl_kind(l),
        .source = dl_source(l),
        .size = dl_size(l),
        .read_cache = s->li[i].read_cache,
        .write_through = s->li[i].write_through,
        .read_only = dl_read_only(l),
        .frozen = s->li[i].frozen,
        .snapshot = s->li[i].snapshot,
    };
    r = dl_allocated(l, &ret->held);
    if (r == 0 && l->drv == &dl_ram_driver)
        r = dl_ram_usage(l, &ret->mem_data, &ret->mem_tables);
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

struct dl_disk *dl_layer_view_get(struct dl_disk *d, unsigned number)
{
    struct layered_state *s = d->state;
    struct dl_disk *l = NULL;

    pthread_mutex_lock(&s->lock);
    if (number < d->nchild) {
        size_t i = d->nchild - 1 - number;

        s->li[i].views++;
        l = d->child[i];
    }
    pthread_mutex_unlock(&s->lock);
    return l;
}

void dl_layer_view_put(struct dl_disk *d, unsigned number)
{
    struct layered_state *s = d->state;

    pthread_mutex_lock(&s->lock);
    if (number < d->nchild)
        s->li[d->nchild - 1 - number].views--;
    pthread_mutex_unlock(&s->lock);
}

/* ---- snapshot, commit, revert ---- */

struct change {
    const struct dl_node *layer; /* snapshot: the new layer */
    char **msg;
};

static int do_snapshot(struct dl_disk *d, void *opaque)
{
    struct change *c = opaque;
    struct layered_state *s = d->state;
    struct dl_disk *top = d->child[0], *l = NULL, **child;
    struct layer_info *li;
    int r;

    r = dl_open_part(d, c->layer, 0, top, &l, c->msg);
    if (r < 0)
        return r;
    if (l->lss != top->lss || dl_size(l) != dl_size(top)) {
        dl_msg(c->msg, "the new layer has sector size %" PRIu32 " and size %"
               PRIu64 "; the disk has %" PRIu32 " and %" PRIu64, l->lss,
               dl_size(l), top->lss, dl_size(top));
        dl_close_part(l);
        return -EINVAL;
    }
    if (dl_read_only(l)) {
        dl_msg(c->msg, "the new layer is read-only");
        dl_close_part(l);
        return -EROFS;
    }
    child = realloc(d->child, (d->nchild + 1) * sizeof(*child));
    li = child ? realloc(s->li, (d->nchild + 1) * sizeof(*li)) : NULL;
    if (child)
        d->child = child;
    if (!li) {
        dl_close_part(l);
        return -ENOMEM;
    }
    pthread_mutex_lock(&s->lock);
    s->li = li;
    memmove(&d->child[1], &d->child[0], d->nchild * sizeof(*d->child));
    memmove(&s->li[1], &s->li[0], d->nchild * sizeof(*s->li));
    d->child[0] = l;
    s->li[0] = (struct layer_info){.snapshot = true};
    d->nchild++;
    /* the old top: frozen, read-only from now on */
    s->li[1].frozen = true;
    top->read_only = true;
    derive(d);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Drop the top layer (pushed by a snapshot); the one below becomes the
 * top and writable again unless its configuration says otherwise. */
static int pop_top(struct dl_disk *d, char **msg)
{
    struct layered_state *s = d->state;
    struct dl_disk *top = d->child[0];
    uint64_t before = dl_size(d);

    pthread_mutex_lock(&s->lock);
    if (s->li[0].views) {
        pthread_mutex_unlock(&s->lock);
        dl_msg(msg, "layer %zu is open as .ctl/.../layer/%zu", d->nchild - 1,
               d->nchild - 1);
        return -EBUSY;
    }
    memmove(&d->child[0], &d->child[1], (d->nchild - 1) * sizeof(*d->child));
    memmove(&s->li[0], &s->li[1], (d->nchild - 1) * sizeof(*s->li));
    d->nchild--;
    if (s->li[0].frozen) {
        s->li[0].frozen = false;
        d->child[0]->read_only = s->li[0].configured_ro;
    }
    derive(d);
    pthread_mutex_unlock(&s->lock);
    dl_close_part(top);
    if (dl_size(d->child[0]) != before)
        dl_disk_set_size(d, dl_size(d->child[0]));
    return 0;
}

static int check_pushed(struct dl_disk *d, const char *what, char **msg)
{
    struct layered_state *s = d->state;

    if (d->nchild < 2) {
        dl_msg(msg, "%s needs a layer below the top; this disk has one", what);
        return -EINVAL;
    }
    if (!s->li[0].snapshot) {
        dl_msg(msg, "layer %zu is part of the configuration, not pushed by "
               "a snapshot (edit the configuration to drop it)",
               d->nchild - 1);
        return -EINVAL;
    }
    if (s->li[0].views) {
        dl_msg(msg, "layer %zu is open as a layer/ file", d->nchild - 1);
        return -EBUSY;
    }
    return 0;
}

static int do_revert(struct dl_disk *d, void *opaque)
{
    struct change *c = opaque;
    int r = check_pushed(d, "revert", c->msg);

    return r < 0 ? r : pop_top(d, c->msg);
}

struct commit_walk {
    struct dl_disk *top, *below;
    uint8_t *buf;
    int r;
};

static int commit_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct commit_walk *w = opaque;

    if (type & DL_EXTENT_UNHELD)
        return 0;
    while (len && w->r == 0) {
        uint64_t n = MIN(len, 1u << 20);

        if (type & DL_EXTENT_ZERO) {
            w->r = dl_zero(w->below, off, n,
                           &(struct dl_req){.flags = DL_F_MAY_TRIM});
        } else {
            w->r = dl_pread(w->top, w->buf, off, n, NULL);
            if (w->r == 0)
                w->r = dl_pwrite(w->below, w->buf, off, n, NULL);
        }
        off += n;
        len -= n;
    }
    return w->r;
}

static int do_commit(struct dl_disk *d, void *opaque)
{
    struct change *c = opaque;
    struct layered_state *s = d->state;
    struct commit_walk w;
    bool was_ro;
    int r = check_pushed(d, "commit", c->msg);

    if (r < 0)
        return r;
    w.top = d->child[0];
    w.below = d->child[1];
    if (s->li[1].configured_ro) {
        dl_msg(c->msg, "layer %zu below is read-only by configuration",
               d->nchild - 2);
        return -EROFS;
    }
    if (dl_size(w.top) > dl_size(w.below)) {
        r = dl_resize(w.below, dl_size(w.top), c->msg);
        if (r < 0)
            return r;
    }
    w.buf = aligned_alloc(4096, 1u << 20);
    if (!w.buf)
        return -ENOMEM;
    w.r = 0;
    was_ro = w.below->read_only;
    w.below->read_only = false;
    r = dl_extents(w.top, 0, dl_size(w.top), commit_cb, &w);
    if (r == 0)
        r = w.r;
    if (r == 0)
        r = dl_flush(w.below, NULL);
    free(w.buf);
    if (r < 0) {
        w.below->read_only = was_ro;
        dl_msg(c->msg, "merging into layer %zu failed: %s (both layers are "
               "kept)", d->nchild - 2, strerror(-r));
        return r;
    }
    return pop_top(d, c->msg);
}

int dl_layered_snapshot(struct dl_disk *d, const struct dl_node *layer,
                        char **ret_msg)
{
    struct change c = {.layer = layer, .msg = ret_msg};

    if (dl_read_only(d)) {
        dl_msg(ret_msg, "the disk is read-only");
        return -EROFS;
    }
    return dl_disk_exclusive(d, do_snapshot, &c);
}

int dl_layered_commit(struct dl_disk *d, char **ret_msg)
{
    struct change c = {.msg = ret_msg};

    if (dl_read_only(d)) {
        dl_msg(ret_msg, "the disk is read-only");
        return -EROFS;
    }
    return dl_disk_exclusive(d, do_commit, &c);
}

int dl_layered_revert(struct dl_disk *d, char **ret_msg)
{
    struct change c = {.msg = ret_msg};

    return dl_disk_exclusive(d, do_revert, &c);
}

const struct dl_driver dl_layered_driver = {
    .name = "layered",
    .summary = "layers, top first: reads fall through to the first layer "
               "holding a sector",
    .state_size = sizeof(struct layered_state),
    .thread_model = DL_THREAD_PARALLEL,
    .min_children = 1,
    .max_children = 64,
    .opens_children = true,
    .open = layered_open,
    .close = layered_close,
    .read = layered_read,
    .write = layered_write,
    .flush = layered_flush,
    .unmap = layered_unmap,
    .extents = layered_extents,
    .resize = layered_resize,
    .child_resized = layered_child_resized,
};
