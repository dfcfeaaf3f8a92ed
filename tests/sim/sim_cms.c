/*
 * sim_cms: a P-256 identity's Mdm-Signature in DER; see sim_cms.h.
 */
#include "sim_cms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define CMS_P256_SCALAR 32
#define CMS_P256_POINT SIM_CMS_P256_POINT
#define CMS_ECDSA_SIG_MAX 80
#define CMS_ATTRS_LEN 105 /* the three signed attributes below, signingTime as UTCTime */

/* AlgorithmIdentifier id-ecPublicKey with the named curve prime256v1, in an SPKI and in PKCS#8. */
static const unsigned char alg_p256[] = {0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
                                         0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char oid_signed_data[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                0xf7, 0x0d, 0x01, 0x07, 0x02};
/* SignedData's version 1 and digestAlgorithms {sha256}, then encapContentInfo {data}: no
 * content, the signature is detached. */
static const unsigned char signed_data_head[] = {
    0x02, 0x01, 0x01, 0x31, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
    0x02, 0x01, 0x30, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const unsigned char alg_sha256[] = {0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48,
                                           0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
static const unsigned char alg_ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
/* The signed attributes in DER order (a SET OF sorts by encoding; here by length): contentType
 * data, signingTime (UTCTime, 13 characters follow), messageDigest (32 bytes follow). */
static const unsigned char attr_content_type[] = {
    0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03,
    0x31, 0x0b, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01};
static const unsigned char attr_signing_time[] = {0x30, 0x1c, 0x06, 0x09, 0x2a, 0x86,
                                                  0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09,
                                                  0x05, 0x31, 0x0f, 0x17, 0x0d};
static const unsigned char attr_message_digest[] = {0x30, 0x2f, 0x06, 0x09, 0x2a, 0x86,
                                                    0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09,
                                                    0x04, 0x31, 0x22, 0x04, 0x20};

struct sim_cms_keys {
    EVP_MD *sha256;
    EVP_PKEY_CTX *builder; /* EVP_PKEY_fromdata() for EC keys */
};

struct sim_cms_signer {
    struct sim_cms_keys *keys;
    unsigned char *cert;
    size_t cert_len;
    size_t issuer_off, issuer_len; /* the issuer Name's TLV in cert */
    size_t serial_off, serial_len; /* the serialNumber's TLV in cert */
    EVP_PKEY *key;
    EVP_PKEY_CTX *sign; /* EVP_PKEY_sign() initialised once */
};

struct sim_cms_keys *sim_cms_keys_new(void)
{
    struct sim_cms_keys *keys = calloc(1, sizeof(*keys));

    if (keys == NULL)
        return NULL;
    keys->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    keys->builder = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (keys->sha256 == NULL || keys->builder == NULL) {
        sim_cms_keys_free(keys);
        return NULL;
    }
    return keys;
}

void sim_cms_keys_free(struct sim_cms_keys *keys)
{
    if (keys == NULL)
        return;
    EVP_MD_free(keys->sha256);
    EVP_PKEY_CTX_free(keys->builder);
    free(keys);
}

/* ---- DER ------------------------------------------------------------------------------------ */

/* One TLV at *p (before end), single-byte tag: its tag, content and the TLV's own span; *p moves
 * past it. */
struct der_tlv {
    unsigned char tag;
    const unsigned char *start; /* the tag byte */
    const unsigned char *content;
    size_t len;  /* of the content */
    size_t size; /* of the whole TLV */
};

static bool der_next(const unsigned char **p, const unsigned char *end, struct der_tlv *t)
{
    const unsigned char *q = *p;
    size_t len;

    if (end - q < 2)
        return false;
    t->start = q;
    t->tag = *q++;
    len = *q++;
    if (len & 0x80) {
        size_t n = len & 0x7f;

        if (n == 0 || n > 3 || (size_t)(end - q) < n)
            return false;
        len = 0;
        while (n-- > 0)
            len = (len << 8) | *q++;
    }
    if ((size_t)(end - q) < len)
        return false;
    t->content = q;
    t->len = len;
    t->size = (size_t)(q + len - t->start);
    *p = q + len;
    return true;
}

static size_t der_header_len(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 5;
}

static unsigned char *der_put_header(unsigned char *p, unsigned char tag, size_t len)
{
    *p++ = tag;
    if (len < 0x80) {
        *p++ = (unsigned char)len;
    } else if (len < 0x100) {
        *p++ = 0x81;
        *p++ = (unsigned char)len;
    } else if (len < 0x10000) {
        *p++ = 0x82;
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    } else {
        *p++ = 0x83;
        *p++ = (unsigned char)(len >> 16);
        *p++ = (unsigned char)(len >> 8);
        *p++ = (unsigned char)len;
    }
    return p;
}

static unsigned char *der_put(unsigned char *p, const void *data, size_t len)
{
    memcpy(p, data, len);
    return p + len;
}

/* The issuer, serial number and P-256 public point (NULL: another key type) of a certificate. */
static bool cert_parts(struct sim_cms_signer *s, const unsigned char **point)
{
    const unsigned char *p = s->cert;
    const unsigned char *end = s->cert + s->cert_len;
    struct der_tlv cert, tbs, t, alg, bits;

    *point = NULL;
    if (!der_next(&p, end, &cert) || cert.tag != 0x30 || p != end)
        return false;
    p = cert.content;
    end = cert.content + cert.len;
    if (!der_next(&p, end, &tbs) || tbs.tag != 0x30)
        return false;
    p = tbs.content;
    end = tbs.content + tbs.len;
    if (!der_next(&p, end, &t))
        return false;
    if (t.tag == 0xa0 && !der_next(&p, end, &t)) /* [0] version */
        return false;
    if (t.tag != 0x02)
        return false;
    s->serial_off = (size_t)(t.start - s->cert);
    s->serial_len = t.size;
    if (!der_next(&p, end, &t) || t.tag != 0x30 || !der_next(&p, end, &t) || t.tag != 0x30)
        return false; /* signature, then issuer */
    s->issuer_off = (size_t)(t.start - s->cert);
    s->issuer_len = t.size;
    if (!der_next(&p, end, &t) || t.tag != 0x30 || !der_next(&p, end, &t) || t.tag != 0x30 ||
        !der_next(&p, end, &t) || t.tag != 0x30)
        return false; /* validity, subject, subjectPublicKeyInfo */
    p = t.content;
    end = t.content + t.len;
    if (!der_next(&p, end, &alg) || !der_next(&p, end, &bits) || bits.tag != 0x03)
        return false;
    if (alg.size == sizeof(alg_p256) && memcmp(alg.start, alg_p256, sizeof(alg_p256)) == 0 &&
        bits.len == 1 + CMS_P256_POINT && bits.content[0] == 0)
        *point = bits.content + 1;
    return true;
}

/* The private scalar and public point of an unencrypted PKCS#8 P-256 key that states its public
 * key (RFC 5915 inside RFC 5208). */
static bool pkcs8_p256(const unsigned char *der, size_t len, const unsigned char **scalar,
                       const unsigned char **point)
{
    const unsigned char *p = der;
    const unsigned char *end = der + len;
    struct der_tlv info, t, inner;

    if (!der_next(&p, end, &info) || info.tag != 0x30 || p != end)
        return false;
    p = info.content;
    end = info.content + info.len;
    if (!der_next(&p, end, &t) || t.tag != 0x02 || !der_next(&p, end, &t) ||
        t.size != sizeof(alg_p256) || memcmp(t.start, alg_p256, sizeof(alg_p256)) != 0 ||
        !der_next(&p, end, &t) || t.tag != 0x04)
        return false;
    p = t.content;
    end = t.content + t.len;
    if (!der_next(&p, end, &inner) || inner.tag != 0x30)
        return false;
    p = inner.content;
    end = inner.content + inner.len;
    if (!der_next(&p, end, &t) || t.tag != 0x02 || !der_next(&p, end, &t) || t.tag != 0x04 ||
        t.len != CMS_P256_SCALAR)
        return false;
    *scalar = t.content;
    while (p < end) {
        if (!der_next(&p, end, &t))
            return false;
        if (t.tag == 0xa1) { /* [1] publicKey BIT STRING */
            const unsigned char *q = t.content;
            struct der_tlv bits;
            if (!der_next(&q, t.content + t.len, &bits) || bits.tag != 0x03 ||
                bits.len != 1 + CMS_P256_POINT || bits.content[0] != 0)
                return false;
            *point = bits.content + 1;
            return true;
        }
    }
    return false;
}

bool sim_cms_p256_export(const struct evp_pkey_st *key, unsigned char point[SIM_CMS_P256_POINT],
                         unsigned char pkcs8[SIM_CMS_P256_PKCS8])
{
    /* SEQUENCE { version 0, alg_p256, OCTET STRING { SEQUENCE { version 1, OCTET STRING scalar,
     * [1] { BIT STRING point } } } } */
    static const unsigned char head[] = {0x30, 0x81, 0x87, 0x02, 0x01, 0x00};
    static const unsigned char inner[] = {0x04, 0x6d, 0x30, 0x6b,           0x02,
                                          0x01, 0x01, 0x04, CMS_P256_SCALAR};
    static const unsigned char pub[] = {0xa1, 0x44, 0x03, 0x42, 0x00};
    char group[32];
    size_t point_len = 0;
    BIGNUM *scalar = NULL;
    unsigned char *p = pkcs8;
    bool ok;

    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        strcmp(group, "prime256v1") != 0 ||
        EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point, SIM_CMS_P256_POINT,
                                        &point_len) != 1 ||
        point_len != SIM_CMS_P256_POINT || point[0] != 0x04 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &scalar) != 1)
        return false;
    p = der_put(p, head, sizeof(head));
    p = der_put(p, alg_p256, sizeof(alg_p256));
    p = der_put(p, inner, sizeof(inner));
    ok = BN_bn2binpad(scalar, p, CMS_P256_SCALAR) == CMS_P256_SCALAR;
    BN_clear_free(scalar);
    p += CMS_P256_SCALAR;
    p = der_put(p, pub, sizeof(pub));
    p = der_put(p, point, SIM_CMS_P256_POINT);
    return ok && p == pkcs8 + SIM_CMS_P256_PKCS8;
}

/* ---- signers -------------------------------------------------------------------------------- */

/* The EVP_PKEY for scalar and point, through the thread's builder. */
static EVP_PKEY *p256_key(struct sim_cms_keys *keys, const unsigned char *scalar,
                          const unsigned char *point)
{
    unsigned char native[CMS_P256_SCALAR];
    BIGNUM *bn = BN_bin2bn(scalar, CMS_P256_SCALAR, NULL);
    EVP_PKEY *key = NULL;
    OSSL_PARAM params[4];

    if (bn == NULL || BN_bn2nativepad(bn, native, sizeof(native)) != (int)sizeof(native)) {
        BN_clear_free(bn);
        return NULL;
    }
    BN_clear_free(bn);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native, sizeof(native));
    params[2] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, CMS_P256_POINT);
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_PKEY_fromdata_init(keys->builder) != 1 ||
        EVP_PKEY_fromdata(keys->builder, &key, EVP_PKEY_KEYPAIR, params) != 1)
        key = NULL;
    OPENSSL_cleanse(native, sizeof(native));
    return key;
}

enum sim_cms_load sim_cms_signer_new(struct sim_cms_keys *keys, const unsigned char *cert,
                                     size_t cert_len, const unsigned char *key, size_t key_len,
                                     struct sim_cms_signer **out, char *err, size_t errlen)
{
    struct sim_cms_signer *s;
    const unsigned char *cert_point;
    const unsigned char *scalar = NULL;
    const unsigned char *key_point = NULL;

    *out = NULL;
    if (!pkcs8_p256(key, key_len, &scalar, &key_point))
        return SIM_CMS_NOT_P256;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->cert = malloc(cert_len > 0 ? cert_len : 1)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return SIM_CMS_BAD;
    }
    s->keys = keys;
    memcpy(s->cert, cert, cert_len);
    s->cert_len = cert_len;
    if (!cert_parts(s, &cert_point)) {
        sim_cms_signer_free(s);
        return SIM_CMS_NOT_P256; /* OpenSSL tells what is wrong with it */
    }
    /* What X509_check_private_key() compares: the certificate's public key and the key's. */
    if (cert_point == NULL || memcmp(cert_point, key_point, CMS_P256_POINT) != 0) {
        sim_cms_signer_free(s);
        snprintf(err, errlen, "the private key does not belong to the certificate");
        return SIM_CMS_BAD;
    }
    s->key = p256_key(keys, scalar, key_point);
    s->sign = s->key != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, s->key, NULL) : NULL;
    if (s->sign == NULL || EVP_PKEY_sign_init(s->sign) != 1) {
        sim_cms_signer_free(s);
        snprintf(err, errlen, "cannot make a P-256 signing key");
        return SIM_CMS_BAD;
    }
    *out = s;
    return SIM_CMS_LOADED;
}

void sim_cms_signer_free(struct sim_cms_signer *signer)
{
    if (signer == NULL)
        return;
    EVP_PKEY_CTX_free(signer->sign);
    EVP_PKEY_free(signer->key);
    free(signer->cert);
    free(signer);
}

const unsigned char *sim_cms_signer_cert(const struct sim_cms_signer *signer, size_t *len)
{
    *len = signer->cert_len;
    return signer->cert;
}

/* The three signed attributes (CMS_ATTRS_LEN bytes) for body digest md at now. */
static bool signed_attrs(unsigned char *out, const unsigned char md[32], time_t now)
{
    struct tm tm;
    char utc[14];
    unsigned char *p = out;

    if (gmtime_r(&now, &tm) == NULL || tm.tm_year < 50 || tm.tm_year >= 150 ||
        snprintf(utc, sizeof(utc), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) != 13)
        return false;
    p = der_put(p, attr_content_type, sizeof(attr_content_type));
    p = der_put(p, attr_signing_time, sizeof(attr_signing_time));
    p = der_put(p, utc, 13);
    p = der_put(p, attr_message_digest, sizeof(attr_message_digest));
    p = der_put(p, md, 32);
    return p == out + CMS_ATTRS_LEN;
}

bool sim_cms_sign(struct sim_cms_signer *s, const void *body, size_t len, time_t now,
                  unsigned char **der, size_t *der_len, char *err, size_t errlen)
{
    unsigned char md[32];
    unsigned char to_sign[2 + CMS_ATTRS_LEN]; /* the attributes as the SET they are signed as */
    unsigned char sig[CMS_ECDSA_SIG_MAX];
    size_t sig_len = sizeof(sig);
    size_t sid, signer_info, signer_infos, certs, signed_data, content, total;
    unsigned char *out;
    unsigned char *p;

    *der = NULL;
    if (EVP_Digest(body, len, md, NULL, s->keys->sha256, NULL) != 1 ||
        !signed_attrs(to_sign + 2, md, now)) {
        snprintf(err, errlen, "hashing the body or the signing time");
        return false;
    }
    to_sign[0] = 0x31;
    to_sign[1] = CMS_ATTRS_LEN;
    if (EVP_Digest(to_sign, sizeof(to_sign), md, NULL, s->keys->sha256, NULL) != 1 ||
        EVP_PKEY_sign(s->sign, sig, &sig_len, md, sizeof(md)) != 1) {
        snprintf(err, errlen, "ECDSA signing failed");
        return false;
    }
    sid = s->issuer_len + s->serial_len;
    signer_info = 3 + der_header_len(sid) + sid + sizeof(alg_sha256) + 2 + CMS_ATTRS_LEN +
                  sizeof(alg_ecdsa_sha256) + der_header_len(sig_len) + sig_len;
    signer_infos = der_header_len(signer_info) + signer_info;
    certs = der_header_len(s->cert_len) + s->cert_len;
    signed_data = sizeof(signed_data_head) + certs + der_header_len(signer_infos) + signer_infos;
    content = der_header_len(signed_data) + signed_data;
    total = sizeof(oid_signed_data) + der_header_len(content) + content;
    out = malloc(der_header_len(total) + total);
    if (out == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    p = der_put_header(out, 0x30, total);
    p = der_put(p, oid_signed_data, sizeof(oid_signed_data));
    p = der_put_header(p, 0xa0, content);
    p = der_put_header(p, 0x30, signed_data);
    p = der_put(p, signed_data_head, sizeof(signed_data_head));
    p = der_put_header(p, 0xa0, s->cert_len); /* [0] IMPLICIT certificates */
    p = der_put(p, s->cert, s->cert_len);
    p = der_put_header(p, 0x31, signer_infos);
    p = der_put_header(p, 0x30, signer_info);
    p = der_put(p, "\x02\x01\x01", 3); /* version 1: issuerAndSerialNumber */
    p = der_put_header(p, 0x30, sid);
    p = der_put(p, s->cert + s->issuer_off, s->issuer_len);
    p = der_put(p, s->cert + s->serial_off, s->serial_len);
    p = der_put(p, alg_sha256, sizeof(alg_sha256));
    *p++ = 0xa0; /* [0] IMPLICIT signedAttrs */
    p = der_put(p, to_sign + 1, 1 + CMS_ATTRS_LEN);
    p = der_put(p, alg_ecdsa_sha256, sizeof(alg_ecdsa_sha256));
    p = der_put_header(p, 0x04, sig_len);
    p = der_put(p, sig, sig_len);
    *der = out;
    *der_len = (size_t)(p - out);
    return true;
}
