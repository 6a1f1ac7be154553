/* The pr decorator over a ram disk: the conformance suite in the
 * pass-through state (and under a reservation, for the daemon's own
 * requests), the conflict matrix of the six types against a table written
 * out here from SPC-4, register / replace / unregister / ignore-key, the
 * generation counter, reserve and release, clear, preempt and
 * preempt-and-abort, bad types and flags, persistence through ptpl_file
 * (survives reopening, malformed files refused, atomic replacement, a
 * failed write changes nothing), and I/O racing reservation changes. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disklib/disklib.h"
#include "disklib/util.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;
static char *dir;

/* CHECK_EQ with a formatted description. */
#define EXPECT_EQ(a, b, ...)                                                   \
    ({                                                                         \
        long long _a = (long long)(a), _b = (long long)(b);                    \
        char _what[256];                                                       \
        snprintf(_what, sizeof(_what), __VA_ARGS__);                           \
        t_check(_a == _b, __FILE__, __LINE__, "%s: %lld == %lld", _what, _a,   \
                _b);                                                           \
    })

#define WE DL_PR_WRITE_EXCLUSIVE
#define EA DL_PR_EXCLUSIVE_ACCESS
#define WE_RO DL_PR_WRITE_EXCLUSIVE_REG_ONLY
#define EA_RO DL_PR_EXCLUSIVE_ACCESS_REG_ONLY
#define WE_AR DL_PR_WRITE_EXCLUSIVE_ALL_REGS
#define EA_AR DL_PR_EXCLUSIVE_ACCESS_ALL_REGS

static const char *const type_name[] = {"none", "WE",    "EA",   "WE-RO",
                                        "EA-RO", "WE-AR", "EA-AR"};

/* A pr disk over ram and its reservation table. */
struct tpr {
    struct dl_disk *d;  /* the top of the stack */
    struct dl_disk *p;  /* the part that serves reservations */
    const struct dl_pr_ops *o;
};

static struct dl_node *pr_node(const char *sector, const char *ptpl)
{
    struct dl_node *pr, *ram;
    char *msg = NULL;

    if (dl_node_new(dl_find_driver("pr"), &pr) < 0 ||
        dl_node_new(dl_find_driver("ram"), &ram) < 0)
        abort();
    if (dl_node_set(ram, "size", "4M", &msg) < 0 ||
        dl_node_set(ram, "sector", sector, &msg) < 0 ||
        (ptpl && dl_node_set(pr, "ptpl_file", ptpl, &msg) < 0)) {
        fprintf(stderr, "node: %s\n", msg);
        abort();
    }
    dl_node_add_child(pr, ram);
    return pr;
}

static int try_open(const char *sector, const char *ptpl, unsigned flags,
                    struct tpr *t, char **msg)
{
    struct dl_node *n = pr_node(sector, ptpl);
    int r = dl_node_validate(n, msg);

    memset(t, 0, sizeof(*t));
    if (r == 0)
        r = dl_open(ctx, n, flags, &t->d, msg);
    dl_node_free(n);
    if (r == 0) {
        t->p = dl_pr_disk(t->d, &t->o);
        if (!t->p)
            abort();
    }
    return r;
}

static struct tpr open_pr(const char *ptpl)
{
    struct tpr t;
    char *msg = NULL;

    if (try_open("512", ptpl, 0, &t, &msg) < 0) {
        fprintf(stderr, "open: %s\n", msg ? msg : "?");
        abort();
    }
    return t;
}

static void close_pr(struct tpr *t)
{
    dl_close(t->d);
    t->d = t->p = NULL;
}

/* ---- shorthands ---- */

static int reg(struct tpr *t, const char *who, uint64_t old, uint64_t new_)
{
    return t->o->register_key(t->p, who, old, new_, 0);
}
static int reg_ignore(struct tpr *t, const char *who, uint64_t new_)
{
    return t->o->register_key(t->p, who, 0x5eed, new_, DL_PR_F_IGNORE_KEY);
}
static int reserve(struct tpr *t, const char *who, uint64_t key, int type)
{
    return t->o->reserve(t->p, who, key, (enum dl_pr_type)type, 0);
}
static int release(struct tpr *t, const char *who, uint64_t key, int type)
{
    return t->o->release(t->p, who, key, (enum dl_pr_type)type, 0);
}
static int clear(struct tpr *t, const char *who, uint64_t key)
{
    return t->o->clear(t->p, who, key);
}
static int preempt(struct tpr *t, const char *who, uint64_t key,
                   uint64_t victim, int type, bool abort_)
{
    return t->o->preempt(t->p, who, key, victim, (enum dl_pr_type)type,
                         abort_);
}

struct st {
    uint32_t gen;
    int type;
    uint64_t holder_key;
    bool ptpl;
    size_t n;
    struct dl_pr_registrant reg[16];
};

static struct st status(struct tpr *t)
{
    struct dl_pr_status s;
    struct st r = {0};

    if (t->o->status(t->p, &s) < 0)
        abort();
    r.gen = s.generation;
    r.type = (int)s.type;
    r.holder_key = s.holder_key;
    r.ptpl = s.ptpl;
    r.n = s.n;
    if (s.n)
        memcpy(r.reg, s.reg, MIN(s.n, ARRAY_SIZE(r.reg)) * sizeof(r.reg[0]));
    free(s.reg);
    return r;
}

/* The registrant's key, 0 when not registered; *holder its mark. */
static uint64_t key_of(const struct st *s, const char *who, bool *holder)
{
    for (size_t i = 0; i < s->n && i < ARRAY_SIZE(s->reg); i++) {
        if (strcmp(s->reg[i].initiator, who) == 0) {
            if (holder)
                *holder = s->reg[i].holder;
            return s->reg[i].key;
        }
    }
    return 0;
}

static bool is_holder(struct tpr *t, const char *who)
{
    struct st s = status(t);
    bool h = false;

    return key_of(&s, who, &h) && h;
}

static uint32_t gen(struct tpr *t)
{
    return status(t).gen;
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* ---- conformance ---- */

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};

    for (int i = 0; i < 2; i++) {
        char name[96];
        char *msg = NULL;
        struct tpr t;

        if (try_open(sectors[i], NULL, 0, &t, &msg) < 0) {
            fprintf(stderr, "open: %s\n", msg);
            abort();
        }
        EXPECT_EQ(dl_sector_size(t.d), atoi(sectors[i]), "sector inherited");
        EXPECT_EQ(dl_size(t.d), 4 << 20, "size inherited");
        CHECK(dl_unmap_behavior(t.d) == DL_UNMAP_ZEROES,
              "unmap behaviour of the ram disk below");
        snprintf(name, sizeof(name), "pr:ram sector=%s", sectors[i]);
        conformance_run(t.d, &(struct conformance_opts){.name = name});

        /* the daemon's own requests are never refused */
        EXPECT_EQ(reg(&t, "hostA", 0, 0xaa), 0, "register hostA");
        EXPECT_EQ(reserve(&t, "hostA", 0xaa, EA), 0, "hostA reserves EA");
        snprintf(name, sizeof(name), "pr:ram sector=%s under EA of another",
                 sectors[i]);
        conformance_run(t.d, &(struct conformance_opts){.name = name,
                                                         .random_ops = 500});
        close_pr(&t);
    }
}

/* ---- the conflict matrix ---- */

/* SPC-4, "persistent reservation type codes" (with SBC-3's table of the
 * commands allowed under each): what each kind of initiator may do.
 * Columns: the holder, a registrant that does not hold, an initiator that
 * is not registered. In the all-registrants types every registrant is a
 * holder. */
static const struct {
    bool read[3], write[3];
} spc4[7] = {
    [WE] = {{true, true, true}, {true, false, false}},
    [EA] = {{true, false, false}, {true, false, false}},
    [WE_RO] = {{true, true, true}, {true, true, false}},
    [EA_RO] = {{true, true, false}, {true, true, false}},
    [WE_AR] = {{true, true, true}, {true, true, false}},
    [EA_AR] = {{true, true, false}, {true, true, false}},
};
static const char *const role_name[] = {"holder", "registrant",
                                        "not registered"};

static void test_matrix(void)
{
    static uint8_t buf[4096], chk[4096];

    for (int type = WE; type <= EA_AR; type++) {
        struct tpr t = open_pr(NULL);
        const uint64_t base = 64 << 10;

        EXPECT_EQ(reg(&t, "fd-1", 0, 0x11), 0, "register fd-1");
        EXPECT_EQ(reg(&t, "fd-2", 0, 0x22), 0, "register fd-2");
        EXPECT_EQ(reserve(&t, "fd-1", 0x11, type), 0, "fd-1 reserves %s",
                 type_name[type]);
        for (int role = 0; role < 3; role++) {
            const struct dl_req rq = {.initiator = (uint32_t)role + 1};
            const bool rd = spc4[type].read[role], wr = spc4[type].write[role];
            const uint64_t off = base + (uint64_t)role * 4096;
            int want_w = wr ? 0 : -EBADE;

            memset(buf, 0x5a, sizeof(buf));
            dl_pwrite(t.d, buf, off, 4096, NULL);

            memset(buf, 0xee, sizeof(buf));
            EXPECT_EQ(dl_pread(t.d, buf, off, 4096, &rq), rd ? 0 : -EBADE,
                     "read by a %s under %s", role_name[role],
                     type_name[type]);
            CHECK(all_bytes(buf, 4096, rd ? 0x5a : 0xee),
                  "  and its buffer was %s", rd ? "filled" : "left alone");

            memset(buf, 0x10 + role, sizeof(buf));
            EXPECT_EQ(dl_pwrite(t.d, buf, off, 4096, &rq), want_w,
                     "write by a %s under %s", role_name[role],
                     type_name[type]);
            dl_pread(t.d, chk, off, 4096, NULL);
            CHECK(all_bytes(chk, 4096, wr ? 0x10 + role : 0x5a),
                  "  and it %s the disk", wr ? "reached" : "never reached");

            /* the other write-class requests follow the write column */
            memset(buf, 0x5a, sizeof(buf));
            dl_pwrite(t.d, buf, off, 4096, NULL);
            EXPECT_EQ(dl_zero(t.d, off, 4096, &rq), want_w,
                     "zero by a %s under %s", role_name[role],
                     type_name[type]);
            dl_pread(t.d, chk, off, 4096, NULL);
            CHECK(all_bytes(chk, 4096, wr ? 0 : 0x5a), "  zeroed: %d", wr);
            dl_pwrite(t.d, buf, off, 4096, NULL);
            EXPECT_EQ(dl_unmap(t.d, off, 4096, &rq), want_w,
                     "unmap by a %s under %s", role_name[role],
                     type_name[type]);
            dl_pread(t.d, chk, off, 4096, NULL);
            CHECK(all_bytes(chk, 4096, wr ? 0 : 0x5a), "  unmapped: %d", wr);
            EXPECT_EQ(dl_flush(t.d, &rq), want_w,
                     "flush (SYNCHRONIZE CACHE) by a %s under %s",
                     role_name[role], type_name[type]);
            EXPECT_EQ(dl_prealloc(t.d, off, 4096, &rq), want_w,
                     "prealloc by a %s under %s", role_name[role],
                     type_name[type]);
            EXPECT_EQ(dl_write_bytes(t.d, buf, off + 10, 100, &rq), want_w,
                     "unaligned write (read-modify-write) by a %s under %s",
                     role_name[role], type_name[type]);
        }
        /* the daemon itself */
        EXPECT_EQ(dl_pread(t.d, buf, base, 4096, NULL), 0, "daemon read");
        EXPECT_EQ(dl_pwrite(t.d, buf, base, 4096, NULL), 0, "daemon write");
        EXPECT_EQ(dl_pwrite(t.d, buf, base, 4096, &(struct dl_req){0}), 0,
                 "initiator 0 writes");
        EXPECT_EQ(dl_flush(t.d, NULL), 0, "daemon flush");
        close_pr(&t);
    }

    /* who is fd-N: the canonical name only; other names are other
     * initiators entirely */
    {
        struct tpr t = open_pr(NULL);
        const struct dl_req one = {.initiator = 1}, big = {
            .initiator = 4000000000u};

        EXPECT_EQ(reg(&t, "hostA", 0, 0xaa), 0, "register hostA");
        EXPECT_EQ(reg(&t, "fd-01", 0, 0x01), 0, "register fd-01");
        EXPECT_EQ(reserve(&t, "hostA", 0xaa, EA_RO), 0, "hostA holds EA-RO");
        EXPECT_EQ(dl_pread(t.d, buf, 0, 512, &one), -EBADE,
                 "fd-01 is not the name of initiator 1");
        EXPECT_EQ(reg(&t, "fd-4000000000", 0, 0x4), 0, "register a large N");
        EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &big), 0,
                 "initiator 4000000000 is its registrant");
        EXPECT_EQ(reg(&t, "fd-1", 0, 0x1), 0, "register fd-1");
        EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &one), 0,
                 "initiator 1 registered as fd-1 may write");
        EXPECT_EQ(reg(&t, "fd-1", 0x1, 0), 0, "fd-1 unregisters");
        EXPECT_EQ(dl_pread(t.d, buf, 0, 512, &one), -EBADE,
                 "then it is refused again");
        close_pr(&t);
    }
}

/* ---- register ---- */

static void test_register(void)
{
    struct tpr t = open_pr(NULL);
    struct st s;
    char long_name[80];
    bool h;

    EXPECT_EQ(t.o->capabilities(t.p), 0x7e, "six types, no PTPL");
    s = status(&t);
    CHECK(s.gen == 0 && s.n == 0 && s.type == DL_PR_NONE && !s.ptpl,
          "starts empty, generation 0, no ptpl");

    EXPECT_EQ(reg(&t, "fd-1", 0, 0), 0, "unregistered with new key 0: success");
    EXPECT_EQ(gen(&t), 0, "  that does nothing (generation unchanged)");
    EXPECT_EQ(reg(&t, "fd-1", 5, 7), -EBADE,
             "unregistered with a nonzero old key: conflict");
    EXPECT_EQ(reg(&t, "fd-1", 0, 0x11), 0, "register fd-1");
    s = status(&t);
    CHECK(s.gen == 1 && s.n == 1 && key_of(&s, "fd-1", &h) == 0x11 && !h,
          "fd-1 registered with 0x11, generation 1");
    EXPECT_EQ(reg(&t, "fd-1", 0x12, 0x13), -EBADE, "wrong old key: conflict");
    EXPECT_EQ(reg(&t, "fd-1", 0, 0x13), -EBADE,
             "old key 0 for a registrant: conflict");
    EXPECT_EQ(gen(&t), 1, "failures leave the generation");
    EXPECT_EQ(reg(&t, "fd-1", 0x11, 0x33), 0, "replace the key");
    s = status(&t);
    CHECK(s.gen == 2 && key_of(&s, "fd-1", NULL) == 0x33 && s.n == 1,
          "the key is replaced, generation 2");
    EXPECT_EQ(reg(&t, "fd-1", 0x33, 0x33), 0, "the same key again");
    EXPECT_EQ(gen(&t), 3, "  is a successful register");

    EXPECT_EQ(t.o->register_key(t.p, "fd-1", 0x999, 0x44, DL_PR_F_IGNORE_KEY),
             0, "ignore key: any old key");
    s = status(&t);
    CHECK(s.gen == 4 && key_of(&s, "fd-1", NULL) == 0x44, "key now 0x44");
    EXPECT_EQ(reg_ignore(&t, "fd-2", 0x55), 0, "ignore key, unregistered");
    s = status(&t);
    CHECK(s.gen == 5 && key_of(&s, "fd-2", NULL) == 0x55 && s.n == 2,
          "fd-2 registered");
    EXPECT_EQ(reg_ignore(&t, "fd-2", 0), 0, "ignore key, new key 0");
    s = status(&t);
    CHECK(s.gen == 6 && s.n == 1 && !key_of(&s, "fd-2", NULL),
          "unregisters fd-2");
    EXPECT_EQ(reg_ignore(&t, "fd-2", 0), 0, "ignore key, unregistered, 0");
    EXPECT_EQ(gen(&t), 6, "  does nothing");

    EXPECT_EQ(reg(&t, "hostB", 0, 0x44), 0, "two names may share a key");
    EXPECT_EQ(reg(&t, "fd-1", 0x44, 0), 0, "unregister fd-1");
    s = status(&t);
    CHECK(s.gen == 8 && s.n == 1 && key_of(&s, "hostB", NULL) == 0x44,
          "only hostB is left");

    /* names and flags */
    memset(long_name, 'n', 63);
    long_name[63] = '\0';
    EXPECT_EQ(reg(&t, long_name, 0, 1), 0, "a name of 63 characters");
    s = status(&t);
    CHECK(key_of(&s, long_name, NULL) == 1, "  is listed whole");
    long_name[63] = 'n';
    long_name[64] = '\0';
    EXPECT_EQ(reg(&t, long_name, 0, 1), -EINVAL, "64 characters: -EINVAL");
    EXPECT_EQ(reg(&t, "", 0, 1), -EINVAL, "empty name: -EINVAL");
    EXPECT_EQ(reg(&t, NULL, 0, 1), -EINVAL, "no name: -EINVAL");
    EXPECT_EQ(reg(&t, "a b", 0, 1), -EINVAL, "a space: -EINVAL");
    EXPECT_EQ(t.o->register_key(t.p, "fd-9", 0, 9, 1u << 5), -EOPNOTSUPP,
             "unknown flag: -EOPNOTSUPP");
    EXPECT_EQ(t.o->register_key(t.p, "fd-9", 0, 9, DL_PR_F_PTPL), -EINVAL,
             "PTPL without ptpl_file: -EINVAL");
    EXPECT_EQ(status(&t).n, 2, "none of them registered anything");

    /* replacing the holder's key keeps the reservation */
    EXPECT_EQ(reserve(&t, "hostB", 0x44, WE), 0, "hostB reserves");
    EXPECT_EQ(reg(&t, "hostB", 0x44, 0x45), 0, "hostB replaces its key");
    s = status(&t);
    CHECK(s.type == WE && s.holder_key == 0x45 && is_holder(&t, "hostB"),
          "still the holder, with the new key");
    EXPECT_EQ(reg(&t, "hostB", 0x45, 0), 0, "the holder unregisters");
    s = status(&t);
    CHECK(s.type == DL_PR_NONE && s.holder_key == 0,
          "which releases the reservation");
    close_pr(&t);
}

/* ---- generation ---- */

static void test_generation(void)
{
    struct tpr t = open_pr(NULL);
    uint32_t g = 0;
    int r;

#define STEP(expr, want, delta, what)                                          \
    do {                                                                       \
        r = (expr);                                                            \
        EXPECT_EQ(r, want, what);                                               \
        g += (delta);                                                          \
        EXPECT_EQ(gen(&t), g, "  generation after: " what);                     \
    } while (0)

    STEP(reg(&t, "a", 0, 0xa), 0, 1, "register");
    STEP(reg(&t, "b", 0, 0xb), 0, 1, "register another");
    STEP(reg(&t, "c", 0, 0), 0, 0, "register of nothing");
    STEP(reg(&t, "a", 1, 2), -EBADE, 0, "failed register");
    STEP(reg(&t, "a", 0xa, 0xa1), 0, 1, "replace");
    STEP(reg_ignore(&t, "a", 0xa), 0, 1, "register and ignore");
    STEP(reserve(&t, "a", 0xa, WE), 0, 0, "reserve");
    STEP(reserve(&t, "a", 0xa, WE), 0, 0, "reserve again");
    STEP(reserve(&t, "b", 0xb, WE), -EBADE, 0, "conflicting reserve");
    STEP(release(&t, "b", 0xb, WE), 0, 0, "release by a non-holder");
    STEP(release(&t, "a", 0xa, EA), -EINVAL, 0, "release with another type");
    STEP(release(&t, "a", 0xa, WE), 0, 0, "release");
    STEP(release(&t, "a", 0xa, WE), 0, 0, "release of nothing");
    STEP(reserve(&t, "a", 0xa, EA), 0, 0, "reserve EA");
    STEP(preempt(&t, "b", 0xb, 0xdead, EA, false), -EBADE, 0,
         "preempt of an unknown key");
    STEP(preempt(&t, "b", 0xb, 0, EA, false), -EINVAL, 0,
         "preempt of key 0 under EA");
    STEP(preempt(&t, "b", 0xb, 0xa, EA, false), 0, 1, "preempt");
    STEP(reg(&t, "a", 0, 0xa), 0, 1, "register again");
    STEP(preempt(&t, "a", 0xa, 0xb, WE, true), 0, 1, "preempt and abort");
    STEP(clear(&t, "b", 0xb), -EBADE, 0, "clear by the preempted");
    STEP(clear(&t, "a", 0xa), 0, 1, "clear");
    STEP(clear(&t, "a", 0xa), -EBADE, 0, "clear by nobody");
    STEP(reg(&t, "a", 0, 0xa), 0, 1, "register after clear");
    STEP(reg(&t, "a", 0xa, 0), 0, 1, "unregister");
    STEP(reserve(&t, "a", 0xa, 9), -EINVAL, 0, "reserve with a bad type");
#undef STEP
    close_pr(&t);
}

/* ---- reserve and release ---- */

static void test_reserve_release(void)
{
    struct tpr t = open_pr(NULL);
    struct st s;

    EXPECT_EQ(reserve(&t, "a", 0xa, WE), -EBADE, "unregistered reserves");
    reg(&t, "a", 0, 0xa);
    reg(&t, "b", 0, 0xb);
    reg(&t, "c", 0, 0xc);
    EXPECT_EQ(reserve(&t, "a", 0xb, WE), -EBADE, "wrong key reserves");
    EXPECT_EQ(reserve(&t, "a", 0, WE), -EBADE,
             "key 0 reserves (no registrant has it: conflict)");
    EXPECT_EQ(reserve(&t, "a", 0xa, WE_RO), 0, "a reserves WE-RO");
    s = status(&t);
    CHECK(s.type == WE_RO && s.holder_key == 0xa && is_holder(&t, "a") &&
              !is_holder(&t, "b"),
          "a holds WE-RO, b does not");
    EXPECT_EQ(reserve(&t, "a", 0xa, WE_RO), 0, "the holder, same type");
    EXPECT_EQ(reserve(&t, "a", 0xa, EA), -EBADE, "the holder, another type");
    EXPECT_EQ(reserve(&t, "b", 0xb, WE_RO), -EBADE, "another registrant");
    EXPECT_EQ(status(&t).type, WE_RO, "unchanged");

    EXPECT_EQ(release(&t, "x", 0x5, WE_RO), -EBADE, "unregistered releases");
    EXPECT_EQ(release(&t, "b", 0xa, WE_RO), -EBADE, "wrong key releases");
    EXPECT_EQ(release(&t, "a", 0, WE_RO), -EBADE, "key 0 releases");
    EXPECT_EQ(release(&t, "b", 0xb, WE_RO), 0, "a non-holder releases");
    CHECK(status(&t).type == WE_RO && is_holder(&t, "a"), "  nothing happens");
    EXPECT_EQ(release(&t, "b", 0xb, EA), 0,
             "a non-holder releases with another type: nothing happens");
    EXPECT_EQ(release(&t, "a", 0xa, WE), -EINVAL,
             "the holder releases another type: -EINVAL");
    EXPECT_EQ(status(&t).type, WE_RO, "  still reserved");
    EXPECT_EQ(release(&t, "a", 0xa, WE_RO), 0, "the holder releases");
    s = status(&t);
    CHECK(s.type == DL_PR_NONE && s.holder_key == 0 && !is_holder(&t, "a") &&
              s.n == 3,
          "no reservation; registrations stay");
    EXPECT_EQ(release(&t, "a", 0xa, WE_RO), 0, "release with none: success");

    /* all registrants: every registrant is a holder */
    for (int type = WE_AR; type <= EA_AR; type++) {
        EXPECT_EQ(reserve(&t, "b", 0xb, type), 0, "b reserves %s",
                 type_name[type]);
        s = status(&t);
        CHECK(s.type == type && s.holder_key == 0 && is_holder(&t, "a") &&
                  is_holder(&t, "b") && is_holder(&t, "c"),
              "holder key 0, every registrant marked holder");
        EXPECT_EQ(reserve(&t, "c", 0xc, type), 0,
                 "another registrant reserves the same type");
        EXPECT_EQ(reserve(&t, "c", 0xc, WE), -EBADE, "or another type");
        EXPECT_EQ(release(&t, "a", 0xa, WE), -EINVAL,
                 "a registrant releases with the wrong type");
        EXPECT_EQ(release(&t, "a", 0xa, type), 0,
                 "any registrant releases (not the one that reserved)");
        EXPECT_EQ(status(&t).type, DL_PR_NONE, "  released");
    }
    /* the all-registrants reservation stays while anyone is registered */
    EXPECT_EQ(reserve(&t, "a", 0xa, EA_AR), 0, "a reserves EA-AR");
    EXPECT_EQ(reg(&t, "a", 0xa, 0), 0, "a unregisters");
    EXPECT_EQ(status(&t).type, EA_AR, "  the reservation stays");
    EXPECT_EQ(reg(&t, "b", 0xb, 0), 0, "b unregisters");
    EXPECT_EQ(status(&t).type, EA_AR, "  it still stays");
    EXPECT_EQ(reg(&t, "c", 0xc, 0), 0, "the last one unregisters");
    s = status(&t);
    CHECK(s.type == DL_PR_NONE && s.n == 0, "  and it goes with it");

    /* unregistering the holder of every single-holder type releases */
    for (int type = WE; type <= EA_RO; type++) {
        reg(&t, "a", 0, 0xa);
        reg(&t, "b", 0, 0xb);
        reserve(&t, "a", 0xa, type);
        EXPECT_EQ(reg(&t, "b", 0xb, 0), 0, "a non-holder unregisters");
        EXPECT_EQ(status(&t).type, type, "  %s stays", type_name[type]);
        EXPECT_EQ(reg(&t, "a", 0xa, 0), 0, "the holder unregisters");
        EXPECT_EQ(status(&t).type, DL_PR_NONE, "  %s is released",
                 type_name[type]);
    }

    /* types and flags */
    reg(&t, "a", 0, 0xa);
    EXPECT_EQ(reserve(&t, "a", 0xa, 0), -EINVAL, "reserve type 0: -EINVAL");
    EXPECT_EQ(reserve(&t, "a", 0xa, 7), -EINVAL, "reserve type 7: -EINVAL");
    EXPECT_EQ(reserve(&t, "zz", 0xa, 7), -EINVAL,
             "a bad type before any conflict");
    EXPECT_EQ(release(&t, "a", 0xa, 7), -EINVAL, "release type 7: -EINVAL");
    EXPECT_EQ(preempt(&t, "a", 0xa, 0xa, 0, false), -EINVAL,
             "preempt type 0: -EINVAL");
    EXPECT_EQ(preempt(&t, "a", 0xa, 0xa, -1, true), -EINVAL,
             "preempt and abort type -1: -EINVAL");
    EXPECT_EQ(t.o->reserve(t.p, "a", 0xa, WE, 1), -EOPNOTSUPP,
             "reserve with a flag: -EOPNOTSUPP");
    EXPECT_EQ(t.o->release(t.p, "a", 0xa, WE, 4), -EOPNOTSUPP,
             "release with a flag: -EOPNOTSUPP");
    EXPECT_EQ(status(&t).type, DL_PR_NONE, "none of them reserved");
    close_pr(&t);
}

/* ---- clear ---- */

static void test_clear(void)
{
    struct tpr t = open_pr(NULL);
    struct st s;
    uint8_t buf[512];

    reg(&t, "fd-1", 0, 0x1);
    reg(&t, "fd-2", 0, 0x2);
    reserve(&t, "fd-1", 0x1, EA);
    EXPECT_EQ(clear(&t, "fd-3", 0x3), -EBADE, "unregistered clears");
    EXPECT_EQ(clear(&t, "fd-2", 0x1), -EBADE, "wrong key clears");
    EXPECT_EQ(clear(&t, "fd-2", 0), -EBADE, "key 0 clears");
    EXPECT_EQ(status(&t).n, 2, "  nothing changed");
    EXPECT_EQ(dl_pread(t.d, buf, 0, 512, &(struct dl_req){.initiator = 2}),
             -EBADE, "fd-2 is refused under EA");
    EXPECT_EQ(clear(&t, "fd-2", 0x2), 0, "a registrant that does not hold "
                                        "clears");
    s = status(&t);
    CHECK(s.n == 0 && s.type == DL_PR_NONE && s.gen == 3,
          "no registrants, no reservation, generation 3");
    EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 3}), 0,
             "anyone writes again");
    close_pr(&t);
}

/* ---- preempt ---- */

static void test_preempt(void)
{
    for (int ab = 0; ab < 2; ab++) {
        const bool abort_ = ab;
        const char *what = ab ? "preempt and abort" : "preempt";
        struct tpr t = open_pr(NULL);
        struct st s;
        uint32_t g;
        uint8_t buf[512] = {0};

        /* the victim holds the reservation */
        reg(&t, "fd-1", 0, 0xa);
        reg(&t, "fd-2", 0, 0xb);
        reg(&t, "hostC", 0, 0xc);
        reserve(&t, "fd-1", 0xa, WE);
        g = gen(&t);
        EXPECT_EQ(preempt(&t, "fd-2", 0xb, 0xa, EA, abort_), 0,
                 "%s of the holder", what);
        s = status(&t);
        CHECK(s.type == EA && s.holder_key == 0xb && is_holder(&t, "fd-2") &&
                  !key_of(&s, "fd-1", NULL) &&
                  key_of(&s, "hostC", NULL) == 0xc && s.gen == g + 1,
              "  the victim is gone, the caller holds EA, hostC stays");
        EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 1}),
                 -EBADE, "  the victim's writes are refused");
        EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 2}),
                 0, "  the new holder writes");

        /* the victim is a registrant that does not hold */
        g = gen(&t);
        EXPECT_EQ(preempt(&t, "fd-2", 0xb, 0xc, WE, abort_), 0,
                 "%s of a non-holder", what);
        s = status(&t);
        CHECK(s.type == EA && s.holder_key == 0xb && s.n == 1 &&
                  s.gen == g + 1,
              "  only its registration goes; the reservation is unchanged");

        /* the caller's own key: change the type, keep the registration */
        reg(&t, "hostD", 0, 0xb);
        EXPECT_EQ(preempt(&t, "fd-2", 0xb, 0xb, WE_RO, abort_), 0,
                 "%s of one's own key", what);
        s = status(&t);
        CHECK(s.type == WE_RO && s.holder_key == 0xb && s.n == 1 &&
                  is_holder(&t, "fd-2"),
              "  the type changes; others with the key go, the caller stays");

        /* unknown victim, key 0, caller checks */
        g = gen(&t);
        EXPECT_EQ(preempt(&t, "fd-2", 0xb, 0xdead, EA, abort_), -EBADE,
                 "%s of a key nobody has: conflict", what);
        EXPECT_EQ(preempt(&t, "fd-2", 0xb, 0, EA, abort_), -EINVAL,
                 "%s of key 0 under WE-RO: -EINVAL", what);
        EXPECT_EQ(preempt(&t, "fd-9", 0xb, 0xb, EA, abort_), -EBADE,
                 "%s by an unregistered initiator", what);
        EXPECT_EQ(preempt(&t, "fd-2", 0xa, 0xb, EA, abort_), -EBADE,
                 "%s with a wrong key", what);
        EXPECT_EQ(preempt(&t, "fd-2", 0, 0xb, EA, abort_), -EBADE,
                 "%s with key 0", what);
        s = status(&t);
        CHECK(s.type == WE_RO && s.n == 1 && s.gen == g, "  nothing changed");
        close_pr(&t);

        /* no reservation: the victim's registrations go */
        t = open_pr(NULL);
        reg(&t, "a", 0, 0xa);
        reg(&t, "b", 0, 0xb);
        reg(&t, "b2", 0, 0xb);
        EXPECT_EQ(preempt(&t, "a", 0xa, 0xb, EA, abort_), 0,
                 "%s without a reservation", what);
        s = status(&t);
        CHECK(s.type == DL_PR_NONE && s.n == 1 && s.gen == 4,
              "  both registrations with the key go, nothing is reserved");
        EXPECT_EQ(preempt(&t, "a", 0xa, 0, EA, abort_), -EINVAL,
                 "%s of key 0 without a reservation: -EINVAL", what);
        close_pr(&t);

        /* all registrants */
        for (int type = WE_AR; type <= EA_AR; type++) {
            t = open_pr(NULL);
            reg(&t, "a", 0, 0xa);
            reg(&t, "b", 0, 0xb);
            reg(&t, "c", 0, 0xc);
            reserve(&t, "a", 0xa, type);
            EXPECT_EQ(preempt(&t, "b", 0xb, 0xc, type, abort_), 0,
                     "%s of one registrant under %s", what, type_name[type]);
            s = status(&t);
            CHECK(s.type == type && s.n == 2 && !key_of(&s, "c", NULL),
                  "  its registration goes, the reservation stays");
            EXPECT_EQ(preempt(&t, "b", 0xb, 0, EA, abort_), 0,
                     "%s of key 0 under %s", what, type_name[type]);
            s = status(&t);
            CHECK(s.type == EA && s.n == 1 && s.holder_key == 0xb &&
                      is_holder(&t, "b") && s.gen == 5,
                  "  every other registrant goes; the caller holds EA");
            close_pr(&t);
        }
    }
}

/* ---- ptpl ---- */

static char *path_in(const char *sub, const char *name)
{
    char *p;

    if (asprintf(&p, "%s/%s%s%s", dir, sub, *sub ? "/" : "", name) < 0)
        abort();
    return p;
}

static unsigned count_entries(const char *d)
{
    DIR *dd = opendir(d);
    unsigned n = 0;

    if (!dd)
        return 0;
    for (struct dirent *e; (e = readdir(dd));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(dd);
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static void test_ptpl(void)
{
    _cleanup_free_ char *sub = path_in("", "ptpl");
    _cleanup_free_ char *file = path_in("ptpl", "state");
    struct tpr t;
    struct st s;
    struct stat st1, st2;
    uint8_t buf[512] = {0};
    bool h;

    mkdir(sub, 0700);
    t = open_pr(file);
    EXPECT_EQ(t.o->capabilities(t.p), 0x7e | DL_PR_CAP_PTPL,
             "six types and PTPL");
    CHECK(status(&t).ptpl, "status reports ptpl");
    CHECK(access(file, F_OK) != 0, "no file before the first change");
    EXPECT_EQ(t.o->register_key(t.p, "fd-1", 0, 0x11, DL_PR_F_PTPL), 0,
             "register with PTPL");
    EXPECT_EQ(reg(&t, "hostA", 0, 0xaa), 0, "register hostA");
    EXPECT_EQ(reg(&t, "fd-2", 0, 0x22), 0, "register fd-2");
    EXPECT_EQ(reserve(&t, "fd-1", 0x11, WE_RO), 0, "fd-1 reserves WE-RO");
    EXPECT_EQ(stat(file, &st1), 0, "the file exists");
    EXPECT_EQ(reg(&t, "hostA", 0xaa, 0xab), 0, "hostA replaces its key");
    EXPECT_EQ(stat(file, &st2), 0, "the file exists");
    CHECK(st1.st_ino != st2.st_ino, "the file was replaced, not rewritten");
    EXPECT_EQ(count_entries(sub), 1, "no temporary file is left behind");
    close_pr(&t);

    t = open_pr(file);
    s = status(&t);
    CHECK(s.n == 3 && key_of(&s, "fd-1", &h) == 0x11 && h &&
              key_of(&s, "hostA", NULL) == 0xab &&
              key_of(&s, "fd-2", NULL) == 0x22 && s.type == WE_RO &&
              s.holder_key == 0x11 && s.ptpl,
          "registrations and the reservation survive reopening");
    EXPECT_EQ(s.gen, 0, "the generation starts at 0 (a power on)");
    EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 2}), 0,
             "initiator 2 acts as the registrant fd-2");
    EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 3}),
             -EBADE, "initiator 3 is not registered");
    /* an all-registrants reservation round-trips too */
    EXPECT_EQ(preempt(&t, "hostA", 0xab, 0x11, EA_AR, false), 0,
             "hostA preempts fd-1 into EA-AR");
    close_pr(&t);
    t = open_pr(file);
    s = status(&t);
    CHECK(s.n == 2 && s.type == EA_AR && is_holder(&t, "fd-2") &&
              is_holder(&t, "hostA"),
          "EA-AR survives reopening");
    EXPECT_EQ(clear(&t, "fd-2", 0x22), 0, "clear");
    close_pr(&t);
    t = open_pr(file);
    s = status(&t);
    CHECK(s.n == 0 && s.type == DL_PR_NONE, "a clear survives too");
    close_pr(&t);
    EXPECT_EQ(count_entries(sub), 1, "still only the file");

    /* comments and blank lines are accepted */
    write_text(file, "diskstack-pr 1\n# a comment\n\nregister  x\t0xAbC\n"
                     "reserve ea x\n");
    t = open_pr(file);
    s = status(&t);
    CHECK(s.n == 1 && key_of(&s, "x", NULL) == 0xabc && s.type == EA,
          "a hand-written file with comments loads");
    close_pr(&t);

    /* malformed files are refused, naming the file and the line */
    static const struct {
        const char *text;
        int line;
    } bad[] = {
        {"", 1},
        {"hello\n", 1},
        {"diskstack-pr 2\n", 1},
        {"diskstack-pr\n", 1},
        {"diskstack-pr 1\nregister fd-1\n", 2},
        {"diskstack-pr 1\nregister fd-1 0x0\n", 2},
        {"diskstack-pr 1\nregister fd-1 17\n", 2},
        {"diskstack-pr 1\nregister fd-1 0x11111111111111111\n", 2},
        {"diskstack-pr 1\nregister fd-1 0x11 extra\n", 2},
        {"diskstack-pr 1\nregister fd-1 0x11\nregister fd-1 0x12\n", 3},
        {"diskstack-pr 1\nregister fd-1 0x11\nreserve xx fd-1\n", 3},
        {"diskstack-pr 1\nregister fd-1 0x11\nreserve we fd-9\n", 3},
        {"diskstack-pr 1\nregister fd-1 0x11\nreserve we\n", 3},
        {"diskstack-pr 1\nregister fd-1 0x11\nreserve we-ar fd-1\n", 3},
        {"diskstack-pr 1\nreserve we-ar\n", 2},
        {"diskstack-pr 1\nregister a 0x1\nreserve we a\nreserve ea a\n", 4},
        {"diskstack-pr 1\nfrobnicate\n", 2},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char *msg = NULL, where[32];
        int r;

        write_text(file, bad[i].text);
        r = try_open("512", file, 0, &t, &msg);
        snprintf(where, sizeof(where), ":%d: ", bad[i].line);
        CHECK(r == -EINVAL && msg && strstr(msg, file) && strstr(msg, where),
              "malformed file %zu refused at line %d: %s", i, bad[i].line,
              msg ? msg : "(no message)");
        if (r == 0)
            close_pr(&t);
        free(msg);
    }

    /* a dry run reads the file, and refuses a bad one, but never writes */
    {
        char *msg = NULL;
        struct stat before, after;

        write_text(file, "diskstack-pr 1\nregister x 0x1\n");
        stat(file, &before);
        EXPECT_EQ(try_open("512", file, DL_OPEN_DRY_RUN, &t, &msg), 0,
                  "dry run opens");
        EXPECT_EQ(status(&t).n, 1, "  with what the file holds");
        EXPECT_EQ(reg(&t, "y", 0, 0x2), 0, "  a command in a dry run");
        close_pr(&t);
        stat(file, &after);
        CHECK(before.st_ino == after.st_ino &&
                  before.st_size == after.st_size,
              "  left the file alone");
        write_text(file, "diskstack-pr 1\nregister x\n");
        EXPECT_EQ(try_open("512", file, DL_OPEN_DRY_RUN, &t, &msg), -EINVAL,
                  "a dry run refuses a malformed file");
        CHECK(msg && strstr(msg, ":2: "), "  naming the line: %s",
              msg ? msg : "(no message)");
        free(msg);
    }
    unlink(file);

    /* a write that fails changes nothing */
    {
        _cleanup_free_ char *moved = path_in("", "ptpl-moved");
        uint32_t g;

        t = open_pr(file);
        EXPECT_EQ(reg(&t, "a", 0, 0xa), 0, "register a");
        g = gen(&t);
        EXPECT_EQ(rename(sub, moved), 0, "take the directory away");
        CHECK(reg(&t, "b", 0, 0xb) == -ENOENT,
              "a register that cannot be written fails");
        CHECK(reserve(&t, "a", 0xa, EA) == -ENOENT,
              "so does a reserve");
        CHECK(clear(&t, "a", 0xa) == -ENOENT, "and a clear");
        s = status(&t);
        CHECK(s.n == 1 && key_of(&s, "a", NULL) == 0xa &&
                  s.type == DL_PR_NONE && s.gen == g,
              "  and nothing changed");
        EXPECT_EQ(dl_pwrite(t.d, buf, 0, 512, &(struct dl_req){.initiator = 5}),
                 0, "  (no reservation took effect)");
        EXPECT_EQ(rename(moved, sub), 0, "bring it back");
        EXPECT_EQ(reg(&t, "b", 0, 0xb), 0, "then it works");
        EXPECT_EQ(count_entries(sub), 1, "no temporary file is left behind");
        close_pr(&t);
        t = open_pr(file);
        EXPECT_EQ(status(&t).n, 2, "the file holds what succeeded");
        close_pr(&t);
    }
}

/* ---- I/O while the reservation changes ---- */

enum { S_NONE, S_CTL_EA, S_CTL_WE_RO, S_FD1_WE, NSTATES };

/* allowed[state][initiator - 1][write] with fd-1, fd-2 registered (fd-1
 * not registered in S_CTL_EA after a preempt: EA refuses it either way)
 * and fd-3 never registered. */
static const bool mt_allowed[NSTATES][3][2] = {
    [S_NONE] = {{true, true}, {true, true}, {true, true}},
    [S_CTL_EA] = {{false, false}, {false, false}, {false, false}},
    [S_CTL_WE_RO] = {{true, true}, {true, true}, {true, false}},
    [S_FD1_WE] = {{true, true}, {true, false}, {true, false}},
};

struct mt {
    struct tpr *t;
    atomic_uint seq;   /* odd while a command runs */
    atomic_int state;
    atomic_bool stop;
    atomic_uint checked, unexpected, bad_errors, cmd_failures;
    atomic_uint accepted, refused, started;
    unsigned ncmd; /* the control thread's */
};

struct mt_io {
    struct mt *m;
    uint32_t initiator;
    uint8_t last_written; /* 0: none yet */
    unsigned ok_writes;
};

static void *mt_io_thread(void *opaque)
{
    struct mt_io *io = opaque;
    struct mt *m = io->m;
    const struct dl_req rq = {.initiator = io->initiator};
    const uint64_t off = (uint64_t)io->initiator * 65536;
    uint64_t x = 0x9e3779b97f4a7c15ull * io->initiator;
    uint8_t buf[4096];
    uint8_t counter = 0;

    atomic_fetch_add(&m->started, 1);
    while (!atomic_load(&m->stop)) {
        unsigned s1, s2;
        bool write;
        int st, r;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        write = x & 1;
        s1 = atomic_load(&m->seq);
        st = atomic_load(&m->state);
        if (write) {
            uint8_t v = (uint8_t)(1 + counter++ % 250);

            memset(buf, v, sizeof(buf));
            r = dl_pwrite(io->m->t->d, buf, off, sizeof(buf), &rq);
            if (r == 0) {
                io->last_written = v;
                io->ok_writes++;
            }
        } else {
            r = dl_pread(io->m->t->d, buf, off, sizeof(buf), &rq);
        }
        s2 = atomic_load(&m->seq);
        if (r != 0 && r != -EBADE)
            atomic_fetch_add(&m->bad_errors, 1);
        atomic_fetch_add(r == 0 ? &m->accepted : &m->refused, 1);
        if (s1 == s2 && !(s1 & 1)) {
            atomic_fetch_add(&m->checked, 1);
            if ((r == 0) != mt_allowed[st][io->initiator - 1][write])
                atomic_fetch_add(&m->unexpected, 1);
        }
    }
    return NULL;
}

#define MT_CMD(m, next, expr)                                                  \
    do {                                                                       \
        atomic_fetch_add(&(m)->seq, 1);                                        \
        if ((expr) != 0)                                                       \
            atomic_fetch_add(&(m)->cmd_failures, 1);                           \
        atomic_store(&(m)->state, (next));                                     \
        atomic_fetch_add(&(m)->seq, 1);                                        \
        /* a pause now and then, after each kind of command in turn, so   \
         * that the I/O threads get in while every state holds */          \
        if (++(m)->ncmd % 5 == 0)                                              \
            usleep(50);                                                        \
    } while (0)

static void test_threads(void)
{
    struct tpr t = open_pr(NULL);
    struct mt m = {.t = &t};
    struct mt_io io[3];
    pthread_t th[3];
    uint8_t buf[4096];

    reg(&t, "ctl", 0, 0xc);
    reg(&t, "fd-1", 0, 0x1);
    reg(&t, "fd-2", 0, 0x2);
    atomic_store(&m.state, S_NONE);
    for (int i = 0; i < 3; i++) {
        io[i] = (struct mt_io){.m = &m, .initiator = (uint32_t)i + 1};
        pthread_create(&th[i], NULL, mt_io_thread, &io[i]);
    }
    /* run until the I/O threads have seen enough, not for a fixed time:
     * under a sanitizer they start slowly */
    int round = 0;

    while (atomic_load(&m.started) < 3)
        usleep(100);
    for (; round < 400 || (atomic_load(&m.checked) < 20000 && round < 100000);
         round++) {
        MT_CMD(&m, S_CTL_EA, reserve(&t, "ctl", 0xc, EA));
        MT_CMD(&m, S_CTL_WE_RO, preempt(&t, "ctl", 0xc, 0xc, WE_RO, false));
        MT_CMD(&m, S_NONE, release(&t, "ctl", 0xc, WE_RO));
        MT_CMD(&m, S_FD1_WE, reserve(&t, "fd-1", 0x1, WE));
        MT_CMD(&m, S_CTL_EA, preempt(&t, "ctl", 0xc, 0x1, EA, true));
        MT_CMD(&m, S_CTL_EA, reg(&t, "fd-1", 0, 0x1));
        MT_CMD(&m, S_NONE, release(&t, "ctl", 0xc, EA));
    }
    atomic_store(&m.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);

    printf("threads: %d rounds, %u results checked, %u accepted, %u "
           "refused\n",
           round, m.checked, m.accepted, m.refused);
    EXPECT_EQ(m.cmd_failures, 0, "every reservation command succeeded");
    EXPECT_EQ(m.bad_errors, 0, "I/O failed only with -EBADE");
    CHECK(m.checked > 0, "%u results checked against a stable state "
          "(%d rounds of 7 commands)", m.checked, round);
    EXPECT_EQ(m.unexpected, 0,
             "every result matches the state at the time");
    CHECK(m.accepted > 0 && m.refused > 0,
          "requests were both accepted (%u) and refused (%u)", m.accepted,
          m.refused);
    for (int i = 0; i < 3; i++) {
        dl_pread(t.d, buf, (uint64_t)io[i].initiator * 65536, sizeof(buf),
                 NULL);
        CHECK(io[i].ok_writes == 0 || all_bytes(buf, sizeof(buf),
                                                io[i].last_written),
              "initiator %u: the disk holds its last accepted write "
              "(refused ones never reached it; %u accepted)",
              io[i].initiator, io[i].ok_writes);
    }
    {
        struct st s = status(&t);

        CHECK(s.type == DL_PR_NONE && s.n == 3 &&
                  s.gen == 3 + (uint32_t)round * 3,
              "final state: no reservation, three registrants, "
              "generation %u",
              s.gen);
    }
    close_pr(&t);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    dir = t_tmpdir();
    test_conformance();
    test_matrix();
    test_register();
    test_generation();
    test_reserve_release();
    test_clear();
    test_preempt();
    test_ptpl();
    test_threads();
    t_cleanup_dir(dir);
    free(dir);
    dl_ctx_free(ctx);
    return t_done();
}
