/*
 * fake_apple: the stand-in Apple attestation PKI; see fake_apple.h.
 */
#include "fake_apple.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tu_file.h"

/* 2020-01-01T00:00:00Z to 2049-12-31T23:59:59Z: covers any --now a test picks and stays in
 * UTCTime, as Apple's certificates do. */
#define FAKE_CA_NOT_BEFORE ((time_t)1577836800)
#define FAKE_CA_NOT_AFTER ((time_t)2524607999)
#define FAKE_FILE_MAX ((size_t)64 * 1024)
#define FAKE_DAY_SECONDS 86400

struct fake_apple {
    X509 *root;
    EVP_PKEY *root_key;
    X509 *sub;
    EVP_PKEY *sub_key;
    EVP_PKEY *leaf_key; /* NULL: a fresh key per leaf (fake_apple_reuse_leaf_key) */
    /* What every leaf of leaf_key carries, encoded once: its EC point (the subjectPublicKey
     * bits) and the hex SHA-256 of its SubjectPublicKeyInfo (the default subject CN). */
    unsigned char *leaf_point;
    size_t leaf_point_len;
    char leaf_cn[65];
};

struct prop_info {
    const char *oid;
    const char *name;
    const char *suffix;
};

static const struct prop_info prop_info[FAKE_PROP_COUNT] = {
    [FAKE_PROP_SEPOS_VERSION] = {FAKE_APPLE_ARC ".10.2", "sepos", "10.2"},
    [FAKE_PROP_LLB_VERSION] = {FAKE_APPLE_ARC ".10.3", "llb", "10.3"},
    [FAKE_PROP_OS_VERSION] = {FAKE_APPLE_ARC ".10.1", "os", "10.1"},
    [FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID] = {FAKE_APPLE_ARC ".9.4", "sudid", "9.4"},
    [FAKE_PROP_SECURE_BOOT] = {FAKE_APPLE_ARC ".13.2", "secure-boot", "13.2"},
    [FAKE_PROP_SIP] = {FAKE_APPLE_ARC ".13.1", "sip", "13.1"},
    [FAKE_PROP_KEXTS] = {FAKE_APPLE_ARC ".13.3", "kexts", "13.3"},
    [FAKE_PROP_SERIAL_NUMBER] = {FAKE_APPLE_ARC ".9.1", "serial", "9.1"},
    [FAKE_PROP_UDID] = {FAKE_APPLE_ARC ".9.2", "udid", "9.2"},
    [FAKE_PROP_FRESHNESS] = {FAKE_APPLE_ARC ".11.1", "freshness", "11.1"},
};

void fake_openssl_error(char *err, size_t errlen, const char *what)
{
    char detail[256] = "";
    unsigned long code = ERR_peek_last_error();

    if (code != 0)
        ERR_error_string_n(code, detail, sizeof(detail));
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, code != 0 ? ": " : "", detail);
}

/* ---- specs ---------------------------------------------------------------------------------- */

const char *fake_apple_prop_oid(enum fake_apple_prop prop)
{
    if ((unsigned)prop >= FAKE_PROP_COUNT)
        return NULL;
    return prop_info[prop].oid;
}

const char *fake_apple_prop_name(enum fake_apple_prop prop)
{
    if ((unsigned)prop >= FAKE_PROP_COUNT)
        return NULL;
    return prop_info[prop].name;
}

bool fake_apple_prop_parse(const char *text, enum fake_apple_prop *prop)
{
    for (int i = 0; i < FAKE_PROP_COUNT; i++) {
        if (strcmp(text, prop_info[i].oid) == 0 || strcmp(text, prop_info[i].name) == 0 ||
            strcmp(text, prop_info[i].suffix) == 0) {
            *prop = (enum fake_apple_prop)i;
            return true;
        }
    }
    return false;
}

void fake_leaf_spec_init(struct fake_leaf_spec *spec, time_t not_before)
{
    memset(spec, 0, sizeof(*spec));
    spec->not_before = not_before;
}

bool fake_leaf_spec_set(struct fake_leaf_spec *spec, enum fake_apple_prop prop, const void *value,
                        size_t len)
{
    struct fake_leaf_prop *p;

    if ((unsigned)prop >= FAKE_PROP_COUNT || len > FAKE_APPLE_VALUE_MAX)
        return false;
    p = &spec->props[prop];
    p->state = len > 0 ? FAKE_PROP_VALUE : FAKE_PROP_BLANK;
    p->len = len;
    if (len > 0)
        memcpy(p->value, value, len);
    return true;
}

bool fake_leaf_spec_set_string(struct fake_leaf_spec *spec, enum fake_apple_prop prop,
                               const char *value)
{
    return fake_leaf_spec_set(spec, prop, value, strlen(value));
}

void fake_leaf_spec_set_int(struct fake_leaf_spec *spec, enum fake_apple_prop prop, uint8_t value)
{
    /* A value of 0x80 or more needs a leading zero octet to stay positive. */
    unsigned char der[4] = {0x02, 0x01, value, 0};
    size_t len = 3;

    if (value >= 0x80) {
        der[1] = 0x02;
        der[2] = 0x00;
        der[3] = value;
        len = 4;
    }
    if ((unsigned)prop >= FAKE_PROP_COUNT)
        return;
    spec->props[prop].state = FAKE_PROP_VALUE;
    spec->props[prop].len = len;
    memcpy(spec->props[prop].value, der, len);
}

void fake_leaf_spec_blank(struct fake_leaf_spec *spec, enum fake_apple_prop prop)
{
    if ((unsigned)prop >= FAKE_PROP_COUNT)
        return;
    spec->props[prop].state = FAKE_PROP_BLANK;
    spec->props[prop].len = 0;
}

void fake_leaf_spec_omit(struct fake_leaf_spec *spec, enum fake_apple_prop prop)
{
    if ((unsigned)prop >= FAKE_PROP_COUNT)
        return;
    spec->props[prop].state = FAKE_PROP_ABSENT;
    spec->props[prop].len = 0;
}

bool fake_leaf_spec_add_extra(struct fake_leaf_spec *spec, const char *oid, bool critical,
                              const void *value, size_t len)
{
    struct fake_leaf_extra *e;

    if (spec->extra_count >= FAKE_APPLE_EXTRA_MAX || strlen(oid) >= FAKE_APPLE_OID_MAX ||
        len > FAKE_APPLE_VALUE_MAX)
        return false;
    e = &spec->extra[spec->extra_count++];
    snprintf(e->oid, sizeof(e->oid), "%s", oid);
    e->critical = critical;
    e->len = len;
    if (len > 0)
        memcpy(e->value, value, len);
    return true;
}

static bool spec_set_optional(struct fake_leaf_spec *spec, enum fake_apple_prop prop,
                              const char *value)
{
    return value == NULL || fake_leaf_spec_set_string(spec, prop, value);
}

bool fake_leaf_spec_device(struct fake_leaf_spec *spec, const struct fake_apple_device *dev,
                           time_t not_before)
{
    const char *sepos = dev->sepos_version != NULL ? dev->sepos_version : dev->os_version;
    const char *llb = dev->llb_version != NULL ? dev->llb_version : dev->os_version;

    fake_leaf_spec_init(spec, not_before);
    if (!spec_set_optional(spec, FAKE_PROP_SEPOS_VERSION, sepos) ||
        !spec_set_optional(spec, FAKE_PROP_LLB_VERSION, llb) ||
        !spec_set_optional(spec, FAKE_PROP_OS_VERSION, dev->os_version) ||
        !spec_set_optional(spec, FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID,
                           dev->software_update_device_id) ||
        !spec_set_optional(spec, FAKE_PROP_SERIAL_NUMBER, dev->serial_number) ||
        !spec_set_optional(spec, FAKE_PROP_UDID, dev->udid))
        return false;
    if (dev->macos) {
        if (!fake_leaf_spec_set_string(spec, FAKE_PROP_SECURE_BOOT, "Full Security"))
            return false;
        fake_leaf_spec_set_int(spec, FAKE_PROP_SIP, 0);
        fake_leaf_spec_set_int(spec, FAKE_PROP_KEXTS, 0);
    }
    if (dev->nonce != NULL &&
        (dev->nonce_len == 0 ||
         !fake_leaf_spec_set(spec, FAKE_PROP_FRESHNESS, dev->nonce, dev->nonce_len)))
        return false;
    return true;
}

/* ---- certificates --------------------------------------------------------------------------- */

bool fake_x509_random_serial(X509 *cert, int bits)
{
    BIGNUM *bn = BN_new();
    bool ok = false;

    if (bn == NULL)
        return false;
    /* Positive, and within the 20 octets RFC 5280 allows for bits <= 159. */
    if (BN_rand(bn, bits, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 && !BN_is_zero(bn) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
        ok = true;
    BN_free(bn);
    return ok;
}

bool fake_x509_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int rc;

    if (ext == NULL)
        return false;
    rc = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return rc == 1;
}

/* Adds an extension whose OCTET STRING holds value[0..len) as is. */
static bool fake_add_raw_ext(X509 *cert, const char *oid, bool critical, const unsigned char *value,
                             size_t len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    bool ok = false;

    if (obj == NULL || os == NULL || len > INT_MAX ||
        ASN1_OCTET_STRING_set(os, value, (int)len) != 1)
        goto out;
    ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical ? 1 : 0, os);
    ok = ext != NULL && X509_add_ext(cert, ext, -1) == 1;
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return ok;
}

static bool fake_name_add(X509_NAME *name, const char *field, const char *value)
{
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, (const unsigned char *)value, -1,
                                      -1, 0) == 1;
}

/* A CA certificate: self-signed when issuer is NULL, else issued by issuer (pathlen 0). */
static X509 *fake_make_ca(const char *common_name, EVP_PKEY *key, X509 *issuer,
                          EVP_PKEY *issuer_key, time_t not_before, time_t not_after, char *err,
                          size_t errlen)
{
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX ctx;
    bool is_root = issuer == NULL;
    const char *what = "building the CA certificate";

    if (cert == NULL || name == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
        !fake_x509_random_serial(cert, 159))
        goto fail;
    if (ASN1_TIME_set(X509_getm_notBefore(cert), not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == NULL)
        goto fail;
    /* The shape of Apple's: CN, O, C. */
    if (!fake_name_add(name, "CN", common_name) || !fake_name_add(name, "O", "Apple Inc.") ||
        !fake_name_add(name, "C", "US"))
        goto fail;
    if (X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, is_root ? name : X509_get_subject_name(issuer)) != 1 ||
        X509_set_pubkey(cert, key) != 1)
        goto fail;
    what = "adding CA extensions";
    X509V3_set_ctx(&ctx, is_root ? cert : issuer, cert, NULL, NULL, 0);
    if (!fake_x509_add_ext(cert, &ctx, NID_basic_constraints,
                           is_root ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0") ||
        !fake_x509_add_ext(cert, &ctx, NID_subject_key_identifier, "hash") ||
        !fake_x509_add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign"))
        goto fail;
    if (!is_root && !fake_x509_add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always"))
        goto fail;
    what = "signing the CA certificate";
    if (X509_sign(cert, is_root ? key : issuer_key, EVP_sha384()) <= 0)
        goto fail;
    X509_NAME_free(name);
    return cert;
fail:
    fake_openssl_error(err, errlen, what);
    X509_NAME_free(name);
    X509_free(cert);
    return NULL;
}

struct fake_apple *fake_apple_new_valid(time_t not_before, time_t not_after, char *err,
                                        size_t errlen)
{
    struct fake_apple *pki = calloc(1, sizeof(*pki));

    if (pki == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pki->root_key = EVP_EC_gen("P-384");
    pki->sub_key = EVP_EC_gen("P-384");
    if (pki->root_key == NULL || pki->sub_key == NULL) {
        fake_openssl_error(err, errlen, "generating P-384 keys");
        fake_apple_free(pki);
        return NULL;
    }
    pki->root = fake_make_ca(FAKE_APPLE_ROOT_CN, pki->root_key, NULL, NULL, not_before, not_after,
                             err, errlen);
    if (pki->root != NULL)
        pki->sub = fake_make_ca(FAKE_APPLE_SUB_CN, pki->sub_key, pki->root, pki->root_key,
                                not_before, not_after, err, errlen);
    if (pki->sub == NULL) {
        fake_apple_free(pki);
        return NULL;
    }
    return pki;
}

struct fake_apple *fake_apple_new(char *err, size_t errlen)
{
    return fake_apple_new_valid(FAKE_CA_NOT_BEFORE, FAKE_CA_NOT_AFTER, err, errlen);
}

struct fake_apple *fake_apple_dup(const struct fake_apple *src, char *err, size_t errlen)
{
    struct fake_apple *pki = calloc(1, sizeof(*pki));

    if (pki == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pki->root = X509_dup(src->root);
    pki->sub = X509_dup(src->sub);
    pki->root_key = EVP_PKEY_dup(src->root_key);
    pki->sub_key = EVP_PKEY_dup(src->sub_key);
    if (pki->root == NULL || pki->sub == NULL || pki->root_key == NULL || pki->sub_key == NULL) {
        fake_openssl_error(err, errlen, "copying the stand-in Apple hierarchy");
        fake_apple_free(pki);
        return NULL;
    }
    return pki;
}

void fake_apple_free(struct fake_apple *pki)
{
    if (pki == NULL)
        return;
    X509_free(pki->root);
    X509_free(pki->sub);
    EVP_PKEY_free(pki->root_key);
    EVP_PKEY_free(pki->sub_key);
    EVP_PKEY_free(pki->leaf_key);
    OPENSSL_free(pki->leaf_point);
    free(pki);
}

static bool fake_der(X509 *cert, unsigned char **der, size_t *len)
{
    unsigned char *p = NULL;
    int n = i2d_X509(cert, &p);

    *der = NULL;
    *len = 0;
    if (n <= 0)
        return false;
    /* Hand over a malloc() buffer so callers free with free(). */
    *der = malloc((size_t)n);
    if (*der != NULL) {
        memcpy(*der, p, (size_t)n);
        *len = (size_t)n;
    }
    OPENSSL_free(p);
    return *der != NULL;
}

bool fake_apple_root_der(const struct fake_apple *pki, unsigned char **der, size_t *len)
{
    return fake_der(pki->root, der, len);
}

bool fake_apple_sub_der(const struct fake_apple *pki, unsigned char **der, size_t *len)
{
    return fake_der(pki->sub, der, len);
}

char *fake_bio_string(BIO *bio, size_t *len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *out;

    if (n < 0 || data == NULL)
        return NULL;
    out = malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return out;
}

static char *fake_cert_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;

    if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
        out = fake_bio_string(bio, NULL);
    BIO_free(bio);
    return out;
}

static char *fake_key_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;

    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
        out = fake_bio_string(bio, NULL);
    BIO_free(bio);
    return out;
}

char *fake_apple_root_pem(const struct fake_apple *pki)
{
    return fake_cert_pem(pki->root);
}

/* ---- leaves --------------------------------------------------------------------------------- */

static bool fake_hex_sha256_of_key(EVP_PKEY *key, char *out, size_t outlen)
{
    unsigned char *spki = NULL;
    unsigned char digest[32];
    unsigned int n = 0;
    int len = i2d_PUBKEY(key, &spki);
    bool ok;

    if (len <= 0 || outlen < 65)
        return false;
    ok = EVP_Digest(spki, (size_t)len, digest, &n, EVP_sha256(), NULL) == 1 && n == 32;
    OPENSSL_free(spki);
    for (unsigned i = 0; ok && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    return ok;
}

bool fake_apple_reuse_leaf_key(struct fake_apple *pki, char *err, size_t errlen)
{
    EVP_PKEY *key;

    if (pki->leaf_key != NULL)
        return true;
    key = EVP_EC_gen("P-384");
    /* EVP_PKEY_get1_encoded_public_key(): the uncompressed point, as X509_set_pubkey() puts it. */
    if (key == NULL ||
        (pki->leaf_point_len = EVP_PKEY_get1_encoded_public_key(key, &pki->leaf_point)) == 0 ||
        pki->leaf_point_len > INT_MAX ||
        !fake_hex_sha256_of_key(key, pki->leaf_cn, sizeof(pki->leaf_cn))) {
        fake_openssl_error(err, errlen, "generating the leaf key");
        OPENSSL_free(pki->leaf_point);
        pki->leaf_point = NULL;
        EVP_PKEY_free(key);
        return false;
    }
    pki->leaf_key = key;
    return true;
}

/* The reused leaf key's SubjectPublicKeyInfo, from its point encoded once: X509_set_pubkey() would
 * encode the key and decode it again through the providers for every leaf (a fifth of minting
 * one). The key is P-384 (fake_apple_reuse_leaf_key): id-ecPublicKey with the named curve, as
 * X509_set_pubkey() writes it. */
static bool fake_leaf_set_reused_key(X509 *cert, const struct fake_apple *pki)
{
    unsigned char *point = OPENSSL_memdup(pki->leaf_point, pki->leaf_point_len);

    if (point == NULL)
        return false;
    if (X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(cert), OBJ_nid2obj(NID_X9_62_id_ecPublicKey),
                               V_ASN1_OBJECT, OBJ_nid2obj(NID_secp384r1), point,
                               (int)pki->leaf_point_len) != 1) {
        OPENSSL_free(point);
        return false;
    }
    return true;
}

/* Apple's leaf serial is the minting time in milliseconds (6 octets); the random milliseconds
 * keep two leaves minted in the same second (a test clock) apart. */
static bool fake_leaf_serial(X509 *cert, const struct fake_leaf_spec *spec)
{
    uint64_t serial = spec->serial;

    if (serial == 0) {
        unsigned char r[2];
        if (RAND_bytes(r, sizeof(r)) != 1)
            return false;
        serial = (uint64_t)(spec->not_before > 0 ? spec->not_before : 1) * 1000u +
                 (((unsigned)r[0] << 8) | r[1]) % 1000u;
    }
    return ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) == 1;
}

static bool fake_leaf_add_props(X509 *cert, const struct fake_leaf_spec *spec)
{
    for (int i = 0; i < FAKE_PROP_COUNT; i++) {
        const struct fake_leaf_prop *p = &spec->props[i];
        size_t len = p->state == FAKE_PROP_VALUE ? p->len : 0;

        if (p->state == FAKE_PROP_ABSENT)
            continue;
        if (len > FAKE_APPLE_VALUE_MAX)
            return false;
        for (int copy = 0; copy < (p->duplicate ? 2 : 1); copy++) {
            if (!fake_add_raw_ext(cert, prop_info[i].oid, p->critical, p->value, len))
                return false;
        }
    }
    for (size_t i = 0; i < spec->extra_count && i < FAKE_APPLE_EXTRA_MAX; i++) {
        const struct fake_leaf_extra *e = &spec->extra[i];
        if (e->len > FAKE_APPLE_VALUE_MAX ||
            !fake_add_raw_ext(cert, e->oid, e->critical, e->value, e->len))
            return false;
    }
    return true;
}

bool fake_apple_leaf(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                     struct fake_chain *chain, char *err, size_t errlen)
{
    const struct fake_apple *signer = spec->signer != NULL ? spec->signer : pki;
    X509 *issuer = spec->issuer == FAKE_ISSUER_ROOT ? signer->root : signer->sub;
    EVP_PKEY *issuer_key = spec->issuer == FAKE_ISSUER_ROOT ? signer->root_key : signer->sub_key;
    EVP_PKEY *key = NULL;
    bool reused; /* key is pki->leaf_key, its encodings made */
    X509 *cert = NULL;
    X509_NAME *name = NULL;
    X509V3_CTX ctx;
    char cn[FAKE_APPLE_CN_MAX];
    time_t not_after = spec->not_after != 0
                           ? spec->not_after
                           : spec->not_before + (time_t)FAKE_APPLE_LEAF_DAYS * FAKE_DAY_SECONDS;
    const char *what = "generating the leaf key";
    bool ok = false;

    memset(chain, 0, sizeof(*chain));
    if (spec->key != NULL)
        key = EVP_PKEY_up_ref(spec->key) == 1 ? spec->key : NULL;
    else if (pki->leaf_key != NULL && EVP_PKEY_up_ref(pki->leaf_key) == 1)
        key = pki->leaf_key;
    else
        key = EVP_EC_gen("P-384");
    if (key == NULL)
        goto out;
    reused = key == pki->leaf_key;
    what = "building the leaf";
    if (spec->subject_cn[0] != '\0')
        snprintf(cn, sizeof(cn), "%s", spec->subject_cn);
    else if (reused)
        snprintf(cn, sizeof(cn), "%s", pki->leaf_cn);
    else if (!fake_hex_sha256_of_key(key, cn, sizeof(cn)))
        goto out;
    cert = X509_new();
    name = X509_NAME_new();
    if (cert == NULL || name == NULL || X509_set_version(cert, X509_VERSION_3) != 1 ||
        !fake_leaf_serial(cert, spec))
        goto out;
    if (ASN1_TIME_set(X509_getm_notBefore(cert), spec->not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(cert), not_after) == NULL)
        goto out;
    if (!fake_name_add(name, "CN", cn) || !fake_name_add(name, "OU", "AAA Certification") ||
        !fake_name_add(name, "O", "Apple Inc.") || !fake_name_add(name, "ST", "California"))
        goto out;
    if (X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, X509_get_subject_name(issuer)) != 1 ||
        (reused ? !fake_leaf_set_reused_key(cert, pki) : X509_set_pubkey(cert, key) != 1))
        goto out;
    what = "adding leaf extensions";
    /* No key identifiers: Apple's leaves have none, chains are built by issuer name. */
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    if (!fake_x509_add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
        !fake_x509_add_ext(cert, &ctx, NID_key_usage,
                           "critical,digitalSignature,nonRepudiation,keyEncipherment,"
                           "dataEncipherment") ||
        !fake_leaf_add_props(cert, spec))
        goto out;
    what = "signing the leaf";
    if (X509_sign(cert, issuer_key, EVP_sha384()) <= 0)
        goto out;
    what = "encoding the chain";
    if (!fake_der(cert, &chain->der[0], &chain->len[0]))
        goto out;
    chain->count = 1;
    if (!fake_der(pki->sub, &chain->der[1], &chain->len[1]))
        goto out;
    chain->count = 2;
    ok = true;
out:
    if (!ok) {
        fake_openssl_error(err, errlen, what);
        fake_chain_free(chain);
    }
    X509_NAME_free(name);
    X509_free(cert);
    EVP_PKEY_free(key);
    return ok;
}

void fake_chain_free(struct fake_chain *chain)
{
    for (size_t i = 0; i < chain->count && i < FAKE_CHAIN_MAX; i++)
        free(chain->der[i]);
    memset(chain, 0, sizeof(*chain));
}

/* ---- files ---------------------------------------------------------------------------------- */

bool fake_apple_save(const struct fake_apple *pki, const char *dir, char *err, size_t errlen)
{
    static const char *const names[4] = {FAKE_APPLE_ROOT_KEY_FILE, FAKE_APPLE_SUB_KEY_FILE,
                                         FAKE_APPLE_ROOT_CERT_FILE, FAKE_APPLE_SUB_CERT_FILE};
    char *texts[4];
    bool ok = true;

    /* Keys first: a crash in between leaves keys without certificates, which _load() reports
     * instead of silently making a second hierarchy. */
    texts[0] = fake_key_pem(pki->root_key);
    texts[1] = fake_key_pem(pki->sub_key);
    texts[2] = fake_cert_pem(pki->root);
    texts[3] = fake_cert_pem(pki->sub);
    for (int i = 0; i < 4 && ok; i++) {
        char path[4096];
        if (texts[i] == NULL) {
            fake_openssl_error(err, errlen, "encoding the stand-in Apple hierarchy");
            ok = false;
        } else if (!tu_path_join(path, sizeof(path), dir, names[i])) {
            snprintf(err, errlen, "path too long: %s", dir);
            ok = false;
        } else {
            ok = tu_file_write_atomic(path, texts[i], strlen(texts[i]), i < 2 ? 0600 : 0644, err,
                                      errlen);
        }
    }
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    return ok;
}

static enum tu_read fake_read_file(const char *dir, const char *name, char **data, char *err,
                                   size_t errlen)
{
    char path[4096];
    size_t len;

    *data = NULL;
    if (!tu_path_join(path, sizeof(path), dir, name)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return TU_READ_ERROR;
    }
    return tu_file_read(path, FAKE_FILE_MAX, data, &len, err, errlen);
}

static X509 *fake_parse_cert(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    return cert;
}

static EVP_PKEY *fake_parse_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    return key;
}

struct fake_apple *fake_apple_load(const char *dir, bool *absent, char *err, size_t errlen)
{
    static const char *const names[4] = {FAKE_APPLE_ROOT_CERT_FILE, FAKE_APPLE_ROOT_KEY_FILE,
                                         FAKE_APPLE_SUB_CERT_FILE, FAKE_APPLE_SUB_KEY_FILE};
    char *texts[4] = {NULL, NULL, NULL, NULL};
    enum tu_read rc[4];
    int missing = 0;
    struct fake_apple *pki = NULL;
    EVP_PKEY *root_pub;

    if (absent != NULL)
        *absent = false;
    for (int i = 0; i < 4; i++) {
        rc[i] = fake_read_file(dir, names[i], &texts[i], err, errlen);
        if (rc[i] == TU_READ_ERROR)
            goto out;
        missing += rc[i] == TU_READ_ABSENT;
    }
    if (missing == 4) {
        if (absent != NULL)
            *absent = true;
        snprintf(err, errlen, "%s holds no stand-in Apple hierarchy", dir);
        goto out;
    }
    if (missing > 0) {
        for (int i = 0; i < 4; i++) {
            if (rc[i] == TU_READ_ABSENT) {
                snprintf(err, errlen,
                         "%s/%s is missing: remove the other apple-* files too or restore it", dir,
                         names[i]);
                break;
            }
        }
        goto out;
    }
    pki = calloc(1, sizeof(*pki));
    if (pki == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    pki->root = fake_parse_cert(texts[0]);
    pki->root_key = fake_parse_key(texts[1]);
    pki->sub = fake_parse_cert(texts[2]);
    pki->sub_key = fake_parse_key(texts[3]);
    if (pki->root == NULL || pki->root_key == NULL || pki->sub == NULL || pki->sub_key == NULL) {
        fake_openssl_error(err, errlen, "parsing the stand-in Apple hierarchy");
        goto fail;
    }
    root_pub = X509_get0_pubkey(pki->root);
    if (X509_check_private_key(pki->root, pki->root_key) != 1 ||
        X509_check_private_key(pki->sub, pki->sub_key) != 1 || root_pub == NULL ||
        X509_verify(pki->sub, root_pub) != 1) {
        fake_openssl_error(err, errlen,
                           "the stand-in Apple files in the directory do not belong together");
        goto fail;
    }
    goto out;
fail:
    fake_apple_free(pki);
    pki = NULL;
out:
    for (int i = 0; i < 4; i++)
        free(texts[i]);
    return pki;
}

struct fake_apple *fake_apple_open(const char *dir, bool *created, char *err, size_t errlen)
{
    bool absent = false;
    struct fake_apple *pki = fake_apple_load(dir, &absent, err, errlen);

    if (created != NULL)
        *created = false;
    if (pki != NULL || !absent)
        return pki;
    pki = fake_apple_new(err, errlen);
    if (pki == NULL)
        return NULL;
    if (!fake_apple_save(pki, dir, err, errlen)) {
        fake_apple_free(pki);
        return NULL;
    }
    if (created != NULL)
        *created = true;
    return pki;
}
