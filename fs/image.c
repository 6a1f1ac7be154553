/* Image files: the rules of DESIGN §3 on top of a disk stack.
 *
 * Reads at or past the end return 0 bytes and are short across it; writes
 * are short across the end and -ENOSPC at or past it, and never grow the
 * disk. Any offset and length: the stack's byte interface does the
 * read-modify-write. A request that meets a size that shrank after the
 * check (-ERANGE from the stack) is clipped again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/pr.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>

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
    /* a hole for lseek reads zeroes: unallocated ciphertext does not */
    bool hole = (type & DL_EXTENT_HOLE) && (type & DL_EXTENT_ZERO);

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

/* The reading ioctls of Linux 6.19's <linux/pr.h>, which this system's
 * headers may not have yet; the layout is upstream's. */
struct fs_pr_read_keys {
    uint32_t generation;
    uint32_t num_keys;
    uint64_t keys_ptr;
};
struct fs_pr_read_reservation {
    uint64_t key;
    uint32_t generation;
    uint32_t type;
};
#define FS_IOC_PR_READ_KEYS _IOWR('p', 206, struct fs_pr_read_keys)
#define FS_IOC_PR_READ_RESERVATION _IOR('p', 207, struct fs_pr_read_reservation)

#define PR_STS_RESERVATION_CONFLICT 24

/* The in-struct of an _IOW ioctl, copied so that it is aligned. */
static int pr_arg(const void *in, size_t in_len, void *arg, size_t len)
{
    if (in_len < len)
        return -EINVAL;
    memcpy(arg, in, len);
    return 0;
}

static int pr_read(struct fs_disk *d, const struct fs_caller *who,
                   unsigned int cmd, const void *in, size_t in_len, void *out,
                   size_t out_size, size_t *out_len)
{
    struct dl_pr_status st = {0};
    int r = d->pr_ops->status(d->pr, &st);

    if (r < 0)
        return r;
    if (cmd == FS_IOC_PR_READ_RESERVATION) {
        struct fs_pr_read_reservation rr = {
            .key = st.type == DL_PR_NONE ? 0 : st.holder_key,
            .generation = st.generation,
            .type = st.type,
        };

        free(st.reg);
        if (out_size < sizeof(rr))
            return -EINVAL;
        memcpy(out, &rr, sizeof(rr));
        *out_len = sizeof(rr);
        return 0;
    }
    struct fs_pr_read_keys rk;
    uint32_t room;

    r = pr_arg(in, in_len, &rk, sizeof(rk));
    if (r == 0 && out_size < sizeof(rk))
        r = -EINVAL;
    room = rk.num_keys;
    if (r == 0 && room && st.n) {
        /* The key list is in the caller's memory, which a FUSE ioctl
         * does not move: write it there directly. */
        size_t n = MIN((size_t)room, st.n);
        uint64_t keys[n];
        struct iovec local = {.iov_base = keys, .iov_len = n * sizeof(*keys)};
        struct iovec remote = {.iov_base = (void *)(uintptr_t)rk.keys_ptr,
                               .iov_len = n * sizeof(*keys)};

        for (size_t i = 0; i < n; i++)
            keys[i] = st.reg[i].key;
        if (who->pid <= 0 ||
            process_vm_writev(who->pid, &local, 1, &remote, 1, 0) !=
                (ssize_t)local.iov_len)
            r = -EFAULT;
    }
    if (r == 0) {
        rk.generation = st.generation;
        rk.num_keys = (uint32_t)st.n;
        memcpy(out, &rk, sizeof(rk));
        *out_len = sizeof(rk);
    }
    free(st.reg);
    return r;
}

/* The IOC_PR_* ioctls, with the results Linux's sd and nvme give. */
static int pr_ioctl(struct fs_handle *h, const struct fs_caller *who,
                    unsigned int cmd, const void *in, size_t in_len,
                    void *out, size_t out_size, size_t *out_len, int *result)
{
    struct fs_disk *d = h->disk;
    const struct dl_pr_ops *ops = d->pr_ops;
    char name[24];
    int r;

    if (!d->pr)
        return -EOPNOTSUPP;
    if (cmd == FS_IOC_PR_READ_KEYS || cmd == FS_IOC_PR_READ_RESERVATION)
        return pr_read(d, who, cmd, in, in_len, out, out_size, out_len);
    /* changing a reservation takes an fd open for writing, or root */
    if (!h->writable && who->uid != 0)
        return -EPERM;
    snprintf(name, sizeof(name), "fd-%" PRIu32, h->initiator);
    switch (cmd) {
    case IOC_PR_REGISTER: {
        struct pr_registration a;

        if ((r = pr_arg(in, in_len, &a, sizeof(a))) < 0)
            return r;
        if (a.flags & ~PR_FL_IGNORE_KEY)
            return -EOPNOTSUPP;
        r = ops->register_key(d->pr, name, a.old_key, a.new_key,
                              (a.flags & PR_FL_IGNORE_KEY) ? DL_PR_F_IGNORE_KEY
                                                           : 0);
        break;
    }
    case IOC_PR_RESERVE:
    case IOC_PR_RELEASE: {
        struct pr_reservation a;

        if ((r = pr_arg(in, in_len, &a, sizeof(a))) < 0)
            return r;
        if (a.flags & ~PR_FL_IGNORE_KEY)
            return -EOPNOTSUPP;
        r = cmd == IOC_PR_RESERVE
                ? ops->reserve(d->pr, name, a.key, a.type, 0)
                : ops->release(d->pr, name, a.key, a.type, 0);
        break;
    }
    case IOC_PR_PREEMPT:
    case IOC_PR_PREEMPT_ABORT: {
        struct pr_preempt a;

        if ((r = pr_arg(in, in_len, &a, sizeof(a))) < 0)
            return r;
        if (a.flags)
            return -EOPNOTSUPP;
        r = ops->preempt(d->pr, name, a.old_key, a.new_key, a.type,
                         cmd == IOC_PR_PREEMPT_ABORT);
        break;
    }
    case IOC_PR_CLEAR: {
        struct pr_clear a;

        if ((r = pr_arg(in, in_len, &a, sizeof(a))) < 0)
            return r;
        if (a.flags)
            return -EOPNOTSUPP;
        r = ops->clear(d->pr, name, a.key);
        break;
    }
    default:
        return -ENOTTY;
    }
    if (r == -EBADE) {
        *result = PR_STS_RESERVATION_CONFLICT;
        return 0;
    }
    return r;
}

int image_ioctl(struct fs_handle *h, const struct fs_caller *who,
                unsigned int cmd, const void *in, size_t in_len, void *out,
                size_t out_size, size_t *out_len, int *result)
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
     * table answers; IOC_PR_* on a layer view is refused the same way. */
    if (_IOC_TYPE(cmd) == 'p' && _IOC_NR(cmd) >= 200 && _IOC_NR(cmd) <= 207)
        return h->target == h->disk->disk
                   ? pr_ioctl(h, who, cmd, in, in_len, out, out_size, out_len,
                              result)
                   : -EOPNOTSUPP;
    return -ENOTTY;
}
