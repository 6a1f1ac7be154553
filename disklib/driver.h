/* The driver interface of disklib: what a backend, decorator or layered
 * disk implements.
 *
 * A driver is a `static const struct dl_driver` with designated
 * initialisers. Every op except `open` may be NULL; the core fills the
 * gaps:
 *  - a driver with exactly one child (a decorator) forwards every missing
 *    op to it;
 *  - a backend without write is read-only; without zero it gets writes of
 *    zeroes; without unmap its unmap does nothing (DL_UNMAP_IGNORED);
 *    without extents all of it is data; without flush it must set
 *    d->no_volatile_cache, or open fails.
 *
 * What the core guarantees to every op: the disk is open; offsets and
 * lengths are multiples of the logical sector size; the range lies inside
 * the current size and does not overflow (so `off + len` and shifts by the
 * sector size are safe); len > 0 and len <= max_io (or max_discard for
 * zero/unmap); flags hold only the bits the op accepts; writes never
 * reach a read-only disk; the thread model is respected.
 *
 * Ops return 0 or a negative errno. A read or write is whole or fails.
 *
 * The core allocates d->state (state_size bytes, zeroed) before open, so
 * close must accept state that open left half-built. */
#ifndef DISKLIB_DRIVER_H
#define DISKLIB_DRIVER_H

#include <pthread.h>
#include <stdatomic.h>

#include "disklib/disklib.h"

enum dl_thread_model {
    DL_THREAD_SERIALIZE_DISK = 0, /* one request at a time per disk */
    DL_THREAD_SERIALIZE_ALL,      /* one at a time across every disk of it */
    DL_THREAD_PARALLEL,           /* any number at once */
};

struct dl_driver {
    const char *name;
    const char *summary;
    size_t state_size;
    enum dl_thread_model thread_model;
    const struct dl_param *params;
    size_t nparams;
    unsigned min_children, max_children;
    /* The children are opened by the core before open (read-only when
     * this disk is), unless the driver opens them itself with
     * dl_open_child (a layered disk decides per layer). */
    bool opens_children;

    /* Phase one: rules that the text alone decides (after types and
     * ranges, which the core checks from the table); may fill values
     * that follow from others (a format from the file name). Optional. */
    int (*validate)(struct dl_node *n, char **ret_msg);
    /* Set at least d->size, d->lss, d->pss for a backend (decorators
     * inherit them from their child, and start with its unmap_behavior,
     * which open may change). flags: DL_OPEN_*. */
    int (*open)(struct dl_disk *d, const struct dl_node *n, unsigned flags,
                char **ret_msg);
    void (*close)(struct dl_disk *d);

    int (*read)(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                const struct dl_req *rq);
    int (*write)(struct dl_disk *d, const void *buf, uint64_t off,
                 uint64_t len, const struct dl_req *rq);
    int (*flush)(struct dl_disk *d, const struct dl_req *rq);
    /* May return -EOPNOTSUPP to have the core write zeroes instead. */
    int (*zero)(struct dl_disk *d, uint64_t off, uint64_t len,
                const struct dl_req *rq);
    int (*unmap)(struct dl_disk *d, uint64_t off, uint64_t len,
                 const struct dl_req *rq);
    int (*prealloc)(struct dl_disk *d, uint64_t off, uint64_t len,
                    const struct dl_req *rq);
    /* Report pieces of [off, off+len) in order; the core clips and merges
     * what is reported, and treats anything not reported as data. */
    int (*extents)(struct dl_disk *d, uint64_t off, uint64_t len,
                   dl_extent_fn fn, void *opaque);
    int (*allocated)(struct dl_disk *d, uint64_t *ret);
    /* Change the size, then call dl_disk_set_size. Called with every other
     * request on this disk drained. */
    int (*resize)(struct dl_disk *d, uint64_t new_size, char **ret_msg);
    /* A child's size changed: return this disk's new size. Without it a
     * single-child disk takes the child's size. */
    uint64_t (*child_resized)(struct dl_disk *d, struct dl_disk *child);

    /* Live settings (delay, error): show prints them, one "name value"
     * per line, into *ret_text (malloc'd); set applies one command line
     * ("read 5ms", "on", ...) atomically for the requests that follow, or
     * fails with a message and changes nothing. Optional. */
    int (*settings_show)(struct dl_disk *d, char **ret_text);
    int (*settings_set)(struct dl_disk *d, const char *cmd, char **ret_msg);

    const struct dl_pr_ops *pr;
    const struct dl_layer_ops *layer;
};

/* The sectors of a request that some layer held: bit i is sector i of
 * the request (counted from the request's first sector). */
struct dl_presence {
    uint64_t *bits;
    uint64_t base; /* sector i of this view is bit base + i */
    uint64_t nsect;
};

static inline void dl_presence_mark(struct dl_presence *p, uint64_t first,
                                    uint64_t n)
{
    for (uint64_t i = p->base + first; i < p->base + first + n; i++)
        p->bits[i / 64] |= 1ull << (i % 64);
}

static inline bool dl_presence_test(const struct dl_presence *p, uint64_t i)
{
    i += p->base;
    return (p->bits[i / 64] >> (i % 64)) & 1;
}

/* What a layer of a layered disk does beyond a plain disk. A driver with
 * this table may leave out read: the core reads what the layer holds and
 * zeroes the rest (the layer seen alone). Its extents report what it does
 * not hold with DL_EXTENT_UNHELD. */
struct dl_layer_ops {
    /* Fill the sectors of [off, off+len) the layer holds and mark them
     * in p (bit 0 = the sector at off); leave the others untouched. */
    int (*read)(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                struct dl_presence *p);
    /* Write only the sectors the layer does not hold yet (filling a read
     * cache without overwriting a write that came in between). May be
     * NULL: the layer cannot be a read cache. */
    int (*write_no_overwrite)(struct dl_disk *d, const void *buf,
                              uint64_t off, uint64_t len);
    /* Forget [off, off+len). next_is_zero: everything below reads zeroes
     * there, so the sectors may simply be dropped; otherwise they must
     * read back zeroes (the unmap behaviour the layer declares). */
    int (*unmap)(struct dl_disk *d, uint64_t off, uint64_t len,
                 bool next_is_zero);
};

struct dl_listener;
struct dl_rangelock_entry;

struct dl_disk {
    const struct dl_driver *drv;
    struct dl_ctx *ctx;
    void *state;
    struct dl_disk *parent;
    struct dl_disk **child;
    size_t nchild;

    /* Geometry: set by a backend's open (decorators that leave lss at 0
     * inherit size, lss, pss and id from their child); lss and pss never
     * change. Later size changes go through dl_disk_set_size. */
    _Atomic uint64_t size;
    uint32_t lss, pss;
    bool read_only;
    bool no_volatile_cache; /* a missing flush is then a no-op */
    bool can_resize;        /* set by the core from the ops */
    bool fixed_size;        /* set by open: resize refused despite the op */
    enum dl_unmap_behavior unmap_behavior;
    uint64_t max_io;      /* largest read/write the driver takes; 0: any */
    uint64_t max_discard; /* largest zero/unmap; 0: any */
    bool has_id;
    uint8_t id[16];
    char *source; /* dl_source(); set with dl_disk_set_source */
    bool opened;  /* drv->open was called: close must run */
    /* For a layer being opened: the layer below it, already open (size
     * and sector size to inherit), or NULL. Valid during open only. */
    struct dl_disk *below;

    /* Enforcement of the thread model: serial_lock is NULL (parallel),
     * &serial (per disk) or the driver's lock owned by the ctx. */
    pthread_mutex_t serial;
    pthread_mutex_t *serial_lock;
    /* Disks that can resize: every request holds it shared, a resize
     * exclusive, so no request runs against a size that changed under it. */
    pthread_rwlock_t resize_lock;

    /* Listeners for size changes; protected by listen_lock. */
    pthread_mutex_t listen_lock;
    struct dl_listener *listeners;

    /* The byte interface's range lock; protected by rl_lock. */
    pthread_mutex_t rl_lock;
    pthread_cond_t rl_cond;
    struct dl_rangelock_entry *rl_head;
    unsigned rl_waiters;
};

/* For drivers: publish a new size after open (tells every listener up
 * the stack). */
void dl_disk_set_size(struct dl_disk *d, uint64_t size);
int dl_disk_set_source(struct dl_disk *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For drivers with opens_children: open child i of n below d into
 * d->child[i]; below is what the child sees as the layer under it. */
int dl_open_child(struct dl_disk *d, const struct dl_node *n, size_t i,
                  unsigned flags, struct dl_disk *below, char **ret_msg);
/* Open a node as a new part below d (not yet in d->child). */
int dl_open_part(struct dl_disk *d, const struct dl_node *n, unsigned flags,
                 struct dl_disk *below, struct dl_disk **ret, char **ret_msg);
/* Close a part opened with dl_open_part or taken out of d->child. */
void dl_close_part(struct dl_disk *part);

/* The layer operations, checked like every request (alignment, range,
 * the layer's thread model). */
int dl_layer_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                  struct dl_presence *p);
int dl_layer_write_no_overwrite(struct dl_disk *d, const void *buf,
                                uint64_t off, uint64_t len);
int dl_layer_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                   bool next_is_zero);

/* Run fn with every request on d drained and held off (d must be a disk
 * whose driver resizes, which gives it the lock). */
int dl_disk_exclusive(struct dl_disk *d, int (*fn)(struct dl_disk *, void *),
                      void *opaque);
/* Zeroes the core keeps for default zero writes: at least 1 MiB, aligned
 * to 4096, never written. */
const void *dl_zero_buffer(struct dl_ctx *ctx, size_t *ret_len);

/* Values of a node's parameters by index in drv->params. */
static inline const char *dl_node_str(const struct dl_node *n, size_t i)
{
    return n->v[i].set ? n->v[i].s : NULL;
}
static inline uint64_t dl_node_u64(const struct dl_node *n, size_t i)
{
    return n->v[i].u;
}
static inline bool dl_node_isset(const struct dl_node *n, size_t i)
{
    return n->v[i].set;
}

#define dl_debug(ctx, cat, ...)                                                \
    do {                                                                       \
        if (dl_ctx_debug_level((ctx), (cat)) >= 1)                             \
            dl_log((ctx), 7 /* LOG_DEBUG */, (cat), __VA_ARGS__);              \
    } while (0)

/* Aligned buffers reused across requests (bounce buffers): get returns a
 * buffer of the pool's size aligned to 4096, put gives it back. */
struct dl_bufpool;
int dl_bufpool_new(size_t bufsize, unsigned keep, struct dl_bufpool **ret);
void dl_bufpool_free(struct dl_bufpool *p);
void *dl_bufpool_get(struct dl_bufpool *p);
void dl_bufpool_put(struct dl_bufpool *p, void *buf);
size_t dl_bufpool_bufsize(const struct dl_bufpool *p);

#endif
