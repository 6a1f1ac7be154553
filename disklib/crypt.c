/* crypt — XTS-AES-256 over the disk below (IEEE 1619, OpenSSL EVP).
 *
 * Layout: nothing of our own on disk. Each logical sector of the child is
 * one XTS data unit; its tweak is the sector index (offset / sector size)
 * as a 128-bit little-endian integer. With 512-byte sectors that is byte
 * for byte what dm-crypt aes-xts-plain64 writes. With 4096-byte sectors
 * the tweak counts 4096-byte sectors, which is what dm-crypt does only
 * with iv_large_sectors (without it dm-crypt counts 512-byte units).
 *
 * Key: a file of exactly 64 raw bytes (Key1 for the data, Key2 for the
 * tweak), refused when group or others may read or write it and when its
 * halves are equal. It is read straight into one anonymous page that is
 * kept out of core dumps (MADV_DONTDUMP) and locked in memory where the
 * limit allows; the page stays while the disk is open, because the
 * context pools grow on demand, and is wiped and unmapped on close. The
 * expanded key schedules live inside OpenSSL's contexts, which this file
 * cannot place: keeping them out of a core dump is the program's business
 * (no core dumps, or an OpenSSL secure heap).
 *
 * Data path: a read reads the ciphertext into the caller's buffer and
 * decrypts it in place. A write never touches the caller's buffer: it
 * encrypts into the buffer of its context slot (max_io is its size, so
 * the core splits larger writes) and writes that below with the caller's
 * flags. Zeroes of plaintext are not zeroes of ciphertext, so zero is
 * refused with -EOPNOTSUPP and the core writes encrypted zeroes through
 * our write (it never forwards zero or a trim below, as unmap here reads
 * back "unspecified"). Unmap is forwarded; extents are the child's with
 * only the allocation bit kept.
 *
 * Threads: the driver is parallel. Keying a context costs a key schedule,
 * so every request borrows already keyed contexts (encrypt and decrypt
 * apart: their schedules differ). Sectors of 4096 bytes and more are one
 * XTS call each with the IV set; smaller ones are done a chunk at a time
 * around one ECB pass (see crypt_chunks), as setting the IV costs OpenSSL
 * about as much as encrypting 512 bytes. A pool
 * is an array of slots claimed with a compare-and-swap, each slot on its
 * own cache line, the scan starting at a place derived from the thread so
 * that threads rarely meet; when all slots are busy the pool grows under
 * its mutex up to CRYPT_SLOTS, beyond that a request waits for a slot. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "disklib/drivers.h"
#include "disklib/util.h"
#include "disklib/xts.h"

#define CRYPT_KEY_LEN 64
#define CRYPT_SLOTS 64          /* contexts per direction, at most */
#define CRYPT_BUF (1u << 20)    /* largest write, encrypted at once */
#define CRYPT_BUFS_KEPT 32

enum {
    CRYPT_CIPHER,
    CRYPT_KEY_FILE,
};

static const char *const crypt_ciphers[] = {"xts-aes-256", NULL};

static const struct dl_param crypt_params[] = {
    [CRYPT_CIPHER] = {.name = "cipher", .type = DL_P_ENUM,
                      .def = "xts-aes-256", .choices = crypt_ciphers,
                      .help = "cipher; one data unit per logical sector, "
                              "tweak = sector index (aes-xts-plain64)"},
    [CRYPT_KEY_FILE] = {.name = "key_file", .type = DL_P_PATH,
                        .required = true,
                        .help = "file of exactly 64 random bytes (two "
                                "different AES-256 keys), mode 0600; for "
                                "example head -c 64 /dev/urandom"},
};

enum {
    SLOT_EMPTY = 0, /* no context yet */
    SLOT_FREE,
    SLOT_BUSY,
};

/* A slot is claimed by the compare-and-swap of state from FREE to BUSY
 * and belongs to its claimer until it stores FREE again. Its contexts are
 * written under the pool's lock before n counts it. */
struct crypt_slot {
    alignas(64) _Atomic int state;
    /* large sectors: */
    EVP_CIPHER_CTX *ctx; /* aes-256-xts, one data unit per call */
    /* small sectors: */
    EVP_CIPHER_CTX *k1;  /* aes-256-ecb with Key1, this pool's direction */
    EVP_CIPHER_CTX *k2;  /* aes-256-ecb with Key2, encrypting (tweaks) */
    uint8_t *buf;        /* encrypting: ciphertext of a write, or NULL */
};

struct crypt_pool {
    struct crypt_slot *slot;  /* CRYPT_SLOTS of them, 64-byte aligned */
    _Atomic unsigned n;       /* slots with a context: [0, n); grows only
                               * under lock, read without it (acquire) */
    _Atomic unsigned waiters; /* requests waiting on cond */
    pthread_mutex_t lock;     /* growth and waiting */
    pthread_cond_t cond;      /* a slot came back; waited on with lock */
    int enc;
    bool ecb;  /* slots for small sectors (crypt_chunks) */
    bool inited;
};

struct crypt_state {
    uint8_t *key;     /* one page, or NULL */
    size_t key_page;
    bool key_locked;
    struct crypt_pool enc, dec;
    struct dl_bufpool *bufs;
    const struct dl_xts_impl *xts; /* tweak arithmetic below 4096 */
    unsigned shift;   /* log2 of the sector size */
};

/* ---- contexts ---- */

static int crypt_ctx_new(const uint8_t *key, int enc, EVP_CIPHER_CTX **ret)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    if (!c)
        return -ENOMEM;
    if (EVP_CipherInit_ex(c, EVP_aes_256_xts(), NULL, key, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_key_length(c) != CRYPT_KEY_LEN) {
        EVP_CIPHER_CTX_free(c);
        ERR_clear_error();
        return -EIO;
    }
    *ret = c;
    return 0;
}

/* aes-256-ecb with one 32-byte half of the key, no padding */
static int crypt_ecb_new(const uint8_t *half, int enc, EVP_CIPHER_CTX **ret)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    if (!c)
        return -ENOMEM;
    if (EVP_CipherInit_ex(c, EVP_aes_256_ecb(), NULL, half, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_set_padding(c, 0) != 1) {
        EVP_CIPHER_CTX_free(c);
        ERR_clear_error();
        return -EIO;
    }
    *ret = c;
    return 0;
}

static void crypt_slot_free(struct crypt_slot *s)
{
    EVP_CIPHER_CTX_free(s->ctx);
    EVP_CIPHER_CTX_free(s->k1);
    EVP_CIPHER_CTX_free(s->k2);
    s->ctx = s->k1 = s->k2 = NULL;
}

/* ecb: the two ECB contexts of small sectors, else the XTS one */
static int crypt_slot_new(struct crypt_slot *s, const uint8_t *key, int enc,
                          bool ecb)
{
    int r;

    if (!ecb)
        return crypt_ctx_new(key, enc, &s->ctx);
    r = crypt_ecb_new(key, enc, &s->k1);
    if (r == 0)
        r = crypt_ecb_new(key + CRYPT_KEY_LEN / 2, 1, &s->k2);
    if (r < 0)
        crypt_slot_free(s);
    return r;
}

static int crypt_pool_init(struct crypt_pool *p, int enc)
{
    p->enc = enc;
    p->slot = aligned_alloc(alignof(struct crypt_slot),
                            CRYPT_SLOTS * sizeof(struct crypt_slot));
    if (!p->slot)
        return -ENOMEM;
    for (unsigned i = 0; i < CRYPT_SLOTS; i++) {
        atomic_init(&p->slot[i].state, SLOT_EMPTY);
        p->slot[i].ctx = p->slot[i].k1 = p->slot[i].k2 = NULL;
        p->slot[i].buf = NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->inited = true;
    return 0;
}

/* bufs: where the slots' write buffers go back to */
static void crypt_pool_destroy(struct crypt_pool *p, struct dl_bufpool *bufs)
{
    if (!p->inited)
        return;
    for (unsigned i = 0; i < atomic_load(&p->n); i++) {
        if (p->slot[i].buf)
            dl_bufpool_put(bufs, p->slot[i].buf);
        crypt_slot_free(&p->slot[i]);
    }
    free(p->slot);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
}

/* Add a context in slot n, given to the caller busy. With p->lock held. */
static struct crypt_slot *crypt_pool_grow_locked(struct crypt_pool *p,
                                                 const uint8_t *key)
{
    unsigned n = atomic_load(&p->n);
    struct crypt_slot *s;

    if (n == CRYPT_SLOTS)
        return NULL;
    s = &p->slot[n];
    if (crypt_slot_new(s, key, p->enc, p->ecb) < 0)
        return NULL;
    atomic_store(&s->state, SLOT_BUSY);
    atomic_store_explicit(&p->n, n + 1, memory_order_release);
    return s;
}

static struct crypt_slot *crypt_pool_scan(struct crypt_pool *p, unsigned from)
{
    unsigned n = atomic_load_explicit(&p->n, memory_order_acquire);

    for (unsigned k = 0; k < n; k++) {
        struct crypt_slot *s = &p->slot[(from + k) % n];
        int expect = SLOT_FREE;

        if (atomic_load(&s->state) == SLOT_FREE &&
            atomic_compare_exchange_strong(&s->state, &expect, SLOT_BUSY))
            return s;
    }
    return NULL;
}

static unsigned crypt_thread_hint(void)
{
    uint64_t t = (uint64_t)(uintptr_t)pthread_self();

    return (unsigned)((t * 0x9e3779b97f4a7c15ull) >> 40);
}

static struct crypt_slot *crypt_pool_take(struct crypt_pool *p,
                                          const uint8_t *key)
{
    const unsigned from = crypt_thread_hint();
    struct crypt_slot *s = crypt_pool_scan(p, from);

    if (_likely_(s != NULL))
        return s;

    LOCK_GUARD(&p->lock);
    s = crypt_pool_grow_locked(p, key);
    /* Full (or out of memory with contexts to share): wait for one.
     * waiters is raised before the scan and read by crypt_pool_put after
     * it frees a slot (both sequentially consistent), so either the scan
     * sees the free slot or the put sees the waiter and signals. */
    while (!s && atomic_load(&p->n) > 0) {
        atomic_fetch_add(&p->waiters, 1);
        s = crypt_pool_scan(p, from);
        if (!s)
            pthread_cond_wait(&p->cond, &p->lock);
        atomic_fetch_sub(&p->waiters, 1);
    }
    return s;
}

static void crypt_pool_put(struct crypt_pool *p, struct crypt_slot *s)
{
    atomic_store(&s->state, SLOT_FREE);
    if (_unlikely_(atomic_load(&p->waiters) > 0)) {
        LOCK_GUARD(&p->lock);
        pthread_cond_signal(&p->cond);
    }
}

static int crypt_failed(struct dl_disk *d, uint64_t sector)
{
    const char *why = ERR_reason_error_string(ERR_peek_error());

    dl_debug(d->ctx, "crypt", "OpenSSL failed at sector %" PRIu64 ": %s",
             sector, why ? why : "unknown error");
    ERR_clear_error();
    return -EIO;
}

/* One XTS call per sector (a data unit per call, the IV set each time):
 * what large sectors use. */
static int crypt_units(struct dl_disk *d, EVP_CIPHER_CTX *c, uint8_t *out,
                       const uint8_t *in, uint64_t len, uint64_t sector)
{
    const int lss = (int)d->lss;
    uint8_t iv[16] = {0};

    for (uint64_t pos = 0; pos < len; pos += (uint64_t)lss, sector++) {
        int outl = 0;

        for (int i = 0; i < 8; i++)
            iv[i] = (uint8_t)(sector >> (8 * i));
        if (_unlikely_(
                EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1 ||
                EVP_CipherUpdate(c, out + pos, &outl, in + pos, lss) != 1 ||
                outl != lss))
            return crypt_failed(d, sector);
    }
    return 0;
}

/* Small sectors: setting the IV costs OpenSSL more than 512 bytes of AES,
 * so XTS is done here a chunk of sectors at a time around one ECB pass
 * (xts.c): the sectors' first tweaks E2(index) from one ECB call with
 * Key2, then out = in ^ T, E1 or D1 in place, out ^= T. No ciphertext
 * stealing is needed: sectors are whole AES blocks. */
#define CRYPT_CHUNK 4096
/* below 4096 bytes; from there OpenSSL's XTS is faster per call */
#define CRYPT_CHUNKED(lss) ((lss) < 4096)

static int crypt_chunks(struct dl_disk *d, struct crypt_slot *slot,
                        uint8_t *out, const uint8_t *in, uint64_t len,
                        uint64_t sector)
{
    const struct crypt_state *s = d->state;
    const uint64_t lss = d->lss;
    uint8_t t[CRYPT_CHUNK] __attribute__((aligned(64)));
    uint64_t first[2 * (CRYPT_CHUNK / 512 + DL_XTS_FIRST_PAD)] = {0};

    for (uint64_t pos = 0; pos < len;) {
        const uint64_t n = MIN(len - pos, (uint64_t)CRYPT_CHUNK);
        const uint64_t m = n / lss;
        int outl = 0;

        /* the tweak of each sector's first block: E2(index), the index
         * a little-endian 128-bit integer */
        for (uint64_t i = 0; i < m; i++) {
            first[2 * i] = htole64(sector + i);
            first[2 * i + 1] = 0;
        }
        if (_unlikely_(EVP_CipherUpdate(slot->k2, (uint8_t *)first, &outl,
                                        (uint8_t *)first, (int)(m * 16)) != 1))
            return crypt_failed(d, sector);
        s->xts->pre(out + pos, in + pos, t, (const uint8_t *)first, m,
                    lss / 16);
        if (_unlikely_(EVP_CipherUpdate(slot->k1, out + pos, &outl, out + pos,
                                        (int)n) != 1 ||
                       (uint64_t)outl != n))
            return crypt_failed(d, sector);
        s->xts->post(out + pos, t, n);
        pos += n;
        sector += m;
    }
    return 0;
}

/* En- or decrypt len bytes (whole sectors) from in to out (which may be
 * in), the first sector having index sector. */
static int crypt_sectors(struct dl_disk *d, struct crypt_slot *slot,
                         uint8_t *out, const uint8_t *in, uint64_t len,
                         uint64_t sector)
{
    if (CRYPT_CHUNKED(d->lss))
        return crypt_chunks(d, slot, out, in, len, sector);
    return crypt_units(d, slot->ctx, out, in, len, sector);
}

/* ---- data path ---- */

static int crypt_read(struct dl_disk *d, void *buf, uint64_t off,
                      uint64_t len, const struct dl_req *rq)
{
    struct crypt_state *s = d->state;
    struct crypt_slot *slot;
    int r = dl_pread(d->child[0], buf, off, len, rq);

    if (r < 0)
        return r;
    slot = crypt_pool_take(&s->dec, s->key);
    if (!slot)
        return -ENOMEM;
    r = crypt_sectors(d, slot, buf, buf, len, off >> s->shift);
    crypt_pool_put(&s->dec, slot);
    return r;
}

static int crypt_write(struct dl_disk *d, const void *buf, uint64_t off,
                       uint64_t len, const struct dl_req *rq)
{
    struct crypt_state *s = d->state;
    struct crypt_slot *slot;
    int r;

    if (_unlikely_(len > dl_bufpool_bufsize(s->bufs)))
        return -EINVAL; /* the core splits at max_io */
    slot = crypt_pool_take(&s->enc, s->key);
    if (!slot)
        return -ENOMEM;
    /* the slot keeps its buffer: a thread mostly gets the same slot
     * back, so the buffer is still in its cache */
    if (!slot->buf)
        slot->buf = dl_bufpool_get(s->bufs);
    if (!slot->buf) {
        crypt_pool_put(&s->enc, slot);
        return -ENOMEM;
    }
    r = crypt_sectors(d, slot, slot->buf, buf, len, off >> s->shift);
    if (r == 0)
        r = dl_pwrite(d->child[0], slot->buf, off, len, rq);
    crypt_pool_put(&s->enc, slot);
    return r;
}

static int crypt_zero(struct dl_disk *d, uint64_t off, uint64_t len,
                      const struct dl_req *rq)
{
    return -EOPNOTSUPP;
}

static int crypt_unmap(struct dl_disk *d, uint64_t off, uint64_t len,
                       const struct dl_req *rq)
{
    return dl_unmap(d->child[0], off, len, rq);
}

struct crypt_ext {
    dl_extent_fn fn;
    void *opaque;
};

/* Below, a zero range is zeroes of ciphertext, which read as noise here;
 * whether a range is allocated stays true. A layer's "not held" does not
 * apply either: this disk holds every sector. */
static int crypt_extent_cb(void *opaque, uint64_t off, uint64_t len,
                           unsigned type)
{
    struct crypt_ext *e = opaque;

    return e->fn(e->opaque, off, len, type & DL_EXTENT_HOLE);
}

static int crypt_extents(struct dl_disk *d, uint64_t off, uint64_t len,
                         dl_extent_fn fn, void *opaque)
{
    struct crypt_ext e = {.fn = fn, .opaque = opaque};

    return dl_extents(d->child[0], off, len, crypt_extent_cb, &e);
}

/* Without it the core would sum our extents over the whole disk. */
static int crypt_allocated(struct dl_disk *d, uint64_t *ret)
{
    return dl_allocated(d->child[0], ret);
}

/* ---- open / close ---- */

static int crypt_read_key(struct dl_disk *d, const char *path,
                          char **ret_msg)
{
    struct crypt_state *s = d->state;
    _cleanup_close_ int fd = -1;
    struct stat st;
    size_t got = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot open key file %s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot stat key file %s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        dl_msg(ret_msg, "key file %s is not a regular file", path);
        return -EINVAL;
    }
    if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        dl_msg(ret_msg,
               "key file %s may be read or written by group or others "
               "(mode %04o); restrict it with: chmod 600 %s",
               path, (unsigned)(st.st_mode & 07777), path);
        return -EACCES;
    }
    if (st.st_size != CRYPT_KEY_LEN) {
        dl_msg(ret_msg,
               "key file %s has %" PRIdMAX " bytes; it must hold exactly %d "
               "raw bytes (not hex or text; e.g. head -c 64 /dev/urandom)",
               path, (intmax_t)st.st_size, CRYPT_KEY_LEN);
        return -EINVAL;
    }

    s->key_page = (size_t)sysconf(_SC_PAGESIZE);
    s->key = mmap(NULL, s->key_page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->key == MAP_FAILED) {
        s->key = NULL;
        return -ENOMEM;
    }
    if (madvise(s->key, s->key_page, MADV_DONTDUMP) < 0) {
        int e = errno;

        dl_msg(ret_msg, "cannot keep the key out of core dumps "
               "(madvise MADV_DONTDUMP: %s)", strerror(e));
        return -e;
    }
#ifdef MADV_WIPEONFORK
    /* a forked child has no business with the key (best effort) */
    (void)madvise(s->key, s->key_page, MADV_WIPEONFORK);
#endif
    if (mlock(s->key, s->key_page) == 0)
        s->key_locked = true;
    else
        dl_log(d->ctx, LOG_NOTICE, "crypt",
               "key for %s not locked in memory (mlock: %s)", path,
               strerror(errno));

    /* one byte more than a key, to see a file that grew since fstat */
    while (got <= CRYPT_KEY_LEN) {
        ssize_t n = read(fd, s->key + got, CRYPT_KEY_LEN + 1 - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;

            dl_msg(ret_msg, "cannot read key file %s: %s", path,
                   strerror(e));
            return -e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got != CRYPT_KEY_LEN) {
        dl_msg(ret_msg, "key file %s changed while read: %zu%s bytes "
               "instead of %d", path, got,
               got > CRYPT_KEY_LEN ? " or more" : "", CRYPT_KEY_LEN);
        return -EINVAL;
    }
    if (CRYPTO_memcmp(s->key, s->key + CRYPT_KEY_LEN / 2,
                      CRYPT_KEY_LEN / 2) == 0) {
        dl_msg(ret_msg, "key file %s: its two 32-byte halves are identical; "
               "XTS needs two different keys", path);
        return -EINVAL;
    }
    return 0;
}

static int crypt_open(struct dl_disk *d, const struct dl_node *n,
                      unsigned flags, char **ret_msg)
{
    struct crypt_state *s = d->state;
    const struct dl_disk *c = d->child[0];
    const char *path = dl_node_str(n, CRYPT_KEY_FILE);
    uint64_t max_io = CRYPT_BUF;
    struct crypt_slot *slot;
    int r;

    r = crypt_pool_init(&s->enc, 1);
    if (r == 0)
        r = crypt_pool_init(&s->dec, 0);
    if (r < 0)
        return r;
    if (dl_node_u64(n, CRYPT_CIPHER) != 0 || !path) {
        dl_msg(ret_msg, "needs cipher=xts-aes-256 and a key_file");
        return -EINVAL;
    }
    if (c->lss < 512 || !is_pow2(c->lss)) {
        dl_msg(ret_msg, "sector size %" PRIu32 " below is not a power of "
               "two of at least 512", c->lss);
        return -EINVAL;
    }
    s->shift = (unsigned)__builtin_ctz(c->lss);
    s->enc.ecb = s->dec.ecb = CRYPT_CHUNKED(c->lss);
    (void)dl_xts_impls(&s->xts);

    r = crypt_read_key(d, path, ret_msg);
    if (r < 0)
        return r;

    /* one context of each kind now: a key OpenSSL refuses fails here */
    for (int i = 0; i < 2; i++) {
        struct crypt_pool *p = i ? &s->dec : &s->enc;
        LOCK_GUARD(&p->lock);

        slot = crypt_pool_grow_locked(p, s->key);
        if (!slot) {
            dl_msg(ret_msg, "OpenSSL refuses the key of %s for "
                   "aes-256-xts %s", path, i ? "decryption" : "encryption");
            return -EINVAL;
        }
        atomic_store(&slot->state, SLOT_FREE);
    }

    if (c->max_io && c->max_io < max_io)
        max_io = MAX(align_down(c->max_io, c->lss), c->lss);
    r = dl_bufpool_new(max_io, CRYPT_BUFS_KEPT, &s->bufs);
    if (r < 0)
        return r;
    d->max_io = max_io;
    d->unmap_behavior = DL_UNMAP_UNSPECIFIED;
    dl_disk_set_source(d, "cipher=xts-aes-256 key_file=%s", path);
    return 0;
}

static void crypt_close(struct dl_disk *d)
{
    struct crypt_state *s = d->state;

    crypt_pool_destroy(&s->enc, s->bufs);
    crypt_pool_destroy(&s->dec, s->bufs);
    dl_bufpool_free(s->bufs);
    if (s->key) {
        OPENSSL_cleanse(s->key, s->key_page);
        if (s->key_locked)
            munlock(s->key, s->key_page);
        munmap(s->key, s->key_page);
        s->key = NULL;
    }
}

const struct dl_driver dl_crypt_driver = {
    .name = "crypt",
    .summary = "XTS-AES-256 encryption of the disk below (dm-crypt "
               "aes-xts-plain64 layout)",
    .state_size = sizeof(struct crypt_state),
    .thread_model = DL_THREAD_PARALLEL,
    .params = crypt_params,
    .nparams = ARRAY_SIZE(crypt_params),
    .min_children = 1,
    .max_children = 1,
    .open = crypt_open,
    .close = crypt_close,
    .read = crypt_read,
    .write = crypt_write,
    .zero = crypt_zero,
    .unmap = crypt_unmap,
    .extents = crypt_extents,
    .allocated = crypt_allocated,
};
