/* The sqlite layer: conformance alone and over a file (512- and
 * 4096-byte sectors, writable and reopened read-only), data surviving a
 * reopen and a killed process, one row per write, splitting of
 * overlapping runs in a differential run against a model (then reopened),
 * zeroes stored without data, write_no_overwrite filling only gaps,
 * resize, flush, and the files that must be refused — left unchanged. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;
static char *dir;

/* ---- helpers ---- */

static char *make_file(const char *name, uint64_t size, uint8_t fill)
{
    char *p = t_path(dir, name);
    uint8_t *buf = malloc(1 << 20);
    int fd = open(p, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);

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

static bool exists(const char *path, const char *suffix)
{
    char p[4096];

    snprintf(p, sizeof(p), "%s%s", path, suffix);
    return access(p, F_OK) == 0;
}

static void remove_db(const char *path)
{
    char p[4096];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

/* The whole file, to tell that a refused or read-only open changed
 * nothing. */
struct blob {
    uint8_t *p;
    size_t n;
};

static struct blob slurp(const char *path)
{
    struct blob b = {0};
    FILE *f = fopen(path, "rbe");

    if (!f)
        return b;
    fseek(f, 0, SEEK_END);
    b.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc(b.n + 1);
    if (fread(b.p, 1, b.n, f) != b.n)
        abort();
    fclose(f);
    return b;
}

static bool same_file(const char *path, struct blob before)
{
    struct blob now = slurp(path);
    bool same = now.p && now.n == before.n && !memcmp(now.p, before.p, now.n);

    free(now.p);
    return same;
}

/* Queries on a closed layer's database (a connection of the test's). */
static sqlite3 *db_open_flags(const char *path, int flags)
{
    sqlite3 *db = NULL;

    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite3_open %s: %s\n", path, sqlite3_errmsg(db));
        abort();
    }
    return db;
}

static sqlite3 *db_open(const char *path)
{
    return db_open_flags(path, SQLITE_OPEN_READWRITE);
}

static int64_t q_int(const char *path, const char *sql)
{
    sqlite3 *db = db_open(path);
    sqlite3_stmt *st = NULL;
    int64_t v = INT64_MIN;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_type(st, 0) == SQLITE_NULL
                ? -1
                : sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void q_exec(const char *path, const char *sql)
{
    sqlite3 *db = db_open_flags(path, SQLITE_OPEN_READWRITE |
                                          SQLITE_OPEN_CREATE);
    char *err = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err);
        abort();
    }
    sqlite3_close(db);
}

static bool integrity_ok(const char *path)
{
    sqlite3 *db = db_open(path);
    sqlite3_stmt *st = NULL;
    bool ok = false;

    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Runs are well formed: none overlaps the next, counts positive, data
 * NULL or exactly count sectors. */
static void check_runs(const char *path, uint32_t lss, const char *what)
{
    char sql[256];

    CHECK_EQ(q_int(path, "SELECT count(*) FROM (SELECT start, count, "
                         "lead(start) OVER (ORDER BY start) AS nx FROM runs) "
                         "WHERE nx < start + count"),
             0, what);
    CHECK_EQ(q_int(path, "SELECT count(*) FROM runs WHERE count <= 0"), 0,
             "no empty runs");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM runs WHERE data IS NOT NULL AND "
             "length(data) != count * %" PRIu32, lss);
    CHECK_EQ(q_int(path, sql), 0, "every data run has count sectors of data");
    CHECK(integrity_ok(path), "%s: PRAGMA integrity_check is ok", path);
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)t_rand();
}

/* ---- conformance ---- */

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (int i = 0; i < 2; i++) {
        _cleanup_free_ char *alone = NULL, *top = NULL, *base = NULL;
        char name[96], fname[64];
        struct dl_disk *d;
        struct blob before;

        snprintf(fname, sizeof(fname), "alone-%s.db", sectors[i]);
        alone = t_path(dir, fname);
        d = t_open_ok(ctx, t_node("sqlite", "path", alone, "create", "true", "size",
                         "4M", "sector", sectors[i], NULL),
                    0);
        snprintf(name, sizeof(name), "sqlite alone sector=%s", sectors[i]);
        CHECK_EQ(dl_sector_size(d), atoi(sectors[i]), "sector size");
        CHECK(dl_unmap_behavior(d) == DL_UNMAP_ZEROES, "unmap reads zeroes");
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
        check_runs(alone, (uint32_t)atoi(sectors[i]), "runs do not overlap");

        /* read-only: the same checks, and the file is left as it was */
        CHECK(!exists(alone, "-wal") && !exists(alone, "-shm"),
              "closing removed the WAL");
        before = slurp(alone);
        d = t_open_ok(ctx, t_node("sqlite", "path", alone, NULL), DL_OPEN_RDONLY);
        snprintf(name, sizeof(name), "sqlite alone read-only sector=%s",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
        CHECK(same_file(alone, before), "a read-only open changed no byte");
        CHECK(!exists(alone, "-wal") && !exists(alone, "-shm"),
              "a read-only open left no -wal or -shm file");
        free(before.p);

        /* sqldiff: over a file, size and sector size from below */
        snprintf(fname, sizeof(fname), "top-%s.db", sectors[i]);
        top = t_path(dir, fname);
        base = make_file("base.raw", 4 << 20, 0x3c);
        d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", top, "create", "true",
                                 NULL),
                            t_node("file", "path", base, "sector", sectors[i],
                                 NULL),
                            NULL),
                    0);
        snprintf(name, sizeof(name), "sqlite:file sector=%s", sectors[i]);
        CHECK_EQ(dl_sector_size(d), atoi(sectors[i]), "inherited sector size");
        CHECK_EQ(dl_size(d), 4 << 20, "inherited size");
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
        check_runs(top, (uint32_t)atoi(sectors[i]), "runs do not overlap");

        before = slurp(top);
        d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", top, "create", "true",
                                 NULL),
                            t_node("file", "path", base, "sector", sectors[i],
                                 NULL),
                            NULL),
                    DL_OPEN_RDONLY);
        snprintf(name, sizeof(name), "sqlite:file read-only sector=%s",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
        CHECK(same_file(top, before) && !exists(top, "-wal"),
              "a read-only stack left the layer's file as it was");
        free(before.p);
        remove_db(alone);
        remove_db(top);
        unlink(base);
    }
}

/* ---- persistence ---- */

static void test_persist(void)
{
    _cleanup_free_ char *p = t_path(dir, "persist.db");
    const uint64_t size = 1 << 20;
    uint8_t *model = calloc(1, size), *buf = malloc(size);
    uint64_t alloc1 = 0, alloc2 = 0;
    struct dl_disk *d;

    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    for (int i = 0; i < 200; i++) {
        uint64_t len = (1 + t_rand() % 64) * 512;
        uint64_t off = (t_rand() % ((size - len) / 512 + 1)) * 512;

        if (i % 7 == 3) {
            CHECK_EQ(dl_zero(d, off, len, NULL), 0, "zero");
            memset(model + off, 0, len);
        } else if (i % 11 == 5) {
            CHECK_EQ(dl_unmap(d, off, len, NULL), 0, "unmap");
            memset(model + off, 0, len);
        } else {
            fill(buf, len);
            CHECK_EQ(dl_pwrite(d, buf, off, len, NULL), 0, "write");
            memcpy(model + off, buf, len);
        }
    }
    CHECK_EQ(dl_flush(d, NULL), 0, "flush");
    dl_allocated(d, &alloc1);
    dl_close(d);

    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), 0);
    CHECK_EQ(dl_size(d), size, "the size is the database's own");
    CHECK_EQ(dl_pread(d, buf, 0, size, NULL), 0, "read back");
    CHECK(!memcmp(buf, model, size), "the data survived close and reopen");
    dl_allocated(d, &alloc2);
    CHECK_EQ(alloc2, alloc1, "held bytes are the same after reopen");
    dl_close(d);
    check_runs(p, 512, "persisted runs do not overlap");
    remove_db(p);
    free(model);
    free(buf);
}

/* A process killed without closing: what it committed is there, and a
 * read-only open reads it out of the WAL it left. */
static void test_killed(void)
{
    _cleanup_free_ char *p = t_path(dir, "killed.db");
    uint8_t *data = malloc(256 << 10), *buf = malloc(256 << 10);
    struct dl_disk *d;
    pid_t pid;
    int status = 0;

    fill(data, 256 << 10);
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    dl_close(d);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct dl_disk *c = NULL;
        struct dl_node *n = t_node("sqlite", "path", p, NULL);
        char *msg = NULL;

        if (dl_node_validate(n, &msg) < 0 || dl_open(ctx, n, 0, &c, &msg) < 0)
            _exit(2);
        if (dl_pwrite(c, data, 128 << 10, 256 << 10, NULL) < 0)
            _exit(3);
        _exit(0); /* no close: as if killed */
    }
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child wrote and exited without closing");
    CHECK(exists(p, "-wal"), "it left its WAL");

    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), DL_OPEN_RDONLY);
    memset(buf, 0, 256 << 10);
    CHECK_EQ(dl_pread(d, buf, 128 << 10, 256 << 10, NULL), 0, "read-only read");
    CHECK(!memcmp(buf, data, 256 << 10),
          "a read-only open sees the committed write in the WAL");
    dl_close(d);

    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), 0);
    memset(buf, 0, 256 << 10);
    CHECK_EQ(dl_pread(d, buf, 128 << 10, 256 << 10, NULL), 0, "read");
    CHECK(!memcmp(buf, data, 256 << 10), "the committed write survived");
    dl_close(d);
    CHECK(!exists(p, "-wal"), "a clean close removed the WAL");
    check_runs(p, 512, "runs after a kill");
    remove_db(p);
    free(data);
    free(buf);
}

/* ---- rows ---- */

static void test_rows(void)
{
    _cleanup_free_ char *p = t_path(dir, "rows.db");
    uint8_t *buf = malloc(1 << 20);
    struct dl_disk *d;

    fill(buf, 1 << 20);
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "8M",
                     NULL),
                0);
    CHECK_EQ(dl_pwrite(d, buf, 1 << 20, 1 << 20, NULL), 0, "1 MiB write");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 1,
             "a 1 MiB write is one row");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 2048"), 2048,
             "of 2048 sectors at sector 2048");
    CHECK_EQ(q_int(p, "SELECT length(data) FROM runs"), 1 << 20,
             "holding 1 MiB of data");

    /* a write into its middle splits it in three */
    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), 0);
    memset(buf, 0x77, 4096);
    CHECK_EQ(dl_pwrite(d, buf, (1 << 20) + 8192, 4096, NULL), 0, "4k write");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 3, "split in three rows");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 2048"), 16,
             "the head kept 16 sectors");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 2064"), 8,
             "the new row has 8");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 2072"), 2048 - 24,
             "the tail kept the rest");
    check_runs(p, 512, "split runs");

    /* one write over all three and beyond replaces them */
    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), 0);
    fill(buf, 1 << 20);
    CHECK_EQ(dl_pwrite(d, buf, (1 << 20) - 4096, 1 << 20, NULL), 0,
             "overwrite");
    {
        uint8_t *back = malloc(1 << 20);

        CHECK_EQ(dl_pread(d, back, (1 << 20) - 4096, 1 << 20, NULL), 0,
                 "read");
        CHECK(!memcmp(back, buf, 1 << 20), "the overwrite reads back");
        free(back);
    }
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 2,
             "the new row and the old tail's last 8 sectors");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 4088"), 8,
             "the old tail's end kept");
    check_runs(p, 512, "overwritten runs");
    remove_db(p);

    /* 4096-byte sectors: the same write is 256 sectors */
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "8M",
                     "sector", "4096", NULL),
                0);
    CHECK_EQ(dl_pwrite(d, buf, 1 << 20, 1 << 20, NULL), 0, "1 MiB write");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 1, "one row (4Kn)");
    CHECK_EQ(q_int(p, "SELECT count FROM runs"), 256, "of 256 sectors");
    CHECK_EQ(q_int(p, "SELECT value FROM diskstack_layer "
                      "WHERE key = 'sector_size'"),
             4096, "the stored sector size");
    CHECK_EQ(q_int(p, "SELECT value FROM diskstack_layer WHERE key = 'size'"),
             8 << 20, "the stored size");
    CHECK_EQ(q_int(p, "SELECT value FROM diskstack_layer "
                      "WHERE key = 'version'"),
             1, "version 1");
    remove_db(p);
    free(buf);
}

static void test_zeroes(void)
{
    _cleanup_free_ char *p = t_path(dir, "zeroes.db");
    _cleanup_free_ char *top = t_path(dir, "zeroes-top.db");
    _cleanup_free_ char *base = make_file("zeroes.raw", 1 << 20, 0x5a);
    uint8_t *buf = calloc(1, 1 << 16);
    struct dl_disk *d;
    uint64_t alloc = 0;

    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    CHECK_EQ(dl_pwrite(d, buf, 0, 1 << 16, NULL), 0, "write 64k of zeroes");
    CHECK_EQ(dl_zero(d, 1 << 17, 1 << 16, NULL), 0, "zero 64k");
    memset(buf, 1, 512);
    CHECK_EQ(dl_pwrite(d, buf, 1 << 18, 512, NULL), 0, "one data sector");
    CHECK_EQ(dl_unmap(d, 1 << 18, 512, NULL), 0,
             "unmap it (alone: nothing below)");
    dl_allocated(d, &alloc);
    CHECK_EQ(alloc, 2 << 16, "the zero runs are held, the unmapped one not");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs WHERE data IS NULL"), 2,
             "written zeroes and zero requests are NULL runs");
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 2,
             "the unmapped sector is gone");

    /* over data below, an unmap holds zeroes */
    d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", top, "create", "true", NULL),
                        t_node("file", "path", base, NULL), NULL),
                0);
    CHECK_EQ(dl_unmap(d, 4096, 8192, NULL), 0, "unmap over the file");
    CHECK_EQ(dl_pread(d, buf, 0, 16384, NULL), 0, "read");
    CHECK(buf[0] == 0x5a && buf[4095] == 0x5a && buf[4096] == 0 &&
              buf[12287] == 0 && buf[12288] == 0x5a,
          "the unmapped range reads zeroes, not the file");
    dl_close(d);
    CHECK_EQ(q_int(top, "SELECT count(*) FROM runs WHERE data IS NULL AND "
                        "start = 8 AND count = 16"),
             1, "held as one NULL run");
    {
        int fd = open(base, O_RDONLY | O_CLOEXEC);

        CHECK(pread(fd, buf, 4096, 4096) == 4096 && buf[0] == 0x5a,
              "the file below is untouched");
        close(fd);
    }
    remove_db(p);
    remove_db(top);
    unlink(base);
    free(buf);
}

static void test_no_overwrite(void)
{
    _cleanup_free_ char *p = t_path(dir, "fill.db");
    uint8_t a[4 * 512], b[16 * 512], back[16 * 512];
    uint64_t bits[1];
    struct dl_presence pr = {.bits = bits, .nsect = 16};
    struct dl_disk *d;

    memset(a, 0xaa, sizeof(a));
    memset(b, 0xbb, sizeof(b));
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    CHECK_EQ(dl_pwrite(d, a, 4 * 512, sizeof(a), NULL), 0, "write 4..8");
    bits[0] = 0;
    CHECK_EQ(dl_layer_read(d, back, 0, sizeof(back), &pr), 0, "layer read");
    CHECK_EQ(bits[0], 0xf0, "presence: sectors 4..8 of the request");
    CHECK_EQ(dl_layer_write_no_overwrite(d, b, 0, sizeof(b)), 0,
             "fill 0..16");
    CHECK_EQ(dl_pread(d, back, 0, sizeof(back), NULL), 0, "read");
    CHECK(back[0] == 0xbb && back[4 * 512 - 1] == 0xbb &&
              back[4 * 512] == 0xaa && back[8 * 512 - 1] == 0xaa &&
              back[8 * 512] == 0xbb && back[16 * 512 - 1] == 0xbb,
          "only the gaps were filled");
    memset(b, 0xcc, sizeof(b));
    CHECK_EQ(dl_layer_write_no_overwrite(d, b, 0, sizeof(b)), 0,
             "fill again");
    CHECK_EQ(dl_pread(d, back, 0, sizeof(back), NULL), 0, "read");
    CHECK(back[0] == 0xbb && back[4 * 512] == 0xaa,
          "a full range is not overwritten");
    bits[0] = 0;
    pr.base = 0;
    CHECK_EQ(dl_layer_read(d, back, 512, 8 * 512, &pr), 0, "layer read");
    CHECK_EQ(bits[0], 0xff, "presence: all 8 held");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT count(*) FROM runs"), 3,
             "three rows: gap, write, gap");
    CHECK_EQ(q_int(p, "SELECT count FROM runs WHERE start = 8"), 8,
             "the second gap is one row");
    remove_db(p);
}

/* ---- differential run with holes, zeroes and fills ---- */

enum { UNHELD, HELD };

struct dmodel {
    uint8_t *data, *state;
    uint64_t size, lss;
};

struct ext_walk {
    const struct dmodel *m;
    uint64_t pos;
    bool ok;
};

static int ext_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct ext_walk *w = opaque;
    const struct dmodel *m = w->m;
    bool unheld = type & DL_EXTENT_UNHELD;

    if (off != w->pos)
        w->ok = false;
    w->pos = off + len;
    for (uint64_t s = off / m->lss; s < (off + len) / m->lss; s++) {
        if ((m->state[s] == UNHELD) != unheld)
            w->ok = false;
        if (type & DL_EXTENT_ZERO)
            for (uint64_t k = 0; k < m->lss; k++)
                if (m->data[s * m->lss + k])
                    w->ok = false;
    }
    return 0;
}

static void compare(struct dl_disk *d, const struct dmodel *m,
                    const char *what)
{
    uint8_t *all = malloc(m->size);
    struct ext_walk w = {.m = m, .ok = true};
    uint64_t alloc = 0, held = 0;

    for (uint64_t s = 0; s < m->size / m->lss; s++)
        held += m->state[s] == HELD;
    CHECK_EQ(dl_pread(d, all, 0, m->size, NULL), 0, "read all");
    CHECK(!memcmp(all, m->data, m->size), "%s: the data equals the model",
          what);
    CHECK_EQ(dl_extents(d, 0, m->size, ext_cb, &w), 0, "extents");
    CHECK(w.ok && w.pos == m->size,
          "%s: extents show what is held and what is zero", what);
    dl_allocated(d, &alloc);
    CHECK_EQ(alloc, held * m->lss, "allocated is what is held");
    free(all);
}

static void differential(const char *sector, uint64_t size, unsigned nops)
{
    _cleanup_free_ char *p = t_path(dir, "diff.db");
    char sz[32];
    struct dmodel m = {.size = size, .lss = (uint64_t)atoi(sector)};
    const uint64_t sectors = size / m.lss;
    uint8_t *buf = malloc(64 * m.lss), *back = malloc(64 * m.lss);
    uint64_t bits[1];
    unsigned failed = 0;
    struct dl_disk *d;

    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    m.data = calloc(1, size);
    m.state = calloc(1, sectors);
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", sz,
                     "sector", sector, NULL),
                0);
    for (unsigned i = 0; i < nops && !failed; i++) {
        unsigned op = (unsigned)(t_rand() % 100);
        uint64_t n = 1 + t_rand() % 40;
        uint64_t s0 = t_rand() % (sectors - n + 1);
        uint64_t off = s0 * m.lss, len = n * m.lss;
        int r = 0;

        if (op < 35) {
            if (op < 7)
                memset(buf, 0, len);
            else
                fill(buf, len);
            r = dl_pwrite(d, buf, off, len, NULL);
            memcpy(m.data + off, buf, len);
            memset(m.state + s0, HELD, n);
        } else if (op < 45) {
            r = dl_zero(d, off, len, NULL);
            memset(m.data + off, 0, len);
            memset(m.state + s0, HELD, n);
        } else if (op < 55) {
            r = dl_layer_unmap(d, off, len, true);
            memset(m.data + off, 0, len);
            memset(m.state + s0, UNHELD, n);
        } else if (op < 62) {
            r = dl_layer_unmap(d, off, len, false);
            memset(m.data + off, 0, len);
            memset(m.state + s0, HELD, n);
        } else if (op < 75) {
            fill(buf, len);
            r = dl_layer_write_no_overwrite(d, buf, off, len);
            for (uint64_t k = 0; k < n; k++) {
                if (m.state[s0 + k] == HELD)
                    continue;
                memcpy(m.data + off + k * m.lss, buf + k * m.lss, m.lss);
                m.state[s0 + k] = HELD;
            }
        } else if (op < 98) {
            struct dl_presence pr = {.bits = bits, .nsect = n};
            bool ok = true;

            n = MIN(n, 64);
            bits[0] = 0;
            memset(back, 0xee, len);
            r = dl_layer_read(d, back, off, len, &pr);
            for (uint64_t k = 0; r == 0 && k < n; k++) {
                bool present = dl_presence_test(&pr, k);

                if (present != (m.state[s0 + k] == HELD) ||
                    (present && memcmp(back + k * m.lss,
                                       m.data + off + k * m.lss, m.lss)))
                    ok = false;
            }
            if (!ok) {
                CHECK(false, "op %u: layer read at sector %" PRIu64
                      " differs from the model", i, s0);
                failed++;
            }
        } else {
            r = dl_flush(d, NULL);
        }
        if (r != 0) {
            CHECK(false, "op %u (%u) failed: %s", i, op, strerror(-r));
            failed++;
        }
    }
    compare(d, &m, "after the random run");
    dl_close(d);
    check_runs(p, (uint32_t)m.lss, "differential runs do not overlap");
    d = t_open_ok(ctx, t_node("sqlite", "path", p, NULL), 0);
    compare(d, &m, "after reopening");
    dl_close(d);
    printf("differential sector=%s: %u operations, %" PRId64 " rows\n",
           sector, nops, q_int(p, "SELECT count(*) FROM runs"));
    remove_db(p);
    free(m.data);
    free(m.state);
    free(buf);
    free(back);
}

/* ---- resize and flush ---- */

static void test_resize(void)
{
    _cleanup_free_ char *p = t_path(dir, "grow.db");
    _cleanup_free_ char *base = make_file("grow.raw", 1 << 20, 0x77);
    uint8_t buf[4096];
    uint64_t alloc = 0;
    char *msg = NULL;
    struct dl_disk *d;

    d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", p, "create", "true", NULL),
                        t_node("file", "path", base, NULL), NULL),
                0);
    CHECK(dl_can_resize(d), "an sqlite stack resizes (its top)");
    memset(buf, 0x11, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 256 << 10, 4096, NULL), 0, "write");
    CHECK_EQ(dl_resize(d, 2 << 20, &msg), 0, "grow");
    CHECK_EQ(dl_size(d), 2 << 20, "the disk grew");
    dl_pread(d, buf, (1 << 20) + 4096, 4096, NULL);
    CHECK(buf[0] == 0 && buf[4095] == 0, "grown space reads zeroes");
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0x77, "the base still shows below its size");
    CHECK_EQ(dl_resize(d, 128 << 10, &msg), 0, "shrink");
    dl_allocated(dl_child(dl_layered_of(d), 0), &alloc);
    CHECK_EQ(alloc, 0, "the write beyond the new size is dropped");
    CHECK_EQ(dl_resize(d, 1 << 20, &msg), 0, "grow again");
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0 && buf[4095] == 0,
          "after shrinking and growing, the base does not show again");
    dl_pread(d, buf, 256 << 10, 4096, NULL);
    CHECK(buf[0] == 0, "nor does the dropped write");
    dl_pread(d, buf, 64 << 10, 4096, NULL);
    CHECK(buf[0] == 0x77, "below the smallest size the base shows");
    memset(buf, 0x22, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 512 << 10, 4096, NULL), 0,
             "write into the regrown part");
    dl_close(d);
    free(msg);
    msg = NULL;
    CHECK_EQ(q_int(p, "SELECT value FROM diskstack_layer WHERE key = 'size'"),
             1 << 20, "the new size is stored");
    check_runs(p, 512, "resized runs");

    d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", p, "create", "true", NULL),
                        t_node("file", "path", base, NULL), NULL),
                0);
    CHECK_EQ(dl_size(d), 1 << 20, "reopened at the stored size");
    dl_pread(d, buf, (1 << 20) - 4096, 4096, NULL);
    CHECK(buf[0] == 0, "after reopening the base does not show either");
    dl_pread(d, buf, 512 << 10, 4096, NULL);
    CHECK(buf[0] == 0x22, "the write into the regrown part is there");
    CHECK(dl_resize(d, 0, &msg) < 0, "no shrinking to nothing");
    free(msg);
    dl_close(d);
    remove_db(p);
    unlink(base);
}

static void test_flush(void)
{
    _cleanup_free_ char *p = t_path(dir, "flush.db");
    uint8_t buf[4096];
    struct dl_disk *d;

    memset(buf, 0x42, sizeof(buf));
    d = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    CHECK_EQ(dl_flush(d, NULL), 0, "flush with nothing written");
    CHECK_EQ(dl_pwrite(d, buf, 0, 4096, NULL), 0, "write");
    CHECK_EQ(dl_flush(d, NULL), 0, "flush");
    CHECK_EQ(dl_flush(d, NULL), 0, "flush again (nothing new)");
    CHECK_EQ(dl_pwrite(d, buf, 8192, 4096,
                       &(struct dl_req){.flags = DL_F_FUA}),
             0, "FUA write");
    CHECK_EQ(dl_flush(d, NULL), 0, "flush after FUA (nothing new)");
    CHECK_EQ(dl_zero(d, 0, 4096, &(struct dl_req){.flags = DL_F_FUA}), 0,
             "FUA zero");
    dl_close(d);
    CHECK_EQ(q_int(p, "SELECT value FROM diskstack_layer "
                      "WHERE key = 'flushes'"),
             1, "only the flush after new writes committed a sync");
    CHECK(integrity_ok(p), "integrity after flushes");
    remove_db(p);
}

/* sql: snapshots: pushed over an sqlite top, committed (the merge walks
 * the top's extents and reads it from inside the walk) and reverted. */
static void test_snapshot(void)
{
    _cleanup_free_ char *p = t_path(dir, "snap-top.db");
    _cleanup_free_ char *s1 = t_path(dir, "snap-1.db"), *s2 = t_path(dir, "snap-2.db");
    _cleanup_free_ char *base = make_file("snap.raw", 1 << 20, 0x11);
    struct dl_disk *d, *l;
    struct dl_node *n;
    uint8_t buf[8192];
    char *msg = NULL;

    d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", p, "create", "true", NULL),
                        t_node("file", "path", base, NULL), NULL),
                0);
    l = dl_layered_of(d);
    memset(buf, 0x22, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 0, 4096, NULL), 0, "write into the top");

    n = t_node("sqlite", "path", s1, "create", "true", NULL);
    CHECK(dl_layered_snapshot(l, n, &msg) == 0, "snapshot sql: %s",
          msg ? msg : "");
    dl_node_free(n);
    CHECK_EQ(dl_layer_count(l), 3, "three layers");
    memset(buf, 0x33, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 2048, 4096, NULL), 0, "write into the snapshot");
    CHECK_EQ(dl_zero(d, 65536, 8192, NULL), 0, "zero in the snapshot");
    CHECK(dl_layered_commit(l, &msg) == 0, "commit: %s", msg ? msg : "");
    CHECK_EQ(dl_layer_count(l), 2, "two layers again");
    CHECK_EQ(dl_pread(d, buf, 0, 8192, NULL), 0, "read");
    CHECK(buf[0] == 0x22 && buf[2047] == 0x22 && buf[2048] == 0x33 &&
              buf[6143] == 0x33 && buf[6144] == 0x11,
          "the committed data is in the layer below");
    CHECK_EQ(dl_pread(d, buf, 65536, 8192, NULL), 0, "read");
    CHECK(buf[0] == 0 && buf[8191] == 0, "the committed zeroes too");

    n = t_node("sqlite", "path", s2, "create", "true", NULL);
    CHECK(dl_layered_snapshot(l, n, &msg) == 0, "snapshot again: %s",
          msg ? msg : "");
    dl_node_free(n);
    memset(buf, 0x44, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 0, 8192, NULL), 0, "write into it");
    CHECK(dl_layered_revert(l, &msg) == 0, "revert: %s", msg ? msg : "");
    CHECK_EQ(dl_pread(d, buf, 0, 8192, NULL), 0, "read");
    CHECK(buf[0] == 0x22 && buf[2048] == 0x33,
          "after revert the write is gone");
    free(msg);
    dl_close(d);
    check_runs(p, 512, "runs after a commit");
    remove_db(p);
    remove_db(s1);
    remove_db(s2);
    unlink(base);
}

/* ---- refusals ---- */

static void refused(struct dl_node *n, unsigned flags, const char *path,
                    int want, const char *needle, const char *what)
{
    struct blob before = slurp(path);
    bool had_wal = exists(path, "-wal");
    struct dl_disk *d = NULL;
    char *msg = NULL;
    int r = t_open(ctx, n, flags, &d, &msg);

    CHECK(r == want && msg && strstr(msg, needle),
          "%s: refused (%d) with '%s': %s", what, r, needle, msg ? msg : "");
    if (r == 0)
        dl_close(d);
    if (before.p)
        CHECK(same_file(path, before), "%s: the file is unchanged", what);
    else
        CHECK(!exists(path, ""), "%s: no file was made", what);
    CHECK(had_wal || (!exists(path, "-wal") && !exists(path, "-shm")),
          "%s: no -wal or -shm file was left", what);
    free(msg);
    free(before.p);
}

static void make_db(const char *path, const char *sql)
{
    remove_db(path);
    q_exec(path, sql);
}

static void test_refusals(void)
{
    _cleanup_free_ char *x = t_path(dir, "x.db"), *dbhd = t_path(dir, "os.dbhd");
    _cleanup_free_ char *foreign = t_path(dir, "foreign.db");
    _cleanup_free_ char *ours = t_path(dir, "ours.db"), *nope = t_path(dir, "no.db");
    _cleanup_free_ char *empty = make_file("empty.db", 0, 0);
    _cleanup_free_ char *base = make_file("refuse.raw", 1 << 20, 0);
    struct dl_disk *d;
    FILE *f;

    f = fopen(x, "we");
    for (int i = 0; i < 100; i++)
        fprintf(f, "this is a text file, not a database (%d)\n", i);
    fclose(f);
    refused(t_node("sqlite", "path", x, "create", "true", "size", "1M", NULL), 0,
            x, -EINVAL, "is not an SQLite database", "a text file");
    refused(t_node("sqlite", "path", x, NULL), DL_OPEN_RDONLY, x, -EINVAL,
            "is not an SQLite database", "a text file, read-only");
    refused(t_node("sqlite", "path", empty, "create", "true", "size", "1M",
                 NULL),
            0, empty, -EINVAL, "not a diskstack layer database",
            "an empty file");

    make_db(dbhd, "PRAGMA journal_mode=WAL;"
                  "CREATE TABLE sectors(sector INTEGER NOT NULL, data BLOB, "
                  "PRIMARY KEY(sector));"
                  "CREATE TABLE meta(metadata TEXT NOT NULL);"
                  "INSERT INTO meta VALUES (json('{\"logically_read_only\":"
                  "false,\"sector_count\":2048,\"sector_size\":512}'));"
                  "INSERT INTO sectors VALUES (3, zeroblob(512));");
    refused(t_node("sqlite", "path", dbhd, "create", "true", NULL), 0, dbhd,
            -EINVAL, "OpenVMM dbhd", "an OpenVMM dbhd database");
    refused(t_layered(t_node("sqlite", "path", dbhd, NULL),
                    t_node("file", "path", base, NULL), NULL),
            DL_OPEN_RDONLY, dbhd, -EINVAL, "its own schema",
            "an OpenVMM dbhd database, read-only in a stack");

    make_db(foreign, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    refused(t_node("sqlite", "path", foreign, "create", "true", "size", "1M",
                 NULL),
            0, foreign, -EINVAL, "not a diskstack layer database",
            "another SQLite database");

    remove_db(ours);
    d = t_open_ok(ctx, t_node("sqlite", "path", ours, "create", "true", "size", "1M",
                     NULL),
                0);
    dl_close(d);
    refused(t_node("sqlite", "path", ours, "size", "2M", NULL), 0, ours, -EINVAL,
            "has size 1048576 (1M) but size= asks for 2097152 (2M)",
            "a size mismatch");
    refused(t_node("sqlite", "path", ours, "sector", "4096", NULL), 0, ours,
            -EINVAL, "has sector size 512 but sector= asks for 4096",
            "a sector size mismatch");
    refused(t_layered(t_node("sqlite", "path", ours, NULL),
                    t_node("file", "path", base, "sector", "4096", NULL), NULL),
            0, ours, -EINVAL, "sector size 512 but the disk below has 4096",
            "a sector size differing from the layer below");
    q_exec(ours, "UPDATE diskstack_layer SET value = 2 WHERE key = 'version'");
    refused(t_node("sqlite", "path", ours, NULL), 0, ours, -EOPNOTSUPP,
            "version 2, newer", "a newer version");
    q_exec(ours, "UPDATE diskstack_layer SET value = 1 WHERE key = 'version';"
                 "UPDATE diskstack_layer SET value = 1000 WHERE key = 'size'");
    refused(t_node("sqlite", "path", ours, NULL), 0, ours, -EINVAL,
            "not a positive multiple", "a stored size not of whole sectors");

    /* missing files */
    refused(t_node("sqlite", "path", nope, "size", "1M", NULL), 0, nope, -ENOENT,
            "does not exist", "a missing file without create");
    refused(t_node("sqlite", "path", nope, "create", "true", "size", "1M", NULL),
            DL_OPEN_RDONLY, nope, -ENOENT,
            "does not exist; create= makes it only when opened for writing",
            "a missing file opened read-only");
    refused(t_node("sqlite", "path", nope, "create", "true", NULL), 0, nope,
            -EINVAL, "needs a size", "a new database alone without a size");
    {
        struct dl_node *n = t_node("sqlite", "path", nope, "size", "4096", NULL);
        char *msg = NULL;

        dl_node_set(n, "sector", "4096", &msg);
        dl_node_set(n, "size", "6144", &msg);
        CHECK(dl_node_validate(n, &msg) == -EINVAL && msg &&
                  strstr(msg, "not a multiple"),
              "size= not a multiple of sector= is refused before opening: %s",
              msg ? msg : "");
        free(msg);
        dl_node_free(n);
    }

    /* a dry run ("diskstack check") succeeds and makes nothing */
    d = t_open_ok(ctx, t_node("sqlite", "path", nope, "create", "true", "size", "2M",
                     NULL),
                DL_OPEN_DRY_RUN);
    CHECK_EQ(dl_size(d), 2 << 20, "a dry run reports the size it would have");
    dl_close(d);
    d = t_open_ok(ctx, t_layered(t_node("sqlite", "path", nope, "create", "true", NULL),
                        t_node("file", "path", base, "sector", "4096", NULL),
                        NULL),
                DL_OPEN_DRY_RUN);
    CHECK(dl_size(d) == 1 << 20 && dl_sector_size(d) == 4096,
          "a dry run over a file takes its size and sector size");
    {
        uint8_t buf[4096];

        CHECK_EQ(dl_pread(d, buf, 0, 4096, NULL), 0, "a dry run reads");
    }
    dl_close(d);
    CHECK(!exists(nope, "") && !exists(nope, "-wal"),
          "a dry run made no file");
    {
        struct blob before = slurp(ours);

        q_exec(ours, "UPDATE diskstack_layer SET value = 1048576 "
                     "WHERE key = 'size'");
        free(before.p);
        before = slurp(ours);
        d = t_open_ok(ctx, t_node("sqlite", "path", ours, NULL), DL_OPEN_DRY_RUN);
        CHECK_EQ(dl_size(d), 1 << 20, "a dry run of an existing database");
        dl_close(d);
        CHECK(same_file(ours, before) && !exists(ours, "-wal"),
              "a dry run changed nothing");
        free(before.p);
    }
    remove_db(x);
    remove_db(dbhd);
    remove_db(foreign);
    remove_db(ours);
    unlink(empty);
    unlink(base);
}

/* Made by create, in place: a second opener with create opens it as it
 * is rather than making another. */
static void test_create_existing(void)
{
    _cleanup_free_ char *p = t_path(dir, "twice.db");
    uint8_t buf[512];
    struct dl_disk *a, *b;
    struct stat st;

    a = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    memset(buf, 0x31, sizeof(buf));
    CHECK_EQ(dl_pwrite(a, buf, 0, 512, NULL), 0, "write");
    CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode), "the file is in place");
    dl_close(a);
    b = t_open_ok(ctx, t_node("sqlite", "path", p, "create", "true", "size", "1M",
                     NULL),
                0);
    memset(buf, 0, sizeof(buf));
    CHECK_EQ(dl_pread(b, buf, 0, 512, NULL), 0, "read");
    CHECK(buf[0] == 0x31, "create= on an existing database keeps it");
    CHECK(!strcmp(dl_kind(b), "sqlite") && strstr(dl_source(b), "path="),
          "kind and source: %s %s", dl_kind(b), dl_source(b));
    dl_close(b);
    {
        /* nothing of the temporary name is left */
        char cmd[4200];

        snprintf(cmd, sizeof(cmd), "ls %s | grep -q 'twice.db.new'", dir);
        CHECK(system(cmd) != 0, "no temporary file is left");
    }
    remove_db(p);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    dir = t_tmpdir();
    test_conformance();
    test_persist();
    test_killed();
    test_rows();
    test_zeroes();
    test_no_overwrite();
    differential("512", 256 << 10, 3000);
    differential("4096", 1 << 20, 2000);
    test_resize();
    test_flush();
    test_snapshot();
    test_refusals();
    test_create_existing();
    t_cleanup_dir(dir);
    free(dir);
    dl_ctx_free(ctx);
    return t_done();
}
