/* The conformance suite that every driver passes (DESIGN §2), and the
 * small test harness the unit tests share. */
#ifndef TESTS_CONFORMANCE_H
#define TESTS_CONFORMANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "disklib/disklib.h"

/* ---- harness ---- */

/* Report a check: prints "ok"/"not ok" with the text, counts failures. */
bool t_check(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define CHECK(cond, ...) t_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* Equality of two ints, printing both on failure. */
#define CHECK_EQ(a, b, what)                                                   \
    ({                                                                         \
        long long _a = (long long)(a), _b = (long long)(b);                    \
        t_check(_a == _b, __FILE__, __LINE__, "%s: %lld == %lld", (what), _a,  \
                _b);                                                           \
    })
/* Exit status for main: 0 when every check passed. */
int t_done(void);
/* Deterministic random numbers; the seed comes from DL_TEST_SEED or is
 * printed so that a failing run can be repeated. */
void t_seed(void);
uint64_t t_rand(void);
/* A fresh directory for the test's files (removed by t_cleanup_dir). */
char *t_tmpdir(void);
void t_cleanup_dir(const char *dir);
/* A context that prints library messages at warning level and above. */
struct dl_ctx *t_ctx(void);

/* Stack descriptions for tests: a node of driver drv with settings given
 * as name, value pairs ending with NULL (aborts on a bad one); a layered
 * node of the layers given top first, ending with NULL. */
struct dl_node *t_node(const char *drv, ...);
struct dl_node *t_layered(struct dl_node *top, ...);
/* Validate and open n (freed either way). */
int t_open(struct dl_ctx *ctx, struct dl_node *n, unsigned flags,
           struct dl_disk **ret, char **ret_msg);
/* ... and abort when that fails. */
struct dl_disk *t_open_ok(struct dl_ctx *ctx, struct dl_node *n,
                          unsigned flags);
/* DIR/NAME, malloc'd */
char *t_path(const char *dir, const char *name);

/* A part's live settings (dl_settings_show; aborts when there are none). */
char *t_show(struct dl_disk *part);
/* The rest of its line "NAME ...", malloc'd; "(missing)" without one. */
char *t_show_line(struct dl_disk *part, const char *name);
/* That rest as a number; UINT64_MAX without the line. */
uint64_t t_show_u64(struct dl_disk *part, const char *name);
/* dl_settings_set, printing the reason when it is refused. */
int t_set(struct dl_disk *part, const char *cmd);
/* Check that cmd is refused with EINVAL and a message holding want0 and
 * want1 (either may be NULL), and that the settings still read before. */
void t_set_refused(struct dl_disk *part, const char *cmd, const char *want0,
                   const char *want1, const char *before);
/* ... and so is a line of 65 valid tokens, more than a command can have. */
void t_set_refuses_long_lines(struct dl_disk *part, const char *token,
                              const char *before);

/* ---- conformance ---- */

struct conformance_opts {
    const char *name; /* for the output */
    unsigned random_ops;  /* operations in the differential run (0: 2000) */
};

/* Runs every check on d. A read-only disk gets the read-only checks
 * (writes, zero and unmap fail with -EROFS and change nothing); a writable
 * one the differential run against a model, which writes all over it. */
void conformance_run(struct dl_disk *d, const struct conformance_opts *o);

#endif
