/* Control commands: splitting a write into words, and the grammar of each
 * control file's commands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "disklib/util.h"
#include "fs/ctlcmd.h"

int ctl_split(const char *data, size_t len, struct ctl_args *ret,
              char **ret_msg)
{
    struct ctl_args a = {0};
    char *out;
    bool in_word = false, quoted = false;

    if (len && data[len - 1] == '\n')
        len--;
    if (len > CTL_MAX_LEN) {
        dl_msg(ret_msg, "a command is at most %u bytes", CTL_MAX_LEN);
        return -EINVAL;
    }
    if (memchr(data, '\n', len)) {
        dl_msg(ret_msg, "one command per write: found a newline inside");
        return -EINVAL;
    }
    if (memchr(data, '\0', len)) {
        dl_msg(ret_msg, "a command cannot contain a NUL byte");
        return -EINVAL;
    }
    a.buf = malloc(len + 1);
    if (!a.buf)
        return -ENOMEM;
    out = a.buf;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];

        if (!quoted && (c == ' ' || c == '\t')) {
            if (in_word) {
                *out++ = '\0';
                in_word = false;
            }
            continue;
        }
        if (!in_word) {
            if (a.argc == CTL_MAX_ARGS) {
                dl_msg(ret_msg, "too many words (at most %d)", CTL_MAX_ARGS);
                goto fail;
            }
            a.argv[a.argc++] = out;
            in_word = true;
        }
        if (c == '"') {
            quoted = !quoted;
            continue;
        }
        if (c == '\\') {
            if (++i == len) {
                dl_msg(ret_msg, "a backslash at the end escapes nothing");
                goto fail;
            }
            c = data[i];
        }
        *out++ = c;
    }
    if (quoted) {
        dl_msg(ret_msg, "unterminated double quote");
        goto fail;
    }
    *out = '\0';
    if (a.argc == 0) {
        dl_msg(ret_msg, "empty command");
        goto fail;
    }
    *ret = a;
    return 0;
fail:
    free(a.buf);
    return -EINVAL;
}

void ctl_args_free(struct ctl_args *a)
{
    free(a->buf);
    a->buf = NULL;
    a->argc = 0;
}

static int parse_size_word(const char *w, uint64_t *ret, char **ret_msg)
{
    int r = dl_parse_size(w, ret);

    if (r == -ERANGE)
        dl_msg(ret_msg, "size '%s' is too large", w);
    else if (r < 0)
        dl_msg(ret_msg, "'%s' is not a size (DIGITS[K|M|G|T], binary units)",
               w);
    return r < 0 ? -EINVAL : 0;
}

int ctl_parse_size(const struct ctl_args *a, struct ctl_size_cmd *ret,
                   char **ret_msg)
{
    struct ctl_size_cmd c;
    int r;

    if (a->argc == 2 && strcmp(a->argv[0], "shrink") == 0) {
        c.op = CTL_SIZE_SHRINK;
        r = parse_size_word(a->argv[1], &c.size, ret_msg);
    } else if (a->argc == 1 && a->argv[0][0] == '+') {
        c.op = CTL_SIZE_GROW;
        r = parse_size_word(a->argv[0] + 1, &c.size, ret_msg);
    } else if (a->argc == 1) {
        c.op = CTL_SIZE_SET;
        r = parse_size_word(a->argv[0], &c.size, ret_msg);
    } else {
        dl_msg(ret_msg, "expected SIZE, +SIZE or shrink SIZE");
        return -EINVAL;
    }
    if (r < 0)
        return r;
    *ret = c;
    return 0;
}

int ctl_parse_snapshot(const struct ctl_args *a, struct ctl_snapshot_cmd *ret,
                       char **ret_msg)
{
    const char *w = a->argv[0];

    if (strcmp(w, "snapshot") == 0 && a->argc <= 2) {
        ret->op = CTL_SNAPSHOT_PUSH;
        ret->layer = a->argc == 2 ? a->argv[1] : "mem";
        return 0;
    }
    if (strcmp(w, "commit") == 0 && a->argc == 1) {
        ret->op = CTL_SNAPSHOT_COMMIT;
        ret->layer = NULL;
        return 0;
    }
    if (strcmp(w, "revert") == 0 && a->argc == 1) {
        ret->op = CTL_SNAPSHOT_REVERT;
        ret->layer = NULL;
        return 0;
    }
    dl_msg(ret_msg, "expected snapshot [mem|sql:PATH;create], commit or "
                    "revert");
    return -EINVAL;
}

static const char *const pr_type_names[] = {
    NULL, "we", "ea", "we-ro", "ea-ro", "we-ar", "ea-ar",
};

const char *ctl_pr_type_name(unsigned type)
{
    return type >= 1 && type < ARRAY_SIZE(pr_type_names)
               ? pr_type_names[type]
               : NULL;
}

static int parse_pr_key(const char *w, uint64_t *ret, char **ret_msg)
{
    const char *p = w;
    uint64_t v = 0;
    unsigned base = 10;

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (!*p)
        goto bad;
    for (; *p; p++) {
        unsigned dg;

        if (*p >= '0' && *p <= '9')
            dg = (unsigned)(*p - '0');
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            dg = (unsigned)(*p - 'a' + 10);
        else if (base == 16 && *p >= 'A' && *p <= 'F')
            dg = (unsigned)(*p - 'A' + 10);
        else
            goto bad;
        if (v > (UINT64_MAX - dg) / base) {
            dl_msg(ret_msg, "key '%s' does not fit 64 bits", w);
            return -EINVAL;
        }
        v = v * base + dg;
    }
    *ret = v;
    return 0;
bad:
    dl_msg(ret_msg, "'%s' is not a key (decimal, or hex with 0x)", w);
    return -EINVAL;
}

static int parse_pr_type(const char *w, unsigned *ret, char **ret_msg)
{
    for (unsigned t = 1; t < ARRAY_SIZE(pr_type_names); t++) {
        if (strcmp(w, pr_type_names[t]) == 0 ||
            (w[0] == (char)('0' + t) && w[1] == '\0')) {
            *ret = t;
            return 0;
        }
    }
    dl_msg(ret_msg, "'%s' is not a reservation type (we, ea, we-ro, ea-ro, "
                    "we-ar, ea-ar, or 1-6)", w);
    return -EINVAL;
}

int ctl_parse_pr(const struct ctl_args *a, struct ctl_pr_cmd *ret,
                 char **ret_msg)
{
    static const struct {
        const char *word;
        enum ctl_pr_op op;
        int nkeys;
        bool type, ignore_key, abort, unregister;
        const char *usage;
    } cmds[] = {
        {"register", CTL_PR_REGISTER, 2, false, false, false, false,
         "register OLDKEY NEWKEY"},
        {"register-ignore", CTL_PR_REGISTER, 1, false, true, false, false,
         "register-ignore NEWKEY"},
        {"unregister", CTL_PR_REGISTER, 1, false, false, false, true,
         "unregister KEY"},
        {"reserve", CTL_PR_RESERVE, 1, true, false, false, false,
         "reserve KEY TYPE"},
        {"release", CTL_PR_RELEASE, 1, true, false, false, false,
         "release KEY TYPE"},
        {"clear", CTL_PR_CLEAR, 1, false, false, false, false, "clear KEY"},
        {"preempt", CTL_PR_PREEMPT, 2, true, false, false, false,
         "preempt KEY VICTIMKEY TYPE"},
        {"preempt-abort", CTL_PR_PREEMPT, 2, true, false, true, false,
         "preempt-abort KEY VICTIMKEY TYPE"},
    };
    struct ctl_pr_cmd c = {.who = "ctl"};
    int i = 0, r;

    if (a->argc >= 2 && strcmp(a->argv[0], "as") == 0) {
        const char *w = a->argv[1];

        if (!*w || strlen(w) > CTL_PR_MAX_NAME) {
            dl_msg(ret_msg, "an initiator name has 1-%d characters",
                   CTL_PR_MAX_NAME);
            return -EINVAL;
        }
        for (const char *p = w; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                  *p == '.' || *p == ':')) {
                dl_msg(ret_msg, "initiator name '%s': letters, digits and "
                                "- _ . : only", w);
                return -EINVAL;
            }
        }
        c.who = w;
        i = 2;
    }
    if (i >= a->argc) {
        dl_msg(ret_msg, "expected [as NAME] register, register-ignore, "
                        "unregister, reserve, release, clear, preempt or "
                        "preempt-abort");
        return -EINVAL;
    }
    for (size_t k = 0; k < ARRAY_SIZE(cmds); k++) {
        int want = cmds[k].nkeys + (cmds[k].type ? 1 : 0);

        if (strcmp(a->argv[i], cmds[k].word) != 0)
            continue;
        if (a->argc - i - 1 != want) {
            dl_msg(ret_msg, "usage: [as NAME] %s", cmds[k].usage);
            return -EINVAL;
        }
        c.op = cmds[k].op;
        c.ignore_key = cmds[k].ignore_key;
        c.abort = cmds[k].abort;
        r = parse_pr_key(a->argv[i + 1], &c.key, ret_msg);
        if (r == 0 && cmds[k].nkeys == 2)
            r = parse_pr_key(a->argv[i + 2], &c.key2, ret_msg);
        if (r == 0 && cmds[k].type)
            r = parse_pr_type(a->argv[i + 1 + cmds[k].nkeys], &c.type,
                              ret_msg);
        if (r < 0)
            return r;
        if (cmds[k].unregister) {
            c.key2 = 0;
        } else if (cmds[k].ignore_key) {
            c.key2 = c.key;
            c.key = 0;
        }
        *ret = c;
        return 0;
    }
    dl_msg(ret_msg, "unknown command '%s' (register, register-ignore, "
                    "unregister, reserve, release, clear, preempt, "
                    "preempt-abort)", a->argv[i]);
    return -EINVAL;
}
