/* The byte interface: requests at any offset and length.
 *
 * A request is split into the partial sector at its head, an aligned
 * middle passed through as it is (no copy), and the partial sector at its
 * tail. A partial sector of a write is read, patched and written back
 * (read-modify-write). To keep two such updates of one sector from losing
 * each other's bytes, every write through this interface holds a range
 * lock on the sectors it touches: an aligned write holds it shared (aligned
 * writes may overlap each other as on any disk), a read-modify-write holds
 * it exclusive. Reads need no lock: each sector they see is whole.
 *
 * The range lock is a short list of the writes in flight on this disk
 * (bounded by the number of callers' threads), protected by d->rl_lock. */
#include <errno.h>
#include <string.h>

#include "disklib/driver.h"
#include "disklib/util.h"

struct dl_rangelock_entry {
    uint64_t start, end;
    bool excl;
    struct dl_rangelock_entry *next, **pprev;
};

static void rl_acquire(struct dl_disk *d, struct dl_rangelock_entry *e,
                       uint64_t start, uint64_t end, bool excl)
{
    e->start = start;
    e->end = end;
    e->excl = excl;
    pthread_mutex_lock(&d->rl_lock);
    for (;;) {
        struct dl_rangelock_entry *x;

        for (x = d->rl_head; x; x = x->next)
            if (x->start < end && start < x->end && (x->excl || excl))
                break;
        if (!x)
            break;
        d->rl_waiters++;
        pthread_cond_wait(&d->rl_cond, &d->rl_lock);
        d->rl_waiters--;
    }
    e->next = d->rl_head;
    e->pprev = &d->rl_head;
    if (d->rl_head)
        d->rl_head->pprev = &e->next;
    d->rl_head = e;
    pthread_mutex_unlock(&d->rl_lock);
}

static void rl_release(struct dl_disk *d, struct dl_rangelock_entry *e)
{
    pthread_mutex_lock(&d->rl_lock);
    *e->pprev = e->next;
    if (e->next)
        e->next->pprev = e->pprev;
    if (d->rl_waiters)
        pthread_cond_broadcast(&d->rl_cond);
    pthread_mutex_unlock(&d->rl_lock);
}

/* One sector of scratch space: on the stack for the usual sizes. */
struct sector_buf {
    uint8_t local[4096] __attribute__((aligned(4096)));
    uint8_t *p;
};

static int sector_buf_init(struct sector_buf *b, uint32_t lss)
{
    if (lss <= sizeof(b->local)) {
        b->p = b->local;
        return 0;
    }
    b->p = aligned_alloc(4096, lss);
    return b->p ? 0 : -ENOMEM;
}

static void sector_buf_done(struct sector_buf *b)
{
    if (b->p != b->local)
        free(b->p);
}

static int check_bytes(struct dl_disk *d, uint64_t off, uint64_t len,
                       bool writes)
{
    uint64_t size = dl_size(d);

    if (writes && d->read_only)
        return -EROFS;
    if (off > size || len > size - off)
        return -ERANGE;
    return 0;
}

int dl_read_bytes(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                  const struct dl_req *rq)
{
    const uint32_t lss = d->lss;
    struct sector_buf sb;
    uint8_t *dst = buf;
    int r;

    if (is_aligned(off | len, lss))
        return dl_pread(d, buf, off, len, rq);
    r = check_bytes(d, off, len, false);
    if (r < 0 || len == 0)
        return r;
    r = sector_buf_init(&sb, lss);
    if (r < 0)
        return r;
    if (!is_aligned(off, lss)) {
        uint64_t s = align_down(off, lss), in = off - s;
        uint64_t n = MIN(lss - in, len);

        r = dl_pread(d, sb.p, s, lss, rq);
        if (r < 0)
            goto out;
        memcpy(dst, sb.p + in, n);
        dst += n;
        off += n;
        len -= n;
    }
    if (len >= lss) {
        uint64_t m = align_down(len, lss);

        r = dl_pread(d, dst, off, m, rq);
        if (r < 0)
            goto out;
        dst += m;
        off += m;
        len -= m;
    }
    if (len) {
        r = dl_pread(d, sb.p, off, lss, rq);
        if (r < 0)
            goto out;
        memcpy(dst, sb.p, len);
    }
out:
    sector_buf_done(&sb);
    return r;
}

/* Patch n bytes at offset `in` of the sector at s with src, or with
 * zeroes when src is NULL. */
static int rmw_sector(struct dl_disk *d, uint8_t *sec, uint64_t s,
                      uint64_t in, uint64_t n, const uint8_t *src,
                      const struct dl_req *rq)
{
    const uint32_t who = rq ? rq->initiator : 0;
    const struct dl_req rrq = {.initiator = who};
    const struct dl_req wrq = {.flags = rq ? rq->flags & DL_F_FUA : 0,
                               .initiator = who};
    int r;

    r = dl_pread(d, sec, s, d->lss, &rrq);
    if (r < 0)
        return r;
    if (src)
        memcpy(sec + in, src, n);
    else
        memset(sec + in, 0, n);
    return dl_pwrite(d, sec, s, d->lss, &wrq);
}

/* The shared shape of write and zero: src NULL means zeroes. */
static int write_or_zero(struct dl_disk *d, const uint8_t *src, uint64_t off,
                         uint64_t len, const struct dl_req *rq)
{
    const uint32_t lss = d->lss;
    struct dl_rangelock_entry e;
    struct sector_buf sb;
    uint64_t a, b;
    int r;

    r = check_bytes(d, off, len, true);
    if (r < 0 || len == 0)
        return r;
    if (is_aligned(off | len, lss)) {
        rl_acquire(d, &e, off, off + len, false);
        r = src ? dl_pwrite(d, src, off, len, rq) : dl_zero(d, off, len, rq);
        rl_release(d, &e);
        return r;
    }
    r = sector_buf_init(&sb, lss);
    if (r < 0)
        return r;
    a = align_down(off, lss);
    b = align_up(off + len, lss);
    rl_acquire(d, &e, a, b, true);
    if (!is_aligned(off, lss)) {
        uint64_t in = off - a, n = MIN(lss - in, len);

        r = rmw_sector(d, sb.p, a, in, n, src, rq);
        if (r < 0)
            goto out;
        if (src)
            src += n;
        off += n;
        len -= n;
    }
    if (len >= lss) {
        uint64_t m = align_down(len, lss);

        r = src ? dl_pwrite(d, src, off, m, rq) : dl_zero(d, off, m, rq);
        if (r < 0)
            goto out;
        if (src)
            src += m;
        off += m;
        len -= m;
    }
    if (len)
        r = rmw_sector(d, sb.p, off, 0, len, src, rq);
out:
    rl_release(d, &e);
    sector_buf_done(&sb);
    return r;
}

int dl_write_bytes(struct dl_disk *d, const void *buf, uint64_t off,
                   uint64_t len, const struct dl_req *rq)
{
    return write_or_zero(d, buf, off, len, rq);
}

int dl_zero_bytes(struct dl_disk *d, uint64_t off, uint64_t len,
                  const struct dl_req *rq)
{
    return write_or_zero(d, NULL, off, len, rq);
}
