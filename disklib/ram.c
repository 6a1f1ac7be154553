/* ram — a sparse layer in memory.
 *
 * Layout: the disk is cut in 4 KiB chunks. A radix tree of 512-entry
 * tables (four levels: chunk numbers up to 2^36, disks up to 256 TiB)
 * leads to leaf tables that hold, per chunk, a pointer to its 4 KiB of
 * data and a mask of the sectors of the chunk the layer holds. A chunk
 * whose held sectors are all zero has no data (written zeroes and
 * unmapped ranges cost no memory); its data is allocated on the first
 * write of something else. Lookups cost four steps per chunk, a run of
 * sectors is one walk over its chunks, and nothing is allocated per
 * sector: metadata is 8 bytes of pointer and one byte of mask per 4 KiB
 * chunk, plus the allocator's header of each chunk (about 0.6 % of the
 * data held).
 *
 * Sectors at or beyond zero_after (lowered when the layer shrinks) are
 * held as zeroes, so that growing again never shows the layer below.
 *
 * Locking: s->lock, a rwlock: reads shared, everything that changes the
 * tree exclusive. The driver is parallel. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

#define CHUNK 4096u
#define FANOUT 512u
#define LEVEL_BITS 9
#define LEVELS 4
#define MAX_CHUNKS (1ull << (LEVEL_BITS * LEVELS))

struct leaf {
    uint8_t *data[FANOUT]; /* NULL: the held sectors are zeroes */
    uint8_t held[FANOUT];  /* bit i: sector i of the chunk is held */
    unsigned used;         /* chunks with held sectors */
};

struct inner {
    void *child[FANOUT]; /* struct inner *, or struct leaf * at the bottom */
    unsigned used;
};

struct ram_state {
    pthread_rwlock_t lock; /* protects everything below */
    struct inner *root;
    uint64_t zero_after;   /* bytes: held as zeroes from here on */
    uint64_t held_sectors;
    uint64_t data_bytes, table_bytes;
    unsigned spc;          /* sectors per chunk */
};

static const struct dl_param ram_params[] = {
    [DL_RAM_SIZE] = {.name = "size", .type = DL_P_SIZE, .min = 512,
                     .help = "size; by default the size of the layer below"},
    [DL_RAM_SECTOR] = {.name = "sector", .type = DL_P_UINT, .min = 512,
                       .max = 4096, .multiple_of = 512,
                       .help = "logical sector size; by default that of the "
                               "layer below, else 512"},
};

/* ---- the tree ---- */

static unsigned slot(uint64_t chunk, int level)
{
    return (unsigned)(chunk >> (LEVEL_BITS * (LEVELS - 1 - level))) &
           (FANOUT - 1);
}

/* The leaf of a chunk; created when create is set (NULL on ENOMEM). */
static struct leaf *leaf_of(struct ram_state *s, uint64_t chunk, bool create)
{
    struct inner *n;

    if (!s->root) {
        if (!create)
            return NULL;
        s->root = calloc(1, sizeof(*s->root));
        if (!s->root)
            return NULL;
        s->table_bytes += sizeof(*s->root);
    }
    n = s->root;
    for (int level = 0; level < LEVELS - 1; level++) {
        unsigned i = slot(chunk, level);

        if (!n->child[i]) {
            size_t sz = level == LEVELS - 2 ? sizeof(struct leaf)
                                            : sizeof(struct inner);

            if (!create)
                return NULL;
            n->child[i] = calloc(1, sz);
            if (!n->child[i])
                return NULL;
            n->used++;
            s->table_bytes += sz;
        }
        n = n->child[i];
    }
    return (struct leaf *)n;
}

static void free_tree(void *p, int level)
{
    if (!p)
        return;
    if (level == LEVELS - 1) {
        struct leaf *l = p;

        for (unsigned i = 0; i < FANOUT; i++)
            free(l->data[i]);
        free(l);
        return;
    }
    for (unsigned i = 0; i < FANOUT; i++)
        free_tree(((struct inner *)p)->child[i], level + 1);
    free(p);
}

/* Sector mask of [first, first+n) within a chunk. */
static uint8_t mask_of(unsigned first, unsigned n)
{
    return (uint8_t)(((1u << n) - 1) << first);
}

static bool is_zero(const uint8_t *p, size_t n)
{
    static const uint8_t z[512];

    while (n >= sizeof(z)) {
        if (memcmp(p, z, sizeof(z)))
            return false;
        p += sizeof(z);
        n -= sizeof(z);
    }
    return !n || !memcmp(p, z, n);
}

static unsigned popcount8(uint8_t v)
{
    return (unsigned)__builtin_popcount(v);
}

/* The chunks of a request: each step covers sectors [first, first+n) of
 * one chunk, at byte pos of the request. */
struct chunk_step {
    uint64_t chunk, pos;
    unsigned first, n;
};

static bool chunk_next(const struct ram_state *s, uint32_t lss, uint64_t off,
                       uint64_t len, struct chunk_step *c)
{
    uint64_t o;

    c->pos += (uint64_t)c->n * lss;
    if (c->pos >= len)
        return false;
    o = off + c->pos;
    c->chunk = o / CHUNK;
    c->first = (unsigned)((o % CHUNK) / lss);
    c->n = (unsigned)MIN((uint64_t)s->spc - c->first, (len - c->pos) / lss);
    return true;
}

/* ---- layer operations ---- */

static int ram_layer_read(struct dl_disk *d, void *buf, uint64_t off,
                          uint64_t len, struct dl_presence *p)
{
    struct ram_state *s = d->state;
    const uint32_t lss = d->lss;
    uint8_t *out = buf;

    struct chunk_step c = {0};

    pthread_rwlock_rdlock(&s->lock);
    while (chunk_next(s, lss, off, len, &c)) {
        struct leaf *l = leaf_of(s, c.chunk, false);
        unsigned ci = (unsigned)(c.chunk % FANOUT);
        uint64_t sec0 = c.pos / lss; /* request-relative */

        for (unsigned k = 0; k < c.n; k++) {
            uint64_t at = c.pos + (uint64_t)k * lss;
            bool held = l && (l->held[ci] >> (c.first + k) & 1);

            if (held && l->data[ci]) {
                memcpy(out + at, l->data[ci] + (c.first + k) * lss, lss);
                dl_presence_mark(p, sec0 + k, 1);
            } else if (held || off + at >= s->zero_after) {
                memset(out + at, 0, lss);
                dl_presence_mark(p, sec0 + k, 1);
            }
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

/* Store [first, first+n) of a chunk from src (NULL: zeroes); with
 * no_overwrite only the sectors not held. Called with the lock held. */
static int store_locked(struct ram_state *s, uint32_t lss, uint64_t chunk,
                        unsigned first, unsigned n, const uint8_t *src,
                        bool no_overwrite)
{
    struct leaf *l = leaf_of(s, chunk, true);
    unsigned ci = (unsigned)(chunk % FANOUT);
    uint8_t m = mask_of(first, n), before;

    if (!l)
        return -ENOMEM;
    before = l->held[ci];
    if (no_overwrite)
        m &= (uint8_t)~before;
    if (!m)
        return 0;
    if (src && !l->data[ci] && is_zero(src, (size_t)n * lss))
        src = NULL; /* zeroes need no data */
    if (src && !l->data[ci]) {
        l->data[ci] = calloc(1, CHUNK);
        if (!l->data[ci])
            return -ENOMEM;
        s->data_bytes += CHUNK;
    }
    if (l->data[ci]) {
        for (unsigned k = 0; k < n; k++) {
            if (!(m >> (first + k) & 1))
                continue;
            if (src)
                memcpy(l->data[ci] + (first + k) * lss, src + k * lss, lss);
            else
                memset(l->data[ci] + (first + k) * lss, 0, lss);
        }
    }
    if (!before)
        l->used++;
    l->held[ci] = before | m;
    s->held_sectors += popcount8(m & (uint8_t)~before);
    return 0;
}

static int ram_store(struct dl_disk *d, const void *buf, uint64_t off,
                     uint64_t len, bool no_overwrite)
{
    struct ram_state *s = d->state;
    const uint32_t lss = d->lss;
    const uint8_t *in = buf;
    struct chunk_step c = {0};
    int r = 0;

    pthread_rwlock_wrlock(&s->lock);
    while (r == 0 && chunk_next(s, lss, off, len, &c))
        r = store_locked(s, lss, c.chunk, c.first, c.n, in ? in + c.pos : NULL,
                         no_overwrite);
    pthread_rwlock_unlock(&s->lock);
    return r;
}

static int ram_write(struct dl_disk *d, const void *buf, uint64_t off,
                     uint64_t len, const struct dl_req *rq)
{
    return ram_store(d, buf, off, len, false);
}

static int ram_write_no_overwrite(struct dl_disk *d, const void *buf,
                                  uint64_t off, uint64_t len)
{
    return ram_store(d, buf, off, len, true);
}

static int ram_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                    const struct dl_req *rq)
{
    return ram_store(d, NULL, off, len, false);
}

/* Drop [first, first+n) of a chunk. Called with the lock held. */
static void drop_locked(struct ram_state *s, uint64_t chunk, unsigned first,
                        unsigned n)
{
    struct leaf *l = leaf_of(s, chunk, false);
    unsigned ci = (unsigned)(chunk % FANOUT);
    uint8_t m;

    if (!l || !(m = l->held[ci] & mask_of(first, n)))
        return;
    s->held_sectors -= popcount8(m);
    l->held[ci] &= (uint8_t)~m;
    if (!l->held[ci]) {
        l->used--;
        if (l->data[ci]) {
            free(l->data[ci]);
            l->data[ci] = NULL;
            s->data_bytes -= CHUNK;
        }
    }
}

static int ram_layer_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                           bool next_is_zero)
{
    struct ram_state *s = d->state;
    struct chunk_step c = {0};

    /* Over data below, forgetting would show that data: hold zeroes
     * instead (they cost no memory). */
    if (!next_is_zero)
        return ram_store(d, NULL, off, len, false);
    pthread_rwlock_wrlock(&s->lock);
    while (chunk_next(s, d->lss, off, len, &c))
        drop_locked(s, c.chunk, c.first, c.n);
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

static int ram_extents(struct dl_disk *d, uint64_t off, uint64_t len,
                       dl_extent_fn fn, void *opaque)
{
    struct ram_state *s = d->state;
    const uint32_t lss = d->lss;
    const uint64_t end = off + len;
    uint64_t pos = off;
    int r = 0;

    /* not held: from below, except past zero_after where it is zero */
#define UNHELD_AT(p)                                                           \
    ((p) >= s->zero_after                                                      \
         ? DL_EXTENT_HOLE | DL_EXTENT_ZERO                                     \
         : DL_EXTENT_HOLE | DL_EXTENT_ZERO | DL_EXTENT_UNHELD)

    pthread_rwlock_rdlock(&s->lock);
    while (pos < end && r == 0) {
        uint64_t chunk = pos / CHUNK;
        struct leaf *l = leaf_of(s, chunk, false);

        if (!l || !l->used) {
            /* skip the whole leaf (FANOUT chunks), up to zero_after */
            uint64_t next = MIN((chunk / FANOUT + 1) * FANOUT * CHUNK, end);

            if (pos < s->zero_after && next > s->zero_after)
                next = s->zero_after;
            r = fn(opaque, pos, next - pos, UNHELD_AT(pos));
            pos = next;
            continue;
        }
        {
            unsigned ci = (unsigned)(chunk % FANOUT);
            unsigned first = (unsigned)((pos % CHUNK) / lss);
            uint64_t stop = MIN((chunk + 1) * CHUNK, end);

            for (unsigned k = first; pos < stop && r == 0; k++) {
                unsigned type = !(l->held[ci] >> k & 1) ? UNHELD_AT(pos)
                                : l->data[ci]           ? 0
                                                        : DL_EXTENT_ZERO;

                r = fn(opaque, pos, lss, type);
                pos += lss;
            }
        }
    }
    pthread_rwlock_unlock(&s->lock);
#undef UNHELD_AT
    return r;
}

static int ram_allocated(struct dl_disk *d, uint64_t *ret)
{
    struct ram_state *s = d->state;

    pthread_rwlock_rdlock(&s->lock);
    *ret = s->held_sectors * d->lss;
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

static int ram_resize(struct dl_disk *d, uint64_t new_size, char **ret_msg)
{
    struct ram_state *s = d->state;
    const uint64_t old = dl_size(d);

    if (new_size / CHUNK >= MAX_CHUNKS) {
        dl_msg(ret_msg, "a ram layer is at most %llu bytes",
               (unsigned long long)(MAX_CHUNKS * CHUNK));
        return -EINVAL;
    }
    pthread_rwlock_wrlock(&s->lock);
    if (new_size < old) {
        for (uint64_t pos = new_size; pos < old;) {
            uint64_t chunk = pos / CHUNK;
            struct leaf *l = leaf_of(s, chunk, false);

            if (!l) {
                pos = (chunk / FANOUT + 1) * FANOUT * CHUNK;
                continue;
            }
            drop_locked(s, chunk, (unsigned)((pos % CHUNK) / d->lss),
                        (unsigned)(s->spc - (pos % CHUNK) / d->lss));
            pos = (chunk + 1) * CHUNK;
        }
        s->zero_after = MIN(s->zero_after, new_size);
    }
    pthread_rwlock_unlock(&s->lock);
    dl_disk_set_size(d, new_size);
    return 0;
}

static int ram_open(struct dl_disk *d, const struct dl_node *n,
                    unsigned flags, char **ret_msg)
{
    struct ram_state *s = d->state;
    uint64_t size;

    pthread_rwlock_init(&s->lock, NULL);
    if (dl_node_isset(n, DL_RAM_SECTOR))
        d->lss = (uint32_t)dl_node_u64(n, DL_RAM_SECTOR);
    else
        d->lss = d->below ? dl_sector_size(d->below) : 512;
    if (dl_node_isset(n, DL_RAM_SIZE))
        size = dl_node_u64(n, DL_RAM_SIZE);
    else if (d->below)
        size = dl_size(d->below);
    else {
        dl_msg(ret_msg, "needs a size (mem:SIZE) or a layer below to take it "
                        "from");
        return -EINVAL;
    }
    if (d->lss > CHUNK) {
        dl_msg(ret_msg, "sector size %" PRIu32 " is larger than %u", d->lss,
               CHUNK);
        return -EINVAL;
    }
    if (size == 0 || size % d->lss) {
        dl_msg(ret_msg, "size %" PRIu64 " is not a positive multiple of the "
               "%" PRIu32 "-byte sector size", size, d->lss);
        return -EINVAL;
    }
    if (size / CHUNK >= MAX_CHUNKS) {
        dl_msg(ret_msg, "a ram layer is at most %llu bytes",
               (unsigned long long)(MAX_CHUNKS * CHUNK));
        return -EINVAL;
    }
    atomic_store(&d->size, size);
    d->pss = d->lss;
    s->spc = CHUNK / d->lss;
    s->zero_after = UINT64_MAX;
    d->no_volatile_cache = true;
    d->unmap_behavior = DL_UNMAP_ZEROES;
    d->max_io = 1u << 20;
    return 0;
}

static void ram_close(struct dl_disk *d)
{
    struct ram_state *s = d->state;

    free_tree(s->root, 0);
    pthread_rwlock_destroy(&s->lock);
}

int dl_ram_usage(struct dl_disk *d, uint64_t *ret_data, uint64_t *ret_tables)
{
    struct ram_state *s;

    if (d->drv != &dl_ram_driver)
        return -EINVAL;
    s = d->state;
    pthread_rwlock_rdlock(&s->lock);
    *ret_data = s->data_bytes;
    *ret_tables = s->table_bytes;
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

static const struct dl_layer_ops ram_layer_ops = {
    .read = ram_layer_read,
    .write_no_overwrite = ram_write_no_overwrite,
    .unmap = ram_layer_unmap,
};

const struct dl_driver dl_ram_driver = {
    .name = "ram",
    .summary = "a sparse layer in memory",
    .state_size = sizeof(struct ram_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = ram_params,
    .nparams = ARRAY_SIZE(ram_params),
    .open = ram_open,
    .close = ram_close,
    .write = ram_write,
    .zero = ram_zero,
    .extents = ram_extents,
    .allocated = ram_allocated,
    .resize = ram_resize,
    .layer = &ram_layer_ops,
};
