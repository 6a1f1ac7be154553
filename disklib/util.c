/* Helpers shared by every part: messages, sizes, durations, errno names. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "disklib/util.h"

void dl_vmsg(char **ret, const char *fmt, va_list ap)
{
    char *m;

    if (!ret || *ret)
        return;
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    *ret = m;
}

void dl_msg(char **ret, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    dl_vmsg(ret, fmt, ap);
    va_end(ap);
}

void dl_msg_prefix(char **msg, const char *fmt, ...)
{
    _cleanup_free_ char *prefix = NULL;
    char *m;
    va_list ap;

    if (!msg || !*msg)
        return;
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0)
        prefix = NULL;
    va_end(ap);
    if (!prefix || asprintf(&m, "%s: %s", prefix, *msg) < 0)
        return;
    free(*msg);
    *msg = m;
}

/* The decimal digits at *p (at least one), advancing *p past them. */
static int parse_digits(const char **p, uint64_t *ret)
{
    uint64_t v = 0;
    const char *s = *p;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *ret = v;
    return 0;
}

int dl_parse_u64(const char *s, uint64_t *ret)
{
    uint64_t v;
    int r = parse_digits(&s, &v);

    if (r < 0)
        return r;
    if (*s)
        return -EINVAL;
    *ret = v;
    return 0;
}

int dl_parse_size(const char *s, uint64_t *ret)
{
    uint64_t v;
    unsigned shift = 0;
    const char *p = s;
    int r = parse_digits(&p, &v);

    if (r < 0)
        return r;
    switch (toupper((unsigned char)*p)) {
    case 'K': shift = 10; p++; break;
    case 'M': shift = 20; p++; break;
    case 'G': shift = 30; p++; break;
    case 'T': shift = 40; p++; break;
    default: break;
    }
    if (shift && toupper((unsigned char)*p) == 'I' &&
        toupper((unsigned char)p[1]) == 'B')
        p += 2;
    else if (toupper((unsigned char)*p) == 'B')
        p++;
    if (*p)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *ret = v << shift;
    return 0;
}

const char *dl_format_size(uint64_t v, char *buf, size_t len)
{
    static const char units[] = "KMGT";
    int u = -1;

    while (v && u < 3 && (v & 1023) == 0) {
        v >>= 10;
        u++;
    }
    if (u < 0)
        snprintf(buf, len, "%llu", (unsigned long long)v);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
    return buf;
}

int dl_parse_duration(const char *s, uint64_t *ret_ns)
{
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        {"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000},
    };
    uint64_t v;
    const char *p = s;
    int r = parse_digits(&p, &v);

    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return -ERANGE;
            *ret_ns = v * units[i].mul;
            return 0;
        }
    }
    return -EINVAL;
}

const char *dl_errno_name(int err, char *buf, size_t len)
{
    const char *n = strerrorname_np(err);

    if (n)
        return n;
    snprintf(buf, len, "E%d", err);
    return buf;
}

int dl_parse_errno(const char *s, int *ret)
{
    uint64_t v;

    if (dl_parse_u64(s, &v) == 0) {
        if (v == 0 || v > 4095)
            return -ERANGE;
        *ret = (int)v;
        return 0;
    }
    for (int e = 1; e < 4096; e++) {
        const char *n = strerrorname_np(e);

        if (n && strcasecmp(n, s) == 0) {
            *ret = e;
            return 0;
        }
    }
    return -EINVAL;
}

int dl_split_tokens(char *line, char **tok, size_t max, char **ret_msg)
{
    char *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(line, " \t", &save); t;
         t = strtok_r(NULL, " \t", &save)) {
        if (n == max) {
            dl_msg(ret_msg, "more than %zu tokens", max);
            return -EINVAL;
        }
        tok[n++] = t;
    }
    return (int)n;
}

static int fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    _cleanup_free_ char *dir = NULL;
    _cleanup_close_ int fd = -1;

    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return -ENOMEM;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        return -errno;
    return 0;
}

int dl_replace_file(const char *path, const void *data, size_t len,
                    bool *ret_renamed)
{
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    const char *p = data;
    int r = 0;

    if (ret_renamed)
        *ret_renamed = false;
    if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
        tmp = NULL;
        return -ENOMEM;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (r == 0 && len) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno != EINTR)
            r = -errno;
        else if (w == 0)
            r = -EIO;
        if (w > 0) {
            p += w;
            len -= (size_t)w;
        }
    }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    if (ret_renamed)
        *ret_renamed = true;
    return fsync_dir_of(path);
}
