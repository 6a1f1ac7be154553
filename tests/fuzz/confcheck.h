/* Checks shared by the fuzz targets of conf/: the message contract and
 * conf_dump's promise that its output read back prints the same. */
#ifndef DISKSTACK_FUZZ_CONFCHECK_H
#define DISKSTACK_FUZZ_CONFCHECK_H

#include "conf/conf.h"

/* Relative paths are made absolute against this; nothing is opened, so
 * it need not exist (and must not: a fuzzer must never touch files). */
#define FUZZ_BASE_DIR "/nonexistent-base"

/* The text conf_dump() / conf_dump_stack() print, or NULL when out of
 * memory. */
char *fuzz_dump_conf(const struct conf *c);
char *fuzz_dump_stack(const struct dl_node *n);

/* A call that returned r < 0 for other reasons than ENOMEM said why. */
void fuzz_check_diag(int r, const struct conf_diag *diag);
void fuzz_check_msg(int r, const char *msg);

/* c has validated: its dump must load, validate and dump the same. */
void fuzz_check_reload(const struct conf *c);

#endif
