/* Replays corpora through a fuzz target without libFuzzer, so that every
 * build (gcc, ASan+UBSan) runs them as tests:
 *
 *   replay-NAME PATH...
 *
 * A PATH is a file, or a directory whose regular files (not starting with
 * '.') are run in sorted order. Exits 0 when every input ran, 1 when a
 * path cannot be read or no input was found; a finding crashes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "disklib/util.h"
#include "tests/fuzz/fuzz.h"

/* The whole file in a new buffer; never NULL on success, also when the
 * file is empty, as libFuzzer never passes NULL either. */
static int replay_read(int dirfd, const char *path, uint8_t **ret,
                       size_t *ret_len)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0, cap = 4096;

    if (fd < 0)
        return -errno;
    buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n;

        if (len == cap) {
            uint8_t *b = realloc(buf, cap * 2);

            if (!b)
                return -ENOMEM;
            buf = b;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

static int replay_one(int dirfd, const char *name, const char *shown)
{
    _cleanup_free_ uint8_t *data = NULL;
    size_t len = 0;
    int r = replay_read(dirfd, name, &data, &len);

    if (r < 0) {
        fprintf(stderr, "%s: %s\n", shown, strerror(-r));
        return r;
    }
    /* Printed first, so that a crash names its input. */
    printf("%s (%zu bytes)\n", shown, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, len);
    return 0;
}

static int replay_filter(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Returns the number of inputs run, or -errno. */
static int replay_dir(const char *path)
{
    _cleanup_close_ int dirfd = open(path, O_RDONLY | O_DIRECTORY |
                                               O_CLOEXEC);
    struct dirent **names = NULL;
    int n, ran = 0, r = 0;

    if (dirfd < 0)
        return -errno;
    n = scandirat(dirfd, ".", &names, replay_filter, alphasort);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *shown = NULL;
        struct stat st;

        if (r == 0 && fstatat(dirfd, names[i]->d_name, &st, 0) < 0)
            r = -errno;
        if (r == 0 && S_ISREG(st.st_mode)) {
            if (asprintf(&shown, "%s/%s", path, names[i]->d_name) < 0)
                r = -ENOMEM;
            else
                r = replay_one(dirfd, names[i]->d_name, shown);
            if (r == 0)
                ran++;
        }
        free(names[i]);
    }
    free(names);
    return r < 0 ? r : ran;
}

int main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int r;

        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            r = replay_dir(argv[i]);
            if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[i], strerror(-r));
                return 1;
            }
            total += r;
        } else {
            if (replay_one(AT_FDCWD, argv[i], argv[i]) < 0)
                return 1;
            total++;
        }
    }
    if (total == 0) {
        fprintf(stderr, "no inputs found\n");
        return 1;
    }
    printf("%d inputs ran\n", total);
    return 0;
}
