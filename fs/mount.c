/* The mount object: opening the stacks, the file tree, attributes, open
 * handles, and shutdown.
 *
 * The tree is fixed when the mount starts: inode numbers are positions in
 * nodes[] (root first), so looking one up costs nothing and needs no lock.
 * Attributes that users change (mode, owner, times) live in the disk and
 * are protected by m->lock; sizes are always read live from the stack. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "fs/mount.h"

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000,
                             .tv_nsec = ns % 1000000000};
}

void fs_touch(struct fs_disk *d)
{
    int64_t t = now_ns();

    atomic_store_explicit(&d->mtime_ns, t, memory_order_relaxed);
    atomic_store_explicit(&d->ctime_ns, t, memory_order_relaxed);
}

static void on_resize(void *opaque, struct dl_disk *disk, uint64_t size)
{
    struct fs_disk *d = opaque;
    struct fs_mount *m = d->m;

    fs_touch(d);
    dl_log(m->ctx, LOG_INFO, "mount", "%s: size is now %llu", d->name,
           (unsigned long long)size);
    if (m->inval)
        m->inval(m->inval_opaque, d->ino);
}

static int add_node(struct fs_mount *m, uint64_t parent, enum fs_kind kind,
                    const char *name, struct fs_disk *d)
{
    struct fs_node *n = realloc(m->nodes, (m->nnodes + 1) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    m->nodes = n;
    n = &m->nodes[m->nnodes++];
    *n = (struct fs_node){.ino = m->nnodes, .parent = parent, .kind = kind,
                          .name = name, .disk = d};
    return 0;
}

static int build_tree(struct fs_mount *m)
{
    uint64_t ctl;
    int r;

    r = add_node(m, FS_ROOT_INO, FS_ROOT, "", NULL);
    for (size_t i = 0; r == 0 && i < m->ndisks; i++) {
        m->disks[i]->ino = m->nnodes + 1;
        r = add_node(m, FS_ROOT_INO, FS_IMAGE, m->disks[i]->name, m->disks[i]);
    }
    if (r < 0)
        return r;
    ctl = m->nnodes + 1;
    r = add_node(m, FS_ROOT_INO, FS_CTL_DIR, ".ctl", NULL);
    if (r == 0)
        r = add_node(m, ctl, FS_CTL_DISKS, "disks", NULL);
    for (size_t i = 0; r == 0 && i < m->ndisks; i++) {
        struct fs_disk *d = m->disks[i];
        uint64_t dir = m->nnodes + 1, ldir;

        r = add_node(m, ctl, FS_DISK_DIR, d->name, d);
        if (r == 0)
            r = add_node(m, dir, FS_CTL_INFO, "info", d);
        if (r == 0)
            r = add_node(m, dir, FS_CTL_SIZE, "size", d);
        if (r == 0 && d->delay)
            r = add_node(m, dir, FS_CTL_DELAY, "delay", d);
        if (r == 0 && d->error)
            r = add_node(m, dir, FS_CTL_ERROR, "error", d);
        if (r == 0 && d->pr)
            r = add_node(m, dir, FS_CTL_PR, "pr", d);
        if (r < 0 || !d->layered)
            continue;
        r = add_node(m, dir, FS_CTL_LAYERS, "layers", d);
        if (r == 0)
            r = add_node(m, dir, FS_CTL_SNAPSHOT, "snapshot", d);
        ldir = m->nnodes + 1;
        if (r == 0)
            r = add_node(m, dir, FS_LAYER_DIR, "layer", d);
        /* layer/N for every number a layer may have; only those of the
         * layers there now exist */
        for (unsigned k = 0; r == 0 && k < FS_MAX_LAYERS; k++) {
            r = add_node(m, ldir, FS_LAYER, NULL, d);
            if (r == 0) {
                struct fs_node *n = &m->nodes[m->nnodes - 1];

                n->layer = k;
                snprintf(n->number, sizeof(n->number), "%u", k);
            }
        }
    }
    /* names of layer/N nodes point into the nodes, which moved while the
     * array grew */
    for (size_t i = 0; r == 0 && i < m->nnodes; i++)
        if (m->nodes[i].kind == FS_LAYER)
            m->nodes[i].name = m->nodes[i].number;
    return r;
}

bool fs_node_exists(struct fs_mount *m, const struct fs_node *n)
{
    return n->kind != FS_LAYER ||
           n->layer < dl_layer_count(n->disk->layered);
}

int fs_mount_new(struct dl_ctx *ctx, struct conf *c, const char *state_path,
                 struct fs_mount **ret, char **ret_msg)
{
    struct fs_mount *m = calloc(1, sizeof(*m));
    int r;

    if (!m)
        return -ENOMEM;
    m->ctx = ctx;
    pthread_mutex_init(&m->lock, NULL);
    m->uid = getuid();
    m->gid = getgid();
    m->allow_other = c->mount.allow_other;
    clock_gettime(CLOCK_REALTIME, &m->start);
    atomic_init(&m->next_initiator, 1);
    r = dl_bufpool_new(FS_MAX_IO, 16, &m->pool);
    if (r < 0)
        goto fail;
    if (state_path && !(m->state_path = strdup(state_path))) {
        r = -ENOMEM;
        goto fail;
    }
    m->disks = calloc(c->ndisks ? c->ndisks : 1, sizeof(*m->disks));
    if (!m->disks) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < c->ndisks; i++) {
        struct conf_disk *cd = &c->disks[i];
        struct fs_disk *d = calloc(1, sizeof(*d));
        int64_t t = (int64_t)m->start.tv_sec * 1000000000 + m->start.tv_nsec;

        if (!d || !(d->name = strdup(cd->name))) {
            free(d);
            r = -ENOMEM;
            goto fail;
        }
        d->m = m;
        m->disks[m->ndisks++] = d;
        r = dl_open(ctx, cd->stack, cd->read_only ? DL_OPEN_RDONLY : 0,
                    &d->disk, ret_msg);
        if (r < 0) {
            dl_msg_prefix(ret_msg, "disk '%s'", cd->name);
            goto fail;
        }
        d->layered = dl_layered_of(d->disk);
        d->delay = dl_find_part(d->disk, "delay");
        d->error = dl_find_part(d->disk, "error");
        d->pr = dl_pr_disk(d->disk, &d->pr_ops);
        d->read_only = cd->read_only;
        d->stack = TAKE_PTR(cd->stack); /* kept for --state */
        d->mode = dl_read_only(d->disk) ? 0400 : 0600;
        d->uid = m->uid;
        d->gid = m->gid;
        d->atime = m->start;
        atomic_init(&d->mtime_ns, t);
        atomic_init(&d->ctime_ns, t);
        r = dl_add_resize_listener(d->disk, on_resize, d);
        if (r < 0)
            goto fail;
    }
    r = build_tree(m);
    if (r < 0)
        goto fail;
    *ret = m;
    return 0;
fail:
    dl_msg(ret_msg, "cannot set up the mount: %s", strerror(-r));
    fs_mount_free(m);
    return r;
}

int fs_mount_flush_all(struct fs_mount *m)
{
    int first = 0;

    for (size_t i = 0; i < m->ndisks; i++) {
        int r;

        if (!m->disks[i]->disk || dl_read_only(m->disks[i]->disk))
            continue;
        r = dl_flush(m->disks[i]->disk, NULL);
        if (r < 0) {
            dl_log(m->ctx, LOG_ERR, "mount", "%s: flush failed: %s",
                   m->disks[i]->name, strerror(-r));
            if (!first)
                first = r;
        }
    }
    return first;
}

void fs_mount_free(struct fs_mount *m)
{
    if (!m)
        return;
    while (m->handles)
        fs_handle_free(m, m->handles);
    for (size_t i = 0; i < m->ndisks; i++) {
        struct fs_disk *d = m->disks[i];

        if (d->disk) {
            dl_remove_resize_listener(d->disk, on_resize, d);
            dl_close(d->disk);
        }
        dl_node_free(d->stack);
        free(d->name);
        free(d);
    }
    free(m->disks);
    free(m->nodes);
    free(m->state_path);
    dl_bufpool_free(m->pool);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

struct fs_node *fs_node_get(struct fs_mount *m, uint64_t ino)
{
    struct fs_node *n = ino >= 1 && ino <= m->nnodes ? &m->nodes[ino - 1]
                                                     : NULL;

    return n && fs_node_exists(m, n) ? n : NULL;
}

struct fs_node *fs_node_lookup(struct fs_mount *m, uint64_t parent,
                               const char *name)
{
    for (size_t i = 1; i < m->nnodes; i++)
        if (m->nodes[i].parent == parent &&
            strcmp(m->nodes[i].name, name) == 0)
            return fs_node_exists(m, &m->nodes[i]) ? &m->nodes[i] : NULL;
    return NULL;
}

struct fs_node *fs_node_child(struct fs_mount *m, uint64_t parent, size_t idx)
{
    for (size_t i = 1; i < m->nnodes; i++)
        if (m->nodes[i].parent == parent && fs_node_exists(m, &m->nodes[i]) &&
            idx-- == 0)
            return &m->nodes[i];
    return NULL;
}

static bool is_dir(enum fs_kind k)
{
    return k == FS_ROOT || k == FS_CTL_DIR || k == FS_DISK_DIR ||
           k == FS_LAYER_DIR;
}

void fs_node_stat(struct fs_mount *m, const struct fs_node *n, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = n->ino;
    st->st_uid = m->uid;
    st->st_gid = m->gid;
    st->st_atim = st->st_mtim = st->st_ctim = m->start;
    st->st_blksize = 4096;
    if (is_dir(n->kind)) {
        st->st_mode = S_IFDIR | (n->kind == FS_ROOT ? 0755 : 0700);
        st->st_nlink = 2;
        return;
    }
    st->st_nlink = 1;
    if (n->kind == FS_IMAGE) {
        struct fs_disk *d = n->disk;
        uint64_t alloc = 0;

        st->st_size = (off_t)dl_size(d->disk);
        if (dl_allocated(d->disk, &alloc) < 0)
            alloc = dl_size(d->disk);
        st->st_blocks = (blkcnt_t)((alloc + 511) / 512);
        st->st_blksize = dl_physical_sector_size(d->disk);
        st->st_mtim = ns_to_ts(atomic_load(&d->mtime_ns));
        st->st_ctim = ns_to_ts(atomic_load(&d->ctime_ns));
        pthread_mutex_lock(&m->lock);
        st->st_mode = S_IFREG | d->mode;
        st->st_uid = d->uid;
        st->st_gid = d->gid;
        st->st_atim = d->atime;
        pthread_mutex_unlock(&m->lock);
        return;
    }
    if (n->kind == FS_LAYER) {
        struct dl_layer_desc ld;

        st->st_mode = S_IFREG | 0400;
        if (dl_layer_describe(n->disk->layered, n->layer, &ld) == 0) {
            st->st_size = (off_t)ld.size;
            st->st_blocks = (blkcnt_t)((ld.held + 511) / 512);
        }
        st->st_blksize = dl_physical_sector_size(n->disk->disk);
        return;
    }
    st->st_mode = S_IFREG | ctl_mode(n->kind);
}

int fs_node_setattr(struct fs_mount *m, struct fs_node *n, const struct stat *st,
                    bool mode, bool uid, bool gid, bool atime, bool mtime)
{
    struct fs_disk *d = n->disk;

    if (n->kind != FS_IMAGE)
        return (mode || uid || gid) ? -EPERM : 0;
    pthread_mutex_lock(&m->lock);
    if (mode)
        d->mode = st->st_mode & 07777;
    if (uid)
        d->uid = st->st_uid;
    if (gid)
        d->gid = st->st_gid;
    if (atime)
        d->atime = st->st_atim;
    pthread_mutex_unlock(&m->lock);
    if (mtime)
        atomic_store(&d->mtime_ns, (int64_t)st->st_mtim.tv_sec * 1000000000 +
                                       st->st_mtim.tv_nsec);
    atomic_store(&d->ctime_ns, now_ns());
    return 0;
}

int fs_handle_new(struct fs_mount *m, struct fs_node *n, int flags,
                  struct fs_handle **ret)
{
    struct fs_handle *h = calloc(1, sizeof(*h));

    if (!h)
        return -ENOMEM;
    h->node = n;
    h->disk = n->disk;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    if (n->kind == FS_IMAGE) {
        h->target = n->disk->disk;
        h->initiator = atomic_fetch_add(&m->next_initiator, 1);
    } else if (n->kind == FS_LAYER) {
        /* held until release: the layer stays while it is viewed */
        h->target = dl_layer_view_get(n->disk->layered, n->layer);
        if (!h->target) {
            free(h);
            return -ENOENT;
        }
    }
    pthread_mutex_lock(&m->lock);
    h->next = m->handles;
    h->pprev = &m->handles;
    if (m->handles)
        m->handles->pprev = &h->next;
    m->handles = h;
    pthread_mutex_unlock(&m->lock);
    *ret = h;
    return 0;
}

void fs_handle_free(struct fs_mount *m, struct fs_handle *h)
{
    pthread_mutex_lock(&m->lock);
    *h->pprev = h->next;
    if (h->next)
        h->next->pprev = h->pprev;
    pthread_mutex_unlock(&m->lock);
    if (h->node->kind == FS_LAYER)
        dl_layer_view_put(h->disk->layered, h->node->layer);
    ctl_free(h->ctl);
    free(h);
}
