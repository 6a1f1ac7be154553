/* The FUSE binding: libfuse's low-level operations mapped onto the mount
 * object, image files and control files. Errors from below are negative
 * errnos and become replies in one place (reply_err). */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "fs/fuse_binding.h"
#include "fs/mount.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

struct fs_worker;

struct fs_fuse {
    struct fs_mount *m;
    struct fuse_session *se;
    unsigned threads;
    pthread_t main_thread;
    _Atomic int error; /* a worker's receive error */
    pthread_mutex_t gate; /* protects readers, parked */
    unsigned readers;        /* workers in (or entering) receive */
    struct fs_worker *parked; /* idle workers, most recent first */
};

/* The session loop is our own: each worker receives requests into its
 * own buffer, placed so that the payload of a WRITE (after the 40-byte
 * fuse_in_header and the 40-byte fuse_write_in) starts on a page
 * boundary. An O_DIRECT backend then writes it without a bounce copy, and
 * the same page-aligned region, unused while a READ is processed, holds
 * the READ's reply. Nothing is allocated per request in our code. */
#define WORKER_HEADROOM 80 /* sizeof(fuse_in_header) + sizeof(fuse_write_in) */
#define WORKER_BUF_SIZE (FS_MAX_IO + 3 * 4096)

struct fs_worker {
    struct fs_fuse *f;
    pthread_t thread;
    uint8_t *base; /* page aligned, WORKER_BUF_SIZE bytes */
    _Atomic bool done;
    sem_t wake;              /* posted when promoted to reader */
    bool promoted;           /* protected by f->gate */
    struct fs_worker *next;  /* in f->parked; protected by f->gate */
};

/* At most this many workers wait in the kernel for requests; the others
 * park, most recently active first. The kernel hands a request to the
 * worker that waited longest, so with every worker waiting a stream of
 * requests would rotate through all of them and their cold buffers;
 * parked workers are promoted only when no reader is left, so a burst
 * still gets as many workers as it needs, and the ones doing the work
 * are the ones whose buffers are in cache. Two readers keep a request at
 * queue depth 1 from waiting on a wakeup. */
#define WORKER_READERS 2

/* The worker running on this thread, for its reply buffer. */
static __thread struct fs_worker *this_worker;

static struct fs_mount *mount_of(fuse_req_t req)
{
    return ((struct fs_fuse *)fuse_req_userdata(req))->m;
}

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
    return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* The one place where results become FUSE error replies. */
static void reply_err(fuse_req_t req, int r)
{
    if (r > 0 || r < -4095) {
        assert(!"impossible result");
        r = -EIO;
    }
    fuse_reply_err(req, -r);
}

static bool is_dir(const struct fs_node *n)
{
    return n->kind == FS_ROOT || n->kind == FS_CTL_DIR ||
           n->kind == FS_DISK_DIR || n->kind == FS_LAYER_DIR;
}

static bool is_image(const struct fs_node *n)
{
    return n->kind == FS_IMAGE || n->kind == FS_LAYER;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* With ATOMIC_O_TRUNC the kernel would set its cached size to 0 on an
     * O_TRUNC open, and O_DIRECT readers in flight would see end of file;
     * without it the kernel sends a size-0 setattr, which we ignore. */
    conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
    conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                              FUSE_CAP_SPLICE_MOVE);
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    if (conn->capable & FUSE_CAP_ASYNC_DIO)
        conn->want |= FUSE_CAP_ASYNC_DIO;
    /* Asynchronous direct I/O counts against the background limit: keep
     * room for a VMM's queue depth. */
    conn->max_background = 128;
    conn->congestion_threshold = 96;
}

static void fill_entry(struct fs_mount *m, struct fs_node *n,
                       struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = n->ino;
    e->generation = 1;
    fs_node_stat(m, n, &e->attr);
    e->attr_timeout = ATTR_TIMEOUT;
    e->entry_timeout = ENTRY_TIMEOUT;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs_mount *m = mount_of(req);
    struct fs_node *n = fs_node_lookup(m, parent, name);
    struct fuse_entry_param e;

    if (!n) {
        reply_err(req, -ENOENT);
        return;
    }
    fill_entry(m, n, &e);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct fs_mount *m = mount_of(req);
    struct fs_node *n = fs_node_get(m, ino);
    struct stat st;

    if (!n) {
        reply_err(req, -ENOENT);
        return;
    }
    fs_node_stat(m, n, &st);
    fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct fs_mount *m = mount_of(req);
    struct fs_node *n = fs_node_get(m, ino);
    struct stat st = *attr;
    int r = 0;

    if (!n) {
        reply_err(req, -ENOENT);
        return;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (n->kind == FS_IMAGE)
            r = image_set_size(n->disk, (uint64_t)attr->st_size, fi != NULL);
        else if (is_dir(n))
            r = -EISDIR;
        else if (attr->st_size != 0)
            r = -EPERM; /* control files: only the size 0 of O_TRUNC */
    }
    if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW))) {
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        if (to_set & FUSE_SET_ATTR_ATIME_NOW)
            st.st_atim = now;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
            st.st_mtim = now;
    }
    if (r == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
                             FUSE_SET_ATTR_GID | FUSE_SET_ATTR_ATIME |
                             FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
                             FUSE_SET_ATTR_MTIME_NOW)))
        r = fs_node_setattr(
            m, n, &st, to_set & FUSE_SET_ATTR_MODE, to_set & FUSE_SET_ATTR_UID,
            to_set & FUSE_SET_ATTR_GID,
            to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW),
            to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW));
    if (r < 0) {
        reply_err(req, r);
        return;
    }
    fs_node_stat(m, n, &st);
    fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct fs_mount *m = mount_of(req);
    struct fs_node *n = fs_node_get(m, ino);
    _cleanup_free_ char *buf = NULL;
    size_t used = 0;

    if (!n || !is_dir(n)) {
        reply_err(req, n ? -ENOTDIR : -ENOENT);
        return;
    }
    buf = malloc(size);
    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    for (off_t i = off;; i++) {
        struct stat st = {0};
        const char *name;
        struct fs_node *c = NULL;
        size_t need;

        if (i == 0) {
            name = ".";
            st.st_ino = n->ino;
            st.st_mode = S_IFDIR;
        } else if (i == 1) {
            name = "..";
            st.st_ino = n->parent;
            st.st_mode = S_IFDIR;
        } else {
            c = fs_node_child(m, n->ino, (size_t)(i - 2));
            if (!c)
                break;
            name = c->name;
            st.st_ino = c->ino;
            st.st_mode = is_dir(c) ? S_IFDIR : S_IFREG;
        }
        need = fuse_add_direntry(req, buf + used, size - used, name, &st,
                                 i + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_mount *m = mount_of(req);
    struct fs_node *n = fs_node_get(m, ino);
    struct fs_handle *h = NULL;
    int r;

    if (!n) {
        reply_err(req, -ENOENT);
        return;
    }
    if (is_dir(n)) {
        reply_err(req, -EISDIR);
        return;
    }
    if (is_image(n)) {
        /* layer/N is read-only: a view of what one layer holds */
        r = n->kind == FS_LAYER ? ((fi->flags & O_ACCMODE) != O_RDONLY
                                       ? -EROFS
                                       : 0)
                                : image_open(n->disk, fi->flags);
        if (r == 0)
            r = fs_handle_new(m, n, fi->flags, &h);
        if (r < 0) {
            reply_err(req, r);
            return;
        }
        /* O_TRUNC is ignored: an image is never wiped by an open */
        if (fs_reply_open_parallel_direct(req, (uint64_t)(uintptr_t)h) ==
            -ENOENT)
            fs_handle_free(m, h); /* the open was interrupted */
        return;
    }
    r = fs_handle_new(m, n, fi->flags, &h);
    if (r == 0) {
        r = ctl_open(m, h, fi->flags);
        if (r < 0)
            fs_handle_free(m, h);
    }
    if (r < 0) {
        reply_err(req, r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1;
    fi->nonseekable = 1;
    if (fuse_reply_open(req, fi) == -ENOENT)
        fs_handle_free(m, h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs_mount *m = mount_of(req);
    struct fs_handle *h = handle_of(fi);
    struct fs_worker *w = this_worker;
    bool own = w && size <= FS_MAX_IO;
    bool pooled = !own && size <= FS_MAX_IO;
    void *buf = own      ? w->base + 4096
                : pooled ? dl_bufpool_get(m->pool)
                         : aligned_alloc(4096, align_up(size, 4096));
    int64_t n;

    if (!buf) {
        reply_err(req, -ENOMEM);
        return;
    }
    if (is_image(h->node))
        n = image_read(h, buf, (uint64_t)off, size);
    else
        n = ctl_read(h, buf, size);
    if (n < 0)
        reply_err(req, (int)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    if (pooled)
        dl_bufpool_put(m->pool, buf);
    else if (!own)
        free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    int64_t n;

    if (h->node->kind == FS_IMAGE)
        n = image_write(h, buf, (uint64_t)off, size);
    else
        n = ctl_write(h, buf, size);
    if (n < 0)
        reply_err(req, (int)n);
    else
        fuse_reply_write(req, (size_t)n);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    fs_handle_free(mount_of(req), handle_of(fi));
    reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);

    reply_err(req, h->node->kind == FS_IMAGE ? image_fsync(h) : 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
                         off_t len, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);

    if (h->node->kind != FS_IMAGE || off < 0 || len <= 0) {
        reply_err(req, h->node->kind != FS_IMAGE ? -EOPNOTSUPP : -EINVAL);
        return;
    }
    reply_err(req, image_fallocate(h, mode, (uint64_t)off, (uint64_t)len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    uint64_t pos;
    int r;

    if (!is_image(h->node)) {
        reply_err(req, -ESPIPE);
        return;
    }
    if (off < 0) {
        reply_err(req, -ENXIO);
        return;
    }
    r = image_lseek(h->target, (uint64_t)off, whence, &pos);
    if (r < 0)
        reply_err(req, r);
    else
        fuse_reply_lseek(req, (off_t)pos);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd,
                     void *arg, struct fuse_file_info *fi, unsigned flags,
                     const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
    struct fs_handle *h = handle_of(fi);
    uint8_t out[256];
    size_t out_len = 0;
    int result = 0, r;

    if (h->node->kind != FS_IMAGE || (flags & FUSE_IOCTL_COMPAT)) {
        reply_err(req, -ENOTTY);
        return;
    }
    const struct fuse_ctx *fc = fuse_req_ctx(req);
    const struct fs_caller who = {.uid = fc->uid, .pid = fc->pid};

    r = image_ioctl(h, &who, cmd, in_buf, in_bufsz, out,
                    MIN(out_bufsz, sizeof(out)), &out_len, &result);
    if (r < 0)
        reply_err(req, r);
    else
        fuse_reply_ioctl(req, result, out_len ? out : NULL, out_len);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fs_mount *m = mount_of(req);
    struct statvfs sv = {0};
    uint64_t total = 0, used = 0;

    for (size_t i = 0; i < m->ndisks; i++) {
        uint64_t a = 0;

        total += dl_size(m->disks[i]->disk);
        if (dl_allocated(m->disks[i]->disk, &a) == 0)
            used += a;
    }
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_blocks = total / 4096;
    sv.f_bfree = sv.f_bavail = (total - MIN(used, total)) / 4096;
    sv.f_files = m->nnodes;
    sv.f_namemax = 255;
    fuse_reply_statfs(req, &sv);
}

/* The root's entries come from the configuration. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    reply_err(req, -EPERM);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    reply_err(req, -EPERM);
}
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    reply_err(req, -EPERM);
}
static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    reply_err(req, -EPERM);
}
static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    reply_err(req, -EPERM);
}
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    reply_err(req, -EPERM);
}
static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    reply_err(req, -EPERM);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readdir = op_readdir,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .ioctl = op_ioctl,
    .statfs = op_statfs,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .create = op_create,
};

static void inval_inode(void *opaque, uint64_t ino)
{
    struct fs_fuse *f = opaque;

    /* attributes only (offset -1): safe from any handler */
    fuse_lowlevel_notify_inval_inode(f->se, ino, -1, 0);
}

static void inval_entry(void *opaque, uint64_t parent, const char *name)
{
    struct fs_fuse *f = opaque;

    fuse_lowlevel_notify_inval_entry(f->se, parent, name, strlen(name));
}

/* Become a reader, parking while there are enough. false: the session
 * ended. */
static bool become_reader(struct fs_worker *w)
{
    struct fs_fuse *f = w->f;
    bool ok;

    pthread_mutex_lock(&f->gate);
    while (f->readers >= WORKER_READERS && !w->promoted &&
           !fuse_session_exited(f->se)) {
        w->next = f->parked;
        f->parked = w;
        pthread_mutex_unlock(&f->gate);
        while (sem_wait(&w->wake) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&f->gate);
    }
    ok = !fuse_session_exited(f->se);
    if (w->promoted)
        w->promoted = false; /* counted as a reader by who promoted us */
    else
        f->readers++;
    pthread_mutex_unlock(&f->gate);
    return ok;
}

/* A reader got a request: if it was the last one, promote the most
 * recently parked worker. */
static void leave_reader(struct fs_worker *w)
{
    struct fs_fuse *f = w->f;
    struct fs_worker *p = NULL;

    pthread_mutex_lock(&f->gate);
    f->readers--;
    if (f->readers == 0 && f->parked) {
        p = f->parked;
        f->parked = p->next;
        p->promoted = true;
        f->readers++;
    }
    pthread_mutex_unlock(&f->gate);
    if (p)
        sem_post(&p->wake);
}

static void *worker_main(void *arg)
{
    struct fs_worker *w = arg;
    struct fuse_session *se = w->f->se;

    this_worker = w;
    while (become_reader(w)) {
        struct fuse_buf fb = {
            .mem = w->base + 4096 - WORKER_HEADROOM,
            .size = WORKER_BUF_SIZE - (4096 - WORKER_HEADROOM),
        };
        int r = fuse_session_receive_buf(se, &fb);

        leave_reader(w);
        if (r == -EINTR || r == -EAGAIN)
            continue;
        if (r <= 0) {
            /* 0: unmounted (or the session ended); < 0: an error */
            if (r < 0)
                atomic_store(&w->f->error, r);
            fuse_session_exit(se);
            pthread_kill(w->f->main_thread, SIGUSR2);
            break;
        }
        fuse_session_process_buf(se, &fb);
    }
    this_worker = NULL;
    atomic_store(&w->done, true);
    return NULL;
}

static void wake(int sig)
{
    (void)sig; /* only interrupts a blocking system call */
}

/* Run the workers until a signal or an unmount ends the session. The
 * stop signals stay blocked everywhere except in the main thread's
 * sigsuspend, so no wakeup is lost; a worker that sees the session end
 * wakes the main thread with SIGUSR2, and the main thread interrupts the
 * workers' reads with it too, until each has left. */
static int run_workers(struct fs_fuse *f)
{
    struct sigaction sa = {.sa_handler = wake}; /* no SA_RESTART */
    sigset_t stop, old, during;
    struct fs_worker *w;
    unsigned started = 0;
    int r = 0;

    w = calloc(f->threads, sizeof(*w));
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&f->gate, NULL);
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &stop, &old);
    f->main_thread = pthread_self();
    for (unsigned i = 0; i < f->threads; i++) {
        sigset_t wmask = stop;

        w[i].f = f;
        sem_init(&w[i].wake, 0, 0);
        w[i].base = aligned_alloc(4096, WORKER_BUF_SIZE);
        if (!w[i].base) {
            r = -ENOMEM;
            break;
        }
        /* the worker starts with SIGUSR2 open, the stop signals closed */
        sigdelset(&wmask, SIGUSR2);
        pthread_sigmask(SIG_SETMASK, &wmask, NULL);
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
            free(w[i].base);
            w[i].base = NULL;
            r = -EAGAIN;
        }
        pthread_sigmask(SIG_BLOCK, &stop, NULL);
        if (r < 0)
            break;
        started++;
    }
    if (r < 0)
        fuse_session_exit(f->se);

    during = old;
    sigdelset(&during, SIGINT);
    sigdelset(&during, SIGTERM);
    sigdelset(&during, SIGHUP);
    sigdelset(&during, SIGUSR2);
    while (!fuse_session_exited(f->se))
        sigsuspend(&during);

    for (unsigned i = 0; i < started; i++) {
        while (!atomic_load(&w[i].done)) {
            pthread_mutex_lock(&f->gate);
            while (f->parked) {
                struct fs_worker *p = f->parked;

                f->parked = p->next;
                sem_post(&p->wake);
            }
            pthread_mutex_unlock(&f->gate);
            pthread_kill(w[i].thread, SIGUSR2);
            usleep(2000);
        }
        pthread_join(w[i].thread, NULL);
    }
    for (unsigned i = 0; i < f->threads; i++)
        if (w[i].f)
            sem_destroy(&w[i].wake);
    for (unsigned i = 0; i < f->threads; i++)
        free(w[i].base);
    free(w);
    pthread_mutex_destroy(&f->gate);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r == 0)
        r = atomic_load(&f->error);
    return r;
}

int fs_fuse_run(struct fs_mount *m, const struct fs_run_opts *o,
                char **ret_msg)
{
    struct fs_fuse f = {.m = m,
                       .threads = o->threads ? o->threads : FS_DEFAULT_THREADS};
    _cleanup_free_ char *opts = NULL;
    char *argv[5];
    int argc = 0, r;
    struct fuse_args args;

    if (asprintf(&opts, "fsname=diskstack,subtype=diskstack,auto_unmount%s%s%s",
                 o->allow_other ? ",allow_other,default_permissions" : "",
                 o->fuse_opts && *o->fuse_opts ? "," : "",
                 o->fuse_opts ? o->fuse_opts : "") < 0)
        return -ENOMEM;
    argv[argc++] = "diskstack";
    argv[argc++] = "-o";
    argv[argc++] = opts;
    if (o->debug)
        argv[argc++] = "-d";
    argv[argc] = NULL;
    args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);

    f.se = fuse_session_new(&args, &ops, sizeof(ops), &f);
    fuse_opt_free_args(&args);
    if (!f.se) {
        dl_msg(ret_msg, "cannot create the FUSE session (bad -o options?)");
        return -EINVAL;
    }
    if (fuse_set_signal_handlers(f.se) != 0) {
        fuse_session_destroy(f.se);
        dl_msg(ret_msg, "cannot set signal handlers");
        return -EIO;
    }
    if (fuse_session_mount(f.se, o->mountpoint) != 0) {
        fuse_remove_signal_handlers(f.se);
        fuse_session_destroy(f.se);
        dl_msg(ret_msg, "cannot mount on %s", o->mountpoint);
        return -EIO;
    }
    m->inval_opaque = &f;
    m->inval = inval_inode;
    m->inval_entry = inval_entry;
    if (fuse_daemonize(o->foreground) != 0) {
        r = -EIO;
        dl_msg(ret_msg, "cannot detach from the terminal");
        goto out;
    }
    if (o->on_mounted)
        o->on_mounted(o->opaque);

    r = run_workers(&f);
    if (r < 0) {
        dl_log(m->ctx, LOG_ERR, "fuse", "session ended with an error: %s",
               strerror(-r));
        r = -EIO;
    } else {
        dl_log(m->ctx, LOG_INFO, "fuse", "stopping");
    }
out:
    m->inval = NULL;
    m->inval_entry = NULL;
    fuse_session_unmount(f.se);
    fuse_remove_signal_handlers(f.se);
    fuse_session_destroy(f.se);
    return r;
}
