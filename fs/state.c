/* --state FILE: the stacks as snapshots changed them.
 *
 * After every snapshot, commit or revert the daemon writes every disk's
 * stack to the state file in the expanded configuration form (written
 * to a temporary file, synced, renamed over the old one, the directory
 * synced: a crash leaves the old state or the new one). At start, the
 * stacks it names replace those of the configuration.
 *
 * Layers in memory do not survive a restart: a pushed ram layer is left
 * out, and the layer it froze is recorded as the writable top again (a
 * restart drops the writes made since such a snapshot, as revert would). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "disklib/util.h"
#include "fs/mount.h"

/* The layered node of a stack description (below decorators). */
static struct dl_node *layered_node(struct dl_node *n)
{
    for (; n; n = n->nchild == 1 ? n->child[0] : NULL)
        if (strcmp(dl_driver_name(n->drv), "layered") == 0)
            return n;
    return NULL;
}

static bool volatile_snapshot(const struct dl_node *n)
{
    return n->snapshot && strcmp(dl_driver_name(n->drv), "ram") == 0;
}

static int write_all(struct fs_mount *m, FILE *f)
{
    struct conf tmp;
    struct saved {
        struct dl_node *l;
        struct dl_node **child;
        size_t nchild;
        bool frozen;
    } *saved = calloc(m->ndisks ? m->ndisks : 1, sizeof(*saved));

    if (!saved)
        return -ENOMEM;
    conf_init(&tmp);
    tmp.disks = calloc(m->ndisks ? m->ndisks : 1, sizeof(*tmp.disks));
    if (!tmp.disks) {
        free(saved);
        return -ENOMEM;
    }
    tmp.ndisks = m->ndisks;
    /* hide the layers that a restart cannot bring back */
    for (size_t i = 0; i < m->ndisks; i++) {
        struct dl_node *l = layered_node(m->disks[i]->stack);
        size_t k = 0;

        tmp.disks[i].name = m->disks[i]->name;
        tmp.disks[i].stack = m->disks[i]->stack;
        tmp.disks[i].read_only = m->disks[i]->read_only;
        saved[i].l = l;
        if (!l)
            continue;
        saved[i].child = l->child;
        saved[i].nchild = l->nchild;
        while (k + 1 < l->nchild && volatile_snapshot(l->child[k]))
            k++;
        l->child += k;
        l->nchild -= k;
        saved[i].frozen = l->child[0]->frozen;
        if (k)
            l->child[0]->frozen = false;
    }
    fputs("# The stacks of this mount as snapshots changed them, written by "
          "the\n# daemon for --state; at start they replace those of the "
          "configuration.\n", f);
    conf_dump(&tmp, f);
    for (size_t i = 0; i < m->ndisks; i++) {
        struct dl_node *l = saved[i].l;

        if (!l)
            continue;
        l->child[0]->frozen = saved[i].frozen;
        l->child = saved[i].child;
        l->nchild = saved[i].nchild;
    }
    free(tmp.disks);
    free(saved);
    return ferror(f) ? -EIO : 0;
}

int fs_state_save(struct fs_mount *m, char **ret_msg)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    bool renamed = false;
    FILE *f;
    int r;

    if (!m->state_path)
        return 0;
    f = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    pthread_mutex_lock(&m->lock);
    r = write_all(m, f);
    pthread_mutex_unlock(&m->lock);
    if (fclose(f) != 0 && r == 0)
        r = -ENOMEM;
    if (r == 0)
        r = dl_replace_file(m->state_path, text, len, &renamed);
    /* once renamed, only the directory's sync failed: the file is new */
    if (r < 0 && !renamed) {
        dl_msg(ret_msg, "cannot write the state file %s: %s", m->state_path,
               strerror(-r));
        return -EIO;
    }
    return 0;
}

int fs_state_apply(struct conf *c, const char *state_path,
                   struct conf_diag *diag)
{
    struct conf st;
    int r;

    if (access(state_path, F_OK) != 0)
        return 0; /* nothing recorded yet */
    conf_init(&st);
    r = conf_load_file(&st, state_path, diag);
    if (r < 0) {
        conf_free(&st);
        return r;
    }
    for (size_t i = 0; i < st.ndisks; i++) {
        for (size_t j = 0; j < c->ndisks; j++) {
            if (strcmp(st.disks[i].name, c->disks[j].name) != 0)
                continue;
            dl_node_free(c->disks[j].stack);
            c->disks[j].stack = TAKE_PTR(st.disks[i].stack);
            free(c->disks[j].where);
            c->disks[j].where = TAKE_PTR(st.disks[i].where);
        }
    }
    conf_free(&st);
    return 0;
}
