/* The mount object: every disk of the mount, the tree of files it shows,
 * and the state of open files. The FUSE binding (fuse_ops.c) maps
 * requests onto the functions here and in image.c / ctl.c, which know
 * nothing of libfuse; they return bytes or a negative errno. */
#ifndef FS_MOUNT_H
#define FS_MOUNT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "conf/conf.h"
#include "disklib/disklib.h"

struct fs_mount;
struct dl_bufpool;

enum fs_kind {
    FS_ROOT,
    FS_IMAGE,     /* NAME: the disk as an image file */
    FS_CTL_DIR,   /* .ctl/ */
    FS_CTL_DISKS, /* .ctl/disks */
    FS_DISK_DIR,  /* .ctl/NAME/ */
    FS_CTL_INFO,  /* .ctl/NAME/info */
    FS_CTL_SIZE,  /* .ctl/NAME/size */
    FS_CTL_LAYERS,   /* .ctl/NAME/layers */
    FS_CTL_SNAPSHOT, /* .ctl/NAME/snapshot */
    FS_LAYER_DIR,    /* .ctl/NAME/layer/ */
    FS_LAYER,        /* .ctl/NAME/layer/N: what layer N alone holds */
    FS_CTL_DELAY,    /* .ctl/NAME/delay: the delay part's settings */
    FS_CTL_ERROR,    /* .ctl/NAME/error: the error part's settings */
    FS_CTL_PR,       /* .ctl/NAME/pr: the reservation table */
};

/* layer/N files exist for layers 0 .. FS_MAX_LAYERS-1 that are there */
#define FS_MAX_LAYERS 64

struct fs_disk {
    struct fs_mount *m;
    char *name;
    struct dl_disk *disk;
    struct dl_disk *layered; /* the stack's layered disk, or NULL */
    /* Parts with control files of their own, or NULL */
    struct dl_disk *delay, *error, *pr;
    const struct dl_pr_ops *pr_ops;
    /* The stack's description, kept as snapshots change it (for --state);
     * protected by m->lock. */
    struct dl_node *stack;
    bool read_only;
    uint64_t ino; /* of the image file */
    /* Attributes kept in memory for the life of the mount; protected by
     * m->lock (times are atomics: writes move them without the lock). */
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec atime;
    _Atomic int64_t mtime_ns, ctime_ns;
};

struct fs_node {
    uint64_t ino, parent;
    enum fs_kind kind;
    const char *name; /* points into the disk, a literal or number */
    struct fs_disk *disk;
    unsigned layer;   /* FS_LAYER: its number */
    char number[4];
};

/* One open file description. */
struct fs_handle {
    struct fs_node *node;
    struct fs_disk *disk;
    struct dl_disk *target; /* images: the disk, or the layer of a view */
    bool writable;
    uint32_t initiator; /* "fd-N" */
    struct fs_ctl *ctl; /* control files only */
    struct fs_handle *next, **pprev; /* m->handles, protected by m->lock */
};

struct fs_mount {
    struct dl_ctx *ctx;
    struct fs_disk **disks;
    size_t ndisks;
    struct fs_node *nodes; /* nodes[ino - 1] */
    size_t nnodes;
    pthread_mutex_t lock;
    struct fs_handle *handles; /* protected by lock */
    uid_t uid;
    gid_t gid;
    bool allow_other;
    struct timespec start;
    _Atomic uint32_t next_initiator;
    struct dl_bufpool *pool; /* read buffers */
    char *state_path;        /* --state FILE, or NULL */
    /* Set by the FUSE binding: tell the kernel that the attributes of an
     * inode changed (never called from inside a read handler). */
    void (*inval)(void *opaque, uint64_t ino);
    /* ... and that an entry of a directory is gone */
    void (*inval_entry)(void *opaque, uint64_t parent, const char *name);
    void *inval_opaque;
};

#define FS_ROOT_INO 1
#define FS_MAX_IO (1u << 20)
/* FUSE workers: chosen by the sweep in the README (O_DIRECT backend) */
#define FS_DEFAULT_THREADS 16

/* Open every stack of the configuration (phase two of validation) and
 * build the tree. On failure ret_msg names the disk, the part and the
 * reason, and the return value tells a configuration error (-EINVAL and
 * the like: exit 2) from a runtime one (-EIO, -ENOMEM: exit 1). */
int fs_mount_new(struct dl_ctx *ctx, struct conf *c, const char *state_path,
                 struct fs_mount **ret, char **ret_msg);
/* Record every disk's stack in the state file, atomically. */
int fs_state_save(struct fs_mount *m, char **ret_msg);
/* Replace the stacks of c's disks with those the state file records. */
int fs_state_apply(struct conf *c, const char *state_path,
                   struct conf_diag *diag);
/* Flush every disk; returns the first error (each is logged). */
int fs_mount_flush_all(struct fs_mount *m);
/* Close every disk and free everything, open handles included. */
void fs_mount_free(struct fs_mount *m);

struct fs_node *fs_node_get(struct fs_mount *m, uint64_t ino);
struct fs_node *fs_node_lookup(struct fs_mount *m, uint64_t parent,
                               const char *name);
/* The i-th child of a directory, or NULL past the last. */
struct fs_node *fs_node_child(struct fs_mount *m, uint64_t parent, size_t i);
void fs_node_stat(struct fs_mount *m, const struct fs_node *n,
                  struct stat *st);
/* chmod / chown / utimens, kept in memory. */
int fs_node_setattr(struct fs_mount *m, struct fs_node *n, const struct stat *st,
                    bool mode, bool uid, bool gid, bool atime, bool mtime);

int fs_handle_new(struct fs_mount *m, struct fs_node *n, int flags,
                  struct fs_handle **ret);
void fs_handle_free(struct fs_mount *m, struct fs_handle *h);

void fs_touch(struct fs_disk *d); /* a write: mtime and ctime now */

/* ---- image files (image.c) ---- */

/* 0 or -EROFS for a writable open of a read-only disk */
int image_open(struct fs_disk *d, int flags);
/* bytes read (0 at or past the end), or -errno */
int64_t image_read(struct fs_handle *h, void *buf, uint64_t off, size_t len);
/* bytes written (short when crossing the end), -ENOSPC at or past it */
int64_t image_write(struct fs_handle *h, const void *buf, uint64_t off,
                    size_t len);
int image_fsync(struct fs_handle *h);
int image_fallocate(struct fs_handle *h, int mode, uint64_t off,
                    uint64_t len);
int image_lseek(struct dl_disk *disk, uint64_t off, int whence,
                uint64_t *ret);
/* truncate/ftruncate: grow, or no-op for the size 0 the kernel sends on
 * O_TRUNC (has_fh false); a smaller size is -EPERM. */
int image_set_size(struct fs_disk *d, uint64_t size, bool has_fh);
/* An ioctl: result is the ioctl's return value, out gets out_len bytes. */
struct fs_caller {
    uid_t uid;
    pid_t pid; /* 0 when in another pid namespace */
};
int image_ioctl(struct fs_handle *h, const struct fs_caller *who,
                unsigned int cmd, const void *in, size_t in_len, void *out,
                size_t out_size, size_t *out_len, int *result);

/* ---- control files (ctl.c) ---- */

struct fs_ctl;
int ctl_open(struct fs_mount *m, struct fs_handle *h, int flags);
int64_t ctl_read(struct fs_handle *h, void *buf, size_t len);
int64_t ctl_write(struct fs_handle *h, const void *buf, size_t len);
void ctl_free(struct fs_ctl *c);
/* 0400 for read-only control files, 0600 for ones taking commands */
mode_t ctl_mode(enum fs_kind kind);
/* Is this node there now? (layer/N only while layer N exists) */
bool fs_node_exists(struct fs_mount *m, const struct fs_node *n);

#endif
