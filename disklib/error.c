/* error — a decorator that fails chosen requests with a chosen errno.
 *
 * A request matches when the injector is enabled, its op type is in `ops`
 * (read, write, flush, unmap, zero) and its byte range overlaps
 * [offset, offset + length) (length 0: to the end of the disk; a flush
 * matches whatever the range). Matching requests are counted, 1, 2, 3...,
 * from the moment the settings were last set, enabled or reset, and the
 * mode decides which of them fail: all of them, only the nth (once),
 * every nth, or a share of them (`rate`) picked by a pseudo-random
 * function of the seed and the request's count. The same seed and the
 * same order of requests therefore give the same failures, whatever the
 * timing. A request that fails never reaches the disk below; the others
 * pass through unchanged. Extents and prealloc are never failed.
 *
 * A zero failed with EOPNOTSUPP means "not supported" to the core, which
 * then writes zeroes through this driver's write (failed in turn when
 * `ops` has write); that is what a disk without write-zeroes looks like.
 *
 * Settings and concurrency: the driver is parallel and requests take no
 * lock. The settings are one small struct published through a sequence
 * lock: set_lock serializes the writers (control path only), which make
 * a whole new struct, validate it, then store it word by word between two
 * increments of seq; a request copies the words and retries if seq moved
 * (or is odd) meanwhile, so it always sees one whole version. The two
 * counters carry the generation of the settings in their top bits: a
 * request counts itself only in the generation its copy of the settings
 * belongs to, so that a request racing a change cannot be counted under
 * the new settings. A counter stops at 2^44 - 1.
 *
 * Live commands and the config form use the same rules: a command line
 * is applied to a scratch node holding the current settings, which goes
 * through the same checks as a config file's node. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

enum {
    ERR_ERROR,
    ERR_OPS,
    ERR_OFFSET,
    ERR_LENGTH,
    ERR_NTH,
    ERR_EVERY,
    ERR_RATE,
    ERR_SEED,
    ERR_ENABLED,
};

static const struct dl_param error_params[] = {
    [ERR_ERROR] = {.name = "error", .type = DL_P_STRING, .def = "EIO",
                   .help = "the errno returned: a name (EIO, ENOSPC, ...) or "
                           "a number"},
    [ERR_OPS] = {.name = "ops", .type = DL_P_STRING, .def = "all",
                 .help = "the op types that fail: a comma list of read, "
                         "write, flush, unmap, zero, or all"},
    [ERR_OFFSET] = {.name = "offset", .type = DL_P_SIZE, .def = "0",
                    .help = "start of the byte range that fails"},
    [ERR_LENGTH] = {.name = "length", .type = DL_P_SIZE, .def = "0",
                    .help = "length of the byte range that fails; 0: to the "
                            "end (a flush fails whatever the range)"},
    [ERR_NTH] = {.name = "nth", .type = DL_P_UINT, .min = 1,
                 .max = UINT64_MAX,
                 .help = "only the nth matching request fails, once"},
    [ERR_EVERY] = {.name = "every", .type = DL_P_UINT, .min = 1,
                   .max = UINT64_MAX,
                   .help = "every nth matching request fails"},
    [ERR_RATE] = {.name = "rate", .type = DL_P_STRING,
                  .help = "the share of matching requests that fail, such as "
                          "10% or 0.5%"},
    [ERR_SEED] = {.name = "seed", .type = DL_P_UINT, .def = "1", .min = 0,
                  .max = UINT64_MAX,
                  .help = "seed of the pseudo-random choice of rate"},
    [ERR_ENABLED] = {.name = "enabled", .type = DL_P_BOOL, .def = "true",
                     .help = "whether requests fail at all"},
};

enum {
    OP_READ = 1u << 0,
    OP_WRITE = 1u << 1,
    OP_FLUSH = 1u << 2,
    OP_UNMAP = 1u << 3,
    OP_ZERO = 1u << 4,
    OP_ALL = (1u << 5) - 1,
};
static const char *const op_names[] = {"read", "write", "flush", "unmap",
                                       "zero"};

enum error_mode { MODE_ALL, MODE_NTH, MODE_EVERY, MODE_RATE };

/* A rate of 100 % in rate units: parts per billion. */
#define RATE_ONE 1000000000ull

/* One version of the settings; copied as whole 64-bit words. */
struct error_conf {
    uint64_t offset, length;
    uint64_t n;    /* MODE_NTH, MODE_EVERY */
    uint64_t rate; /* MODE_RATE, in parts per billion */
    uint64_t seed;
    uint64_t gen;  /* counting starts again when it changes */
    int32_t err;   /* positive */
    uint32_t ops;  /* OP_* */
    uint32_t mode;
    uint32_t enabled;
};
_Static_assert(sizeof(struct error_conf) % sizeof(uint64_t) == 0,
               "error_conf is copied in 64-bit words");
#define CONF_WORDS (sizeof(struct error_conf) / sizeof(uint64_t))

/* The counters: generation in the top bits, count below. */
#define COUNT_BITS 44
#define COUNT_MAX ((1ull << COUNT_BITS) - 1)
#define GEN_OF(v) ((v) >> COUNT_BITS)
#define GEN_MASK ((1ull << (64 - COUNT_BITS)) - 1)

struct error_state {
    _Atomic uint64_t seq;               /* odd while conf is written */
    _Atomic uint64_t conf[CONF_WORDS];  /* a struct error_conf */
    _Atomic uint64_t matched, injected; /* see COUNT_BITS */
    pthread_mutex_t set_lock;
    struct error_conf cur; /* protected by set_lock: what conf holds */
};

/* ---- parsing values (shared by config and live commands) ---- */

static int error_parse_errno(const char *s, int *ret, char **ret_msg)
{
    int e;

    if (dl_parse_errno(s, &e) < 0) {
        dl_msg(ret_msg, "error '%s': must be an errno name such as EIO or "
               "ENOSPC, or a number from 1 to 4095", s);
        return -EINVAL;
    }
    if (e == ENOSYS) {
        dl_msg(ret_msg, "error '%s': ENOSYS is refused: FUSE takes it to "
               "mean the operation is not implemented and stops sending it",
               s);
        return -EINVAL;
    }
    *ret = e;
    return 0;
}

static int error_parse_ops(const char *s, uint32_t *ret, char **ret_msg)
{
    uint32_t ops = 0;
    const char *p = s;

    for (;;) {
        size_t len = strcspn(p, ",");
        bool known = false;

        if (len == 3 && strncmp(p, "all", 3) == 0) {
            ops |= OP_ALL;
            known = true;
        }
        for (size_t i = 0; i < ARRAY_SIZE(op_names) && !known; i++) {
            if (strlen(op_names[i]) == len && !strncmp(p, op_names[i], len)) {
                ops |= 1u << i;
                known = true;
            }
        }
        if (!known) {
            dl_msg(ret_msg, "ops '%s': must be a comma list of read, write, "
                   "flush, unmap, zero, or all ('%.*s' is none of them)",
                   s, (int)len, p);
            return -EINVAL;
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    *ret = ops;
    return 0;
}

/* "10%", "0.5%", "100%": at most 7 decimals (1 part per billion). */
static int error_parse_rate(const char *s, uint64_t *ret, char **ret_msg)
{
    const char *p = s;
    uint64_t whole = 0, frac = 0;
    int decimals = 0;

    if (*p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > 100)
            goto bad;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            goto bad;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++decimals > 7)
                goto bad;
            frac = frac * 10 + (uint64_t)(*p - '0');
        }
    }
    if (strcmp(p, "%") != 0)
        goto bad;
    for (; decimals < 7; decimals++)
        frac *= 10;
    if (whole * 10000000 + frac > RATE_ONE)
        goto bad;
    *ret = whole * 10000000 + frac;
    return 0;
bad:
    dl_msg(ret_msg, "rate '%s': must be a percentage from 0%% to 100%% such "
           "as 10%% or 0.5%% (at most 7 decimals)", s);
    return -EINVAL;
}

/* The settings a node describes, with every rule that the text decides. */
static int error_conf_from_node(const struct dl_node *n,
                                struct error_conf *ret, char **ret_msg)
{
    struct error_conf c = {
        .offset = dl_node_u64(n, ERR_OFFSET),
        .length = dl_node_u64(n, ERR_LENGTH),
        .seed = dl_node_u64(n, ERR_SEED),
        .enabled = dl_node_u64(n, ERR_ENABLED) != 0,
        .mode = MODE_ALL,
    };
    static const size_t modes[] = {ERR_NTH, ERR_EVERY, ERR_RATE};
    const char *first = NULL;
    int e, r;

    for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
        const char *name = error_params[modes[i]].name;

        if (!dl_node_isset(n, modes[i]))
            continue;
        if (first) {
            dl_msg(ret_msg, "%s and %s are both set: nth, every and rate "
                   "are modes, set at most one of them", first, name);
            return -EINVAL;
        }
        first = name;
    }
    /* the defaults stand in for a node that was never validated */
    r = error_parse_errno(dl_node_str(n, ERR_ERROR)
                              ? dl_node_str(n, ERR_ERROR)
                              : error_params[ERR_ERROR].def,
                          &e, ret_msg);
    if (r < 0)
        return r;
    c.err = e;
    r = error_parse_ops(dl_node_str(n, ERR_OPS) ? dl_node_str(n, ERR_OPS)
                                                : error_params[ERR_OPS].def,
                        &c.ops, ret_msg);
    if (r < 0)
        return r;
    if (dl_node_isset(n, ERR_NTH)) {
        c.mode = MODE_NTH;
        c.n = dl_node_u64(n, ERR_NTH);
    } else if (dl_node_isset(n, ERR_EVERY)) {
        c.mode = MODE_EVERY;
        c.n = dl_node_u64(n, ERR_EVERY);
    } else if (dl_node_isset(n, ERR_RATE)) {
        c.mode = MODE_RATE;
        r = error_parse_rate(dl_node_str(n, ERR_RATE), &c.rate, ret_msg);
        if (r < 0)
            return r;
    }
    *ret = c;
    return 0;
}

static int error_validate(struct dl_node *n, char **ret_msg)
{
    struct error_conf c;

    return error_conf_from_node(n, &c, ret_msg);
}

/* ---- text forms ---- */

static void error_format_errno(int err, char *buf, size_t len)
{
    const char *name = strerrorname_np(err);

    /* a number without a name prints as the number, which parses back */
    if (name)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%d", err);
}

static void error_format_ops(uint32_t ops, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    if (ops == OP_ALL) {
        snprintf(buf, len, "all");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(op_names); i++)
        if ((ops & (1u << i)) && off < len)
            off += (size_t)snprintf(buf + off, len - off, "%s%s",
                                    off ? "," : "", op_names[i]);
}

static void error_format_rate(uint64_t rate, char *buf, size_t len)
{
    uint64_t frac = rate % 10000000;
    int decimals = 7;

    if (!frac) {
        snprintf(buf, len, "%" PRIu64 "%%", rate / 10000000);
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        decimals--;
    }
    snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64 "%%", rate / 10000000,
             decimals, frac);
}

/* ---- publishing and reading the settings ---- */

/* Store s->cur for the requests that follow; with new_gen, the counters
 * start again from 0 under the next generation. */
static void error_publish_locked(struct error_state *s, bool new_gen)
{
    uint64_t w[CONF_WORDS];
    uint64_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);

    if (new_gen)
        s->cur.gen = (s->cur.gen + 1) & GEN_MASK;
    memcpy(w, &s->cur, sizeof(w));
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < CONF_WORDS; i++)
        atomic_store_explicit(&s->conf[i], w[i], memory_order_relaxed);
    if (new_gen) {
        atomic_store_explicit(&s->matched, s->cur.gen << COUNT_BITS,
                              memory_order_relaxed);
        atomic_store_explicit(&s->injected, s->cur.gen << COUNT_BITS,
                              memory_order_relaxed);
    }
    atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

static void error_load(struct error_state *s, struct error_conf *ret)
{
    uint64_t w[CONF_WORDS], q0, q1;

    for (;;) {
        q0 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (q0 & 1) {
            sched_yield(); /* a writer is between its two increments */
            continue;
        }
        for (size_t i = 0; i < CONF_WORDS; i++)
            w[i] = atomic_load_explicit(&s->conf[i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        q1 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (q0 == q1)
            break;
    }
    memcpy(ret, w, sizeof(*ret));
}

/* Count one in generation gen: false when the counter has moved on to
 * another generation (the settings changed). *ret_k is the new count. */
static bool error_count(_Atomic uint64_t *c, uint64_t gen, uint64_t *ret_k)
{
    uint64_t v = atomic_load(c);

    do {
        if (GEN_OF(v) != gen)
            return false;
        if ((v & COUNT_MAX) == COUNT_MAX) {
            *ret_k = COUNT_MAX;
            return true;
        }
    } while (!atomic_compare_exchange_weak(c, &v, v + 1));
    *ret_k = (v & COUNT_MAX) + 1;
    return true;
}

/* ---- the data path ---- */

static uint64_t error_mix(uint64_t x)
{
    /* the splitmix64 finalizer: every input bit moves every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Whether matching request number k (from 1) fails. */
static bool error_fires(const struct error_conf *c, uint64_t k)
{
    uint64_t x;

    switch (c->mode) {
    case MODE_NTH:
        return k == c->n;
    case MODE_EVERY:
        return k % c->n == 0;
    case MODE_RATE:
        /* a pure function of (seed, k): the k-th matching request gets
         * the same answer in every run with this seed */
        x = error_mix(error_mix(c->seed) + k * 0x9e3779b97f4a7c15ull);
        return ((x >> 32) * RATE_ONE) >> 32 < c->rate;
    default:
        return true;
    }
}

static bool error_overlaps(const struct error_conf *c, uint64_t off,
                           uint64_t len)
{
    uint64_t end = c->length ? c->offset + c->length : UINT64_MAX;

    if (end < c->offset) /* offset + length past 2^64: to the end */
        end = UINT64_MAX;
    return off < end && off + len > c->offset;
}

/* 0 to let the request through, or the negative errno to fail it with. */
static int error_check(struct dl_disk *d, uint32_t op, uint64_t off,
                       uint64_t len)
{
    struct error_state *s = d->state;
    struct error_conf c;
    uint64_t k;
    char name[32];

    do {
        error_load(s, &c);
        if (!c.enabled || !(c.ops & op) ||
            (op != OP_FLUSH && !error_overlaps(&c, off, len)))
            return 0;
    } while (!error_count(&s->matched, c.gen, &k));
    if (!error_fires(&c, k))
        return 0;
    /* a change since the count belongs to the next generation: this
     * request was decided under the old one, so it is not counted there */
    error_count(&s->injected, c.gen, &k);
    error_format_errno(c.err, name, sizeof(name));
    dl_debug(d->ctx, "error",
             "%s off=%" PRIu64 " len=%" PRIu64 ": injected %s",
             op_names[__builtin_ctz(op)], off, len, name);
    return -c.err;
}

static int error_read(struct dl_disk *d, void *buf, uint64_t off,
                      uint64_t len, const struct dl_req *rq)
{
    int r = error_check(d, OP_READ, off, len);

    return r < 0 ? r : dl_pread(d->child[0], buf, off, len, rq);
}

static int error_write(struct dl_disk *d, const void *buf, uint64_t off,
                       uint64_t len, const struct dl_req *rq)
{
    int r = error_check(d, OP_WRITE, off, len);

    return r < 0 ? r : dl_pwrite(d->child[0], buf, off, len, rq);
}

static int error_flush(struct dl_disk *d, const struct dl_req *rq)
{
    int r = error_check(d, OP_FLUSH, 0, 0);

    return r < 0 ? r : dl_flush(d->child[0], rq);
}

static int error_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                      const struct dl_req *rq)
{
    int r = error_check(d, OP_ZERO, off, len);

    return r < 0 ? r : dl_zero(d->child[0], off, len, rq);
}

static int error_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                       const struct dl_req *rq)
{
    int r = error_check(d, OP_UNMAP, off, len);

    return r < 0 ? r : dl_unmap(d->child[0], off, len, rq);
}

/* ---- open / close ---- */

static int error_open(struct dl_disk *d, const struct dl_node *n,
                      unsigned flags, char **ret_msg)
{
    struct error_state *s = d->state;
    int r;

    pthread_mutex_init(&s->set_lock, NULL);
    r = error_conf_from_node(n, &s->cur, ret_msg);
    if (r < 0)
        return r;
    error_publish_locked(s, false);
    return 0;
}

static void error_close(struct dl_disk *d)
{
    struct error_state *s = d->state;

    pthread_mutex_destroy(&s->set_lock);
}

/* ---- live settings ---- */

static int error_settings_show(struct dl_disk *d, char **ret_text)
{
    struct error_state *s = d->state;
    _cleanup_free_ char *text = NULL;
    char err[32], ops[64], mode[64], off[24], len[24];
    struct error_conf c;
    uint64_t matched, injected;
    int r;

    pthread_mutex_lock(&s->set_lock);
    c = s->cur;
    matched = atomic_load(&s->matched) & COUNT_MAX;
    injected = atomic_load(&s->injected) & COUNT_MAX;
    pthread_mutex_unlock(&s->set_lock);

    error_format_errno(c.err, err, sizeof(err));
    error_format_ops(c.ops, ops, sizeof(ops));
    switch (c.mode) {
    case MODE_NTH:
        snprintf(mode, sizeof(mode), "nth %" PRIu64, c.n);
        break;
    case MODE_EVERY:
        snprintf(mode, sizeof(mode), "every %" PRIu64, c.n);
        break;
    case MODE_RATE:
        memcpy(mode, "rate ", 5);
        error_format_rate(c.rate, mode + 5, sizeof(mode) - 5);
        break;
    default:
        snprintf(mode, sizeof(mode), "all");
        break;
    }
    r = asprintf(&text,
                 "enabled %s\nerror %s\nops %s\noffset %s\nlength %s\n"
                 "mode %s\nseed %" PRIu64 "\nmatched %" PRIu64
                 "\ninjected %" PRIu64 "\n",
                 c.enabled ? "true" : "false", err, ops,
                 dl_format_size(c.offset, off, sizeof(off)),
                 dl_format_size(c.length, len, sizeof(len)), mode, c.seed,
                 matched, injected);
    if (r < 0) {
        text = NULL;
        return -ENOMEM;
    }
    *ret_text = TAKE_PTR(text);
    return 0;
}

static void node_freep(struct dl_node **n)
{
    dl_node_free(*n);
}

static void node_clear(struct dl_node *n, size_t i)
{
    free(n->v[i].s);
    n->v[i] = (struct dl_value){0};
}

/* A scratch node holding the settings c, to apply a command line to. */
static int error_node_of(const struct error_conf *c, struct dl_node **ret)
{
    _cleanup_(node_freep) struct dl_node *n = NULL;
    char buf[64];
    int r;

    r = dl_node_new(&dl_error_driver, &n);
    if (r < 0)
        return r;
    error_format_errno(c->err, buf, sizeof(buf));
    r = dl_node_set(n, "error", buf, NULL);
    if (r == 0) {
        error_format_ops(c->ops, buf, sizeof(buf));
        r = dl_node_set(n, "ops", buf, NULL);
    }
    if (r == 0)
        r = dl_node_set_u64(n, "offset", c->offset, NULL);
    if (r == 0)
        r = dl_node_set_u64(n, "length", c->length, NULL);
    if (r == 0)
        r = dl_node_set_u64(n, "seed", c->seed, NULL);
    if (r == 0)
        r = dl_node_set_u64(n, "enabled", c->enabled, NULL);
    if (r == 0 && c->mode == MODE_NTH)
        r = dl_node_set_u64(n, "nth", c->n, NULL);
    if (r == 0 && c->mode == MODE_EVERY)
        r = dl_node_set_u64(n, "every", c->n, NULL);
    if (r == 0 && c->mode == MODE_RATE) {
        error_format_rate(c->rate, buf, sizeof(buf));
        r = dl_node_set(n, "rate", buf, NULL);
    }
    if (r < 0)
        return r;
    *ret = TAKE_PTR(n);
    return 0;
}

#define ERROR_SET_USAGE                                                        \
    "expected on, off, reset, or name=value tokens with the names error, "    \
    "ops, offset, length, nth, every, rate, seed, enabled (or mode=all)"

static bool error_known(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(error_params); i++)
        if (!strcmp(name, error_params[i].name))
            return true;
    return false;
}

static bool error_is_mode(const char *name)
{
    return !strcmp(name, "nth") || !strcmp(name, "every") ||
           !strcmp(name, "rate") || !strcmp(name, "mode");
}

/* Apply name=value tokens (each split at its '=' into tok[i] and val[i])
 * to a copy of the current settings; on success *ret holds the result. */
static int error_apply(struct error_state *s, char **tok, char **val,
                       size_t ntok, struct error_conf *ret, char **ret_msg)
{
    _cleanup_(node_freep) struct dl_node *n = NULL;
    const char *mode_tok = NULL, *mode_val = NULL;
    int r;

    for (size_t i = 0; i < ntok; i++) {
        if (!strcmp(tok[i], "mode") && strcmp(val[i], "all") != 0) {
            dl_msg(ret_msg, "'mode=%s': only mode=all can be set this way; "
                   "use nth=, every= or rate= for the others", val[i]);
            return -EINVAL;
        }
        if (strcmp(tok[i], "mode") != 0 && !error_known(tok[i])) {
            dl_msg(ret_msg, "'%s=%s': unknown setting '%s'; %s", tok[i],
                   val[i], tok[i], ERROR_SET_USAGE);
            return -EINVAL;
        }
        if (!error_is_mode(tok[i]))
            continue;
        if (mode_tok) {
            dl_msg(ret_msg, "'%s=%s' and '%s=%s': nth, every and rate are "
                   "modes, set at most one of them", mode_tok, mode_val,
                   tok[i], val[i]);
            return -EINVAL;
        }
        mode_tok = tok[i];
        mode_val = val[i];
    }

    r = error_node_of(&s->cur, &n);
    if (r < 0)
        return r;
    if (mode_tok) /* a new mode replaces the current one */
        for (size_t i = ERR_NTH; i <= ERR_RATE; i++)
            node_clear(n, i);
    for (size_t i = 0; i < ntok; i++) {
        _cleanup_free_ char *msg = NULL;

        if (!strcmp(tok[i], "mode"))
            continue;
        r = dl_node_set(n, tok[i], val[i], &msg);
        if (r < 0) {
            dl_msg(ret_msg, "'%s=%s': %s", tok[i], val[i],
                   msg ? msg : "invalid");
            return -EINVAL;
        }
    }
    return error_conf_from_node(n, ret, ret_msg);
}

static int error_settings_set(struct dl_disk *d, const char *cmd,
                              char **ret_msg)
{
    struct error_state *s = d->state;
    _cleanup_free_ char *line = strdup(cmd);
    char *tok[64], *val[64];
    struct error_conf c;
    size_t ntok;
    int r;

    if (!line)
        return -ENOMEM;
    r = dl_split_tokens(line, tok, ARRAY_SIZE(tok), ret_msg);
    if (r < 0)
        return r;
    ntok = (size_t)r;
    if (ntok == 0) {
        dl_msg(ret_msg, "empty command; %s", ERROR_SET_USAGE);
        return -EINVAL;
    }

    if (ntok > 1 && (!strcmp(tok[0], "on") || !strcmp(tok[0], "off") ||
                     !strcmp(tok[0], "reset"))) {
        dl_msg(ret_msg, "'%s': %s takes nothing after it", tok[1], tok[0]);
        return -EINVAL;
    }

    LOCK_GUARD(&s->set_lock);
    if (ntok == 1 && !strcmp(tok[0], "on")) {
        /* enabling starts the count afresh */
        s->cur.enabled = 1;
        error_publish_locked(s, true);
        return 0;
    }
    if (ntok == 1 && !strcmp(tok[0], "off")) {
        /* the counters stay readable until the next change */
        s->cur.enabled = 0;
        error_publish_locked(s, false);
        return 0;
    }
    if (ntok == 1 && !strcmp(tok[0], "reset")) {
        /* count 1 again, and with it the seeded sequence */
        error_publish_locked(s, true);
        return 0;
    }

    if (ntok == 2 && !strchr(tok[0], '=') && !strchr(tok[1], '=')) {
        /* "error ENOSPC": the form settings_show prints */
        val[0] = tok[1];
        ntok = 1;
    } else {
        for (size_t i = 0; i < ntok; i++) {
            char *eq = strchr(tok[i], '=');

            if (!eq) {
                dl_msg(ret_msg, "'%s': not a name=value token; %s", tok[i],
                       ERROR_SET_USAGE);
                return -EINVAL;
            }
            *eq = '\0';
            val[i] = eq + 1;
        }
    }
    r = error_apply(s, tok, val, ntok, &c, ret_msg);
    if (r < 0)
        return r;
    c.gen = s->cur.gen;
    s->cur = c;
    error_publish_locked(s, true);
    return 0;
}

const struct dl_driver dl_error_driver = {
    .name = "error",
    .summary = "fails chosen requests with a chosen errno (fault injection)",
    .state_size = sizeof(struct error_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = error_params,
    .nparams = ARRAY_SIZE(error_params),
    .min_children = 1,
    .max_children = 1,
    .validate = error_validate,
    .open = error_open,
    .close = error_close,
    .read = error_read,
    .write = error_write,
    .flush = error_flush,
    .zero = error_zero,
    .unmap = error_unmap,
    .settings_show = error_settings_show,
    .settings_set = error_settings_set,
};
