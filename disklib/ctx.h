/* Private to disklib: the context structure. */
#ifndef DISKLIB_CTX_H
#define DISKLIB_CTX_H

#include <pthread.h>
#include <stdatomic.h>

#include "disklib/disklib.h"

#define DL_MAX_CATS 32
#define DL_CAT_LEN 32

struct dl_drvlock {
    const void *drv;
    pthread_mutex_t lock;
    struct dl_drvlock *next;
};

struct dl_ctx {
    dl_log_fn log_fn;
    void *log_opaque;

    pthread_mutex_t lock; /* protects cats[] writers, drvlocks */
    _Atomic int debug_all;
    struct {
        char name[DL_CAT_LEN];
        _Atomic int level;
    } cats[DL_MAX_CATS];
    unsigned ncats;              /* protected by lock */
    _Atomic bool tracing;        /* some category is at level 2 */
    _Atomic unsigned ncats_pub;  /* entries readers may look at */
    struct dl_drvlock *drvlocks; /* protected by lock */

    void *zeroes; /* read-only after creation */
};

pthread_mutex_t *dl_ctx_driver_lock(struct dl_ctx *ctx, const void *drv);
/* Cheap test before the per-category lookup of a trace line. */
bool dl_ctx_tracing(struct dl_ctx *ctx);

#endif
