/* Shared by the fuzz targets and the replay driver.
 *
 * A target is one LLVMFuzzerTestOneInput(). It is linked either with
 * libFuzzer (-Dfuzzing=true, clang) or with replay.c, which feeds it the
 * files of a corpus so that the corpora run as ordinary tests. A target
 * reports a finding by crashing: besides what the sanitizers catch, a
 * broken contract of the parser (no message on failure, a dump that does
 * not read back the same) aborts through FUZZ_CHECK. */
#ifndef DISKSTACK_FUZZ_H
#define DISKSTACK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The input as a C string, or NULL when it holds a NUL byte: the parsers
 * take strings, and an embedded NUL only shortens the input, which the
 * fuzzer finds anyway. Also NULL when out of memory. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s;

    if (memchr(data, '\0', size))
        return NULL;
    s = malloc(size + 1);
    if (!s)
        return NULL;
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
