/* diskstack: the program. Subcommands in the manner of qemu-img; each
 * reports its errors once, here.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage or configuration
 * error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "conf/conf.h"
#include "disklib/disklib.h"
#include "disklib/util.h"
#include "fs/fuse_binding.h"
#include "fs/log.h"
#include "fs/mount.h"
#include "fs/mountpoint.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static const char usage_main[] =
    "Usage: diskstack COMMAND [OPTIONS]\n"
    "\n"
    "Serve disk stacks as image files in a FUSE mount.\n"
    "\n"
    "Commands:\n"
    "  mount   mount the configured disks (the daemon)\n"
    "  check   validate a configuration and print it resolved\n"
    "  info    open a stack read-only and describe it\n"
    "  ctl     send a command to a control file of a mount\n"
    "  create  make a new empty image (raw, sqlite)\n"
    "\n"
    "  diskstack COMMAND --help    help on a command\n"
    "  diskstack --version         the version\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration "
    "error.\n";

static const char usage_mount[] =
    "Usage: diskstack mount [OPTIONS] MOUNTPOINT\n"
    "\n"
    "Mount every configured disk as an image file in MOUNTPOINT, with\n"
    "control files in MOUNTPOINT/.ctl/. Every stack is opened (and created\n"
    "where it says create=) before the mount appears.\n"
    "\n"
    "  -c, --config FILE      configuration file\n"
    "      --disk NAME=SPEC   a disk from a spec (repeatable), e.g.\n"
    "                         --disk os.img=file:os.raw;direct\n"
    "  -f, --foreground       stay in the foreground (log to stderr)\n"
    "  -d, --debug            trace FUSE requests (implies -f)\n"
    "  -D, --log CAT[=LEVEL]  debug logging per category (core, file, mount,\n"
    "                         ctl, fuse, all); LEVEL 1 messages (default),\n"
    "                         2 also a line for every request of every part\n"
    "  -o OPTIONS             FUSE mount options, comma separated\n"
    "      --allow-other      let other users use the mount (with\n"
    "                         default_permissions)\n"
    "      --threads N        FUSE worker threads (default 16)\n"
    "      --state FILE       record snapshots in FILE and come back with\n"
    "                         them after a restart\n"
    "      --cache-dir DIR    where autocache: layers live (else the\n"
    "                         configuration's cache_dir, else\n"
    "                         OPENVMM_AUTO_CACHE_PATH)\n"
    "  -h, --help             this help\n"
    "\n"
    "At least one of -c and --disk. SIGINT, SIGTERM and fusermount3 -u stop\n"
    "the daemon cleanly: requests drain, every disk is flushed, exit 0.\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration "
    "error.\n";

static const char usage_check[] =
    "Usage: diskstack check [-c CONFIG] [--disk NAME=SPEC]... [--state FILE]\n"
    "                       [--cache-dir DIR]\n"
    "\n"
    "Validate a configuration in both phases (the text, then every part\n"
    "opened read-only, nothing created, nothing mounted) and print the\n"
    "resolved stacks in the expanded configuration form. The output is a\n"
    "configuration that checks to the same output.\n"
    "\n"
    "Exit codes: 0 valid, 1 runtime failure, 2 usage or configuration "
    "error.\n";

static const char usage_info[] =
    "Usage: diskstack info SPEC\n"
    "\n"
    "Open the stack of SPEC (e.g. file:disk.img, or a path) read-only and\n"
    "print its size, sector sizes, flags, allocation and parts.\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration "
    "error.\n";

static const char usage_create[] =
    "Usage: diskstack create [--sector N] KIND PATH SIZE\n"
    "\n"
    "Make a new, empty image of SIZE bytes (8G, 512M, ...) at PATH, which\n"
    "must not exist. KIND: raw (a sparse raw file) or sqlite (an sqlite\n"
    "layer database, for sql: and sqldiff:). --sector gives the logical\n"
    "sector size (512 or 4096; default 512).\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error.\n";

static const char usage_ctl[] =
    "Usage: diskstack ctl MOUNTPOINT DISK FILE [COMMAND...]\n"
    "\n"
    "Write COMMAND to MOUNTPOINT/.ctl/DISK/FILE; on failure print the\n"
    "reason the mount gives and exit 1. Without COMMAND, print the file.\n"
    "DISK '-' names MOUNTPOINT/.ctl/ itself (for example '- disks').\n"
    "\n"
    "  diskstack ctl /mnt os.img size +1G\n"
    "  diskstack ctl /mnt os.img size shrink 4G\n"
    "  diskstack ctl /mnt - disks\n"
    "\n"
    "Exit codes: 0 success, 1 the command failed or the file cannot be\n"
    "used, 2 usage error.\n";

/* The drivers and their settings, from the same tables that validate. */
static void print_kinds(FILE *out)
{
    const struct dl_driver *const *drv = dl_drivers();

    fputs("\nParts of a stack (type = \"...\" in a group) and their settings:\n",
          out);
    for (; *drv; drv++) {
        size_t n;
        const struct dl_param *p = dl_driver_params(*drv, &n);

        fprintf(out, "  %s: %s\n", dl_driver_name(*drv),
                dl_driver_summary(*drv));
        for (size_t i = 0; i < n; i++) {
            char rule[256];

            fprintf(out, "    %-10s %s", p[i].name, p[i].help);
            if (p[i].required)
                fputs(" (required)", out);
            else if (p[i].def)
                fprintf(out, " (default %s)", p[i].def);
            fprintf(out, "; %s\n", dl_param_rule(&p[i], rule, sizeof(rule)));
        }
    }
}

static void print_diag(const struct conf_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(stderr, "diskstack: %s\n", d->msg[i]);
}

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;

    fputs("diskstack: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage, stderr);
    return EXIT_USAGE;
}

/* Options shared by mount and check: -c, --disk, --state, --cache-dir. */
struct config_args {
    const char *config;
    const char **disks;
    size_t ndisks;
    const char *state;
    const char *cache_dir;
};

static int add_disk_arg(struct config_args *a, const char *arg)
{
    const char **d = realloc(a->disks, (a->ndisks + 1) * sizeof(*d));

    if (!d)
        return -ENOMEM;
    a->disks = d;
    a->disks[a->ndisks++] = arg;
    return 0;
}

/* Phase one: read and check the text. Exit code or 0. */
static int load_config(const struct config_args *a, struct conf *c)
{
    struct conf_diag diag = {0};

    conf_init(c);
    if (a->cache_dir) {
        c->mount.cache_dir = realpath(a->cache_dir, NULL);
        if (!c->mount.cache_dir)
            conf_diag_add(&diag, "command line: --cache-dir '%s': %s",
                          a->cache_dir, strerror(errno));
    }
    if (a->config)
        conf_load_file(c, a->config, &diag);
    for (size_t i = 0; i < a->ndisks; i++)
        conf_add_disk_arg(c, a->disks[i], &diag);
    if (diag.n == 0 && a->state)
        fs_state_apply(c, a->state, &diag);
    if (diag.n == 0)
        conf_validate(c, &diag);
    if (diag.n) {
        print_diag(&diag);
        conf_diag_clear(&diag);
        conf_free(c);
        return EXIT_USAGE;
    }
    return 0;
}

/* path made absolute against the current directory (the daemon moves to
 * / when it detaches) */
static char *absolute(const char *path)
{
    char *r, *cwd;

    if (path[0] == '/')
        return strdup(path);
    cwd = getcwd(NULL, 0);
    if (!cwd || asprintf(&r, "%s/%s", cwd, path) < 0)
        r = NULL;
    free(cwd);
    return r;
}

static int exit_code_for(int r)
{
    /* errors of the environment, not of what the configuration says */
    return r == -EIO || r == -ENOMEM || r == -EAGAIN || r == -EINTR
               ? EXIT_RUNTIME
               : EXIT_USAGE;
}

static int parse_debug(struct dl_ctx *ctx, const char *arg)
{
    _cleanup_free_ char *cat = strdup(arg);
    char *eq;
    uint64_t level = 1;

    if (!cat)
        return -ENOMEM;
    eq = strchr(cat, '=');
    if (eq) {
        *eq = '\0';
        if (dl_parse_u64(eq + 1, &level) < 0 || level > 2)
            return -EINVAL;
    }
    return dl_ctx_set_debug(ctx, cat, (int)level);
}

struct mounted_info {
    struct fs_log *log;
    bool foreground;
    const char *mountpoint;
    struct fs_mount *m;
};

static void on_mounted(void *opaque)
{
    struct mounted_info *mi = opaque;

    mi->log->syslog = !mi->foreground;
    for (size_t i = 0; i < mi->m->ndisks; i++)
        dl_log(mi->m->ctx, LOG_INFO, "mount", "%s/%s: %" PRIu64 " bytes%s",
               mi->mountpoint, mi->m->disks[i]->name,
               dl_size(mi->m->disks[i]->disk),
               dl_read_only(mi->m->disks[i]->disk) ? ", read-only" : "");
    dl_log(mi->m->ctx, LOG_INFO, "mount",
           "mounted %zu disk%s at %s; stop with Ctrl-C, kill -TERM %ld or "
           "fusermount3 -u %s", mi->m->ndisks, mi->m->ndisks == 1 ? "" : "s",
           mi->mountpoint, (long)getpid(), mi->mountpoint);
}

static int cmd_mount(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"disk", required_argument, NULL, 'k'},
        {"foreground", no_argument, NULL, 'f'},
        {"debug", no_argument, NULL, 'd'},
        {"log", required_argument, NULL, 'D'},
        {"allow-other", no_argument, NULL, 'a'},
        {"threads", required_argument, NULL, 't'},
        {"state", required_argument, NULL, 's'},
        {"cache-dir", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct config_args ca = {0};
    struct fs_run_opts ro = {0};
    struct fs_log log = {0};
    struct mounted_info mi = {.log = &log};
    struct dl_ctx *ctx = NULL;
    struct fs_mount *m = NULL;
    struct conf c;
    _cleanup_free_ char *msg = NULL, *mountpoint = NULL, *state = NULL;
    const char **debug = NULL;
    size_t ndebug = 0;
    uint64_t threads = 0;
    int opt, r, code = 0;

    while ((opt = getopt_long(argc, argv, "+c:fdD:o:h", longopts, NULL)) !=
           -1) {
        switch (opt) {
        case 'c':
            ca.config = optarg;
            break;
        case 'k':
            if (add_disk_arg(&ca, optarg) < 0)
                return EXIT_RUNTIME;
            break;
        case 'f':
            ro.foreground = true;
            break;
        case 'd':
            ro.debug = ro.foreground = true;
            break;
        case 'D': {
            const char **d = realloc(debug, (ndebug + 1) * sizeof(*d));

            if (!d)
                return EXIT_RUNTIME;
            debug = d;
            debug[ndebug++] = optarg;
            break;
        }
        case 'o':
            ro.fuse_opts = optarg;
            break;
        case 's':
            ca.state = optarg;
            break;
        case 'C':
            ca.cache_dir = optarg;
            break;
        case 'a':
            ro.allow_other = true;
            break;
        case 't':
            if (dl_parse_u64(optarg, &threads) < 0 || threads < 1 ||
                threads > 256) {
                free(debug);
                free(ca.disks);
                return usage_error(usage_mount,
                                   "--threads takes a number from 1 to 256");
            }
            break;
        case 'h':
            fputs(usage_mount, stdout);
            free(debug);
            free(ca.disks);
            return 0;
        default:
            free(debug);
            free(ca.disks);
            fputs(usage_mount, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || (!ca.config && !ca.ndisks)) {
        free(debug);
        free(ca.disks);
        return usage_error(usage_mount, optind + 1 != argc
                                            ? "mount takes one MOUNTPOINT"
                                            : "mount needs -c CONFIG or "
                                              "--disk NAME=SPEC");
    }
    mountpoint = realpath(argv[optind], NULL);
    if (!mountpoint) {
        fprintf(stderr, "diskstack: mount point %s: %s\n", argv[optind],
                strerror(errno));
        free(debug);
        free(ca.disks);
        return EXIT_RUNTIME;
    }
    ro.mountpoint = mountpoint;

    code = load_config(&ca, &c);
    free(ca.disks);
    if (code) {
        free(debug);
        return code;
    }
    if (dl_ctx_new(&ctx) < 0) {
        code = EXIT_RUNTIME;
        goto out;
    }
    dl_ctx_set_log(ctx, fs_log_sink, &log);
    for (size_t i = 0; i < ndebug; i++) {
        if (parse_debug(ctx, debug[i]) < 0) {
            code = usage_error(usage_mount, "bad -D '%s' (CATEGORY[=1|2])",
                               debug[i]);
            goto out;
        }
    }
    ro.threads = threads ? (unsigned)threads : c.mount.threads;
    ro.allow_other = ro.allow_other || c.mount.allow_other;

    r = fs_prepare_mountpoint(ro.mountpoint, &msg);
    if (r < 0) {
        fprintf(stderr, "diskstack: %s\n", msg);
        code = EXIT_RUNTIME;
        goto out;
    }
    if (ca.state && !(state = absolute(ca.state))) {
        code = EXIT_RUNTIME;
        goto out;
    }
    r = fs_mount_new(ctx, &c, state, &m, &msg);
    if (r < 0) {
        fprintf(stderr, "diskstack: %s\n", msg ? msg : strerror(-r));
        code = exit_code_for(r);
        goto out;
    }
    m->allow_other = ro.allow_other;
    mi.foreground = ro.foreground;
    mi.mountpoint = ro.mountpoint;
    mi.m = m;
    ro.on_mounted = on_mounted;
    ro.opaque = &mi;
    r = fs_fuse_run(m, &ro, &msg);
    if (r < 0) {
        dl_log(ctx, LOG_ERR, "mount", "%s", msg ? msg : strerror(-r));
        code = EXIT_RUNTIME;
    }
    if (fs_mount_flush_all(m) < 0)
        code = EXIT_RUNTIME;
    if (code == 0)
        dl_log(ctx, LOG_INFO, "mount", "unmounted %s; every disk flushed",
               ro.mountpoint);
out:
    fs_mount_free(m);
    dl_ctx_free(ctx);
    conf_free(&c);
    free(debug);
    return code;
}

static int cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"disk", required_argument, NULL, 'k'},
        {"state", required_argument, NULL, 's'},
        {"cache-dir", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct config_args ca = {0};
    struct dl_ctx *ctx;
    struct conf c;
    int opt, code;
    unsigned bad = 0;

    while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            ca.config = optarg;
            break;
        case 'k':
            if (add_disk_arg(&ca, optarg) < 0)
                return EXIT_RUNTIME;
            break;
        case 's':
            ca.state = optarg;
            break;
        case 'C':
            ca.cache_dir = optarg;
            break;
        case 'h':
            fputs(usage_check, stdout);
            print_kinds(stdout);
            free(ca.disks);
            return 0;
        default:
            free(ca.disks);
            fputs(usage_check, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || (!ca.config && !ca.ndisks)) {
        free(ca.disks);
        return usage_error(usage_check, optind != argc
                                            ? "check takes no operands"
                                            : "check needs -c CONFIG or "
                                              "--disk NAME=SPEC");
    }
    code = load_config(&ca, &c);
    free(ca.disks);
    if (code)
        return code;
    if (dl_ctx_new(&ctx) < 0) {
        conf_free(&c);
        return EXIT_RUNTIME;
    }
    dl_ctx_set_log(ctx, fs_log_sink, NULL);
    /* phase two: open every part read-only, create nothing */
    for (size_t i = 0; i < c.ndisks; i++) {
        struct dl_disk *d = NULL;
        char *msg = NULL;
        int r = dl_open(ctx, c.disks[i].stack,
                        DL_OPEN_DRY_RUN |
                            (c.disks[i].read_only ? DL_OPEN_RDONLY : 0),
                        &d, &msg);

        if (r < 0) {
            fprintf(stderr, "diskstack: disk '%s': %s\n", c.disks[i].name,
                    msg ? msg : strerror(-r));
            if (exit_code_for(r) == EXIT_RUNTIME)
                code = EXIT_RUNTIME;
            bad++;
        }
        free(msg);
        dl_close(d);
    }
    if (bad) {
        if (!code)
            code = EXIT_USAGE;
    } else {
        conf_dump(&c, stdout);
    }
    dl_ctx_free(ctx);
    conf_free(&c);
    return code;
}

static int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *msg = NULL;
    struct dl_node *n = NULL;
    struct dl_disk *d = NULL;
    struct dl_ctx *ctx = NULL;
    uint64_t alloc = 0, size;
    char a[24];
    int opt, r, code = 0;

    while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_info, stdout);
            print_kinds(stdout);
            return 0;
        }
        fputs(usage_info, stderr);
        return EXIT_USAGE;
    }
    if (optind + 1 != argc)
        return usage_error(usage_info, "info takes one SPEC");
    r = conf_parse_spec(argv[optind], NULL, NULL, NULL, &n, &msg);
    if (r == 0)
        r = dl_node_validate(n, &msg);
    if (r < 0) {
        fprintf(stderr, "diskstack: '%s': %s\n", argv[optind],
                msg ? msg : strerror(-r));
        dl_node_free(n);
        return EXIT_USAGE;
    }
    if (dl_ctx_new(&ctx) < 0) {
        dl_node_free(n);
        return EXIT_RUNTIME;
    }
    dl_ctx_set_log(ctx, fs_log_sink, NULL);
    r = dl_open(ctx, n, DL_OPEN_RDONLY, &d, &msg);
    if (r < 0) {
        fprintf(stderr, "diskstack: %s\n", msg ? msg : strerror(-r));
        code = exit_code_for(r);
        goto out;
    }
    size = dl_size(d);
    r = dl_allocated(d, &alloc);
    printf("spec: %s\n", argv[optind]);
    printf("size: %" PRIu64 " (%s)\n", size, dl_format_size(size, a, sizeof(a)));
    printf("sector-size: %" PRIu32 "\n", dl_sector_size(d));
    printf("physical-sector-size: %" PRIu32 "\n", dl_physical_sector_size(d));
    printf("resizable: %s\n", dl_can_resize(d) ? "yes" : "no");
    printf("unmap: %s\n", dl_unmap_behavior_name(dl_unmap_behavior(d)));
    if (r == 0)
        printf("allocated: %" PRIu64 " (%.1f%%)\n", alloc,
               size ? 100.0 * (double)alloc / (double)size : 0.0);
    else
        printf("allocated: unknown (%s)\n", strerror(-r));
    printf("stack (opened read-only):\n");
    dl_describe(d, stdout, 2);
out:
    dl_close(d);
    dl_node_free(n);
    dl_ctx_free(ctx);
    return code;
}

static int cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"sector", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const struct {
        const char *kind, *driver, *create;
    } kinds[] = {
        {"raw", "file", "create"},  /* create=SIZE */
        {"sqlite", "sqlite", NULL}, /* create=true, size=SIZE */
    };
    _cleanup_free_ char *msg = NULL, *path = NULL;
    const char *sector = NULL;
    struct dl_node *n = NULL;
    struct dl_disk *d = NULL;
    struct dl_ctx *ctx = NULL;
    size_t k;
    int opt, r, code = 0;

    while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (opt == 's') {
            sector = optarg;
            continue;
        }
        if (opt == 'h') {
            fputs(usage_create, stdout);
            return 0;
        }
        fputs(usage_create, stderr);
        return EXIT_USAGE;
    }
    if (argc - optind != 3)
        return usage_error(usage_create, "create takes KIND PATH SIZE");
    for (k = 0; k < ARRAY_SIZE(kinds); k++)
        if (strcmp(kinds[k].kind, argv[optind]) == 0)
            break;
    if (k == ARRAY_SIZE(kinds))
        return usage_error(usage_create, "unknown kind '%s' (raw, sqlite)",
                           argv[optind]);
    if (access(argv[optind + 1], F_OK) == 0) {
        fprintf(stderr, "diskstack: %s exists already\n", argv[optind + 1]);
        return EXIT_RUNTIME;
    }
    path = absolute(argv[optind + 1]);
    if (!path || dl_node_new(dl_find_driver(kinds[k].driver), &n) < 0)
        return EXIT_RUNTIME;
    r = dl_node_set(n, "path", path, &msg);
    if (r == 0 && kinds[k].create)
        r = dl_node_set(n, kinds[k].create, argv[optind + 2], &msg);
    if (r == 0 && !kinds[k].create) {
        r = dl_node_set(n, "create", "true", &msg);
        if (r == 0)
            r = dl_node_set(n, "size", argv[optind + 2], &msg);
    }
    if (r == 0 && sector)
        r = dl_node_set(n, "sector", sector, &msg);
    if (r == 0)
        r = dl_node_validate(n, &msg);
    if (r < 0) {
        fprintf(stderr, "diskstack: %s\n", msg ? msg : strerror(-r));
        dl_node_free(n);
        return EXIT_USAGE;
    }
    if (dl_ctx_new(&ctx) < 0) {
        dl_node_free(n);
        return EXIT_RUNTIME;
    }
    dl_ctx_set_log(ctx, fs_log_sink, NULL);
    r = dl_open(ctx, n, 0, &d, &msg);
    if (r == 0)
        r = dl_flush(d, NULL);
    if (r < 0) {
        fprintf(stderr, "diskstack: %s\n", msg ? msg : strerror(-r));
        code = exit_code_for(r);
    } else {
        printf("%s: %s, %" PRIu64 " bytes, %" PRIu32 "-byte sectors\n", path,
               argv[optind], dl_size(d), dl_sector_size(d));
    }
    dl_close(d);
    dl_node_free(n);
    dl_ctx_free(ctx);
    return code;
}

/* Quote a word for the control protocol when it needs it. */
static int append_word(FILE *f, const char *w, bool first)
{
    bool plain = *w && !strpbrk(w, " \t\"\\");

    if (!first)
        fputc(' ', f);
    if (plain)
        return fputs(w, f) < 0 ? -EIO : 0;
    fputc('"', f);
    for (; *w; w++) {
        if (*w == '"' || *w == '\\')
            fputc('\\', f);
        fputc(*w, f);
    }
    fputc('"', f);
    return 0;
}

static int cmd_ctl(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char *path = NULL, *cmd = NULL;
    _cleanup_close_ int fd = -1;
    size_t cmdlen = 0;
    char buf[65536];
    ssize_t n;
    int opt;

    while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_ctl, stdout);
            return 0;
        }
        fputs(usage_ctl, stderr);
        return EXIT_USAGE;
    }
    if (argc - optind < 3)
        return usage_error(usage_ctl, "ctl needs MOUNTPOINT DISK FILE");
    if (strchr(argv[optind + 2], '/'))
        return usage_error(usage_ctl, "FILE is a name inside .ctl/DISK/");
    if (asprintf(&path, "%s/.ctl/%s%s%s", argv[optind],
                 strcmp(argv[optind + 1], "-") ? argv[optind + 1] : "",
                 strcmp(argv[optind + 1], "-") ? "/" : "",
                 argv[optind + 2]) < 0)
        return EXIT_RUNTIME;
    if (!fs_is_mounted(argv[optind])) {
        fprintf(stderr, "diskstack: %s is not mounted\n", argv[optind]);
        return EXIT_RUNTIME;
    }

    if (argc - optind == 3) { /* print the file */
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "diskstack: %s: %s\n", path, strerror(errno));
            return EXIT_RUNTIME;
        }
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
                return EXIT_RUNTIME;
        if (n < 0) {
            fprintf(stderr, "diskstack: %s: %s\n", path, strerror(errno));
            return EXIT_RUNTIME;
        }
        return 0;
    }

    {
        FILE *f = open_memstream(&cmd, &cmdlen);

        if (!f)
            return EXIT_RUNTIME;
        for (int i = optind + 3; i < argc; i++)
            append_word(f, argv[i], i == optind + 3);
        fclose(f);
    }
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "diskstack: %s: %s\n", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    n = write(fd, cmd, cmdlen);
    if (n == (ssize_t)cmdlen)
        return 0;
    if (n >= 0) {
        fprintf(stderr, "diskstack: %s: short write\n", path);
        return EXIT_RUNTIME;
    }
    {
        int e = errno;
        ssize_t got = read(fd, buf, sizeof(buf) - 1);

        if (got > 0) {
            buf[got] = '\0';
            fprintf(stderr, "diskstack: %s: %s", argv[optind + 2], buf);
            if (buf[got - 1] != '\n')
                fputc('\n', stderr);
        } else {
            fprintf(stderr, "diskstack: %s: %s\n", argv[optind + 2],
                    strerror(e));
        }
    }
    return EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"mount", cmd_mount},
        {"check", cmd_check},
        {"info", cmd_info},
        {"ctl", cmd_ctl},
        {"create", cmd_create},
    };

    if (argc < 2)
        return usage_error(usage_main, "no command given");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("diskstack %s\n", DISKSTACK_VERSION);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    return usage_error(usage_main, "unknown command '%s'", argv[1]);
}
