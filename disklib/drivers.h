/* Private to disklib: the driver tables of the registry. */
#ifndef DISKLIB_DRIVERS_H
#define DISKLIB_DRIVERS_H

#include "disklib/driver.h"

extern const struct dl_driver dl_file_driver;
extern const struct dl_driver dl_ram_driver;
extern const struct dl_driver dl_layered_driver;
extern const struct dl_driver dl_sqlite_driver;
extern const struct dl_driver dl_crypt_driver;
extern const struct dl_driver dl_delay_driver;
extern const struct dl_driver dl_error_driver;
extern const struct dl_driver dl_pr_driver;

/* Parameter indices of the file driver (its table's order), for conf. */
enum {
    DL_FILE_PATH,
    DL_FILE_DIRECT,
    DL_FILE_CREATE,
    DL_FILE_FORMAT,
    DL_FILE_SECTOR,
    DL_FILE_OFFSET,
    DL_FILE_LENGTH,
};

enum {
    DL_RAM_SIZE,
    DL_RAM_SECTOR,
};

enum {
    DL_SQLITE_PATH,
    DL_SQLITE_CREATE,
    DL_SQLITE_SIZE,
    DL_SQLITE_SECTOR,
};

#endif
