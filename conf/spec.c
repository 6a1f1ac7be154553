/* One-line specs, in the grammar of the OpenVMM command line:
 *
 *   disk-arg := NAME "=" SPEC { "," FLAG }     FLAG: ro
 *   SPEC     := KIND ":" REST | PATH           a bare PATH is file:PATH
 *   file:PATH { ";" OPT }                      OPT: a file setting, "direct"
 *                                              or "key=value"
 *
 * The kind is matched on the first ':'. After file: the path runs to the
 * first ';' (so it may contain ':'); a path contains neither ';' nor ','.
 * A string with a ':' whose prefix is not a kind is a path when it is
 * rooted ("/x:y", "./x:y"); otherwise the kind is unknown.
 *
 * Later kinds register here, in kinds[], with their own REST grammar. */
#include <errno.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/private.h"
#include "disklib/util.h"

typedef int (*spec_parse_fn)(const char *rest, struct dl_node **ret,
                             char **ret_msg);

struct spec_kind {
    const char *name;
    spec_parse_fn parse;
};

/* Settings of a driver given as ";key[=value]" options: a bool may stand
 * alone ("direct"), anything else needs a value. */
static int parse_options(struct dl_node *n, char *opts, char **ret_msg)
{
    size_t np;
    const struct dl_param *params = dl_driver_params(n->drv, &np);
    char *save = NULL;
    int r;

    for (char *o = strtok_r(opts, ";", &save); o;
         o = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(o, '=');
        int i;

        if (eq)
            *eq = '\0';
        i = dl_node_param_index(n, o);
        if (i < 0 || strcmp(o, "path") == 0) {
            conf_known_options(n->drv, o, ret_msg);
            return -EINVAL;
        }
        if (!eq && params[i].type != DL_P_BOOL) {
            dl_msg(ret_msg, "option '%s' needs a value (%s=...)", o, o);
            return -EINVAL;
        }
        r = dl_node_set(n, o, eq ? eq + 1 : "true", ret_msg);
        if (r < 0) {
            dl_msg_prefix(ret_msg, "option '%s'", o);
            return r;
        }
    }
    return 0;
}

static int parse_file(const char *rest, struct dl_node **ret, char **ret_msg)
{
    _cleanup_free_ char *copy = strdup(rest);
    struct dl_node *n = NULL;
    char *semi;
    int r;

    if (!copy)
        return -ENOMEM;
    semi = strchr(copy, ';');
    if (semi)
        *semi++ = '\0';
    if (!*copy) {
        dl_msg(ret_msg, "file: needs a path (file:PATH)");
        return -EINVAL;
    }
    r = dl_node_new(dl_find_driver("file"), &n);
    if (r < 0)
        return r;
    r = dl_node_set(n, "path", copy, ret_msg);
    if (r == 0 && semi)
        r = parse_options(n, semi, ret_msg);
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}

static const struct spec_kind kinds[] = {
    {"file", parse_file},
};

const char *const *conf_spec_kinds(void)
{
    static const char *const names[] = {"file", NULL};

    return names;
}

static bool rooted(const char *s)
{
    return s[0] == '/' || strncmp(s, "./", 2) == 0 ||
           strncmp(s, "../", 3) == 0;
}

static int parse_node(const char *spec, struct dl_node **ret, char **ret_msg)
{
    const char *colon = strchr(spec, ':');
    size_t klen;

    if (!*spec) {
        dl_msg(ret_msg, "is empty: a spec is KIND:... or a path");
        return -EINVAL;
    }
    if (!colon)
        return parse_file(spec, ret, ret_msg);
    klen = (size_t)(colon - spec);
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (strlen(kinds[i].name) == klen &&
            strncmp(kinds[i].name, spec, klen) == 0)
            return kinds[i].parse(colon + 1, ret, ret_msg);
    if (rooted(spec))
        return parse_file(spec, ret, ret_msg);
    dl_msg(ret_msg, "unknown disk kind '%.*s' (known: file; a path with a ':' "
           "must start with /, ./ or ../)", (int)klen, spec);
    return -EINVAL;
}

int conf_resolve_paths(struct dl_node *n, const char *base_dir)
{
    _cleanup_free_ char *cwd = NULL;
    size_t np;
    const struct dl_param *params = dl_driver_params(n->drv, &np);

    if (!base_dir || !*base_dir) {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return -errno;
        base_dir = cwd;
    }
    for (size_t i = 0; i < np; i++) {
        char *abs;
        const char *p = n->v[i].s;

        if (params[i].type != DL_P_PATH || !n->v[i].set || !p ||
            p[0] == '/')
            continue;
        while (strncmp(p, "./", 2) == 0)
            p += 2;
        if (asprintf(&abs, "%s%s%s", base_dir,
                     base_dir[strlen(base_dir) - 1] == '/' ? "" : "/", p) < 0)
            return -ENOMEM;
        free(n->v[i].s);
        n->v[i].s = abs;
    }
    for (size_t i = 0; i < n->nchild; i++) {
        int r = conf_resolve_paths(n->child[i], base_dir);

        if (r < 0)
            return r;
    }
    return 0;
}

static int set_where(struct dl_node *n, const char *where)
{
    int r = dl_node_set_where(n, where);

    for (size_t i = 0; r == 0 && i < n->nchild; i++)
        r = set_where(n->child[i], where);
    return r;
}

int conf_parse_spec(const char *spec, const char *where, const char *base_dir,
                    struct dl_node **ret, char **ret_msg)
{
    struct dl_node *n = NULL;
    int r;

    r = parse_node(spec, &n, ret_msg);
    if (r < 0)
        return r;
    r = conf_resolve_paths(n, base_dir);
    if (r == 0 && where)
        r = set_where(n, where);
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}

/* Flags after the spec: "ro" (also ro=on/off); the OpenVMM options that
 * place a disk in a VM are refused by name. */
static int parse_flag(const char *flag, bool *ro, char **ret_msg)
{
    static const char *const placement[] = {
        "on", "lun", "nsid", "dvd", "vtl2", "uh", "uh-nvme", "pcie_port",
        "relay", NULL,
    };
    size_t klen = strcspn(flag, "=");
    const char *val = flag[klen] ? flag + klen + 1 : NULL;

    if (klen == 2 && strncmp(flag, "ro", 2) == 0) {
        if (!val || !strcmp(val, "on") || !strcmp(val, "true"))
            *ro = true;
        else if (!strcmp(val, "off") || !strcmp(val, "false"))
            *ro = false;
        else {
            dl_msg(ret_msg, "flag 'ro' takes on or off");
            return -EINVAL;
        }
        return 0;
    }
    for (size_t i = 0; placement[i]; i++) {
        if (strlen(placement[i]) == klen &&
            strncmp(placement[i], flag, klen) == 0) {
            dl_msg(ret_msg, "option '%.*s' places a disk in a VM; it has no "
                   "meaning here", (int)klen, flag);
            return -EINVAL;
        }
    }
    dl_msg(ret_msg, "unknown flag '%s' (known: ro)", flag);
    return -EINVAL;
}

int conf_add_disk_arg(struct conf *c, const char *arg, struct conf_diag *diag)
{
    _cleanup_free_ char *copy = strdup(arg), *where = NULL, *msg = NULL;
    struct conf_disk disk = {0};
    char *eq, *spec, *flags, *save = NULL;
    const char *why;
    int r;

    if (!copy)
        return -ENOMEM;
    if (asprintf(&where, "command line: --disk '%s'", arg) < 0)
        return -ENOMEM;
    eq = strchr(copy, '=');
    if (!eq) {
        conf_diag_add(diag, "%s: needs NAME=SPEC", where);
        return -EINVAL;
    }
    *eq = '\0';
    why = conf_bad_disk_name(copy);
    if (why) {
        conf_diag_add(diag, "%s: name '%s': %s", where, copy, why);
        return -EINVAL;
    }
    /* The spec ends at the first ',' even when it is empty: strtok_r
     * would skip it and take "ro" in "NAME=,ro" for the spec. */
    spec = eq + 1;
    flags = strchr(spec, ',');
    if (flags)
        *flags++ = '\0';
    for (char *f = flags ? strtok_r(flags, ",", &save) : NULL; f;
         f = strtok_r(NULL, ",", &save)) {
        r = parse_flag(f, &disk.read_only, &msg);
        if (r < 0) {
            conf_diag_add(diag, "%s: %s", where, msg);
            return r;
        }
    }
    r = conf_parse_spec(spec, where, NULL, &disk.stack, &msg);
    if (r < 0) {
        conf_diag_add(diag, "%s: '%s': %s", where, spec,
                      msg ? msg : strerror(-r));
        return r;
    }
    disk.name = strdup(copy);
    disk.where = TAKE_PTR(where);
    return conf_append_disk(c, &disk);
}
