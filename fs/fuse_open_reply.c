/* The open reply for image files, built by hand.
 *
 * Every open of an image must carry FOPEN_DIRECT_IO together with
 * FOPEN_PARALLEL_DIRECT_WRITES: without the second flag the kernel
 * serializes all writers of the inode, and a single fd opened without
 * both drops every writer of the file back to one request in flight.
 * libfuse 3.14 has no field for FOPEN_PARALLEL_DIRECT_WRITES, so the
 * fuse_open_out reply is sent as a raw payload. This file keeps the
 * kernel's header (<linux/fuse.h>) apart from libfuse's. */
#include <linux/fuse.h>
#include <sys/uio.h>

#include "fs/fuse_binding.h"

int fs_reply_open_parallel_direct(fuse_req_t req, uint64_t fh)
{
    struct fuse_open_out out = {
        .fh = fh,
        .open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES,
    };
    struct iovec iov = {.iov_base = &out, .iov_len = sizeof(out)};

    return fuse_reply_iov(req, &iov, 1);
}
