/* The drivers disklib knows, by name. Later drivers add a line here. */
#include <string.h>

#include "disklib/drivers.h"

static const struct dl_driver *const drivers[] = {
    &dl_file_driver,
    &dl_layered_driver,
    &dl_ram_driver,
    &dl_sqlite_driver,
    &dl_crypt_driver,
    &dl_delay_driver,
    &dl_error_driver,
    &dl_pr_driver,
    NULL,
};

const struct dl_driver *const *dl_drivers(void)
{
    return drivers;
}

const struct dl_driver *dl_find_driver(const char *name)
{
    for (size_t i = 0; drivers[i]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}
