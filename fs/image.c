/* Image files: the rules of DESIGN §3 on top of a disk stack.
 *
 * Reads at or past the end return 0 bytes and are short across it; writes
 * are short across the end and -ENOSPC at or past it, and never grow the
 * disk. Any offset and length: the stack's byte interface does the
 * read-modify-write. A request that meets a size that shrank after the
 * check (-ERANGE from the stack) is clipped again. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>

#include "disklib/util.h"
#include "fs/mount.h"

/* XFS_IOC_DIOINFO: the O_DIRECT alignment QEMU asks for (cache=none). */
struct fs_dioattr {
    uint32_t d_mem;     /* buffer alignment */
    uint32_t d_miniosz; /* smallest I/O, and the offset alignment */
    uint32_t d_maxiosz; /* largest I/O */
};
_Static_assert(sizeof(struct fs_dioattr) == 12, "struct dioattr is 12 bytes");
#define FS_XFS_IOC_DIOINFO _IOR('X', 30, struct fs_dioattr)

int image_open(struct fs_disk *d, int flags)
{
    if ((flags & O_ACCMODE) != O_RDONLY && dl_read_only(d->disk))
        return -EROFS;
    return 0;
}

int64_t image_read(struct fs_handle *h, void *buf, uint64_t off, size_t len)
{
    struct dl_disk *disk = h->target;
    const struct dl_req rq = {.initiator = h->initiator};

    for (int tries = 0; tries < 3; tries++) {
        uint64_t size = dl_size(disk), n;
        int r;

        if (off >= size)
            return 0;
        n = MIN((uint64_t)len, size - off);
        r = dl_read_bytes(disk, buf, off, n, &rq);
        if (r != -ERANGE)
            return r < 0 ? r : (int64_t)n;
    }
    return -EIO;
}

int64_t image_write(struct fs_handle *h, const void *buf, uint64_t off,
                    size_t len)
{
    struct dl_disk *disk = h->target;
    const struct dl_req rq = {.initiator = h->initiator};

    for (int tries = 0; tries < 3; tries++) {
        uint64_t size = dl_size(disk), n;
        int r;

        if (off >= size)
            return len ? -ENOSPC : 0;
        n = MIN((uint64_t)len, size - off);
        r = dl_write_bytes(disk, buf, off, n, &rq);
        if (r != -ERANGE) {
            if (r < 0)
                return r;
            fs_touch(h->disk);
            return (int64_t)n;
        }
    }
    return -ENOSPC;
}

int image_fsync(struct fs_handle *h)
{
    const struct dl_req rq = {.initiator = h->initiator};

    return dl_flush(h->target, &rq);
}

int image_fallocate(struct fs_handle *h, int mode, uint64_t off, uint64_t len)
{
    struct dl_disk *disk = h->target;
    const uint64_t size = dl_size(disk);
    const uint32_t lss = dl_sector_size(disk);
    const bool keep = mode & FALLOC_FL_KEEP_SIZE;
    uint64_t end = off + len < off ? UINT64_MAX : off + len;
    struct dl_req rq = {.initiator = h->initiator};
    int r;

    switch (mode & ~FALLOC_FL_KEEP_SIZE) {
    case FALLOC_FL_PUNCH_HOLE:
        /* The kernel allows a punch only with KEEP_SIZE. Past the end it
         * succeeds doing nothing: OpenVMM probes discard that way. A
         * punched range must read back zeroes: zero with unmap allowed. */
        if (off >= size)
            return 0;
        rq.flags = DL_F_MAY_TRIM;
        r = dl_zero_bytes(disk, off, MIN(end, size) - off, &rq);
        break;
    case FALLOC_FL_ZERO_RANGE:
        if (off >= size)
            return keep ? 0 : -ENOSPC;
        r = dl_zero_bytes(disk, off, MIN(end, size) - off, &rq);
        break;
    case 0:
        if (end > size && !keep)
            return -ENOSPC;
        if (off >= size)
            return 0;
        end = MIN(align_up(MIN(end, size), lss), size);
        return dl_prealloc(disk, align_down(off, lss),
                           end - align_down(off, lss), &rq);
    default:
        return -EOPNOTSUPP;
    }
    if (r == 0)
        fs_touch(h->disk);
    return r == -ERANGE ? 0 : r;
}

struct seek_state {
    uint64_t from;
    bool want_hole;
    bool found;
    uint64_t at;
};

static int seek_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct seek_state *s = opaque;
    bool hole = type & DL_EXTENT_HOLE;

    if (off + len <= s->from || hole != s->want_hole)
        return 0;
    s->found = true;
    s->at = MAX(off, s->from);
    return 1; /* stop the walk */
}

int image_lseek(struct dl_disk *disk, uint64_t off, int whence, uint64_t *ret)
{
    const uint64_t size = dl_size(disk);
    const uint64_t start = align_down(off, dl_sector_size(disk));
    struct seek_state s = {.from = off, .want_hole = whence == SEEK_HOLE};
    int r;

    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        return -EINVAL;
    if (off >= size)
        return -ENXIO;
    r = dl_extents(disk, start, size - start, seek_cb, &s);
    if (r < 0)
        return r;
    if (s.found)
        *ret = s.at;
    else if (whence == SEEK_HOLE)
        *ret = size; /* the end is a hole */
    else
        return -ENXIO;
    return 0;
}

int image_set_size(struct fs_disk *d, uint64_t size, bool has_fh)
{
    struct dl_disk *disk = d->disk;
    const uint64_t cur = dl_size(disk);
    _cleanup_free_ char *msg = NULL;
    int r;

    if (size == cur)
        return 0;
    if (size == 0 && !has_fh)
        return 0; /* open(O_TRUNC): an image is never wiped */
    if (size < cur)
        return -EPERM; /* shrinking drops data: .ctl/NAME/size "shrink" */
    if (dl_read_only(disk))
        return -EROFS;
    if (!dl_can_resize(disk))
        return -EOPNOTSUPP;
    r = dl_resize(disk, size, &msg);
    if (r < 0)
        dl_log(d->m->ctx, 4 /* LOG_WARNING */, "mount",
               "%s: truncate to %llu: %s", d->name, (unsigned long long)size,
               msg ? msg : strerror(-r));
    return r;
}

int image_ioctl(struct fs_handle *h, unsigned int cmd, const void *in,
                size_t in_len, void *out, size_t out_size, size_t *out_len,
                int *result)
{
    struct dl_disk *disk = h->target;

    *out_len = 0;
    *result = 0;
    if (cmd == BLKGETSIZE64) {
        uint64_t size = dl_size(disk);

        if (out_size < sizeof(size))
            return -EINVAL;
        memcpy(out, &size, sizeof(size));
        *out_len = sizeof(size);
        return 0;
    }
    if (cmd == FS_XFS_IOC_DIOINFO) {
        struct fs_dioattr da = {
            .d_mem = 512,
            .d_miniosz = dl_sector_size(disk),
            .d_maxiosz = FS_MAX_IO,
        };

        if (out_size < sizeof(da))
            return -EINVAL;
        memcpy(out, &da, sizeof(da));
        *out_len = sizeof(da);
        return 0;
    }
    /* The IOC_PR_* family ('p', 200-207): only a stack with a reservation
     * table can answer, and none of the parts built so far has one. */
    if (_IOC_TYPE(cmd) == 'p' && _IOC_NR(cmd) >= 200 && _IOC_NR(cmd) <= 207)
        return -EOPNOTSUPP;
    return -ENOTTY;
}
