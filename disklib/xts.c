/* xts — the tweak arithmetic of XTS-AES (IEEE 1619) for whole-block data
 * units, done around one AES-ECB pass (see xts.h).
 *
 * The tweak of block j of a unit is T0 * alpha^j with T0 = E2(index).
 * Multiplying by alpha^s (s < 64) is a 128-bit shift left by s whose
 * carried-out top bits c come back reduced: c * 0x87 carry-less, that is
 * c ^ c<<1 ^ c<<2 ^ c<<7. The vector form computes four consecutive
 * tweaks per 64 bytes straight from a base tweak, with a per-lane shift
 * count, so no tweak waits for the one before it; the base moves by
 * alpha^32 every 32 blocks. It needs per-lane shifts (AVX2 and later);
 * the portable form steps one block at a time.
 *
 * Blocks are read as two little-endian 64-bit words (lo, hi). */
#include <string.h>

#include "disklib/util.h"
#include "disklib/xts.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the tweak arithmetic reads blocks as little-endian words");

/* ---- portable ---- */

static void xts_pre_portable(uint8_t *out, const uint8_t *in, uint8_t *t,
                             const uint8_t *first, size_t units,
                             size_t blocks)
{
    for (size_t i = 0; i < units; i++) {
        uint64_t lo, hi;

        memcpy(&lo, first + 16 * i, 8);
        memcpy(&hi, first + 16 * i + 8, 8);
        for (size_t j = 0, o = 16 * i * blocks; j < blocks; j++, o += 16) {
            const uint64_t carry = hi >> 63;
            uint64_t a, b;

            memcpy(&a, in + o, 8);
            memcpy(&b, in + o + 8, 8);
            a ^= lo;
            b ^= hi;
            memcpy(t + o, &lo, 8);
            memcpy(t + o + 8, &hi, 8);
            memcpy(out + o, &a, 8);
            memcpy(out + o + 8, &b, 8);
            hi = (hi << 1) | (lo >> 63);
            lo = (lo << 1) ^ (0x87 & (0 - carry));
        }
    }
}

static void xts_post_portable(uint8_t *buf, const uint8_t *t, size_t n)
{
    for (size_t o = 0; o < n; o += 8) {
        uint64_t a, b;

        memcpy(&a, buf + o, 8);
        memcpy(&b, t + o, 8);
        a ^= b;
        memcpy(buf + o, &a, 8);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

/* ---- vectors of four blocks, compiled once per instruction set ---- */

typedef uint64_t xts_v8 __attribute__((vector_size(64)));

#define XTS_INLINE static inline __attribute__((always_inline))

/* Each 128-bit lane of base times alpha^s[lane], s below 64; sw1 is base
 * with the halves of each lane swapped, shifted right by one (so that a
 * count of 0 carries nothing out without a shift by 64). */
#define XTS_MULPOW(base, sw1, s)                                            \
    ({                                                                      \
        const xts_v8 lo_ = {~0ull, 0, ~0ull, 0, ~0ull, 0, ~0ull, 0};        \
        const xts_v8 c_ = (sw1) >> (63 - (s));                              \
        ((base) << (s)) ^ c_ ^ (((c_ << 1) ^ (c_ << 2) ^ (c_ << 7)) & lo_); \
    })

XTS_INLINE void xts_pre_vec(uint8_t *out, const uint8_t *in, uint8_t *t,
                            const uint8_t *first, size_t units,
                            size_t blocks)
{
    const xts_v8 s0 = {0, 0, 1, 1, 2, 2, 3, 3};
    const xts_v8 four = {4, 4, 4, 4, 4, 4, 4, 4};
    const xts_v8 s32 = {32, 32, 32, 32, 32, 32, 32, 32};

    for (size_t i = 0; i < units; i++) {
        xts_v8 f, base, sw1;
        size_t o = 16 * i * blocks;

        /* this unit's first tweak and the next three blocks of first[]
         * (DL_XTS_FIRST_PAD), of which one lane pair is used everywhere */
        memcpy(&f, first + 16 * i, sizeof(f));
        base = __builtin_shufflevector(f, f, 0, 1, 0, 1, 0, 1, 0, 1);
        for (size_t q = 0; q < blocks; q += 32) {
            xts_v8 s = s0;

            sw1 = __builtin_shufflevector(base, base, 1, 0, 3, 2, 5, 4, 7,
                                          6) >> 1;
            for (int v = 0; v < 8; v++, o += 64) {
                const xts_v8 tw = XTS_MULPOW(base, sw1, s);
                xts_v8 x;

                memcpy(t + o, &tw, sizeof(tw));
                memcpy(&x, in + o, sizeof(x));
                x ^= tw;
                memcpy(out + o, &x, sizeof(x));
                s += four;
            }
            base = XTS_MULPOW(base, sw1, s32);
        }
    }
}

XTS_INLINE void xts_post_vec(uint8_t *buf, const uint8_t *t, size_t n)
{
    for (size_t o = 0; o < n; o += 64) {
        xts_v8 a, b;

        memcpy(&a, buf + o, sizeof(a));
        memcpy(&b, t + o, sizeof(b));
        a ^= b;
        memcpy(buf + o, &a, sizeof(a));
    }
}

#define XTS_VARIANT(isa, features)                                            \
    __attribute__((target(features))) static void xts_pre_##isa(                \
        uint8_t *out, const uint8_t *in, uint8_t *t, const uint8_t *first,    \
        size_t units, size_t blocks)                                          \
    {                                                                         \
        xts_pre_vec(out, in, t, first, units, blocks);                        \
    }                                                                         \
    __attribute__((target(features))) static void xts_post_##isa(               \
        uint8_t *buf, const uint8_t *t, size_t n)                             \
    {                                                                         \
        xts_post_vec(buf, t, n);                                              \
    }

XTS_VARIANT(avx512, "avx512f")
XTS_VARIANT(avx2, "avx2")

static const struct dl_xts_impl xts_impls[] = {
    {"avx512", xts_pre_avx512, xts_post_avx512},
    {"avx2", xts_pre_avx2, xts_post_avx2},
    {"portable", xts_pre_portable, xts_post_portable},
};

size_t dl_xts_impls(const struct dl_xts_impl **ret)
{
    size_t k = 2;

    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        k = 0;
    else if (__builtin_cpu_supports("avx2"))
        k = 1;
    *ret = xts_impls + k;
    return ARRAY_SIZE(xts_impls) - k;
}

#else

static const struct dl_xts_impl xts_impls[] = {
    {"portable", xts_pre_portable, xts_post_portable},
};

size_t dl_xts_impls(const struct dl_xts_impl **ret)
{
    *ret = xts_impls;
    return ARRAY_SIZE(xts_impls);
}

#endif
