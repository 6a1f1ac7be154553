/* Aligned buffers reused across requests, so that bounce buffers cost no
 * allocation per request. A pool keeps up to `keep` free buffers; more
 * are allocated when more requests need one at once, and freed when they
 * come back to a full pool. */
#include <errno.h>
#include <pthread.h>

#include "disklib/driver.h"
#include "disklib/util.h"

struct dl_bufpool {
    pthread_mutex_t lock;
    size_t bufsize;
    unsigned keep, nfree; /* protected by lock */
    void **free;          /* protected by lock */
};

int dl_bufpool_new(size_t bufsize, unsigned keep, struct dl_bufpool **ret)
{
    struct dl_bufpool *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    p->free = calloc(keep ? keep : 1, sizeof(void *));
    if (!p->free) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->bufsize = align_up(bufsize, 4096);
    p->keep = keep;
    *ret = p;
    return 0;
}

void dl_bufpool_free(struct dl_bufpool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nfree; i++)
        free(p->free[i]);
    free(p->free);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void *dl_bufpool_get(struct dl_bufpool *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->nfree) {
        void *b = p->free[--p->nfree];

        pthread_mutex_unlock(&p->lock);
        return b;
    }
    pthread_mutex_unlock(&p->lock);
    return aligned_alloc(4096, p->bufsize);
}

void dl_bufpool_put(struct dl_bufpool *p, void *buf)
{
    if (!buf)
        return;
    pthread_mutex_lock(&p->lock);
    if (p->nfree < p->keep) {
        p->free[p->nfree++] = buf;
        buf = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(buf);
}

size_t dl_bufpool_bufsize(const struct dl_bufpool *p)
{
    return p->bufsize;
}
