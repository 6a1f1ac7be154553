/* The file backend: the conformance suite with 512- and 4096-byte
 * sectors, buffered and O_DIRECT, writable and read-only; then what is
 * particular to it: create= rules, formats, holes and punching, extents
 * from the host file, resize, bounce buffers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;
static char *dir;

struct kv {
    const char *k, *v;
};

/* A file node from settings; validated. NULL with *msg on failure. */
static struct dl_node *file_node(const struct kv *kv, char **msg)
{
    struct dl_node *n;

    if (dl_node_new(dl_find_driver("file"), &n) < 0)
        abort();
    for (; kv && kv->k; kv++) {
        if (dl_node_set(n, kv->k, kv->v, msg) < 0) {
            dl_node_free(n);
            return NULL;
        }
    }
    if (dl_node_validate(n, msg) < 0) {
        dl_node_free(n);
        return NULL;
    }
    return n;
}

static int open_file(const struct kv *kv, unsigned flags, struct dl_disk **d,
                     char **msg)
{
    struct dl_node *n = file_node(kv, msg);
    int r;

    if (!n)
        return -EINVAL;
    r = dl_open(ctx, n, flags, d, msg);
    dl_node_free(n);
    return r;
}

static void make_file(const char *path, uint64_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);

    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        abort();
    close(fd);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static void test_conformance(const char *sector, bool direct)
{
    _cleanup_free_ char *path = t_path(dir, "conf.img");
    _cleanup_free_ char *name = NULL;
    struct kv kv[] = {{"path", path}, {"create", "4M"}, {"sector", sector},
                      {"direct", direct ? "true" : "false"}, {NULL, NULL}};
    struct dl_disk *d = NULL;
    char *msg = NULL;
    int r;

    unlink(path);
    if (asprintf(&name, "file sector=%s%s", sector, direct ? " direct" : "") <
        0)
        abort();
    r = open_file(kv, 0, &d, &msg);
    if (!CHECK(r == 0, "%s: open: %s", name, msg ? msg : "")) {
        free(msg);
        return;
    }
    CHECK_EQ(dl_sector_size(d), atoi(sector), "logical sector size");
    conformance_run(d, &(struct conformance_opts){.name = name});
    dl_close(d);

    r = open_file(kv, DL_OPEN_RDONLY, &d, &msg);
    if (CHECK(r == 0, "%s: open read-only: %s", name, msg ? msg : "")) {
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
    }
    free(msg);
    unlink(path);
}

static void test_create(void)
{
    _cleanup_free_ char *path = t_path(dir, "create.img");
    struct kv kv[] = {{"path", path}, {"create", "1M"}, {NULL, NULL}};
    struct dl_disk *d;
    char *msg = NULL;
    int r;

    unlink(path);
    /* check mode: succeeds and creates nothing */
    r = open_file(kv, DL_OPEN_DRY_RUN, &d, &msg);
    CHECK(r == 0, "dry run with create= of a missing file: %s",
          msg ? msg : "");
    if (r == 0) {
        CHECK_EQ(dl_size(d), 1 << 20, "dry-run size is the create size");
        dl_close(d);
    }
    CHECK(access(path, F_OK) < 0, "dry run created nothing");
    /* read-only open of a missing file: refused */
    r = open_file(kv, DL_OPEN_RDONLY, &d, &msg);
    CHECK(r == -ENOENT && msg && strstr(msg, "does not exist"),
          "read-only open of a missing create= file is refused: %s",
          msg ? msg : "");
    free(msg);
    msg = NULL;
    /* created with the size */
    r = open_file(kv, 0, &d, &msg);
    CHECK(r == 0, "create=1M creates: %s", msg ? msg : "");
    if (r == 0) {
        CHECK_EQ(dl_size(d), 1 << 20, "created size");
        dl_close(d);
    }
    CHECK_EQ(file_size(path), 1 << 20, "file size after create");
    /* the same size again: opened as it is */
    r = open_file(kv, 0, &d, &msg);
    CHECK(r == 0, "create= over a file of that size opens it");
    if (r == 0)
        dl_close(d);
    /* another size: refused with both sizes, file untouched */
    make_file(path, 3 << 20);
    {
        struct kv kv2[] = {{"path", path}, {"create", "2M"}, {NULL, NULL}};

        r = open_file(kv2, 0, &d, &msg);
        CHECK(r == -EINVAL && msg && strstr(msg, "3145728") &&
                  strstr(msg, "2097152") && strstr(msg, "never truncated"),
              "create= with another size is refused naming both: %s",
              msg ? msg : "");
        CHECK_EQ(file_size(path), 3 << 20, "file size untouched");
        CHECK(msg && strstr(msg, "file '") == msg,
              "the message names the part: %s", msg ? msg : "");
        free(msg);
        msg = NULL;
    }
    unlink(path);
}

static void test_refusals(void)
{
    _cleanup_free_ char *odd = t_path(dir, "odd.img");
    _cleanup_free_ char *vhdx = t_path(dir, "disk.vhdx");
    _cleanup_free_ char *vhd = t_path(dir, "disk.VHD");
    _cleanup_free_ char *iso = t_path(dir, "cd.iso");
    struct dl_disk *d;
    char *msg = NULL;
    int r;

    make_file(odd, 1000);
    r = open_file((struct kv[]){{"path", odd}, {NULL, NULL}}, 0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "not a multiple"),
          "a size that is not whole sectors is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    r = open_file((struct kv[]){{"path", dir}, {NULL, NULL}}, 0, &d, &msg);
    CHECK(r < 0 && msg &&
              (strstr(msg, "not a regular file") || strstr(msg, "directory")),
          "a directory is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    make_file(vhdx, 1 << 20);
    r = open_file((struct kv[]){{"path", vhdx}, {NULL, NULL}}, 0, &d, &msg);
    CHECK(r < 0 && msg && strstr(msg, "vhdx") &&
              strstr(msg, "not served as raw"),
          ".vhdx is refused with the reason: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    make_file(vhd, 1 << 20);
    r = open_file((struct kv[]){{"path", vhd}, {NULL, NULL}}, 0, &d, &msg);
    CHECK(r < 0 && msg && strstr(msg, "vhd "),
          ".VHD is refused with the reason: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    r = open_file((struct kv[]){{"path", vhdx}, {"format", "raw"},
                                {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r == 0, "format=raw serves a .vhdx as bytes on purpose");
    if (r == 0)
        dl_close(d);

    make_file(iso, 1 << 20);
    r = open_file((struct kv[]){{"path", iso}, {NULL, NULL}}, 0, &d, &msg);
    CHECK(r == 0, "an .iso opens");
    if (r == 0) {
        CHECK(dl_read_only(d), ".iso opens read-only");
        dl_close(d);
    }

    r = open_file((struct kv[]){{"path", odd}, {"sector", "1024"},
                                {"bogus", "1"}, {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r < 0 && msg && strstr(msg, "unknown setting"),
          "an unknown setting is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    r = open_file((struct kv[]){{"path", odd}, {"sector", "1000"},
                                {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r < 0 && msg && strstr(msg, "power of two"),
          "sector=1000 is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    r = open_file((struct kv[]){{"path", odd}, {"create", "1000"},
                                {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r < 0 && msg && strstr(msg, "multiple"),
          "create= that is not whole sectors is refused: %s", msg ? msg : "");
    free(msg);
    unlink(odd);
    unlink(vhdx);
    unlink(vhd);
    unlink(iso);
}

struct extent_list {
    unsigned n;
    uint64_t off[64], len[64];
    unsigned type[64];
};

static int collect(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct extent_list *l = opaque;

    if (l->n < 64) {
        l->off[l->n] = off;
        l->len[l->n] = len;
        l->type[l->n] = type;
    }
    l->n++;
    return 0;
}

static void test_holes(void)
{
    _cleanup_free_ char *path = t_path(dir, "sparse.img");
    struct dl_disk *d;
    struct extent_list l = {0};
    uint8_t *buf = aligned_alloc(4096, 1 << 20);
    uint64_t before, after;
    int r;

    make_file(path, 16 << 20);
    r = open_file((struct kv[]){{"path", path}, {NULL, NULL}}, 0, &d, NULL);
    if (!CHECK(r == 0, "open sparse file"))
        return;
    memset(buf, 0x5a, 1 << 20);
    CHECK_EQ(dl_pwrite(d, buf, 1 << 20, 1 << 20, NULL), 0, "write 1M at 1M");
    CHECK_EQ(dl_pwrite(d, buf, 8 << 20, 4096, NULL), 0, "write 4K at 8M");
    CHECK_EQ(dl_extents(d, 0, 16 << 20, collect, &l), 0, "extents");
    CHECK(l.n == 5 && l.off[1] == 1 << 20 && l.len[1] == 1 << 20 &&
              l.type[1] == 0 && l.off[3] == 8 << 20 && l.len[3] == 4096 &&
              l.type[3] == 0 && (l.type[0] & DL_EXTENT_HOLE) &&
              (l.type[2] & DL_EXTENT_HOLE) && (l.type[4] & DL_EXTENT_HOLE),
          "extents are the host file's data and holes (%u pieces)", l.n);
    CHECK_EQ(dl_allocated(d, &before), 0, "allocated");
    CHECK(before >= (1 << 20) + 4096 && before < (2 << 20),
          "allocated bytes follow the host file (%" PRIu64 ")", before);
    CHECK(dl_unmap_behavior(d) == DL_UNMAP_ZEROES,
          "punching is detected (unmap reads back zeroes)");
    CHECK_EQ(dl_unmap(d, 1 << 20, 512 << 10, NULL), 0, "unmap 512K");
    CHECK_EQ(dl_allocated(d, &after), 0, "allocated after unmap");
    CHECK(after + (512 << 10) <= before, "unmap frees host space");
    CHECK_EQ(dl_pread(d, buf, 1 << 20, 512 << 10, NULL), 0, "read unmapped");
    CHECK(buf[0] == 0 && buf[(512 << 10) - 1] == 0 && buf[4096] == 0,
          "unmapped range reads zeroes");
    memset(&l, 0, sizeof(l));
    CHECK_EQ(dl_extents(d, 0, 16 << 20, collect, &l), 0, "extents again");
    CHECK(l.n == 5 && l.off[1] == (1 << 20) + (512 << 10),
          "the punched range became a hole");
    /* zero with MAY_TRIM punches, without it keeps allocation */
    CHECK_EQ(dl_zero(d, 8 << 20, 4096, &(struct dl_req){.flags =
                                                           DL_F_MAY_TRIM}),
             0, "zero with trim");
    CHECK_EQ(dl_pread(d, buf, 8 << 20, 4096, NULL), 0, "read zeroed");
    CHECK(buf[0] == 0 && buf[4095] == 0, "zeroed range reads zeroes");
    dl_close(d);
    unlink(path);
    free(buf);
}

/* offset= / length=: a window of the file is the whole disk */
static void test_window(void)
{
    _cleanup_free_ char *path = t_path(dir, "window.img");
    struct dl_disk *d;
    struct extent_list l = {0};
    uint8_t *buf = aligned_alloc(4096, 1 << 20);
    uint8_t *raw = malloc(1 << 20);
    char *msg = NULL;
    uint64_t alloc;
    int fd, r;

    make_file(path, 8 << 20);
    fd = open(path, O_RDWR | O_CLOEXEC);
    memset(raw, 0x11, 4096);
    CHECK(pwrite(fd, raw, 4096, (1 << 20) - 4096) == 4096, "mark before");
    memset(raw, 0x22, 4096);
    CHECK(pwrite(fd, raw, 4096, 1 << 20) == 4096, "mark at the window");
    for (int direct = 0; direct < 2; direct++) {
        r = open_file((struct kv[]){{"path", path}, {"offset", "1M"},
                                    {"length", "4M"},
                                    {"direct", direct ? "true" : "false"},
                                    {NULL, NULL}},
                      0, &d, &msg);
        if (!CHECK(r == 0, "open a window (direct=%d): %s", direct,
                   msg ? msg : ""))
            break;
        CHECK_EQ(dl_size(d), 4 << 20, "the window's size");
        CHECK(!dl_can_resize(d), "a window does not resize");
        CHECK_EQ(dl_pread(d, buf, 0, 4096, NULL), 0, "read the first sector");
        CHECK(buf[0] == 0x22 && buf[4095] == 0x22,
              "sector 0 is the file's byte 1M");
        memset(buf, 0x33, 8192);
        CHECK_EQ(dl_pwrite(d, buf, (4 << 20) - 8192, 8192, NULL), 0,
                 "write the window's last sectors");
        CHECK(pread(fd, raw, 8192, (5 << 20) - 8192) == 8192 &&
                  raw[0] == 0x33 && raw[8191] == 0x33,
              "they land before the window's end in the file");
        CHECK_EQ(dl_pwrite(d, buf, 4 << 20, 512, NULL), -ERANGE,
                 "nothing past the window");
        memset(&l, 0, sizeof(l));
        CHECK_EQ(dl_extents(d, 0, 4 << 20, collect, &l), 0, "extents");
        CHECK(l.n == 3 && l.off[0] == 0 && l.type[0] == 0 &&
                  l.len[0] == 4096 && (l.type[1] & DL_EXTENT_HOLE) &&
                  l.off[2] == (4 << 20) - 8192 && l.type[2] == 0,
              "extents in the window's own offsets (%u pieces)", l.n);
        CHECK_EQ(dl_allocated(d, &alloc), 0, "allocated");
        CHECK(alloc == 4096 + 8192,
              "only the window's blocks count (%" PRIu64 ")", alloc);
        CHECK_EQ(dl_unmap(d, (4 << 20) - 8192, 8192, NULL), 0, "unmap");
        CHECK(pread(fd, raw, 8192, (5 << 20) - 8192) == 8192 &&
                  raw[0] == 0 && raw[8191] == 0,
              "unmap punches inside the window");
        CHECK(pread(fd, raw, 4096, (1 << 20) - 4096) == 4096 &&
                  raw[0] == 0x11,
              "the byte before the window is untouched");
        dl_close(d);
    }
    r = open_file((struct kv[]){{"path", path}, {"offset", "6M"},
                                {"length", "4M"}, {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "inside the file"),
          "a window past the end is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    r = open_file((struct kv[]){{"path", path}, {"offset", "1000"},
                                {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "multiple"),
          "an unaligned offset is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    r = open_file((struct kv[]){{"path", path}, {"offset", "1M"},
                                {"create", "8M"}, {NULL, NULL}},
                  0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "create="),
          "create= with a window is refused: %s", msg ? msg : "");
    free(msg);
    close(fd);
    unlink(path);
    free(buf);
    free(raw);
}

static unsigned resize_calls;
static uint64_t resize_seen;

static void on_resize(void *opaque, struct dl_disk *d, uint64_t size)
{
    resize_calls++;
    resize_seen = size;
}

static void test_resize(void)
{
    _cleanup_free_ char *path = t_path(dir, "resize.img");
    struct dl_disk *d;
    uint8_t *buf = aligned_alloc(4096, 8192);
    char *msg = NULL;
    int r;

    make_file(path, 1 << 20);
    r = open_file((struct kv[]){{"path", path}, {NULL, NULL}}, 0, &d, NULL);
    if (!CHECK(r == 0, "open for resize"))
        return;
    CHECK(dl_can_resize(d), "a file can resize");
    dl_add_resize_listener(d, on_resize, NULL);
    memset(buf, 0x77, 8192);
    CHECK_EQ(dl_pwrite(d, buf, (1 << 20) - 8192, 8192, NULL), 0,
             "write the last 8K");
    CHECK_EQ(dl_resize(d, 2 << 20, &msg), 0, "grow to 2M");
    CHECK(resize_calls == 1 && resize_seen == 2 << 20,
          "the listener heard of the new size");
    CHECK_EQ(dl_size(d), 2 << 20, "size after grow");
    CHECK_EQ(file_size(path), 2 << 20, "file size after grow");
    CHECK_EQ(dl_pread(d, buf, (2 << 20) - 4096, 4096, NULL), 0,
             "read in the grown part");
    CHECK(buf[0] == 0 && buf[4095] == 0, "grown space reads zeroes");
    CHECK_EQ(dl_resize(d, 2 << 20, &msg), 0, "resize to the same size");
    CHECK_EQ(resize_calls, 1, "no notification without a change");
    CHECK(dl_resize(d, (2 << 20) + 100, &msg) == -EINVAL && msg,
          "resize to a size that is not whole sectors is -EINVAL");
    free(msg);
    msg = NULL;
    CHECK_EQ(dl_resize(d, (1 << 20) - 4096, &msg), 0, "shrink");
    CHECK_EQ(dl_size(d), (1 << 20) - 4096, "size after shrink");
    CHECK(dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL) == -ERANGE,
          "beyond the shrunk size is -ERANGE");
    CHECK_EQ(dl_resize(d, 1 << 20, &msg), 0, "grow again");
    CHECK_EQ(dl_pread(d, buf, (1 << 20) - 8192, 8192, NULL), 0, "read back");
    CHECK(buf[0] == 0x77 && buf[4095] == 0x77 && buf[4096] == 0 &&
              buf[8191] == 0,
          "data beyond a shrink is gone; what stayed is intact");
    CHECK_EQ(resize_calls, 3, "three notifications");
    dl_remove_resize_listener(d, on_resize, NULL);
    dl_close(d);

    r = open_file((struct kv[]){{"path", path}, {NULL, NULL}},
                  DL_OPEN_RDONLY, &d, NULL);
    if (r == 0) {
        CHECK(dl_resize(d, 4 << 20, &msg) == -EROFS, "read-only: no resize");
        free(msg);
        dl_close(d);
    }
    unlink(path);
    free(buf);
}

static void test_direct_bounce(void)
{
    _cleanup_free_ char *path = t_path(dir, "direct.img");
    struct dl_disk *d;
    uint8_t *raw = malloc((2 << 20) + 64), *buf = raw + 1;
    uint8_t *chk = aligned_alloc(4096, 2 << 20);
    int r;

    make_file(path, 4 << 20);
    r = open_file((struct kv[]){{"path", path}, {"direct", "on"},
                                {NULL, NULL}},
                  0, &d, NULL);
    if (!CHECK(r == 0, "open O_DIRECT"))
        return;
    for (unsigned i = 0; i < (2 << 20); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    /* 2 MiB from a misaligned buffer: bounced, and split at 1 MiB */
    CHECK_EQ(dl_pwrite(d, buf, 512, 2 << 20, NULL), 0,
             "O_DIRECT write from a misaligned buffer");
    memset(buf, 0, 2 << 20);
    CHECK_EQ(dl_pread(d, buf, 512, 2 << 20, NULL), 0,
             "O_DIRECT read into a misaligned buffer");
    CHECK_EQ(dl_pread(d, chk, 512, 2 << 20, NULL), 0,
             "O_DIRECT read into an aligned buffer");
    {
        bool same = true;

        for (unsigned i = 0; i < (2 << 20); i++)
            if (buf[i] != (uint8_t)(i * 7 + 3) || chk[i] != buf[i])
                same = false;
        CHECK(same, "bounced data is intact both ways");
    }
    CHECK_EQ(dl_pwrite(d, chk, 0, 4096, &(struct dl_req){.flags = DL_F_FUA}),
             0, "FUA write");
    dl_close(d);
    unlink(path);
    free(raw);
    free(chk);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    dir = t_tmpdir();
    test_conformance("512", false);
    test_conformance("4096", false);
    test_conformance("512", true);
    test_conformance("4096", true);
    test_create();
    test_refusals();
    test_holes();
    test_window();
    test_resize();
    test_direct_bounce();
    t_cleanup_dir(dir);
    free(dir);
    dl_ctx_free(ctx);
    return t_done();
}
