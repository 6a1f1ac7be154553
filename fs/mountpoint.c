/* Mount point checks: a directory, not mounted already, and no stale
 * FUSE mount of a daemon that died (those answer ENOTCONN). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "disklib/util.h"
#include "fs/mountpoint.h"

extern char **environ;

/* mountinfo escapes blanks and backslashes as \ooo */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
            s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static bool mounted_at(const char *canon)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    bool found = false;

    if (!f)
        return false;
    while (!found && getline(&line, &cap, f) > 0) {
        char *save = NULL, *tok = strtok_r(line, " ", &save);

        for (int i = 0; tok && i < 4; i++)
            tok = strtok_r(NULL, " ", &save);
        if (tok) {
            unescape(tok);
            found = strcmp(tok, canon) == 0;
        }
    }
    free(line);
    return found;
}

bool fs_is_mounted(const char *path)
{
    char canon[PATH_MAX];

    if (!realpath(path, canon))
        return false;
    return mounted_at(canon);
}

static int detach(const char *path)
{
    char *argv[] = {"fusermount3", "-u", "-z", (char *)path, NULL};
    pid_t pid;
    int status;

    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
        return -ENOENT;
    if (waitpid(pid, &status, 0) < 0)
        return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* A FUSE mount whose daemon died answers every request with ENOTCONN;
 * cached attributes may hide that from stat, but opening the directory
 * always asks the daemon. */
static bool stale(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
        return false;
    }
    return errno == ENOTCONN || errno == ECONNABORTED;
}

int fs_prepare_mountpoint(const char *path, char **ret_msg)
{
    struct stat st;

    if (fs_is_mounted(path) && stale(path)) {
        /* The auto_unmount helper of the dead daemon removes it within a
         * moment. It checks that the mount is stale and then unmounts the
         * path: mounting before it is done would have it unmount ours. So
         * wait for it, and detach only a mount that nobody removes. */
        for (int i = 0; i < 150 && fs_is_mounted(path) && stale(path); i++)
            usleep(20000);
        if (fs_is_mounted(path) && stale(path)) {
            fprintf(stderr, "diskstack: %s is the stale mount of a daemon "
                    "that died; detaching it (fusermount3 -u -z)\n", path);
            detach(path);
            for (int i = 0; i < 50 && fs_is_mounted(path) && stale(path); i++)
                usleep(20000);
        }
        if (fs_is_mounted(path) && stale(path)) {
            dl_msg(ret_msg, "%s is a stale FUSE mount; run: fusermount3 -u "
                   "-z %s", path, path);
            return -ENOTCONN;
        }
    }
    if (stat(path, &st) < 0) {
        dl_msg(ret_msg, "mount point %s: %s", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode)) {
        dl_msg(ret_msg, "mount point %s is not a directory", path);
        return -ENOTDIR;
    }
    if (fs_is_mounted(path)) {
        dl_msg(ret_msg, "%s is a mount point already (unmount it first: "
               "fusermount3 -u %s)", path, path);
        return -EBUSY;
    }
    return 0;
}
