/* pr — persistent reservations emulated with the SPC-4 model.
 *
 * The model (SPC-4 5.12 and the PERSISTENT RESERVE OUT service actions,
 * as Linux sd issues them through <linux/pr.h>):
 *  - Registrants: initiator names ("fd-3", "ctl", "hostA": printable
 *    ASCII without spaces, 1 to 63 characters), each with a nonzero key.
 *    One registration per name; several names may share a key.
 *  - At most one reservation, of one of the six types (numbered as Linux
 *    enum pr_type: 1 WE, 2 EA, 3 WE-RO, 4 EA-RO, 5 WE-AR, 6 EA-AR). The
 *    holder of a WE, EA, WE-RO or EA-RO reservation is one registrant;
 *    in the all-registrants types (WE-AR, EA-AR) every registrant is a
 *    holder and the reported holder key is 0.
 *  - PRgeneration counts the successful register (plain, ignore-key,
 *    replace, unregister), clear, preempt and preempt-and-abort; reserve,
 *    release, failures and the register that does nothing (unregistered
 *    with new key 0) leave it alone. It wraps at 2^32.
 *
 * What the I/O of an initiator may do (SPC-4 table "persistent
 * reservation type codes", SBC-3 table of commands allowed in the
 * presence of reservations):
 *
 *     type    holder   registrant   not registered
 *     WE      rw       r            r
 *     EA      rw       -            -
 *     WE-RO   rw       rw           r
 *     EA-RO   rw       rw           -
 *     WE-AR   rw       rw (holder)  r
 *     EA-AR   rw       rw (holder)  -
 *
 * "w" covers write, zero, unmap, prealloc and flush: SBC-3 lists
 * SYNCHRONIZE CACHE with the writes (conflict wherever WRITE conflicts).
 * Size, extents, allocation and resize carry no initiator and pass
 * through, as READ CAPACITY is allowed under every reservation. A refused
 * request fails with -EBADE and never reaches the disk below. The
 * initiator of a request is "fd-N" for rq->initiator N > 0; a request
 * without rq or with initiator 0 is the daemon itself and is never
 * refused (nor does it take the lock).
 *
 * Locking: s->lock, a writer-preferring rwlock, protects s->cur. A
 * request from an initiator holds it shared from the check until the disk
 * below has answered; every reservation command holds it exclusive. So a
 * command waits for the requests in flight that were checked against the
 * state it replaces, and requests that come after see the new state.
 * That is all preempt-and-abort can do here: requests are synchronous,
 * there is no task set to abort, and when it returns no request of a
 * preempted initiator is still running. The hot path costs a shared lock,
 * one load when there is no reservation (or for a read under a write-
 * exclusive type), and otherwise a scan of the registrants comparing
 * numbers: the N of a registrant named "fd-N" (canonical decimal, no
 * leading zero) is parsed when it registers, never formatted per request.
 *
 * Each command works on a copy of the state, writes it to ptpl_file when
 * one is set, and only then makes it current: a failed write fails the
 * command with nothing changed.
 *
 * Deliberate choices where SPC-4 leaves room or Linux differs:
 *  - Key 0 where a registered key is named (reserve, release, clear, the
 *    caller's key of preempt, the old key of a registered initiator) is a
 *    conflict: no registrant has key 0, so it is a key that does not
 *    match, which SPC-4 answers with RESERVATION CONFLICT. A preempt
 *    victim key of 0 is -EINVAL unless an all-registrants reservation is
 *    held (SPC-4: INVALID FIELD IN PARAMETER LIST).
 *  - The type is checked (1-6, else -EINVAL) by reserve, release and
 *    preempt always, also where SPC-4 would ignore it (preempting a
 *    non-holder, releasing as a non-holder). Unknown flags are
 *    -EOPNOTSUPP; reserve and release accept none, register accepts
 *    DL_PR_F_IGNORE_KEY and DL_PR_F_PTPL.
 *  - Preempt keeps the caller's own registration even when its key is the
 *    victim key (SPC-4), so preempting one's own key is how a holder
 *    changes the type. A victim key that no registrant has is a
 *    conflict. Under an all-registrants reservation a nonzero victim key
 *    only removes those registrations (the caller remains, so the
 *    reservation stays); key 0 removes every other registrant and gives
 *    the caller a new reservation of the given type.
 *  - Persistence is decided by the configuration: with ptpl_file every
 *    change is persisted and the status reports ptpl; DL_PR_F_PTPL (the
 *    APTPL bit) is accepted and changes nothing, and a register without
 *    it does not turn persistence off. Without ptpl_file DL_PR_F_PTPL is
 *    -EINVAL (SPC-4: APTPL set on a unit that cannot persist).
 *  - PRgeneration starts at 0 at every open, also from a ptpl_file (SPC-4:
 *    a power on sets it to 0); it is not stored.
 *  - At most PR_MAX_REGISTRANTS registrations; one more is -ENOSPC
 *    (SPC-4: INSUFFICIENT REGISTRATION RESOURCES).
 *  - Reservation commands work on a read-only disk (they are not writes).
 *  - An unmap on a disk whose unmap is ignored never reaches this driver
 *    (the core drops it first), so it succeeds, doing nothing, whatever
 *    the reservation.
 *  - After a restart from ptpl_file, "fd-N" registrants are names: the
 *    mount numbers its fds from 1 again, so a new open that gets the same
 *    number acts as that registrant. Acceptable for a test and script
 *    tool; act for the old ones through their names.
 *  - One process uses a ptpl_file at a time; it is not locked.
 *
 * ptpl_file format (text, one record per line, fields separated by
 * spaces; '#' starts a comment line; written whole and replaced
 * atomically: temporary file in the same directory, fsync, rename, fsync
 * of the directory):
 *     diskstack-pr 1                       first line: format and version
 *     register NAME 0xKEY                  one per registrant
 *     reserve TYPE HOLDER                  WE, EA, WE-RO, EA-RO held by NAME
 *     reserve TYPE                         WE-AR, EA-AR
 * TYPE is we, ea, we-ro, ea-ro, we-ar or ea-ar. A file that does not
 * parse refuses the open, naming the file and the line. A missing file is
 * an empty state (created by the first change). A dry run reads it and
 * never writes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

#define PR_NAME_MAX 63
#define PR_MAX_REGISTRANTS 1024
#define PR_FILE_MAGIC "diskstack-pr"
#define PR_FILE_VERSION 1

enum { PR_PTPL_FILE };

static const struct dl_param pr_params[] = {
    [PR_PTPL_FILE] = {.name = "ptpl_file", .type = DL_P_PATH,
                      .help = "where registrations and the reservation "
                              "persist across restarts, written atomically"},
};

struct pr_reg {
    char who[PR_NAME_MAX + 1];
    uint64_t key; /* never 0 */
    uint32_t fd;  /* N when who is "fd-N", else 0 */
    bool holder;  /* holds a reservation that is not all-registrants */
};

/* One state of the reservations. Invariants: names are unique; when type
 * is WE, EA, WE-RO or EA-RO exactly one registrant is holder, otherwise
 * none is; an all-registrants type has at least one registrant. */
struct pr_view {
    struct pr_reg *reg;
    size_t n;
    enum dl_pr_type type; /* DL_PR_NONE: no reservation */
    uint32_t generation;
};

struct pr_state {
    pthread_rwlock_t lock;
    bool lock_ready;
    struct pr_view cur; /* protected by lock */
    char *ptpl_path;    /* NULL: not persisted */
    bool dry_run;       /* read ptpl_path, never write it */
};

enum pr_role { ROLE_OTHER, ROLE_REGISTRANT, ROLE_HOLDER };

static const char *const pr_type_names[] = {
    [DL_PR_WRITE_EXCLUSIVE] = "we",
    [DL_PR_EXCLUSIVE_ACCESS] = "ea",
    [DL_PR_WRITE_EXCLUSIVE_REG_ONLY] = "we-ro",
    [DL_PR_EXCLUSIVE_ACCESS_REG_ONLY] = "ea-ro",
    [DL_PR_WRITE_EXCLUSIVE_ALL_REGS] = "we-ar",
    [DL_PR_EXCLUSIVE_ACCESS_ALL_REGS] = "ea-ar",
};

static bool pr_type_valid(enum dl_pr_type t)
{
    return t >= DL_PR_WRITE_EXCLUSIVE && t <= DL_PR_EXCLUSIVE_ACCESS_ALL_REGS;
}

static bool pr_all_regs(enum dl_pr_type t)
{
    return t == DL_PR_WRITE_EXCLUSIVE_ALL_REGS ||
           t == DL_PR_EXCLUSIVE_ACCESS_ALL_REGS;
}

/* The table of the header comment. */
static bool pr_allowed(enum dl_pr_type t, enum pr_role role, bool write)
{
    switch (t) {
    case DL_PR_NONE:
        return true;
    case DL_PR_WRITE_EXCLUSIVE:
        return !write || role == ROLE_HOLDER;
    case DL_PR_EXCLUSIVE_ACCESS:
        return role == ROLE_HOLDER;
    case DL_PR_WRITE_EXCLUSIVE_REG_ONLY:
    case DL_PR_WRITE_EXCLUSIVE_ALL_REGS:
        return !write || role != ROLE_OTHER;
    case DL_PR_EXCLUSIVE_ACCESS_REG_ONLY:
    case DL_PR_EXCLUSIVE_ACCESS_ALL_REGS:
        return role != ROLE_OTHER;
    }
    return false;
}

/* N for a name "fd-N" (N in 1..2^32-1, decimal without leading zero:
 * the form the mount gives), else 0. */
static uint32_t pr_fd_of(const char *who)
{
    uint64_t v = 0;

    if (strncmp(who, "fd-", 3) != 0 || who[3] < '1' || who[3] > '9')
        return 0;
    for (const char *p = who + 3; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return 0;
    }
    return (uint32_t)v;
}

static bool pr_name_valid(const char *who)
{
    size_t n = 0;

    if (!who)
        return false;
    for (; who[n]; n++)
        if ((unsigned char)who[n] <= ' ' || (unsigned char)who[n] > '~' ||
            n >= PR_NAME_MAX)
            return false;
    return n > 0;
}

/* ---- states ---- */

static void pr_view_free(struct pr_view *v)
{
    free(v->reg);
    v->reg = NULL;
    v->n = 0;
}

/* A copy with room for one more registrant. */
static int pr_view_clone(const struct pr_view *src, struct pr_view *ret)
{
    struct pr_reg *reg = malloc((src->n + 1) * sizeof(*reg));

    if (!reg)
        return -ENOMEM;
    if (src->n)
        memcpy(reg, src->reg, src->n * sizeof(*reg));
    *ret = *src;
    ret->reg = reg;
    return 0;
}

static struct pr_reg *pr_find(const struct pr_view *v, const char *who)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->reg[i].who, who) == 0)
            return &v->reg[i];
    return NULL;
}

static bool pr_key_in_use(const struct pr_view *v, uint64_t key)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->reg[i].key == key)
            return true;
    return false;
}

static const struct pr_reg *pr_holder(const struct pr_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->reg[i].holder)
            return &v->reg[i];
    return NULL;
}

static bool pr_is_holder(const struct pr_view *v, const struct pr_reg *r)
{
    return v->type != DL_PR_NONE && (pr_all_regs(v->type) || r->holder);
}

/* v must come from pr_view_clone and have no more than one addition. */
static int pr_add(struct pr_view *v, const char *who, uint64_t key)
{
    struct pr_reg *r;

    if (v->n >= PR_MAX_REGISTRANTS)
        return -ENOSPC;
    r = &v->reg[v->n++];
    memset(r, 0, sizeof(*r));
    strcpy(r->who, who); /* checked by pr_name_valid: fits */
    r->key = key;
    r->fd = pr_fd_of(who);
    return 0;
}

static void pr_release_all(struct pr_view *v)
{
    v->type = DL_PR_NONE;
    for (size_t i = 0; i < v->n; i++)
        v->reg[i].holder = false;
}

/* Remove registrant i. The holder of a single-holder reservation takes
 * it with it; an all-registrants reservation goes with the last one. */
static void pr_remove(struct pr_view *v, size_t i)
{
    bool was_holder = v->reg[i].holder;

    memmove(&v->reg[i], &v->reg[i + 1], (v->n - i - 1) * sizeof(v->reg[0]));
    v->n--;
    if (was_holder || (pr_all_regs(v->type) && v->n == 0))
        pr_release_all(v);
}

/* Make r the holder of a reservation of type t. */
static void pr_take(struct pr_view *v, struct pr_reg *r, enum dl_pr_type t)
{
    pr_release_all(v);
    v->type = t;
    if (!pr_all_regs(t))
        r->holder = true;
}

/* ---- ptpl_file ---- */

static int pr_format(const struct pr_view *v, char **ret, size_t *ret_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bool bad;

    if (!f)
        return -ENOMEM;
    fprintf(f, "%s %d\n", PR_FILE_MAGIC, PR_FILE_VERSION);
    for (size_t i = 0; i < v->n; i++)
        fprintf(f, "register %s 0x%016" PRIx64 "\n", v->reg[i].who,
                v->reg[i].key);
    if (v->type != DL_PR_NONE) {
        const struct pr_reg *h = pr_holder(v);

        fprintf(f, "reserve %s%s%s\n", pr_type_names[v->type], h ? " " : "",
                h ? h->who : "");
    }
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return -ENOMEM;
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

/* Replace the file with v (atomically, see dl_replace_file). */
static int pr_write_file(const char *path, const struct pr_view *v,
                         bool *ret_renamed)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r;

    *ret_renamed = false;
    r = pr_format(v, &text, &len);
    if (r < 0)
        return r;
    return dl_replace_file(path, text, len, ret_renamed);
}

/* Make next the current state (taking its array), persisted first; on
 * failure next is freed and nothing changes. */
static int pr_commit_locked(struct dl_disk *d, struct pr_view *next,
                            bool bump)
{
    struct pr_state *s = d->state;

    if (bump)
        next->generation++;
    if (s->ptpl_path && !s->dry_run) {
        bool renamed;
        int r = pr_write_file(s->ptpl_path, next, &renamed);

        if (r < 0) {
            dl_log(d->ctx, LOG_WARNING, "pr",
                   "cannot write %s: %s; the reservation command fails "
                   "and changes nothing",
                   s->ptpl_path, strerror(-r));
            /* the new state may be in place but not durable: put the old
             * one back (best effort) */
            if (renamed)
                pr_write_file(s->ptpl_path, &s->cur, &renamed);
            pr_view_free(next);
            return r;
        }
    }
    pr_view_free(&s->cur);
    s->cur = *next;
    return 0;
}

static int pr_parse_key(const char *s, uint64_t *ret)
{
    uint64_t v = 0;
    size_t n;

    if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return -EINVAL;
    s += 2;
    n = strlen(s);
    if (n == 0 || n > 16)
        return -EINVAL;
    for (; *s; s++) {
        int c = *s, x;

        if (c >= '0' && c <= '9')
            x = c - '0';
        else if (c >= 'a' && c <= 'f')
            x = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            x = c - 'A' + 10;
        else
            return -EINVAL;
        v = v << 4 | (uint64_t)x;
    }
    if (v == 0)
        return -EINVAL;
    *ret = v;
    return 0;
}

static enum dl_pr_type pr_type_by_name(const char *s)
{
    for (int t = DL_PR_WRITE_EXCLUSIVE; t <= DL_PR_EXCLUSIVE_ACCESS_ALL_REGS;
         t++)
        if (strcmp(s, pr_type_names[t]) == 0)
            return (enum dl_pr_type)t;
    return DL_PR_NONE;
}

/* Split line into at most max fields at spaces and tabs; returns the
 * count, or max + 1 when there are more. */
static size_t pr_split(char *line, char **tok, size_t max)
{
    size_t n = 0;

    for (char *p = line;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        tok[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

#define PR_BAD(...)                                                            \
    do {                                                                       \
        dl_msg(ret_msg, __VA_ARGS__);                                          \
        r = -EINVAL;                                                           \
        goto out;                                                              \
    } while (0)

static int pr_load(const char *path, struct pr_view *ret, char **ret_msg)
{
    _cleanup_fclose_ FILE *f = NULL;
    _cleanup_free_ char *line = NULL, *holder = NULL;
    struct pr_view v = {0};
    size_t cap = 0, cap_reg = 0;
    unsigned lineno = 0, reserve_line = 0;
    enum dl_pr_type type = DL_PR_NONE;
    struct stat st;
    ssize_t len;
    int r = 0;

    f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0; /* nothing persisted yet */
        r = -errno;
        dl_msg(ret_msg, "ptpl_file %s: %s", path, strerror(-r));
        return r;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        dl_msg(ret_msg, "ptpl_file %s: not a regular file", path);
        return -EINVAL;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *tok[4];
        size_t nt;

        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (strlen(line) != (size_t)len)
            PR_BAD("%s:%u: a NUL byte in the line", path, lineno);
        nt = pr_split(line, tok, 3);
        if (lineno == 1) {
            uint64_t ver;

            if (nt != 2 || strcmp(tok[0], PR_FILE_MAGIC) != 0)
                PR_BAD("%s:1: not a reservations file: the first line must "
                       "be '%s %d'",
                       path, PR_FILE_MAGIC, PR_FILE_VERSION);
            if (dl_parse_u64(tok[1], &ver) < 0 || ver != PR_FILE_VERSION)
                PR_BAD("%s:1: version '%s' is not supported (this build "
                       "reads version %d)",
                       path, tok[1], PR_FILE_VERSION);
            continue;
        }
        if (nt == 0 || tok[0][0] == '#')
            continue;
        if (strcmp(tok[0], "register") == 0) {
            uint64_t key;

            if (nt != 3)
                PR_BAD("%s:%u: expected 'register NAME 0xKEY'", path, lineno);
            if (!pr_name_valid(tok[1]))
                PR_BAD("%s:%u: '%.80s' is not an initiator name (1 to %d "
                       "printable characters, no spaces)",
                       path, lineno, tok[1], PR_NAME_MAX);
            if (pr_parse_key(tok[2], &key) < 0)
                PR_BAD("%s:%u: '%.80s' is not a key (0x and 1 to 16 hex "
                       "digits, not zero)",
                       path, lineno, tok[2]);
            if (pr_find(&v, tok[1]))
                PR_BAD("%s:%u: '%s' is registered twice", path, lineno,
                       tok[1]);
            if (v.n == cap_reg) {
                size_t nc = cap_reg ? cap_reg * 2 : 8;
                struct pr_reg *nr;

                if (v.n >= PR_MAX_REGISTRANTS)
                    PR_BAD("%s:%u: more than %d registrants", path, lineno,
                           PR_MAX_REGISTRANTS);
                nr = realloc(v.reg, nc * sizeof(*nr));
                if (!nr) {
                    r = -ENOMEM;
                    goto out;
                }
                v.reg = nr;
                cap_reg = nc;
            }
            pr_add(&v, tok[1], key);
        } else if (strcmp(tok[0], "reserve") == 0) {
            if (reserve_line)
                PR_BAD("%s:%u: a second reservation (the first is on line "
                       "%u)",
                       path, lineno, reserve_line);
            if (nt < 2)
                PR_BAD("%s:%u: expected 'reserve TYPE [HOLDER]'", path,
                       lineno);
            type = pr_type_by_name(tok[1]);
            if (type == DL_PR_NONE)
                PR_BAD("%s:%u: '%.80s' is not a reservation type (one of "
                       "we, ea, we-ro, ea-ro, we-ar, ea-ar)",
                       path, lineno, tok[1]);
            if (pr_all_regs(type) && nt != 2)
                PR_BAD("%s:%u: a %s reservation has no single holder", path,
                       lineno, tok[1]);
            if (!pr_all_regs(type) && nt != 3)
                PR_BAD("%s:%u: a %s reservation needs its holder", path,
                       lineno, tok[1]);
            if (nt == 3) {
                holder = strdup(tok[2]);
                if (!holder) {
                    r = -ENOMEM;
                    goto out;
                }
            }
            reserve_line = lineno;
        } else {
            PR_BAD("%s:%u: unknown record '%.80s' (expected register or "
                   "reserve)",
                   path, lineno, tok[0]);
        }
    }
    if (ferror(f)) {
        r = -EIO;
        dl_msg(ret_msg, "ptpl_file %s: read error", path);
        goto out;
    }
    if (lineno == 0)
        PR_BAD("%s:1: empty file: the first line must be '%s %d'", path,
               PR_FILE_MAGIC, PR_FILE_VERSION);
    if (reserve_line) {
        if (holder) {
            struct pr_reg *h = pr_find(&v, holder);

            if (!h)
                PR_BAD("%s:%u: the holder '%.80s' is not registered", path,
                       reserve_line, holder);
            pr_take(&v, h, type);
        } else {
            if (v.n == 0)
                PR_BAD("%s:%u: an all-registrants reservation without "
                       "registrants",
                       path, reserve_line);
            v.type = type;
        }
    }
    *ret = v;
    v.reg = NULL;
out:
    pr_view_free(&v);
    return r;
}

/* ---- the hot path ---- */

/* Check a request; on success *ret_locked says whether the caller must
 * unlock after the disk below has answered. */
static int pr_io_enter(struct pr_state *s, const struct dl_req *rq,
                       bool write, bool *ret_locked)
{
    enum dl_pr_type t;
    enum pr_role role = ROLE_OTHER;

    *ret_locked = false;
    if (!rq || rq->initiator == 0)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    t = s->cur.type;
    if (t == DL_PR_NONE || pr_allowed(t, ROLE_OTHER, write)) {
        *ret_locked = true;
        return 0;
    }
    for (size_t i = 0; i < s->cur.n; i++) {
        if (s->cur.reg[i].fd == rq->initiator) {
            role = pr_is_holder(&s->cur, &s->cur.reg[i]) ? ROLE_HOLDER
                                                         : ROLE_REGISTRANT;
            break;
        }
    }
    if (!pr_allowed(t, role, write)) {
        pthread_rwlock_unlock(&s->lock);
        return -EBADE;
    }
    *ret_locked = true;
    return 0;
}

static void pr_io_leave(struct pr_state *s, bool locked)
{
    if (locked)
        pthread_rwlock_unlock(&s->lock);
}

static int pr_read(struct dl_disk *d, void *buf, uint64_t off, uint64_t len,
                   const struct dl_req *rq)
{
    struct pr_state *s = d->state;
    bool locked;
    int r = pr_io_enter(s, rq, false, &locked);

    if (r < 0)
        return r;
    r = dl_pread(d->child[0], buf, off, len, rq);
    pr_io_leave(s, locked);
    return r;
}

static int pr_write(struct dl_disk *d, const void *buf, uint64_t off,
                    uint64_t len, const struct dl_req *rq)
{
    struct pr_state *s = d->state;
    bool locked;
    int r = pr_io_enter(s, rq, true, &locked);

    if (r < 0)
        return r;
    r = dl_pwrite(d->child[0], buf, off, len, rq);
    pr_io_leave(s, locked);
    return r;
}

static int pr_flush(struct dl_disk *d, const struct dl_req *rq)
{
    struct pr_state *s = d->state;
    bool locked;
    int r = pr_io_enter(s, rq, true, &locked);

    if (r < 0)
        return r;
    r = dl_flush(d->child[0], rq);
    pr_io_leave(s, locked);
    return r;
}

/* zero, unmap and prealloc: write-class requests over a range */
static int pr_range(struct dl_disk *d, uint64_t off, uint64_t len,
                    const struct dl_req *rq,
                    int (*op)(struct dl_disk *, uint64_t, uint64_t,
                              const struct dl_req *))
{
    struct pr_state *s = d->state;
    bool locked;
    int r = pr_io_enter(s, rq, true, &locked);

    if (r < 0)
        return r;
    r = op(d->child[0], off, len, rq);
    pr_io_leave(s, locked);
    return r;
}

static int pr_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                   const struct dl_req *rq)
{
    return pr_range(d, off, len, rq, dl_zero);
}

static int pr_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                    const struct dl_req *rq)
{
    return pr_range(d, off, len, rq, dl_unmap);
}

static int pr_prealloc(struct dl_disk *d, uint64_t off, uint64_t len,
                       const struct dl_req *rq)
{
    return pr_range(d, off, len, rq, dl_prealloc);
}

/* ---- the reservation commands ---- */

/* A writer's hold on s->lock for the rest of the scope. */
static void pr_unlockp(pthread_rwlock_t **l)
{
    if (*l)
        pthread_rwlock_unlock(*l);
}
static pthread_rwlock_t *pr_wrlock(struct pr_state *s)
{
    pthread_rwlock_wrlock(&s->lock);
    return &s->lock;
}
#define PR_WRITE_GUARD(s)                                                      \
    _cleanup_(pr_unlockp) __attribute__((unused)) pthread_rwlock_t            \
        *DL_CONCAT(_prguard_, __LINE__) = pr_wrlock(s)

static unsigned pr_capabilities(struct dl_disk *d)
{
    struct pr_state *s = d->state;
    unsigned caps = 0;

    for (int t = DL_PR_WRITE_EXCLUSIVE; t <= DL_PR_EXCLUSIVE_ACCESS_ALL_REGS;
         t++)
        caps |= 1u << t;
    if (s->ptpl_path)
        caps |= DL_PR_CAP_PTPL;
    return caps;
}

static int pr_register(struct dl_disk *d, const char *who, uint64_t old_key,
                       uint64_t new_key, unsigned flags)
{
    struct pr_state *s = d->state;
    const bool ignore = flags & DL_PR_F_IGNORE_KEY;
    struct pr_view next;
    struct pr_reg *me;
    int r;

    if (flags & ~(DL_PR_F_IGNORE_KEY | DL_PR_F_PTPL))
        return -EOPNOTSUPP;
    if ((flags & DL_PR_F_PTPL) && !s->ptpl_path)
        return -EINVAL;
    if (!pr_name_valid(who))
        return -EINVAL;

    PR_WRITE_GUARD(s);
    me = pr_find(&s->cur, who);
    if (!me) {
        /* unregistered: the old key must be 0 unless ignored */
        if (!ignore && old_key != 0)
            return -EBADE;
        if (new_key == 0)
            return 0; /* nothing to do, generation unchanged */
    } else if (!ignore && old_key != me->key) {
        return -EBADE;
    }
    r = pr_view_clone(&s->cur, &next);
    if (r < 0)
        return r;
    me = pr_find(&next, who);
    if (!me) {
        r = pr_add(&next, who, new_key);
        if (r < 0) {
            pr_view_free(&next);
            return r;
        }
    } else if (new_key == 0) {
        pr_remove(&next, (size_t)(me - next.reg));
    } else {
        me->key = new_key; /* a holder keeps the reservation */
    }
    return pr_commit_locked(d, &next, true);
}

static int pr_reserve(struct dl_disk *d, const char *who, uint64_t key,
                      enum dl_pr_type type, unsigned flags)
{
    struct pr_state *s = d->state;
    struct pr_view next;
    struct pr_reg *me;
    int r;

    if (flags)
        return -EOPNOTSUPP;
    if (!pr_type_valid(type) || !pr_name_valid(who))
        return -EINVAL;

    PR_WRITE_GUARD(s);
    me = pr_find(&s->cur, who);
    if (!me || me->key != key) /* key 0 never matches: a conflict */
        return -EBADE;
    if (s->cur.type != DL_PR_NONE) {
        if (!pr_is_holder(&s->cur, me) || s->cur.type != type)
            return -EBADE;
        return 0; /* the holder again, same type */
    }
    r = pr_view_clone(&s->cur, &next);
    if (r < 0)
        return r;
    pr_take(&next, pr_find(&next, who), type);
    return pr_commit_locked(d, &next, false);
}

static int pr_release(struct dl_disk *d, const char *who, uint64_t key,
                      enum dl_pr_type type, unsigned flags)
{
    struct pr_state *s = d->state;
    struct pr_view next;
    struct pr_reg *me;
    int r;

    if (flags)
        return -EOPNOTSUPP;
    if (!pr_type_valid(type) || !pr_name_valid(who))
        return -EINVAL;

    PR_WRITE_GUARD(s);
    me = pr_find(&s->cur, who);
    if (!me || me->key != key)
        return -EBADE;
    if (!pr_is_holder(&s->cur, me))
        return 0; /* no reservation, or another's: nothing happens */
    if (type != s->cur.type)
        return -EINVAL; /* SPC-4: INVALID RELEASE OF PERSISTENT RESERVATION */
    r = pr_view_clone(&s->cur, &next);
    if (r < 0)
        return r;
    pr_release_all(&next);
    return pr_commit_locked(d, &next, false);
}

static int pr_clear(struct dl_disk *d, const char *who, uint64_t key)
{
    struct pr_state *s = d->state;
    struct pr_view next;
    struct pr_reg *me;

    if (!pr_name_valid(who))
        return -EINVAL;

    PR_WRITE_GUARD(s);
    me = pr_find(&s->cur, who);
    if (!me || me->key != key)
        return -EBADE;
    next = (struct pr_view){.generation = s->cur.generation};
    return pr_commit_locked(d, &next, true);
}

static int pr_preempt(struct dl_disk *d, const char *who, uint64_t old_key,
                      uint64_t new_key, enum dl_pr_type type,
                      bool abort_tasks)
{
    struct pr_state *s = d->state;
    struct pr_view next;
    struct pr_reg *me;
    bool victim_holds = false;
    int r;

    /* abort_tasks: nothing is queued; the exclusive lock below already
     * waits for every request in flight that was checked against the old
     * state, so both forms behave the same. */
    (void)abort_tasks;
    if (!pr_type_valid(type) || !pr_name_valid(who))
        return -EINVAL;

    PR_WRITE_GUARD(s);
    me = pr_find(&s->cur, who);
    if (!me || me->key != old_key)
        return -EBADE;
    if (new_key == 0) {
        if (!pr_all_regs(s->cur.type))
            return -EINVAL; /* SPC-4: INVALID FIELD IN PARAMETER LIST */
    } else {
        const struct pr_reg *h = pr_holder(&s->cur);

        if (!pr_key_in_use(&s->cur, new_key))
            return -EBADE;
        victim_holds = h && h->key == new_key;
    }
    r = pr_view_clone(&s->cur, &next);
    if (r < 0)
        return r;
    /* remove the victims, never the caller; removing the holder releases */
    for (size_t i = next.n; i-- > 0;) {
        if (strcmp(next.reg[i].who, who) == 0)
            continue;
        if (new_key == 0 || next.reg[i].key == new_key)
            pr_remove(&next, i);
    }
    me = pr_find(&next, who);
    if (new_key == 0 || victim_holds)
        pr_take(&next, me, type);
    return pr_commit_locked(d, &next, true);
}

static int pr_status(struct dl_disk *d, struct dl_pr_status *ret)
{
    struct pr_state *s = d->state;
    struct dl_pr_registrant *reg = NULL;
    const struct pr_reg *h;

    pthread_rwlock_rdlock(&s->lock);
    if (s->cur.n) {
        reg = calloc(s->cur.n, sizeof(*reg));
        if (!reg) {
            pthread_rwlock_unlock(&s->lock);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < s->cur.n; i++) {
        memcpy(reg[i].initiator, s->cur.reg[i].who,
               sizeof(reg[i].initiator));
        reg[i].key = s->cur.reg[i].key;
        reg[i].holder = pr_is_holder(&s->cur, &s->cur.reg[i]);
    }
    h = pr_holder(&s->cur);
    *ret = (struct dl_pr_status){
        .generation = s->cur.generation,
        .type = s->cur.type,
        .holder_key = h ? h->key : 0,
        .ptpl = s->ptpl_path != NULL,
        .n = s->cur.n,
        .reg = reg,
    };
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

static const struct dl_pr_ops pr_ops = {
    .capabilities = pr_capabilities,
    .register_key = pr_register,
    .reserve = pr_reserve,
    .release = pr_release,
    .clear = pr_clear,
    .preempt = pr_preempt,
    .status = pr_status,
};

/* ---- open / close ---- */

static int pr_open(struct dl_disk *d, const struct dl_node *n, unsigned flags,
                   char **ret_msg)
{
    struct pr_state *s = d->state;
    const char *path = dl_node_str(n, PR_PTPL_FILE);
    pthread_rwlockattr_t rwa;
    int r;

    pthread_rwlockattr_init(&rwa);
    /* a reservation command must not starve behind a stream of requests */
    pthread_rwlockattr_setkind_np(&rwa,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    r = -pthread_rwlock_init(&s->lock, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    if (r < 0)
        return r;
    s->lock_ready = true;
    s->dry_run = flags & DL_OPEN_DRY_RUN;
    if (path) {
        s->ptpl_path = strdup(path);
        if (!s->ptpl_path)
            return -ENOMEM;
        r = pr_load(path, &s->cur, ret_msg);
        if (r < 0)
            return r;
        r = dl_disk_set_source(d, "ptpl_file=%s", path);
        if (r < 0)
            return r;
    }
    return 0;
}

static void pr_close(struct dl_disk *d)
{
    struct pr_state *s = d->state;

    pr_view_free(&s->cur);
    free(s->ptpl_path);
    if (s->lock_ready)
        pthread_rwlock_destroy(&s->lock);
}

const struct dl_driver dl_pr_driver = {
    .name = "pr",
    .summary = "persistent reservations (SPC-4: registrants, six types, "
               "preempt) enforced on I/O, optionally persisted",
    .state_size = sizeof(struct pr_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = pr_params,
    .nparams = ARRAY_SIZE(pr_params),
    .min_children = 1,
    .max_children = 1,
    .open = pr_open,
    .close = pr_close,
    .read = pr_read,
    .write = pr_write,
    .flush = pr_flush,
    .zero = pr_zero,
    .unmap = pr_unmap,
    .prealloc = pr_prealloc,
    .pr = &pr_ops,
};
