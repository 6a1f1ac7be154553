/* The program's log sink. Library code hands messages here through its
 * context; nothing else in the program prints log lines. */
#include <stdio.h>
#include <syslog.h>

#include "fs/log.h"

void fs_log_sink(void *opaque, int level, const char *category,
                 const char *msg)
{
    const struct fs_log *l = opaque;
    static const char *const names[] = {
        [LOG_EMERG] = "error", [LOG_ALERT] = "error", [LOG_CRIT] = "error",
        [LOG_ERR] = "error", [LOG_WARNING] = "warning",
        [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
    };

    if (level < 0 || level > LOG_DEBUG)
        level = LOG_ERR;
    if (l && l->syslog)
        syslog(level, "[%s] %s", category, msg);
    else
        fprintf(stderr, "diskstack: %s: [%s] %s\n", names[level], category,
                msg);
}
