/* delay — a decorator that adds latency, the way a slow disk would.
 *
 * Each request sleeps the current delay of its op type on the thread that
 * carries it, then goes to the disk below unchanged. There are four
 * delays: read, write (zero counts as a write, as a device writing zeroes
 * does), flush and unmap. Everything else (extents, prealloc, resize) is
 * forwarded by the core without delay.
 *
 * Delay adds latency; it never serializes. The driver is parallel and
 * holds no lock while a request sleeps, so N requests with a 50 ms delay
 * issued together take about 50 ms, not N times that.
 *
 * Live settings (.ctl/NAME/delay): the delays are atomics read once per
 * request, so a change applies from the next request on; a request that
 * is already sleeping keeps the delay it started with. Writers of the
 * settings take set_lock so that two command lines never interleave their
 * stores; requests never take it. The counters (requests in flight, their
 * peak, requests seen) are atomics too.
 *
 * Contract with the disk below: requests pass through as they came
 * (offsets, lengths, flags, initiator); geometry, read-only and the unmap
 * behaviour are those of the disk below. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

enum {
    DELAY_READ,
    DELAY_WRITE,
    DELAY_FLUSH,
    DELAY_UNMAP,
    DELAY_NOPS,
};

static const struct dl_param delay_params[] = {
    [DELAY_READ] = {.name = "read", .type = DL_P_DURATION, .def = "0s",
                    .help = "added to every read"},
    [DELAY_WRITE] = {.name = "write", .type = DL_P_DURATION, .def = "0s",
                     .help = "added to every write and write of zeroes"},
    [DELAY_FLUSH] = {.name = "flush", .type = DL_P_DURATION, .def = "0s",
                     .help = "added to every flush"},
    [DELAY_UNMAP] = {.name = "unmap", .type = DL_P_DURATION, .def = "0s",
                     .help = "added to every unmap"},
};

struct delay_state {
    _Atomic uint64_t ns[DELAY_NOPS]; /* the delays, read once per request */
    _Atomic uint64_t in_flight, max_in_flight, requests;
    pthread_mutex_t set_lock; /* serializes settings_set; never on I/O */
};

/* ---- the data path ---- */

static void delay_sleep(uint64_t ns)
{
    struct timespec t;
    long nsec;

    if (!ns)
        return;
    /* an absolute deadline: a signal that interrupts the sleep does not
     * make it longer when it is resumed */
    clock_gettime(CLOCK_MONOTONIC, &t);
    nsec = t.tv_nsec + (long)(ns % 1000000000);
    t.tv_sec += (time_t)(ns / 1000000000) + nsec / 1000000000;
    t.tv_nsec = nsec % 1000000000;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        ;
}

/* Enter the part: count the request, raise the peak, sleep. */
static void delay_enter(struct delay_state *s, int op)
{
    uint64_t now = atomic_fetch_add(&s->in_flight, 1) + 1;
    uint64_t peak = atomic_load(&s->max_in_flight);

    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak(&s->max_in_flight, &peak, now))
        ;
    delay_sleep(atomic_load_explicit(&s->ns[op], memory_order_relaxed));
}

static int delay_leave(struct delay_state *s, int r)
{
    atomic_fetch_sub(&s->in_flight, 1);
    return r;
}

static int delay_read(struct dl_disk *d, void *buf, uint64_t off,
                      uint64_t len, const struct dl_req *rq)
{
    delay_enter(d->state, DELAY_READ);
    return delay_leave(d->state, dl_pread(d->child[0], buf, off, len, rq));
}

static int delay_write(struct dl_disk *d, const void *buf, uint64_t off,
                       uint64_t len, const struct dl_req *rq)
{
    delay_enter(d->state, DELAY_WRITE);
    return delay_leave(d->state, dl_pwrite(d->child[0], buf, off, len, rq));
}

static int delay_flush(struct dl_disk *d, const struct dl_req *rq)
{
    delay_enter(d->state, DELAY_FLUSH);
    return delay_leave(d->state, dl_flush(d->child[0], rq));
}

static int delay_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                      const struct dl_req *rq)
{
    delay_enter(d->state, DELAY_WRITE);
    return delay_leave(d->state, dl_zero(d->child[0], off, len, rq));
}

static int delay_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                       const struct dl_req *rq)
{
    delay_enter(d->state, DELAY_UNMAP);
    return delay_leave(d->state, dl_unmap(d->child[0], off, len, rq));
}

/* ---- open / close ---- */

static int delay_open(struct dl_disk *d, const struct dl_node *n,
                      unsigned flags, char **ret_msg)
{
    struct delay_state *s = d->state;

    pthread_mutex_init(&s->set_lock, NULL);
    for (int i = 0; i < DELAY_NOPS; i++)
        atomic_store(&s->ns[i], dl_node_u64(n, (size_t)i));
    return 0;
}

static void delay_close(struct dl_disk *d)
{
    struct delay_state *s = d->state;

    pthread_mutex_destroy(&s->set_lock);
}

/* ---- live settings ---- */

static int delay_settings_show(struct dl_disk *d, char **ret_text)
{
    struct delay_state *s = d->state;
    _cleanup_free_ char *text = NULL;
    _cleanup_fclose_ FILE *f = NULL;
    size_t size = 0;

    f = open_memstream(&text, &size);
    if (!f)
        return -ENOMEM;
    for (int i = 0; i < DELAY_NOPS; i++) {
        struct dl_value v = {.set = true, .u = atomic_load(&s->ns[i])};
        _cleanup_free_ char *val = NULL;
        int r = dl_param_format(&delay_params[i], &v, &val);

        if (r < 0)
            return r;
        fprintf(f, "%s %s\n", delay_params[i].name, val);
    }
    fprintf(f, "in_flight %" PRIu64 "\n", atomic_load(&s->in_flight));
    fprintf(f, "max_in_flight %" PRIu64 "\n", atomic_load(&s->max_in_flight));
    fprintf(f, "requests %" PRIu64 "\n", atomic_load(&s->requests));
    if (fclose(TAKE_PTR(f)) != 0 || !text)
        return -ENOMEM;
    *ret_text = TAKE_PTR(text);
    return 0;
}

#define DELAY_SET_USAGE                                                        \
    "expected name=value tokens with the names read, write, flush, unmap "     \
    "or all (read=5ms write=1ms), or reset"

/* One "name=value" (or, as a whole line, "name value") into ns[]. */
static int delay_parse_token(const char *token, const char *name,
                             size_t namelen, const char *value,
                             uint64_t ns[DELAY_NOPS], char **ret_msg)
{
    char rule[128];
    uint64_t v;
    int r, which = -1;

    if (!(namelen == 3 && strncmp(name, "all", 3) == 0)) {
        for (int i = 0; i < DELAY_NOPS; i++)
            if (strlen(delay_params[i].name) == namelen &&
                strncmp(name, delay_params[i].name, namelen) == 0)
                which = i;
        if (which < 0) {
            dl_msg(ret_msg, "'%s': unknown setting '%.*s'; %s", token,
                   (int)namelen, name, DELAY_SET_USAGE);
            return -EINVAL;
        }
    }
    r = dl_parse_duration(value, &v);
    if (r < 0) {
        dl_msg(ret_msg, "'%s': %s%s", token,
               r == -ERANGE ? "does not fit in 64 bits; " : "",
               dl_param_rule(&delay_params[DELAY_READ], rule, sizeof(rule)));
        return -EINVAL;
    }
    for (int i = 0; i < DELAY_NOPS; i++)
        if (which < 0 || which == i)
            ns[i] = v;
    return 0;
}

static int delay_settings_set(struct dl_disk *d, const char *cmd,
                              char **ret_msg)
{
    struct delay_state *s = d->state;
    _cleanup_free_ char *line = strdup(cmd);
    char *tok[64];
    uint64_t ns[DELAY_NOPS];
    size_t ntok;
    int r;

    if (!line)
        return -ENOMEM;
    r = dl_split_tokens(line, tok, ARRAY_SIZE(tok), ret_msg);
    if (r < 0)
        return r;
    ntok = (size_t)r;
    if (ntok == 0) {
        dl_msg(ret_msg, "empty command; %s", DELAY_SET_USAGE);
        return -EINVAL;
    }

    LOCK_GUARD(&s->set_lock);
    if (strcmp(tok[0], "reset") == 0) {
        if (ntok > 1) {
            dl_msg(ret_msg, "'%s': reset takes nothing after it", tok[1]);
            return -EINVAL;
        }
        /* the peak starts again from what is in flight now (0 when idle) */
        atomic_store(&s->requests, 0);
        atomic_store(&s->max_in_flight, atomic_load(&s->in_flight));
        return 0;
    }

    for (int i = 0; i < DELAY_NOPS; i++)
        ns[i] = atomic_load(&s->ns[i]);
    if (ntok == 2 && !strchr(tok[0], '=') && !strchr(tok[1], '=')) {
        /* "read 5ms": the form settings_show prints */
        char both[160];

        snprintf(both, sizeof(both), "%s %s", tok[0], tok[1]);
        r = delay_parse_token(both, tok[0], strlen(tok[0]), tok[1], ns,
                              ret_msg);
        if (r < 0)
            return r;
    } else {
        for (size_t i = 0; i < ntok; i++) {
            const char *eq = strchr(tok[i], '=');

            if (!eq) {
                dl_msg(ret_msg, "'%s': not a name=value token; %s", tok[i],
                       DELAY_SET_USAGE);
                return -EINVAL;
            }
            r = delay_parse_token(tok[i], tok[i], (size_t)(eq - tok[i]),
                                  eq + 1, ns, ret_msg);
            if (r < 0)
                return r;
        }
    }
    for (int i = 0; i < DELAY_NOPS; i++)
        atomic_store(&s->ns[i], ns[i]);
    return 0;
}

const struct dl_driver dl_delay_driver = {
    .name = "delay",
    .summary = "adds latency to reads, writes, flushes and unmaps",
    .state_size = sizeof(struct delay_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = delay_params,
    .nparams = ARRAY_SIZE(delay_params),
    .min_children = 1,
    .max_children = 1,
    .open = delay_open,
    .close = delay_close,
    .read = delay_read,
    .write = delay_write,
    .flush = delay_flush,
    .zero = delay_zero,
    .unmap = delay_unmap,
    .settings_show = delay_settings_show,
    .settings_set = delay_settings_set,
};
