/* Control commands: the text written to a .ctl file, split into words and
 * parsed per file. Pure functions, no I/O (fuzzed in tests/fuzz). */
#ifndef FS_CTLCMD_H
#define FS_CTLCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAX_ARGS 16
#define CTL_MAX_LEN 4096

struct ctl_args {
    int argc;
    char *argv[CTL_MAX_ARGS];
    char *buf; /* the words, NUL-separated; free with ctl_args_free */
};

/* One write(2): strips one trailing newline; an embedded newline, a NUL
 * byte, an empty command, more than CTL_MAX_LEN bytes or CTL_MAX_ARGS
 * words is -EINVAL. Words are separated by blanks; "double quotes" keep
 * blanks, and a backslash escapes the next character. */
int ctl_split(const char *data, size_t len, struct ctl_args *ret,
              char **ret_msg);
void ctl_args_free(struct ctl_args *a);

/* .ctl/NAME/size: "SIZE" (set; smaller than the disk is refused by the
 * caller), "+SIZE" (grow by), "shrink SIZE". */
enum ctl_size_op {
    CTL_SIZE_SET,
    CTL_SIZE_GROW,
    CTL_SIZE_SHRINK,
};
struct ctl_size_cmd {
    enum ctl_size_op op;
    uint64_t size;
};
int ctl_parse_size(const struct ctl_args *a, struct ctl_size_cmd *ret,
                   char **ret_msg);

/* .ctl/NAME/snapshot: "snapshot [LAYERSPEC]" (default mem), "commit",
 * "revert". */
enum ctl_snapshot_op {
    CTL_SNAPSHOT_PUSH,
    CTL_SNAPSHOT_COMMIT,
    CTL_SNAPSHOT_REVERT,
};
struct ctl_snapshot_cmd {
    enum ctl_snapshot_op op;
    const char *layer; /* PUSH: the LAYERSPEC, pointing into the args */
};
int ctl_parse_snapshot(const struct ctl_args *a, struct ctl_snapshot_cmd *ret,
                       char **ret_msg);

/* .ctl/NAME/pr: "[as NAME] COMMAND", COMMAND one of
 *   register OLDKEY NEWKEY     register-ignore NEWKEY     unregister KEY
 *   reserve KEY TYPE   release KEY TYPE   clear KEY
 *   preempt KEY VICTIMKEY TYPE   preempt-abort KEY VICTIMKEY TYPE
 * KEY: decimal or 0x hex, 64 bits. TYPE: we, ea, we-ro, ea-ro, we-ar,
 * ea-ar, or the Linux enum pr_type number 1-6. Without "as", the
 * initiator is "ctl". */
enum ctl_pr_op {
    CTL_PR_REGISTER,
    CTL_PR_RESERVE,
    CTL_PR_RELEASE,
    CTL_PR_CLEAR,
    CTL_PR_PREEMPT,
};
#define CTL_PR_MAX_NAME 63
struct ctl_pr_cmd {
    enum ctl_pr_op op;
    const char *who; /* points into the args, or the literal "ctl" */
    uint64_t key, key2; /* register: old, new; preempt: own, victim */
    unsigned type;      /* 1-6 (enum pr_type) */
    bool ignore_key;    /* register-ignore */
    bool abort;         /* preempt-abort */
};
int ctl_parse_pr(const struct ctl_args *a, struct ctl_pr_cmd *ret,
                 char **ret_msg);
/* The short name of a reservation type 1-6 ("we-ro"), or NULL. */
const char *ctl_pr_type_name(unsigned type);

#endif
