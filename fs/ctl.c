/* Control files under .ctl/.
 *
 * The protocol is the same for every file: what a read returns is made
 * once, at open, so that `cat` sees one consistent state however it
 * splits its reads. A write is one command; one trailing newline is
 * dropped. A command that fails fails the write with an errno, logs the
 * reason once at warning level, and leaves the reason for the next read
 * on the same fd ("error: EINVAL: reason\n", once, then end of file), so
 * that `exec 3<>FILE` shells and `diskstack ctl` can show it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "conf/conf.h"
#include "disklib/util.h"
#include "fs/ctlcmd.h"
#include "fs/mount.h"

struct fs_ctl {
    pthread_mutex_t lock; /* protects everything below */
    char *content;
    size_t len, pos;
    char *error; /* "error: ...\n" waiting for the next read */
    size_t epos;
    bool done; /* an error was read: end of file from now on */
};

mode_t ctl_mode(enum fs_kind kind)
{
    switch (kind) {
    case FS_CTL_SIZE:
    case FS_CTL_SNAPSHOT:
    case FS_CTL_DELAY:
    case FS_CTL_ERROR:
    case FS_CTL_PR:
        return 0600;
    default:
        return 0400;
    }
}

static int gen_disks(struct fs_mount *m, FILE *f)
{
    for (size_t i = 0; i < m->ndisks; i++) {
        struct dl_disk *d = m->disks[i]->disk;

        fprintf(f, "%s %" PRIu64 " %s\n", m->disks[i]->name, dl_size(d),
                dl_read_only(d) ? "ro" : "rw");
    }
    return 0;
}

static int gen_info(struct fs_disk *fd, FILE *f)
{
    struct dl_disk *d = fd->disk;
    uint64_t alloc = 0;
    char sz[24];

    dl_allocated(d, &alloc);
    fprintf(f, "name: %s\n", fd->name);
    fprintf(f, "size: %" PRIu64 " (%s)\n", dl_size(d),
            dl_format_size(dl_size(d), sz, sizeof(sz)));
    fprintf(f, "sector-size: %" PRIu32 "\n", dl_sector_size(d));
    fprintf(f, "physical-sector-size: %" PRIu32 "\n",
            dl_physical_sector_size(d));
    fprintf(f, "read-only: %s\n", dl_read_only(d) ? "yes" : "no");
    fprintf(f, "resizable: %s\n", dl_can_resize(d) ? "yes" : "no");
    fprintf(f, "unmap: %s\n", dl_unmap_behavior_name(dl_unmap_behavior(d)));
    fprintf(f, "allocated: %" PRIu64 "\n", alloc);
    fprintf(f, "stack:\n");
    dl_describe(d, f, 2);
    if (fd->layered) {
        fprintf(f, "layers:\n");
        for (size_t k = dl_layer_count(fd->layered); k-- > 0;) {
            struct dl_layer_desc ld;

            if (dl_layer_describe(fd->layered, (unsigned)k, &ld) < 0)
                continue;
            fprintf(f, "  %u %s held=%" PRIu64, ld.number, ld.kind, ld.held);
            if (ld.mem_data || ld.mem_tables)
                fprintf(f, " memory-data=%" PRIu64 " memory-tables=%" PRIu64,
                        ld.mem_data, ld.mem_tables);
            fputc('\n', f);
        }
    }
    return 0;
}

/* "NUMBER KIND "SOURCE" HELD FLAGS", top first */
static int gen_layers(struct fs_disk *fd, FILE *f)
{
    size_t n = dl_layer_count(fd->layered);

    for (size_t k = n; k-- > 0;) {
        struct dl_layer_desc ld;

        if (dl_layer_describe(fd->layered, (unsigned)k, &ld) < 0)
            continue;
        fprintf(f, "%u %s \"", ld.number, ld.kind);
        for (const char *p = ld.source; *p; p++) {
            if (*p == '"' || *p == '\\')
                fputc('\\', f);
            fputc(*p, f);
        }
        fprintf(f, "\" %" PRIu64 " %s%s%s%s%s\n", ld.held,
                ld.read_only ? "ro" : "rw", ld.read_cache ? ",read-cache" : "",
                ld.write_through ? ",write-through" : "",
                ld.frozen ? ",frozen" : "", ld.snapshot ? ",snapshot" : "");
    }
    return 0;
}

static int gen_settings(struct dl_disk *part, FILE *f)
{
    _cleanup_free_ char *text = NULL;
    int r = dl_settings_show(part, &text);

    if (r == 0)
        fputs(text, f);
    return r;
}

/* "generation N", "reservation TYPE key KEY" (or "reservation none"),
 * "ptpl yes|no", then "registrant NAME KEY [holder]" per registrant. */
static int gen_pr(struct fs_disk *fd, FILE *f)
{
    struct dl_pr_status st = {0};
    int r = fd->pr_ops->status(fd->pr, &st);

    if (r < 0)
        return r;
    fprintf(f, "generation %" PRIu32 "\n", st.generation);
    if (st.type == DL_PR_NONE)
        fprintf(f, "reservation none\n");
    else
        fprintf(f, "reservation %s key 0x%" PRIx64 "\n",
                ctl_pr_type_name(st.type) ? ctl_pr_type_name(st.type) : "?",
                st.holder_key);
    fprintf(f, "ptpl %s\n", st.ptpl ? "yes" : "no");
    for (size_t i = 0; i < st.n; i++)
        fprintf(f, "registrant %s 0x%" PRIx64 "%s\n", st.reg[i].initiator,
                st.reg[i].key, st.reg[i].holder ? " holder" : "");
    free(st.reg);
    return 0;
}

static int generate(struct fs_mount *m, struct fs_node *n, struct fs_ctl *c)
{
    FILE *f = open_memstream(&c->content, &c->len);
    int r = 0;

    if (!f)
        return -ENOMEM;
    switch (n->kind) {
    case FS_CTL_DISKS:
        r = gen_disks(m, f);
        break;
    case FS_CTL_INFO:
        r = gen_info(n->disk, f);
        break;
    case FS_CTL_SIZE:
        fprintf(f, "%" PRIu64 "\n", dl_size(n->disk->disk));
        break;
    case FS_CTL_LAYERS:
    case FS_CTL_SNAPSHOT:
        r = gen_layers(n->disk, f);
        break;
    case FS_CTL_DELAY:
        r = gen_settings(n->disk->delay, f);
        break;
    case FS_CTL_ERROR:
        r = gen_settings(n->disk->error, f);
        break;
    case FS_CTL_PR:
        r = gen_pr(n->disk, f);
        break;
    default:
        r = -EINVAL;
        break;
    }
    if (fclose(f) != 0 && r == 0)
        r = -ENOMEM;
    return r;
}

int ctl_open(struct fs_mount *m, struct fs_handle *h, int flags)
{
    struct fs_ctl *c;
    int r;

    if ((flags & O_ACCMODE) != O_RDONLY && !(ctl_mode(h->node->kind) & 0200))
        return -EACCES;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    r = generate(m, h->node, c);
    if (r < 0) {
        ctl_free(c);
        return r;
    }
    h->ctl = c;
    return 0;
}

void ctl_free(struct fs_ctl *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->content);
    free(c->error);
    free(c);
}

int64_t ctl_read(struct fs_handle *h, void *buf, size_t len)
{
    struct fs_ctl *c = h->ctl;
    size_t n = 0;
    LOCK_GUARD(&c->lock);

    if (c->error) {
        size_t elen = strlen(c->error);

        n = MIN(len, elen - c->epos);
        memcpy(buf, c->error + c->epos, n);
        c->epos += n;
        if (c->epos == elen) {
            free(c->error);
            c->error = NULL;
            c->done = true;
        }
        return (int64_t)n;
    }
    if (c->done)
        return 0;
    n = MIN(len, c->len - c->pos);
    memcpy(buf, c->content + c->pos, n);
    c->pos += n;
    return (int64_t)n;
}

static int do_size(struct fs_disk *fd, const struct ctl_args *a, char **msg)
{
    struct dl_disk *d = fd->disk;
    const uint64_t cur = dl_size(d);
    struct ctl_size_cmd cmd;
    uint64_t target;
    int r;

    r = ctl_parse_size(a, &cmd, msg);
    if (r < 0)
        return r;
    switch (cmd.op) {
    case CTL_SIZE_SET:
        if (cmd.size < cur) {
            dl_msg(msg, "%" PRIu64 " is smaller than the disk (%" PRIu64
                   "); 'shrink %" PRIu64 "' drops the data beyond it",
                   cmd.size, cur, cmd.size);
            return -EPERM;
        }
        target = cmd.size;
        break;
    case CTL_SIZE_GROW:
        if (cmd.size > UINT64_MAX - cur) {
            dl_msg(msg, "the new size does not fit 64 bits");
            return -EINVAL;
        }
        target = cur + cmd.size;
        break;
    case CTL_SIZE_SHRINK:
        if (cmd.size >= cur) {
            dl_msg(msg, "shrink needs a size below the current %" PRIu64,
                   cur);
            return -EINVAL;
        }
        target = cmd.size;
        break;
    default:
        return -EINVAL;
    }
    if (target == cur)
        return 0;
    return dl_resize(d, target, msg);
}

/* The layered node of a stack description (below decorators). */
static struct dl_node *layered_node(struct dl_node *n)
{
    for (; n; n = n->nchild == 1 ? n->child[0] : NULL)
        if (strcmp(dl_driver_name(n->drv), "layered") == 0)
            return n;
    return NULL;
}

/* Keep the stack's description in step with a change of its layers. */
static int record_push(struct fs_disk *fd, struct dl_node *layer)
{
    struct dl_node *l = layered_node(fd->stack), **c;

    if (!l)
        return -EINVAL;
    c = realloc(l->child, (l->nchild + 1) * sizeof(*c));
    if (!c)
        return -ENOMEM;
    l->child = c;
    memmove(&l->child[1], &l->child[0], l->nchild * sizeof(*c));
    l->child[0] = layer;
    l->nchild++;
    layer->snapshot = true;
    l->child[1]->frozen = true;
    return 0;
}

static void record_pop(struct fs_disk *fd)
{
    struct dl_node *l = layered_node(fd->stack);

    if (!l || l->nchild < 2)
        return;
    dl_node_free(l->child[0]);
    memmove(&l->child[0], &l->child[1], (l->nchild - 1) * sizeof(*l->child));
    l->nchild--;
    l->child[0]->frozen = false;
}

/* layer/N of a dropped layer: the kernel must forget its entry */
static void forget_layer(struct fs_mount *m, struct fs_disk *fd,
                         size_t number)
{
    char name[24];

    if (!m->inval_entry)
        return;
    for (size_t i = 0; i < m->nnodes; i++) {
        if (m->nodes[i].kind == FS_LAYER_DIR && m->nodes[i].disk == fd) {
            snprintf(name, sizeof(name), "%zu", number);
            m->inval_entry(m->inval_opaque, m->nodes[i].ino, name);
            return;
        }
    }
}

static int do_snapshot(struct fs_disk *fd, const struct ctl_args *a,
                       char **msg)
{
    struct fs_mount *m = fd->m;
    struct ctl_snapshot_cmd cmd;
    struct dl_node *layer = NULL;
    int r;

    r = ctl_parse_snapshot(a, &cmd, msg);
    if (r < 0)
        return r;
    switch (cmd.op) {
    case CTL_SNAPSHOT_PUSH:
        r = conf_parse_layerspec(cmd.layer, &layer, msg);
        if (r < 0)
            return r;
        if (strcmp(dl_driver_name(layer->drv), "ram") != 0) {
            int pi = dl_node_param_index(layer, "path");
            int ci = dl_node_param_index(layer, "create");
            const char *path = pi >= 0 ? layer->v[pi].s : "";

            if (!m->state_path) {
                dl_msg(msg, "a persistent snapshot needs the daemon to run "
                            "with --state FILE: without it a restart would "
                            "drop the layer and every write in it");
                r = -EINVAL;
            } else if (ci < 0 || !layer->v[ci].set || !layer->v[ci].u) {
                dl_msg(msg, "a new snapshot layer is made with ;create "
                            "(sql:%s;create)", path);
                r = -EINVAL;
            } else if (access(path, F_OK) == 0) {
                dl_msg(msg, "%s exists already; a snapshot starts an empty "
                            "layer", path);
                r = -EEXIST;
            }
        }
        if (r == 0)
            r = dl_node_validate(layer, msg);
        if (r == 0)
            r = dl_layered_snapshot(fd->layered, layer, msg);
        if (r == 0) {
            pthread_mutex_lock(&m->lock);
            r = record_push(fd, layer);
            pthread_mutex_unlock(&m->lock);
            if (r == 0)
                layer = NULL;
        }
        dl_node_free(layer);
        break;
    case CTL_SNAPSHOT_COMMIT:
    case CTL_SNAPSHOT_REVERT: {
        size_t gone = dl_layer_count(fd->layered) - 1;

        r = cmd.op == CTL_SNAPSHOT_COMMIT ? dl_layered_commit(fd->layered, msg)
                                          : dl_layered_revert(fd->layered, msg);
        if (r == 0) {
            pthread_mutex_lock(&m->lock);
            record_pop(fd);
            pthread_mutex_unlock(&m->lock);
            forget_layer(m, fd, gone);
        }
        break;
    }
    }
    if (r < 0)
        return r == -EEXIST ? -EINVAL : r;
    /* the disk's content may have changed: no cached attributes */
    if (m->inval)
        m->inval(m->inval_opaque, fd->ino);
    r = fs_state_save(m, msg);
    return r;
}

/* The words again as one line, for a part's settings. */
static int do_settings(struct dl_disk *part, const struct ctl_args *a,
                       char **msg)
{
    _cleanup_free_ char *line = NULL;
    size_t n = 1;

    for (int i = 0; i < a->argc; i++)
        n += strlen(a->argv[i]) + 1;
    line = malloc(n);
    if (!line)
        return -ENOMEM;
    line[0] = '\0';
    for (int i = 0; i < a->argc; i++) {
        if (i)
            strcat(line, " ");
        strcat(line, a->argv[i]);
    }
    return dl_settings_set(part, line, msg);
}

/* Run a reservation command on the disk's reservation table (-EBADE for
 * a conflict, with the message set). */
static int pr_run(struct fs_disk *fd, const struct ctl_pr_cmd *c, char **msg)
{
    const struct dl_pr_ops *ops = fd->pr_ops;
    int r;

    switch (c->op) {
    case CTL_PR_REGISTER:
        r = ops->register_key(fd->pr, c->who, c->key, c->key2,
                              c->ignore_key ? DL_PR_F_IGNORE_KEY : 0);
        break;
    case CTL_PR_RESERVE:
        r = ops->reserve(fd->pr, c->who, c->key, c->type, 0);
        break;
    case CTL_PR_RELEASE:
        r = ops->release(fd->pr, c->who, c->key, c->type, 0);
        break;
    case CTL_PR_CLEAR:
        r = ops->clear(fd->pr, c->who, c->key);
        break;
    case CTL_PR_PREEMPT:
        r = ops->preempt(fd->pr, c->who, c->key, c->key2, c->type, c->abort);
        break;
    default:
        r = -EINVAL;
        break;
    }
    if (r == -EBADE)
        dl_msg(msg, "reservation conflict");
    return r;
}

static int do_pr(struct fs_disk *fd, const struct ctl_args *a, char **msg)
{
    struct ctl_pr_cmd c;
    int r = ctl_parse_pr(a, &c, msg);

    return r < 0 ? r : pr_run(fd, &c, msg);
}

int64_t ctl_write(struct fs_handle *h, const void *buf, size_t len)
{
    struct fs_ctl *c = h->ctl;
    struct fs_mount *m = h->disk ? h->disk->m : NULL;
    _cleanup_free_ char *msg = NULL;
    struct ctl_args a = {0};
    char ebuf[16];
    int r;

    r = ctl_split(buf, len, &a, &msg);
    if (r == 0) {
        switch (h->node->kind) {
        case FS_CTL_SIZE:
            r = do_size(h->disk, &a, &msg);
            break;
        case FS_CTL_SNAPSHOT:
            r = do_snapshot(h->disk, &a, &msg);
            break;
        case FS_CTL_DELAY:
            r = do_settings(h->disk->delay, &a, &msg);
            break;
        case FS_CTL_ERROR:
            r = do_settings(h->disk->error, &a, &msg);
            break;
        case FS_CTL_PR:
            r = do_pr(h->disk, &a, &msg);
            break;
        default:
            dl_msg(&msg, "this file takes no commands");
            r = -EINVAL;
            break;
        }
        ctl_args_free(&a);
    }
    if (r >= 0)
        return (int64_t)len;

    if (m) {
        size_t shown = len && ((const char *)buf)[len - 1] == '\n' ? len - 1
                                                                    : len;

        dl_log(m->ctx, LOG_WARNING, "ctl", "%s/%s: '%.*s': %s: %s",
               h->disk->name, h->node->name, (int)MIN(shown, 200),
               (const char *)buf, dl_errno_name(-r, ebuf, sizeof(ebuf)),
               msg ? msg : strerror(-r));
    }
    pthread_mutex_lock(&c->lock);
    free(c->error);
    if (asprintf(&c->error, "error: %s: %s\n",
                 dl_errno_name(-r, ebuf, sizeof(ebuf)),
                 msg ? msg : strerror(-r)) < 0)
        c->error = NULL;
    c->epos = 0;
    pthread_mutex_unlock(&c->lock);
    return r;
}
