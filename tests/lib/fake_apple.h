/*
 * fake_apple: a stand-in for Apple's Enterprise Attestation PKI, for tests.
 *
 * Apple's real "Enterprise Attestation Sub CA 1" and its key are not public, so tests cannot get
 * real attestations for their own devices. This module builds a hierarchy of the same shape (a
 * P-384 self-signed root, a P-384 sub CA with pathlen 0, ECDSA-SHA384 everywhere) and issues leaves
 * shaped like Apple's (docs/attestation.md): P-384 key, no authority or subject key
 * identifier, critical basicConstraints CA:FALSE, critical keyUsage 0xF0, subject
 * "CN=<64 hex>, OU=AAA Certification, O=Apple Inc., ST=California", 91 days of validity, and the
 * non-critical extensions of arc 1.2.840.113635.100.8 whose value is the OCTET STRING contents: raw
 * ASCII for the strings, the raw nonce bytes for the freshness code, a DER INTEGER for SIP and
 * kexts. A struct fake_leaf_spec sets, omits, blanks, duplicates or adds any extension and chooses
 * the validity and the signer, so a test can build each failure a verifier must catch.
 *
 * vouchd's attestation_roots points at the root PEM (DIR/apple-root.pem after fake_apple_save()).
 *
 * Ownership: fake_apple_new(), _dup(), _load() and _open() hand over a hierarchy the caller frees
 * with fake_apple_free(); strings and DER returned through pointers are malloc()ed (free()); the
 * items of a struct fake_chain are freed with fake_chain_free(). A hierarchy is not shared between
 * threads: give each thread its own fake_apple_dup(). Fallible functions return false (or NULL)
 * and write a one-line reason to err.
 */
#ifndef VOUCH_FAKE_APPLE_H
#define VOUCH_FAKE_APPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FAKE_APPLE_ROOT_CN "Stand-in Apple Enterprise Attestation Root CA"
#define FAKE_APPLE_SUB_CN "Stand-in Apple Enterprise Attestation Sub CA 1"
#define FAKE_APPLE_ARC "1.2.840.113635.100.8"

/* The files fake_apple_save() writes in its directory (keys: unencrypted PKCS#8). */
#define FAKE_APPLE_ROOT_CERT_FILE "apple-root.pem"
#define FAKE_APPLE_ROOT_KEY_FILE "apple-root.key"
#define FAKE_APPLE_SUB_CERT_FILE "apple-sub.pem"
#define FAKE_APPLE_SUB_KEY_FILE "apple-sub.key"

#define FAKE_APPLE_LEAF_DAYS 91  /* what leaves seen in the field carry */
#define FAKE_APPLE_VALUE_MAX 256 /* longest extension value a spec holds */
#define FAKE_APPLE_EXTRA_MAX 8   /* extra raw extensions per leaf */
#define FAKE_APPLE_OID_MAX 64
#define FAKE_APPLE_CN_MAX 128
#define FAKE_CHAIN_MAX 4

/* The Apple properties, in the order a real leaf carries them (see fake_apple_prop_oid()). */
enum fake_apple_prop {
    FAKE_PROP_SEPOS_VERSION,             /* .10.2 raw ASCII */
    FAKE_PROP_LLB_VERSION,               /* .10.3 raw ASCII */
    FAKE_PROP_OS_VERSION,                /* .10.1 raw ASCII */
    FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID, /* .9.4  raw ASCII */
    FAKE_PROP_SECURE_BOOT,               /* .13.2 raw ASCII (macOS) */
    FAKE_PROP_SIP,                       /* .13.1 DER INTEGER, 0 = enabled (macOS) */
    FAKE_PROP_KEXTS,                     /* .13.3 DER INTEGER, 0 = not allowed (macOS) */
    FAKE_PROP_SERIAL_NUMBER,             /* .9.1  raw ASCII */
    FAKE_PROP_UDID,                      /* .9.2  raw ASCII */
    FAKE_PROP_FRESHNESS,                 /* .11.1 raw nonce bytes */
    FAKE_PROP_COUNT
};

enum fake_prop_state {
    FAKE_PROP_ABSENT = 0, /* no extension (what a zeroed spec holds) */
    FAKE_PROP_VALUE,      /* the extension with value[0..len) */
    FAKE_PROP_BLANK       /* the extension with an empty value */
};

struct fake_leaf_prop {
    enum fake_prop_state state;
    bool duplicate; /* the extension appears twice in a row, same value */
    bool critical;  /* marked critical (Apple's never are) */
    size_t len;
    unsigned char value[FAKE_APPLE_VALUE_MAX];
};

/* An extension added after the Apple ones, exactly as given. */
struct fake_leaf_extra {
    char oid[FAKE_APPLE_OID_MAX]; /* dotted decimal */
    bool critical;
    size_t len;
    unsigned char value[FAKE_APPLE_VALUE_MAX]; /* the OCTET STRING contents */
};

enum fake_leaf_issuer {
    FAKE_ISSUER_SUB = 0, /* the signer's sub CA, as Apple does */
    FAKE_ISSUER_ROOT     /* the signer's root directly */
};

struct evp_pkey_st;

/* Everything about one leaf. Start with fake_leaf_spec_init() (or _device()), then adjust. */
struct fake_leaf_spec {
    struct fake_leaf_prop props[FAKE_PROP_COUNT];
    struct fake_leaf_extra extra[FAKE_APPLE_EXTRA_MAX];
    size_t extra_count;
    time_t not_before;
    time_t not_after;                   /* 0: not_before + FAKE_APPLE_LEAF_DAYS */
    uint64_t serial;                    /* 0: not_before in milliseconds plus 0..999, as Apple's */
    char subject_cn[FAKE_APPLE_CN_MAX]; /* empty: hex SHA-256 of the leaf's public key */
    const struct fake_apple *signer;    /* NULL: the hierarchy passed to fake_apple_leaf() */
    enum fake_leaf_issuer issuer;       /* which certificate of the signer signs */
    /* The key the leaf certifies (borrowed), made by the caller as a Secure Enclave makes it,
     * so that the caller can sign with it (an ACME finalize CSR). NULL: a fresh P-384 key, or
     * the one of fake_apple_reuse_leaf_key(). Any type is certified as given. */
    struct evp_pkey_st *key;
};

/* What a device is, for fake_leaf_spec_device(). NULL strings leave the property absent. */
struct fake_apple_device {
    const char *serial_number;
    const char *udid;
    const char *os_version;
    const char *sepos_version; /* NULL: os_version, as on iOS */
    const char *llb_version;   /* NULL: os_version, as on iOS */
    const char *software_update_device_id;
    const unsigned char *nonce; /* NULL: no freshness code */
    size_t nonce_len;
    bool macos; /* adds SIP enabled, "Full Security", kexts not allowed, as the real Mac leaf */
};

/* DER items as a device sends them: [leaf, sub CA]. */
struct fake_chain {
    size_t count;
    unsigned char *der[FAKE_CHAIN_MAX];
    size_t len[FAKE_CHAIN_MAX];
};

struct fake_apple;

/* "1.2.840.113635.100.8.9.1" for FAKE_PROP_SERIAL_NUMBER, ...; NULL when out of range. */
const char *fake_apple_prop_oid(enum fake_apple_prop prop);
/* A short name: "serial", "udid", "sudid", "os", "sepos", "llb", "freshness", "sip",
 * "secure-boot", "kexts". */
const char *fake_apple_prop_name(enum fake_apple_prop prop);
/* Accepts the dotted OID, its suffix after the arc ("9.1") or the short name. */
bool fake_apple_prop_parse(const char *text, enum fake_apple_prop *prop)
    __attribute__((warn_unused_result));

/* A zeroed spec (no extension) valid from not_before for FAKE_APPLE_LEAF_DAYS. */
void fake_leaf_spec_init(struct fake_leaf_spec *spec, time_t not_before);
/* fake_leaf_spec_init() plus every property of dev. False when a value is too long. */
bool fake_leaf_spec_device(struct fake_leaf_spec *spec, const struct fake_apple_device *dev,
                           time_t not_before) __attribute__((warn_unused_result));
/* Sets a property to exactly value[0..len) (len 0 makes it blank). False when too long. */
bool fake_leaf_spec_set(struct fake_leaf_spec *spec, enum fake_apple_prop prop, const void *value,
                        size_t len) __attribute__((warn_unused_result));
bool fake_leaf_spec_set_string(struct fake_leaf_spec *spec, enum fake_apple_prop prop,
                               const char *value) __attribute__((warn_unused_result));
/* Sets a property to the DER INTEGER value (02 01 xx), how .13.1 and .13.3 are encoded. */
void fake_leaf_spec_set_int(struct fake_leaf_spec *spec, enum fake_apple_prop prop, uint8_t value);
void fake_leaf_spec_blank(struct fake_leaf_spec *spec, enum fake_apple_prop prop);
void fake_leaf_spec_omit(struct fake_leaf_spec *spec, enum fake_apple_prop prop);
/* Appends an extension (dotted oid, raw OCTET STRING contents). False when full or too long. */
bool fake_leaf_spec_add_extra(struct fake_leaf_spec *spec, const char *oid, bool critical,
                              const void *value, size_t len) __attribute__((warn_unused_result));

/* A new hierarchy with fresh P-384 keys, valid from 2020-01-01 to 2049-12-31. */
struct fake_apple *fake_apple_new(char *err, size_t errlen);
/* The same, valid from not_before to not_after (an expired or not yet valid hierarchy). */
struct fake_apple *fake_apple_new_valid(time_t not_before, time_t not_after, char *err,
                                        size_t errlen);
/* A deep copy, for another thread. */
struct fake_apple *fake_apple_dup(const struct fake_apple *pki, char *err, size_t errlen);
void fake_apple_free(struct fake_apple *pki);

/* From now on every leaf of pki certifies one P-384 key made here, instead of a fresh key per
 * leaf (which is what a device's Secure Enclave does, and what costs most in minting a leaf:
 * about 0.8 ms of 1.6). Its encoding and the subject CN hashed from it are made here too, not per
 * leaf; the leaves are the same bytes either way. For load tests: verifiers do not look at the
 * leaf's key. The copies fake_apple_dup() makes do not inherit it. */
bool fake_apple_reuse_leaf_key(struct fake_apple *pki, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Writes the four FAKE_APPLE_*_FILE files into dir (which must exist), keys first, each replaced
 * atomically. */
bool fake_apple_save(const struct fake_apple *pki, const char *dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Loads them and checks that each key belongs to its certificate and the sub CA to the root.
 * NULL on failure; *absent (may be NULL) tells "none of the four files exists" apart. */
struct fake_apple *fake_apple_load(const char *dir, bool *absent, char *err, size_t errlen);
/* Loads dir's hierarchy, or creates and saves a new one when dir holds none. *created (may be
 * NULL) says which. Not locked: callers that race on one dir serialise themselves. */
struct fake_apple *fake_apple_open(const char *dir, bool *created, char *err, size_t errlen);

/* The root certificate as PEM (NUL-terminated), what attestation_roots names. NULL on error. */
char *fake_apple_root_pem(const struct fake_apple *pki);
/* DER of the root and of the sub CA. */
bool fake_apple_root_der(const struct fake_apple *pki, unsigned char **der, size_t *len)
    __attribute__((warn_unused_result));
bool fake_apple_sub_der(const struct fake_apple *pki, unsigned char **der, size_t *len)
    __attribute__((warn_unused_result));

/* Issues a leaf per spec, signed by spec->signer (or pki), and fills chain with [leaf DER, pki's
 * sub CA DER]: the chain as the device sends it. chain is overwritten (not freed) first. */
bool fake_apple_leaf(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                     struct fake_chain *chain, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees the items and empties the chain; a zeroed chain is fine. */
void fake_chain_free(struct fake_chain *chain);

/* Certificate building blocks, shared with the simulator's device PKI (tests/sim/sim_pki.c):
 * a random positive serial of `bits` bits, and an extension from its OpenSSL config text. */
struct x509_st;
struct v3_ext_ctx;
struct bio_st;
bool fake_x509_random_serial(struct x509_st *cert, int bits) __attribute__((warn_unused_result));
bool fake_x509_add_ext(struct x509_st *cert, struct v3_ext_ctx *ctx, int nid, const char *value)
    __attribute__((warn_unused_result));

/* Writes "what: <most recent OpenSSL error>" (or just what) to err and empties this thread's
 * OpenSSL error queue. */
void fake_openssl_error(char *err, size_t errlen, const char *what);

/* A memory BIO's contents as a new NUL-terminated string the caller frees; *len (if not NULL)
 * receives its length. NULL when out of memory. */
char *fake_bio_string(struct bio_st *bio, size_t *len);

#endif
