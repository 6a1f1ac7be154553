/* The error decorator over a ram disk: conformance while disabled (512-
 * and 4096-byte sectors); each mode failing exactly the requests it
 * names (all, nth, every, a seeded rate that repeats itself); the op-type
 * and byte-range filters; the errno chosen; off / on / reset and the
 * counters; exact counts under eight threads; failed requests never
 * reaching the disk below; and the settings refused, in the config form
 * and live, with messages that name them. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disklib/disklib.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;

#define SIZE (1u << 20)

/* error (with the given settings, NULL-terminated name/value pairs) over
 * a ram disk of `size` bytes and the given sector size; NULL with *msg
 * when refused. */
static struct dl_disk *open_va(const char *size, const char *sector,
                               char **msg, va_list ap)
{
    struct dl_node *top, *ram;
    struct dl_disk *d = NULL;
    int r = 0;

    if (dl_node_new(dl_find_driver("error"), &top) < 0)
        abort();
    for (const char *k; r == 0 && (k = va_arg(ap, const char *));)
        r = dl_node_set(top, k, va_arg(ap, const char *), msg);
    if (dl_node_new(dl_find_driver("ram"), &ram) < 0 ||
        dl_node_set(ram, "size", size, NULL) < 0 ||
        dl_node_set(ram, "sector", sector, NULL) < 0 ||
        dl_node_add_child(top, ram) < 0)
        abort();
    if (r == 0)
        r = dl_node_validate(top, msg);
    if (r == 0)
        r = dl_open(ctx, top, 0, &d, msg);
    dl_node_free(top);
    return r < 0 ? NULL : d;
}

static struct dl_disk *try_open(char **msg, ...)
{
    struct dl_disk *d;
    va_list ap;

    va_start(ap, msg);
    d = open_va("1M", "512", msg, ap);
    va_end(ap);
    return d;
}

static struct dl_disk *open_sized(const char *size, const char *sector, ...)
{
    _cleanup_free_ char *msg = NULL;
    struct dl_disk *d;
    va_list ap;

    va_start(ap, sector);
    d = open_va(size, sector, &msg, ap);
    va_end(ap);
    if (!d) {
        fprintf(stderr, "open: %s\n", msg ? msg : "?");
        abort();
    }
    return d;
}

/* open_error(NAME, VALUE, ..., NULL) over 1M of 512-byte sectors */
#define open_error(...) open_sized("1M", "512", __VA_ARGS__)

static int rd(struct dl_disk *d, uint64_t off, uint64_t len)
{
    static uint8_t buf[65536];

    return dl_pread(d, buf, off, len, NULL);
}

static int wr(struct dl_disk *d, uint64_t off, uint64_t len)
{
    static uint8_t buf[65536];

    memset(buf, 0x5a, sizeof(buf));
    return dl_pwrite(d, buf, off, len, NULL);
}

/* ---- pass-through ---- */

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (size_t i = 0; i < ARRAY_SIZE(sectors); i++) {
        char name[64];
        struct dl_disk *d = open_sized("4M", sectors[i], "enabled", "false",
                                       NULL);

        snprintf(name, sizeof(name), "error disabled sector=%s", sectors[i]);
        CHECK_EQ(dl_sector_size(d), atoi(sectors[i]), "sector size inherited");
        CHECK_EQ(dl_size(d), 4 << 20, "size inherited");
        CHECK_EQ(dl_unmap_behavior(d), DL_UNMAP_ZEROES,
                 "unmap behaviour inherited");
        conformance_run(d, &(struct conformance_opts){.name = name});
        CHECK_EQ(t_show_u64(dl_find_part(d, "error"), "matched"), 0,
                 "nothing matched while disabled");
        dl_close(d);
    }
}

/* ---- modes ---- */

static void test_mode_all(void)
{
    struct dl_disk *d = open_error(NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    struct dl_disk *below = dl_child(d, 0);
    uint8_t buf[512], marks[512];
    _cleanup_free_ char *text = NULL;

    CHECK(p == d, "dl_find_part finds the error part");
    text = t_show(p);
    CHECK(!strcmp(text, "enabled true\nerror EIO\nops all\noffset 0\n"
                        "length 0\nmode all\nseed 1\nmatched 0\n"
                        "injected 0\n"),
          "default settings text:\n%s", text);

    memset(marks, 0xaa, sizeof(marks));
    CHECK_EQ(dl_pwrite(below, marks, 4096, 512, NULL), 0, "write below");
    CHECK_EQ(rd(d, 0, 512), -EIO, "read fails with EIO");
    CHECK_EQ(wr(d, 4096, 512), -EIO, "write fails");
    CHECK_EQ(dl_flush(d, NULL), -EIO, "flush fails");
    CHECK_EQ(dl_zero(d, 4096, 512, NULL), -EIO, "zero fails");
    CHECK_EQ(dl_unmap(d, 4096, 512, NULL), -EIO, "unmap fails");
    CHECK_EQ(dl_pread(below, buf, 4096, 512, NULL), 0, "read below");
    CHECK(!memcmp(buf, marks, 512),
          "failed write, zero and unmap never reached the disk below");
    CHECK_EQ(t_show_u64(p, "matched"), 5, "5 matched");
    CHECK_EQ(t_show_u64(p, "injected"), 5, "5 injected");
    /* checks at the core still come first */
    CHECK_EQ(rd(d, SIZE, 512), -ERANGE, "out of range is -ERANGE");
    CHECK_EQ(rd(d, 1, 512), -EINVAL, "unaligned is -EINVAL");
    CHECK_EQ(t_show_u64(p, "matched"), 5, "refused requests do not count");
    dl_close(d);
}

static void test_mode_nth(void)
{
    struct dl_disk *d = open_error("nth", "3", "ops", "read", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *mode = t_show_line(p, "mode");

    CHECK(!strcmp(mode, "nth 3"), "mode nth 3: %s", mode);
    for (int i = 1; i <= 10; i++) {
        CHECK_EQ(rd(d, 0, 512), i == 3 ? -EIO : 0, "nth=3: read number");
        CHECK_EQ(wr(d, 0, 512), 0, "writes do not match ops=read");
    }
    CHECK_EQ(t_show_u64(p, "matched"), 10, "10 reads matched");
    CHECK_EQ(t_show_u64(p, "injected"), 1, "only the 3rd failed, once");
    dl_close(d);
}

static void test_mode_every(void)
{
    struct dl_disk *d = open_error("every", "3", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *mode = t_show_line(p, "mode");

    CHECK(!strcmp(mode, "every 3"), "mode every 3: %s", mode);
    for (int i = 1; i <= 10; i++)
        CHECK_EQ(i % 2 ? rd(d, 0, 512) : wr(d, 0, 512),
                 i % 3 == 0 ? -EIO : 0, "every=3: request number");
    CHECK_EQ(t_show_u64(p, "injected"), 3, "3, 6 and 9 failed");
    dl_close(d);
}

/* The pattern of 2000 reads, as a string of '.' and 'x'. */
static char *pattern(struct dl_disk *d, unsigned *ret_failed)
{
    char *s = malloc(2001);

    *ret_failed = 0;
    for (int i = 0; i < 2000; i++) {
        int r = rd(d, (uint64_t)(i % 64) * 512, 512);

        s[i] = r == 0 ? '.' : r == -EIO ? 'x' : '?';
        *ret_failed += r != 0;
    }
    s[2000] = '\0';
    return s;
}

static void test_mode_rate(void)
{
    struct dl_disk *d = open_error("rate", "10%", "seed", "7", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *e = NULL,
                        *mode = t_show_line(p, "mode");
    unsigned fa, fb, fc, fe;

    CHECK(!strcmp(mode, "rate 10%"), "mode rate 10%%: %s", mode);
    a = pattern(d, &fa);
    CHECK(fa >= 100 && fa <= 300, "10%% of 2000 reads: %u failed", fa);
    CHECK(!strchr(a, '?'), "failures are EIO");
    CHECK_EQ(t_show_u64(p, "injected"), fa, "injected counts them");
    CHECK_EQ(t_set(p, "reset"), 0, "reset");
    CHECK_EQ(t_show_u64(p, "matched"), 0, "reset zeroes matched");
    b = pattern(d, &fb);
    CHECK(!strcmp(a, b), "after reset the same seed fails the same reads");
    dl_close(d);

    /* a new disk with the same seed: the same again */
    d = open_error("rate", "10%", "seed", "7", NULL);
    c = pattern(d, &fc);
    CHECK(!strcmp(a, c), "a fresh open with seed 7 gives the same pattern");
    p = dl_find_part(d, "error");
    CHECK_EQ(t_set(p, "seed=8"), 0, "seed=8");
    e = pattern(d, &fe);
    CHECK(strcmp(a, e) != 0, "another seed gives another pattern");
    CHECK(fe >= 100 && fe <= 300, "seed 8: %u of 2000 failed", fe);

    CHECK_EQ(t_set(p, "rate=0%"), 0, "rate=0%");
    free(e);
    e = pattern(d, &fe);
    CHECK_EQ(fe, 0, "rate=0%: nothing fails");
    CHECK_EQ(t_show_u64(p, "matched"), 2000, "but all matched");
    CHECK_EQ(t_set(p, "rate=100%"), 0, "rate=100%");
    free(e);
    e = pattern(d, &fe);
    CHECK_EQ(fe, 2000, "rate=100%: everything fails");
    CHECK_EQ(t_set(p, "rate=0.5%"), 0, "rate=0.5%");
    free(mode);
    mode = t_show_line(p, "mode");
    CHECK(!strcmp(mode, "rate 0.5%"), "mode rate 0.5%%: %s", mode);
    CHECK_EQ(t_set(p, "rate=12.3456789%"), 0, "7 decimals");
    free(mode);
    mode = t_show_line(p, "mode");
    CHECK(!strcmp(mode, "rate 12.3456789%"), "mode: %s", mode);
    dl_close(d);
}

/* ---- filters ---- */

static void test_op_filter(void)
{
    struct dl_disk *d = open_error("ops", "write,flush", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *ops = t_show_line(p, "ops");

    CHECK(!strcmp(ops, "write,flush"), "ops shown: %s", ops);
    CHECK_EQ(rd(d, 0, 512), 0, "ops=write,flush: read passes");
    CHECK_EQ(wr(d, 0, 512), -EIO, "write fails");
    CHECK_EQ(dl_flush(d, NULL), -EIO, "flush fails");
    CHECK_EQ(dl_zero(d, 0, 512, NULL), 0, "zero passes");
    CHECK_EQ(dl_unmap(d, 0, 512, NULL), 0, "unmap passes");
    CHECK_EQ(t_show_u64(p, "matched"), 2, "2 matched");

    CHECK_EQ(t_set(p, "ops=zero"), 0, "ops=zero");
    CHECK_EQ(wr(d, 0, 512), 0, "ops=zero: write passes");
    CHECK_EQ(dl_zero(d, 0, 512, NULL), -EIO, "zero fails");
    CHECK_EQ(t_set(p, "ops=unmap,read"), 0, "ops=unmap,read");
    free(ops);
    ops = t_show_line(p, "ops");
    CHECK(!strcmp(ops, "read,unmap"), "ops shown in order: %s", ops);
    CHECK_EQ(dl_unmap(d, 0, 512, NULL), -EIO, "unmap fails");
    CHECK_EQ(rd(d, 0, 512), -EIO, "read fails");
    CHECK_EQ(dl_flush(d, NULL), 0, "flush passes");
    CHECK_EQ(t_set(p, "ops=read,write,flush,unmap,zero"), 0, "all five");
    free(ops);
    ops = t_show_line(p, "ops");
    CHECK(!strcmp(ops, "all"), "all five are shown as all: %s", ops);
    dl_close(d);
}

static void test_range_filter(void)
{
    struct dl_disk *d = open_error("offset", "64K", "length", "8K", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *off = t_show_line(p, "offset"),
                        *len = t_show_line(p, "length");

    CHECK(!strcmp(off, "64K") && !strcmp(len, "8K"), "range shown: %s %s",
          off, len);
    CHECK_EQ(rd(d, 0, 4096), 0, "a read before the range passes");
    CHECK_EQ(rd(d, 60 << 10, 4096), 0, "a read ending at the range passes");
    CHECK_EQ(rd(d, 60 << 10, 4608), -EIO, "a read reaching into it fails");
    CHECK_EQ(rd(d, 68 << 10, 512), -EIO, "a read inside fails");
    CHECK_EQ(rd(d, (72 << 10) - 512, 4096), -EIO,
             "a read from its last sector on fails");
    CHECK_EQ(rd(d, 72 << 10, 4096), 0, "a read after the range passes");
    CHECK_EQ(rd(d, 32 << 10, 64 << 10), -EIO, "a read over all of it fails");
    CHECK_EQ(wr(d, 64 << 10, 512), -EIO, "a write inside fails");
    CHECK_EQ(dl_zero(d, 0, 128 << 10, NULL), -EIO, "a zero over it fails");
    CHECK_EQ(dl_unmap(d, 72 << 10, 4096, NULL), 0, "an unmap after passes");
    CHECK_EQ(dl_flush(d, NULL), -EIO, "a flush fails whatever the range");

    CHECK_EQ(t_set(p, "offset=1020K length=0"), 0, "length 0: to the end");
    CHECK_EQ(rd(d, SIZE - 512, 512), -EIO, "the last sector fails");
    CHECK_EQ(rd(d, (1020 << 10) - 512, 512), 0, "the one before passes");
    CHECK_EQ(dl_settings_set(p, "offset=16777216T length=1", NULL), -EINVAL,
             "an offset of 2^64 is refused");
    CHECK_EQ(dl_settings_set(p, "length=99999999999999999999", NULL), -EINVAL,
             "a length past 2^64 is refused");
    CHECK_EQ(t_set(p, "offset=4K length=18446744073709551615"), 0,
             "offset + length past 2^64 reaches to the end");
    CHECK_EQ(rd(d, SIZE - 512, 512), -EIO, "the end fails");
    CHECK_EQ(rd(d, 0, 4096), 0, "before the offset passes");
    dl_close(d);
}

static void test_errno_choice(void)
{
    struct dl_disk *d = open_error("error", "ENOSPC", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *e = t_show_line(p, "error");

    CHECK(!strcmp(e, "ENOSPC"), "error shown: %s", e);
    CHECK_EQ(wr(d, 0, 512), -ENOSPC, "ENOSPC returned");
    CHECK_EQ(t_set(p, "error=1"), 0, "error=1");
    CHECK_EQ(rd(d, 0, 512), -EPERM, "a number: 1 is EPERM");
    free(e);
    e = t_show_line(p, "error");
    CHECK(!strcmp(e, "EPERM"), "shown by name: %s", e);
    CHECK_EQ(t_set(p, "error=eio"), 0, "names are case-insensitive");
    CHECK_EQ(rd(d, 0, 512), -EIO, "EIO");
    CHECK_EQ(t_set(p, "error=4000"), 0, "a number without a name");
    CHECK_EQ(rd(d, 0, 512), -4000, "returned as it is");
    free(e);
    e = t_show_line(p, "error");
    CHECK(!strcmp(e, "4000"), "shown as the number: %s", e);
    CHECK_EQ(t_set(p, "seed=3"), 0, "another setting keeps it");
    CHECK_EQ(rd(d, 0, 512), -4000, "still 4000");
    CHECK_EQ(t_set(p, "error EROFS"), 0, "the printed form 'error EROFS'");
    CHECK_EQ(rd(d, 0, 512), -EROFS, "EROFS");
    dl_close(d);
}

/* ---- commands and counters ---- */

static void test_on_off_reset(void)
{
    struct dl_disk *d = open_error("nth", "2", "enabled", "false", NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *en = t_show_line(p, "enabled");

    CHECK(!strcmp(en, "false"), "enabled false: %s", en);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rd(d, 0, 512), 0, "disabled: reads pass");
    CHECK_EQ(t_show_u64(p, "matched"), 0, "and are not counted");

    CHECK_EQ(t_set(p, "on"), 0, "on");
    CHECK_EQ(rd(d, 0, 512), 0, "on: 1st passes");
    CHECK_EQ(rd(d, 0, 512), -EIO, "2nd fails");
    CHECK_EQ(rd(d, 0, 512), 0, "3rd passes");
    CHECK_EQ(t_show_u64(p, "matched"), 3, "3 matched");
    CHECK_EQ(t_show_u64(p, "injected"), 1, "1 injected");

    CHECK_EQ(t_set(p, "off"), 0, "off");
    CHECK_EQ(rd(d, 0, 512), 0, "off: passes");
    CHECK_EQ(t_show_u64(p, "matched"), 3, "off keeps the counters");
    CHECK_EQ(t_show_u64(p, "injected"), 1, "both");

    CHECK_EQ(t_set(p, "on"), 0, "on again");
    CHECK_EQ(t_show_u64(p, "matched"), 0, "enabling starts the count afresh");
    CHECK_EQ(rd(d, 0, 512), 0, "1st passes");
    CHECK_EQ(rd(d, 0, 512), -EIO, "2nd fails again");

    CHECK_EQ(t_set(p, "reset"), 0, "reset");
    CHECK_EQ(t_show_u64(p, "matched"), 0, "reset: matched 0");
    CHECK_EQ(t_show_u64(p, "injected"), 0, "reset: injected 0");
    CHECK_EQ(rd(d, 0, 512), 0, "1st passes");
    CHECK_EQ(rd(d, 0, 512), -EIO, "2nd fails after reset");

    CHECK_EQ(t_set(p, "enabled=false"), 0, "enabled=false");
    CHECK_EQ(rd(d, 0, 512), 0, "passes");
    CHECK_EQ(t_set(p, "enabled=true"), 0, "enabled=true");
    CHECK_EQ(rd(d, 0, 512), 0, "1st passes");
    CHECK_EQ(rd(d, 0, 512), -EIO, "2nd fails");

    /* setting values starts the count again; a mode replaces the mode */
    CHECK_EQ(t_set(p, "every=2"), 0, "every=2 replaces nth=2");
    CHECK_EQ(t_show_u64(p, "matched"), 0, "a new setting resets the count");
    for (int i = 1; i <= 6; i++)
        CHECK_EQ(rd(d, 0, 512), i % 2 ? 0 : -EIO, "every=2");
    CHECK_EQ(t_show_u64(p, "injected"), 3, "3 injected");
    CHECK_EQ(t_set(p, "mode=all"), 0, "mode=all");
    free(en);
    en = t_show_line(p, "mode");
    CHECK(!strcmp(en, "all"), "mode all: %s", en);
    CHECK_EQ(rd(d, 0, 512), -EIO, "everything fails");
    CHECK_EQ(t_set(p, "nth=1 error=ENOSPC ops=write"), 0, "several at once");
    CHECK_EQ(rd(d, 0, 512), 0, "a read passes");
    CHECK_EQ(wr(d, 0, 512), -ENOSPC, "the first write fails");
    CHECK_EQ(wr(d, 0, 512), 0, "the second passes");
    {
        _cleanup_free_ char *text = t_show(p);

        CHECK(!strcmp(text, "enabled true\nerror ENOSPC\nops write\n"
                            "offset 0\nlength 0\nmode nth 1\nseed 1\n"
                            "matched 2\ninjected 1\n"),
              "settings text:\n%s", text);
    }
    dl_close(d);
}

struct worker {
    struct dl_disk *d;
    unsigned failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[512];

    for (int i = 0; i < 500; i++)
        w->failed += dl_pread(w->d, buf, (uint64_t)(i % 128) * 512, 512,
                              NULL) != 0;
    return NULL;
}

static unsigned run_threads(struct dl_disk *d)
{
    pthread_t t[8];
    struct worker w[8];
    unsigned failed = 0;

    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.d = d};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        failed += w[i].failed;
    }
    return failed;
}

static void test_threads(void)
{
    struct dl_disk *d = open_error("every", "10", NULL);
    struct dl_disk *p = dl_find_part(d, "error");

    CHECK_EQ(run_threads(d), 400, "8 threads x 500 reads, every=10: 400 fail");
    CHECK_EQ(t_show_u64(p, "matched"), 4000, "4000 matched");
    CHECK_EQ(t_show_u64(p, "injected"), 400, "400 injected");
    CHECK_EQ(t_set(p, "nth=1234"), 0, "nth=1234");
    CHECK_EQ(run_threads(d), 1, "8 threads: exactly one fails");
    CHECK_EQ(t_set(p, "rate=25% seed=99"), 0, "rate=25%");
    {
        unsigned f = run_threads(d);

        CHECK(f >= 500 && f <= 1500, "25%% of 4000 under threads: %u", f);
        CHECK_EQ(t_show_u64(p, "injected"), f, "injected matches");
    }
    dl_close(d);
}

/* ---- refusals ---- */

static void test_config_refusals(void)
{
    static const struct {
        const char *k1, *v1, *k2, *v2, *want[2];
    } bad[] = {
        {"error", "EFOO", NULL, NULL, {"error 'EFOO'", "errno name"}},
        {"error", "ENOSYS", NULL, NULL, {"ENOSYS", "not implemented"}},
        {"error", "38", NULL, NULL, {"ENOSYS", "not implemented"}},
        {"error", "0", NULL, NULL, {"error '0'", "1 to 4095"}},
        {"error", "4096", NULL, NULL, {"error '4096'", NULL}},
        {"nth", "2", "every", "3", {"nth and every", "at most one"}},
        {"rate", "1%", "nth", "3", {"nth and rate", "at most one"}},
        {"rate", "101%", NULL, NULL, {"rate '101%'", "100%"}},
        {"rate", "100.5%", NULL, NULL, {"rate '100.5%'", "100%"}},
        {"rate", "10", NULL, NULL, {"rate '10'", "percentage"}},
        {"rate", "0.1", NULL, NULL, {"rate '0.1'", "percentage"}},
        {"rate", "-1%", NULL, NULL, {"rate '-1%'", NULL}},
        {"rate", "1.%", NULL, NULL, {"rate '1.%'", NULL}},
        {"rate", "0.00000001%", NULL, NULL, {"decimals", NULL}},
        {"ops", "read,bogus", NULL, NULL, {"ops 'read,bogus'", "'bogus'"}},
        {"ops", "", NULL, NULL, {"ops ''", "comma list"}},
        {"ops", "read,", NULL, NULL, {"ops 'read,'", NULL}},
    };

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *msg = NULL;
        struct dl_disk *d = try_open(&msg, bad[i].k1, bad[i].v1, bad[i].k2,
                                     bad[i].v2, NULL);

        CHECK(d == NULL, "%s=%s %s=%s is refused", bad[i].k1, bad[i].v1,
              bad[i].k2 ? bad[i].k2 : "", bad[i].v2 ? bad[i].v2 : "");
        if (d)
            dl_close(d);
        for (int j = 0; j < 2; j++)
            if (bad[i].want[j])
                CHECK(msg && strstr(msg, bad[i].want[j]),
                      "%s=%s: message '%s' has '%s'", bad[i].k1, bad[i].v1,
                      msg ? msg : "(none)", bad[i].want[j]);
    }
    {
        _cleanup_free_ char *msg = NULL;
        struct dl_disk *d = try_open(&msg, "nth", "0", NULL);

        CHECK(!d && msg && strstr(msg, "from 1"), "nth=0 refused: %s",
              msg ? msg : "(none)");
    }
}

static void test_live_refusals(void)
{
    static const struct {
        const char *cmd, *want[2];
    } bad[] = {
        {"", {"empty", NULL}},
        {"frobnicate", {"'frobnicate'", "name=value"}},
        {"on off", {"'off'", "on takes nothing"}},
        {"reset now", {"'now'", "reset takes nothing"}},
        {"error=EFOO", {"error 'EFOO'", "errno"}},
        {"error=ENOSYS", {"ENOSYS", "not implemented"}},
        {"nth=2 every=3", {"'nth=2' and 'every=3'", "at most one"}},
        {"rate=1% mode=all", {"'rate=1%' and 'mode=all'", NULL}},
        {"rate=150%", {"rate '150%'", "100%"}},
        {"rate=5", {"rate '5'", "percentage"}},
        {"bogus=1", {"'bogus=1'", "unknown setting 'bogus'"}},
        {"nth=0", {"'nth=0'", "from 1"}},
        {"every=x", {"'every=x'", "integer"}},
        {"offset=abc", {"'offset=abc'", "size"}},
        {"enabled=maybe", {"'enabled=maybe'", "true or false"}},
        {"seed=-1", {"'seed=-1'", "integer"}},
        {"mode=nth", {"'mode=nth'", "nth="}},
        {"ops=write,read,nope", {"'nope'", NULL}},
        {"error=ENOSPC ops=nope", {"'nope'", NULL}},
        {"seed=5 nth", {"'nth'", "name=value"}},
        {"colour red", {"unknown setting 'colour'", NULL}},
    };
    struct dl_disk *d = open_error("nth", "5", "ops", "read", "seed", "42",
                                   NULL);
    struct dl_disk *p = dl_find_part(d, "error");
    _cleanup_free_ char *before = NULL;

    rd(d, 0, 512);
    rd(d, 0, 512);
    before = t_show(p);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        t_set_refused(p, bad[i].cmd, bad[i].want[0], bad[i].want[1], before);
    t_set_refuses_long_lines(p, "nth=1", before);
    CHECK_EQ(dl_settings_set(p, "rate=200%", NULL), -EINVAL,
             "refused without a message pointer too");
    CHECK_EQ(rd(d, 0, 512), 0, "3rd read passes");
    CHECK_EQ(rd(d, 0, 512), 0, "4th read passes");
    CHECK_EQ(rd(d, 0, 512), -EIO, "the count went on: the 5th fails");
    dl_close(d);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    test_conformance();
    test_mode_all();
    test_mode_nth();
    test_mode_every();
    test_mode_rate();
    test_op_filter();
    test_range_filter();
    test_errno_choice();
    test_on_off_reset();
    test_threads();
    test_config_refusals();
    test_live_refusals();
    dl_ctx_free(ctx);
    return t_done();
}
