/* file — a raw host file as a disk.
 *
 * Layout: disk byte N is file byte N; the disk's size is the file's size
 * (a multiple of the logical sector size, else the open is refused).
 *
 * Data path: pread/pwrite straight into the caller's buffer; writes with
 * FUA use RWF_DSYNC; flush is fdatasync (data and size, what a disk
 * needs). With `direct` the file is opened O_DIRECT: offsets and lengths
 * are sector aligned already (the core guarantees it; open refuses a
 * sector size below the file system's O_DIRECT alignment), and a caller's
 * buffer that is not aligned for O_DIRECT is bounced through a pooled
 * aligned buffer (requests are capped at the pool's buffer size).
 *
 * Unmap punches holes when a probe at open shows the file system can
 * (then unmapped ranges read back zeroes); zero uses ZERO_RANGE, or a
 * punch where allowed. Extents come from the file's own SEEK_DATA /
 * SEEK_HOLE, so holes in the host file are holes of the disk. Resize is
 * ftruncate; the core drains requests around it.
 *
 * Locking: none of its own; every op is a positional system call on one
 * fd, so the driver is fully parallel. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/stat.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "disklib/drivers.h"
#include "disklib/uring.h"
#include "disklib/util.h"

#define FILE_MAX_DIRECT_IO (1u << 20)
/* O_DIRECT reads above this go to the host as pieces of this size in
 * flight together (the device delivers more that way; see bench/) */
#define FILE_READ_PIECE (256u << 10)

struct file_state {
    int fd;
    uint64_t base;            /* offset= : where the disk starts in the file */
    bool window;              /* offset= or length= given */
    bool direct;
    uint32_t mem_align;       /* O_DIRECT buffer alignment */
    bool can_punch;
    _Atomic bool no_zero_range; /* ZERO_RANGE failed once: stop trying */
    struct dl_bufpool *pool;  /* bounce buffers for O_DIRECT */
    struct dl_uring_pool *uring; /* large O_DIRECT reads; NULL: none */
};

static const char *const file_formats[] = {"raw", "vhd", "vhdx", NULL};
enum { FORMAT_RAW, FORMAT_VHD, FORMAT_VHDX };

static const struct dl_param file_params[] = {
    [DL_FILE_PATH] = {.name = "path", .type = DL_P_PATH, .required = true,
                      .help = "the host file"},
    [DL_FILE_DIRECT] = {.name = "direct", .type = DL_P_BOOL, .def = "false",
                        .help = "open the file O_DIRECT (bypass the host "
                                "page cache)"},
    [DL_FILE_CREATE] = {.name = "create", .type = DL_P_SIZE, .min = 512,
                        .help = "create the file with this size when it is "
                                "missing; an existing file must have this "
                                "size and is never truncated"},
    [DL_FILE_FORMAT] = {.name = "format", .type = DL_P_ENUM,
                        .choices = file_formats,
                        .help = "image format; by default from the "
                                "extension (.vhd, .vhdx), else raw"},
    [DL_FILE_SECTOR] = {.name = "sector", .type = DL_P_UINT, .def = "512",
                        .min = 512, .max = 4096, .multiple_of = 512,
                        .help = "logical sector size in bytes"},
    [DL_FILE_OFFSET] = {.name = "offset", .type = DL_P_SIZE,
                        .help = "serve the file from this byte on (a window: "
                                "the payload of a container)"},
    [DL_FILE_LENGTH] = {.name = "length", .type = DL_P_SIZE, .min = 512,
                        .help = "serve this many bytes (a window; by default "
                                "up to the end of the file)"},
};

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static int file_validate(struct dl_node *n, char **ret_msg)
{
    const char *path = dl_node_str(n, DL_FILE_PATH);
    uint64_t sector = dl_node_u64(n, DL_FILE_SECTOR);
    char a[24], b[24];
    int r;

    if (!dl_node_isset(n, DL_FILE_FORMAT)) {
        const char *fmt = has_suffix(path, ".vhdx") ? "vhdx"
                          : has_suffix(path, ".vhd") ? "vhd"
                                                      : "raw";

        r = dl_node_set(n, "format", fmt, ret_msg);
        if (r < 0)
            return r;
        if (has_suffix(path, ".iso"))
            n->read_only = true;
    }
    switch (dl_node_u64(n, DL_FILE_FORMAT)) {
    case FORMAT_VHD:
    case FORMAT_VHDX:
        dl_msg(ret_msg,
               "'%s' is a %s image, and this build has no %s driver; it is "
               "not served as raw bytes (format=raw does that on purpose)",
               path, file_formats[dl_node_u64(n, DL_FILE_FORMAT)],
               file_formats[dl_node_u64(n, DL_FILE_FORMAT)]);
        return -EOPNOTSUPP;
    default:
        break;
    }
    if (dl_node_isset(n, DL_FILE_CREATE) &&
        dl_node_u64(n, DL_FILE_CREATE) % sector) {
        dl_msg(ret_msg, "create=%s is not a multiple of the %s-byte sector",
               dl_format_size(dl_node_u64(n, DL_FILE_CREATE), a, sizeof(a)),
               dl_format_size(sector, b, sizeof(b)));
        return -EINVAL;
    }
    for (size_t i = DL_FILE_OFFSET; i <= DL_FILE_LENGTH; i++) {
        if (!dl_node_isset(n, i))
            continue;
        if (dl_node_isset(n, DL_FILE_CREATE)) {
            dl_msg(ret_msg, "create= makes a whole file; it does not go "
                            "with offset= or length=");
            return -EINVAL;
        }
        if (dl_node_u64(n, i) % sector) {
            dl_msg(ret_msg, "%s=%" PRIu64 " is not a multiple of the "
                            "%" PRIu64 "-byte sector",
                   file_params[i].name, dl_node_u64(n, i), sector);
            return -EINVAL;
        }
    }
    return 0;
}

static int io_error(struct dl_disk *d, const char *op, int e)
{
    dl_debug(d->ctx, "file", "%s: %s", op, strerror(e));
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return -ENOSPC;
    case EROFS:
        return -EROFS;
    default:
        return -EIO;
    }
}

/* Open the file, creating it when create= says so. */
static int file_open_fd(const struct dl_node *n, unsigned flags, int oflags,
                        bool *ret_missing, char **ret_msg)
{
    const char *path = dl_node_str(n, DL_FILE_PATH);
    bool create = dl_node_isset(n, DL_FILE_CREATE);
    int fd;

    *ret_missing = false;
    for (;;) {
        fd = open(path, oflags);
        if (fd >= 0 || errno != ENOENT || !create)
            break;
        if (flags & (DL_OPEN_RDONLY | DL_OPEN_DRY_RUN)) {
            *ret_missing = true;
            return -ENOENT;
        }
        fd = open(path, oflags | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            if (ftruncate(fd, (off_t)dl_node_u64(n, DL_FILE_CREATE)) < 0) {
                int e = errno;

                close(fd);
                unlink(path);
                dl_msg(ret_msg, "cannot set the size of the new file: %s",
                       strerror(e));
                return -e;
            }
            return fd;
        }
        if (errno != EEXIST)
            break;
        /* created by someone else in between: open it as it is */
    }
    if (fd < 0) {
        int e = errno;

        if (e == EINVAL && (oflags & O_DIRECT))
            dl_msg(ret_msg, "the file system does not support O_DIRECT "
                            "(drop ;direct)");
        else
            dl_msg(ret_msg, "cannot open: %s", strerror(e));
        return -e;
    }
    return fd;
}

static int file_open(struct dl_disk *d, const struct dl_node *n,
                     unsigned flags, char **ret_msg)
{
    struct file_state *s = d->state;
    const char *path = dl_node_str(n, DL_FILE_PATH);
    bool rdonly = flags & (DL_OPEN_RDONLY | DL_OPEN_DRY_RUN);
    uint32_t lss = (uint32_t)dl_node_u64(n, DL_FILE_SECTOR);
    char a[24], b[24];
    bool missing;
    struct statx stx;
    int oflags, r;

    s->fd = -1;
    s->direct = dl_node_u64(n, DL_FILE_DIRECT);
    oflags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC |
             (s->direct ? O_DIRECT : 0);
    d->lss = lss;
    dl_disk_set_source(d, "path=%s%s", path, s->direct ? " direct" : "");

    r = file_open_fd(n, flags, oflags, &missing, ret_msg);
    if (missing && (flags & DL_OPEN_DRY_RUN)) {
        /* "check": it would be created at mount time */
        atomic_store(&d->size, dl_node_u64(n, DL_FILE_CREATE));
        d->pss = lss;
        d->no_volatile_cache = true;
        return 0;
    }
    if (missing) {
        dl_msg(ret_msg, "does not exist (create= makes it only when the "
                        "disk is opened for writing)");
        return -ENOENT;
    }
    if (r < 0)
        return r;
    s->fd = r;

    if (statx(s->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN,
              &stx) < 0) {
        dl_msg(ret_msg, "cannot stat: %s", strerror(errno));
        return -errno;
    }
    if (!S_ISREG(stx.stx_mode)) {
        dl_msg(ret_msg, "not a regular file");
        return -EINVAL;
    }
    if (dl_node_isset(n, DL_FILE_CREATE) &&
        stx.stx_size != dl_node_u64(n, DL_FILE_CREATE)) {
        dl_msg(ret_msg,
               "exists with size %" PRIu64 " (%s) but create= asks for %" PRIu64
               " (%s); an existing file is never truncated",
               (uint64_t)stx.stx_size,
               dl_format_size(stx.stx_size, a, sizeof(a)),
               dl_node_u64(n, DL_FILE_CREATE),
               dl_format_size(dl_node_u64(n, DL_FILE_CREATE), b, sizeof(b)));
        return -EINVAL;
    }
    if (stx.stx_size % lss) {
        dl_msg(ret_msg,
               "size %" PRIu64 " is not a multiple of the %" PRIu32
               "-byte sector size",
               (uint64_t)stx.stx_size, lss);
        return -EINVAL;
    }
    s->base = dl_node_u64(n, DL_FILE_OFFSET);
    s->window = dl_node_isset(n, DL_FILE_OFFSET) ||
                dl_node_isset(n, DL_FILE_LENGTH);
    if (s->window) {
        uint64_t len = dl_node_isset(n, DL_FILE_LENGTH)
                           ? dl_node_u64(n, DL_FILE_LENGTH)
                           : stx.stx_size - MIN(s->base, stx.stx_size);

        if (s->base > stx.stx_size || len > stx.stx_size - s->base ||
            len == 0) {
            dl_msg(ret_msg,
                   "the window offset=%" PRIu64 " length=%" PRIu64
                   " does not lie inside the file's %" PRIu64 " bytes",
                   s->base, len, (uint64_t)stx.stx_size);
            return -EINVAL;
        }
        stx.stx_size = len;
        /* a window is a fixed part of the file */
        d->fixed_size = true;
        dl_disk_set_source(d, "path=%s%s offset=%" PRIu64 " length=%" PRIu64,
                           path, s->direct ? " direct" : "", s->base, len);
    }
    atomic_store(&d->size, stx.stx_size);
    d->pss = MIN(stx.stx_blksize, 4096u);
    if (d->pss < lss || !is_pow2(d->pss))
        d->pss = lss;

    if (s->direct) {
        uint32_t offset_align = 512;

        s->mem_align = 4096;
        if ((stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
            offset_align = stx.stx_dio_offset_align;
            s->mem_align = MAX(stx.stx_dio_mem_align, 1u);
        }
        if (offset_align > lss) {
            dl_msg(ret_msg,
                   "O_DIRECT on this file system needs %" PRIu32
                   "-byte aligned I/O; use ;sector=%" PRIu32 " or drop ;direct",
                   offset_align, offset_align);
            return -EINVAL;
        }
        r = dl_bufpool_new(FILE_MAX_DIRECT_IO, 16, &s->pool);
        if (r < 0)
            return r;
        d->max_io = FILE_MAX_DIRECT_IO;
        /* without io_uring, large reads are single preads */
        if (dl_uring_pool_new(FILE_MAX_DIRECT_IO / FILE_READ_PIECE,
                              &s->uring) < 0)
            s->uring = NULL;
    }

    if (!rdonly) {
        /* A punch past the end changes nothing and tells whether the file
         * system punches holes. */
        uint64_t end = align_up(stx.stx_size, 4096);

        s->can_punch = fallocate(s->fd, FALLOC_FL_PUNCH_HOLE |
                                 FALLOC_FL_KEEP_SIZE, (off_t)end, 4096) == 0;
    }
    d->unmap_behavior = s->can_punch ? DL_UNMAP_ZEROES : DL_UNMAP_IGNORED;
    return 0;
}

static void file_close(struct dl_disk *d)
{
    struct file_state *s = d->state;

    dl_uring_pool_free(s->uring);
    if (s->fd >= 0)
        close(s->fd);
    dl_bufpool_free(s->pool);
}

static inline bool needs_bounce(const struct file_state *s, const void *buf)
{
    return s->direct && ((uintptr_t)buf & (s->mem_align - 1));
}

static int file_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                     const struct dl_req *rq)
{
    struct file_state *s = d->state;
    uint8_t *b = buf;
    uint64_t done = 0;
    int r = 0;

    off += s->base;
    if (needs_bounce(s, buf)) {
        b = dl_bufpool_get(s->pool);
        if (!b)
            return -ENOMEM;
    }
    if (s->uring && len > FILE_READ_PIECE) {
        r = dl_uring_pread_split(s->uring, s->fd, b, len, off,
                                 FILE_READ_PIECE);
        if (r == 0)
            done = len;
        else if (r != -EAGAIN)
            r = io_error(d, "read", -r);
        else
            r = 0;
    }
    while (r == 0 && done < len) {
        ssize_t n = pread(s->fd, b + done, len - done, (off_t)(off + done));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = io_error(d, "read", errno);
            break;
        }
        if (n == 0) {
            /* the file is shorter than the disk: changed behind our back */
            dl_debug(d->ctx, "file", "read: end of file at %" PRIu64,
                     off + done);
            r = -EIO;
            break;
        }
        done += (uint64_t)n;
    }
    if (b != buf) {
        if (r == 0)
            memcpy(buf, b, len);
        dl_bufpool_put(s->pool, b);
    }
    return r;
}

static int file_write(struct dl_disk *d, const void *buf, uint64_t off,
                      uint64_t len, const struct dl_req *rq)
{
    struct file_state *s = d->state;
    const uint8_t *b = buf;
    uint8_t *bounce = NULL;
    uint64_t done = 0;
    int r = 0;

    off += s->base;
    if (needs_bounce(s, buf)) {
        bounce = dl_bufpool_get(s->pool);
        if (!bounce)
            return -ENOMEM;
        memcpy(bounce, buf, len);
        b = bounce;
    }
    while (done < len) {
        struct iovec iov = {.iov_base = (void *)(b + done),
                            .iov_len = len - done};
        ssize_t n = pwritev2(s->fd, &iov, 1, (off_t)(off + done),
                             (rq->flags & DL_F_FUA) ? RWF_DSYNC : 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = io_error(d, "write", n < 0 ? errno : EIO);
            break;
        }
        done += (uint64_t)n;
    }
    dl_bufpool_put(s->pool, bounce);
    return r;
}

static int file_flush(struct dl_disk *d, const struct dl_req *rq)
{
    struct file_state *s = d->state;

    if (s->fd >= 0 && fdatasync(s->fd) < 0)
        return io_error(d, "flush", errno);
    return 0;
}

/* off in the file's own coordinates (the window's base added) */
static int file_punch(struct dl_disk *d, uint64_t off, uint64_t len)
{
    struct file_state *s = d->state;

    if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) < 0)
        return io_error(d, "punch", errno);
    return 0;
}

static int file_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                      const struct dl_req *rq)
{
    struct file_state *s = d->state;

    if (!s->can_punch)
        return 0;
    return file_punch(d, s->base + off, len);
}

static int file_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                     const struct dl_req *rq)
{
    struct file_state *s = d->state;
    int r;

    off += s->base;
    if ((rq->flags & DL_F_MAY_TRIM) && s->can_punch) {
        r = file_punch(d, off, len);
    } else if (!atomic_load(&s->no_zero_range)) {
        if (fallocate(s->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                      (off_t)off, (off_t)len) == 0) {
            r = 0;
        } else if (errno == EOPNOTSUPP || errno == ENOSYS) {
            atomic_store(&s->no_zero_range, true);
            return -EOPNOTSUPP;
        } else {
            return io_error(d, "zero", errno);
        }
    } else {
        return -EOPNOTSUPP;
    }
    if (r == 0 && (rq->flags & DL_F_FUA))
        r = file_flush(d, rq);
    return r;
}

static int file_prealloc(struct dl_disk *d, uint64_t off, uint64_t len,
                         const struct dl_req *rq)
{
    struct file_state *s = d->state;

    if (fallocate(s->fd, FALLOC_FL_KEEP_SIZE, (off_t)(s->base + off),
                  (off_t)len) < 0 &&
        errno != EOPNOTSUPP)
        return io_error(d, "prealloc", errno);
    return 0;
}

static int file_extents(struct dl_disk *d, uint64_t off, uint64_t len,
                        dl_extent_fn fn, void *opaque)
{
    struct file_state *s = d->state;
    const uint64_t base = s->base, end = base + off + len;
    uint64_t pos = base + off;
    int r;

    while (pos < end) {
        off_t data = lseek(s->fd, (off_t)pos, SEEK_DATA), hole;
        uint64_t dstart, dend;

        if (data < 0 && errno == ENXIO)
            return fn(opaque, pos - base, end - pos,
                      DL_EXTENT_HOLE | DL_EXTENT_ZERO);
        if (data < 0)
            return errno == EINVAL || errno == EOPNOTSUPP
                       ? 0 /* no hole support: all data */
                       : io_error(d, "seek", errno);
        /* Host blocks may be smaller than our sectors: round so that a
         * partly written sector counts as data. */
        dstart = MAX(align_down((uint64_t)data, d->lss), pos);
        if (dstart > pos) {
            r = fn(opaque, pos - base, MIN(dstart, end) - pos,
                   DL_EXTENT_HOLE | DL_EXTENT_ZERO);
            if (r)
                return r;
            if (dstart >= end)
                return 0;
        }
        hole = lseek(s->fd, (off_t)dstart, SEEK_HOLE);
        if (hole < 0)
            return io_error(d, "seek", errno);
        dend = MIN(align_up((uint64_t)hole, d->lss), end);
        if (dend <= dstart)
            dend = MIN(dstart + d->lss, end);
        r = fn(opaque, dstart - base, dend - dstart, 0);
        if (r)
            return r;
        pos = dend;
    }
    return 0;
}

static int count_data(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    if (!(type & DL_EXTENT_HOLE))
        *(uint64_t *)opaque += len;
    return 0;
}

static int file_allocated(struct dl_disk *d, uint64_t *ret)
{
    struct file_state *s = d->state;
    struct stat st;

    if (s->fd < 0) {
        *ret = 0;
        return 0;
    }
    if (s->window) {
        /* the file's blocks outside the window are not this disk's */
        uint64_t n = 0;
        int r = file_extents(d, 0, dl_size(d), count_data, &n);

        if (r == 0)
            *ret = n;
        return r;
    }
    if (fstat(s->fd, &st) < 0)
        return io_error(d, "stat", errno);
    *ret = (uint64_t)st.st_blocks * 512;
    return 0;
}

static int file_resize(struct dl_disk *d, uint64_t new_size, char **ret_msg)
{
    struct file_state *s = d->state;

    if (ftruncate(s->fd, (off_t)new_size) < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot change the file's size: %s", strerror(e));
        return e == EFBIG || e == EINVAL ? -EINVAL : io_error(d, "resize", e);
    }
    dl_disk_set_size(d, new_size);
    return 0;
}

const struct dl_driver dl_file_driver = {
    .name = "file",
    .summary = "a raw host file",
    .state_size = sizeof(struct file_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = file_params,
    .nparams = ARRAY_SIZE(file_params),
    .validate = file_validate,
    .open = file_open,
    .close = file_close,
    .read = file_read,
    .write = file_write,
    .flush = file_flush,
    .zero = file_zero,
    .unmap = file_unmap,
    .prealloc = file_prealloc,
    .extents = file_extents,
    .allocated = file_allocated,
    .resize = file_resize,
};
