/* The configuration object: disks, mount settings, messages, and the
 * checks across the whole configuration (names, duplicates). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/private.h"
#include "disklib/driver.h"
#include "disklib/util.h"

void conf_diag_add(struct conf_diag *d, const char *fmt, ...)
{
    char **m, *s;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        return;
    m = realloc(d->msg, (d->n + 1) * sizeof(*m));
    if (!m) {
        free(s);
        return;
    }
    d->msg = m;
    d->msg[d->n++] = s;
}

void conf_diag_clear(struct conf_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->msg[i]);
    free(d->msg);
    d->msg = NULL;
    d->n = 0;
}

void conf_init(struct conf *c)
{
    memset(c, 0, sizeof(*c));
}

void conf_disk_clear(struct conf_disk *disk)
{
    free(disk->name);
    dl_node_free(disk->stack);
    free(disk->where);
    memset(disk, 0, sizeof(*disk));
}

void conf_free(struct conf *c)
{
    for (size_t i = 0; i < c->ndisks; i++)
        conf_disk_clear(&c->disks[i]);
    free(c->disks);
    free(c->mount.cache_dir);
    conf_init(c);
}

int conf_append_disk(struct conf *c, struct conf_disk *disk)
{
    struct conf_disk *d;

    if (!disk->name) {
        conf_disk_clear(disk);
        return -ENOMEM;
    }
    d = realloc(c->disks, (c->ndisks + 1) * sizeof(*d));
    if (!d) {
        conf_disk_clear(disk);
        return -ENOMEM;
    }
    c->disks = d;
    c->disks[c->ndisks++] = *disk;
    memset(disk, 0, sizeof(*disk));
    return 0;
}

const char *conf_bad_disk_name(const char *name)
{
    if (!*name)
        return "a disk name cannot be empty";
    if (strcmp(name, ".ctl") == 0)
        return "'.ctl' is the control directory";
    if (name[0] == '.')
        return "a disk name cannot start with '.'";
    if (strlen(name) > 255)
        return "a disk name is at most 255 bytes";
    for (const char *p = name; *p; p++) {
        if (*p == '/')
            return "a disk name cannot contain '/'";
        if (*p == '=')
            return "a disk name cannot contain '='";
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return "a disk name cannot contain spaces or control characters";
    }
    return NULL;
}

void conf_known_options(const struct dl_driver *drv, const char *what,
                        char **ret_msg)
{
    char list[512] = "";
    size_t off = 0, n;
    const struct dl_param *p = dl_driver_params(drv, &n);

    for (size_t i = 0; i < n && off < sizeof(list); i++) {
        if (strcmp(p[i].name, "path") == 0)
            continue;
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s%s",
                                off ? ", " : "", p[i].name,
                                p[i].type == DL_P_BOOL ? "" : "=...");
    }
    dl_msg(ret_msg, "unknown option '%s' for %s (known: %s)", what,
           dl_driver_name(drv), list);
}

int conf_validate(struct conf *c, struct conf_diag *diag)
{
    size_t before = diag->n;

    for (size_t i = 0; i < c->ndisks; i++) {
        struct conf_disk *d = &c->disks[i];
        const char *why = conf_bad_disk_name(d->name);
        char *msg = NULL;

        if (why)
            conf_diag_add(diag, "%s: name \"%s\": %s", d->where, d->name,
                          why);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->disks[j].name, d->name) == 0)
                conf_diag_add(diag, "%s: name \"%s\": a disk of that name "
                              "exists already (%s)", d->where, d->name,
                              c->disks[j].where);
        if (d->stack && dl_node_validate(d->stack, &msg) < 0) {
            conf_diag_add(diag, "%s", msg ? msg : "invalid stack");
            free(msg);
        }
    }
    return diag->n > before ? -EINVAL : 0;
}
