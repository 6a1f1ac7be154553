/* The delay decorator over a ram disk: conformance in its pass-through
 * state (512- and 4096-byte sectors), each op taking at least its delay
 * (a lower bound is the only time assertion made), requests sleeping
 * concurrently (shown by the peak of requests in flight, never by wall
 * time), live changes through dl_settings_set, refused command lines that
 * change nothing, and the settings text. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "disklib/disklib.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;

static struct dl_node *node_va(const char *drv, va_list ap)
{
    struct dl_node *n;
    char *msg = NULL;

    if (dl_node_new(dl_find_driver(drv), &n) < 0)
        abort();
    for (const char *k; (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *);

        if (dl_node_set(n, k, v, &msg) < 0) {
            fprintf(stderr, "%s=%s: %s\n", k, v, msg);
            abort();
        }
    }
    return n;
}

/* delay (with the given settings, NULL-terminated pairs) over a ram disk
 * of 4M with the given sector size. */
static struct dl_disk *open_delay(const char *sector, unsigned flags, ...)
{
    struct dl_node *top, *ram;
    struct dl_disk *d = NULL;
    char *msg = NULL;
    va_list ap;

    va_start(ap, flags);
    top = node_va("delay", ap);
    va_end(ap);
    if (dl_node_new(dl_find_driver("ram"), &ram) < 0 ||
        dl_node_set(ram, "size", "4M", &msg) < 0 ||
        dl_node_set(ram, "sector", sector, &msg) < 0 ||
        dl_node_add_child(top, ram) < 0)
        abort();
    if (dl_node_validate(top, &msg) < 0 ||
        dl_open(ctx, top, flags, &d, &msg) < 0) {
        fprintf(stderr, "open: %s\n", msg ? msg : "?");
        abort();
    }
    dl_node_free(top);
    return d;
}

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000 + (uint64_t)t.tv_nsec;
}

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (size_t i = 0; i < ARRAY_SIZE(sectors); i++) {
        char name[64];
        struct dl_disk *d = open_delay(sectors[i], 0, NULL);

        snprintf(name, sizeof(name), "delay 0 sector=%s", sectors[i]);
        CHECK_EQ(dl_sector_size(d), atoi(sectors[i]), "sector size inherited");
        CHECK_EQ(dl_size(d), 4 << 20, "size inherited");
        CHECK_EQ(dl_unmap_behavior(d), DL_UNMAP_ZEROES,
                 "unmap behaviour inherited");
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        d = open_delay(sectors[i], DL_OPEN_RDONLY, NULL);
        snprintf(name, sizeof(name), "delay 0 read-only sector=%s",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
    }
}

/* Run op on d and return how long it took, in ns; its result in *ret. */
enum op { OP_READ, OP_WRITE, OP_FLUSH, OP_ZERO, OP_UNMAP };
static const char *const op_name[] = {"read", "write", "flush", "zero",
                                      "unmap"};

static uint64_t timed(struct dl_disk *d, enum op op, int *ret)
{
    static uint8_t buf[4096];
    uint64_t t0 = now_ns();

    switch (op) {
    case OP_READ: *ret = dl_pread(d, buf, 8192, 4096, NULL); break;
    case OP_WRITE: *ret = dl_pwrite(d, buf, 8192, 4096, NULL); break;
    case OP_FLUSH: *ret = dl_flush(d, NULL); break;
    case OP_ZERO: *ret = dl_zero(d, 8192, 4096, NULL); break;
    case OP_UNMAP: *ret = dl_unmap(d, 8192, 4096, NULL); break;
    }
    return now_ns() - t0;
}

static void test_each_op_delayed(void)
{
    struct dl_disk *d = open_delay("512", 0, "read", "20ms", "write", "30ms",
                                   "flush", "40ms", "unmap", "50ms", NULL);
    struct dl_disk *p = dl_find_part(d, "delay");
    /* zero counts as a write */
    const uint64_t want[] = {20000000, 30000000, 40000000, 30000000,
                             50000000};
    _cleanup_free_ char *text = NULL;

    CHECK(p == d, "dl_find_part finds the delay part at the top");
    for (int op = OP_READ; op <= OP_UNMAP; op++) {
        int r;
        uint64_t t = timed(d, (enum op)op, &r);

        CHECK_EQ(r, 0, op_name[op]);
        CHECK(t >= want[op], "%s took %" PRIu64 " ns, at least %" PRIu64,
              op_name[op], t, want[op]);
    }
    text = t_show(p);
    CHECK(!strcmp(text, "read 20ms\nwrite 30ms\nflush 40ms\nunmap 50ms\n"
                        "in_flight 0\nmax_in_flight 1\nrequests 5\n"),
          "settings text:\n%s", text);
    dl_close(d);
}

/* ---- concurrency ---- */

struct reader {
    struct dl_disk *d, *part;
    unsigned done;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    uint8_t buf[512];

    /* Keep reading until all eight were seen inside at once (or give up
     * after 200 reads, which fails the check below): each thread spends
     * nearly all its time asleep inside the part, so they soon overlap. */
    for (unsigned i = 0; i < 200; i++) {
        if (dl_pread(rd->d, buf, 512 * (uint64_t)i, 512, NULL) < 0)
            break;
        rd->done++;
        if (t_show_u64(rd->part, "max_in_flight") >= 8)
            break;
    }
    return NULL;
}

static void test_concurrency(void)
{
    struct dl_disk *d = open_delay("512", 0, "read", "50ms", NULL);
    struct dl_disk *p = dl_find_part(d, "delay");
    pthread_t t[8];
    struct reader rd[8];
    uint64_t total = 0;

    for (int i = 0; i < 8; i++) {
        rd[i] = (struct reader){.d = d, .part = p};
        pthread_create(&t[i], NULL, reader_main, &rd[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += rd[i].done;
    }
    CHECK_EQ(t_show_u64(p, "max_in_flight"), 8,
             "eight readers sleep in the part at the same time");
    CHECK_EQ(t_show_u64(p, "in_flight"), 0, "none left in flight");
    CHECK_EQ(t_show_u64(p, "requests"), total, "every read counted");

    CHECK_EQ(t_set(p, "reset"), 0, "reset");
    CHECK_EQ(t_show_u64(p, "max_in_flight"), 0, "reset zeroes the peak");
    CHECK_EQ(t_show_u64(p, "requests"), 0, "reset zeroes the requests");
    dl_close(d);
}

/* ---- live settings ---- */

static void test_live_change(void)
{
    struct dl_disk *d = open_delay("512", 0, NULL);
    struct dl_disk *p = dl_find_part(d, "delay");
    _cleanup_free_ char *text = NULL;
    uint64_t t;
    int r;

    text = t_show(p);
    CHECK(!strcmp(text, "read 0s\nwrite 0s\nflush 0s\nunmap 0s\n"
                        "in_flight 0\nmax_in_flight 0\nrequests 0\n"),
          "default settings text:\n%s", text);
    free(text);

    timed(d, OP_READ, &r);
    CHECK_EQ(t_set(p, "read=40ms"), 0, "set read=40ms");
    t = timed(d, OP_READ, &r);
    CHECK(r == 0 && t >= 40000000,
          "the next read takes the new delay (%" PRIu64 " ns)", t);

    CHECK_EQ(t_set(p, "all=15ms"), 0, "set all=15ms");
    for (int op = OP_READ; op <= OP_UNMAP; op++) {
        t = timed(d, (enum op)op, &r);
        CHECK(r == 0 && t >= 15000000, "all=15ms: %s took %" PRIu64 " ns",
              op_name[op], t);
    }

    CHECK_EQ(t_set(p, "read=1500us write=2s flush=7ns unmap=0ms"), 0,
             "several tokens at once");
    text = t_show(p);
    CHECK(!strncmp(text, "read 1500us\nwrite 2s\nflush 7ns\nunmap 0s\n", 40),
          "each token applied, printed in the config form:\n%s", text);
    free(text);

    CHECK_EQ(t_set(p, "write 3ms"), 0, "the printed form 'write 3ms'");
    CHECK_EQ(t_set(p, "\tflush=1ms   unmap=2ms "), 0, "extra blanks");
    text = t_show(p);
    CHECK(!strncmp(text, "read 1500us\nwrite 3ms\nflush 1ms\nunmap 2ms\n", 42),
          "after the printed form:\n%s", text);
    free(text);
    text = NULL;

    CHECK_EQ(t_set(p, "all=0s"), 0, "all=0s");
    CHECK(!strncmp(text = t_show(p), "read 0s\nwrite 0s\nflush 0s\nunmap 0s\n",
                   32),
          "all back to zero");
    dl_close(d);
}

static void test_refusals(void)
{
    static const struct {
        const char *cmd, *want[2];
    } bad[] = {
        {"", {"empty", NULL}},
        {"   ", {"empty", NULL}},
        {"read=5", {"'read=5'", "unit"}},
        {"read=", {"'read='", "duration"}},
        {"read=-5ms", {"'read=-5ms'", "duration"}},
        {"read=5 ms", {"'read=5'", "unit"}},
        {"read=5minutes", {"'read=5minutes'", "unit"}},
        {"speed=5ms", {"unknown setting 'speed'", "read, write"}},
        {"=5ms", {"unknown setting ''", NULL}},
        {"read5ms", {"'read5ms'", "name=value"}},
        {"read=5ms write=oops", {"'write=oops'", "duration"}},
        {"read=5ms bogus", {"'bogus'", "name=value"}},
        {"reset now", {"'now'", "reset"}},
        {"read=99999999999999999999s", {"64 bits", NULL}},
        {"read=99999999999s", {"64 bits", NULL}},
        {"fast 5ms", {"unknown setting 'fast'", NULL}},
    };
    struct dl_disk *d = open_delay("512", 0, "read", "1ms", "write", "2ms",
                                   NULL);
    struct dl_disk *p = dl_find_part(d, "delay");
    _cleanup_free_ char *before = t_show(p);

    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        t_set_refused(p, bad[i].cmd, bad[i].want[0], bad[i].want[1], before);
    t_set_refuses_long_lines(p, "read=1ms", before);
    CHECK_EQ(dl_settings_set(p, "read=5", NULL), -EINVAL,
             "refused without a message pointer too");
    dl_close(d);

    /* the config form refuses a duration without a unit */
    {
        struct dl_node *n;
        char *msg = NULL;

        dl_node_new(dl_find_driver("delay"), &n);
        CHECK(dl_node_set(n, "read", "5", &msg) < 0 && msg &&
                  strstr(msg, "unit"),
              "config read=5 refused: %s", msg ? msg : "(no message)");
        free(msg);
        dl_node_free(n);
    }
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    test_conformance();
    test_each_op_delayed();
    test_concurrency();
    test_live_change();
    test_refusals();
    dl_ctx_free(ctx);
    return t_done();
}
