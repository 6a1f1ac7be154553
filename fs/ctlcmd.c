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
