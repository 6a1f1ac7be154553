/* conf — configuration: libconfig files and one-line specs, both turned
 * into the same tree of stack descriptions (struct dl_node), validated in
 * two phases:
 *  1. what the text alone decides (kinds, keys, types, ranges, names),
 *     here, before anything is opened;
 *  2. what needs the files (formats, sizes, sector sizes), when disklib
 *     opens the stacks; its messages name the part and where it came from.
 *
 * Every message names the file, the line, the setting path, the value and
 * the rule: "disks.conf:7: disks.[0].stack.sector: 1000: must be a power
 * of two from 512 to 4096". Settings from the command line are named
 * "command line: --disk 'NAME=SPEC'". conf does no I/O besides reading the
 * configuration file. */
#ifndef CONF_H
#define CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "disklib/disklib.h"

/* A list of messages, one per error found. */
struct conf_diag {
    char **msg;
    size_t n;
};
void conf_diag_add(struct conf_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void conf_diag_clear(struct conf_diag *d);

struct conf_disk {
    char *name;
    struct dl_node *stack;
    bool read_only; /* the whole disk: ",ro" or read_only = true */
    char *where;    /* "FILE:LINE: disks.[N]" or "command line: --disk ..." */
};

struct conf_mount {
    bool allow_other;
    unsigned threads; /* 0: the program's default */
    char *cache_dir;  /* autocache: layers; NULL: OPENVMM_AUTO_CACHE_PATH */
};

struct conf {
    struct conf_mount mount;
    struct conf_disk *disks;
    size_t ndisks;
};

void conf_init(struct conf *c);
void conf_free(struct conf *c);

/* Read a configuration file and add its disks and mount settings.
 * Returns 0, or -EINVAL with the errors in diag. */
int conf_load_file(struct conf *c, const char *path, struct conf_diag *diag);
/* Same, from text (the fuzz target; relative paths against base_dir). */
int conf_load_string(struct conf *c, const char *text, const char *name,
                     const char *base_dir, struct conf_diag *diag);
/* Add a disk from a command-line argument "NAME=SPEC{,FLAG}"; relative
 * paths become absolute against the current directory. Set
 * c->mount.cache_dir first when it comes from the command line. */
int conf_add_disk_arg(struct conf *c, const char *arg, struct conf_diag *diag);

/* Parse a one-line spec into a node tree. Relative paths are made
 * absolute against base_dir (NULL: the current directory). where names
 * the setting for messages; the message names the rule broken. */
int conf_parse_spec(const char *spec, const char *where, const char *base_dir,
                    const char *cache_dir, struct dl_node **ret,
                    char **ret_msg);
/* The layer of a snapshot command: "mem" or "sql:PATH[;create]" (an
 * absolute path). */
int conf_parse_layerspec(const char *spec, struct dl_node **ret,
                         char **ret_msg);

/* Phase one across the whole configuration: disk names, duplicates, and
 * each stack's own rules. Returns 0 or -EINVAL with errors in diag. */
int conf_validate(struct conf *c, struct conf_diag *diag);

/* Why a disk name is not allowed, or NULL when it is. */
const char *conf_bad_disk_name(const char *name);

/* Print the configuration in the expanded group form (never specs). Its
 * output read back prints the same. */
void conf_dump(const struct conf *c, FILE *out);
/* The expanded form of one stack, indented. */
void conf_dump_stack(const struct dl_node *n, FILE *out, int indent);

/* The kinds a spec may name ("file", ...), NULL-terminated. */
const char *const *conf_spec_kinds(void);

#endif
