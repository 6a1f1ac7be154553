/* Private to disklib: the tweak arithmetic of XTS (IEEE 1619) around an
 * AES-ECB pass, for data units of whole 16-byte blocks (xts.c).
 *
 * For each data unit i of `blocks` blocks, first[i] is the encrypted
 * tweak E2(index) and the tweak of its block j is first[i] * alpha^j in
 * GF(2^128). XTS is then pre, ECB with Key1 in place on out, post:
 * C = E1(P ^ T) ^ T (and the same with D1 to decrypt). */
#ifndef DISKLIB_XTS_H
#define DISKLIB_XTS_H

#include <stddef.h>
#include <stdint.h>

/* Extra blocks first[] must have after the last unit's (read, not used). */
#define DL_XTS_FIRST_PAD 3

/* out = in ^ T over units data units, T written to t (units * blocks * 16
 * bytes). out may be in; t is 64-byte aligned; blocks is a multiple of
 * 32 (units of 512 bytes and more). */
typedef void dl_xts_pre_fn(uint8_t *out, const uint8_t *in, uint8_t *t,
                           const uint8_t *first, size_t units, size_t blocks);
/* buf ^= t over n bytes, n a multiple of 64 */
typedef void dl_xts_post_fn(uint8_t *buf, const uint8_t *t, size_t n);

struct dl_xts_impl {
    const char *name;
    dl_xts_pre_fn *pre;
    dl_xts_post_fn *post;
};

/* The implementations this CPU can run, the fastest first; returns how
 * many (at least one: the portable one is always last). */
size_t dl_xts_impls(const struct dl_xts_impl **ret);

#endif
