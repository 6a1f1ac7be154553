/* crypt: the IEEE 1619-2007 XTS-AES-256 vectors 10-13 through the driver
 * (ciphertext read from the disk below and from a file), the tweak of
 * 4096-byte sectors checked against OpenSSL directly, conformance with
 * 512- and 4096-byte sectors and read-only, the write / zero / unmap /
 * extents semantics, the key file refusals and their messages (which
 * never show the key), threads on one disk, the key page kept out of core
 * dumps, and a timing of 1 MiB requests (printed, never asserted). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "disklib/driver.h"
#include "disklib/util.h"
#include "disklib/xts.h"
#include "tests/unit/conformance.h"

static struct dl_ctx *ctx;
static char *dir;

/* ---- helpers ---- */

static struct dl_node *crypt_over(const char *key_file, struct dl_node *below)
{
    struct dl_node *n = t_node("crypt", "key_file", key_file, NULL);

    if (dl_node_add_child(n, below) < 0)
        abort();
    return n;
}

static char *make_file(const char *name, uint64_t size)
{
    char *p = t_path(dir, name);
    int fd = open(p, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);

    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        abort();
    close(fd);
    return p;
}

static char *write_key(const char *name, const void *key, size_t len,
                       mode_t mode)
{
    char *p = t_path(dir, name);
    int fd;

    unlink(p);
    fd = open(p, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, key, len) != (ssize_t)len || fchmod(fd, mode) < 0)
        abort();
    close(fd);
    return p;
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;

        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            abort();
        out[i] = (uint8_t)v;
    }
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = t_rand();

        memcpy(p + i, &v, MIN(8, n - i));
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Does text show the key: any 8 bytes of it raw, or as hex in either
 * case? */
static bool shows_key(const char *text, const uint8_t *key, size_t klen)
{
    size_t tlen = strlen(text);

    for (size_t i = 0; i + 8 <= klen; i++) {
        char lo[17], up[17];

        if (memmem(text, tlen, key + i, 8))
            return true;
        for (size_t j = 0; j < 8; j++) {
            snprintf(lo + 2 * j, 3, "%02x", key[i + j]);
            snprintf(up + 2 * j, 3, "%02X", key[i + j]);
        }
        if (strstr(text, lo) || strstr(text, up))
            return true;
    }
    return false;
}

/* XTS-AES-256 of one data unit with OpenSSL directly, for the checks
 * that do not trust the driver. */
static void xts_unit(const uint8_t *key, uint64_t tweak, int enc,
                     const uint8_t *in, uint8_t *out, int len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t iv[16] = {0};
    int outl = 0;

    for (int i = 0; i < 8; i++)
        iv[i] = (uint8_t)(tweak >> (8 * i));
    if (!c ||
        EVP_CipherInit_ex(c, EVP_aes_256_xts(), NULL, key, iv, enc) != 1 ||
        EVP_CipherUpdate(c, out, &outl, in, len) != 1 || outl != len)
        abort();
    EVP_CIPHER_CTX_free(c);
}

/* ---- IEEE 1619-2007 XTS-AES-256, vectors 10-13 ---- */

static const char vec_key[] =
    "2718281828459045235360287471352662497757247093699959574966967627"
    "3141592653589793238462643383279502884197169399375105820974944592";

static const struct {
    int number;
    uint64_t dusn;
    const char *ct;
} vectors[] = {
    {10, 0xff,
     "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b"
     "5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd"
     "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0"
     "c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca"
     "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0"
     "b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f"
     "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec"
     "583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a"
     "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1"
     "505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae"
     "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29"
     "a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac"
     "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f"
     "645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385"
     "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa"
     "773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151"},
    {11, 0xffff,
     "77a31251618a15e6b92d1d66dffe7b50b50bad552305ba0217a610688eff7e11"
     "e1d0225438e093242d6db274fde801d4cae06f2092c728b2478559df58e837c2"
     "469ee4a4fa794e4bbc7f39bc026e3cb72c33b0888f25b4acf56a2a9804f1ce6d"
     "3d6e1dc6ca181d4b546179d55544aa7760c40d06741539c7e3cd9d2f6650b201"
     "3fd0eeb8c2b8e3d8d240ccae2d4c98320a7442e1c8d75a42d6e6cfa4c2eca179"
     "8d158c7aecdf82490f24bb9b38e108bcda12c3faf9a21141c3613b58367f922a"
     "aa26cd22f23d708dae699ad7cb40a8ad0b6e2784973dcb605684c08b8d6998c6"
     "9aac049921871ebb65301a4619ca80ecb485a31d744223ce8ddc2394828d6a80"
     "470c092f5ba413c3378fa6054255c6f9df4495862bbb3287681f931b687c888a"
     "bf844dfc8fc28331e579928cd12bd2390ae123cf03818d14dedde5c0c24c8ab0"
     "18bfca75ca096f2d531f3d1619e785f1ada437cab92e980558b3dce1474afb75"
     "bfedbf8ff54cb2618e0244c9ac0d3c66fb51598cd2db11f9be39791abe447c63"
     "094f7c453b7ff87cb5bb36b7c79efb0872d17058b83b15ab0866ad8a58656c5a"
     "7e20dbdf308b2461d97c0ec0024a2715055249cf3b478ddd4740de654f75ca68"
     "6e0d7345c69ed50cdc2a8b332b1f8824108ac937eb050585608ee734097fc090"
     "54fbff89eeaeea791f4a7ab1f9868294a4f9e27b42af8100cb9d59cef9645803"},
    {12, 0xffffff,
     "e387aaa58ba483afa7e8eb469778317ecf4cf573aa9d4eac23f2cdf914e4e200"
     "a8b490e42ee646802dc6ee2b471b278195d60918ececb44bf79966f83faba049"
     "9298ebc699c0c8634715a320bb4f075d622e74c8c932004f25b41e361025b5a8"
     "7815391f6108fc4afa6a05d9303c6ba68a128a55705d415985832fdeaae6c8e1"
     "9110e84d1b1f199a2692119edc96132658f09da7c623efcec712537a3d94c0bf"
     "5d7e352ec94ae5797fdb377dc1551150721adf15bd26a8efc2fcaad56881fa9e"
     "62462c28f30ae1ceaca93c345cf243b73f542e2074a705bd2643bb9f7cc79bb6"
     "e7091ea6e232df0f9ad0d6cf502327876d82207abf2115cdacf6d5a48f6c1879"
     "a65b115f0f8b3cb3c59d15dd8c769bc014795a1837f3901b5845eb491adfefe0"
     "97b1fa30a12fc1f65ba22905031539971a10f2f36c321bb51331cdefb39e3964"
     "c7ef079994f5b69b2edd83a71ef549971ee93f44eac3938fcdd61d01fa71799d"
     "a3a8091c4c48aa9ed263ff0749df95d44fef6a0bb578ec69456aa5408ae32c7a"
     "f08ad7ba8921287e3bbee31b767be06a0e705c864a769137df28292283ea81a2"
     "480241b44d9921cdbec1bc28dc1fda114bd8e5217ac9d8ebafa720e9da4f9ace"
     "231cc949e5b96fe76ffc21063fddc83a6b8679c00d35e09576a875305bed5f36"
     "ed242c8900dd1fa965bc950dfce09b132263a1eef52dd6888c309f5a7d712826"},
    {13, 0xffffffff,
     "bf53d2dade78e822a4d949a9bc6766b01b06a8ef70d26748c6a7fc36d80ae4c5"
     "520f7c4ab0ac8544424fa405162fef5a6b7f229498063618d39f0003cb5fb8d1"
     "c86b643497da1ff945c8d3bedeca4f479702a7a735f043ddb1d6aaade3c4a0ac"
     "7ca7f3fa5279bef56f82cd7a2f38672e824814e10700300a055e1630b8f1cb0e"
     "919f5e942010a416e2bf48cb46993d3cb6a51c19bacf864785a00bc2ecff15d3"
     "50875b246ed53e68be6f55bd7e05cfc2b2ed6432198a6444b6d8c247fab941f5"
     "69768b5c429366f1d3f00f0345b96123d56204c01c63b22ce78baf116e525ed9"
     "0fdea39fa469494d3866c31e05f295ff21fea8d4e6e13d67e47ce722e9698a1c"
     "1048d68ebcde76b86fcf976eab8aa9790268b7068e017a8b9b749409514f1053"
     "027fd16c3786ea1bac5f15cb79711ee2abe82f5cf8b13ae73030ef5b9e4457e7"
     "5d1304f988d62dd6fc4b94ed38ba831da4b7634971b6cd8ec325d9c61c00f1df"
     "73627ed3745a5e8489f3a95c69639c32cd6e1d537a85f75cc844726e8a72fc00"
     "77ad22000f1d5078f6b866318c668f1ad03d5a5fced5219f2eabbd0aa5c0f460"
     "d183f04404a0d6f469558e81fab24a167905ab4c7878502ad3e38fdbe62a4155"
     "6cec37325759533ce8f25f367c87bb5578d667ae93f9e2fd99bcbc5f2fbba88c"
     "f6516139420fcff3b7361d86322c4bd84c82f335abb152c4a93411373aaa8220"},
};

static uint8_t key[64];
static char *key_path;

static void vector_plaintext(uint8_t pt[512])
{
    for (int i = 0; i < 512; i++)
        pt[i] = (uint8_t)i;
}

static void test_vectors(void)
{
    uint8_t pt[512], ct[512], buf[3 * 512];
    struct dl_disk *d, *below;

    vector_plaintext(pt);
    /* sparse: room for data unit 0xffffffff at 512 bytes a sector */
    d = t_open_ok(ctx, crypt_over(key_path,
                           t_node("ram", "size", "4T", "sector", "512", NULL)),
                0);
    below = dl_child(d, 0);
    CHECK(below && !strcmp(dl_kind(below), "ram"), "the child is the ram");
    CHECK_EQ(dl_sector_size(d), 512, "crypt inherits 512-byte sectors");
    for (size_t v = 0; v < ARRAY_SIZE(vectors); v++) {
        const uint64_t off = vectors[v].dusn * 512;

        hex_to_bytes(vectors[v].ct, ct, sizeof(ct));
        CHECK_EQ(dl_pwrite(d, pt, off, 512, NULL), 0, "write the plaintext");
        CHECK_EQ(dl_pread(below, buf, off, 512, NULL), 0, "read below");
        CHECK(!memcmp(buf, ct, 512),
              "vector %d: the ciphertext below is IEEE 1619's",
              vectors[v].number);
        memset(buf, 0, 512);
        CHECK_EQ(dl_pread(d, buf, off, 512, NULL), 0, "read through crypt");
        CHECK(!memcmp(buf, pt, 512), "vector %d: reads back the plaintext",
              vectors[v].number);
    }

    /* one request of three sectors: the tweak advances per sector */
    for (int i = 0; i < 3; i++)
        memcpy(buf + i * 512, pt, 512);
    hex_to_bytes(vectors[0].ct, ct, sizeof(ct));
    CHECK_EQ(dl_pwrite(d, buf, 0xfe * 512, sizeof(buf), NULL), 0,
             "write sectors 0xfe-0x100 at once");
    CHECK_EQ(dl_pread(below, buf, 0xfe * 512, sizeof(buf), NULL), 0,
             "read them below");
    CHECK(!memcmp(buf + 512, ct, 512),
          "sector 0xff of a longer request is vector 10");
    CHECK(memcmp(buf, ct, 512) && memcmp(buf + 1024, ct, 512) &&
              memcmp(buf, buf + 1024, 512),
          "its neighbours have tweaks of their own");
    dl_close(d);

    /* the same through a file, read back with pread */
    {
        _cleanup_free_ char *img = make_file("vector.raw", 256 * 512);
        int fd;

        d = t_open_ok(ctx, crypt_over(key_path, t_node("file", "path", img, NULL)), 0);
        CHECK_EQ(dl_pwrite(d, pt, 0xff * 512, 512, NULL), 0,
                 "write vector 10's plaintext to the file");
        CHECK_EQ(dl_flush(d, NULL), 0, "flush");
        dl_close(d);
        fd = open(img, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && pread(fd, buf, 512, 0xff * 512) == 512 &&
                  !memcmp(buf, ct, 512),
              "vector 10: the file holds IEEE 1619's ciphertext");
        if (fd >= 0)
            close(fd);
        unlink(img);
    }
}

/* With 4096-byte sectors the data unit is 4096 bytes and the tweak the
 * 4096-byte sector index (dm-crypt's iv_large_sectors). */
static void test_large_sectors(void)
{
    const size_t n = (3u << 20) + 5 * 4096; /* split by the core */
    const uint64_t off = 5 * 4096;
    uint8_t *pt = malloc(n), *back = malloc(n);
    uint8_t raw[4096], dec[4096];
    struct dl_disk *d;

    fill_random(pt, n);
    d = t_open_ok(ctx, crypt_over(key_path,
                           t_node("ram", "size", "8M", "sector", "4096", NULL)),
                0);
    CHECK_EQ(dl_sector_size(d), 4096, "crypt inherits 4096-byte sectors");
    CHECK_EQ(dl_pwrite(d, pt, off, n, NULL), 0, "write 3 MiB and a bit");
    CHECK_EQ(dl_pread(d, back, off, n, NULL), 0, "read it back");
    CHECK(!memcmp(pt, back, n), "a long request reads back");
    CHECK_EQ(dl_pread(dl_child(d, 0), raw, 7 * 4096, 4096, NULL), 0,
             "read sector 7 below");
    xts_unit(key, 7, 0, raw, dec, 4096);
    CHECK(!memcmp(dec, pt + 2 * 4096, 4096),
          "sector 7 decrypts with tweak 7 as one 4096-byte data unit");
    xts_unit(key, 7 * 8, 0, raw, dec, 4096);
    CHECK(memcmp(dec, pt + 2 * 4096, 4096),
          "not with the 512-byte count (56)");
    /* a sector past the first 1 MiB split */
    CHECK_EQ(dl_pread(dl_child(d, 0), raw, 300 * 4096, 4096, NULL), 0,
             "read sector 300 below");
    xts_unit(key, 300, 0, raw, dec, 4096);
    CHECK(!memcmp(dec, pt + 295 * 4096, 4096),
          "sector 300 decrypts with tweak 300");
    dl_close(d);
    free(pt);
    free(back);
}

/* 512-byte sectors in a request of many chunks: every sector below is
 * its own data unit with its own index as the tweak. */
static void test_long_request(void)
{
    const uint64_t first = 1000, n = (1u << 20) + 3 * 512;
    uint8_t *pt = malloc(n), *raw = malloc(n), dec[512];
    struct dl_disk *d;
    unsigned bad = 0;

    fill_random(pt, n);
    d = t_open_ok(ctx, crypt_over(key_path,
                           t_node("ram", "size", "8M", "sector", "512", NULL)),
                0);
    CHECK_EQ(dl_pwrite(d, pt, first * 512, n, NULL), 0,
             "write 1 MiB and three sectors");
    CHECK_EQ(dl_pread(dl_child(d, 0), raw, first * 512, n, NULL), 0,
             "read the ciphertext below");
    for (uint64_t i = 0; i < n / 512; i++) {
        xts_unit(key, first + i, 0, raw + 512 * i, dec, 512);
        bad += memcmp(dec, pt + 512 * i, 512) != 0;
    }
    CHECK(bad == 0, "each of the %" PRIu64 " sectors decrypts with OpenSSL's "
          "XTS and its own index (%u did not)", n / 512, bad);
    dl_close(d);
    free(pt);
    free(raw);
}

/* ---- the tweak arithmetic, each implementation this CPU runs ---- */

/* IEEE 1619's multiplication by alpha, a byte at a time */
static void gf_mul_alpha(uint8_t t[16])
{
    int carry = 0;

    for (int k = 0; k < 16; k++) {
        const int out = t[k] >> 7;

        t[k] = (uint8_t)((t[k] << 1) | carry);
        carry = out;
    }
    if (carry)
        t[0] ^= 0x87;
}

static void test_xts_impls(void)
{
    const struct dl_xts_impl *impl;
    const size_t n_impl = dl_xts_impls(&impl);
    enum { MAX_UNITS = 9, MAX_BYTES = MAX_UNITS * 4096 };
    uint8_t *in = malloc(MAX_BYTES + 1), *out = malloc(MAX_BYTES + 1);
    uint8_t *want_t = malloc(MAX_BYTES), *want = malloc(MAX_BYTES);
    uint8_t *t = aligned_alloc(64, MAX_BYTES);
    uint8_t first[16 * (MAX_UNITS + DL_XTS_FIRST_PAD)];

    CHECK(n_impl >= 1 && !strcmp(impl[n_impl - 1].name, "portable"),
          "the portable implementation is always there, last");
    for (size_t k = 0; k < n_impl; k++) {
        unsigned bad = 0;

        for (size_t lss = 512; lss <= 4096; lss *= 2)
            for (size_t units = 1; units <= MAX_UNITS; units += 4)
                for (int shift = 0; shift < 2; shift++) {
                    const size_t n = units * lss;
                    /* an odd address: the data buffers need no alignment */
                    uint8_t *src = in + shift, *dst = out + shift;

                    fill_random(first, sizeof(first));
                    fill_random(src, n);
                    if (units == 1) /* every carry path: all ones */
                        memset(first, 0xff, 16);
                    for (size_t i = 0; i < units; i++) {
                        uint8_t tw[16];

                        memcpy(tw, first + 16 * i, 16);
                        for (size_t j = 0; j < lss / 16; j++) {
                            const size_t o = i * lss + 16 * j;

                            memcpy(want_t + o, tw, 16);
                            for (int b = 0; b < 16; b++)
                                want[o + b] = src[o + b] ^ tw[b];
                            gf_mul_alpha(tw);
                        }
                    }
                    impl[k].pre(dst, src, t, first, units, lss / 16);
                    bad += memcmp(t, want_t, n) != 0;
                    bad += memcmp(dst, want, n) != 0;
                    /* in place, then post undoes it */
                    memcpy(dst, src, n);
                    impl[k].pre(dst, dst, t, first, units, lss / 16);
                    bad += memcmp(dst, want, n) != 0;
                    impl[k].post(dst, t, n);
                    bad += memcmp(dst, src, n) != 0;
                }
        CHECK(bad == 0, "xts %s: tweaks and whitening equal IEEE 1619's "
              "byte-wise arithmetic (512-4096-byte units, 1-9 units, "
              "aligned or not, in place or not)", impl[k].name);
    }
    free(in);
    free(out);
    free(want_t);
    free(want);
    free(t);
}

/* ---- conformance ---- */

static void test_conformance(void)
{
    const char *sectors[] = {"512", "4096"};
    struct dl_disk *d;
    char name[64];

    for (int i = 0; i < 2; i++) {
        d = t_open_ok(ctx, crypt_over(key_path, t_node("ram", "size", "4M", "sector",
                                              sectors[i], NULL)),
                    0);
        snprintf(name, sizeof(name), "crypt:ram sector=%s", sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);

        d = t_open_ok(ctx, crypt_over(key_path, t_node("ram", "size", "4M", "sector",
                                              sectors[i], NULL)),
                    DL_OPEN_RDONLY);
        CHECK(dl_read_only(d), "opened read-only");
        snprintf(name, sizeof(name), "crypt:ram read-only sector=%s",
                 sectors[i]);
        conformance_run(d, &(struct conformance_opts){.name = name});
        dl_close(d);
    }
    {
        _cleanup_free_ char *img = make_file("conf.raw", 4 << 20);

        d = t_open_ok(ctx, crypt_over(key_path, t_node("file", "path", img, NULL)), 0);
        conformance_run(d, &(struct conformance_opts){.name = "crypt:file"});
        dl_close(d);
        unlink(img);
    }
}

/* ---- semantics ---- */

struct ext_seen {
    unsigned zero, hole, unheld, pieces;
    uint64_t hole_bytes;
};

static int ext_cb(void *opaque, uint64_t off, uint64_t len, unsigned type)
{
    struct ext_seen *e = opaque;

    e->pieces++;
    if (type & DL_EXTENT_ZERO)
        e->zero++;
    if (type & DL_EXTENT_UNHELD)
        e->unheld++;
    if (type & DL_EXTENT_HOLE) {
        e->hole++;
        e->hole_bytes += len;
    }
    return 0;
}

static void test_semantics(void)
{
    const size_t n = 64 * 1024;
    uint8_t *buf = malloc(n), *copy = malloc(n), *raw = malloc(n);
    struct dl_disk *d, *below;
    struct ext_seen e = {0};
    uint64_t a = 0, b = 0;

    d = t_open_ok(ctx, crypt_over(key_path,
                           t_node("ram", "size", "4M", "sector", "512", NULL)),
                0);
    below = dl_child(d, 0);
    CHECK(dl_unmap_behavior(d) == DL_UNMAP_UNSPECIFIED,
          "crypt reports unmap as unspecified");
    CHECK(dl_unmap_behavior(below) == DL_UNMAP_ZEROES,
          "(over a ram that unmaps to zeroes)");

    fill_random(buf, n);
    memcpy(copy, buf, n);
    CHECK_EQ(dl_pwrite(d, buf, 0, n, &(struct dl_req){.flags = DL_F_FUA}), 0,
             "write 64 KiB with FUA");
    CHECK(!memcmp(buf, copy, n), "the caller's buffer is unchanged");
    CHECK_EQ(dl_pread(below, raw, 0, n, NULL), 0, "read below");
    CHECK(memcmp(raw, copy, n), "below holds something else (ciphertext)");
    CHECK_EQ(dl_write_bytes(d, buf + 1, 1001, 3000, NULL), 0,
             "an unaligned byte write");
    CHECK(!memcmp(buf, copy, n), "still unchanged");
    CHECK_EQ(dl_pread(d, raw, 0, n, NULL), 0, "read through crypt");
    CHECK(!memcmp(raw + 1001, copy + 1, 3000) && !memcmp(raw, copy, 1001),
          "the byte write landed");

    /* zero: plaintext zeroes, ciphertext below */
    for (int trim = 0; trim < 2; trim++) {
        const uint64_t off = trim ? 32768 : 8192;
        struct dl_req rq = {.flags = trim ? DL_F_MAY_TRIM : 0};

        CHECK_EQ(dl_zero(d, off, 8192, &rq), 0,
                 trim ? "zero 8 KiB with may-trim" : "zero 8 KiB");
        CHECK_EQ(dl_pread(d, raw, off, 8192, NULL), 0, "read the zeroes");
        CHECK(all_zero(raw, 8192), "zero%s reads back zeroes",
              trim ? " with may-trim" : "");
        CHECK_EQ(dl_pread(below, raw, off, 8192, NULL), 0, "read below");
        CHECK(!all_zero(raw, 8192),
              "below%s: encrypted zeroes, not zeroes",
              trim ? " (may-trim did not trim)" : "");
    }
    CHECK_EQ(dl_zero_bytes(d, 100, 5000, NULL), 0, "byte zero");
    CHECK_EQ(dl_pread(d, raw, 0, 8192, NULL), 0, "read");
    CHECK(all_zero(raw + 100, 5000) && !memcmp(raw, copy, 100),
          "byte zero reads back");

    /* unmap is forwarded: the ram below drops the range */
    CHECK_EQ(dl_unmap(d, 16384, 8192, NULL), 0, "unmap 8 KiB");
    CHECK_EQ(dl_pread(below, raw, 16384, 8192, NULL), 0, "read below");
    CHECK(all_zero(raw, 8192), "the child unmapped it (reads zeroes below)");
    CHECK_EQ(dl_pread(d, raw, 16384, 8192, NULL), 0, "read through crypt");
    CHECK(!all_zero(raw, 8192),
          "through crypt an unmapped range is not zeroes (unspecified)");

    /* extents: allocation kept, never zero */
    CHECK_EQ(dl_extents(d, 0, dl_size(d), ext_cb, &e), 0, "extents");
    CHECK(e.zero == 0, "no extent says zero (%u did)", e.zero);
    CHECK(e.unheld == 0, "no extent says unheld");
    CHECK(e.hole > 0 && e.hole_bytes >= (4 << 20) - n,
          "what the ram never held is still a hole (%" PRIu64 " bytes)",
          e.hole_bytes);
    CHECK_EQ(dl_allocated(d, &a), 0, "allocated through crypt");
    CHECK_EQ(dl_allocated(below, &b), 0, "allocated below");
    CHECK_EQ(a, b, "allocated is the child's");
    dl_close(d);
    free(buf);
    free(copy);
    free(raw);
}

/* ---- the key file ---- */

static char *logged;
static size_t logged_len;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void capture_log(void *opaque, int level, const char *cat,
                        const char *msg)
{
    size_t n = strlen(cat) + strlen(msg) + 3;
    char *p;

    pthread_mutex_lock(&log_lock);
    p = realloc(logged, logged_len + n + 1);
    if (p) {
        logged = p;
        logged_len += (size_t)sprintf(logged + logged_len, "%s: %s\n", cat,
                                      msg);
    }
    pthread_mutex_unlock(&log_lock);
}

static void expect_refusal(const char *what, const char *kpath,
                           const char *want, const uint8_t *kbytes,
                           size_t klen)
{
    struct dl_disk *d = NULL;
    char *msg = NULL;
    int r = t_open(ctx, crypt_over(kpath, t_node("ram", "size", "1M", NULL)), 0,
                      &d, &msg);

    CHECK(r < 0 && d == NULL, "%s: refused (%d)", what, r);
    CHECK(msg && strstr(msg, want), "%s: message says '%s': %s", what, want,
          msg ? msg : "(none)");
    CHECK(msg && strstr(msg, kpath), "%s: message names the file", what);
    if (msg && kbytes)
        CHECK(!shows_key(msg, kbytes, klen),
              "%s: message shows none of the file's bytes", what);
    if (msg)
        CHECK(!shows_key(msg, key, 64), "%s: message shows no key bytes",
              what);
    if (r >= 0)
        dl_close(d);
    free(msg);
}

static void test_key_refusals(void)
{
    /* text keys: a leak of them would show as printable bytes */
    uint8_t text[65];
    uint8_t same[64];
    struct dl_ctx *old = ctx;

    ctx = t_ctx();
    dl_ctx_set_log(ctx, capture_log, NULL);
    dl_ctx_set_debug(ctx, "all", 2);
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t)('A' + (i * 7) % 26);

    {
        _cleanup_free_ char *p = write_key("k644", key, 64, 0644);

        expect_refusal("mode 0644", p, "chmod 600", key, 64);
        expect_refusal("mode 0644", p, "0644", key, 64);
        free(p);
        p = write_key("k640", key, 64, 0640);
        expect_refusal("mode 0640", p, "chmod 600", key, 64);
        free(p);
        p = write_key("k602", key, 64, 0602);
        expect_refusal("mode 0602 (others may write)", p, "chmod 600", key,
                       64);
    }
    {
        _cleanup_free_ char *p63 = write_key("k63", text, 63, 0600);
        _cleanup_free_ char *p65 = write_key("k65", text, 65, 0600);
        _cleanup_free_ char *p0 = write_key("k0", text, 0, 0600);

        expect_refusal("63 bytes", p63, "has 63 bytes", text, 63);
        expect_refusal("63 bytes", p63, "exactly 64", text, 63);
        expect_refusal("65 bytes", p65, "has 65 bytes", text, 65);
        expect_refusal("empty", p0, "has 0 bytes", NULL, 0);
    }
    {
        _cleanup_free_ char *p = NULL;

        memcpy(same, text, 32);
        memcpy(same + 32, text, 32);
        p = write_key("ksame", same, 64, 0600);
        expect_refusal("identical halves", p, "identical", same, 64);
    }
    {
        _cleanup_free_ char *p = t_path(dir, "no-such-key");

        expect_refusal("missing", p, strerror(ENOENT), NULL, 0);
        free(p);
        p = t_path(dir, "keydir");
        if (mkdir(p, 0700) < 0)
            abort();
        expect_refusal("a directory", p, "not a regular file", NULL, 0);
        rmdir(p);
    }
    {
        /* an accepted key: nothing printed about the disk shows it */
        struct dl_disk *d = t_open_ok(ctx, 
            crypt_over(key_path, t_node("ram", "size", "1M", NULL)), 0);
        char *text_out = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text_out, &tlen);
        uint8_t buf[4096] = {1};

        dl_describe(d, f, 0);
        fclose(f);
        CHECK(strstr(text_out, "crypt") && !shows_key(text_out, key, 64),
              "the description shows no key: %s", text_out);
        CHECK(strstr(dl_source(d), "key_file="), "source names the key file");
        dl_pwrite(d, buf, 0, sizeof(buf), NULL);
        dl_pread(d, buf, 0, sizeof(buf), NULL);
        dl_close(d);
        free(text_out);
    }
    CHECK(logged && strstr(logged, "crypt"), "traced at debug level");
    CHECK(!logged || !shows_key(logged, key, 64),
          "no log line shows the key");
    CHECK(!logged || !shows_key(logged, text, 63),
          "no log line shows a refused key");
    free(logged);
    logged = NULL;
    logged_len = 0;
    dl_ctx_free(ctx);
    ctx = old;
}

/* ---- threads ---- */

#define T_THREADS 8
#define T_RANGE (1u << 20)

struct worker {
    struct dl_disk *d;
    unsigned id;
    uint64_t rng;
    uint8_t *model;
    unsigned bad;
};

static uint64_t w_rand(struct worker *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545f4914f6cdd1dull;
}

static void *worker_run(void *opaque)
{
    struct worker *w = opaque;
    const uint64_t base = (uint64_t)w->id * T_RANGE;
    uint8_t *buf = malloc(256 * 512);

    for (int i = 0; i < 400; i++) {
        uint64_t ns = 1 + w_rand(w) % 256;
        uint64_t at = (w_rand(w) % (T_RANGE / 512 - ns + 1)) * 512;

        if (w_rand(w) % 3) {
            for (uint64_t k = 0; k < ns * 512; k++)
                buf[k] = (uint8_t)(w_rand(w) >> 7);
            if (dl_pwrite(w->d, buf, base + at, ns * 512, NULL) < 0)
                w->bad++;
            else
                memcpy(w->model + at, buf, ns * 512);
        } else {
            if (dl_pread(w->d, buf, base + at, ns * 512, NULL) < 0 ||
                memcmp(buf, w->model + at, ns * 512))
                w->bad++;
        }
    }
    free(buf);
    return NULL;
}

static void test_threads(void)
{
    struct worker w[T_THREADS];
    pthread_t th[T_THREADS];
    struct dl_disk *d;
    uint8_t *back = malloc(T_RANGE);
    unsigned bad = 0, wrong = 0;

    d = t_open_ok(ctx, crypt_over(key_path, t_node("ram", "size", "8M", NULL)), 0);
    for (unsigned i = 0; i < T_THREADS; i++) {
        w[i] = (struct worker){.d = d, .id = i, .rng = t_rand() | 1,
                               .model = calloc(1, T_RANGE)};
        /* the range starts as encrypted zeroes */
        if (dl_zero(d, (uint64_t)i * T_RANGE, T_RANGE, NULL) < 0)
            abort();
    }
    for (unsigned i = 0; i < T_THREADS; i++)
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    for (unsigned i = 0; i < T_THREADS; i++) {
        pthread_join(th[i], NULL);
        bad += w[i].bad;
    }
    CHECK_EQ(bad, 0, "threads: every request succeeded and read its data");
    for (unsigned i = 0; i < T_THREADS; i++) {
        if (dl_pread(d, back, (uint64_t)i * T_RANGE, T_RANGE, NULL) < 0 ||
            memcmp(back, w[i].model, T_RANGE))
            wrong++;
        free(w[i].model);
    }
    CHECK_EQ(wrong, 0, "threads: every range holds what its thread wrote");
    dl_close(d);
    free(back);
}

/* ---- the key page out of core dumps ---- */

/* Bytes of the mappings marked dd (MADV_DONTDUMP); -1 when smaps does not
 * say. Adjacent dd mappings may merge, so sizes are summed, not counted. */
static long long dontdump_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    long long total = 0, size = 0;
    bool flags = false;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        long long kb;

        if (sscanf(line, "Size: %lld kB", &kb) == 1) {
            size = kb * 1024;
        } else if (!strncmp(line, "VmFlags:", 8)) {
            flags = true;
            for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
                if (!strcmp(t, "dd"))
                    total += size;
        }
    }
    fclose(f);
    return flags ? total : -1;
}

static void test_dontdump(void)
{
    const long long page = sysconf(_SC_PAGESIZE);
    long long before = dontdump_bytes(), during, after;
    struct dl_disk *d;

    if (before < 0) {
        printf("# skip: /proc/self/smaps shows no VmFlags\n");
        return;
    }
    d = t_open_ok(ctx, crypt_over(key_path, t_node("ram", "size", "1M", NULL)), 0);
    during = dontdump_bytes();
    dl_close(d);
    after = dontdump_bytes();
    CHECK(during == before + page,
          "while open one more page is not dumped (%lld -> %lld)", before,
          during);
    CHECK(after == before, "after close it is gone (%lld)", after);
}

/* ---- timing (printed, never checked) ---- */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void time_disk(struct dl_disk *d, const char *name, uint8_t *buf)
{
    const uint64_t size = dl_size(d), mib = 1 << 20;
    double t0, tw, tr;
    int rounds = 4;

    /* first pass allocates the ram's chunks */
    for (uint64_t o = 0; o < size; o += mib)
        dl_pwrite(d, buf, o, mib, NULL);
    t0 = now();
    for (int k = 0; k < rounds; k++)
        for (uint64_t o = 0; o < size; o += mib)
            dl_pwrite(d, buf, o, mib, NULL);
    tw = now() - t0;
    t0 = now();
    for (int k = 0; k < rounds; k++)
        for (uint64_t o = 0; o < size; o += mib)
            dl_pread(d, buf, o, mib, NULL);
    tr = now() - t0;
    printf("# timing %-22s 1 MiB writes %7.0f MiB/s, reads %7.0f MiB/s\n",
           name, (double)rounds * (double)(size / mib) / tw,
           (double)rounds * (double)(size / mib) / tr);
}

static void test_timing(void)
{
    uint8_t *buf = malloc(1 << 20);
    const char *sectors[] = {"512", "4096"};

    fill_random(buf, 1 << 20);
    for (int i = 0; i < 2; i++) {
        struct dl_disk *d;
        char name[48];

        d = t_open_ok(ctx, t_node("ram", "size", "64M", "sector", sectors[i], NULL), 0);
        snprintf(name, sizeof(name), "ram sector=%s", sectors[i]);
        time_disk(d, name, buf);
        dl_close(d);
        d = t_open_ok(ctx, crypt_over(key_path, t_node("ram", "size", "64M", "sector",
                                              sectors[i], NULL)),
                    0);
        snprintf(name, sizeof(name), "crypt:ram sector=%s", sectors[i]);
        time_disk(d, name, buf);
        dl_close(d);
    }
    free(buf);
}

int main(void)
{
    t_seed();
    ctx = t_ctx();
    dir = t_tmpdir();
    hex_to_bytes(vec_key, key, sizeof(key));
    key_path = write_key("vector.key", key, sizeof(key), 0600);

    test_vectors();
    test_large_sectors();
    test_xts_impls();
    test_long_request();
    test_conformance();
    test_semantics();
    test_key_refusals();
    test_threads();
    test_dontdump();
    test_timing();

    free(key_path);
    t_cleanup_dir(dir);
    free(dir);
    dl_ctx_free(ctx);
    return t_done();
}
