/* jws.h's contract: the flattened JWS envelope, its protected header and JWKs read strictly
 * under fixed bounds, and signatures checked through OpenSSL 3's EVP interfaces only. */

#include "jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "json.h"

/* A protected header or a JWK is small: an RSA-4096 jwk is under 1 KiB of JSON. */
#define HEADER_MAX_BYTES 8192
#define SIGNATURE_MAX_BYTES (JWS_RSA_MAX_BITS / 8)
#define EC_FIELD_MAX_BYTES 48
#define RSA_E_MAX_BYTES 4 /* e is 65537 in practice; a huge e only slows verification */

/* The envelope is one object of strings; a header holds a jwk, whose optional members (key_ops)
 * may be arrays. */
static const struct json_limits envelope_limits = {JWS_MAX_BODY, 1, 8};
static const struct json_limits header_limits = {HEADER_MAX_BYTES, 3, 64};
static const struct json_limits jwk_limits = {HEADER_MAX_BYTES, 2, 48};

struct alg_desc {
    const char *name;   /* "alg" */
    const char *digest; /* for EVP_DigestVerifyInit_ex() */
    const char *crv;    /* the JWK "crv" of its keys; NULL for RSA */
    char *group;        /* OpenSSL's name of that curve (not const for OSSL_PARAM) */
    size_t field_bytes; /* an EC coordinate, and each of r and s; 0 for RSA */
};

static const struct alg_desc algs[] = {
    [JWS_ALG_ES256] = {"ES256", "SHA256", "P-256", "prime256v1", 32},
    [JWS_ALG_ES384] = {"ES384", "SHA384", "P-384", "secp384r1", 48},
    [JWS_ALG_RS256] = {"RS256", "SHA256", NULL, NULL, 0},
};
#define ALG_COUNT (sizeof(algs) / sizeof(algs[0]))

/* Private or symmetric members (RFC 7518 §6.2.2, §6.3.2, §6.4): a JWK carrying one is refused,
 * not stripped, since its owner has leaked the key. */
static const char *const secret_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

static bool b64url_decode_max(const char *src, size_t len, uint8_t *dst, size_t max,
                              size_t *dst_len)
{
    return len <= b64url_encoded_len(max) && b64url_decode(src, len, dst, dst_len);
}

/* Decodes text into a new NUL-terminated buffer (free()); NULL when it is not base64url or
 * memory runs out. */
static uint8_t *b64url_decode_new(const char *src, size_t len, size_t *dst_len)
{
    uint8_t *dst = malloc(len / 4 * 3 + 3);
    if (dst == NULL || !b64url_decode(src, len, dst, dst_len)) {
        free(dst);
        return NULL;
    }
    dst[*dst_len] = '\0';
    return dst;
}

/* ---- keys ---- */

static EVP_PKEY *key_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *key = NULL;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* The point is on the curve, not the identity, and of the group's order. */
static bool ec_public_check(EVP_PKEY *key)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Whether key is what alg signs with: an RSA key of a bounded size, or an EC key on alg's
 * curve. */
static bool key_matches_alg(EVP_PKEY *key, enum jws_alg alg)
{
    const struct alg_desc *a = &algs[alg];
    char group[64];

    if (a->group == NULL) {
        int bits = EVP_PKEY_get_bits(key);
        return EVP_PKEY_is_a(key, "RSA") && bits >= JWS_RSA_MIN_BITS && bits <= JWS_RSA_MAX_BITS;
    }
    return EVP_PKEY_is_a(key, "EC") &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                          NULL) == 1 &&
           strcmp(group, a->group) == 0;
}

/* The member key of a JWK: base64url text, lent out, that decodes to at most max bytes. */
static bool jwk_get_b64(const struct json_value *jwk, const char *key, uint8_t *dst, size_t max,
                        size_t *dst_len, const char **text, size_t *text_len)
{
    return json_get_string(json_object_find(jwk, key), text, text_len) &&
           b64url_decode_max(*text, *text_len, dst, max, dst_len);
}

static bool canonical_fits(int len)
{
    return len > 0 && len <= JWS_MAX_JWK;
}

static EVP_PKEY *ec_key_from_jwk(const struct json_value *jwk, char *canonical, int *canonical_len,
                                 const char **why)
{
    const char *crv = json_object_get_string(jwk, "crv");
    const struct alg_desc *a = NULL;
    uint8_t point[1 + 2 * EC_FIELD_MAX_BYTES];
    const char *x, *y;
    size_t x_len, y_len, got_x, got_y;

    for (size_t i = 0; crv != NULL && i < ALG_COUNT; i++) {
        if (algs[i].crv != NULL && strcmp(algs[i].crv, crv) == 0)
            a = &algs[i];
    }
    if (a == NULL) {
        *why = "the jwk's crv is not P-256 or P-384";
        return NULL;
    }
    /* SEC 1 §2.3.3 uncompressed point; RFC 7518 §6.2.1.2 keeps a coordinate's leading zeros, so
     * each is exactly the field's size. */
    size_t field = a->field_bytes;
    point[0] = 0x04;
    if (!jwk_get_b64(jwk, "x", point + 1, field, &got_x, &x, &x_len) || got_x != field ||
        !jwk_get_b64(jwk, "y", point + 1 + field, field, &got_y, &y, &y_len) || got_y != field) {
        *why = "the jwk's x and y are not base64url coordinates of the curve's size";
        return NULL;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, a->group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * field),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *key = key_from_params("EC", params);
    if (key == NULL || !ec_public_check(key)) {
        *why = "the jwk's point is not on its curve";
        EVP_PKEY_free(key);
        return NULL;
    }
    *canonical_len = snprintf(canonical, JWS_MAX_JWK + 1,
                              "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%.*s\",\"y\":\"%.*s\"}",
                              a->crv, (int)x_len, x, (int)y_len, y);
    if (!canonical_fits(*canonical_len)) {
        *why = "the jwk is too long";
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

static EVP_PKEY *rsa_key_from_bytes(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM *params = NULL;
    EVP_PKEY *key = NULL;

    if (bld != NULL && bn_n != NULL && bn_e != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
        key = key_from_params("RSA", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return key;
}

/* Checked here rather than with EVP_PKEY_public_check(), whose primality test of n costs more
 * than the verification it would protect: a bad public key can only fail to verify. */
static EVP_PKEY *rsa_key_from_jwk(const struct json_value *jwk, char *canonical, int *canonical_len,
                                  const char **why)
{
    uint8_t n[JWS_RSA_MAX_BITS / 8], e[RSA_E_MAX_BYTES];
    const char *n_text, *e_text;
    size_t n_len, e_len, n_text_len, e_text_len;

    if (!jwk_get_b64(jwk, "n", n, sizeof(n), &n_len, &n_text, &n_text_len) ||
        !jwk_get_b64(jwk, "e", e, sizeof(e), &e_len, &e_text, &e_text_len)) {
        *why = "the jwk's n and e are not base64url integers of a supported size";
        return NULL;
    }
    if (n_len == 0 || n[0] == 0 || e_len == 0 || e[0] == 0) {
        *why = "the jwk's n and e must not have leading zero bytes";
        return NULL;
    }
    size_t bits = 8 * n_len;
    for (uint8_t top = n[0]; (top & 0x80) == 0; top = (uint8_t)(top << 1))
        bits--;
    if (bits < JWS_RSA_MIN_BITS || (n[n_len - 1] & 1) == 0) {
        *why = "the jwk's modulus is shorter than 2048 bits or even";
        return NULL;
    }
    if ((e[e_len - 1] & 1) == 0 || (e_len == 1 && e[0] == 1)) {
        *why = "the jwk's exponent is even or 1";
        return NULL;
    }
    EVP_PKEY *key = rsa_key_from_bytes(n, n_len, e, e_len);
    if (key == NULL) {
        *why = "the jwk is not a usable RSA key";
        return NULL;
    }
    *canonical_len =
        snprintf(canonical, JWS_MAX_JWK + 1, "{\"e\":\"%.*s\",\"kty\":\"RSA\",\"n\":\"%.*s\"}",
                 (int)e_text_len, e_text, (int)n_text_len, n_text);
    if (!canonical_fits(*canonical_len)) {
        *why = "the jwk is too long";
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* The key of a parsed JWK, with its RFC 7638 text and thumbprint (either may be NULL). */
static EVP_PKEY *key_from_jwk_value(const struct json_value *jwk, char *canonical,
                                    uint8_t *thumbprint, const char **why)
{
    const char *kty = json_object_get_string(jwk, "kty");
    char text[JWS_MAX_JWK + 1];
    int text_len = 0;
    EVP_PKEY *key = NULL;

    for (size_t i = 0; i < sizeof(secret_members) / sizeof(secret_members[0]); i++) {
        if (json_object_find(jwk, secret_members[i]) != NULL) {
            *why = "the jwk holds private key material";
            return NULL;
        }
    }
    if (kty != NULL && strcmp(kty, "EC") == 0)
        key = ec_key_from_jwk(jwk, text, &text_len, why);
    else if (kty != NULL && strcmp(kty, "RSA") == 0)
        key = rsa_key_from_jwk(jwk, text, &text_len, why);
    else
        *why = "the jwk's kty is not EC or RSA";
    if (key == NULL)
        return NULL;
    if (thumbprint != NULL &&
        EVP_Digest(text, (size_t)text_len, thumbprint, NULL, EVP_sha256(), NULL) != 1) {
        *why = "cannot hash the jwk";
        EVP_PKEY_free(key);
        return NULL;
    }
    if (canonical != NULL)
        memcpy(canonical, text, (size_t)text_len + 1);
    return key;
}

EVP_PKEY *jws_key_from_jwk(const char *json, size_t len, char canonical[JWS_MAX_JWK + 1],
                           uint8_t thumbprint[JWS_THUMBPRINT_LEN])
{
    struct json_doc *doc = NULL;
    EVP_PKEY *key = NULL;
    const char *why;

    if (json_parse(json, len, &jwk_limits, &doc, NULL) == JSON_OK)
        key = key_from_jwk_value(json_doc_root(doc), canonical, thumbprint, &why);
    json_doc_free(doc);
    ERR_clear_error();
    return key;
}

/* ---- the envelope and its header ---- */

struct b64_text {
    const char *text; /* NULL when the member is absent */
    size_t len;
};

struct envelope {
    struct b64_text protected_header, payload, signature;
};

static enum jws_error read_envelope(const struct json_value *root, struct envelope *env,
                                    const char **why)
{
    if (json_value_kind(root) != JSON_KIND_OBJECT) {
        *why = "the body is not a JSON object";
        return JWS_MALFORMED;
    }
    for (size_t i = 0; i < json_object_count(root); i++) {
        const char *key;
        const struct json_value *value;
        struct b64_text *member;
        if (!json_object_member(root, i, &key, NULL, &value))
            return JWS_MALFORMED;
        if (strcmp(key, "protected") == 0) {
            member = &env->protected_header;
        } else if (strcmp(key, "payload") == 0) {
            member = &env->payload;
        } else if (strcmp(key, "signature") == 0) {
            member = &env->signature;
        } else {
            *why = "the JWS has a member other than protected, payload and signature";
            return JWS_MALFORMED;
        }
        if (!json_get_string(value, &member->text, &member->len)) {
            *why = "the JWS's protected, payload and signature must be strings";
            return JWS_MALFORMED;
        }
    }
    if (env->protected_header.len == 0) {
        *why = "the JWS has no protected header";
        return JWS_MALFORMED;
    }
    if (env->payload.text == NULL) {
        *why = "the JWS has no payload";
        return JWS_MALFORMED;
    }
    if (env->signature.len == 0) {
        *why = "the JWS has no signature";
        return JWS_MALFORMED;
    }
    if (env->protected_header.len > b64url_encoded_len(HEADER_MAX_BYTES) ||
        env->signature.len > b64url_encoded_len(SIGNATURE_MAX_BYTES)) {
        *why = "the JWS's protected header or signature is too long";
        return JWS_MALFORMED;
    }
    return JWS_OK;
}

/* Copies a string of 1 to max printable ASCII characters, no spaces, into dst. */
static bool copy_token(const struct json_value *v, char *dst, size_t max)
{
    const char *s;
    size_t len;
    if (!json_get_string(v, &s, &len) || len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e)
            return false;
    }
    memcpy(dst, s, len + 1);
    return true;
}

static bool read_nonce(const struct json_value *v, char nonce[JWS_MAX_NONCE + 1])
{
    uint8_t scratch[JWS_MAX_NONCE];
    size_t len;
    return copy_token(v, nonce, JWS_MAX_NONCE) &&
           b64url_decode(nonce, strlen(nonce), scratch, &len);
}

static enum jws_error read_alg(const struct json_value *header, enum jws_alg *alg, const char **why)
{
    const struct json_value *v = json_object_find(header, "alg");
    const char *name;
    if (v == NULL) {
        *why = "the protected header has no alg";
        return JWS_BAD_ALG;
    }
    if (!json_get_string(v, &name, NULL)) {
        *why = "the protected header's alg is not a string";
        return JWS_MALFORMED;
    }
    for (size_t i = 0; i < ALG_COUNT; i++) {
        if (strcmp(algs[i].name, name) == 0) {
            *alg = (enum jws_alg)i;
            return JWS_OK;
        }
    }
    *why = "alg must be ES256, ES384 or RS256";
    return JWS_BAD_ALG;
}

/* The key comes last: building and checking it is the costly step. */
static enum jws_error read_header(const struct json_value *header, struct jws *out,
                                  const char **why)
{
    if (json_value_kind(header) != JSON_KIND_OBJECT) {
        *why = "the protected header is not a JSON object";
        return JWS_MALFORMED;
    }
    if (json_object_find(header, "crit") != NULL) {
        *why = "no critical header extension is supported";
        return JWS_MALFORMED;
    }
    enum jws_error err = read_alg(header, &out->alg, why);
    if (err != JWS_OK)
        return err;
    const struct json_value *jwk = json_object_find(header, "jwk");
    const struct json_value *kid = json_object_find(header, "kid");
    if ((jwk == NULL) == (kid == NULL)) {
        *why = "the protected header must have exactly one of jwk and kid";
        return JWS_MALFORMED;
    }
    if (kid != NULL) {
        if (!copy_token(kid, out->kid, JWS_MAX_URL)) {
            *why = "the protected header's kid is not a URL or too long";
            return JWS_MALFORMED;
        }
        out->has_kid = true;
    }
    const struct json_value *nonce = json_object_find(header, "nonce");
    if (nonce != NULL && !read_nonce(nonce, out->nonce)) {
        *why = "the protected header's nonce is not base64url or too long";
        return JWS_MALFORMED;
    }
    if (!copy_token(json_object_find(header, "url"), out->url, JWS_MAX_URL)) {
        *why = "the protected header's url is missing, not a URL or too long";
        return JWS_MALFORMED;
    }
    if (jwk != NULL) {
        if (json_value_kind(jwk) != JSON_KIND_OBJECT) {
            *why = "the protected header's jwk is not a JSON object";
            return JWS_MALFORMED;
        }
        out->jwk = key_from_jwk_value(jwk, out->jwk_canonical, out->jwk_thumbprint, why);
        if (out->jwk == NULL)
            return JWS_BAD_KEY;
        if (!key_matches_alg(out->jwk, out->alg)) {
            *why = "the jwk is not a key for alg";
            return JWS_BAD_KEY;
        }
    }
    return JWS_OK;
}

static void set_detail(char *detail, size_t detail_size, const char *why)
{
    if (detail != NULL && detail_size > 0)
        snprintf(detail, detail_size, "%s", why);
}

enum jws_error jws_parse(const char *body, size_t len, struct jws *out, char *detail,
                         size_t detail_size)
{
    struct json_doc *envelope_doc = NULL, *header_doc = NULL;
    struct envelope env = {0};
    uint8_t *header_text = NULL;
    size_t header_len;
    const char *why = "the JWS is malformed";
    enum jws_error err = JWS_MALFORMED;

    memset(out, 0, sizeof(*out));
    if (len > JWS_MAX_BODY) {
        why = "the body is too large";
        goto out;
    }
    if (json_parse(body, len, &envelope_limits, &envelope_doc, NULL) != JSON_OK) {
        why = "the body is not a JWS in flattened JSON serialization";
        goto out;
    }
    err = read_envelope(json_doc_root(envelope_doc), &env, &why);
    if (err != JWS_OK)
        goto out;
    err = JWS_MALFORMED;
    out->payload = b64url_decode_new(env.payload.text, env.payload.len, &out->payload_len);
    out->signature = b64url_decode_new(env.signature.text, env.signature.len, &out->signature_len);
    header_text =
        b64url_decode_new(env.protected_header.text, env.protected_header.len, &header_len);
    if (out->payload == NULL || out->signature == NULL || header_text == NULL) {
        why = "the JWS's protected, payload and signature must be unpadded base64url";
        goto out;
    }
    if (json_parse((const char *)header_text, header_len, &header_limits, &header_doc, NULL) !=
        JSON_OK) {
        why = "the protected header is not JSON of a bounded size";
        goto out;
    }
    err = read_header(json_doc_root(header_doc), out, &why);
    if (err != JWS_OK)
        goto out;

    /* What was signed is the base64url text as sent (RFC 7515 §5.2), not a re-encoding. */
    out->signing_input_len = env.protected_header.len + 1 + env.payload.len;
    out->signing_input = malloc(out->signing_input_len + 1);
    if (out->signing_input == NULL) {
        why = "out of memory";
        err = JWS_MALFORMED;
        goto out;
    }
    memcpy(out->signing_input, env.protected_header.text, env.protected_header.len);
    out->signing_input[env.protected_header.len] = '.';
    memcpy(out->signing_input + env.protected_header.len + 1, env.payload.text, env.payload.len);
    out->signing_input[out->signing_input_len] = '\0';
out:
    free(header_text);
    json_doc_free(header_doc);
    json_doc_free(envelope_doc);
    if (err != JWS_OK) {
        jws_clear(out);
        set_detail(detail, detail_size, why);
    }
    ERR_clear_error();
    return err;
}

void jws_clear(struct jws *jws)
{
    EVP_PKEY_free(jws->jwk);
    free(jws->payload);
    free(jws->signing_input);
    free(jws->signature);
    memset(jws, 0, sizeof(*jws));
}

/* ---- verification ---- */

/* The DER ECDSA-Sig-Value (RFC 3279 §2.2.3) of a JWS r||s signature (RFC 7518 §3.4), in a
 * buffer to OPENSSL_free(). */
static unsigned char *ecdsa_sig_to_der(const uint8_t *sig, size_t half, size_t *der_len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    unsigned char *der = NULL;

    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return NULL;
    }
    int len = i2d_ECDSA_SIG(es, &der); /* es owns r and s now */
    ECDSA_SIG_free(es);
    if (len <= 0)
        return NULL;
    *der_len = (size_t)len;
    return der;
}

enum jws_error jws_verify(const struct jws *jws, EVP_PKEY *key)
{
    enum jws_error err = JWS_BAD_SIGNATURE;
    const unsigned char *sig = jws->signature;
    size_t sig_len = jws->signature_len;
    unsigned char *der = NULL;
    EVP_MD_CTX *md = NULL;

    if ((size_t)jws->alg >= ALG_COUNT)
        return JWS_BAD_ALG;
    const struct alg_desc *a = &algs[jws->alg];
    if (key == NULL || !key_matches_alg(key, jws->alg)) {
        err = JWS_BAD_KEY;
        goto out;
    }
    if (sig == NULL || jws->signing_input == NULL)
        goto out;
    if (a->field_bytes != 0) {
        if (sig_len != 2 * a->field_bytes ||
            (der = ecdsa_sig_to_der(sig, a->field_bytes, &sig_len)) == NULL)
            goto out;
        sig = der;
    }
    md = EVP_MD_CTX_new();
    if (md != NULL && EVP_DigestVerifyInit_ex(md, NULL, a->digest, NULL, NULL, key, NULL) == 1 &&
        EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)jws->signing_input,
                         jws->signing_input_len) == 1)
        err = JWS_OK;
out:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ERR_clear_error();
    return err;
}

const char *jws_error_problem(enum jws_error err)
{
    switch (err) {
    case JWS_OK:
        return NULL;
    case JWS_MALFORMED:
        return "malformed";
    case JWS_BAD_ALG:
        return "badSignatureAlgorithm";
    case JWS_BAD_KEY:
        return "badPublicKey";
    case JWS_BAD_SIGNATURE:
        return "unauthorized";
    }
    return NULL;
}
