/* Layers: the ram layer alone and in layered stacks (conformance with
 * 512- and 4096-byte sectors), the read-cache fill counts, unmap across
 * layers, layer views, snapshot / commit / revert in a differential run
 * against a model, and the stacks that must be refused. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;
static char *dir;

static char *make_file(const char *name, uint64_t size, uint8_t fill)
{
    char *p;
    int fd;
    uint8_t *buf = malloc(1 << 20);

    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    fd = open(p, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
    memset(buf, fill, 1 << 20);
    for (uint64_t o = 0; fill && o < size; o += 1 << 20)
        if (pwrite(fd, buf, MIN(size - o, 1u << 20), (off_t)o) < 0)
            abort();
    if (ftruncate(fd, (off_t)size) < 0)
        abort();
    close(fd);
    free(buf);
    return p;
}

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (int i = 0; i < 2; i++) {
        char name[96];
        _cleanup_free_ char *base = make_file("base.raw", 4 << 20, 0x3c);
        struct dl_disk *d;

        /* mem:SIZE — one ram layer */
        d = t_open_ok(ctx, t_layered(t_node("ram", "size", "4M", "sector", sectors[i],
                                 NULL),
                            NULL),
                    0);
        snprintf(name, sizeof(name), "mem sector=%s", sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        /* the ram layer alone, not in a layered disk */
        d = t_open_ok(ctx, t_node("ram", "size", "4M", "sector", sectors[i], NULL), 0);
        snprintf(name, sizeof(name), "ram alone sector=%s", sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        /* memdiff over a file (size and sector size inherited) */
        d = t_open_ok(ctx, t_layered(t_node("ram", NULL),
                            t_node("file", "path", base, "sector", sectors[i],
                                 NULL),
                            NULL),
                    0);
        snprintf(name, sizeof(name), "memdiff:file sector=%s", sectors[i]);
        CHECK_EQ(dl_sector_size(d), atoi(sectors[i]), "inherited sector size");
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        /* three layers: ram over ram over file */
        d = t_open_ok(ctx, t_layered(t_node("ram", NULL), t_node("ram", NULL),
                            t_node("file", "path", base, "sector", sectors[i],
                                 NULL),
                            NULL),
                    0);
        snprintf(name, sizeof(name), "ram/ram/file sector=%s", sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        /* read-only */
        d = t_open_ok(ctx, t_layered(t_node("ram", NULL),
                            t_node("file", "path", base, "sector", sectors[i],
                                 NULL),
                            NULL),
                    DL_OPEN_RDONLY);
        snprintf(name, sizeof(name), "memdiff:file read-only sector=%s",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
        unlink(base);
    }
}

static uint64_t held(struct dl_disk *layered, unsigned number)
{
    struct dl_layer_desc ld;

    if (dl_layer_describe(layered, number, &ld) < 0)
        return UINT64_MAX;
    return ld.held;
}

static void test_read_cache_fill(void)
{
    _cleanup_free_ char *base = make_file("cached.raw", 1 << 20, 0x11);
    struct dl_node *cache = t_node("ram", NULL);
    struct dl_disk *d, *l;
    uint8_t buf[16 * 512];

    cache->read_cache = true;
    d = t_open_ok(ctx, t_layered(cache, t_node("file", "path", base, NULL), NULL),
                DL_OPEN_RDONLY);
    l = dl_layered_of(d);
    for (int round = 0; round < 2; round++)
        for (int s = 0; s <= 8; s += 2)
            dl_pread(d, buf, (uint64_t)s * 512, 512, NULL);
    CHECK_EQ(held(l, 1) / 512, 5,
             "reading sectors 0,2,4,6,8 twice fills 5 cache sectors");
    CHECK_EQ(dl_pread(d, buf, 512, 15 * 512, NULL), 0, "read 15 at 1");
    CHECK_EQ(held(l, 1) / 512, 16, "then 15 sectors at 1 bring it to 16");
    CHECK(buf[0] == 0x11 && buf[15 * 512 - 1] == 0x11,
          "the data came from below");
    /* the cache answers now: change the file behind it, reads stay */
    {
        int fd = open(base, O_WRONLY | O_CLOEXEC);
        uint8_t z[512] = {0};

        if (pwrite(fd, z, 512, 512) != 512)
            abort();
        close(fd);
    }
    dl_pread(d, buf, 512, 512, NULL);
    CHECK(buf[0] == 0x11, "a cached sector is served from the cache");
    dl_close(d);
    unlink(base);
}

static void test_fall_through_and_views(void)
{
    _cleanup_free_ char *base = make_file("views.raw", 1 << 20, 0x22);
    struct dl_disk *d, *l, *v;
    uint8_t buf[4096];
    struct dl_layer_desc ld;

    d = t_open_ok(ctx, t_layered(t_node("ram", NULL), t_node("file", "path", base, NULL),
                        NULL),
                0);
    l = dl_layered_of(d);
    memset(buf, 0x99, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 8192, 4096, NULL), 0, "write into the top");
    CHECK_EQ(dl_pread(d, buf, 8192 - 512, 1024, NULL), 0, "read across");
    CHECK(buf[0] == 0x22 && buf[511] == 0x22 && buf[512] == 0x99 &&
              buf[1023] == 0x99,
          "reads fall through where the top holds nothing");
    CHECK_EQ(dl_layer_count(l), 2, "two layers");
    CHECK(dl_layer_describe(l, 1, &ld) == 0 && !strcmp(ld.kind, "ram") &&
              ld.held == 4096 && !ld.read_only,
          "layer 1 is the ram top holding 4096 bytes");
    CHECK(dl_layer_describe(l, 0, &ld) == 0 && !strcmp(ld.kind, "file") &&
              ld.read_only,
          "layer 0 is the file, read-only below the top");
    v = dl_layer_view_get(l, 1);
    CHECK(v != NULL, "a view of layer 1");
    if (v) {
        CHECK_EQ(dl_pread(v, buf, 0, 4096, NULL), 0, "read the view");
        CHECK(buf[0] == 0 && buf[4095] == 0, "the view is zero elsewhere");
        CHECK_EQ(dl_pread(v, buf, 8192, 4096, NULL), 0, "read the view");
        CHECK(buf[0] == 0x99, "the view shows what the layer holds");
        dl_layer_view_put(l, 1);
    }
    /* unmap: the top holds zeroes over the file's data */
    CHECK_EQ(dl_unmap(d, 0, 4096, NULL), 0, "unmap over data below");
    CHECK_EQ(dl_pread(d, buf, 0, 4096, NULL), 0, "read unmapped");
    CHECK(buf[0] == 0 && buf[4095] == 0, "unmapped reads zeroes, not below");
    CHECK(dl_unmap_behavior(d) == DL_UNMAP_ZEROES, "memdiff unmap: zeroes");
    {
        uint8_t f[4096];
        int fd = open(base, O_RDONLY | O_CLOEXEC);

        CHECK(pread(fd, f, 4096, 0) == 4096 && f[0] == 0x22,
              "the file below is untouched");
        close(fd);
    }
    dl_close(d);
    unlink(base);
}

static void test_refusals(void)
{
    _cleanup_free_ char *base = make_file("refuse.raw", 1 << 20, 0);
    struct dl_disk *d = NULL;
    struct dl_node *n;
    char *msg = NULL;
    int r;

    r = t_open(ctx, t_layered(t_node("ram", "sector", "4096", NULL),
                          t_node("file", "path", base, NULL), NULL),
                  0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "layer 1 (ram") &&
              strstr(msg, "sector size 4096 differs from 512"),
          "mismatched sector sizes name the layer: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    n = t_node("ram", NULL);
    n->read_only = true;
    r = t_open(ctx, t_layered(n, t_node("file", "path", base, NULL), NULL), 0, &d,
                  &msg);
    CHECK(r == -EROFS && msg && strstr(msg, "write path"),
          "a read-only layer in the write path is refused: %s",
          msg ? msg : "");
    free(msg);
    msg = NULL;

    n = t_node("file", "path", base, NULL);
    n->read_cache = true;
    r = t_open(ctx, t_layered(n, t_node("ram", "size", "1M", NULL), NULL), 0, &d,
                  &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "cannot be a read cache"),
          "a read cache must be a layer: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    n = t_node("ram", "size", "1M", NULL);
    n->write_through = true;
    r = t_open(ctx, t_layered(t_node("ram", NULL), n, NULL), 0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "write-through"),
          "write-through at the bottom is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    r = t_open(ctx, t_node("ram", NULL), 0, &d, &msg);
    CHECK(r == -EINVAL && msg && strstr(msg, "needs a size"),
          "a ram layer alone needs a size: %s", msg ? msg : "");
    free(msg);
    msg = NULL;

    /* revert and commit of configured layers */
    d = t_open_ok(ctx, t_layered(t_node("ram", NULL), t_node("file", "path", base, NULL),
                        NULL),
                0);
    CHECK(dl_layered_revert(dl_layered_of(d), &msg) == -EINVAL && msg &&
              strstr(msg, "not pushed by a snapshot"),
          "revert of a configured layer is refused: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    CHECK(dl_layered_commit(dl_layered_of(d), &msg) == -EINVAL,
          "commit of a configured layer is refused");
    free(msg);
    msg = NULL;
    dl_close(d);

    /* commit into a configured read-only layer */
    n = t_node("ram", "size", "1M", NULL);
    n->read_only = true;
    d = t_open_ok(ctx, t_layered(n, NULL), DL_OPEN_RDONLY);
    n = t_node("ram", NULL);
    CHECK(dl_layered_snapshot(dl_layered_of(d), n, &msg) == -EROFS,
          "no snapshot of a read-only disk");
    dl_node_free(n);
    free(msg);
    msg = NULL;
    dl_close(d);
    unlink(base);
}

/* Random operations on a stack and a model of its content; snapshots keep
 * copies of the model that revert restores and commit drops. */
static void differential(const char *name, struct dl_node *stack,
                         unsigned nops, size_t base_layers)
{
    struct dl_disk *d = t_open_ok(ctx, stack, 0), *l = dl_layered_of(d);
    const uint64_t size = dl_size(d), lss = dl_sector_size(d);
    const uint64_t sectors = size / lss;
    uint8_t *model = malloc(size), *buf = aligned_alloc(4096, 256 * 1024);
    uint8_t *saved[64];
    unsigned depth = 0, failures = 0, snaps = 0, commits = 0, reverts = 0;
    char *msg = NULL;

    dl_pread(d, model, 0, size, NULL);
    for (unsigned i = 0; i < nops && !failures; i++) {
        unsigned op = (unsigned)(t_rand() % 100);
        uint64_t len = (1 + t_rand() % MIN(sectors, 64)) * lss;
        uint64_t off = (t_rand() % (sectors - len / lss + 1)) * lss;
        int r = 0;

        if (op < 30) {
            r = dl_pread(d, buf, off, len, NULL);
            if (r == 0 && memcmp(buf, model + off, len)) {
                CHECK(false, "%s: op %u read at %" PRIu64 " differs", name, i,
                      off);
                failures++;
            }
        } else if (op < 60) {
            for (uint64_t k = 0; k < len; k++)
                buf[k] = (uint8_t)t_rand();
            r = dl_pwrite(d, buf, off, len, NULL);
            memcpy(model + off, buf, len);
        } else if (op < 70) {
            r = dl_unmap(d, off, len, NULL);
            memset(model + off, 0, len);
        } else if (op < 75) {
            r = dl_zero(d, off, len,
                        &(struct dl_req){.flags = (op & 1) ? DL_F_MAY_TRIM : 0});
            memset(model + off, 0, len);
        } else if (op < 80) {
            uint64_t boff = t_rand() % size, blen = 1 + t_rand() % 1500;

            blen = MIN(blen, size - boff);
            for (uint64_t k = 0; k < blen; k++)
                buf[k] = (uint8_t)t_rand();
            r = dl_write_bytes(d, buf, boff, blen, NULL);
            memcpy(model + boff, buf, blen);
        } else if (op < 88) {
            if (depth < ARRAY_SIZE(saved) && depth < 6) {
                struct dl_node *top = t_node("ram", NULL);

                r = dl_layered_snapshot(l, top, &msg);
                dl_node_free(top);
                if (r == 0) {
                    saved[depth] = malloc(size);
                    memcpy(saved[depth++], model, size);
                    snaps++;
                }
            }
        } else if (op < 94) {
            if (depth) {
                r = dl_layered_revert(l, &msg);
                if (r == 0) {
                    memcpy(model, saved[--depth], size);
                    free(saved[depth]);
                    reverts++;
                }
            }
        } else {
            if (depth) {
                r = dl_layered_commit(l, &msg);
                if (r == 0) {
                    free(saved[--depth]);
                    commits++;
                }
            }
        }
        if (r != 0) {
            CHECK(false, "%s: op %u (%u) failed: %s (%s)", name, i, op,
                  strerror(-r), msg ? msg : "");
            failures++;
        }
        free(msg);
        msg = NULL;
    }
    {
        uint8_t *all = malloc(size);

        dl_pread(d, all, 0, size, NULL);
        CHECK(!failures && memcmp(all, model, size) == 0,
              "%s: %u random operations (%u snapshots, %u commits, %u "
              "reverts) match the model byte for byte",
              name, nops, snaps, commits, reverts);
        free(all);
    }
    CHECK_EQ(dl_layer_count(l), base_layers + depth,
             "the configured layers and the snapshots left");
    while (depth)
        free(saved[--depth]);
    free(model);
    free(buf);
    dl_close(d);
}

static void test_differential(void)
{
    _cleanup_free_ char *base = make_file("diff.raw", 2 << 20, 0x5a);

    differential("two layers (ram over file)",
                 t_layered(t_node("ram", NULL), t_node("file", "path", base, NULL),
                         NULL),
                 4000, 2);
    differential("three layers (ram over ram over file)",
                 t_layered(t_node("ram", NULL), t_node("ram", NULL),
                         t_node("file", "path", base, NULL), NULL),
                 4000, 3);
    differential("two layers, 4096-byte sectors",
                 t_layered(t_node("ram", NULL),
                         t_node("file", "path", base, "sector", "4096", NULL),
                         NULL),
                 3000, 2);
    unlink(base);
}

static void test_resize(void)
{
    _cleanup_free_ char *base = make_file("grow.raw", 1 << 20, 0x77);
    struct dl_disk *d = t_open_ok(ctx, t_layered(t_node("ram", NULL),
                                        t_node("file", "path", base, NULL),
                                        NULL),
                                0);
    uint8_t buf[4096];
    char *msg = NULL;

    CHECK(dl_can_resize(d), "a memdiff stack resizes (its top)");
    CHECK_EQ(dl_resize(d, 2 << 20, &msg), 0, "grow");
    CHECK_EQ(dl_size(d), 2 << 20, "the disk grew");
    dl_pread(d, buf, (1 << 20) + 4096, 4096, NULL);
    CHECK(buf[0] == 0 && buf[4095] == 0, "grown space reads zeroes");
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0x77, "the base still shows below its size");
    CHECK_EQ(dl_resize(d, 512 << 10, &msg), 0, "shrink");
    CHECK_EQ(dl_resize(d, 1 << 20, &msg), 0, "grow again");
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0 && buf[4095] == 0,
          "after shrinking and growing, the base does not show again");
    memset(buf, 0x31, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, (1 << 20) - 4096, 4096, NULL), 0,
             "write into the regrown part");
    memset(buf, 0, sizeof(buf));
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0x31 && buf[4095] == 0x31,
          "what is written after growing again reads back");
    free(msg);
    dl_close(d);
    unlink(base);
}

static void test_ram_memory(void)
{
    struct dl_disk *d = t_open_ok(ctx, t_node("ram", "size", "512M", NULL), 0);
    uint8_t buf[4096];
    uint64_t data = 0, tables = 0, written = 0;

    /* 64 MiB of 4k random writes */
    for (unsigned i = 0; i < 16384; i++) {
        uint64_t off = (t_rand() % (65536)) * 4096;

        memset(buf, (int)(i | 1), sizeof(buf));
        dl_pwrite(d, buf, off, 4096, NULL);
    }
    dl_ram_usage(d, &data, &tables);
    dl_allocated(d, &written);
    CHECK(data == written, "data chunks equal what is held (%" PRIu64
          " vs %" PRIu64 ")", data, written);
    CHECK(tables * 50 < data, "tables are under 2%% of the data (%" PRIu64
          " for %" PRIu64 ")", tables, data);
    /* zeroes cost no data */
    memset(buf, 0, sizeof(buf));
    for (unsigned i = 0; i < 1024; i++)
        dl_pwrite(d, buf, (uint64_t)(65536 + i) * 4096, 4096, NULL);
    {
        uint64_t data2 = 0, t2 = 0, held2 = 0;

        dl_ram_usage(d, &data2, &t2);
        dl_allocated(d, &held2);
        CHECK(data2 == data && held2 == written + (4 << 20),
              "written zeroes are held without data");
    }
    dl_close(d);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    dir = t_tmpdir();
    test_conformance();
    test_read_cache_fill();
    test_fall_through_and_views();
    test_refusals();
    test_differential();
    test_resize();
    test_ram_memory();
    t_cleanup_dir(dir);
    free(dir);
    dl_ctx_free(ctx);
    return t_done();
}
