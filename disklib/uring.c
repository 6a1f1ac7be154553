/* Reads in concurrent pieces through io_uring, for backends that want to
 * keep a device busier than one synchronous call can.
 *
 * A request reaches a backend whole (1 MiB FUSE reads stay 1 MiB down the
 * stack); how it is issued to the host is the backend's business. Some
 * devices deliver more with several medium reads in flight than with one
 * large one, so a large read can be issued as pieces submitted together
 * and waited for together.
 *
 * Rings are not safe to share between threads, and drivers have no thread
 * of their own: rings come from a small pool (created on demand, at most
 * as many as requests run at once), protected by p->lock. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disklib/uring.h"
#include "disklib/util.h"

#ifdef HAVE_LIBURING
#include <liburing.h>

#define POOL_KEEP 32

struct dl_uring_pool {
    pthread_mutex_t lock;
    unsigned depth;
    unsigned nfree;                     /* protected by lock */
    struct io_uring *free[POOL_KEEP];   /* protected by lock */
};

int dl_uring_pool_new(unsigned depth, struct dl_uring_pool **ret)
{
    struct dl_uring_pool *p;
    struct io_uring probe;

    /* io_uring may be switched off (kernel.io_uring_disabled) */
    if (io_uring_queue_init(depth, &probe, 0) < 0)
        return -ENOSYS;
    p = calloc(1, sizeof(*p));
    if (!p) {
        io_uring_queue_exit(&probe);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->depth = depth;
    p->free[p->nfree] = malloc(sizeof(struct io_uring));
    if (p->free[p->nfree]) {
        *p->free[p->nfree] = probe;
        p->nfree++;
    } else {
        io_uring_queue_exit(&probe);
    }
    *ret = p;
    return 0;
}

void dl_uring_pool_free(struct dl_uring_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nfree; i++) {
        io_uring_queue_exit(p->free[i]);
        free(p->free[i]);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static struct io_uring *ring_get(struct dl_uring_pool *p)
{
    struct io_uring *r = NULL;

    pthread_mutex_lock(&p->lock);
    if (p->nfree)
        r = p->free[--p->nfree];
    pthread_mutex_unlock(&p->lock);
    if (r)
        return r;
    r = malloc(sizeof(*r));
    if (r && io_uring_queue_init(p->depth, r, 0) < 0) {
        free(r);
        r = NULL;
    }
    return r;
}

static void ring_put(struct dl_uring_pool *p, struct io_uring *r)
{
    pthread_mutex_lock(&p->lock);
    if (p->nfree < POOL_KEEP) {
        p->free[p->nfree++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (r) {
        io_uring_queue_exit(r);
        free(r);
    }
}

/* What a piece still needs after a short read: done synchronously. */
static int finish_piece(int fd, uint8_t *buf, uint64_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* the file ended inside the disk */
        buf += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

int dl_uring_pread_split(struct dl_uring_pool *p, int fd, void *buf,
                         uint64_t len, uint64_t off, uint64_t piece)
{
    uint64_t got[64];
    unsigned n, submitted, reaped = 0;
    struct io_uring *r;
    int err = 0;

    if (!piece || len <= piece)
        return -EAGAIN;
    n = (unsigned)((len + piece - 1) / piece);
    if (n > p->depth || n > ARRAY_SIZE(got))
        return -EAGAIN;
    r = ring_get(p);
    if (!r)
        return -EAGAIN;
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(r);
        uint64_t o = (uint64_t)i * piece;

        io_uring_prep_read(sqe, fd, (uint8_t *)buf + o,
                           (unsigned)MIN(piece, len - o), off + o);
        io_uring_sqe_set_data64(sqe, i);
        got[i] = 0;
    }
    submitted = 0;
    while (submitted < n) {
        int s = io_uring_submit(r);

        if (s == -EINTR)
            continue;
        if (s <= 0)
            break;
        submitted += (unsigned)s;
    }
    while (reaped < submitted) {
        struct io_uring_cqe *cqe;
        int w = io_uring_wait_cqe(r, &cqe);

        if (w == -EINTR)
            continue;
        if (w < 0) {
            /* cannot reap: the ring is unusable, throw it away */
            io_uring_queue_exit(r);
            free(r);
            return w;
        }
        if (cqe->res < 0 && !err)
            err = cqe->res;
        else if (cqe->res > 0)
            got[io_uring_cqe_get_data64(cqe)] = (uint64_t)cqe->res;
        io_uring_cqe_seen(r, cqe);
        reaped++;
    }
    if (submitted == n) {
        ring_put(p, r);
    } else {
        /* SQEs left in the ring would run on its next use */
        io_uring_queue_exit(r);
        free(r);
    }
    if (err)
        return err;
    /* pieces that were not submitted, or came back short */
    for (unsigned i = 0; i < n; i++) {
        uint64_t o = (uint64_t)i * piece, want = MIN(piece, len - o);

        if (got[i] < want) {
            int e = finish_piece(fd, (uint8_t *)buf + o + got[i],
                                 want - got[i], off + o + got[i]);

            if (e < 0)
                return e;
        }
    }
    return 0;
}

#else /* !HAVE_LIBURING */

int dl_uring_pool_new(unsigned depth, struct dl_uring_pool **ret)
{
    return -ENOSYS;
}

void dl_uring_pool_free(struct dl_uring_pool *p)
{
}

int dl_uring_pread_split(struct dl_uring_pool *p, int fd, void *buf,
                         uint64_t len, uint64_t off, uint64_t piece)
{
    return -EAGAIN;
}

#endif
