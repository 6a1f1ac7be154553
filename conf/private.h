/* Private to conf/. */
#ifndef CONF_PRIVATE_H
#define CONF_PRIVATE_H

#include "conf/conf.h"

/* Takes over the fields of *disk (cleared on return, also on failure). */
int conf_append_disk(struct conf *c, struct conf_disk *disk);
void conf_disk_clear(struct conf_disk *disk);
/* Make every path setting below n absolute against base_dir (NULL: the
 * current directory). */
int conf_resolve_paths(struct dl_node *n, const char *base_dir);
/* "unknown option 'x' for file (known: direct, create=SIZE, ...)" */
void conf_known_options(const struct dl_driver *drv, const char *what,
                        char **ret_msg);

#endif
