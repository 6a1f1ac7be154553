/* The FUSE binding: everything that calls libfuse lives in fuse_ops.c and
 * fuse_open_reply.c. */
#ifndef FS_FUSE_BINDING_H
#define FS_FUSE_BINDING_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

struct fs_mount;

struct fs_run_opts {
    const char *mountpoint;
    bool foreground;
    bool debug;            /* libfuse's request trace (-d) */
    const char *fuse_opts; /* -o, or NULL */
    unsigned threads;
    bool allow_other;
    /* called after the mount is up (and the daemon detached) */
    void (*on_mounted)(void *opaque);
    void *opaque;
};

/* Mount, serve until unmounted or signalled (SIGINT, SIGTERM, SIGHUP),
 * drain, unmount. Returns 0 or a negative errno with ret_msg set. */
int fs_fuse_run(struct fs_mount *m, const struct fs_run_opts *o,
                char **ret_msg);

/* Reply to an open with FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES. */
int fs_reply_open_parallel_direct(fuse_req_t req, uint64_t fh);

#endif
