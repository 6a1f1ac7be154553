/* The program's log sink: stderr in the foreground, syslog as a daemon. */
#ifndef FS_LOG_H
#define FS_LOG_H

#include <stdbool.h>

struct fs_log {
    bool syslog;
};

/* A dl_log_fn; opaque is a struct fs_log. */
void fs_log_sink(void *opaque, int level, const char *category,
                 const char *msg);

#endif
