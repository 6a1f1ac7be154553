/* The library context: the log sink, debug levels per category, the
 * locks of drivers that serialize across all their disks, and a buffer of
 * zeroes. One per program (the mount object owns it); nothing in disklib
 * keeps global mutable state. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "disklib/ctx.h"
#include "disklib/driver.h"
#include "disklib/util.h"

#define ZERO_BUFFER_SIZE (1u << 20)

int dl_ctx_new(struct dl_ctx **ret)
{
    struct dl_ctx *ctx = calloc(1, sizeof(*ctx));

    if (!ctx)
        return -ENOMEM;
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->zeroes = aligned_alloc(4096, ZERO_BUFFER_SIZE);
    if (!ctx->zeroes) {
        dl_ctx_free(ctx);
        return -ENOMEM;
    }
    memset(ctx->zeroes, 0, ZERO_BUFFER_SIZE);
    atomic_init(&ctx->debug_all, 0);
    *ret = ctx;
    return 0;
}

void dl_ctx_free(struct dl_ctx *ctx)
{
    struct dl_drvlock *l, *next;

    if (!ctx)
        return;
    for (l = ctx->drvlocks; l; l = next) {
        next = l->next;
        pthread_mutex_destroy(&l->lock);
        free(l);
    }
    pthread_mutex_destroy(&ctx->lock);
    free(ctx->zeroes);
    free(ctx);
}

void dl_ctx_set_log(struct dl_ctx *ctx, dl_log_fn fn, void *opaque)
{
    ctx->log_fn = fn;
    ctx->log_opaque = opaque;
}

int dl_ctx_set_debug(struct dl_ctx *ctx, const char *category, int level)
{
    LOCK_GUARD(&ctx->lock);

    if (!category || !*category || strlen(category) >= DL_CAT_LEN)
        return -EINVAL;
    if (level < 0 || level > 2)
        return -ERANGE;
    if (level == 2)
        atomic_store(&ctx->tracing, true);
    if (strcmp(category, "all") == 0) {
        atomic_store(&ctx->debug_all, level);
        return 0;
    }
    for (unsigned i = 0; i < ctx->ncats; i++) {
        if (strcmp(ctx->cats[i].name, category) == 0) {
            atomic_store(&ctx->cats[i].level, level);
            return 0;
        }
    }
    if (ctx->ncats == DL_MAX_CATS)
        return -ENOSPC;
    strcpy(ctx->cats[ctx->ncats].name, category);
    atomic_store(&ctx->cats[ctx->ncats].level, level);
    /* Publish the entry only once it is complete: readers do not lock. */
    atomic_store(&ctx->ncats_pub, ++ctx->ncats);
    return 0;
}

bool dl_ctx_tracing(struct dl_ctx *ctx)
{
    return atomic_load_explicit(&ctx->tracing, memory_order_relaxed);
}

int dl_ctx_debug_level(struct dl_ctx *ctx, const char *category)
{
    int level = atomic_load_explicit(&ctx->debug_all, memory_order_relaxed);
    unsigned n = atomic_load_explicit(&ctx->ncats_pub, memory_order_acquire);

    for (unsigned i = 0; i < n; i++) {
        if (strcmp(ctx->cats[i].name, category) == 0) {
            int l = atomic_load_explicit(&ctx->cats[i].level,
                                         memory_order_relaxed);
            return MAX(level, l);
        }
    }
    return level;
}

void dl_log(struct dl_ctx *ctx, int level, const char *category,
            const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!ctx || !ctx->log_fn)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_opaque, level, category, buf);
}

pthread_mutex_t *dl_ctx_driver_lock(struct dl_ctx *ctx, const void *drv)
{
    struct dl_drvlock *l;
    LOCK_GUARD(&ctx->lock);

    for (l = ctx->drvlocks; l; l = l->next)
        if (l->drv == drv)
            return &l->lock;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->drv = drv;
    /* Recursive: a stack may hold two disks of the same driver, one
     * calling the other from inside a request. */
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&l->lock, &a);
    pthread_mutexattr_destroy(&a);
    l->next = ctx->drvlocks;
    ctx->drvlocks = l;
    return &l->lock;
}

const void *dl_zero_buffer(struct dl_ctx *ctx, size_t *ret_len)
{
    *ret_len = ZERO_BUFFER_SIZE;
    return ctx->zeroes;
}
