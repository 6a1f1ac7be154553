/* Configuration files (libconfig syntax):
 *
 *   mount: { allow_other = false; threads = 4; };
 *   disks = (
 *     { name = "os.img"; stack = "file:os.raw;direct"; },
 *     { name = "data.img"; read_only = true;
 *       stack = { type = "file"; path = "data.raw"; sector = 4096; }; }
 *   );
 *
 * A stack is a spec string or a group: `type` names the driver, the other
 * keys are its settings (the driver's table), `read_only` marks that part
 * read-only, and `disk` holds the part below a decorator. Unknown keys are
 * errors. Relative paths are relative to the file's directory. */
#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/private.h"
#include "disklib/driver.h"
#include "disklib/util.h"

struct loader {
    struct conf *c;
    struct conf_diag *diag;
    const char *name;     /* the file, as named in messages */
    const char *base_dir; /* for relative paths */
};

/* "FILE:LINE" of a setting */
static void where_of(const struct loader *l, const config_setting_t *s,
                     char *buf, size_t len)
{
    const char *f = config_setting_source_file(s);

    snprintf(buf, len, "%s:%u", f ? f : l->name,
             (unsigned)config_setting_source_line(s));
}

/* A string for messages: quoted, with quotes, backslashes and control
 * characters escaped, cut with "..." to fit len bytes. */
static void quote(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    if (len < 8) {
        if (len)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t n = 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
        } else {
            esc[0] = (char)c;
        }
        if (o + n > len - 6) /* keep room for ...", and the NUL */
            break;
        memcpy(buf + o, esc, n);
        o += n;
    }
    if (*s) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* The value of a setting as text for messages. */
static void value_text(const config_setting_t *s, char *buf, size_t len)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        quote(config_setting_get_string(s), buf, len);
        break;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(buf, len, "%lld", (long long)config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, len, "%g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, len, "%s", config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_GROUP:
        snprintf(buf, len, "{...}");
        break;
    default:
        snprintf(buf, len, "(...)");
        break;
    }
}

static void error_at(struct loader *l, const config_setting_t *s,
                     const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "FILE:LINE: PATH: VALUE: RULE" */
static void error_at(struct loader *l, const config_setting_t *s,
                     const char *path, const char *fmt, ...)
{
    char where[PATH_MAX + 32], value[256];
    _cleanup_free_ char *rule = NULL;
    va_list ap;

    where_of(l, s, where, sizeof(where));
    value_text(s, value, sizeof(value));
    va_start(ap, fmt);
    if (vasprintf(&rule, fmt, ap) < 0)
        rule = NULL;
    va_end(ap);
    conf_diag_add(l->diag, "%s: %s: %s: %s", where, path, value,
                  rule ? rule : "invalid");
}

static void unknown_key(struct loader *l, const config_setting_t *s,
                        const char *path, const char *known)
{
    char where[PATH_MAX + 32];

    where_of(l, s, where, sizeof(where));
    conf_diag_add(l->diag, "%s: %s: unknown setting (known here: %s)", where,
                  path, known);
}

static void path_join(char *buf, size_t len, const char *parent,
                      const config_setting_t *s)
{
    const char *name = config_setting_name(s);

    if (name)
        snprintf(buf, len, "%s%s%s", parent, *parent ? "." : "", name);
    else
        snprintf(buf, len, "%s.[%d]", parent, config_setting_index(s));
}

static int set_param(struct loader *l, struct dl_node *n,
                     const struct dl_param *p, config_setting_t *s,
                     const char *path)
{
    _cleanup_free_ char *msg = NULL;
    char rule[256];
    int type = config_setting_type(s), r;

    switch (p->type) {
    case DL_P_BOOL:
        if (type != CONFIG_TYPE_BOOL)
            goto wrong_type;
        r = dl_node_set_u64(n, p->name, (uint64_t)config_setting_get_bool(s),
                            &msg);
        break;
    case DL_P_UINT:
    case DL_P_SIZE:
        if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
            long long v = config_setting_get_int64(s);

            if (v == LLONG_MAX) {
                /* libconfig clamps integers that do not fit */
                error_at(l, s, path, "is too large (more than 2^63-1)");
                return -EINVAL;
            }
            if (v < 0)
                goto wrong_type;
            r = dl_node_set_u64(n, p->name, (uint64_t)v, &msg);
            break;
        }
        if (p->type == DL_P_UINT || type != CONFIG_TYPE_STRING)
            goto wrong_type;
        r = dl_node_set(n, p->name, config_setting_get_string(s), &msg);
        break;
    default: /* STRING, PATH, ENUM, DURATION: strings */
        if (type != CONFIG_TYPE_STRING)
            goto wrong_type;
        r = dl_node_set(n, p->name, config_setting_get_string(s), &msg);
        break;
    }
    if (r < 0)
        error_at(l, s, path, "%s", msg ? msg : dl_param_rule(p, rule,
                                                             sizeof(rule)));
    return r;

wrong_type:
    error_at(l, s, path, "%s%s", dl_param_rule(p, rule, sizeof(rule)),
             p->type == DL_P_SIZE ? " (a string, or an integer of bytes)"
             : p->type == DL_P_DURATION ? " (as a string)"
                                        : "");
    return -EINVAL;
}

static int load_stack(struct loader *l, config_setting_t *s, const char *path,
                      bool as_layer, struct dl_node **ret);

/* The keys of a part's role as a layer of a layered disk. */
static bool *layer_flag(struct dl_node *n, const char *key)
{
    if (strcmp(key, "read_cache") == 0)
        return &n->read_cache;
    if (strcmp(key, "write_through") == 0)
        return &n->write_through;
    if (strcmp(key, "snapshot") == 0)
        return &n->snapshot;
    if (strcmp(key, "frozen") == 0)
        return &n->frozen;
    return NULL;
}

static int load_stack_group(struct loader *l, config_setting_t *s,
                            const char *path, bool as_layer,
                            struct dl_node **ret)
{
    config_setting_t *t = config_setting_get_member(s, "type");
    const struct dl_driver *drv;
    struct dl_node *n = NULL;
    char where[PATH_MAX + 64], cpath[512], known[512];
    unsigned minc, maxc;
    size_t np, off;
    const struct dl_param *params;
    int r = 0;

    if (!t) {
        where_of(l, s, where, sizeof(where));
        conf_diag_add(l->diag, "%s: %s: a stack group needs type = \"...\" "
                      "(the driver: file, ...)", where, path);
        return -EINVAL;
    }
    snprintf(cpath, sizeof(cpath), "%s.type", path);
    if (config_setting_type(t) != CONFIG_TYPE_STRING ||
        !(drv = dl_find_driver(config_setting_get_string(t)))) {
        error_at(l, t, cpath, "must be the name of a driver (file, ...)");
        return -EINVAL;
    }
    r = dl_node_new(drv, &n);
    if (r < 0)
        return r;
    where_of(l, s, where, sizeof(where));
    off = strlen(where);
    snprintf(where + off, sizeof(where) - off, ": %s", path);
    dl_node_set_where(n, where);

    params = dl_driver_params(drv, &np);
    dl_driver_children(drv, &minc, &maxc);
    off = (size_t)snprintf(known, sizeof(known), "type, read_only");
    for (size_t i = 0; i < np && off < sizeof(known); i++)
        off += (size_t)snprintf(known + off, sizeof(known) - off, ", %s",
                                params[i].name);
    if (maxc == 1 && off < sizeof(known))
        off += (size_t)snprintf(known + off, sizeof(known) - off, ", disk");
    else if (maxc > 1 && off < sizeof(known))
        off += (size_t)snprintf(known + off, sizeof(known) - off, ", layers");
    if (as_layer && off < sizeof(known))
        snprintf(known + off, sizeof(known) - off,
                 ", read_cache, write_through, snapshot, frozen");

    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *key = config_setting_name(m);
        int idx;

        path_join(cpath, sizeof(cpath), path, m);
        if (strcmp(key, "type") == 0)
            continue;
        if (strcmp(key, "read_only") == 0) {
            if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
                error_at(l, m, cpath, "must be true or false");
                r = -EINVAL;
            } else {
                n->read_only = config_setting_get_bool(m);
            }
            continue;
        }
        if (strcmp(key, "disk") == 0 && maxc == 1) {
            struct dl_node *child = NULL;

            if (load_stack(l, m, cpath, false, &child) < 0)
                r = -EINVAL;
            else
                dl_node_add_child(n, child);
            continue;
        }
        if (strcmp(key, "layers") == 0 && maxc > 1) {
            if (config_setting_type(m) != CONFIG_TYPE_LIST) {
                error_at(l, m, cpath, "must be a list of layers, top first: "
                         "( { type = ...; }, ... )");
                r = -EINVAL;
                continue;
            }
            for (int j = 0; j < config_setting_length(m); j++) {
                config_setting_t *e = config_setting_get_elem(m, (unsigned)j);
                struct dl_node *child = NULL;
                char epath[600];

                path_join(epath, sizeof(epath), cpath, e);
                if (load_stack(l, e, epath, true, &child) < 0)
                    r = -EINVAL;
                else
                    dl_node_add_child(n, child);
            }
            continue;
        }
        if (as_layer && layer_flag(n, key)) {
            if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
                error_at(l, m, cpath, "must be true or false");
                r = -EINVAL;
            } else {
                *layer_flag(n, key) = config_setting_get_bool(m);
            }
            continue;
        }
        idx = dl_node_param_index(n, key);
        if (idx < 0) {
            unknown_key(l, m, cpath, known);
            r = -EINVAL;
            continue;
        }
        if (set_param(l, n, &params[idx], m, cpath) < 0)
            r = -EINVAL;
    }
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}

static int load_stack(struct loader *l, config_setting_t *s, const char *path,
                      bool as_layer, struct dl_node **ret)
{
    _cleanup_free_ char *msg = NULL;
    char where[PATH_MAX + 600];
    size_t off;
    int r;

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
        r = load_stack_group(l, s, path, as_layer, ret);
        if (r == 0)
            r = conf_resolve_paths(*ret, l->base_dir);
        return r;
    case CONFIG_TYPE_STRING:
        where_of(l, s, where, sizeof(where));
        off = strlen(where);
        snprintf(where + off, sizeof(where) - off, ": %s", path);
        r = conf_parse_spec(config_setting_get_string(s), where, l->base_dir,
                            l->c->mount.cache_dir, ret, &msg);
        if (r < 0)
            error_at(l, s, path, "%s", msg ? msg : strerror(-r));
        return r;
    default:
        error_at(l, s, path, "must be a spec string (\"file:PATH\") or a "
                 "group { type = ...; }");
        return -EINVAL;
    }
}

static int load_disk(struct loader *l, config_setting_t *s, const char *path)
{
    struct conf_disk disk = {0};
    char cpath[512], where[PATH_MAX + 600];
    config_setting_t *stack = NULL;
    int r = 0;

    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        error_at(l, s, path, "a disk is a group { name = ...; stack = ...; }");
        return -EINVAL;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *key = config_setting_name(m);

        path_join(cpath, sizeof(cpath), path, m);
        if (strcmp(key, "name") == 0) {
            const char *why;

            if (config_setting_type(m) != CONFIG_TYPE_STRING) {
                error_at(l, m, cpath, "must be a string");
                r = -EINVAL;
                continue;
            }
            why = conf_bad_disk_name(config_setting_get_string(m));
            if (why) {
                error_at(l, m, cpath, "%s", why);
                r = -EINVAL;
                continue;
            }
            free(disk.name);
            disk.name = strdup(config_setting_get_string(m));
        } else if (strcmp(key, "stack") == 0) {
            stack = m;
        } else if (strcmp(key, "read_only") == 0) {
            if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
                error_at(l, m, cpath, "must be true or false");
                r = -EINVAL;
                continue;
            }
            disk.read_only = config_setting_get_bool(m);
        } else {
            unknown_key(l, m, cpath, "name, stack, read_only");
            r = -EINVAL;
        }
    }
    where_of(l, s, where, sizeof(where));
    if (!disk.name && r == 0) {
        conf_diag_add(l->diag, "%s: %s: a disk needs name = \"...\"", where,
                      path);
        r = -EINVAL;
    }
    if (!stack && r == 0) {
        conf_diag_add(l->diag, "%s: %s: a disk needs stack = \"...\" or "
                      "stack = { ... }", where, path);
        r = -EINVAL;
    }
    if (stack) {
        path_join(cpath, sizeof(cpath), path, stack);
        if (load_stack(l, stack, cpath, false, &disk.stack) < 0)
            r = -EINVAL;
    }
    if (r < 0) {
        conf_disk_clear(&disk);
        return r;
    }
    snprintf(where + strlen(where), sizeof(where) - strlen(where), ": %s",
             path);
    disk.where = strdup(where);
    return conf_append_disk(l->c, &disk);
}

static int load_mount(struct loader *l, config_setting_t *s, const char *path)
{
    char cpath[512];
    int r = 0;

    if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
        error_at(l, s, path, "must be a group { allow_other = ...; }");
        return -EINVAL;
    }
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *key = config_setting_name(m);
        int type = config_setting_type(m);

        path_join(cpath, sizeof(cpath), path, m);
        if (strcmp(key, "allow_other") == 0) {
            if (type != CONFIG_TYPE_BOOL) {
                error_at(l, m, cpath, "must be true or false");
                r = -EINVAL;
            } else {
                l->c->mount.allow_other = config_setting_get_bool(m);
            }
        } else if (strcmp(key, "threads") == 0) {
            long long v = config_setting_get_int64(m);

            if ((type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) ||
                v < 1 || v > 256) {
                error_at(l, m, cpath, "must be an integer from 1 to 256");
                r = -EINVAL;
            } else {
                l->c->mount.threads = (unsigned)v;
            }
        } else if (strcmp(key, "cache_dir") == 0) {
            if (type != CONFIG_TYPE_STRING ||
                !*config_setting_get_string(m)) {
                error_at(l, m, cpath, "must be a directory");
                r = -EINVAL;
            } else if (!l->c->mount.cache_dir) {
                /* the command line's --cache-dir comes first */
                const char *v = config_setting_get_string(m);

                if (v[0] == '/')
                    l->c->mount.cache_dir = strdup(v);
                else if (asprintf(&l->c->mount.cache_dir, "%s/%s",
                                  l->base_dir, v) < 0)
                    l->c->mount.cache_dir = NULL;
            }
        } else {
            unknown_key(l, m, cpath, "allow_other, threads, cache_dir");
            r = -EINVAL;
        }
    }
    return r;
}

static int load_root(struct loader *l, config_t *cfg)
{
    config_setting_t *root = config_root_setting(cfg);
    char cpath[512];
    int r = 0;

    /* the mount group first: its cache_dir serves the disks' specs */
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *m = config_setting_get_elem(root, (unsigned)i);

        path_join(cpath, sizeof(cpath), "", m);
        if (strcmp(config_setting_name(m), "mount") == 0 &&
            load_mount(l, m, cpath) < 0)
            r = -EINVAL;
    }
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        const char *key = config_setting_name(m);

        path_join(cpath, sizeof(cpath), "", m);
        if (strcmp(key, "mount") == 0) {
            continue;
        } else if (strcmp(key, "disks") == 0) {
            if (config_setting_type(m) != CONFIG_TYPE_LIST) {
                error_at(l, m, cpath, "must be a list ( { name = ...; "
                         "stack = ...; }, ... )");
                r = -EINVAL;
                continue;
            }
            for (int j = 0; j < config_setting_length(m); j++) {
                config_setting_t *d = config_setting_get_elem(m, (unsigned)j);
                char dpath[512];

                path_join(dpath, sizeof(dpath), cpath, d);
                if (load_disk(l, d, dpath) < 0)
                    r = -EINVAL;
            }
        } else {
            unknown_key(l, m, cpath, "mount, disks");
            r = -EINVAL;
        }
    }
    return r;
}

static int load(struct conf *c, const char *text, const char *file,
                const char *name, const char *base_dir, struct conf_diag *diag)
{
    struct loader l = {.c = c, .diag = diag, .name = name,
                       .base_dir = base_dir};
    config_t cfg;
    int ok, r;

    config_init(&cfg);
    config_set_include_dir(&cfg, base_dir);
    ok = text ? config_read_string(&cfg, text) : config_read_file(&cfg, file);
    if (ok != CONFIG_TRUE) {
        if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
            conf_diag_add(diag, "%s: cannot read: %s", name, strerror(errno));
        else
            conf_diag_add(diag, "%s:%d: %s", config_error_file(&cfg)
                                                 ? config_error_file(&cfg)
                                                 : name,
                          config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return -EINVAL;
    }
    r = load_root(&l, &cfg);
    config_destroy(&cfg);
    return r;
}

int conf_load_string(struct conf *c, const char *text, const char *name,
                     const char *base_dir, struct conf_diag *diag)
{
    return load(c, text, NULL, name, base_dir, diag);
}

int conf_load_file(struct conf *c, const char *path, struct conf_diag *diag)
{
    _cleanup_free_ char *copy = strdup(path), *dir = NULL;
    char *d;

    if (!copy)
        return -ENOMEM;
    d = dirname(copy);
    dir = realpath(d, NULL);
    if (!dir) {
        conf_diag_add(diag, "%s: cannot read: %s", path, strerror(errno));
        return -EINVAL;
    }
    return load(c, NULL, path, path, dir, diag);
}
