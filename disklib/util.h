/* Small helpers shared by every part of diskstack: scoped cleanup,
 * alignment arithmetic, error messages for the control path.
 *
 * The cleanup macros follow the systemd idiom: a variable declared with
 * _cleanup_free_ is freed when it goes out of scope unless ownership was
 * handed on with TAKE_PTR(). */
#ifndef DISKSTACK_UTIL_H
#define DISKSTACK_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _likely_(x) __builtin_expect(!!(x), 1)

static inline void freep(void *p)
{
    free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#define TAKE_PTR(p)                                                            \
    ({                                                                         \
        __typeof__(p) _take_p = (p);                                           \
        (p) = NULL;                                                            \
        _take_p;                                                               \
    })
#define TAKE_FD(fd)                                                            \
    ({                                                                         \
        int _take_fd = (fd);                                                   \
        (fd) = -1;                                                             \
        _take_fd;                                                              \
    })

/* A lock guard: LOCK_GUARD(&m); holds m until the end of the scope. */
static inline pthread_mutex_t *dl_lock_and_return(pthread_mutex_t *m)
{
    pthread_mutex_lock(m);
    return m;
}
static inline void dl_unlockp(pthread_mutex_t **m)
{
    if (*m)
        pthread_mutex_unlock(*m);
}
#define DL_CONCAT_(a, b) a##b
#define DL_CONCAT(a, b) DL_CONCAT_(a, b)
#define LOCK_GUARD(m)                                                          \
    _cleanup_(dl_unlockp) __attribute__((unused)) pthread_mutex_t             \
        *DL_CONCAT(_guard_, __LINE__) = dl_lock_and_return(m)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline bool is_pow2(uint64_t x)
{
    return x && !(x & (x - 1));
}
/* a must be a power of two */
static inline uint64_t align_down(uint64_t x, uint64_t a)
{
    return x & ~(a - 1);
}
static inline uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) & ~(a - 1);
}
static inline bool is_aligned(uint64_t x, uint64_t a)
{
    return (x & (a - 1)) == 0;
}

/* Set *ret (when ret is not NULL and still unset) to a newly allocated
 * message. The control path reports a message exactly once; the first
 * reason set is the one closest to the cause, so later calls keep it. */
void dl_msg(char **ret, const char *fmt, ...) _printf_(2, 3);
void dl_vmsg(char **ret, const char *fmt, va_list ap) _printf_(2, 0);
/* Prefix an existing message: "PREFIX: old". */
void dl_msg_prefix(char **msg, const char *fmt, ...) _printf_(2, 3);

/* Parse a size: DIGITS [K|M|G|T] [B|iB], case-insensitive, binary units.
 * Returns 0, -EINVAL (syntax) or -ERANGE (does not fit 64 bits). */
int dl_parse_size(const char *s, uint64_t *ret);
/* Format a size in the largest binary unit that divides it ("8G", "512",
 * "1536K") into buf, which must hold at least 24 bytes. */
const char *dl_format_size(uint64_t v, char *buf, size_t len);
/* Parse a duration with a unit: ns, us, ms, s. Returns ns. */
int dl_parse_duration(const char *s, uint64_t *ret_ns);
/* Parse a non-negative decimal integer (no sign, no spaces). */
int dl_parse_u64(const char *s, uint64_t *ret);
/* "EINVAL" for EINVAL, or "E<number>" when the name is unknown. */
const char *dl_errno_name(int err, char *buf, size_t len);
/* An errno from its name ("EIO", case-insensitive) or number (1-4095). */
int dl_parse_errno(const char *s, int *ret);

/* Split line in place into tokens separated by spaces and tabs, at most
 * max of them, into tok[]. Returns how many (0 for a blank line), or
 * -EINVAL with a message when there are more. */
int dl_split_tokens(char *line, char **tok, size_t max, char **ret_msg);

/* Replace the file at path with len bytes of data: written to a temporary
 * file beside it, synced, renamed over it, and the directory synced.
 * *ret_renamed tells whether the rename was done (a failure after it, of
 * the directory's sync, leaves the new content in place); NULL if the
 * caller does not care. Returns 0 or a negative errno. */
int dl_replace_file(const char *path, const void *data, size_t len,
                    bool *ret_renamed);

#endif
