/* disklib — disk stacks as a library.
 *
 * A stack is a tree of parts: backends own data (a host file, ...),
 * decorators transform requests on the way down, layered disks combine
 * several layers. A program describes a stack as a tree of dl_node
 * (usually built by conf/ from text), opens it with dl_open(), and does
 * I/O on the disk it gets back. Nothing here knows about FUSE or config
 * files.
 *
 * Conventions:
 *  - every function that can fail returns 0 or a negative errno, one
 *    meaning each: -EINVAL malformed request (unaligned, unknown flag, bad
 *    argument), -ERANGE outside the disk (including offset + length
 *    overflowing 64 bits), -EROFS, -EIO, -ENOSPC (backing store full),
 *    -EOPNOTSUPP, -EBADE (reservation conflict);
 *  - results go to ret_ out-parameters, untouched on failure;
 *  - functions on the control path (open, resize, ...) take a last
 *    "char **ret_msg": on failure it is set once to a human message that
 *    the caller frees. The data path only returns codes.
 *  - all I/O functions are thread-safe; the core enforces each driver's
 *    declared thread model. */
#ifndef DISKLIB_H
#define DISKLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct dl_ctx;
struct dl_disk;
struct dl_driver;

/* ---- context: logging and what the library shares between disks ---- */

/* syslog levels (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG). */
typedef void (*dl_log_fn)(void *opaque, int level, const char *category,
                          const char *msg);

int dl_ctx_new(struct dl_ctx **ret);
void dl_ctx_free(struct dl_ctx *ctx);
void dl_ctx_set_log(struct dl_ctx *ctx, dl_log_fn fn, void *opaque);
/* Debug level per category ("file", "core", "fuse", ... or "all"):
 * 0 off, 1 debug messages, 2 also a trace line for every request through
 * every part of the stack. May be changed at any time. */
int dl_ctx_set_debug(struct dl_ctx *ctx, const char *category, int level);
int dl_ctx_debug_level(struct dl_ctx *ctx, const char *category);
void dl_log(struct dl_ctx *ctx, int level, const char *category,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- stack descriptions ---- */

enum dl_param_type {
    DL_P_STRING,   /* any text */
    DL_P_PATH,     /* a file path; conf makes it absolute */
    DL_P_SIZE,     /* bytes; text form "8G" */
    DL_P_BOOL,     /* true/false; in specs a bare flag ("direct") */
    DL_P_UINT,     /* decimal integer in [min, max] */
    DL_P_ENUM,     /* one of choices[] (u holds the index) */
    DL_P_DURATION, /* nanoseconds; text form needs a unit ("5ms") */
};

/* One parameter of a driver: the same table validates, prints help and
 * prints a resolved stack back in config syntax. */
struct dl_param {
    const char *name;
    enum dl_param_type type;
    const char *help;
    bool required;
    const char *def;              /* default in text form, or NULL (unset) */
    uint64_t min, max;            /* DL_P_UINT, DL_P_SIZE (max 0: none) */
    const char *const *choices;   /* DL_P_ENUM, NULL-terminated */
    uint64_t multiple_of;         /* DL_P_UINT, DL_P_SIZE: 0 or a divisor */
};

struct dl_value {
    bool set;
    uint64_t u; /* SIZE, BOOL, UINT, ENUM index, DURATION */
    char *s;    /* STRING, PATH */
};

/* One part of a stack: a driver, its parameter values (parallel to
 * drv->params) and its children (the disk below a decorator, the layers of
 * a layered disk, top first). */
struct dl_node {
    const struct dl_driver *drv;
    struct dl_value *v;
    struct dl_node **child;
    size_t nchild;
    bool read_only;
    /* As a layer of a layered disk: */
    bool read_cache;    /* filled with what is read from below */
    bool write_through; /* writes continue to the layer below */
    bool snapshot;      /* pushed by a snapshot (revert and commit drop it) */
    bool frozen;        /* made read-only by a snapshot above it */
    /* Where the description came from, for messages:
     * "FILE:LINE: SETTING" or "--disk NAME". May be NULL. */
    char *where;
};

const struct dl_driver *dl_find_driver(const char *name);
/* The registered drivers, NULL-terminated. */
const struct dl_driver *const *dl_drivers(void);
const char *dl_driver_name(const struct dl_driver *drv);
const char *dl_driver_summary(const struct dl_driver *drv);
const struct dl_param *dl_driver_params(const struct dl_driver *drv,
                                        size_t *ret_n);
void dl_driver_children(const struct dl_driver *drv, unsigned *ret_min,
                        unsigned *ret_max);

int dl_node_new(const struct dl_driver *drv, struct dl_node **ret);
void dl_node_free(struct dl_node *n);
int dl_node_add_child(struct dl_node *n, struct dl_node *child);
int dl_node_set_where(struct dl_node *n, const char *where);
/* Index of a parameter by name, or -ENOENT. */
int dl_node_param_index(const struct dl_node *n, const char *name);
/* Set a parameter from its text form. The message names the rule that was
 * broken ("must be a size such as 8G", "must be one of raw, vhd, vhdx"). */
int dl_node_set(struct dl_node *n, const char *name, const char *text,
                char **ret_msg);
/* Set numeric (SIZE, UINT, BOOL, DURATION) and string values directly,
 * with the same range checks. */
int dl_node_set_u64(struct dl_node *n, const char *name, uint64_t v,
                    char **ret_msg);
/* Fill defaults and check required parameters and the driver's own
 * text-only rules (phase one of validation); recursive. */
int dl_node_validate(struct dl_node *n, char **ret_msg);
/* The text form of a value ("8G", "true", "raw", "5ms", a path). */
int dl_param_format(const struct dl_param *p, const struct dl_value *v,
                    char **ret);
/* The text form of a parameter type's rule, for messages and help. */
const char *dl_param_rule(const struct dl_param *p, char *buf, size_t len);

/* ---- opening ---- */

#define DL_OPEN_RDONLY (1u << 0)
/* Validate by opening without side effects: nothing is created and the
 * stack is opened read-only ("diskstack check"). */
#define DL_OPEN_DRY_RUN (1u << 1)

int dl_open(struct dl_ctx *ctx, const struct dl_node *n, unsigned flags,
            struct dl_disk **ret, char **ret_msg);
/* Closes the whole stack; does not flush (call dl_flush first). */
void dl_close(struct dl_disk *d);

/* ---- properties ---- */

enum dl_unmap_behavior {
    DL_UNMAP_IGNORED,     /* unmap does nothing */
    DL_UNMAP_UNSPECIFIED, /* unmapped ranges may read back anything */
    DL_UNMAP_ZEROES,      /* unmapped ranges read back zeroes */
};

uint64_t dl_size(const struct dl_disk *d); /* read live */
uint32_t dl_sector_size(const struct dl_disk *d);
uint32_t dl_physical_sector_size(const struct dl_disk *d);
bool dl_read_only(const struct dl_disk *d);
bool dl_can_resize(const struct dl_disk *d);
enum dl_unmap_behavior dl_unmap_behavior(const struct dl_disk *d);
const char *dl_unmap_behavior_name(enum dl_unmap_behavior b);
const char *dl_kind(const struct dl_disk *d); /* the driver's name */
/* One line about this part alone: "path=/x/y.img direct=off", may be "". */
const char *dl_source(const struct dl_disk *d);
size_t dl_nchildren(const struct dl_disk *d);
struct dl_disk *dl_child(const struct dl_disk *d, size_t i);
/* Optional 16-byte id (VHD unique id, ...); false when the disk has none. */
bool dl_disk_id(const struct dl_disk *d, uint8_t ret[16]);

/* ---- I/O ----
 *
 * Offsets and lengths are in bytes and must be multiples of the logical
 * sector size (else -EINVAL); the range must lie inside the current size
 * (else -ERANGE, also when offset + length overflows); a zero-length
 * request inside or at the end succeeds. Writes, zero and unmap on a
 * read-only disk fail with -EROFS before any driver sees them. A request
 * is done whole or fails: never a short transfer. */

#define DL_F_FUA (1u << 0)      /* write, zero: durable on return */
#define DL_F_MAY_TRIM (1u << 1) /* zero: may unmap where that reads zeroes */

/* Who issues a request and how. initiator 0 is the daemon itself; the
 * mount gives each open file description a number (reservations). */
struct dl_req {
    uint32_t flags;
    uint32_t initiator;
};

int dl_pread(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
             const struct dl_req *rq);
int dl_pwrite(struct dl_disk *d, const void *buf, uint64_t off,
              uint64_t len, const struct dl_req *rq);
int dl_flush(struct dl_disk *d, const struct dl_req *rq);
int dl_zero(struct dl_disk *d, uint64_t off, uint64_t len,
            const struct dl_req *rq);
int dl_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
             const struct dl_req *rq);
/* Reserve space for [off, off+len) where the backend can (fallocate mode
 * 0); success when it cannot. */
int dl_prealloc(struct dl_disk *d, uint64_t off, uint64_t len,
                const struct dl_req *rq);

/* Extents (block status): fn is called for consecutive pieces covering
 * [off, off+len) in order, each with a type. A nonzero return from fn
 * stops the walk and is returned. */
#define DL_EXTENT_HOLE (1u << 0) /* not allocated */
#define DL_EXTENT_ZERO (1u << 1) /* reads as zeroes */
/* A layer does not hold it: in a layered disk it comes from below
 * (alone, the layer reads it as zeroes: HOLE | ZERO | UNHELD). */
#define DL_EXTENT_UNHELD (1u << 2)
typedef int (*dl_extent_fn)(void *opaque, uint64_t off, uint64_t len,
                            unsigned type);
int dl_extents(struct dl_disk *d, uint64_t off, uint64_t len, dl_extent_fn fn,
               void *opaque);
/* Bytes allocated in the whole disk (what st_blocks reports). */
int dl_allocated(struct dl_disk *d, uint64_t *ret);

/* The byte interface, for callers with any alignment (a FUSE file): reads
 * and writes are split into an aligned middle and read-modify-write of
 * the partial sectors at the edges, under a range lock, so that two
 * unaligned writes into one sector never lose each other's bytes. The
 * range rules are those above; only alignment is relaxed. */
int dl_read_bytes(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                  const struct dl_req *rq);
int dl_write_bytes(struct dl_disk *d, const void *buf, uint64_t off,
                   uint64_t len, const struct dl_req *rq);
/* Zero a byte range (partial sectors by read-modify-write). With
 * DL_F_MAY_TRIM the whole sectors may be unmapped where that reads back
 * zeroes. */
int dl_zero_bytes(struct dl_disk *d, uint64_t off, uint64_t len,
                  const struct dl_req *rq);

/* ---- resize ---- */

/* Grow or shrink to new_size (a multiple of the logical sector size):
 * -EOPNOTSUPP when no part of the stack can, -EROFS on a read-only disk.
 * Waits for requests in flight at the resizing part. */
int dl_resize(struct dl_disk *d, uint64_t new_size, char **ret_msg);

/* Called after the size of d changed, from whichever thread changed it
 * (a resize call, or a backend noticing a change below it). */
typedef void (*dl_resize_fn)(void *opaque, struct dl_disk *d,
                             uint64_t new_size);
int dl_add_resize_listener(struct dl_disk *d, dl_resize_fn fn, void *opaque);
void dl_remove_resize_listener(struct dl_disk *d, dl_resize_fn fn,
                               void *opaque);

/* ---- persistent reservations ----
 *
 * A disk may have a reservation table (a decorator emulating SPC-4, or a
 * backend passing them through). Types are numbered as Linux enum pr_type
 * does (1-6); the SCSI type codes differ. */
enum dl_pr_type {
    DL_PR_NONE = 0,
    DL_PR_WRITE_EXCLUSIVE = 1,
    DL_PR_EXCLUSIVE_ACCESS = 2,
    DL_PR_WRITE_EXCLUSIVE_REG_ONLY = 3,
    DL_PR_EXCLUSIVE_ACCESS_REG_ONLY = 4,
    DL_PR_WRITE_EXCLUSIVE_ALL_REGS = 5,
    DL_PR_EXCLUSIVE_ACCESS_ALL_REGS = 6,
};
#define DL_PR_F_IGNORE_KEY (1u << 0) /* register: ignore the current key */
#define DL_PR_F_PTPL (1u << 1)       /* register: persist through power loss */

struct dl_pr_registrant {
    char initiator[64];
    uint64_t key;
    bool holder;
};
struct dl_pr_status {
    uint32_t generation;
    enum dl_pr_type type; /* DL_PR_NONE: no reservation */
    uint64_t holder_key;
    bool ptpl;
    size_t n;
    struct dl_pr_registrant *reg; /* n entries; free() it */
};

/* The operations return -EBADE for a reservation conflict. `who` names
 * the initiator ("fd-3", "ctl", "hostA"). */
struct dl_pr_ops {
    /* bit (1 << type) for each type supported, plus (1 << 7) for PTPL */
    unsigned (*capabilities)(struct dl_disk *d);
    int (*register_key)(struct dl_disk *d, const char *who, uint64_t old_key,
                        uint64_t new_key, unsigned flags);
    int (*reserve)(struct dl_disk *d, const char *who, uint64_t key,
                   enum dl_pr_type type, unsigned flags);
    int (*release)(struct dl_disk *d, const char *who, uint64_t key,
                   enum dl_pr_type type, unsigned flags);
    int (*clear)(struct dl_disk *d, const char *who, uint64_t key);
    int (*preempt)(struct dl_disk *d, const char *who, uint64_t old_key,
                   uint64_t new_key, enum dl_pr_type type, bool abort);
    int (*status)(struct dl_disk *d, struct dl_pr_status *ret);
};
#define DL_PR_CAP_PTPL (1u << 7)

/* The part of the stack that serves reservations for d (found through
 * parts that forward them), or NULL when the stack has none. */
struct dl_disk *dl_pr_disk(struct dl_disk *d,
                           const struct dl_pr_ops **ret_ops);

/* ---- live settings ----
 *
 * Parts such as delay and error have settings that can change while the
 * disk is in use. */

/* The first part of kind `kind` (a driver name) from the top of d's
 * stack, following decorators down to the first part with other than one
 * child; NULL when there is none. */
struct dl_disk *dl_find_part(struct dl_disk *d, const char *kind);
/* The part's settings as text, "name value" per line (malloc'd):
 * -EOPNOTSUPP when the part has none. */
int dl_settings_show(struct dl_disk *part, char **ret_text);
/* Apply one command line to the part's settings; on failure nothing
 * changes and *ret_msg says why. */
int dl_settings_set(struct dl_disk *part, const char *cmd, char **ret_msg);

/* ---- layered disks ----
 *
 * Layers are numbered from the bottom (0: the base); a number does not
 * change while its layer exists. */

struct dl_layer_desc {
    unsigned number;
    const char *kind, *source; /* valid while the layer exists */
    uint64_t size, held;       /* held: bytes this layer holds */
    uint64_t mem_data, mem_tables; /* ram layers: memory used, in bytes */
    bool read_cache, write_through, read_only, frozen, snapshot;
};

/* The layered disk of a stack (below decorators), or NULL. */
struct dl_disk *dl_layered_of(struct dl_disk *d);
size_t dl_layer_count(struct dl_disk *layered);
int dl_layer_describe(struct dl_disk *layered, unsigned number,
                      struct dl_layer_desc *ret);
/* Layer `number` alone, as a disk (what it holds, zeroes elsewhere),
 * kept while in use: revert and commit of it fail with -EBUSY until put. */
struct dl_disk *dl_layer_view_get(struct dl_disk *layered, unsigned number);
void dl_layer_view_put(struct dl_disk *layered, unsigned number);
/* Push an empty layer (size and sector size from the top; usually a ram
 * or sqlite node without size) and freeze the old top read-only. */
int dl_layered_snapshot(struct dl_disk *layered, const struct dl_node *layer,
                        char **ret_msg);
/* Merge the top layer (pushed by a snapshot) into the one below; drop it. */
int dl_layered_commit(struct dl_disk *layered, char **ret_msg);
/* Drop the top layer (pushed by a snapshot) and what it holds. */
int dl_layered_revert(struct dl_disk *layered, char **ret_msg);

/* Memory of a ram layer: its data chunks and its tables, in bytes. */
int dl_ram_usage(struct dl_disk *d, uint64_t *ret_data, uint64_t *ret_tables);

/* ---- description ---- */

/* Print the opened stack, one part per line, indented by depth:
 * kind, source, size, sector sizes, flags. */
void dl_describe(struct dl_disk *d, FILE *out, int indent);

#endif
