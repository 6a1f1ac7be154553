/* The conformance suite (DESIGN §2) and the shared test harness.
 *
 * Everything is checked in bytes, at the disk's own entry points: zero
 * length requests, the range rules (including offset + length wrapping
 * past 2^64 and offsets of 2^63 and more, which must never alias sector
 * 0), alignment and flags, read-only, flush, extents that tile the disk,
 * and a random differential run of read / write / zero / unmap / flush and
 * unaligned byte requests against an in-memory model. */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "disklib/util.h"
#include "tests/unit/conformance.h"

static unsigned failures, checks;
static uint64_t rng;

bool t_check(bool ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    checks++;
    if (ok)
        return true;
    failures++;
    fprintf(stderr, "not ok %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return false;
}

int t_done(void)
{
    printf("%u checks, %u failed\n", checks, failures);
    return failures ? 1 : 0;
}

void t_seed(void)
{
    const char *s = getenv("DL_TEST_SEED");

    rng = s ? strtoull(s, NULL, 0) : 0;
    if (!rng) {
        FILE *f = fopen("/dev/urandom", "re");

        if (!f || fread(&rng, sizeof(rng), 1, f) != 1)
            rng = 0x9e3779b97f4a7c15ull;
        if (f)
            fclose(f);
    }
    if (!rng)
        rng = 1;
    printf("random seed: DL_TEST_SEED=%#" PRIx64 "\n", rng);
}

uint64_t t_rand(void)
{
    /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

char *t_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (asprintf(&p, "%s/dl-unit-XXXXXX", base && *base ? base : "/var/tmp") <
        0)
        abort();
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        exit(1);
    }
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    return remove(path);
}

void t_cleanup_dir(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void t_log(void *opaque, int level, const char *cat, const char *msg)
{
    if (level <= LOG_WARNING)
        fprintf(stderr, "[%s] %s\n", cat, msg);
}

struct dl_ctx *t_ctx(void)
{
    struct dl_ctx *ctx;

    if (dl_ctx_new(&ctx) < 0)
        abort();
    dl_ctx_set_log(ctx, t_log, NULL);
    return ctx;
}

struct dl_node *t_node(const char *drv, ...)
{
    struct dl_node *n;
    char *msg = NULL;
    va_list ap;

    if (dl_node_new(dl_find_driver(drv), &n) < 0)
        abort();
    va_start(ap, drv);
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);

        if (dl_node_set(n, k, v, &msg) < 0) {
            fprintf(stderr, "%s=%s: %s\n", k, v, msg);
            abort();
        }
    }
    va_end(ap);
    return n;
}

struct dl_node *t_layered(struct dl_node *top, ...)
{
    struct dl_node *n;
    va_list ap;

    if (dl_node_new(dl_find_driver("layered"), &n) < 0)
        abort();
    va_start(ap, top);
    for (struct dl_node *c = top; c; c = va_arg(ap, struct dl_node *))
        if (dl_node_add_child(n, c) < 0)
            abort();
    va_end(ap);
    return n;
}

int t_open(struct dl_ctx *ctx, struct dl_node *n, unsigned flags,
           struct dl_disk **ret, char **ret_msg)
{
    int r = dl_node_validate(n, ret_msg);

    if (r == 0)
        r = dl_open(ctx, n, flags, ret, ret_msg);
    dl_node_free(n);
    return r;
}

struct dl_disk *t_open_ok(struct dl_ctx *ctx, struct dl_node *n,
                          unsigned flags)
{
    struct dl_disk *d = NULL;
    char *msg = NULL;

    if (t_open(ctx, n, flags, &d, &msg) < 0) {
        fprintf(stderr, "open: %s\n", msg ? msg : "?");
        abort();
    }
    return d;
}

char *t_path(const char *dir, const char *name)
{
    char *p;

    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

char *t_show(struct dl_disk *part)
{
    char *text = NULL;

    if (dl_settings_show(part, &text) < 0 || !text)
        abort();
    return text;
}

char *t_show_line(struct dl_disk *part, const char *name)
{
    _cleanup_free_ char *text = t_show(part);
    const size_t len = strlen(name);

    for (char *l = text; l && *l;) {
        char *nl = strchr(l, '\n');

        if (!strncmp(l, name, len) && l[len] == ' ')
            return strndup(l + len + 1, nl ? (size_t)(nl - l) - len - 1
                                           : strlen(l + len + 1));
        l = nl ? nl + 1 : NULL;
    }
    return strdup("(missing)");
}

uint64_t t_show_u64(struct dl_disk *part, const char *name)
{
    _cleanup_free_ char *v = t_show_line(part, name);

    return strcmp(v, "(missing)") ? strtoull(v, NULL, 10) : UINT64_MAX;
}

int t_set(struct dl_disk *part, const char *cmd)
{
    _cleanup_free_ char *msg = NULL;
    int r = dl_settings_set(part, cmd, &msg);

    if (r < 0)
        fprintf(stderr, "set '%s': %s\n", cmd, msg ? msg : "?");
    return r;
}

void t_set_refused(struct dl_disk *part, const char *cmd, const char *want0,
                   const char *want1, const char *before)
{
    const char *want[] = {want0, want1};
    _cleanup_free_ char *msg = NULL, *after = NULL;
    int r = dl_settings_set(part, cmd, &msg);

    CHECK_EQ(r, -EINVAL, cmd);
    CHECK(msg != NULL, "'%s' is refused with a message", cmd);
    for (int j = 0; j < 2 && msg; j++)
        if (want[j])
            CHECK(strstr(msg, want[j]) != NULL, "'%s': message '%s' has '%s'",
                  cmd, msg, want[j]);
    after = t_show(part);
    CHECK(!strcmp(before, after), "'%s' changes nothing:\n%s", cmd, after);
}

void t_set_refuses_long_lines(struct dl_disk *part, const char *token,
                              const char *before)
{
    _cleanup_free_ char *line = calloc(65 * (strlen(token) + 1) + 1, 1);

    if (!line)
        abort();
    for (int i = 0; i < 65; i++) {
        strcat(line, token);
        strcat(line, " ");
    }
    t_set_refused(part, line, "more than 64 tokens", NULL, before);
}

/* ---- the suite ---- */

#define MARK 0xa5

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

static void check_zero_length(struct dl_disk *d, const char *name)
{
    uint64_t size = dl_size(d), lss = dl_sector_size(d);
    uint8_t buf[1];
    uint64_t offs[] = {0, size / 2 / lss * lss, size};
    bool ro = dl_read_only(d);

    for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
        uint64_t o = offs[i];

        CHECK_EQ(dl_pread(d, buf, o, 0, NULL), 0, "zero-length read");
        CHECK_EQ(dl_read_bytes(d, buf, o, 0, NULL), 0,
                 "zero-length byte read");
        if (!ro) {
            CHECK_EQ(dl_pwrite(d, buf, o, 0, NULL), 0, "zero-length write");
            CHECK_EQ(dl_zero(d, o, 0, NULL), 0, "zero-length zero");
            CHECK_EQ(dl_unmap(d, o, 0, NULL), 0, "zero-length unmap");
            CHECK_EQ(dl_write_bytes(d, buf, o, 0, NULL), 0,
                     "zero-length byte write");
        }
    }
    (void)name;
}

/* Every one of these is outside the disk and must fail with -ERANGE,
 * leaving the buffer untouched — in particular never served as sector 0
 * by a driver whose arithmetic wraps. */
static void check_ranges(struct dl_disk *d, const char *name)
{
    const uint64_t size = dl_size(d), lss = dl_sector_size(d);
    const bool ro = dl_read_only(d);
    struct {
        uint64_t off, len;
    } bad[] = {
        {size, lss},
        {size + lss, lss},
        {size - (size ? lss : 0), 2 * lss},
        {lss, UINT64_MAX - lss + 1}, /* off + len wraps to 0 */
        {UINT64_MAX - lss + 1, lss}, /* off + len wraps to 0 */
        {UINT64_MAX - 2 * lss + 1, 2 * lss},
        {1ull << 63, lss},
        {(1ull << 63) + lss, lss},
        {(1ull << 63) - lss, lss},
        {1ull << 62, lss},
        {1ull << 55, lss},
        {(uint64_t)lss << 55, lss}, /* sector 2^55: wraps when shifted by 9 */
        {(uint64_t)lss << 32, lss}, /* sector 2^32: wraps in 32 bits */
        {0, size + lss},
    };
    uint8_t *buf = aligned_alloc(4096, align_up(2 * lss, 4096));

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        uint64_t off = bad[i].off, len = bad[i].len;
        uint64_t blen = MIN(len, 2 * lss);

        if (off <= size && len <= size - off)
            continue; /* inside this (large) disk: not a bad range */
        memset(buf, MARK, blen);
        if (len <= 2 * lss) {
            CHECK(dl_pread(d, buf, off, len, NULL) == -ERANGE,
                  "%s: read at %#" PRIx64 "+%#" PRIx64 " is -ERANGE", name,
                  off, len);
            CHECK(all_bytes(buf, blen, MARK),
                  "%s: failed read at %#" PRIx64 " left the buffer alone",
                  name, off);
            CHECK(dl_read_bytes(d, buf, off, len, NULL) == -ERANGE,
                  "%s: byte read at %#" PRIx64 " is -ERANGE", name, off);
        }
        if (!ro) {
            if (len <= 2 * lss) {
                CHECK(dl_pwrite(d, buf, off, len, NULL) == -ERANGE,
                      "%s: write at %#" PRIx64 "+%#" PRIx64 " is -ERANGE",
                      name, off, len);
                CHECK(dl_write_bytes(d, buf, off, len, NULL) == -ERANGE,
                      "%s: byte write at %#" PRIx64 " is -ERANGE", name, off);
            }
            CHECK(dl_zero(d, off, len, NULL) == -ERANGE,
                  "%s: zero at %#" PRIx64 "+%#" PRIx64 " is -ERANGE", name,
                  off, len);
            CHECK(dl_unmap(d, off, len, NULL) == -ERANGE,
                  "%s: unmap at %#" PRIx64 "+%#" PRIx64 " is -ERANGE", name,
                  off, len);
        }
    }
    /* sanity: the last sector reads */
    if (size) {
        CHECK_EQ(dl_pread(d, buf, size - lss, lss, NULL), 0,
                 "reading the last sector");
        CHECK_EQ(dl_read_bytes(d, buf, size - 1, 1, NULL), 0,
                 "reading the last byte");
        CHECK(dl_read_bytes(d, buf, size - 1, 2, NULL) == -ERANGE,
              "%s: a byte read crossing the end is -ERANGE", name);
    }
    free(buf);
}

static void check_alignment_and_flags(struct dl_disk *d, const char *name)
{
    const uint64_t lss = dl_sector_size(d);
    const bool ro = dl_read_only(d);
    uint8_t *buf = aligned_alloc(4096, align_up(2 * lss, 4096));
    struct dl_req fua = {.flags = DL_F_FUA}, bogus = {.flags = 1u << 20};
    struct dl_req trim = {.flags = DL_F_MAY_TRIM};

    if (dl_size(d) < 2 * lss) {
        free(buf);
        return;
    }
    CHECK(dl_pread(d, buf, 1, lss, NULL) == -EINVAL,
          "%s: unaligned read offset is -EINVAL", name);
    CHECK(dl_pread(d, buf, 0, lss - 1, NULL) == -EINVAL,
          "%s: unaligned read length is -EINVAL", name);
    CHECK(dl_pread(d, buf, 0, lss, &fua) == -EINVAL,
          "%s: read with FUA is -EINVAL", name);
    CHECK(dl_pread(d, buf, 0, lss, &bogus) == -EINVAL,
          "%s: read with an unknown flag is -EINVAL", name);
    CHECK(dl_flush(d, &bogus) == -EINVAL,
          "%s: flush with an unknown flag is -EINVAL", name);
    if (!ro) {
        CHECK(dl_pwrite(d, buf, lss / 2, lss, NULL) == -EINVAL,
              "%s: unaligned write is -EINVAL", name);
        CHECK(dl_pwrite(d, buf, 0, 1, NULL) == -EINVAL,
              "%s: unaligned write length is -EINVAL", name);
        CHECK(dl_pwrite(d, buf, 0, lss, &bogus) == -EINVAL,
              "%s: write with an unknown flag is -EINVAL", name);
        CHECK(dl_pwrite(d, buf, 0, lss, &trim) == -EINVAL,
              "%s: write with MAY_TRIM is -EINVAL", name);
        CHECK(dl_zero(d, 1, lss, NULL) == -EINVAL,
              "%s: unaligned zero is -EINVAL", name);
        CHECK(dl_unmap(d, 0, lss + 1, NULL) == -EINVAL,
              "%s: unaligned unmap is -EINVAL", name);
        CHECK(dl_zero(d, 0, lss, &bogus) == -EINVAL,
              "%s: zero with an unknown flag is -EINVAL", name);
        CHECK(dl_unmap(d, 0, lss, &fua) == -EINVAL,
              "%s: unmap with FUA is -EINVAL", name);
    }
    free(buf);
}

static void check_read_only(struct dl_disk *d, const char *name)
{
    const uint64_t lss = dl_sector_size(d), size = dl_size(d);
    uint8_t *before = aligned_alloc(4096, align_up(lss, 4096));
    uint8_t *buf = aligned_alloc(4096, align_up(lss, 4096));

    if (!size) {
        free(before);
        free(buf);
        return;
    }
    CHECK_EQ(dl_pread(d, before, 0, lss, NULL), 0, "read sector 0");
    memset(buf, MARK, lss);
    CHECK(dl_pwrite(d, buf, 0, lss, NULL) == -EROFS,
          "%s: write on a read-only disk is -EROFS", name);
    CHECK(dl_write_bytes(d, buf, 3, 10, NULL) == -EROFS,
          "%s: byte write on a read-only disk is -EROFS", name);
    CHECK(dl_zero(d, 0, lss, NULL) == -EROFS,
          "%s: zero on a read-only disk is -EROFS", name);
    CHECK(dl_zero_bytes(d, 0, lss, NULL) == -EROFS,
          "%s: byte zero on a read-only disk is -EROFS", name);
    CHECK(dl_unmap(d, 0, lss, NULL) == -EROFS,
          "%s: unmap on a read-only disk is -EROFS", name);
    /* even out of range: read-only comes first */
    CHECK(dl_pwrite(d, buf, size, lss, NULL) == -EROFS,
          "%s: write past the end of a read-only disk is -EROFS", name);
    CHECK(dl_resize(d, size + lss, NULL) == -EROFS,
          "%s: resize of a read-only disk is -EROFS", name);
    CHECK_EQ(dl_pread(d, buf, 0, lss, NULL), 0, "read sector 0 again");
    CHECK(memcmp(before, buf, lss) == 0, "%s: sector 0 unchanged", name);
    CHECK_EQ(dl_flush(d, NULL), 0, "flush of a read-only disk");
    free(before);
    free(buf);
}

struct tile {
    uint64_t pos;
    bool ok;
    struct dl_disk *d;
    uint8_t *zbuf;
};

static int tile_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct tile *t = opaque;
    const uint64_t lss = dl_sector_size(t->d);

    if (off != t->pos || len == 0 || !is_aligned(off | len, lss))
        t->ok = false;
    t->pos = off + len;
    if (type & DL_EXTENT_ZERO) {
        /* a zero extent must read as zeroes: sample its first and last
         * sectors */
        uint64_t probes[2] = {off, off + len - lss};

        for (int i = 0; i < 2; i++) {
            if (dl_pread(t->d, t->zbuf, probes[i], lss, NULL) != 0 ||
                !all_bytes(t->zbuf, lss, 0))
                t->ok = false;
        }
    }
    return 0;
}

static void check_extents(struct dl_disk *d, const char *name)
{
    const uint64_t lss = dl_sector_size(d), size = dl_size(d);
    struct tile t = {.ok = true, .d = d};
    uint64_t alloc = 0;

    t.zbuf = aligned_alloc(4096, align_up(lss, 4096));
    CHECK_EQ(dl_extents(d, 0, size, tile_cb, &t), 0, "extents of the disk");
    CHECK(t.ok && t.pos == size,
          "%s: extents tile the disk in order, aligned, zero extents read "
          "zero", name);
    CHECK(dl_extents(d, size, lss, tile_cb, &t) == -ERANGE,
          "%s: extents past the end are -ERANGE", name);
    CHECK(dl_extents(d, 1, lss, tile_cb, &t) == -EINVAL,
          "%s: unaligned extents are -EINVAL", name);
    CHECK_EQ(dl_allocated(d, &alloc), 0, "allocated bytes");
    CHECK(alloc <= size, "%s: allocated %" PRIu64 " <= size", name, alloc);
    free(t.zbuf);
}

/* The model: the expected content, and which bytes may be anything
 * (unmapped where the disk says "unspecified"). */
struct model {
    uint8_t *data;
    uint8_t *any;
    uint64_t size;
};

static void fill_pattern(uint8_t *p, uint64_t n)
{
    uint64_t x = t_rand();

    for (uint64_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(x >> (8 * (i & 7)));
    }
}

static bool model_matches(const struct model *m, const uint8_t *buf,
                          uint64_t off, uint64_t len, uint64_t *ret_at)
{
    for (uint64_t i = 0; i < len; i++) {
        if (!m->any[off + i] && m->data[off + i] != buf[i]) {
            *ret_at = off + i;
            return false;
        }
    }
    return true;
}

#define FAIL(...)                                                              \
    do {                                                                       \
        CHECK(false, __VA_ARGS__);                                             \
        failed = 1;                                                            \
    } while (0)

static void check_random(struct dl_disk *d, const struct conformance_opts *o)
{
    const uint64_t lss = dl_sector_size(d), size = dl_size(d);
    const uint64_t sectors = size / lss;
    const uint64_t maxlen = MIN(sectors, 256 * 1024 / lss) * lss;
    enum dl_unmap_behavior ub = dl_unmap_behavior(d);
    unsigned nops = o->random_ops ? o->random_ops : 2000;
    struct model m = {.size = size};
    uint8_t *buf;
    uint64_t at;
    unsigned failed = 0;

    if (sectors < 4 || size > (64ull << 20)) {
        CHECK(sectors >= 4 && size <= (64ull << 20),
              "%s: differential run needs a disk of 4 sectors to 64 MiB",
              o->name);
        return;
    }
    m.data = malloc(size);
    m.any = calloc(1, size);
    buf = aligned_alloc(4096, align_up(maxlen + lss, 4096));
    CHECK_EQ(dl_pread(d, m.data, 0, size, NULL), 0, "read the whole disk");

    for (unsigned i = 0; i < nops && !failed; i++) {
        unsigned op = (unsigned)(t_rand() % 100);
        uint64_t len = (1 + t_rand() % (maxlen / lss)) * lss;
        uint64_t off = (t_rand() % (sectors - len / lss + 1)) * lss;
        int r = 0;

        if (op < 30) { /* aligned read */
            r = dl_pread(d, buf, off, len, NULL);
            if (r == 0 && !model_matches(&m, buf, off, len, &at))
                FAIL("%s: op %u read %#" PRIx64 "+%#" PRIx64
                               " differs at %#" PRIx64, o->name, i, off, len,
                               at);
        } else if (op < 55) { /* aligned write, sometimes FUA */
            struct dl_req rq = {.flags = (t_rand() & 7) ? 0 : DL_F_FUA};

            fill_pattern(buf, len);
            r = dl_pwrite(d, buf, off, len, &rq);
            memcpy(m.data + off, buf, len);
            memset(m.any + off, 0, len);
        } else if (op < 65) { /* unaligned byte write */
            uint64_t boff = t_rand() % size;
            uint64_t blen = 1 + t_rand() % MIN(size - boff, 3 * lss);

            fill_pattern(buf, blen);
            r = dl_write_bytes(d, buf, boff, blen, NULL);
            memcpy(m.data + boff, buf, blen);
            memset(m.any + boff, 0, blen);
        } else if (op < 75) { /* unaligned byte read */
            uint64_t boff = t_rand() % size;
            uint64_t blen = 1 + t_rand() % MIN(size - boff, 3 * lss);

            r = dl_read_bytes(d, buf, boff, blen, NULL);
            if (r == 0 && !model_matches(&m, buf, boff, blen, &at))
                FAIL("%s: op %u byte read %#" PRIx64
                               "+%#" PRIx64 " differs at %#" PRIx64,
                               o->name, i, boff, blen, at);
        } else if (op < 83) { /* zero, sometimes allowing unmap */
            struct dl_req rq = {.flags = (t_rand() & 1) ? DL_F_MAY_TRIM : 0};

            r = dl_zero(d, off, len, &rq);
            memset(m.data + off, 0, len);
            memset(m.any + off, 0, len);
        } else if (op < 88) { /* unaligned byte zero */
            uint64_t boff = t_rand() % size;
            uint64_t blen = 1 + t_rand() % MIN(size - boff, 3 * lss);

            r = dl_zero_bytes(d, boff, blen, NULL);
            memset(m.data + boff, 0, blen);
            memset(m.any + boff, 0, blen);
        } else if (op < 96) { /* unmap */
            r = dl_unmap(d, off, len, NULL);
            if (ub == DL_UNMAP_ZEROES) {
                memset(m.data + off, 0, len);
                memset(m.any + off, 0, len);
            } else if (ub == DL_UNMAP_UNSPECIFIED) {
                memset(m.any + off, 1, len);
            }
        } else {
            r = dl_flush(d, NULL);
        }
        if (r != 0)
            FAIL("%s: op %u (kind %u) at %#" PRIx64
                           "+%#" PRIx64 " failed: %s", o->name, i, op, off,
                           len, strerror(-r));
    }
    /* Finally the whole disk, in one piece and in sector-sized pieces. */
    if (!failed) {
        uint8_t *all = malloc(size);

        CHECK_EQ(dl_pread(d, all, 0, size, NULL), 0, "read all at the end");
        CHECK(model_matches(&m, all, 0, size, &at),
              "%s: after %u random operations the disk equals the model "
              "(first difference at %#" PRIx64 ")", o->name, nops,
              model_matches(&m, all, 0, size, &at) ? 0 : at);
        free(all);
    }
    free(buf);
    free(m.data);
    free(m.any);
}

void conformance_run(struct dl_disk *d, const struct conformance_opts *o)
{
    const char *name = o->name;

    printf("conformance: %s (%s, size %" PRIu64 ", sector %" PRIu32 ")\n",
           name, dl_read_only(d) ? "read-only" : "writable", dl_size(d),
           dl_sector_size(d));
    CHECK(is_pow2(dl_sector_size(d)) && dl_sector_size(d) >= 512,
          "%s: logical sector size is a power of two >= 512", name);
    CHECK(is_pow2(dl_physical_sector_size(d)) &&
              dl_physical_sector_size(d) >= dl_sector_size(d),
          "%s: physical sector size is a power of two >= logical", name);
    CHECK(is_aligned(dl_size(d), dl_sector_size(d)),
          "%s: size is a multiple of the sector size", name);
    check_zero_length(d, name);
    check_ranges(d, name);
    check_alignment_and_flags(d, name);
    if (dl_read_only(d)) {
        check_read_only(d, name);
    } else {
        CHECK_EQ(dl_flush(d, NULL), 0, "flush");
        check_random(d, o);
        CHECK_EQ(dl_flush(d, NULL), 0, "flush after the random run");
    }
    check_extents(d, name);
}
