/* One-line specs, in the grammar of the OpenVMM command line:
 *
 *   disk-arg := NAME "=" SPEC { "," FLAG }     FLAG: ro
 *   SPEC     := KIND ":" REST | PATH           a bare PATH is file:PATH
 *   file:PATH { ";" OPT }                      OPT: a file setting, "direct"
 *                                              or "key=value"
 *   mem:SIZE   memdiff:SPEC   sql:PATH[;create=SIZE]
 *   sqldiff:PATH[;create]:SPEC   autocache:[KEY]:SPEC
 *   crypt:xts-aes-256:KEYFILE:SPEC   delay:MS:SPEC   prwrap:SPEC
 *
 * The kind is matched on the first ':'. After file: the path runs to the
 * first ';' (so it may contain ':'); a path contains neither ';' nor ','.
 * A string with a ':' whose prefix is not a kind is a path when it is
 * rooted ("/x:y", "./x:y"); otherwise the kind is unknown.
 *
 * As on the OpenVMM command line, a spec is a list of parts, top first:
 * the layer kinds (mem, memdiff, sql, sqldiff, autocache) add a layer and
 * those with an inner SPEC go on with it; any other kind adds one whole
 * disk and ends the list. A list of one whole disk is that disk; anything
 * else is a layered disk of those layers. A decorator (crypt, delay,
 * prwrap) is a whole disk over the disk its own inner SPEC makes, so
 * "memdiff:crypt:...:file:x" is a ram layer over an encrypted file and
 * "crypt:...:memdiff:file:x" encrypts a layered disk.
 *
 * Later kinds register here, in kinds[], with their own REST grammar. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/private.h"
#include "disklib/util.h"

struct spec_ctx {
    const char *cache_dir; /* for autocache; may be NULL */
    unsigned depth;        /* decorators around the part being parsed */
};

/* Decorators nest by recursion; a spec deeper than this is refused. */
#define MAX_DEPTH 16

/* Parse REST into one part. A layer kind that wraps an inner spec sets
 * *ret_inner to it. */
typedef int (*spec_parse_fn)(const struct spec_ctx *ctx, const char *rest,
                             struct dl_node **ret, const char **ret_inner,
                             char **ret_msg);

struct spec_kind {
    const char *name;
    spec_parse_fn parse;
    bool layer; /* a layer kind (not a whole disk) */
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

/* A new node of driver drv for a part written as kind. */
static int new_part(const char *drv, const char *kind, struct dl_node **ret,
                    char **ret_msg)
{
    if (!dl_find_driver(drv)) {
        dl_msg(ret_msg, "%s: this build has no %s driver", kind, drv);
        return -EOPNOTSUPP;
    }
    return dl_node_new(dl_find_driver(drv), ret);
}

/* A part of a driver with a path: "PATH{;OPT}" (the path runs to the
 * first ';'). */
static int parse_path_part(const char *drv, const char *kind,
                           const char *rest, size_t len,
                           struct dl_node **ret, char **ret_msg)
{
    _cleanup_free_ char *copy = strndup(rest, len);
    struct dl_node *n = NULL;
    char *semi;
    int r;

    if (!copy)
        return -ENOMEM;
    semi = strchr(copy, ';');
    if (semi)
        *semi++ = '\0';
    if (!*copy) {
        dl_msg(ret_msg, "%s: needs a path (%s:PATH)", kind, kind);
        return -EINVAL;
    }
    r = new_part(drv, kind, &n, ret_msg);
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

static int parse_file(const struct spec_ctx *ctx, const char *rest,
                      struct dl_node **ret, const char **ret_inner,
                      char **ret_msg)
{
    return parse_path_part("file", "file", rest, strlen(rest), ret, ret_msg);
}

static int new_ram(struct dl_node **ret)
{
    return dl_node_new(dl_find_driver("ram"), ret);
}

/* mem:SIZE — a ram layer of its own size */
static int parse_mem(const struct spec_ctx *ctx, const char *rest,
                     struct dl_node **ret, const char **ret_inner,
                     char **ret_msg)
{
    struct dl_node *n;
    int r = new_ram(&n);

    if (r < 0)
        return r;
    if (!*rest) {
        dl_msg(ret_msg, "mem: needs a size (mem:SIZE)");
        r = -EINVAL;
    } else {
        r = dl_node_set(n, "size", rest, ret_msg);
    }
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}

/* memdiff:SPEC — a ram layer over SPEC, taking its size */
static int parse_memdiff(const struct spec_ctx *ctx, const char *rest,
                         struct dl_node **ret, const char **ret_inner,
                         char **ret_msg)
{
    *ret_inner = rest;
    return new_ram(ret);
}

/* sql:PATH[;create=SIZE] — an sqlite layer of its own size */
static int parse_sql(const struct spec_ctx *ctx, const char *rest,
                     struct dl_node **ret, const char **ret_inner,
                     char **ret_msg)
{
    _cleanup_free_ char *copy = strdup(rest);
    char *create;

    if (!copy)
        return -ENOMEM;
    /* create=SIZE means: create, with this size */
    create = strstr(copy, ";create=");
    if (create) {
        const char *size = create + strlen(";create=");
        _cleanup_free_ char *opts = NULL;

        if (asprintf(&opts, "%.*s;create;size=%s", (int)(create - copy), copy,
                     size) < 0)
            return -ENOMEM;
        return parse_path_part("sqlite", "sql", opts, strlen(opts), ret,
                               ret_msg);
    }
    if (strstr(copy, ";create")) {
        dl_msg(ret_msg, "sql: create needs a size (sql:PATH;create=SIZE); "
                        "sqldiff: takes the size from below");
        return -EINVAL;
    }
    return parse_path_part("sqlite", "sql", copy, strlen(copy), ret, ret_msg);
}

/* sqldiff:PATH[;create]:SPEC — an sqlite layer over SPEC */
static int parse_sqldiff(const struct spec_ctx *ctx, const char *rest,
                         struct dl_node **ret, const char **ret_inner,
                         char **ret_msg)
{
    const char *colon = strchr(rest, ':');

    if (!colon) {
        dl_msg(ret_msg, "sqldiff: needs the disk below "
                        "(sqldiff:PATH[;create]:SPEC)");
        return -EINVAL;
    }
    *ret_inner = colon + 1;
    return parse_path_part("sqlite", "sqldiff", rest, (size_t)(colon - rest),
                           ret, ret_msg);
}

/* autocache:[KEY]:SPEC — a read cache in CACHE_DIR/KEY.db over SPEC */
static int parse_autocache(const struct spec_ctx *ctx, const char *rest,
                           struct dl_node **ret, const char **ret_inner,
                           char **ret_msg)
{
    const char *colon = strchr(rest, ':');
    _cleanup_free_ char *key = NULL, *path = NULL;
    const char *root = ctx ? ctx->cache_dir : NULL;
    struct dl_node *n;
    int r;

    if (!colon) {
        dl_msg(ret_msg, "autocache: needs the disk below "
                        "(autocache:[KEY]:SPEC)");
        return -EINVAL;
    }
    key = strndup(rest, (size_t)(colon - rest));
    if (!key)
        return -ENOMEM;
    if (!*key) {
        dl_msg(ret_msg, "autocache: needs a KEY here (autocache:KEY:SPEC): "
                        "the key can come from the disk's id only for disks "
                        "that have one, and none of the kinds of this build "
                        "does");
        return -EINVAL;
    }
    if (strchr(key, '/') || key[0] == '.') {
        dl_msg(ret_msg, "autocache: the key '%s' cannot contain '/' or start "
                        "with '.'", key);
        return -EINVAL;
    }
    if (!root || !*root)
        root = getenv("OPENVMM_AUTO_CACHE_PATH");
    if (!root || !*root) {
        dl_msg(ret_msg, "autocache: needs a cache directory: --cache-dir, "
                        "cache_dir in the mount group, or "
                        "OPENVMM_AUTO_CACHE_PATH");
        return -EINVAL;
    }
    if (asprintf(&path, "%s/%s.db", root, key) < 0)
        return -ENOMEM;
    r = parse_path_part("sqlite", "autocache", path, strlen(path), &n,
                        ret_msg);
    if (r < 0)
        return r;
    r = dl_node_set(n, "create", "true", ret_msg);
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    /* filled from below, never written otherwise: use the disk with ,ro */
    n->read_cache = true;
    n->read_only = true;
    *ret = n;
    *ret_inner = colon + 1;
    return 0;
}

static int parse_node(const struct spec_ctx *ctx, const char *spec,
                      struct dl_node **ret, char **ret_msg);

/* A decorator of driver drv over the disk of the spec `inner`. */
static int decorate(const struct spec_ctx *ctx, const char *kind,
                    struct dl_node *n, const char *inner,
                    struct dl_node **ret, char **ret_msg)
{
    struct spec_ctx sub = {.cache_dir = ctx ? ctx->cache_dir : NULL,
                           .depth = (ctx ? ctx->depth : 0) + 1};
    struct dl_node *child = NULL;
    int r;

    if (sub.depth > MAX_DEPTH) {
        dl_msg(ret_msg, "more than %d decorators nested", MAX_DEPTH);
        r = -EINVAL;
    } else {
        r = parse_node(&sub, inner, &child, ret_msg);
        /* named once, by the outermost decorator */
        if (r < 0 && sub.depth == 1)
            dl_msg_prefix(ret_msg, "%s: the disk below", kind);
    }
    if (r == 0)
        r = dl_node_add_child(n, child);
    if (r < 0) {
        dl_node_free(child);
        dl_node_free(n);
        return r;
    }
    *ret = n;
    return 0;
}


/* Split "FIELD:REST" at the first ':' into a copy of FIELD. */
static int split_field(const char *kind, const char *usage, const char *what,
                       const char *rest, char **ret_field,
                       const char **ret_rest, char **ret_msg)
{
    const char *colon = strchr(rest, ':');

    if (!colon) {
        dl_msg(ret_msg, "%s: needs %s (%s)", kind, what, usage);
        return -EINVAL;
    }
    *ret_field = strndup(rest, (size_t)(colon - rest));
    if (!*ret_field)
        return -ENOMEM;
    *ret_rest = colon + 1;
    return 0;
}

/* crypt:CIPHER:KEYFILE:SPEC — encryption over SPEC */
static int parse_crypt(const struct spec_ctx *ctx, const char *rest,
                       struct dl_node **ret, const char **ret_inner,
                       char **ret_msg)
{
    static const char usage[] = "crypt:xts-aes-256:KEYFILE:SPEC";
    _cleanup_free_ char *cipher = NULL, *key = NULL;
    struct dl_node *n;
    int r;

    r = split_field("crypt", usage, "a cipher", rest, &cipher, &rest, ret_msg);
    if (r == 0)
        r = split_field("crypt", usage, "a key file and the disk below", rest,
                        &key, &rest, ret_msg);
    if (r < 0)
        return r;
    if (!*key) {
        dl_msg(ret_msg, "crypt: needs a key file (%s)", usage);
        return -EINVAL;
    }
    r = new_part("crypt", "crypt", &n, ret_msg);
    if (r < 0)
        return r;
    r = dl_node_set(n, "cipher", cipher, ret_msg);
    if (r < 0)
        dl_msg_prefix(ret_msg, "crypt: cipher '%s'", cipher);
    if (r == 0) {
        r = dl_node_set(n, "key_file", key, ret_msg);
        if (r < 0)
            dl_msg_prefix(ret_msg, "crypt: key file");
    }
    if (r < 0) {
        dl_node_free(n);
        return r;
    }
    return decorate(ctx, "crypt", n, rest, ret, ret_msg);
}

/* delay:MS:SPEC — reads and writes delayed by MS milliseconds */
static int parse_delay(const struct spec_ctx *ctx, const char *rest,
                       struct dl_node **ret, const char **ret_inner,
                       char **ret_msg)
{
    _cleanup_free_ char *ms = NULL, *text = NULL;
    struct dl_node *n;
    uint64_t v;
    int r;

    r = split_field("delay", "delay:MS:SPEC", "a delay and the disk below",
                    rest, &ms, &rest, ret_msg);
    if (r < 0)
        return r;
    if (dl_parse_u64(ms, &v) < 0 || v > 3600000) {
        dl_msg(ret_msg, "delay: '%s' must be a whole number of milliseconds "
                        "(0-3600000)", ms);
        return -EINVAL;
    }
    if (asprintf(&text, "%" PRIu64 "ms", v) < 0)
        return -ENOMEM;
    r = new_part("delay", "delay", &n, ret_msg);
    if (r < 0)
        return r;
    r = dl_node_set(n, "read", text, ret_msg);
    if (r == 0)
        r = dl_node_set(n, "write", text, ret_msg);
    if (r < 0) {
        dl_msg_prefix(ret_msg, "delay");
        dl_node_free(n);
        return r;
    }
    return decorate(ctx, "delay", n, rest, ret, ret_msg);
}

/* prwrap:SPEC — persistent reservations emulated over SPEC */
static int parse_prwrap(const struct spec_ctx *ctx, const char *rest,
                        struct dl_node **ret, const char **ret_inner,
                        char **ret_msg)
{
    struct dl_node *n;
    int r = new_part("pr", "prwrap", &n, ret_msg);

    if (r < 0)
        return r;
    return decorate(ctx, "prwrap", n, rest, ret, ret_msg);
}

static const struct spec_kind kinds[] = {
    {"file", parse_file, false},
    {"mem", parse_mem, true},
    {"memdiff", parse_memdiff, true},
    {"sql", parse_sql, true},
    {"sqldiff", parse_sqldiff, true},
    {"autocache", parse_autocache, true},
    {"crypt", parse_crypt, false},
    {"delay", parse_delay, false},
    {"prwrap", parse_prwrap, false},
};

const char *const *conf_spec_kinds(void)
{
    static const char *const names[] = {
        "file", "mem",   "memdiff", "sql",    "sqldiff",
        "autocache", "crypt", "delay", "prwrap", NULL};

    return names;
}

static bool rooted(const char *s)
{
    return s[0] == '/' || strncmp(s, "./", 2) == 0 ||
           strncmp(s, "../", 3) == 0;
}

/* One part of a spec; *ret_inner is set when a layer kind goes on. */
static int parse_part(const struct spec_ctx *ctx, const char *spec,
                      struct dl_node **ret, const char **ret_inner,
                      bool *ret_layer, char **ret_msg)
{
    const char *colon = strchr(spec, ':');
    size_t klen;

    *ret_inner = NULL;
    *ret_layer = false;
    if (!*spec) {
        dl_msg(ret_msg, "is empty: a spec is KIND:... or a path");
        return -EINVAL;
    }
    if (!colon)
        return parse_file(ctx, spec, ret, ret_inner, ret_msg);
    klen = (size_t)(colon - spec);
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        if (strlen(kinds[i].name) == klen &&
            strncmp(kinds[i].name, spec, klen) == 0) {
            *ret_layer = kinds[i].layer;
            return kinds[i].parse(ctx, colon + 1, ret, ret_inner, ret_msg);
        }
    }
    if (rooted(spec))
        return parse_file(ctx, spec, ret, ret_inner, ret_msg);
    dl_msg(ret_msg, "unknown disk kind '%.*s' (known: file, mem, memdiff, sql, "
           "sqldiff, autocache, crypt, delay, prwrap; a path with a ':' must "
           "start with /, ./ or ../)",
           (int)klen, spec);
    return -EINVAL;
}

#define MAX_PARTS 64

static int parse_node(const struct spec_ctx *ctx, const char *spec,
                      struct dl_node **ret, char **ret_msg)
{
    struct dl_node *parts[MAX_PARTS];
    size_t n = 0;
    bool layer = false;
    int r = 0;

    for (const char *s = spec; s && r == 0;) {
        const char *inner;

        if (n == MAX_PARTS) {
            dl_msg(ret_msg, "more than %d layers", MAX_PARTS);
            r = -EINVAL;
            break;
        }
        r = parse_part(ctx, s, &parts[n], &inner, &layer, ret_msg);
        if (r < 0)
            break;
        n++;
        s = inner;
    }
    if (r == 0 && n == 1 && !layer) {
        *ret = parts[0]; /* one whole disk */
        return 0;
    }
    if (r == 0) {
        struct dl_node *l;

        r = dl_node_new(dl_find_driver("layered"), &l);
        for (size_t i = 0; r == 0 && i < n; i++) {
            r = dl_node_add_child(l, parts[i]);
            if (r == 0)
                parts[i] = NULL;
        }
        if (r == 0) {
            *ret = l;
            return 0;
        }
        dl_node_free(l);
    }
    for (size_t i = 0; i < n; i++)
        dl_node_free(parts[i]);
    return r;
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
                    const char *cache_dir, struct dl_node **ret,
                    char **ret_msg)
{
    const struct spec_ctx ctx = {.cache_dir = cache_dir};
    struct dl_node *n = NULL;
    int r;

    r = parse_node(&ctx, spec, &n, ret_msg);
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

int conf_parse_layerspec(const char *spec, struct dl_node **ret,
                         char **ret_msg)
{
    struct dl_node *n;
    int r;

    if (strcmp(spec, "mem") == 0)
        return new_ram(ret);
    if (strncmp(spec, "sql:", 4) != 0) {
        dl_msg(ret_msg, "a snapshot layer is mem or sql:PATH;create");
        return -EINVAL;
    }
    if (spec[4] != '/') {
        dl_msg(ret_msg, "the path of a snapshot layer must be absolute");
        return -EINVAL;
    }
    r = parse_path_part("sqlite", "sql", spec + 4, strlen(spec + 4), &n,
                        ret_msg);
    if (r < 0)
        return r;
    {
        size_t np;
        const struct dl_param *p = dl_driver_params(n->drv, &np);

        /* only create: size and sector size come from below */
        for (size_t i = 0; i < np; i++) {
            if (n->v[i].set && strcmp(p[i].name, "path") &&
                strcmp(p[i].name, "create")) {
                dl_msg(ret_msg, "a snapshot layer takes its %s from below",
                       p[i].name);
                dl_node_free(n);
                return -EINVAL;
            }
        }
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
    r = conf_parse_spec(spec, where, NULL, c->mount.cache_dir, &disk.stack,
                        &msg);
    if (r < 0) {
        conf_diag_add(diag, "%s: '%s': %s", where, spec,
                      msg ? msg : strerror(-r));
        return r;
    }
    disk.name = strdup(copy);
    disk.where = TAKE_PTR(where);
    return conf_append_disk(c, &disk);
}
