/* The core, with small drivers written for the test: request checking
 * before any driver, splitting to declared limits, thread models enforced
 * per driver, defaults for missing ops, forwarding through a decorator,
 * resize notification up the stack, the reservation table lookup, the
 * byte interface's read-modify-write under concurrency, and open errors
 * that name the part (and free half-built stacks). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;

/* ---- tmem: a RAM backend that counts what reaches it ---- */

struct tmem_state {
    uint8_t *data;
    atomic_int inflight, max_inflight;
    atomic_uint calls, writes;
    atomic_ullong max_len;
    atomic_uint last_flags;
    unsigned delay_us;
};

/* shared by every disk of the serialize-all driver */
static atomic_int all_inflight, all_max_inflight;

static const struct dl_param tmem_params[] = {
    {.name = "size", .type = DL_P_SIZE, .required = true, .help = "size"},
    {.name = "sector", .type = DL_P_UINT, .def = "512", .min = 512,
     .max = 4096, .multiple_of = 512, .help = "sector size"},
    {.name = "delay", .type = DL_P_UINT, .def = "0", .max = 100000,
     .help = "microseconds to sleep in each read"},
    {.name = "maxio", .type = DL_P_SIZE, .def = "0", .help = "max_io"},
};

static int tmem_open(struct dl_disk *d, const struct dl_node *n,
                     unsigned flags, char **msg)
{
    struct tmem_state *s = d->state;
    uint64_t size = dl_node_u64(n, 0);

    s->data = calloc(1, size ? size : 1);
    if (!s->data)
        return -ENOMEM;
    atomic_store(&d->size, size);
    d->lss = (uint32_t)dl_node_u64(n, 1);
    d->pss = d->lss;
    s->delay_us = (unsigned)dl_node_u64(n, 2);
    d->max_io = dl_node_u64(n, 3);
    d->max_discard = d->max_io;
    d->unmap_behavior = DL_UNMAP_ZEROES;
    dl_disk_set_source(d, "size=%" PRIu64, size);
    return 0;
}

static void tmem_close(struct dl_disk *d)
{
    struct tmem_state *s = d->state;

    free(s->data);
}

static void enter(struct dl_disk *d, uint64_t len, const struct dl_req *rq)
{
    struct tmem_state *s = d->state;
    int n = atomic_fetch_add(&s->inflight, 1) + 1;
    int m = atomic_load(&s->max_inflight);

    while (n > m && !atomic_compare_exchange_weak(&s->max_inflight, &m, n))
        ;
    if (d->drv->thread_model == DL_THREAD_SERIALIZE_ALL) {
        n = atomic_fetch_add(&all_inflight, 1) + 1;
        m = atomic_load(&all_max_inflight);
        while (n > m &&
               !atomic_compare_exchange_weak(&all_max_inflight, &m, n))
            ;
    }
    atomic_fetch_add(&s->calls, 1);
    unsigned long long ml = atomic_load(&s->max_len);
    while (len > ml && !atomic_compare_exchange_weak(&s->max_len, &ml, len))
        ;
    atomic_store(&s->last_flags, rq ? rq->flags : 0);
}

static void leave(struct dl_disk *d)
{
    struct tmem_state *s = d->state;

    if (d->drv->thread_model == DL_THREAD_SERIALIZE_ALL)
        atomic_fetch_sub(&all_inflight, 1);
    atomic_fetch_sub(&s->inflight, 1);
}

static int tmem_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                     const struct dl_req *rq)
{
    struct tmem_state *s = d->state;

    enter(d, len, rq);
    memcpy(buf, s->data + off, len);
    if (s->delay_us)
        usleep(s->delay_us);
    leave(d);
    return 0;
}

static int tmem_write(struct dl_disk *d, const void *buf, uint64_t off,
                      uint64_t len, const struct dl_req *rq)
{
    struct tmem_state *s = d->state;

    enter(d, len, rq);
    atomic_fetch_add(&s->writes, 1);
    memcpy(s->data + off, buf, len);
    leave(d);
    return 0;
}

static int tmem_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                      const struct dl_req *rq)
{
    struct tmem_state *s = d->state;

    enter(d, len, rq);
    memset(s->data + off, 0, len);
    leave(d);
    return 0;
}

static int tmem_resize(struct dl_disk *d, uint64_t size, char **msg)
{
    struct tmem_state *s = d->state;
    uint64_t old = dl_size(d);
    uint8_t *p = realloc(s->data, size ? size : 1);

    if (!p)
        return -ENOMEM;
    if (size > old)
        memset(p + old, 0, size - old);
    s->data = p;
    dl_disk_set_size(d, size);
    return 0;
}

/* RAM keeps nothing in a volatile cache: flush may be left out. */
static int tmem_open_nocache(struct dl_disk *d, const struct dl_node *n,
                             unsigned flags, char **msg)
{
    d->no_volatile_cache = true;
    return tmem_open(d, n, flags, msg);
}

#define TMEM(ident, model, opener)                                             \
    static const struct dl_driver ident = {                                    \
        .name = #ident,                                                        \
        .state_size = sizeof(struct tmem_state),                               \
        .thread_model = model,                                                 \
        .params = tmem_params,                                                 \
        .nparams = ARRAY_SIZE(tmem_params),                                    \
        .open = opener,                                                        \
        .close = tmem_close,                                                   \
        .read = tmem_read,                                                     \
        .write = tmem_write,                                                   \
        .unmap = tmem_unmap,                                                   \
        .resize = tmem_resize,                                                 \
    }
TMEM(tmem_par, DL_THREAD_PARALLEL, tmem_open_nocache);
TMEM(tmem_serial, DL_THREAD_SERIALIZE_DISK, tmem_open_nocache);
TMEM(tmem_all, DL_THREAD_SERIALIZE_ALL, tmem_open_nocache);
/* neither flush nor the claim: must be refused */
TMEM(tmem_flushless, DL_THREAD_PARALLEL, tmem_open);

/* ---- tpass: a decorator that implements nothing but open ---- */

static int tpass_open(struct dl_disk *d, const struct dl_node *n,
                      unsigned flags, char **msg)
{
    return 0;
}

static const struct dl_driver tpass = {
    .name = "tpass",
    .min_children = 1,
    .max_children = 1,
    .open = tpass_open,
};

/* ---- tpr: a decorator with a reservation table ---- */

static atomic_int pr_registers;

static int tpr_register(struct dl_disk *d, const char *who, uint64_t old,
                        uint64_t new_key, unsigned flags)
{
    atomic_fetch_add(&pr_registers, 1);
    return strcmp(who, "fd-1") == 0 && new_key == 0x1234 ? 0 : -EBADE;
}

static const struct dl_pr_ops tpr_ops = {.register_key = tpr_register};

static const struct dl_driver tpr = {
    .name = "tpr",
    .min_children = 1,
    .max_children = 1,
    .open = tpass_open,
    .pr = &tpr_ops,
};

/* ---- tbad: geometry a disk must not have ---- */

static atomic_int bad_closes;

static int tbad_open(struct dl_disk *d, const struct dl_node *n,
                     unsigned flags, char **msg)
{
    atomic_store(&d->size, 1 << 20);
    d->lss = 1000;
    d->pss = 1000;
    d->no_volatile_cache = true;
    return 0;
}

static void tbad_close(struct dl_disk *d)
{
    atomic_fetch_add(&bad_closes, 1);
}

static const struct dl_param tbad_params[] = {
    {.name = "name", .type = DL_P_STRING, .def = "thing", .help = "name"},
};

static const struct dl_driver tbad = {
    .name = "tbad",
    .params = tbad_params,
    .nparams = ARRAY_SIZE(tbad_params),
    .open = tbad_open,
    .close = tbad_close,
    .read = tmem_read,
};

/* ---- helpers ---- */

static struct dl_node *mem_node(const struct dl_driver *drv, const char *size,
                                const char *sector, const char *delay,
                                const char *maxio)
{
    struct dl_node *n;
    char *msg = NULL;

    if (dl_node_new(drv, &n) < 0 || dl_node_set(n, "size", size, &msg) < 0 ||
        dl_node_set(n, "sector", sector, &msg) < 0 ||
        (delay && dl_node_set(n, "delay", delay, &msg) < 0) ||
        (maxio && dl_node_set(n, "maxio", maxio, &msg) < 0) ||
        dl_node_validate(n, &msg) < 0) {
        fprintf(stderr, "node: %s\n", msg ? msg : "?");
        abort();
    }
    return n;
}

static struct dl_node *wrap(const struct dl_driver *drv, struct dl_node *child)
{
    struct dl_node *n;

    if (dl_node_new(drv, &n) < 0 || dl_node_add_child(n, child) < 0)
        abort();
    return n;
}

static struct dl_disk *open_or_die(struct dl_node *n, unsigned flags)
{
    struct dl_disk *d;
    char *msg = NULL;

    if (dl_open(ctx, n, flags, &d, &msg) < 0) {
        fprintf(stderr, "open: %s\n", msg ? msg : "?");
        abort();
    }
    dl_node_free(n);
    return d;
}

static struct tmem_state *mem_of(struct dl_disk *d)
{
    while (dl_nchildren(d))
        d = dl_child(d, 0);
    return d->state;
}

/* ---- tests ---- */

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (int i = 0; i < 2; i++) {
        struct dl_disk *d;
        char name[64];

        d = open_or_die(mem_node(&tmem_par, "2M", sectors[i], NULL, NULL), 0);
        snprintf(name, sizeof(name), "tmem sector=%s", sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        d = open_or_die(wrap(&tpass, mem_node(&tmem_par, "2M", sectors[i],
                                              NULL, "8K")),
                        0);
        snprintf(name, sizeof(name), "tpass over tmem sector=%s max_io=8K",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        d = open_or_die(wrap(&tpass, mem_node(&tmem_par, "2M", sectors[i],
                                              NULL, NULL)),
                        DL_OPEN_RDONLY);
        snprintf(name, sizeof(name), "tpass over tmem sector=%s read-only",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
    }
}

static void test_checks_before_driver(void)
{
    struct dl_disk *d =
        open_or_die(mem_node(&tmem_par, "1M", "512", NULL, NULL), 0);
    struct tmem_state *s = mem_of(d);
    uint8_t buf[1024];

    atomic_store(&s->calls, 0);
    dl_pread(d, buf, 1 << 20, 512, NULL);
    dl_pread(d, buf, UINT64_MAX - 511, 512, NULL);
    dl_pwrite(d, buf, 1ull << 63, 512, NULL);
    dl_pwrite(d, buf, 3, 512, NULL);
    dl_zero(d, 0, 512, &(struct dl_req){.flags = 1u << 9});
    dl_pread(d, buf, 0, 0, NULL);
    CHECK_EQ(atomic_load(&s->calls), 0,
             "bad and empty requests never reach the driver");
    dl_pwrite(d, buf, 0, 512, &(struct dl_req){.flags = DL_F_FUA});
    CHECK_EQ(atomic_load(&s->last_flags), DL_F_FUA,
             "FUA reaches the driver");
    dl_close(d);
}

static void test_split_and_zero_default(void)
{
    struct dl_disk *d =
        open_or_die(mem_node(&tmem_par, "1M", "512", NULL, "8K"), 0);
    struct tmem_state *s = mem_of(d);
    uint8_t *buf = malloc(64 << 10);

    memset(buf, 0xee, 64 << 10);
    atomic_store(&s->calls, 0);
    CHECK_EQ(dl_pwrite(d, buf, 4096, 64 << 10, NULL), 0, "64K write");
    CHECK_EQ(atomic_load(&s->calls), 8, "64K arrives as 8 pieces of 8K");
    CHECK_EQ(atomic_load(&s->max_len), 8192, "no piece above max_io");
    atomic_store(&s->calls, 0);
    atomic_store(&s->writes, 0);
    CHECK_EQ(dl_zero(d, 4096, 64 << 10, NULL), 0, "zero without a zero op");
    CHECK_EQ(atomic_load(&s->writes), 8,
             "the default zero writes zeroes, split to max_io");
    CHECK(s->data[4096] == 0 && s->data[4096 + (64 << 10) - 1] == 0 &&
              s->data[4095] == 0 && s->data[4096 + (64 << 10)] == 0,
          "zeroed where asked");
    memset(s->data + 4096, 0xee, 64 << 10);
    atomic_store(&s->writes, 0);
    CHECK_EQ(dl_zero(d, 4096, 16 << 10, &(struct dl_req){.flags =
                                                            DL_F_MAY_TRIM}),
             0, "zero with MAY_TRIM");
    CHECK_EQ(atomic_load(&s->writes), 0,
             "MAY_TRIM on an unmap-zeroes disk unmaps instead of writing");
    CHECK(s->data[4096] == 0 && s->data[4096 + (16 << 10) - 1] == 0,
          "and reads back zeroes");
    free(buf);
    dl_close(d);
}

struct hammer {
    struct dl_disk *d;
    unsigned n;
};

static void *hammer_reads(void *arg)
{
    struct hammer *h = arg;
    uint8_t buf[4096];

    for (unsigned i = 0; i < h->n; i++)
        dl_pread(h->d, buf, (i % 64) * 4096, 4096, NULL);
    return NULL;
}

static int max_inflight(struct dl_disk **disks, int ndisks, int threads,
                        unsigned n)
{
    pthread_t t[16];
    struct hammer h[16];
    int m = 0;

    for (int i = 0; i < threads; i++) {
        h[i] = (struct hammer){.d = disks[i % ndisks], .n = n};
        pthread_create(&t[i], NULL, hammer_reads, &h[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < ndisks; i++)
        m = MAX(m, atomic_load(&mem_of(disks[i])->max_inflight));
    return m;
}

static void test_thread_models(void)
{
    struct dl_disk *d[2];
    int m;

    d[0] = open_or_die(mem_node(&tmem_serial, "1M", "512", "200", NULL), 0);
    m = max_inflight(d, 1, 4, 50);
    CHECK_EQ(m, 1, "serialize-disk: one request at a time");
    dl_close(d[0]);

    d[0] = open_or_die(mem_node(&tmem_par, "1M", "512", "2000", NULL), 0);
    m = max_inflight(d, 1, 4, 50);
    CHECK(m >= 2, "parallel: requests overlap (%d at once)", m);
    dl_close(d[0]);

    /* two disks of a serialize-all driver: one request across both */
    d[0] = open_or_die(mem_node(&tmem_all, "1M", "512", "200", NULL), 0);
    d[1] = open_or_die(mem_node(&tmem_all, "1M", "512", "200", NULL), 0);
    max_inflight(d, 2, 4, 50);
    CHECK_EQ(atomic_load(&all_max_inflight), 1,
             "serialize-all: one request across all its disks");
    dl_close(d[0]);
    dl_close(d[1]);

    /* serialize-disk over two disks: each serial, both may overlap */
    d[0] = open_or_die(mem_node(&tmem_serial, "1M", "512", "200", NULL), 0);
    d[1] = open_or_die(mem_node(&tmem_serial, "1M", "512", "200", NULL), 0);
    m = max_inflight(d, 2, 4, 50);
    CHECK_EQ(m, 1, "serialize-disk holds per disk");
    dl_close(d[0]);
    dl_close(d[1]);
}

/* Two writers patch different bytes of the same sectors, in rounds that
 * start together: after every round each sector must hold both writers'
 * bytes of that round. A lost update shows as an old value. */
struct torn {
    struct dl_disk *d;
    unsigned start, rounds, sectors;
    pthread_barrier_t *bar;
    atomic_bool *ok;
};

static void *torn_writer(void *arg)
{
    struct torn *t = arg;
    uint8_t buf[100], sec[512];

    for (unsigned i = 1; i <= t->rounds; i++) {
        memset(buf, (int)(i & 0xff), sizeof(buf));
        pthread_barrier_wait(t->bar);
        for (unsigned s = 0; s < t->sectors; s++)
            if (dl_write_bytes(t->d, buf, (uint64_t)s * 512 + t->start,
                               sizeof(buf), NULL) < 0)
                abort();
        pthread_barrier_wait(t->bar);
        if (t->start != 0)
            continue; /* one thread checks */
        for (unsigned s = 0; s < t->sectors; s++) {
            dl_pread(t->d, sec, s * 512, 512, NULL);
            if (sec[0] != (i & 0xff) || sec[99] != (i & 0xff) ||
                sec[200] != (i & 0xff) || sec[299] != (i & 0xff) ||
                sec[100] != 0)
                atomic_store(t->ok, false);
        }
    }
    return NULL;
}

static void test_torn_sectors(void)
{
    struct dl_disk *d =
        open_or_die(mem_node(&tmem_par, "64K", "512", "20", NULL), 0);
    pthread_barrier_t bar;
    atomic_bool ok = true;
    struct torn a = {.d = d, .start = 0, .rounds = 100, .sectors = 8,
                     .bar = &bar, .ok = &ok};
    struct torn b = a;
    pthread_t ta, tb;

    b.start = 200;
    pthread_barrier_init(&bar, NULL, 2);
    pthread_create(&ta, NULL, torn_writer, &a);
    pthread_create(&tb, NULL, torn_writer, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&bar);
    CHECK(atomic_load(&ok),
          "concurrent unaligned writes into shared sectors lose nothing");
    dl_close(d);
}

static atomic_int resize_heard;
static uint64_t resize_size;

static void on_resize(void *opaque, struct dl_disk *d, uint64_t size)
{
    atomic_fetch_add(&resize_heard, 1);
    resize_size = size;
}

static void test_forwarding(void)
{
    struct dl_disk *d = open_or_die(
        wrap(&tpass, mem_node(&tmem_par, "1M", "4096", NULL, NULL)), 0);
    struct dl_disk *c = dl_child(d, 0);
    uint8_t buf[8192];
    char *msg = NULL;

    CHECK_EQ(dl_size(d), 1 << 20, "a decorator takes its child's size");
    CHECK_EQ(dl_sector_size(d), 4096, "and its sector size");
    CHECK(dl_can_resize(d), "and its ability to resize");
    CHECK(dl_unmap_behavior(d) == DL_UNMAP_ZEROES, "and its unmap behaviour");
    CHECK(strcmp(dl_kind(d), "tpass") == 0 && dl_nchildren(d) == 1,
          "kind and children");
    memset(buf, 0x42, sizeof(buf));
    CHECK_EQ(dl_pwrite(d, buf, 8192, 8192, NULL), 0, "write through");
    CHECK(mem_of(d)->data[8192] == 0x42, "reached the backend");
    CHECK_EQ(dl_flush(d, NULL), 0, "flush through");
    CHECK_EQ(dl_unmap(d, 8192, 4096, NULL), 0, "unmap through");
    CHECK(mem_of(d)->data[8192] == 0 && mem_of(d)->data[12288] == 0x42,
          "unmap reached the backend");
    dl_add_resize_listener(d, on_resize, NULL);
    CHECK_EQ(dl_resize(d, 2 << 20, &msg), 0, "resize through");
    CHECK_EQ(dl_size(c), 2 << 20, "the backend grew");
    CHECK_EQ(dl_size(d), 2 << 20, "the decorator's size followed");
    CHECK(atomic_load(&resize_heard) == 1 && resize_size == 2 << 20,
          "a listener on the top disk heard it");
    CHECK_EQ(dl_pread(d, buf, (2 << 20) - 8192, 8192, NULL), 0,
             "read the new space");
    CHECK(buf[0] == 0 && buf[8191] == 0, "new space reads zeroes");
    /* a change noticed below (as a backend would on a uevent) */
    CHECK_EQ(dl_resize(c, 3 << 20, &msg), 0, "resize the backend directly");
    CHECK(atomic_load(&resize_heard) == 2 && dl_size(d) == 3 << 20,
          "changes below reach the top");
    CHECK(dl_resize(d, (3 << 20) + 512, &msg) == -EINVAL,
          "resize to a partial sector is -EINVAL");
    free(msg);
    msg = NULL;
    dl_remove_resize_listener(d, on_resize, NULL);
    dl_close(d);

    d = open_or_die(
        wrap(&tpass, mem_node(&tmem_par, "1M", "512", NULL, NULL)),
        DL_OPEN_RDONLY);
    CHECK(dl_read_only(d) && dl_read_only(dl_child(d, 0)),
          "read-only reaches the parts below");
    CHECK(dl_resize(d, 2 << 20, &msg) == -EROFS, "no resize when read-only");
    free(msg);
    dl_close(d);

    {
        struct dl_node *child = mem_node(&tmem_par, "1M", "512", NULL, NULL);

        child->read_only = true;
        d = open_or_die(wrap(&tpass, child), 0);
        CHECK(dl_read_only(d), "a decorator over a read-only part is too");
        CHECK(dl_pwrite(d, buf, 0, 512, NULL) == -EROFS,
              "and refuses writes with -EROFS");
        dl_close(d);
    }
}

static void test_flush_rules(void)
{
    struct dl_node *n = mem_node(&tmem_flushless, "1M", "512", NULL, NULL);
    struct dl_disk *d;
    char *msg = NULL;

    CHECK(dl_open(ctx, n, 0, &d, &msg) == -EINVAL && msg &&
              strstr(msg, "flush"),
          "a backend without flush must claim to have no cache: %s",
          msg ? msg : "");
    free(msg);
    dl_node_free(n);
}

static void test_reservations(void)
{
    const struct dl_pr_ops *ops = NULL;
    struct dl_disk *d = open_or_die(
        wrap(&tpass,
             wrap(&tpr, mem_node(&tmem_par, "1M", "512", NULL, NULL))),
        0);
    struct dl_disk *p = dl_pr_disk(d, &ops);

    CHECK(p == dl_child(d, 0) && ops == &tpr_ops,
          "the reservation table is found through a decorator");
    if (p) {
        CHECK_EQ(ops->register_key(p, "fd-1", 0, 0x1234, 0), 0,
                 "register through the table");
        CHECK_EQ(ops->register_key(p, "fd-2", 0, 0x1, 0), -EBADE,
                 "a conflict is -EBADE");
    }
    CHECK(dl_pr_disk(dl_child(p, 0), &ops) == NULL,
          "a backend without a table has none");
    dl_close(d);
}

static void test_open_errors(void)
{
    struct dl_node *n, *bad;
    struct dl_disk *d;
    char *msg = NULL;

    dl_node_new(&tbad, &bad);
    dl_node_set(bad, "name", "odd-geometry", &msg);
    dl_node_validate(bad, &msg);
    n = wrap(&tpass, bad);
    dl_node_set_where(bad, "test.conf:3: disks.[0].stack.disk");
    CHECK(dl_open(ctx, n, 0, &d, &msg) == -EINVAL, "bad geometry refused");
    CHECK(msg && strcmp(msg, "test.conf:3: disks.[0].stack.disk: tbad "
                             "'odd-geometry': logical sector size 1000 is "
                             "not a power of two of at least 512") == 0,
          "the message names where, the part and the reason: %s",
          msg ? msg : "");
    CHECK_EQ(atomic_load(&bad_closes), 1,
             "the half-opened part was closed");
    free(msg);
    dl_node_free(n);

    /* validation: a decorator needs one child */
    dl_node_new(&tpass, &n);
    msg = NULL;
    CHECK(dl_node_validate(n, &msg) == -EINVAL && msg &&
              strstr(msg, "exactly one disk"),
          "a decorator without a disk below is refused: %s", msg ? msg : "");
    free(msg);
    dl_node_free(n);
}

static void test_params(void)
{
    struct dl_node *n;
    char *msg = NULL, *text = NULL;
    uint64_t v;

    dl_node_new(&tmem_par, &n);
    CHECK(dl_node_set(n, "size", "12Q", &msg) == -EINVAL && msg &&
              strstr(msg, "size such as 8G"),
          "a bad size names the rule: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    CHECK(dl_node_set(n, "sector", "8192", &msg) == -EINVAL && msg &&
              strstr(msg, "power of two from 512 to 4096"),
          "an out-of-range sector names the range: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    CHECK(dl_node_validate(n, &msg) == -EINVAL && msg &&
              strstr(msg, "'size'"),
          "a missing required setting is named: %s", msg ? msg : "");
    free(msg);
    msg = NULL;
    CHECK_EQ(dl_node_set(n, "size", "1536KiB", &msg), 0, "size 1536KiB");
    CHECK_EQ(dl_param_format(&tmem_params[0], &n->v[0], &text), 0, "format");
    CHECK(text && strcmp(text, "1536K") == 0, "sizes print back (%s)",
          text ? text : "");
    free(text);
    dl_node_free(n);

    CHECK(dl_parse_size("8G", &v) == 0 && v == 8ull << 30, "8G");
    CHECK(dl_parse_size("8gib", &v) == 0 && v == 8ull << 30, "8gib");
    CHECK(dl_parse_size("512b", &v) == 0 && v == 512, "512b");
    CHECK(dl_parse_size("16777216T", &v) == -ERANGE, "too large");
    CHECK(dl_parse_size("18446744073709551616", &v) == -ERANGE,
          "2^64 is too large");
    CHECK(dl_parse_size("1.5G", &v) == -EINVAL && dl_parse_size("", &v) ==
              -EINVAL && dl_parse_size("G", &v) == -EINVAL &&
              dl_parse_size("1iB", &v) == -EINVAL &&
              dl_parse_size("-1", &v) == -EINVAL,
          "malformed sizes");
    CHECK(dl_parse_duration("5ms", &v) == 0 && v == 5000000, "5ms");
    CHECK(dl_parse_duration("5", &v) == -EINVAL, "a duration needs a unit");
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    test_conformance();
    test_checks_before_driver();
    test_split_and_zero_default();
    test_thread_models();
    test_torn_sectors();
    test_forwarding();
    test_flush_rules();
    test_reservations();
    test_open_errors();
    test_params();
    dl_ctx_free(ctx);
    return t_done();
}
