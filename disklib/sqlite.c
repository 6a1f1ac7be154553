/* sqlite — a persistent layer in an SQLite database, runs of sectors per
 * row.
 *
 * Layout (our own schema, versioned; DESIGN §9):
 *
 *   diskstack_layer(key TEXT PRIMARY KEY, value) WITHOUT ROWID
 *       format = 'diskstack-layer', version = 1, sector_size (bytes),
 *       size (bytes), flushes (a counter that flush bumps), created_by
 *   runs(start INTEGER PRIMARY KEY, count INTEGER NOT NULL, data BLOB)
 *       one row per run of sectors the layer holds: sectors [start,
 *       start + count); rows never overlap. data NULL: the run reads as
 *       zeroes (written zeroes, zero requests, unmaps over data below);
 *       otherwise exactly count * sector_size bytes.
 *
 * A write of N sectors is one row: in one transaction the row with the
 * greatest start <= the write's start is trimmed (its tail past the write
 * kept as a row of its own), the rows starting inside the write are
 * deleted (the last one's tail kept), and the new row inserted. Two
 * indexed lookups find every row a request overlaps, so a request costs a
 * few statements whatever its length. Reads copy only the bytes they need
 * out of a long run through incremental blob I/O (rowid = start).
 *
 * OpenVMM's "dbhd" layer (a row per sector in tables sectors and meta) is
 * recognised and refused: this is not that format.
 *
 * Durability: WAL journal, synchronous=NORMAL — each request is one
 * transaction, atomic and durable against a process kill. Flush makes
 * every committed transaction durable against power loss as well: it
 * commits one tiny transaction (bumping `flushes`) with synchronous=FULL,
 * which fsyncs the WAL holding every earlier commit (what was
 * checkpointed out of the WAL was synced into the database by the
 * checkpoint). FUA writes commit with synchronous=FULL the same way.
 *
 * Creation: a new database is formatted under a temporary name beside
 * the final one and renamed into place without replacing anything, so a
 * crash never leaves a half-made layer under the configured name.
 * Read-only opens never modify the file: the connection is
 * SQLITE_OPEN_READONLY, and when the database has no -wal file (it was
 * closed cleanly) it is opened immutable, because a read-only connection
 * to a WAL database otherwise creates -wal and -shm files and leaves them.
 * Immutable also means unlocked: like any layer below the top, a layer
 * opened read-only must not be written by anyone else meanwhile. With a
 * -wal file present (a writer was killed, or has it open) the connection
 * is an ordinary read-only one that reads the WAL (and may add -shm).
 *
 * Locking: one connection (SQLITE_OPEN_NOMUTEX) serialized by s->lock, so
 * the layer runs one request at a time; concurrent writes are committed
 * together (group commit, see sqlite_store), queued under s->qlock. The driver takes the lock itself
 * (and declares itself parallel to the core) so that it can drop it
 * around each extents callback: the callbacks may read this same disk
 * (the conformance suite's tiling check, a layered commit reading the top
 * it merges) while the walk goes on. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "disklib/drivers.h"
#include "disklib/util.h"

#define SQ_FORMAT "diskstack-layer"
#define SQ_VERSION 1
#define SQ_MAX_IO (1u << 20)
#define SQ_BUSY_MS 2000
/* extents: pieces gathered under the lock before they are reported */
#define SQ_EXTENT_BATCH 64

static const char sqlite_magic[16] = "SQLite format 3";

enum {
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_HEAD,  /* the run with the greatest start <= ?1 */
    ST_RANGE, /* the runs starting in [?1, ?2), in order */
    ST_LAST,  /* the last run starting in [?1, ?2) */
    ST_SUM,   /* sectors of the runs starting in [?1, ?2) */
    ST_DELETE,
    ST_INSERT,
    ST_TAIL, /* copy run ?1's part from ?2 on as a run of its own */
    ST_TRIM, /* cut run ?1 to ?2 sectors */
    ST_TOTAL,
    ST_SET_SIZE,
    ST_BUMP,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_COUNT_,
};

static const char *const sqlite_sql[ST_COUNT_] = {
    [ST_BEGIN_READ] = "BEGIN",
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_HEAD] = "SELECT start, count, length(data) FROM runs "
                "WHERE start <= ?1 ORDER BY start DESC LIMIT 1",
    [ST_RANGE] = "SELECT start, count, length(data) FROM runs "
                 "WHERE start >= ?1 AND start < ?2 ORDER BY start",
    [ST_LAST] = "SELECT start, count, length(data) FROM runs "
                "WHERE start >= ?1 AND start < ?2 ORDER BY start DESC LIMIT 1",
    [ST_SUM] = "SELECT coalesce(sum(count), 0) FROM runs "
               "WHERE start >= ?1 AND start < ?2",
    [ST_DELETE] = "DELETE FROM runs WHERE start >= ?1 AND start < ?2",
    [ST_INSERT] = "INSERT INTO runs(start, count, data) VALUES (?1, ?2, ?3)",
    /* substr of a BLOB counts bytes (1-based) and of NULL is NULL */
    [ST_TAIL] = "INSERT INTO runs(start, count, data) "
                "SELECT ?2, ?3, substr(data, ?4) FROM runs WHERE start = ?1",
    [ST_TRIM] = "UPDATE runs SET count = ?2, data = substr(data, 1, ?3) "
                "WHERE start = ?1",
    [ST_TOTAL] = "SELECT coalesce(sum(count), 0) FROM runs",
    [ST_SET_SIZE] = "UPDATE diskstack_layer SET value = ?1 WHERE key = 'size'",
    [ST_BUMP] = "INSERT INTO diskstack_layer(key, value) VALUES ('flushes', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1",
    [ST_SAVEPOINT] = "SAVEPOINT request",
    [ST_RELEASE] = "RELEASE request",
    [ST_ROLLBACK_TO] = "ROLLBACK TO request",
};

/* A write waiting for the group commit (see sqlite_store). */
struct pending {
    const void *buf;
    uint64_t off, len;
    bool hold;
    int result;
    bool done;
    struct pending *next;
};

/* The WAL is checkpointed into the database by a thread of the layer's
 * own, on a connection of its own, once it holds this many frames (about
 * 16 MiB); a writer checkpoints itself only when the WAL runs far ahead. */
#define CKPT_FRAMES 4096
#define CKPT_FRAMES_HARD (8 * CKPT_FRAMES)

struct sqlite_state {
    /* The checkpointer: started on the first write (the stack is opened
     * before the daemon detaches, and a fork keeps no threads). ckpt_lock
     * protects ckpt_*; wal_frames is set by the WAL hook. */
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    pthread_t ckpt_thread;
    bool ckpt_started, ckpt_stop;
    sqlite3 *ckpt_db;
    char *path;
    _Atomic int wal_frames;
    /* Writes waiting to be committed, and whether one of their threads
     * commits for all of them; protected by qlock, taken before lock. */
    pthread_mutex_t qlock;
    pthread_cond_t qdone;
    struct pending *queue, **qtail;
    bool committing;
    pthread_mutex_t lock; /* protects everything below, and the connection */
    sqlite3 *db;          /* NULL: a dry run of a database not made yet */
    sqlite3_stmt *st[ST_COUNT_];
    bool ro;
    bool dirty;        /* committed since the last flush */
    uint64_t held;     /* sectors in runs */
    uint64_t max_size; /* the largest size since open (see resize) */
};

/* One row of runs: [start, start + count); zero when data is NULL. */
struct run {
    int64_t start, count, bytes;
    bool zero;
};

static const struct dl_param sqlite_params[] = {
    [DL_SQLITE_PATH] = {.name = "path", .type = DL_P_PATH, .required = true,
                        .help = "the layer's SQLite database"},
    [DL_SQLITE_CREATE] = {.name = "create", .type = DL_P_BOOL, .def = "false",
                          .help = "create the database when the file is "
                                  "missing; an existing file is opened as it "
                                  "is, never reformatted"},
    [DL_SQLITE_SIZE] = {.name = "size", .type = DL_P_SIZE, .min = 512,
                        .help = "size; by default an existing database's own, "
                                "for a new one that of the layer below"},
    [DL_SQLITE_SECTOR] = {.name = "sector", .type = DL_P_UINT, .min = 512,
                          .max = 4096, .multiple_of = 512,
                          .help = "logical sector size; a new database takes "
                                  "that of the layer below, else 512; an "
                                  "existing one must match"},
};

static int sqlite_validate(struct dl_node *n, char **ret_msg)
{
    char a[24], b[24];

    if (dl_node_isset(n, DL_SQLITE_SIZE) &&
        dl_node_isset(n, DL_SQLITE_SECTOR) &&
        dl_node_u64(n, DL_SQLITE_SIZE) % dl_node_u64(n, DL_SQLITE_SECTOR)) {
        dl_msg(ret_msg, "size=%s is not a multiple of the %s-byte sector",
               dl_format_size(dl_node_u64(n, DL_SQLITE_SIZE), a, sizeof(a)),
               dl_format_size(dl_node_u64(n, DL_SQLITE_SECTOR), b, sizeof(b)));
        return -EINVAL;
    }
    return 0;
}

/* ---- statements ---- */

static int sq_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

/* Data path: log the reason at debug level, return the code. */
static int sq_fail(struct dl_disk *d, int rc, const char *what)
{
    struct sqlite_state *s = d->state;

    dl_debug(d->ctx, "sqlite", "%s: %s (%s)", what,
             s->db ? sqlite3_errmsg(s->db) : "", sqlite3_errstr(rc));
    return sq_errno(rc);
}

static void sq_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Run a statement that returns nothing (or whose rows do not matter). */
static int sq_exec(struct dl_disk *d, int which)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);

    sq_done(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return sq_fail(d, rc, sqlite_sql[which]);
    return 0;
}

static int sq_exec2(struct dl_disk *d, int which, int64_t a, int64_t b)
{
    struct sqlite_state *s = d->state;

    sqlite3_bind_int64(s->st[which], 1, a);
    sqlite3_bind_int64(s->st[which], 2, b);
    return sq_exec(d, which);
}

static void run_of(sqlite3_stmt *st, struct run *ret)
{
    ret->start = sqlite3_column_int64(st, 0);
    ret->count = sqlite3_column_int64(st, 1);
    ret->zero = sqlite3_column_type(st, 2) == SQLITE_NULL;
    ret->bytes = ret->zero ? 0 : sqlite3_column_int64(st, 2);
}

/* The first row of a lookup: 1 with *ret set, 0 when there is none. */
static int sq_lookup(struct dl_disk *d, int which, int64_t a, int64_t b,
                     struct run *ret)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[which];
    int rc;

    sqlite3_bind_int64(st, 1, a);
    if (which != ST_HEAD)
        sqlite3_bind_int64(st, 2, b);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        run_of(st, ret);
    sq_done(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sq_fail(d, rc, sqlite_sql[which]);
}

static int sq_int(struct dl_disk *d, int which, int64_t a, int64_t b,
                  int64_t *ret)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[which];
    int rc;

    if (which != ST_TOTAL) {
        sqlite3_bind_int64(st, 1, a);
        sqlite3_bind_int64(st, 2, b);
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    sq_done(st);
    if (rc != SQLITE_ROW)
        return sq_fail(d, rc, sqlite_sql[which]);
    return 0;
}

static int sq_begin(struct dl_disk *d, bool write)
{
    return sq_exec(d, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

static void sq_rollback(struct dl_disk *d)
{
    struct sqlite_state *s = d->state;

    /* an error may have rolled it back already */
    if (!sqlite3_get_autocommit(s->db))
        sq_exec(d, ST_ROLLBACK);
}

/* Commit, or roll back when r or the commit failed. */
static int sq_end(struct dl_disk *d, int r)
{
    if (r == 0)
        r = sq_exec(d, ST_COMMIT);
    if (r < 0)
        sq_rollback(d);
    return r;
}

static int sq_pragma_sync(struct dl_disk *d, bool full)
{
    struct sqlite_state *s = d->state;
    /* Not a kept statement: PRAGMA synchronous takes effect when the
     * statement is prepared, so a prepared one would not set it again. */
    int rc = sqlite3_exec(s->db, full ? "PRAGMA synchronous=FULL"
                                      : "PRAGMA synchronous=NORMAL",
                          NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : sq_fail(d, rc, "PRAGMA synchronous");
}

/* After a failed write transaction the count of held sectors is read
 * again rather than trusted. */
static void sq_recount(struct dl_disk *d)
{
    struct sqlite_state *s = d->state;
    int64_t total;

    if (sq_int(d, ST_TOTAL, 0, 0, &total) == 0)
        s->held = (uint64_t)total;
}

static bool is_zero(const uint8_t *p, size_t n)
{
    static const uint8_t z[4096];

    while (n >= sizeof(z)) {
        if (memcmp(p, z, sizeof(z)))
            return false;
        p += sizeof(z);
        n -= sizeof(z);
    }
    return !n || !memcmp(p, z, n);
}

/* ---- changing runs (inside a write transaction) ---- */

/* Keep the part of run r from sector `from` on as a run of its own. */
static int keep_tail(struct dl_disk *d, const struct run *r, int64_t from)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[ST_TAIL];

    sqlite3_bind_int64(st, 1, r->start);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, r->start + r->count - from);
    sqlite3_bind_int64(st, 4, (from - r->start) * d->lss + 1);
    return sq_exec(d, ST_TAIL);
}

static int trim_run(struct dl_disk *d, const struct run *r, int64_t count)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[ST_TRIM];

    sqlite3_bind_int64(st, 1, r->start);
    sqlite3_bind_int64(st, 2, count);
    sqlite3_bind_int64(st, 3, count * d->lss);
    return sq_exec(d, ST_TRIM);
}

/* data NULL: a zero run. All-zero data is stored as a zero run too. */
static int insert_run(struct dl_disk *d, int64_t start, int64_t count,
                      const uint8_t *data)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[ST_INSERT];
    const uint64_t bytes = (uint64_t)count * d->lss;

    sqlite3_bind_int64(st, 1, start);
    sqlite3_bind_int64(st, 2, count);
    if (data && !is_zero(data, bytes))
        sqlite3_bind_blob64(st, 3, data, bytes, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    return sq_exec(d, ST_INSERT);
}

/* Make [a, b) free of runs, keeping what lies outside it; adds the
 * sectors dropped to *removed. */
static int clear_range(struct dl_disk *d, int64_t a, int64_t b,
                       int64_t *removed)
{
    struct run h, l;
    int64_t sum;
    int r;

    r = sq_lookup(d, ST_HEAD, a, 0, &h);
    if (r > 0 && h.start < a && h.start + h.count > a) {
        int64_t hend = h.start + h.count;

        r = hend > b ? keep_tail(d, &h, b) : 0;
        if (r == 0)
            r = trim_run(d, &h, a - h.start);
        *removed += MIN(hend, b) - a;
    }
    if (r < 0)
        return r;
    r = sq_lookup(d, ST_LAST, a, b, &l);
    if (r == 0)
        return 0; /* no run starts inside: nothing more to drop */
    if (r > 0 && l.start + l.count > b) {
        r = keep_tail(d, &l, b);
        *removed -= l.start + l.count - b;
    }
    if (r < 0)
        return r;
    r = sq_int(d, ST_SUM, a, b, &sum);
    if (r < 0)
        return r;
    *removed += sum;
    return sq_exec2(d, ST_DELETE, a, b);
}

/* One request's change, inside the open write transaction: [off,
 * off+len) held as data (buf) or as zeroes (buf NULL), or dropped (hold
 * false). Returns the change of held sectors in *ret_delta. */
static int apply_locked(struct dl_disk *d, const void *buf, uint64_t off,
                        uint64_t len, bool hold, int64_t *ret_delta)
{
    const int64_t a = (int64_t)(off / d->lss), n = (int64_t)(len / d->lss);
    int64_t removed = 0;
    int r = clear_range(d, a, a + n, &removed);

    if (r == 0 && hold)
        r = insert_run(d, a, n, buf);
    *ret_delta = (hold ? n : 0) - removed;
    return r;
}

/* ---- checkpoints ---- */

static int wal_hook(void *opaque, sqlite3 *db, const char *name, int frames)
{
    struct sqlite_state *s = opaque;

    atomic_store(&s->wal_frames, frames);
    if (frames >= CKPT_FRAMES_HARD) {
        /* the checkpointer cannot keep up: hold the writers back */
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
    } else if (frames >= CKPT_FRAMES) {
        pthread_mutex_lock(&s->ckpt_lock);
        pthread_cond_signal(&s->ckpt_cond);
        pthread_mutex_unlock(&s->ckpt_lock);
    }
    return SQLITE_OK;
}

static void *checkpointer(void *opaque)
{
    struct sqlite_state *s = opaque;

    pthread_mutex_lock(&s->ckpt_lock);
    while (!s->ckpt_stop) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&s->ckpt_cond, &s->ckpt_lock, &until);
        if (s->ckpt_stop || atomic_load(&s->wal_frames) == 0)
            continue;
        pthread_mutex_unlock(&s->ckpt_lock);
        /* PASSIVE: copies what it can without waiting for the writers */
        if (sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
                                      SQLITE_CHECKPOINT_PASSIVE, NULL,
                                      NULL) == SQLITE_OK)
            atomic_store(&s->wal_frames, 0);
        pthread_mutex_lock(&s->ckpt_lock);
    }
    pthread_mutex_unlock(&s->ckpt_lock);
    return NULL;
}

/* Start the checkpointer if it is not running; on failure the writers'
 * own checkpoints (the hard limit) keep the WAL bounded. */
static void checkpointer_start(struct sqlite_state *s)
{
    pthread_mutex_lock(&s->ckpt_lock);
    if (!s->ckpt_started) {
        s->ckpt_started = true;
        if (sqlite3_open_v2(s->path, &s->ckpt_db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK ||
            pthread_create(&s->ckpt_thread, NULL, checkpointer, s) != 0) {
            sqlite3_close_v2(s->ckpt_db);
            s->ckpt_db = NULL;
        }
    }
    pthread_mutex_unlock(&s->ckpt_lock);
}

static void checkpointer_stop(struct sqlite_state *s)
{
    pthread_mutex_lock(&s->ckpt_lock);
    s->ckpt_stop = true;
    pthread_cond_signal(&s->ckpt_cond);
    pthread_mutex_unlock(&s->ckpt_lock);
    if (s->ckpt_db) {
        pthread_join(s->ckpt_thread, NULL);
        sqlite3_close_v2(s->ckpt_db);
        s->ckpt_db = NULL;
    }
}

/* Commit the batch of pending writes: one transaction, each write in a
 * savepoint of its own, so that one that fails is undone alone and the
 * others still commit. Called with s->lock held. */
static void commit_batch_locked(struct dl_disk *d, struct pending *batch)
{
    struct sqlite_state *s = d->state;
    int64_t delta = 0;
    int r = sq_begin(d, true);

    for (struct pending *p = batch; p; p = p->next) {
        int64_t dp = 0;

        p->result = r;
        if (r < 0)
            continue;
        p->result = sq_exec(d, ST_SAVEPOINT);
        if (p->result == 0)
            p->result = apply_locked(d, p->buf, p->off, p->len, p->hold, &dp);
        if (p->result < 0) {
            sq_exec(d, ST_ROLLBACK_TO);
            sq_exec(d, ST_RELEASE);
            continue;
        }
        p->result = sq_exec(d, ST_RELEASE);
        if (p->result == 0)
            delta += dp;
    }
    if (r == 0)
        r = sq_exec(d, ST_COMMIT);
    if (dl_ctx_debug_level(d->ctx, "sqlite") >= 1) {
        unsigned n = 0;

        for (struct pending *p = batch; p; p = p->next)
            n++;
        dl_log(d->ctx, 7, "sqlite", "committed %u writes together: %d", n, r);
    }
    if (r < 0) {
        sq_rollback(d);
        sq_recount(d);
        for (struct pending *p = batch; p; p = p->next)
            p->result = r;
        return;
    }
    s->held = (uint64_t)((int64_t)s->held + delta);
    s->dirty = true;
}

/* Hold [off, off+len) as data (buf) or as zeroes (buf NULL), or drop it
 * (hold false), committed before it returns.
 *
 * Group commit: a commit writes the WAL and costs more than the change
 * itself, and the connection serves one thread at a time. So a writer
 * joins a queue; the first writer that finds nobody committing commits
 * everything queued (itself included) in one transaction, each write in
 * a savepoint, and answers every writer of the batch; it goes on while
 * writers keep coming. Every write is atomic and committed before it is
 * acknowledged, as with a transaction of its own. A FUA write commits on
 * its own, durably. */
static int sqlite_store(struct dl_disk *d, const void *buf, uint64_t off,
                        uint64_t len, bool hold, const struct dl_req *rq)
{
    struct sqlite_state *s = d->state;
    struct pending me = {.buf = buf, .off = off, .len = len, .hold = hold};
    int r;

    if (rq && (rq->flags & DL_F_FUA)) {
        int64_t delta = 0;
        LOCK_GUARD(&s->lock);

        r = sq_pragma_sync(d, true);
        if (r < 0)
            return r;
        r = sq_begin(d, true);
        if (r == 0)
            r = apply_locked(d, buf, off, len, hold, &delta);
        r = sq_end(d, r);
        if (r == 0)
            s->held = (uint64_t)((int64_t)s->held + delta);
        else
            sq_recount(d);
        {
            int r2 = sq_pragma_sync(d, false);

            if (r == 0)
                r = r2;
        }
        return r;
    }

    if (!s->ckpt_started)
        checkpointer_start(s);
    pthread_mutex_lock(&s->qlock);
    *s->qtail = &me;
    s->qtail = &me.next;
    while (!me.done && s->committing)
        pthread_cond_wait(&s->qdone, &s->qlock);
    if (!me.done) {
        /* nobody commits: this thread does, for all that is queued (its
         * own write among them); whoever queued meanwhile commits next */
        struct pending *batch = s->queue;

        s->committing = true;
        s->queue = NULL;
        s->qtail = &s->queue;
        pthread_mutex_unlock(&s->qlock);
        pthread_mutex_lock(&s->lock);
        commit_batch_locked(d, batch);
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->qlock);
        for (struct pending *p = batch, *next; p; p = next) {
            next = p->next; /* read before done: p may go once it is set */
            p->done = true;
        }
        s->committing = false;
        pthread_cond_broadcast(&s->qdone);
    }
    r = me.result;
    pthread_mutex_unlock(&s->qlock);
    return r;
}

static int sqlite_write(struct dl_disk *d, const void *buf, uint64_t off,
                        uint64_t len, const struct dl_req *rq)
{
    return sqlite_store(d, buf, off, len, true, rq);
}

static int sqlite_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                       const struct dl_req *rq)
{
    return sqlite_store(d, NULL, off, len, true, rq);
}

static int sqlite_layer_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                              bool next_is_zero)
{
    /* over data below, forgetting would show it: hold zeroes instead */
    return sqlite_store(d, NULL, off, len, !next_is_zero, NULL);
}

static int sqlite_write_no_overwrite(struct dl_disk *d, const void *buf,
                                     uint64_t off, uint64_t len)
{
    struct sqlite_state *s = d->state;
    const int64_t a = (int64_t)(off / d->lss), b = a + (int64_t)(len / d->lss);
    const uint8_t *in = buf;
    int64_t pos = a, added = 0;
    struct run h, nx;
    int r;
    LOCK_GUARD(&s->lock);

    if (s->ro || !s->db)
        return -EROFS;
    r = sq_begin(d, true);
    if (r < 0)
        return r;
    r = sq_lookup(d, ST_HEAD, a, 0, &h);
    if (r > 0 && h.start + h.count > a)
        pos = MIN(h.start + h.count, b);
    /* gap by gap: each lookup is reset before the insert changes runs */
    while (r >= 0 && pos < b) {
        int64_t gap_end;

        r = sq_lookup(d, ST_RANGE, pos, b, &nx);
        if (r < 0)
            break;
        gap_end = r > 0 ? nx.start : b;
        if (gap_end > pos) {
            r = insert_run(d, pos, gap_end - pos,
                           in + (uint64_t)(pos - a) * d->lss);
            if (r < 0)
                break;
            added += gap_end - pos;
        }
        pos = gap_end < b ? nx.start + nx.count : b;
    }
    r = sq_end(d, r < 0 ? r : 0);
    if (r == 0) {
        s->held += (uint64_t)added;
        s->dirty |= added > 0;
    } else {
        sq_recount(d);
    }
    return r;
}

/* ---- reading ---- */

struct reader {
    struct dl_disk *d;
    uint8_t *out;
    int64_t a, b; /* the request, in sectors */
    struct dl_presence *p;
    sqlite3_blob *blob;
};

/* Copy the part of run r inside the request and mark it present. */
static int read_run(struct reader *rd, const struct run *r)
{
    struct dl_disk *d = rd->d;
    struct sqlite_state *s = d->state;
    const int64_t lo = MAX(r->start, rd->a);
    const int64_t hi = MIN(r->start + r->count, rd->b);
    uint8_t *dst = rd->out + (uint64_t)(lo - rd->a) * d->lss;
    const int64_t bytes = (hi - lo) * d->lss;
    const int64_t at = (lo - r->start) * d->lss;
    int rc;

    if (lo >= hi)
        return 0;
    if (r->zero) {
        memset(dst, 0, (size_t)bytes);
    } else {
        if (r->bytes != r->count * d->lss || r->bytes > INT_MAX) {
            dl_debug(d->ctx, "sqlite",
                     "run at sector %" PRId64 " of %" PRId64
                     " sectors has %" PRId64 " bytes of data",
                     r->start, r->count, r->bytes);
            return -EIO;
        }
        rc = rd->blob ? sqlite3_blob_reopen(rd->blob, r->start)
                      : sqlite3_blob_open(s->db, "main", "runs", "data",
                                          r->start, 0, &rd->blob);
        if (rc == SQLITE_OK)
            rc = sqlite3_blob_read(rd->blob, dst, (int)bytes, (int)at);
        if (rc != SQLITE_OK) {
            int e = sq_fail(d, rc, "blob read");

            sqlite3_blob_close(rd->blob);
            rd->blob = NULL;
            return e;
        }
    }
    dl_presence_mark(rd->p, (uint64_t)(lo - rd->a), (uint64_t)(hi - lo));
    return 0;
}

static int sqlite_layer_read(struct dl_disk *d, void *buf, uint64_t off,
                             uint64_t len, struct dl_presence *p)
{
    struct sqlite_state *s = d->state;
    struct reader rd = {.d = d, .out = buf, .p = p};
    sqlite3_stmt *st = s->st[ST_RANGE];
    struct run h;
    int r, rc = SQLITE_DONE;
    LOCK_GUARD(&s->lock);

    if (!s->db)
        return 0; /* a dry run: nothing held */
    rd.a = (int64_t)(off / d->lss);
    rd.b = rd.a + (int64_t)(len / d->lss);
    r = sq_begin(d, false);
    if (r < 0)
        return r;
    /* the run reaching in from before the request; one starting at its
     * first sector is the range query's */
    r = sq_lookup(d, ST_HEAD, rd.a, 0, &h);
    if (r > 0)
        r = h.start < rd.a ? read_run(&rd, &h) : 0;
    if (r >= 0) {
        r = 0;
        sqlite3_bind_int64(st, 1, rd.a);
        sqlite3_bind_int64(st, 2, rd.b);
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct run x;

            run_of(st, &x);
            r = read_run(&rd, &x);
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = sq_fail(d, rc, sqlite_sql[ST_RANGE]);
        sq_done(st);
    }
    sqlite3_blob_close(rd.blob);
    return sq_end(d, r);
}

/* ---- extents ---- */

struct piece {
    uint64_t off, len;
    unsigned type;
};

static unsigned type_of(const struct run *r)
{
    return r->zero ? DL_EXTENT_ZERO : 0;
}

#define UNHELD (DL_EXTENT_HOLE | DL_EXTENT_ZERO | DL_EXTENT_UNHELD)

/* Gather the pieces of [*pos, b) (sectors) into p, at most
 * SQ_EXTENT_BATCH; *pos moves past them. Called with the lock held. */
static int collect_locked(struct dl_disk *d, int64_t *pos, int64_t b,
                          struct piece *p, size_t *ret_n)
{
    struct sqlite_state *s = d->state;
    sqlite3_stmt *st = s->st[ST_RANGE];
    const uint64_t lss = d->lss;
    int64_t at = *pos;
    size_t n = 0;
    struct run h;
    int r, rc = SQLITE_DONE;

#define PIECE(from, to, t)                                                     \
    (p[n++] = (struct piece){.off = (uint64_t)(from) * lss,                   \
                             .len = (uint64_t)((to) - (from)) * lss,          \
                             .type = (t)})

    r = sq_begin(d, false);
    if (r < 0)
        return r;
    r = sq_lookup(d, ST_HEAD, at, 0, &h);
    if (r > 0 && h.start < at && h.start + h.count > at) {
        PIECE(at, MIN(h.start + h.count, b), type_of(&h));
        at = MIN(h.start + h.count, b);
    }
    if (r >= 0) {
        r = 0;
        sqlite3_bind_int64(st, 1, at);
        sqlite3_bind_int64(st, 2, b);
        while (n + 2 <= SQ_EXTENT_BATCH &&
               (rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct run x;

            run_of(st, &x);
            if (x.start > at)
                PIECE(at, x.start, UNHELD);
            at = MIN(x.start + x.count, b);
            PIECE(x.start, at, type_of(&x));
        }
        if (rc == SQLITE_DONE && at < b) {
            PIECE(at, b, UNHELD);
            at = b;
        } else if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            r = sq_fail(d, rc, sqlite_sql[ST_RANGE]);
        }
        sq_done(st);
    }
#undef PIECE
    r = sq_end(d, r);
    if (r == 0) {
        *pos = at;
        *ret_n = n;
    }
    return r;
}

static int sqlite_extents(struct dl_disk *d, uint64_t off, uint64_t len,
                          dl_extent_fn fn, void *opaque)
{
    struct sqlite_state *s = d->state;
    const int64_t b = (int64_t)((off + len) / d->lss);
    int64_t pos = (int64_t)(off / d->lss);
    struct piece p[SQ_EXTENT_BATCH];

    if (!s->db)
        return fn(opaque, off, len, UNHELD);
    while (pos < b) {
        size_t n = 0;
        int r;

        pthread_mutex_lock(&s->lock);
        r = collect_locked(d, &pos, b, p, &n);
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
            return r;
        /* the callbacks may read this disk: not under the lock */
        for (size_t i = 0; i < n; i++) {
            r = fn(opaque, p[i].off, p[i].len, p[i].type);
            if (r)
                return r;
        }
    }
    return 0;
}

static int sqlite_allocated(struct dl_disk *d, uint64_t *ret)
{
    struct sqlite_state *s = d->state;
    LOCK_GUARD(&s->lock);

    *ret = s->held * d->lss;
    return 0;
}

/* ---- flush and resize ---- */

static int sqlite_flush(struct dl_disk *d, const struct dl_req *rq)
{
    struct sqlite_state *s = d->state;
    int r, r2;
    LOCK_GUARD(&s->lock);

    /* nothing committed since the last flush: all of it is durable */
    if (!s->db || s->ro || !s->dirty)
        return 0;
    r = sq_pragma_sync(d, true);
    if (r < 0)
        return r;
    r = sq_begin(d, true);
    if (r == 0)
        r = sq_exec(d, ST_BUMP);
    r = sq_end(d, r);
    r2 = sq_pragma_sync(d, false);
    if (r == 0)
        r = r2;
    if (r == 0)
        s->dirty = false;
    return r;
}

static int sqlite_resize(struct dl_disk *d, uint64_t new_size, char **ret_msg)
{
    struct sqlite_state *s = d->state;
    LOCK_GUARD(&s->lock);
    const int64_t old_n = (int64_t)(dl_size(d) / d->lss);
    const int64_t new_n = (int64_t)(new_size / d->lss);
    const int64_t max_n = (int64_t)(s->max_size / d->lss);
    int64_t removed = 0, added = 0;
    int r;

    if (new_size == 0) {
        dl_msg(ret_msg, "an sqlite layer cannot shrink to nothing");
        return -EINVAL;
    }
    r = sq_begin(d, true);
    if (r == 0 && new_n < old_n)
        r = clear_range(d, new_n, INT64_MAX, &removed);
    /* Grown back over what it held before a shrink: the layers below
     * are still seen up to that size, so hold zeroes there (a grown disk
     * reads zeroes, never what lies below). */
    if (r == 0 && new_n > old_n && old_n < max_n) {
        added = MIN(new_n, max_n) - old_n;
        r = insert_run(d, old_n, added, NULL);
    }
    if (r == 0) {
        sqlite3_bind_int64(s->st[ST_SET_SIZE], 1, (int64_t)new_size);
        r = sq_exec(d, ST_SET_SIZE);
    }
    r = sq_end(d, r);
    if (r < 0) {
        sq_recount(d);
        dl_msg(ret_msg, "cannot store the new size: %s",
               sqlite3_errmsg(s->db));
        return r;
    }
    s->held = s->held + (uint64_t)added - (uint64_t)removed;
    s->dirty = true;
    s->max_size = MAX(s->max_size, new_size);
    dl_disk_set_size(d, new_size);
    return 0;
}

/* ---- open ---- */

struct sq_meta {
    uint64_t size;
    uint32_t lss;
};

/* Open a connection: read-only ones immutable when there is no WAL to
 * read (nothing then creates -wal or -shm files). */
static int sq_connect(const char *path, bool ro, sqlite3 **ret, char **ret_msg)
{
    _cleanup_free_ char *uri = NULL, *wal = NULL;
    int oflags = SQLITE_OPEN_NOMUTEX, rc;
    const char *name = path;
    sqlite3 *db = NULL;

    if (asprintf(&wal, "%s-wal", path) < 0)
        return -ENOMEM;
    if (ro) {
        oflags |= SQLITE_OPEN_READONLY;
        if (access(wal, F_OK) < 0 && errno == ENOENT) {
            static const char keep[] = "/-_.~";
            size_t k = 0, len = strlen(path);

            uri = malloc(5 + 3 * len + sizeof("?mode=ro&immutable=1"));
            if (!uri)
                return -ENOMEM;
            k = (size_t)sprintf(uri, "file:");
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)path[i];

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || strchr(keep, c))
                    uri[k++] = (char)c;
                else
                    k += (size_t)sprintf(uri + k, "%%%02X", c);
            }
            strcpy(uri + k, "?mode=ro&immutable=1");
            name = uri;
            oflags |= SQLITE_OPEN_URI;
        }
    } else {
        oflags |= SQLITE_OPEN_READWRITE;
    }
    rc = sqlite3_open_v2(name, &db, oflags, NULL);
    if (rc != SQLITE_OK) {
        dl_msg(ret_msg, "cannot open the database: %s",
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        return sq_errno(rc);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, SQ_BUSY_MS);
    if (!ro && sqlite3_db_readonly(db, "main") == 1) {
        dl_msg(ret_msg, "the file is not writable (open the layer read-only)");
        sqlite3_close_v2(db);
        return -EACCES;
    }
    *ret = db;
    return 0;
}

/* One integer or text value of diskstack_layer. */
static int meta_get(sqlite3 *db, const char *key, int64_t *ret_i,
                    char **ret_s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT value FROM diskstack_layer WHERE key = ?1", -1, &st, NULL);

    if (rc != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && ret_i &&
        sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        *ret_i = sqlite3_column_int64(st, 0);
    } else if (rc == SQLITE_ROW && ret_s &&
               sqlite3_column_type(st, 0) == SQLITE_TEXT) {
        *ret_s = strdup((const char *)sqlite3_column_text(st, 0));
        if (!*ret_s)
            rc = SQLITE_NOMEM;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rc = SQLITE_NOTFOUND;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_NOTFOUND ? -ENOENT : -EIO;
}

static int has_table(sqlite3 *db, const char *name, bool *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE "
                                    "type = 'table' AND name = ?1",
                                -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    *ret = rc == SQLITE_ROW;
    return SQLITE_OK;
}

/* Recognise the database and read its geometry: ours, OpenVMM's dbhd,
 * or something else. */
static int sq_read_meta(sqlite3 *db, struct sq_meta *ret, char **ret_msg)
{
    _cleanup_free_ char *format = NULL;
    bool ours = false, sectors = false, meta = false, runs = false;
    int64_t version = 0, lss = 0, size = 0;
    int rc, r;

    rc = has_table(db, "diskstack_layer", &ours);
    if (rc == SQLITE_OK)
        rc = has_table(db, "runs", &runs);
    if (rc == SQLITE_OK)
        rc = has_table(db, "sectors", &sectors);
    if (rc == SQLITE_OK)
        rc = has_table(db, "meta", &meta);
    if ((rc & 0xff) == SQLITE_NOTADB) {
        dl_msg(ret_msg, "the file is not an SQLite database");
        return -EINVAL;
    }
    if (rc != SQLITE_OK) {
        dl_msg(ret_msg, "cannot read the database: %s", sqlite3_errmsg(db));
        return sq_errno(rc);
    }
    if (!ours && sectors && meta) {
        dl_msg(ret_msg, "the file is an OpenVMM dbhd layer (tables sectors and "
                        "meta, a row per sector); diskstack uses its own "
                        "schema (table diskstack_layer, runs of sectors per "
                        "row) and does not serve dbhd files");
        return -EINVAL;
    }
    if (!ours) {
        dl_msg(ret_msg, "the file is an SQLite database but not a diskstack "
                        "layer database (it has no table diskstack_layer)");
        return -EINVAL;
    }
    r = meta_get(db, "format", NULL, &format);
    if (r == 0 && strcmp(format, SQ_FORMAT) != 0)
        r = -EINVAL;
    if (r < 0) {
        dl_msg(ret_msg, "not a diskstack layer database: its table "
                        "diskstack_layer has format '%s', not '" SQ_FORMAT "'",
               format ? format : "(none)");
        return -EINVAL;
    }
    r = meta_get(db, "version", &version, NULL);
    if (r < 0 || version < 1) {
        dl_msg(ret_msg, "the layer database has no valid version");
        return -EINVAL;
    }
    if (version > SQ_VERSION) {
        dl_msg(ret_msg, "the layer database has version %" PRId64 ", newer "
               "than this diskstack reads (%d)", version, SQ_VERSION);
        return -EOPNOTSUPP;
    }
    if (!runs) {
        dl_msg(ret_msg, "the layer database has no table runs (damaged)");
        return -EINVAL;
    }
    r = meta_get(db, "sector_size", &lss, NULL);
    if (r < 0 || lss < 512 || lss > 4096 || !is_pow2((uint64_t)lss)) {
        dl_msg(ret_msg, "the layer database's sector size is %s, not a power "
               "of two from 512 to 4096", r < 0 ? "missing" : "invalid");
        return -EINVAL;
    }
    r = meta_get(db, "size", &size, NULL);
    if (r < 0 || size <= 0 || size % lss) {
        dl_msg(ret_msg, "the layer database's size (%" PRId64 ") is not a "
               "positive multiple of its %" PRId64 "-byte sector size",
               size, lss);
        return -EINVAL;
    }
    ret->size = (uint64_t)size;
    ret->lss = (uint32_t)lss;
    return 0;
}

/* Refuse what is not an SQLite file before SQLite touches it. */
static int sq_check_header(const char *path, char **ret_msg)
{
    char head[16];
    struct stat st;
    ssize_t got;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot open: %s", strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        dl_msg(ret_msg, "not a regular file");
        return -EINVAL;
    }
    if (st.st_size == 0) {
        dl_msg(ret_msg, "the file is empty: not a diskstack layer database "
                        "(create= makes one only where no file exists)");
        return -EINVAL;
    }
    got = pread(fd, head, sizeof(head), 0);
    if (got != (ssize_t)sizeof(head) || memcmp(head, sqlite_magic, 16)) {
        dl_msg(ret_msg, "the file is not an SQLite database");
        return -EINVAL;
    }
    return 0;
}

/* Geometry of a database about to be made. */
static int sq_new_geometry(struct dl_disk *d, const struct dl_node *n,
                           struct sq_meta *ret, char **ret_msg)
{
    uint64_t size;
    uint32_t lss;

    if (dl_node_isset(n, DL_SQLITE_SECTOR))
        lss = (uint32_t)dl_node_u64(n, DL_SQLITE_SECTOR);
    else
        lss = d->below ? dl_sector_size(d->below) : 512;
    if (dl_node_isset(n, DL_SQLITE_SIZE)) {
        size = dl_node_u64(n, DL_SQLITE_SIZE);
    } else if (d->below) {
        size = dl_size(d->below);
    } else {
        dl_msg(ret_msg, "a new layer database needs a size (size=) or a "
                        "layer below to take it from");
        return -EINVAL;
    }
    if (size == 0 || size % lss) {
        dl_msg(ret_msg, "size %" PRIu64 " is not a positive multiple of the "
               "%" PRIu32 "-byte sector size", size, lss);
        return -EINVAL;
    }
    ret->size = size;
    ret->lss = lss;
    return 0;
}

static int sq_format(sqlite3 *db, const struct sq_meta *m)
{
    char sql[640];
    int rc;

    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    snprintf(sql, sizeof(sql),
             "BEGIN;"
             "CREATE TABLE diskstack_layer(key TEXT PRIMARY KEY, value) "
             "WITHOUT ROWID;"
             "CREATE TABLE runs(start INTEGER PRIMARY KEY, "
             "count INTEGER NOT NULL CHECK (count > 0), data BLOB);"
             "INSERT INTO diskstack_layer(key, value) VALUES "
             "('format', '" SQ_FORMAT "'), ('version', %d), "
             "('sector_size', %" PRIu32 "), ('size', %" PRIu64 "), "
             "('flushes', 0), ('created_by', 'diskstack " DISKSTACK_VERSION
             "');"
             "COMMIT;",
             SQ_VERSION, m->lss, m->size);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static void unlink_db(const char *path)
{
    char p[PATH_MAX + 8];

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static void sync_dir_of(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    int fd;

    if (!dir)
        return;
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Make the database at a temporary name, then move it into place unless
 * someone made one there meanwhile (then that one is opened). */
static int sq_create(const char *path, const struct sq_meta *m,
                     char **ret_msg)
{
    static atomic_uint seq;
    _cleanup_free_ char *tmp = NULL;
    sqlite3 *db = NULL;
    int fd = -1, rc, r;

    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        free(tmp);
        if (asprintf(&tmp, "%s.new-%d-%u", path, (int)getpid(),
                     atomic_fetch_add(&seq, 1)) < 0)
            return -ENOMEM;
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot create the database: %s", strerror(e));
        return -e;
    }
    close(fd);
    rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc == SQLITE_OK)
        rc = sq_format(db, m);
    if (rc != SQLITE_OK) {
        dl_msg(ret_msg, "cannot create the database: %s",
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close_v2(db);
        unlink_db(tmp);
        return sq_errno(rc);
    }
    /* the last connection checkpoints, syncs and removes the WAL */
    rc = sqlite3_close(db);
    if (rc != SQLITE_OK) {
        dl_msg(ret_msg, "cannot create the database: %s", sqlite3_errstr(rc));
        unlink_db(tmp);
        return sq_errno(rc);
    }
    r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
    if (r < 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)) {
        /* no RENAME_NOREPLACE here: a hard link does not replace either */
        r = link(tmp, path);
        if (r == 0 || errno == EEXIST) {
            int e = errno;

            unlink(tmp);
            errno = e;
        }
    }
    if (r < 0 && errno != EEXIST) {
        int e = errno;

        dl_msg(ret_msg, "cannot put the new database in place: %s",
               strerror(e));
        unlink_db(tmp);
        return -e;
    }
    if (r < 0)
        unlink_db(tmp); /* made by someone else meanwhile: use theirs */
    else
        sync_dir_of(path);
    return 0;
}

static int sq_check_fit(const struct dl_disk *d, const struct dl_node *n,
                        const struct sq_meta *m, char **ret_msg)
{
    char a[24], b[24];

    /* Over a layer below, a database of another sector size cannot be a
     * layer of it, and a shorter one would cut off the disk below: most
     * likely a database paired with the wrong disk. (A longer one is a
     * layer that grew.) */
    if (d->below && !dl_node_isset(n, DL_SQLITE_SIZE) &&
        m->size < dl_size(d->below)) {
        dl_msg(ret_msg, "the database holds a disk of %" PRIu64 " bytes (%s) "
               "but the disk below has %" PRIu64 " (%s)", m->size,
               dl_format_size(m->size, a, sizeof(a)), dl_size(d->below),
               dl_format_size(dl_size(d->below), b, sizeof(b)));
        return -EINVAL;
    }
    if (d->below && m->lss != dl_sector_size(d->below)) {
        dl_msg(ret_msg, "the database has sector size %" PRIu32 " but the "
               "disk below has %" PRIu32, m->lss, dl_sector_size(d->below));
        return -EINVAL;
    }

    if (dl_node_isset(n, DL_SQLITE_SECTOR) &&
        dl_node_u64(n, DL_SQLITE_SECTOR) != m->lss) {
        dl_msg(ret_msg, "the database has sector size %" PRIu32
               " but sector= asks for %" PRIu64, m->lss,
               dl_node_u64(n, DL_SQLITE_SECTOR));
        return -EINVAL;
    }
    if (dl_node_isset(n, DL_SQLITE_SIZE) &&
        dl_node_u64(n, DL_SQLITE_SIZE) != m->size) {
        dl_msg(ret_msg, "the database has size %" PRIu64 " (%s) but size= "
               "asks for %" PRIu64 " (%s); an existing database keeps its "
               "size at open", m->size,
               dl_format_size(m->size, a, sizeof(a)),
               dl_node_u64(n, DL_SQLITE_SIZE),
               dl_format_size(dl_node_u64(n, DL_SQLITE_SIZE), b, sizeof(b)));
        return -EINVAL;
    }
    return 0;
}

static int sqlite_open(struct dl_disk *d, const struct dl_node *n,
                       unsigned flags, char **ret_msg)
{
    struct sqlite_state *s = d->state;
    const char *path = dl_node_str(n, DL_SQLITE_PATH);
    const bool create = dl_node_u64(n, DL_SQLITE_CREATE);
    struct sq_meta m;
    struct stat st;
    sqlite3 *probe = NULL;
    int64_t total;
    int r, rc;

    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qdone, NULL);
    s->qtail = &s->queue;
    pthread_mutex_init(&s->ckpt_lock, NULL);
    pthread_cond_init(&s->ckpt_cond, NULL);
    s->ro = flags & (DL_OPEN_RDONLY | DL_OPEN_DRY_RUN);
    dl_disk_set_source(d, "path=%s", path);
    d->unmap_behavior = DL_UNMAP_ZEROES;
    d->max_io = SQ_MAX_IO;

    if (stat(path, &st) < 0 && errno == ENOENT) {
        if (!create) {
            dl_msg(ret_msg, "does not exist (create makes a new layer "
                            "database)");
            return -ENOENT;
        }
        r = sq_new_geometry(d, n, &m, ret_msg);
        if (r < 0)
            return r;
        if (flags & DL_OPEN_DRY_RUN) {
            /* "check": it would be made at mount time */
            atomic_store(&d->size, m.size);
            d->lss = d->pss = m.lss;
            return 0;
        }
        if (flags & DL_OPEN_RDONLY) {
            dl_msg(ret_msg, "does not exist; create= makes it only when "
                            "opened for writing");
            return -ENOENT;
        }
        r = sq_create(path, &m, ret_msg);
        if (r < 0)
            return r;
    }

    /* Recognise it through a read-only connection first, so that a file
     * refused is never changed. */
    r = sq_check_header(path, ret_msg);
    if (r < 0)
        return r;
    r = sq_connect(path, true, &probe, ret_msg);
    if (r < 0)
        return r;
    r = sq_read_meta(probe, &m, ret_msg);
    if (r == 0)
        r = sq_check_fit(d, n, &m, ret_msg);
    if (r < 0) {
        sqlite3_close_v2(probe);
        return r;
    }
    if (s->ro) {
        s->db = probe;
    } else {
        sqlite3_close_v2(probe);
        r = sq_connect(path, false, &s->db, ret_msg);
        if (r < 0)
            return r;
        /* read again: it might have changed in between */
        r = sq_read_meta(s->db, &m, ret_msg);
        if (r == 0)
            r = sq_check_fit(d, n, &m, ret_msg);
        if (r < 0)
            return r;
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
                              NULL);
        /* checkpoints by the checkpointer, not after a commit */
        if (rc == SQLITE_OK) {
            sqlite3_wal_hook(s->db, wal_hook, s);
            s->path = strdup(path);
            if (!s->path)
                return -ENOMEM;
        }
        if (rc != SQLITE_OK) {
            dl_msg(ret_msg, "cannot set up the database: %s",
                   sqlite3_errmsg(s->db));
            return sq_errno(rc);
        }
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        rc = sqlite3_prepare_v3(s->db, sqlite_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            dl_msg(ret_msg, "cannot prepare '%s': %s", sqlite_sql[i],
                   sqlite3_errmsg(s->db));
            return sq_errno(rc);
        }
    }
    r = sq_int(d, ST_TOTAL, 0, 0, &total);
    if (r < 0) {
        dl_msg(ret_msg, "cannot read the runs: %s", sqlite3_errmsg(s->db));
        return r;
    }
    s->held = (uint64_t)total;
    s->max_size = m.size;
    atomic_store(&d->size, m.size);
    d->lss = d->pss = m.lss;
    return 0;
}

static void sqlite_close(struct dl_disk *d)
{
    struct sqlite_state *s = d->state;

    checkpointer_stop(s);
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(s->st[i]);
    /* the last connection checkpoints and removes the WAL */
    sqlite3_close_v2(s->db);
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qdone);
    pthread_mutex_destroy(&s->ckpt_lock);
    pthread_cond_destroy(&s->ckpt_cond);
}

static const struct dl_layer_ops sqlite_layer_ops = {
    .read = sqlite_layer_read,
    .write_no_overwrite = sqlite_write_no_overwrite,
    .unmap = sqlite_layer_unmap,
};

const struct dl_driver dl_sqlite_driver = {
    .name = "sqlite",
    .summary = "a persistent layer in an SQLite database",
    .state_size = sizeof(struct sqlite_state),
    /* serialized by s->lock; see the note at the top */
    .thread_model = DL_THREAD_PARALLEL,
    .params = sqlite_params,
    .nparams = ARRAY_SIZE(sqlite_params),
    .validate = sqlite_validate,
    .open = sqlite_open,
    .close = sqlite_close,
    .write = sqlite_write,
    .flush = sqlite_flush,
    .zero = sqlite_zero,
    .extents = sqlite_extents,
    .allocated = sqlite_allocated,
    .resize = sqlite_resize,
    .layer = &sqlite_layer_ops,
};
