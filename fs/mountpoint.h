/* Checks on a mount point before mounting. */
#ifndef FS_MOUNTPOINT_H
#define FS_MOUNTPOINT_H

#include <stdbool.h>

/* Is path (made canonical) a mount point in /proc/self/mountinfo? */
bool fs_is_mounted(const char *path);
/* The directory must exist and not be mounted already. A stale FUSE mount
 * left by a daemon that died (ENOTCONN) is detached with fusermount3 -u -z;
 * when that fails the message says what to run. */
int fs_prepare_mountpoint(const char *path, char **ret_msg);

#endif
