#include "attest.h"
#include "attest_internal.h"

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1.2.840.113635.100.8, DER-encoded: the Apple extensions are matched on their encoded OID,
 * which costs a memcmp instead of a text conversion per extension. */
static const unsigned char apple_arc_der[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x63, 0x64, 0x08};
#define CACHE_SIZE 8

/* An intermediate already verified to a root, with the window in which both are valid. */
struct verified_intermediate {
    uint8_t sha256[32];
    X509 *cert;
    EC_GROUP *key_table; /* cert's P-384 key, its multiples precomputed; NULL: not P-384 */
    time_t valid_from, valid_until;
};

struct attest_verifier {
    X509_STORE *store;
    EVP_MD *sha256; /* fetched once: OpenSSL 3's implicit fetches cost on every call */
    EVP_MD *sha384;
    EC_GROUP *p384; /* the generator's multiples precomputed; made with the first key table */
    BN_CTX *bn;
    struct verified_intermediate cache[CACHE_SIZE];
    unsigned cache_next;
};

static const char *const status_names[] = {"verified", "failed"};
static const char *const freshness_names[] = {NULL, "fresh", "cached", "unknown"};
static const char *const reason_names[] = {
    [ATTEST_REASON_NONE] = NULL,
    [ATTEST_REASON_MALFORMED] = "malformed",
    [ATTEST_REASON_UNTRUSTED_CHAIN] = "untrusted_chain",
    [ATTEST_REASON_NONCE_MISMATCH] = "nonce_mismatch",
    [ATTEST_REASON_NONCE_MISSING] = "nonce_missing",
    [ATTEST_REASON_UDID_MISMATCH] = "udid_mismatch",
    [ATTEST_REASON_SERIAL_MISMATCH] = "serial_mismatch",
    [ATTEST_REASON_OS_VERSION_MISMATCH] = "os_version_mismatch",
    [ATTEST_REASON_STALE_ATTESTATION] = "stale_attestation",
    [ATTEST_REASON_ATTESTATION_WITHHELD] = "attestation_withheld",
    [ATTEST_REASON_NO_ANSWER] = "no_answer",
};

const char *attest_status_name(enum attest_status status)
{
    return status_names[status];
}

const char *attest_freshness_name(enum attest_freshness freshness)
{
    return freshness_names[freshness];
}

const char *attest_reason_name(enum attest_reason reason)
{
    return reason_names[reason];
}

struct attest_verifier *attest_verifier_new(const char *roots_pem, size_t roots_len, char *err,
                                            size_t err_size)
{
    struct attest_verifier *v = calloc(1, sizeof(*v));
    BIO *bio = BIO_new_mem_buf(roots_pem, (int)roots_len);
    int count = 0;
    if (v == NULL || bio == NULL || (v->store = X509_STORE_new()) == NULL ||
        (v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
        (v->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL)) == NULL ||
        (v->bn = BN_CTX_new()) == NULL) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    X509 *cert;
    while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(v->store, cert);
        X509_free(cert);
        if (!ok) {
            snprintf(err, err_size, "cannot add root %d", count + 1);
            goto fail;
        }
        count++;
    }
    if (count == 0) {
        snprintf(err, err_size, "no PEM certificate found");
        goto fail;
    }
    BIO_free(bio);
    ERR_clear_error();
    return v;
fail:
    BIO_free(bio);
    attest_verifier_free(v);
    ERR_clear_error();
    return NULL;
}

void attest_verifier_free(struct attest_verifier *v)
{
    if (v == NULL)
        return;
    for (unsigned i = 0; i < CACHE_SIZE; i++) {
        X509_free(v->cache[i].cert);
        EC_GROUP_free(v->cache[i].key_table);
    }
    X509_STORE_free(v->store);
    EVP_MD_free(v->sha256);
    EVP_MD_free(v->sha384);
    EC_GROUP_free(v->p384);
    BN_CTX_free(v->bn);
    free(v);
}

const EVP_MD *attest_verifier_get0_sha256(const struct attest_verifier *v)
{
    return v->sha256;
}

static bool time_to_time_t(const ASN1_TIME *t, time_t *out);

static bool asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
    return time_to_time_t(t, out);
}

static bool time_to_time_t(const ASN1_TIME *t, time_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = timegm(&tm);
    return true;
}

/* ---- the leaf's Apple extensions ---- */

enum value_kind { VALUE_ASCII, VALUE_INTEGER, VALUE_BYTES };

struct apple_oid {
    unsigned char suffix[2]; /* the two arcs after 1.2.840.113635.100.8 */
    enum value_kind kind;
    size_t has_offset;   /* bool in struct attest_properties */
    size_t value_offset; /* char[] or int in struct attest_properties */
};

#define ARCS(a, b) {a, b}
#define PROP(suffix, kind, name)                                                                   \
    {suffix, kind, offsetof(struct attest_properties, has_##name),                                 \
     offsetof(struct attest_properties, name)}

static const struct apple_oid apple_oids[] = {
    PROP(ARCS(9, 1), VALUE_ASCII, serial_number),
    PROP(ARCS(9, 2), VALUE_ASCII, udid),
    PROP(ARCS(9, 4), VALUE_ASCII, software_update_device_id),
    PROP(ARCS(10, 1), VALUE_ASCII, os_version),
    PROP(ARCS(10, 2), VALUE_ASCII, sepos_version),
    PROP(ARCS(10, 3), VALUE_ASCII, llb_version),
    PROP(ARCS(13, 2), VALUE_ASCII, secure_boot),
    {ARCS(13, 1), VALUE_INTEGER, 0, offsetof(struct attest_properties, sip_enabled)},
    {ARCS(13, 3), VALUE_INTEGER, 0, offsetof(struct attest_properties, third_party_kexts_allowed)},
    PROP(ARCS(11, 1), VALUE_BYTES, freshness),
};

static bool is_blank(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ')
            return false;
    }
    return true;
}

/* Stores one extension value; false when it does not have its exact encoding. */
static bool read_value(const struct apple_oid *oid, const unsigned char *data, size_t len,
                       struct attest_properties *props)
{
    char *base = (char *)props;
    if (oid->kind == VALUE_BYTES) {
        /* The freshness code is raw bytes: never DER-decoded. */
        if (len == 0)
            return true;
        if (len > ATTEST_MAX_NONCE_BYTES)
            return false;
        memcpy(props->freshness, data, len);
        props->freshness_len = len;
        props->has_freshness = true;
        return true;
    }
    if (oid->kind == VALUE_INTEGER) {
        int *value = (int *)(void *)(base + oid->value_offset);
        if (len == 0)
            return true; /* blank: undetermined */
        const unsigned char *p = data;
        ASN1_INTEGER *n = d2i_ASN1_INTEGER(NULL, &p, (long)len);
        int64_t v = -1;
        bool ok = n != NULL && p == data + len && ASN1_INTEGER_get_int64(&v, n) == 1 && v >= 0;
        ASN1_INTEGER_free(n);
        if (!ok)
            return false;
        /* Both Apple flags use 0 for the safe state: SIP enabled, no third-party kexts. */
        if (oid->value_offset == offsetof(struct attest_properties, sip_enabled))
            *value = v == 0 ? 1 : 0;
        else
            *value = v == 0 ? 0 : 1;
        return true;
    }
    if (len > ATTEST_MAX_VALUE)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] > 0x7e)
            return false;
    }
    if (is_blank(data, len))
        return true;
    memcpy(base + oid->value_offset, data, len);
    base[oid->value_offset + len] = '\0';
    *(bool *)(base + oid->has_offset) = true;
    return true;
}

static bool read_extensions(const STACK_OF(X509_EXTENSION) *exts, struct attest_properties *props)
{
    memset(props, 0, sizeof(*props));
    props->sip_enabled = -1;
    props->third_party_kexts_allowed = -1;
    bool seen[sizeof(apple_oids) / sizeof(apple_oids[0])] = {false};
    int count = sk_X509_EXTENSION_num(exts);
    for (int i = 0; i < count; i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        const ASN1_OBJECT *obj = X509_EXTENSION_get_object(ext);
        const unsigned char *oid = OBJ_get0_data(obj);
        size_t oid_len = OBJ_length(obj);
        if (oid == NULL || oid_len != sizeof(apple_arc_der) + 2 ||
            memcmp(oid, apple_arc_der, sizeof(apple_arc_der)) != 0)
            continue;
        const unsigned char *suffix = oid + sizeof(apple_arc_der);
        for (size_t k = 0; k < sizeof(apple_oids) / sizeof(apple_oids[0]); k++) {
            if (memcmp(suffix, apple_oids[k].suffix, 2) != 0)
                continue;
            /* A property stated twice could be read two ways: fail closed. */
            if (seen[k])
                return false;
            seen[k] = true;
            const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data(ext);
            if (!read_value(&apple_oids[k], ASN1_STRING_get0_data(value),
                            (size_t)ASN1_STRING_length(value), props))
                return false;
        }
    }
    return true;
}

X509 *attest_parse_der(const uint8_t *der, size_t len)
{
    if (len == 0 || len > ATTEST_MAX_CERT_BYTES)
        return NULL;
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    if (cert != NULL && p != der + len) {
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static bool read_properties(X509 *leaf, struct attest_properties *props)
{
    return read_extensions(X509_get0_extensions(leaf), props);
}

static bool read_leaf(X509 *leaf, struct attest_properties *props, time_t *not_before,
                      time_t *not_after)
{
    return read_properties(leaf, props) &&
           asn1_time_to_time_t(X509_get0_notBefore(leaf), not_before) &&
           asn1_time_to_time_t(X509_get0_notAfter(leaf), not_after);
}

bool attest_read_leaf(const uint8_t *der, size_t len, struct attest_properties *props,
                      time_t *not_before, time_t *not_after)
{
    X509 *leaf = attest_parse_der(der, len);
    bool ok = leaf != NULL && read_leaf(leaf, props, not_before, not_after);
    X509_free(leaf);
    ERR_clear_error();
    return ok;
}

/* ---- P-384 signatures by a cached intermediate ----
 *
 * OpenSSL 3.0 has no P-384 of its own: it verifies with generic big-number arithmetic, about
 * 0.5 ms a signature, most of it 384 point doublings of u1*G + u2*Q. G never changes, and Q is
 * the key of an intermediate already verified to a root, which signs every leaf of a campaign.
 * With the multiples of both precomputed (OpenSSL's own wNAF tables, as it keeps for G when
 * asked), each product needs a few doublings and about 64 additions, and the check costs about
 * two fifths. The verification is ECDSA's, step by step as OpenSSL's verify does it (ecdsa_ossl.c:
 * strict DER, 0 < r, s < n, the digest as an integer, x(u1*G + u2*Q) mod n = r); only the
 * scalar multiplications take another route through the same library. The unit tests hold it
 * to EVP_PKEY_verify's answer on valid, altered and edge-case signatures. */

/* The tables live on groups: one with G as generator (the curve's), and one per key with Q as
 * the generator, since OpenSSL precomputes multiples of a group's generator only. */
static EC_GROUP *p384_table(const EC_POINT *generator, BN_CTX *bn)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_secp384r1);
    if (g == NULL)
        return NULL;
    if (generator != NULL &&
        (EC_POINT_is_at_infinity(g, generator) || EC_POINT_is_on_curve(g, generator, bn) != 1 ||
         EC_GROUP_set_generator(g, generator, EC_GROUP_get0_order(g), EC_GROUP_get0_cofactor(g)) !=
             1))
        goto fail;
#ifndef OPENSSL_NO_DEPRECATED_3_0
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    /* Deprecated with the low-level EC API, but the one way to keep wNAF tables of a point. */
    if (EC_GROUP_precompute_mult(g, bn) == 1 && EC_GROUP_have_precompute_mult(g) == 1)
        return g;
#pragma GCC diagnostic pop
#endif
fail:
    EC_GROUP_free(g);
    return NULL;
}

EC_GROUP *attest_p384_key_table(struct attest_verifier *v, EVP_PKEY *key)
{
    char curve[32];
    uint8_t point[1 + 2 * 48];
    size_t point_len = 0;
    if (key == NULL || !EVP_PKEY_is_a(key, "EC") ||
        EVP_PKEY_get_group_name(key, curve, sizeof(curve), NULL) != 1 ||
        strcmp(curve, "secp384r1") != 0 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                        &point_len) != 1)
        return NULL;
    if (v->p384 == NULL && (v->p384 = p384_table(NULL, v->bn)) == NULL)
        return NULL;
    EC_GROUP *table = NULL;
    EC_POINT *q = EC_POINT_new(v->p384);
    if (q != NULL && EC_POINT_oct2point(v->p384, q, point, point_len, v->bn) == 1)
        table = p384_table(q, v->bn);
    EC_POINT_free(q);
    ERR_clear_error();
    return table;
}

/* u*P for the generator P of table, by its precomputed multiples: OpenSSL takes them only on
 * its wNAF path, which a product with one point (here the point at infinity times 0) takes;
 * the generator alone would go the constant-time ladder, for secret scalars. */
static bool p384_mul(const EC_GROUP *table, EC_POINT *out, const BIGNUM *u, const BIGNUM *zero,
                     BN_CTX *bn)
{
    EC_POINT *none = EC_POINT_new(table);
    bool ok = none != NULL && EC_POINT_set_to_infinity(table, none) == 1 &&
              EC_POINT_mul(table, out, u, none, zero, bn) == 1;
    EC_POINT_free(none);
    return ok;
}

bool attest_p384_verify(struct attest_verifier *v, const EC_GROUP *key_table,
                        const uint8_t digest[48], const uint8_t *sig, size_t sig_len)
{
    const EC_GROUP *g = v->p384;
    BN_CTX *bn = v->bn;
    ECDSA_SIG *s = NULL;
    unsigned char *der = NULL;
    EC_POINT *r1 = NULL, *r2 = NULL;
    bool ok = false;
    BN_CTX_start(bn);
    BIGNUM *e = BN_CTX_get(bn), *w = BN_CTX_get(bn), *u1 = BN_CTX_get(bn), *u2 = BN_CTX_get(bn),
           *x = BN_CTX_get(bn), *zero = BN_CTX_get(bn);
    const BIGNUM *n = g ? EC_GROUP_get0_order(g) : NULL, *sr, *ss;
    const unsigned char *p = sig;
    if (n == NULL || zero == NULL || sig_len > 256 ||
        (s = d2i_ECDSA_SIG(NULL, &p, (long)sig_len)) == NULL || p != sig + sig_len)
        goto out;
    /* DER only, no trailing byte: the encoding re-made must be the one received. */
    int der_len = i2d_ECDSA_SIG(s, &der);
    if (der_len <= 0 || (size_t)der_len != sig_len || memcmp(der, sig, sig_len) != 0)
        goto out;
    ECDSA_SIG_get0(s, &sr, &ss);
    if (BN_is_zero(sr) || BN_is_negative(sr) || BN_ucmp(sr, n) >= 0 || BN_is_zero(ss) ||
        BN_is_negative(ss) || BN_ucmp(ss, n) >= 0)
        goto out;
    /* The digest is as long as n (384 bits): taken whole, no truncation. */
    if (BN_bin2bn(digest, 48, e) == NULL || BN_mod_inverse(w, ss, n, bn) == NULL ||
        BN_mod_mul(u1, e, w, n, bn) != 1 || BN_mod_mul(u2, sr, w, n, bn) != 1)
        goto out;
    BN_zero(zero);
    if ((r1 = EC_POINT_new(g)) == NULL || (r2 = EC_POINT_new(key_table)) == NULL ||
        !p384_mul(g, r1, u1, zero, bn) || !p384_mul(key_table, r2, u2, zero, bn) ||
        EC_POINT_add(g, r1, r1, r2, bn) != 1 || EC_POINT_is_at_infinity(g, r1) ||
        EC_POINT_get_affine_coordinates(g, r1, x, NULL, bn) != 1 || BN_nnmod(x, x, n, bn) != 1)
        goto out;
    ok = BN_cmp(x, sr) == 0;
out:
    EC_POINT_free(r1);
    EC_POINT_free(r2);
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    BN_CTX_end(bn);
    ERR_clear_error();
    return ok;
}

/* ---- the chain ---- */

static const struct verified_intermediate *cache_find(const struct attest_verifier *v,
                                                      const uint8_t sha256[32], time_t t)
{
    for (unsigned i = 0; i < CACHE_SIZE; i++) {
        const struct verified_intermediate *e = &v->cache[i];
        if (e->cert != NULL && memcmp(e->sha256, sha256, 32) == 0 && t >= e->valid_from &&
            t < e->valid_until)
            return e;
    }
    return NULL;
}

/* der is the intermediate's encoding as the device sent it: the key its next answers are looked
 * up by. */
static void cache_add(struct attest_verifier *v, X509 *intermediate, X509 *root,
                      const uint8_t *der, size_t der_len)
{
    struct verified_intermediate e;
    time_t from_i, until_i, from_r, until_r;
    if (EVP_Digest(der, der_len, e.sha256, NULL, v->sha256, NULL) != 1 ||
        !asn1_time_to_time_t(X509_get0_notBefore(intermediate), &from_i) ||
        !asn1_time_to_time_t(X509_get0_notAfter(intermediate), &until_i) ||
        !asn1_time_to_time_t(X509_get0_notBefore(root), &from_r) ||
        !asn1_time_to_time_t(X509_get0_notAfter(root), &until_r))
        return;
    for (unsigned i = 0; i < CACHE_SIZE; i++) {
        if (v->cache[i].cert != NULL && memcmp(v->cache[i].sha256, e.sha256, 32) == 0)
            return;
    }
    if (!X509_up_ref(intermediate))
        return;
    e.cert = intermediate;
    e.key_table = attest_p384_key_table(v, X509_get0_pubkey(intermediate));
    e.valid_from = from_i > from_r ? from_i : from_r;
    e.valid_until = until_i < until_r ? until_i : until_r;
    struct verified_intermediate *slot = &v->cache[v->cache_next];
    X509_free(slot->cert);
    EC_GROUP_free(slot->key_table);
    *slot = e;
    v->cache_next = (v->cache_next + 1) % CACHE_SIZE;
}

/*
 * The cached path. Once an intermediate is known to chain to a root, what path validation would
 * still check is the leaf's own signature, its validity, its issuer's name, and its extensions.
 * Parsing the leaf with d2i_X509 would also decode its public key, and OpenSSL 3.0 builds a P-384
 * group for that every time (about a seventh of the signature check), for a key the verdict never
 * uses. So the leaf is read with templates of its own that keep the key opaque, and only leaves of
 * Apple's exact shape take this path: version 3, matching signature algorithms, no extensions but
 * basicConstraints, keyUsage and Apple's (each once, each decodable). Anything else goes the full
 * way through d2i_X509 and X509_verify_cert, which give the verdict; the unit tests compare both.
 *
 * OpenSSL's ASN.1 template macros need typedef names; these two are the only typedefs here.
 */
typedef struct attest_tbs_st {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    X509_ALGOR *signature;
    X509_NAME *issuer;
    X509_VAL *validity;
    X509_NAME *subject;
    ASN1_TYPE *key; /* SubjectPublicKeyInfo, not decoded */
    ASN1_BIT_STRING *issuer_uid;
    ASN1_BIT_STRING *subject_uid;
    STACK_OF(X509_EXTENSION) *extensions;
    ASN1_ENCODING enc; /* the bytes as received: what the signature covers */
} ATTEST_TBS;

typedef struct attest_leaf_st {
    ATTEST_TBS *tbs;
    X509_ALGOR *signature_algorithm;
    ASN1_BIT_STRING *signature;
} ATTEST_LEAF;

ASN1_SEQUENCE_enc(ATTEST_TBS, enc, 0) = {
    ASN1_EXP_OPT(ATTEST_TBS, version, ASN1_INTEGER, 0),
    ASN1_SIMPLE(ATTEST_TBS, serial, ASN1_INTEGER),
    ASN1_SIMPLE(ATTEST_TBS, signature, X509_ALGOR),
    ASN1_SIMPLE(ATTEST_TBS, issuer, X509_NAME),
    ASN1_SIMPLE(ATTEST_TBS, validity, X509_VAL),
    ASN1_SIMPLE(ATTEST_TBS, subject, X509_NAME),
    ASN1_SIMPLE(ATTEST_TBS, key, ASN1_ANY),
    ASN1_IMP_OPT(ATTEST_TBS, issuer_uid, ASN1_BIT_STRING, 1),
    ASN1_IMP_OPT(ATTEST_TBS, subject_uid, ASN1_BIT_STRING, 2),
    ASN1_EXP_SEQUENCE_OF_OPT(ATTEST_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END_ref(ATTEST_TBS, ATTEST_TBS)

ASN1_SEQUENCE(ATTEST_LEAF) = {
    ASN1_SIMPLE(ATTEST_LEAF, tbs, ATTEST_TBS),
    ASN1_SIMPLE(ATTEST_LEAF, signature_algorithm, X509_ALGOR),
    ASN1_SIMPLE(ATTEST_LEAF, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(ATTEST_LEAF)

static bool is_oid(const ASN1_OBJECT *obj, const unsigned char *der, size_t len)
{
    const unsigned char *data = OBJ_get0_data(obj);
    return data != NULL && OBJ_length(obj) == len && memcmp(data, der, len) == 0;
}

/* Apple's shape, as described above; false sends the leaf down the full path. */
static bool leaf_has_apple_shape(const ATTEST_LEAF *leaf)
{
    static const unsigned char basic_constraints[] = {0x55, 0x1d, 0x13};
    static const unsigned char key_usage[] = {0x55, 0x1d, 0x0f};
    const ATTEST_TBS *tbs = leaf->tbs;
    if (tbs->version == NULL || ASN1_INTEGER_get(tbs->version) != 2 || tbs->issuer_uid != NULL ||
        tbs->subject_uid != NULL || X509_ALGOR_cmp(tbs->signature, leaf->signature_algorithm) != 0 ||
        tbs->key == NULL || tbs->key->type != V_ASN1_SEQUENCE)
        return false;
    bool seen_bc = false, seen_ku = false;
    for (int i = 0; i < sk_X509_EXTENSION_num(tbs->extensions); i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(tbs->extensions, i);
        const ASN1_OBJECT *obj = X509_EXTENSION_get_object(ext);
        const unsigned char *oid = OBJ_get0_data(obj);
        if (is_oid(obj, basic_constraints, 3)) {
            BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(ext);
            bool ok = !seen_bc && bc != NULL && !bc->ca;
            BASIC_CONSTRAINTS_free(bc);
            if (!ok)
                return false;
            seen_bc = true;
            continue;
        }
        if (is_oid(obj, key_usage, 3)) {
            ASN1_BIT_STRING *ku = X509V3_EXT_d2i(ext);
            bool ok = !seen_ku && ku != NULL;
            ASN1_BIT_STRING_free(ku);
            if (!ok)
                return false;
            seen_ku = true;
            continue;
        }
        /* Apple's own extensions are never critical. */
        if (oid == NULL || OBJ_length(obj) != sizeof(apple_arc_der) + 2 ||
            memcmp(oid, apple_arc_der, sizeof(apple_arc_der)) != 0 ||
            X509_EXTENSION_get_critical(ext))
            return false;
    }
    return true;
}

/* The leaf's signature by e's key: with e's P-384 table when the leaf states ecdsa-with-SHA384
 * (without parameters, as Apple's) and the bytes it covers are those received; else as
 * ASN1_item_verify checks any signature. */
static bool leaf_signature_ok(struct attest_verifier *v, const struct verified_intermediate *e,
                              const ATTEST_LEAF *leaf)
{
    const ASN1_OBJECT *alg;
    int params;
    X509_ALGOR_get0(&alg, &params, NULL, leaf->signature_algorithm);
    const ASN1_ENCODING *tbs = &leaf->tbs->enc;
    if (e->key_table != NULL && OBJ_obj2nid(alg) == NID_ecdsa_with_SHA384 &&
        params == V_ASN1_UNDEF && tbs->enc != NULL && tbs->len > 0 && !tbs->modified) {
        uint8_t digest[48];
        unsigned digest_len = 0;
        /* As ASN1_item_verify: a signature with unused bits is refused. */
        return (leaf->signature->flags & 0x7) == 0 &&
               EVP_Digest(tbs->enc, (size_t)tbs->len, digest, &digest_len, v->sha384, NULL) == 1 &&
               digest_len == sizeof(digest) &&
               attest_p384_verify(v, e->key_table, digest, ASN1_STRING_get0_data(leaf->signature),
                                  (size_t)ASN1_STRING_length(leaf->signature));
    }
    EVP_PKEY *key = X509_get0_pubkey(e->cert);
    return key != NULL && ASN1_item_verify(ASN1_ITEM_rptr(ATTEST_TBS), leaf->signature_algorithm,
                                           leaf->signature, leaf->tbs, key) == 1;
}

enum cached_path { CACHED_VERIFIED, CACHED_NOT_TAKEN };

static bool time_to_time_t(const ASN1_TIME *t, time_t *out);

/* CACHED_VERIFIED, with the leaf's properties filled, when the leaf is of Apple's shape and
 * verifies under an intermediate verified before; otherwise CACHED_NOT_TAKEN (nothing filled)
 * and the full path gives the verdict, failures included, so that a refusal always reads the
 * same whatever the cache holds. */
static enum cached_path verify_by_cache(struct attest_verifier *v, const uint8_t *const *ders,
                                        const size_t *lens, size_t count, time_t t,
                                        struct attest_leaf *out)
{
    uint8_t sha256[32];
    const struct verified_intermediate *e;
    if (count != 2 || EVP_Digest(ders[1], lens[1], sha256, NULL, v->sha256, NULL) != 1 ||
        (e = cache_find(v, sha256, t)) == NULL)
        return CACHED_NOT_TAKEN;
    const unsigned char *p = ders[0];
    ATTEST_LEAF *leaf =
        (ATTEST_LEAF *)ASN1_item_d2i(NULL, &p, (long)lens[0], ASN1_ITEM_rptr(ATTEST_LEAF));
    enum cached_path result = CACHED_NOT_TAKEN;
    if (leaf == NULL || p != ders[0] + lens[0] || !leaf_has_apple_shape(leaf) ||
        !read_extensions(leaf->tbs->extensions, &out->properties) ||
        !time_to_time_t(leaf->tbs->validity->notBefore, &out->not_before) ||
        !time_to_time_t(leaf->tbs->validity->notAfter, &out->not_after))
        goto out;
    /* Valid from notBefore, expired at notAfter: as X509_cmp_time counts in path validation. */
    bool valid = ASN1_TIME_cmp_time_t(leaf->tbs->validity->notBefore, t) <= 0 &&
                 ASN1_TIME_cmp_time_t(leaf->tbs->validity->notAfter, t) > 0;
    if (valid && X509_NAME_cmp(leaf->tbs->issuer, X509_get_subject_name(e->cert)) == 0 &&
        leaf_signature_ok(v, e, leaf))
        result = CACHED_VERIFIED;
out:
    ASN1_item_free((ASN1_VALUE *)leaf, ASN1_ITEM_rptr(ATTEST_LEAF));
    if (result == CACHED_NOT_TAKEN) {
        memset(&out->properties, 0, sizeof(out->properties));
        out->properties.sip_enabled = -1;
        out->properties.third_party_kexts_allowed = -1;
    }
    ERR_clear_error();
    return result;
}

/* certs[1..] may be NULL when certs[1] is a cached intermediate (then only its bytes were
 * checked: they equal those of a certificate parsed and verified before). */
static bool verify_chain(struct attest_verifier *v, X509 **certs, const uint8_t *const *ders,
                         const size_t *der_lens, size_t count, time_t t, bool *parse_error)
{
    *parse_error = false;
    for (size_t i = 1; i < count; i++) {
        if (certs[i] == NULL && (certs[i] = attest_parse_der(ders[i], der_lens[i])) == NULL) {
            *parse_error = true;
            return false;
        }
    }

    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (untrusted == NULL || ctx == NULL)
        goto out;
    for (size_t i = 1; i < count; i++) {
        if (!sk_X509_push(untrusted, certs[i]))
            goto out;
    }
    if (X509_STORE_CTX_init(ctx, v->store, certs[0], untrusted) != 1)
        goto out;
    X509_STORE_CTX_set_time(ctx, 0, t);
    ok = X509_verify_cert(ctx) == 1;
    /* Apple's shape: the leaf hangs under an intermediate ("Sub CA 1"), never straight under a
     * root; the cached path holds to the same rule. */
    if (ok && sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) < 3)
        ok = false;
    if (ok) {
        STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
        /* Remember leaf -> intermediate -> root for the next answers. */
        if (count == 2 && sk_X509_num(chain) == 3 && X509_cmp(sk_X509_value(chain, 1), certs[1]) == 0)
            cache_add(v, sk_X509_value(chain, 1), sk_X509_value(chain, 2), ders[1], der_lens[1]);
    }
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted); /* the certificates belong to the caller */
    return ok;
}

enum attest_chain_status attest_chain_verify(struct attest_verifier *v, const uint8_t *const *ders,
                                             const size_t *lens, size_t count, time_t t,
                                             struct attest_leaf *leaf)
{
    memset(leaf, 0, sizeof(*leaf));
    leaf->properties.sip_enabled = -1;
    leaf->properties.third_party_kexts_allowed = -1;
    if (count == 0 || count > ATTEST_MAX_CERTS)
        return ATTEST_CHAIN_MALFORMED;
    for (size_t i = 0; i < count; i++) {
        if (lens[i] == 0 || lens[i] > ATTEST_MAX_CERT_BYTES)
            return ATTEST_CHAIN_MALFORMED;
    }
    if (EVP_Digest(ders[0], lens[0], leaf->sha256, NULL, v->sha256, NULL) != 1)
        return ATTEST_CHAIN_MALFORMED;
    if (verify_by_cache(v, ders, lens, count, t, leaf) == CACHED_VERIFIED) {
        leaf->parsed = true;
        return ATTEST_CHAIN_VERIFIED;
    }

    /* The full path: the leaf, then the intermediates, then X509_verify_cert. */
    X509 *certs[ATTEST_MAX_CERTS] = {NULL};
    enum attest_chain_status status;
    certs[0] = attest_parse_der(ders[0], lens[0]);
    if (certs[0] == NULL) {
        status = ATTEST_CHAIN_MALFORMED;
        goto out;
    }
    if (!read_leaf(certs[0], &leaf->properties, &leaf->not_before, &leaf->not_after)) {
        status = ATTEST_CHAIN_BAD_EXTENSION;
        goto out;
    }
    bool parse_error;
    if (verify_chain(v, certs, ders, lens, count, t, &parse_error)) {
        leaf->parsed = true;
        status = ATTEST_CHAIN_VERIFIED;
    } else {
        leaf->parsed = !parse_error;
        status = parse_error ? ATTEST_CHAIN_MALFORMED : ATTEST_CHAIN_UNTRUSTED;
    }
out:
    for (size_t i = 0; i < count; i++)
        X509_free(certs[i]);
    ERR_clear_error();
    return status;
}

/* ---- freshness ---- */

static bool nonce_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    if (b == NULL || b_len > ATTEST_MAX_NONCE_BYTES)
        return false;
    /* Always compare ATTEST_MAX_NONCE_BYTES bytes, so the time says nothing about where or
     * whether they differ. */
    uint8_t x[ATTEST_MAX_NONCE_BYTES] = {0}, y[ATTEST_MAX_NONCE_BYTES] = {0};
    memcpy(x, a, a_len);
    memcpy(y, b, b_len);
    return (CRYPTO_memcmp(x, y, sizeof(x)) == 0) & (a_len == b_len);
}

/* Fresh, cached or unknown; *older is the index of the older nonce a cached answer carried. */
static enum attest_freshness classify_freshness(const struct attest_properties *props,
                                                const struct attest_input *in, size_t *older)
{
    bool fresh = nonce_equal(props->freshness, props->freshness_len, in->request_nonce,
                             in->request_nonce_len);
    bool cached = false;
    for (size_t i = 0; i < in->older_nonce_count; i++) {
        bool equal = nonce_equal(props->freshness, props->freshness_len, in->older_nonces[i],
                                 in->older_nonce_lens[i]);
        cached |= equal;
        *older = equal ? i : *older; /* no early exit: the time says nothing of which */
    }
    if (fresh)
        return ATTEST_FRESHNESS_FRESH;
    return cached ? ATTEST_FRESHNESS_CACHED : ATTEST_FRESHNESS_UNKNOWN;
}

/* A device returns a cached attestation only while it is younger than Apple's cache, and it
 * cannot carry a nonce asked after Apple made it: anything else is an old leaf replayed. Asked
 * when a new one is due (after an OS change), it has none to return. */
static bool cached_in_time(const struct attest_input *in, size_t older, time_t not_before)
{
    if (in->require_fresh)
        return false;
    if (in->older_requested_at == NULL)
        return true;
    return not_before >= in->older_requested_at[older] - ATTEST_CLOCK_SKEW_S &&
           not_before >= in->verify_time - ATTEST_CACHE_MAX_AGE_S - ATTEST_CLOCK_SKEW_S;
}

static void fail(struct attest_verdict *out, enum attest_reason reason)
{
    out->status = ATTEST_FAILED;
    out->reason = reason;
}

void attest_verify(struct attest_verifier *v, const struct attest_input *in,
                   struct attest_verdict *out)
{
    memset(out, 0, sizeof(*out));
    out->properties.sip_enabled = -1;
    out->properties.third_party_kexts_allowed = -1;
    out->status = ATTEST_VERIFIED;
    ERR_clear_error();

    struct attest_leaf leaf;
    enum attest_chain_status chain =
        attest_chain_verify(v, in->certs, in->cert_lens, in->cert_count, in->verify_time, &leaf);
    out->leaf_parsed = leaf.parsed;
    out->properties = leaf.properties;
    out->not_before = leaf.not_before;
    out->not_after = leaf.not_after;
    memcpy(out->leaf_sha256, leaf.sha256, sizeof(out->leaf_sha256));
    if (chain != ATTEST_CHAIN_VERIFIED) {
        fail(out, chain == ATTEST_CHAIN_UNTRUSTED ? ATTEST_REASON_UNTRUSTED_CHAIN
                                                  : ATTEST_REASON_MALFORMED);
        goto out;
    }

    const struct attest_properties *p = &out->properties;
    if (!p->has_freshness) {
        out->freshness = ATTEST_FRESHNESS_UNKNOWN;
        fail(out, ATTEST_REASON_NONCE_MISSING);
        goto out;
    }
    size_t older = 0;
    out->freshness = classify_freshness(p, in, &older);
    if (out->freshness == ATTEST_FRESHNESS_UNKNOWN) {
        fail(out, ATTEST_REASON_NONCE_MISMATCH);
        goto out;
    }
    if (out->freshness == ATTEST_FRESHNESS_CACHED) {
        out->cached_nonce = in->older_nonces[older];
        out->cached_nonce_len = in->older_nonce_lens[older];
        out->cached_requested_at = in->older_requested_at ? in->older_requested_at[older] : 0;
        if (!cached_in_time(in, older, out->not_before)) {
            fail(out, ATTEST_REASON_STALE_ATTESTATION);
            goto out;
        }
    }
    if (in->expected_udid != NULL && (!p->has_udid || strcmp(p->udid, in->expected_udid) != 0)) {
        fail(out, ATTEST_REASON_UDID_MISMATCH);
        goto out;
    }
    if (in->expected_serial != NULL &&
        (!p->has_serial_number || strcmp(p->serial_number, in->expected_serial) != 0)) {
        fail(out, ATTEST_REASON_SERIAL_MISMATCH);
        goto out;
    }
    /* Only a fresh answer speaks of the OS running now; a cached one may predate an update.
     * Leaves before iOS 17.2 carry no OS version: undetermined, shown as null. */
    if (out->freshness == ATTEST_FRESHNESS_FRESH && in->reported_os_version != NULL &&
        p->has_os_version && strcmp(p->os_version, in->reported_os_version) != 0)
        fail(out, ATTEST_REASON_OS_VERSION_MISMATCH);
out:
    ERR_clear_error();
}
