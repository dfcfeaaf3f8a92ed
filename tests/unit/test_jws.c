/* Unit tests of server/acme/jws.c: flattened JWS envelopes built and signed here (P-256, P-384
 * and RSA keys made with OpenSSL, a signer that writes ECDSA as r||s), then parsed and verified;
 * what must be refused and with which error; JWK keys, their canonical text and RFC 7638
 * thumbprint; the strict base64url. After every call OpenSSL's error queue must be empty. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "jws.h"

#define NONCE "Uo5eLkNkpBfk1fBz3eB5yQ"
#define URL "https://vouch.example/acme/new-account"
#define KID "https://vouch.example/acme/account/7"
#define PAYLOAD "{\"contact\":[\"mailto:admin@example.com\"],\"termsOfServiceAgreed\":true}"

static EVP_PKEY *p256, *p256_other, *p384, *p384_other, *rsa2048, *rsa2048_other, *rsa1024;

static int make_keys(void **state)
{
    p256 = EVP_EC_gen("P-256");
    p256_other = EVP_EC_gen("P-256");
    p384 = EVP_EC_gen("P-384");
    p384_other = EVP_EC_gen("P-384");
    rsa2048 = EVP_RSA_gen(2048);
    rsa2048_other = EVP_RSA_gen(2048);
    rsa1024 = EVP_RSA_gen(1024);
    return p256 && p256_other && p384 && p384_other && rsa2048 && rsa2048_other && rsa1024 ? 0 : -1;
}

static int free_keys(void **state)
{
    EVP_PKEY *all[] = {p256, p256_other, p384, p384_other, rsa2048, rsa2048_other, rsa1024};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        EVP_PKEY_free(all[i]);
    return 0;
}

/* ---- building JWS as a client does ---- */

/* base64url of len bytes, malloc()ed. */
static char *b64(const void *data, size_t len)
{
    char *text = malloc(b64url_encoded_len(len) + 1);
    assert_non_null(text);
    b64url_encode(data, len, text);
    return text;
}

static bool is_p384(EVP_PKEY *key)
{
    return EVP_PKEY_get_bits(key) == 384;
}

/* A JWK text of key's public half, members in no canonical order, with extra (may be "") added
 * after them, e.g. ",\"d\":\"AQAB\"". */
static void jwk_text(EVP_PKEY *key, const char *extra, char *out, size_t size)
{
    if (EVP_PKEY_is_a(key, "EC")) {
        uint8_t point[1 + 2 * 48];
        size_t len;
        assert_int_equal(EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                         sizeof(point), &len),
                         1);
        size_t field = (len - 1) / 2;
        char *x = b64(point + 1, field), *y = b64(point + 1 + field, field);
        snprintf(out, size, "{\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\",\"crv\":\"%s\"%s}", x, y,
                 is_p384(key) ? "P-384" : "P-256", extra);
        free(x);
        free(y);
        return;
    }
    BIGNUM *n = NULL, *e = NULL;
    uint8_t n_bytes[1024], e_bytes[8];
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    char *n_text = b64(n_bytes, (size_t)BN_bn2bin(n, n_bytes));
    char *e_text = b64(e_bytes, (size_t)BN_bn2bin(e, e_bytes));
    snprintf(out, size, "{\"n\":\"%s\",\"kty\":\"RSA\",\"e\":\"%s\",\"use\":\"sig\"%s}", n_text,
             e_text, extra);
    BN_free(n);
    BN_free(e);
    free(n_text);
    free(e_text);
}

/* A protected header; a NULL member is left out. jwk is JSON text; extra (may be NULL) is more
 * members, e.g. "\"crit\":[\"b64\"]". Returns a static buffer. */
static const char *header(const char *alg, const char *jwk, const char *kid, const char *nonce,
                          const char *url, const char *extra)
{
    static char text[16384];
    size_t used = 0;
    const char *names[] = {"alg", "jwk", "kid", "nonce", "url"};
    const char *values[] = {alg, jwk, kid, nonce, url};
    text[used++] = '{';
    for (size_t i = 0; i < 5; i++) {
        if (values[i] == NULL)
            continue;
        const char *quote = i == 1 ? "" : "\"";
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s\"%s\":%s%s%s",
                                 used > 1 ? "," : "", names[i], quote, values[i], quote);
    }
    if (extra != NULL)
        used +=
            (size_t)snprintf(text + used, sizeof(text) - used, "%s%s", used > 1 ? "," : "", extra);
    assert_true(used + 2 < sizeof(text));
    text[used++] = '}';
    text[used] = '\0';
    return text;
}

/* The newAccount header of a client with key, announcing alg. */
static const char *jwk_header(const char *alg, EVP_PKEY *key)
{
    char jwk[2048];
    jwk_text(key, "", jwk, sizeof(jwk));
    return header(alg, jwk, NULL, NONCE, URL, NULL);
}

/* Signs input as a JWS client does with key: RS256 for RSA, ES256 or ES384 by the curve, and
 * ECDSA as r||s unless der. sig holds 1024 bytes; returns the signature's length. */
static size_t sign_input(EVP_PKEY *key, const char *input, bool der, uint8_t *sig)
{
    size_t half = EVP_PKEY_is_a(key, "EC") ? (size_t)EVP_PKEY_get_bits(key) / 8 : 0;
    uint8_t raw[1024];
    size_t raw_len = sizeof(raw);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(
        EVP_DigestSignInit_ex(md, NULL, half == 48 ? "SHA384" : "SHA256", NULL, NULL, key, NULL),
        1);
    assert_int_equal(EVP_DigestSign(md, raw, &raw_len, (const uint8_t *)input, strlen(input)), 1);
    EVP_MD_CTX_free(md);
    if (half == 0 || der) {
        memcpy(sig, raw, raw_len);
        return raw_len;
    }
    const uint8_t *p = raw;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)raw_len);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)half), (int)half);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, (int)half), (int)half);
    ECDSA_SIG_free(es);
    return 2 * half;
}

struct parts {
    char *protected_b64, *payload_b64, *signature_b64;
};

static struct parts sign_parts(const char *hdr, const char *payload, EVP_PKEY *key, bool der)
{
    struct parts p = {b64(hdr, strlen(hdr)), b64(payload, strlen(payload)), NULL};
    size_t size = strlen(p.protected_b64) + strlen(p.payload_b64) + 2;
    char *input = malloc(size);
    uint8_t sig[1024];
    assert_non_null(input);
    snprintf(input, size, "%s.%s", p.protected_b64, p.payload_b64);
    p.signature_b64 = b64(sig, sign_input(key, input, der, sig));
    free(input);
    return p;
}

static void free_parts(struct parts *p)
{
    free(p->protected_b64);
    free(p->payload_b64);
    free(p->signature_b64);
}

/* The flattened JSON serialization of three base64url texts, malloc()ed. */
static char *envelope(const char *protected_b64, const char *payload_b64, const char *signature_b64)
{
    size_t size = strlen(protected_b64) + strlen(payload_b64) + strlen(signature_b64) + 64;
    char *body = malloc(size);
    assert_non_null(body);
    snprintf(body, size, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
             protected_b64, payload_b64, signature_b64);
    return body;
}

static char *make_jws(const char *hdr, const char *payload, EVP_PKEY *key)
{
    struct parts p = sign_parts(hdr, payload, key, false);
    char *body = envelope(p.protected_b64, p.payload_b64, p.signature_b64);
    free_parts(&p);
    return body;
}

/* ---- checking ---- */

static void assert_queue_empty(void)
{
    assert_int_equal(ERR_peek_error(), 0);
}

/* jws_parse() of len bytes, which must give expected; a failure leaves a reason and nothing
 * to free. */
static void expect_parse_len(const char *body, size_t len, enum jws_error expected)
{
    struct jws jws;
    char detail[256] = "";
    enum jws_error err = jws_parse(body, len, &jws, detail, sizeof(detail));
    if (err != expected)
        print_error("expected %d, got %d (%s) for %.300s\n", (int)expected, (int)err, detail, body);
    assert_int_equal(err, expected);
    assert_queue_empty();
    if (err != JWS_OK) {
        assert_true(detail[0] != '\0');
        assert_null(jws.jwk);
        assert_null(jws.payload);
        assert_null(jws.signature);
        assert_null(jws.signing_input);
    }
    jws_clear(&jws);
}

static void expect_parse(const char *body, enum jws_error expected)
{
    expect_parse_len(body, strlen(body), expected);
}

/* Parses a JWS signed with key under hdr; expects that to give expected. */
static void expect_signed(const char *hdr, EVP_PKEY *key, enum jws_error expected)
{
    char *body = make_jws(hdr, PAYLOAD, key);
    expect_parse(body, expected);
    free(body);
}

/* Parses body, which must parse, and verifies it with key (its own jwk when NULL). */
static enum jws_error parse_and_verify(const char *body, EVP_PKEY *key)
{
    struct jws jws;
    char detail[256] = "";
    enum jws_error err = jws_parse(body, strlen(body), &jws, detail, sizeof(detail));
    if (err != JWS_OK)
        print_error("parse: %s\n", detail);
    assert_int_equal(err, JWS_OK);
    err = jws_verify(&jws, key != NULL ? key : jws.jwk);
    assert_queue_empty();
    jws_clear(&jws);
    return err;
}

static void assert_thumbprint_of(const char *canonical, const uint8_t thumbprint[32])
{
    uint8_t digest[32];
    assert_int_equal(EVP_Digest(canonical, strlen(canonical), digest, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(digest, thumbprint, 32);
}

/* jws_key_from_jwk() must refuse text. */
static void expect_bad_jwk(const char *text)
{
    EVP_PKEY *key = jws_key_from_jwk(text, strlen(text), NULL, NULL);
    if (key != NULL)
        print_error("accepted jwk %.300s\n", text);
    assert_null(key);
    assert_queue_empty();
}

/* ---- tests ---- */

static void test_b64url(void **state)
{
    const struct {
        const char *bytes, *text;
    } vectors[] = {{"", ""},
                   {"f", "Zg"},
                   {"fo", "Zm8"},
                   {"foo", "Zm9v"},
                   {"foob", "Zm9vYg"},
                   {"\xfb\xff", "-_8"},
                   {"\xff\xfe\xfd\xfc", "__79_A"}};
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char text[16];
        uint8_t bytes[16];
        size_t len = strlen(vectors[i].bytes), got;
        b64url_encode((const uint8_t *)vectors[i].bytes, len, text);
        assert_string_equal(text, vectors[i].text);
        assert_int_equal(b64url_encoded_len(len), strlen(text));
        assert_true(b64url_decode(text, strlen(text), bytes, &got));
        assert_int_equal(got, len);
        assert_memory_equal(bytes, vectors[i].bytes, len);
    }
    /* Padding, whitespace, the standard alphabet, a lone character, unused bits set. */
    const char *refused[] = {"Zg==", "Zm8=",  "Zm9v\n", " Zm9v", "Zm 9v", "Zm+v",
                             "Zm/v", "Zm9vY", "Zh",     "Zm9",   "Zm9v="};
    uint8_t bytes[16];
    size_t got;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        assert_false(b64url_decode(refused[i], strlen(refused[i]), bytes, &got));
    assert_false(b64url_decode("Zm\0v", 4, bytes, &got));
}

static void test_each_alg_verifies(void **state)
{
    const struct {
        const char *alg;
        enum jws_alg value;
        EVP_PKEY **key;
        const char *canonical_prefix;
    } cases[] = {{"ES256", JWS_ALG_ES256, &p256, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\""},
                 {"ES384", JWS_ALG_ES384, &p384, "{\"crv\":\"P-384\",\"kty\":\"EC\",\"x\":\""},
                 {"RS256", JWS_ALG_RS256, &rsa2048, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\""}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *key = *cases[i].key;
        char *body = make_jws(jwk_header(cases[i].alg, key), PAYLOAD, key);
        struct jws jws;
        assert_int_equal(jws_parse(body, strlen(body), &jws, NULL, 0), JWS_OK);
        assert_int_equal(jws.alg, cases[i].value);
        assert_string_equal(jws.nonce, NONCE);
        assert_string_equal(jws.url, URL);
        assert_false(jws.has_kid);
        assert_non_null(jws.jwk);
        assert_int_equal(EVP_PKEY_eq(jws.jwk, key), 1);
        assert_int_equal(jws.payload_len, strlen(PAYLOAD));
        assert_string_equal((const char *)jws.payload, PAYLOAD);
        assert_int_equal(strncmp(jws.jwk_canonical, cases[i].canonical_prefix,
                                 strlen(cases[i].canonical_prefix)),
                         0);
        assert_null(strchr(jws.jwk_canonical, ' '));
        assert_null(strstr(jws.jwk_canonical, "\"use\""));
        assert_thumbprint_of(jws.jwk_canonical, jws.jwk_thumbprint);
        assert_int_equal(jws_verify(&jws, jws.jwk), JWS_OK);
        assert_queue_empty();

        /* What an account stores gives back the same key and thumbprint. */
        char canonical[JWS_MAX_JWK + 1];
        uint8_t thumbprint[JWS_THUMBPRINT_LEN];
        EVP_PKEY *stored =
            jws_key_from_jwk(jws.jwk_canonical, strlen(jws.jwk_canonical), canonical, thumbprint);
        assert_non_null(stored);
        assert_int_equal(EVP_PKEY_eq(stored, key), 1);
        assert_string_equal(canonical, jws.jwk_canonical);
        assert_memory_equal(thumbprint, jws.jwk_thumbprint, JWS_THUMBPRINT_LEN);
        EVP_PKEY_free(stored);
        jws_clear(&jws);
        free(body);

        /* The kid form, verified with the account's key. */
        body = make_jws(header(cases[i].alg, NULL, KID, NONCE, URL, NULL), PAYLOAD, key);
        assert_int_equal(jws_parse(body, strlen(body), &jws, NULL, 0), JWS_OK);
        assert_true(jws.has_kid);
        assert_string_equal(jws.kid, KID);
        assert_null(jws.jwk);
        assert_int_equal(jws_verify(&jws, key), JWS_OK);
        jws_clear(&jws);
        free(body);
    }
}

static void test_wrong_key(void **state)
{
    const struct {
        const char *alg;
        EVP_PKEY **key, **other;
    } cases[] = {{"ES256", &p256, &p256_other},
                 {"ES384", &p384, &p384_other},
                 {"RS256", &rsa2048, &rsa2048_other}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* The header's jwk is not the key that signed. */
        char *body = make_jws(jwk_header(cases[i].alg, *cases[i].key), PAYLOAD, *cases[i].other);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        /* An account key other than the signer's. */
        body = make_jws(header(cases[i].alg, NULL, KID, NONCE, URL, NULL), PAYLOAD, *cases[i].key);
        assert_int_equal(parse_and_verify(body, *cases[i].other), JWS_BAD_SIGNATURE);
        free(body);
    }
}

static void test_alg_key_mismatch(void **state)
{
    expect_signed(jwk_header("ES256", p384), p384, JWS_BAD_KEY);
    expect_signed(jwk_header("ES384", p256), p256, JWS_BAD_KEY);
    expect_signed(jwk_header("RS256", p256), p256, JWS_BAD_KEY);
    expect_signed(jwk_header("ES256", rsa2048), rsa2048, JWS_BAD_KEY);

    /* With kid, jws_verify() checks the account's key against alg. */
    char *body = make_jws(header("ES256", NULL, KID, NONCE, URL, NULL), PAYLOAD, p256);
    assert_int_equal(parse_and_verify(body, p384), JWS_BAD_KEY);
    assert_int_equal(parse_and_verify(body, rsa2048), JWS_BAD_KEY);
    free(body);
    body = make_jws(header("RS256", NULL, KID, NONCE, URL, NULL), PAYLOAD, rsa2048);
    assert_int_equal(parse_and_verify(body, p256), JWS_BAD_KEY);
    assert_int_equal(parse_and_verify(body, rsa1024), JWS_BAD_KEY);
    free(body);
}

static void test_bad_alg(void **state)
{
    const char *algs[] = {"none",  "HS256", "HS384", "ES512",  "RS384",
                          "PS256", "EdDSA", "es256", "ES256 ", ""};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        expect_signed(jwk_header(algs[i], p256), p256, JWS_BAD_ALG);
    expect_signed(header(NULL, NULL, KID, NONCE, URL, NULL), p256, JWS_BAD_ALG);
    /* An alg that is no string is malformed. */
    expect_signed(header(NULL, NULL, KID, NONCE, URL, "\"alg\":256"), p256, JWS_MALFORMED);
}

static void test_jwk_xor_kid(void **state)
{
    char jwk[2048];
    jwk_text(p256, "", jwk, sizeof(jwk));
    expect_signed(header("ES256", jwk, KID, NONCE, URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, NULL, NONCE, URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, NULL, NONCE, URL, "\"jwk\":\"" KID "\""), p256,
                  JWS_MALFORMED);
    expect_signed(header("ES256", NULL, NULL, NONCE, URL, "\"kid\":7"), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, "", NONCE, URL, NULL), p256, JWS_MALFORMED);
}

/* Replaces the first occurrence of from in body by to; returns a new body. */
static char *replace(const char *body, const char *from, const char *to)
{
    const char *at = strstr(body, from);
    assert_non_null(at);
    size_t size = strlen(body) - strlen(from) + strlen(to) + 1;
    char *out = malloc(size);
    assert_non_null(out);
    snprintf(out, size, "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    return out;
}

static void test_base64url_in_envelope(void **state)
{
    /* "{}" is "e30": its padded form is "e30=". */
    struct parts p = sign_parts(jwk_header("ES256", p256), "{}", p256, false);
    char *good = envelope(p.protected_b64, p.payload_b64, p.signature_b64);
    assert_int_equal(parse_and_verify(good, NULL), JWS_OK);
    const struct {
        const char *from, *to;
    } edits[] = {
        {"\"e30\"", "\"e30=\""},
        {"\"e30\"", "\"e3 0\""},
        {"\"e30\"", "\"e30\\n\""},
        {"\"e30\"", "\"e+0\""},
        {"\"signature\":\"", "\"signature\":\" "},
        {"\"protected\":\"", "\"protected\":\"\\t"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *bad = replace(good, edits[i].from, edits[i].to);
        expect_parse(bad, JWS_MALFORMED);
        free(bad);
    }
    /* The standard alphabet in a signature, and padding after it. */
    char *sig = strdup(p.signature_b64);
    assert_non_null(sig);
    sig[3] = '+';
    char *bad = envelope(p.protected_b64, p.payload_b64, sig);
    expect_parse(bad, JWS_MALFORMED);
    free(bad);
    sig[3] = '/';
    bad = envelope(p.protected_b64, p.payload_b64, sig);
    expect_parse(bad, JWS_MALFORMED);
    free(bad);
    free(sig);
    char padded[4096];
    snprintf(padded, sizeof(padded), "%s=", p.protected_b64);
    bad = envelope(padded, p.payload_b64, p.signature_b64);
    expect_parse(bad, JWS_MALFORMED);
    free(bad);
    free(good);
    free_parts(&p);
}

static void test_tampering(void **state)
{
    EVP_PKEY *keys[] = {p256, p384, rsa2048};
    const char *algs[] = {"ES256", "ES384", "RS256"};
    for (size_t i = 0; i < 3; i++) {
        struct parts p = sign_parts(jwk_header(algs[i], keys[i]), PAYLOAD, keys[i], false);
        const char *other_payload = "{\"contact\":[\"mailto:evil@example.com\"]}";
        char *other = b64(other_payload, strlen(other_payload));
        char *body = envelope(p.protected_b64, other, p.signature_b64);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        free(other);

        /* A header the client did not sign: another url. */
        char jwk[2048];
        jwk_text(keys[i], "", jwk, sizeof(jwk));
        const char *hdr = header(algs[i], jwk, NULL, NONCE, URL "/other", NULL);
        other = b64(hdr, strlen(hdr));
        body = envelope(other, p.payload_b64, p.signature_b64);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        free(other);

        /* One bit of the signature. */
        uint8_t sig[1024];
        size_t sig_len;
        assert_true(b64url_decode(p.signature_b64, strlen(p.signature_b64), sig, &sig_len));
        sig[sig_len / 2] ^= 0x10;
        other = b64(sig, sig_len);
        body = envelope(p.protected_b64, p.payload_b64, other);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        free(other);

        /* A truncated signature. */
        other = b64(sig, sig_len - 1);
        body = envelope(p.protected_b64, p.payload_b64, other);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        free(other);
        free_parts(&p);
    }
}

static void test_post_as_get(void **state)
{
    char *body = make_jws(header("ES256", NULL, KID, NONCE, URL, NULL), "", p256);
    struct jws jws;
    assert_non_null(strstr(body, "\"payload\":\"\""));
    assert_int_equal(jws_parse(body, strlen(body), &jws, NULL, 0), JWS_OK);
    assert_int_equal(jws.payload_len, 0);
    assert_non_null(jws.payload);
    assert_int_equal(jws.payload[0], '\0');
    assert_int_equal(jws.signing_input[jws.signing_input_len - 1], '.');
    assert_int_equal(jws_verify(&jws, p256), JWS_OK);
    jws_clear(&jws);
    free(body);
}

static void test_private_jwk_refused(void **state)
{
    /* Private halves of the keys' own shape, and of the other type. */
    const char *extras[] = {",\"d\":\"AQAB\"", ",\"p\":\"AQAB\"", ",\"qi\":\"AQAB\"",
                            ",\"k\":\"AQAB\""};
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        char jwk[2048];
        jwk_text(p256, extras[i], jwk, sizeof(jwk));
        expect_signed(header("ES256", jwk, NULL, NONCE, URL, NULL), p256, JWS_BAD_KEY);
        expect_bad_jwk(jwk);
        jwk_text(rsa2048, extras[i], jwk, sizeof(jwk));
        expect_signed(header("RS256", jwk, NULL, NONCE, URL, NULL), rsa2048, JWS_BAD_KEY);
        expect_bad_jwk(jwk);
    }
}

static void test_rfc7638_thumbprint(void **state)
{
    /* RFC 7638 §3.1, as printed there (optional members, spaces, newlines). */
#define RFC_N                                                                                      \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"      \
    "BJECPe"                                                                                       \
    "bWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"           \
    "FDW2QvzqY368"                                                                                 \
    "QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"                        \
    "bFTWhAI4vMQFh6WeZu0fM4lFd"                                                                    \
    "2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    static const char rfc_jwk[] = "{\n"
                                  "  \"kty\": \"RSA\",\n"
                                  "  \"n\": \"" RFC_N "\",\n"
                                  "  \"e\": \"AQAB\",\n"
                                  "  \"alg\": \"RS256\",\n"
                                  "  \"kid\": \"2011-04-29\"\n"
                                  "}\n";
    char canonical[JWS_MAX_JWK + 1];
    uint8_t thumbprint[JWS_THUMBPRINT_LEN];
    char text[64];
    EVP_PKEY *key = jws_key_from_jwk(rfc_jwk, strlen(rfc_jwk), canonical, thumbprint);
    assert_non_null(key);
    assert_queue_empty();
    assert_int_equal(EVP_PKEY_get_bits(key), 2048);
    assert_string_equal(canonical, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"" RFC_N "\"}");
    b64url_encode(thumbprint, sizeof(thumbprint), text);
    assert_string_equal(text, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    EVP_PKEY_free(key);
    /* Outputs are optional. */
    key = jws_key_from_jwk(rfc_jwk, strlen(rfc_jwk), NULL, NULL);
    assert_non_null(key);
    EVP_PKEY_free(key);
}

/* An RSA JWK text from raw n and e. */
static void rsa_jwk(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, char *out,
                    size_t size)
{
    char *n_text = b64(n, n_len), *e_text = b64(e, e_len);
    snprintf(out, size, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"}", n_text, e_text);
    free(n_text);
    free(e_text);
}

static void test_rsa_key_bounds(void **state)
{
    char jwk[4096];
    jwk_text(rsa1024, "", jwk, sizeof(jwk));
    expect_bad_jwk(jwk);
    expect_signed(header("RS256", jwk, NULL, NONCE, URL, NULL), rsa1024, JWS_BAD_KEY);

    uint8_t n[600], e[8] = {1, 0, 1};
    memset(n, 0xc5, sizeof(n));
    rsa_jwk(n, 256, e, 3, jwk, sizeof(jwk));
    EVP_PKEY *key = jws_key_from_jwk(jwk, strlen(jwk), NULL, NULL);
    assert_non_null(key); /* a 2048-bit odd n: fine as far as a public key goes */
    EVP_PKEY_free(key);
    rsa_jwk(n, 512, e, 3, jwk, sizeof(jwk));
    key = jws_key_from_jwk(jwk, strlen(jwk), NULL, NULL);
    assert_non_null(key); /* 4096 bits */
    EVP_PKEY_free(key);
    rsa_jwk(n, 513, e, 3, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* 4104 bits */
    rsa_jwk(n, 255, e, 3, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* 2040 bits */
    n[0] = 0x7f;
    rsa_jwk(n, 256, e, 3, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* 2047 bits */
    n[0] = 0;
    rsa_jwk(n, 257, e, 3, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* a leading zero byte: another text for the same key */
    n[0] = 0xc5;
    n[255] = 0xc4;
    rsa_jwk(n, 256, e, 3, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* even n */
    n[255] = 0xc5;
    e[0] = 1;
    rsa_jwk(n, 256, e, 1, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* e = 1 */
    e[0] = 4;
    rsa_jwk(n, 256, e, 1, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* even e */
    memcpy(e, "\0\1\0\1", 4);
    rsa_jwk(n, 256, e, 4, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* a leading zero byte in e */
    memset(e, 0xff, sizeof(e));
    rsa_jwk(n, 256, e, 5, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* a 40-bit e */
    expect_bad_jwk("{\"kty\":\"RSA\",\"e\":\"AQAB\"}");
    expect_bad_jwk("{\"kty\":\"RSA\",\"n\":7,\"e\":\"AQAB\"}");
}

/* An EC JWK text from raw coordinates. */
static void ec_jwk(const char *crv, const uint8_t *x, size_t x_len, const uint8_t *y, size_t y_len,
                   char *out, size_t size)
{
    char *x_text = b64(x, x_len), *y_text = b64(y, y_len);
    snprintf(out, size, "{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x_text,
             y_text);
    free(x_text);
    free(y_text);
}

static void test_ec_key_checks(void **state)
{
    uint8_t point[1 + 2 * 48];
    size_t len;
    char jwk[1024];
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(p256, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &len),
        1);
    assert_int_equal(len, 65);
    uint8_t *x = point + 1, *y = point + 33;
    ec_jwk("P-256", x, 32, y, 32, jwk, sizeof(jwk));
    EVP_PKEY *key = jws_key_from_jwk(jwk, strlen(jwk), NULL, NULL);
    assert_non_null(key);
    EVP_PKEY_free(key);

    ec_jwk("P-384", x, 32, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* coordinates of another curve's size */
    ec_jwk("P-521", x, 32, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk);
    ec_jwk("P-256", x + 1, 31, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* a short x (leading zeros must be kept) */
    ec_jwk("P-256", point, 33, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* a long x */

    y[31] ^= 1;
    ec_jwk("P-256", x, 32, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* not on the curve */
    expect_signed(header("ES256", jwk, NULL, NONCE, URL, NULL), p256, JWS_BAD_KEY);
    y[31] ^= 1;
    uint8_t zeros[32] = {0};
    ec_jwk("P-256", zeros, 32, zeros, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk);
    uint8_t ones[32];
    memset(ones, 0xff, sizeof(ones));
    ec_jwk("P-256", ones, 32, y, 32, jwk, sizeof(jwk));
    expect_bad_jwk(jwk); /* x beyond the field */

    expect_bad_jwk("{\"kty\":\"oct\",\"k\":\"AQAB\"}");
    expect_bad_jwk("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AQAB\"}");
    expect_bad_jwk("{\"crv\":\"P-256\"}");
    expect_bad_jwk("[]");
    expect_bad_jwk("");
    expect_bad_jwk("{\"kty\":\"EC\",\"kty\":\"EC\"}");
    expect_signed(header("ES256", "{\"kty\":\"oct\",\"k\":\"AQAB\"}", NULL, NONCE, URL, NULL), p256,
                  JWS_BAD_KEY);
}

static void test_ecdsa_signature_form(void **state)
{
    EVP_PKEY *keys[] = {p256, p384};
    const char *algs[] = {"ES256", "ES384"};
    for (size_t i = 0; i < 2; i++) {
        /* DER, as OpenSSL would sign, is not the JWS form. */
        struct parts p = sign_parts(jwk_header(algs[i], keys[i]), PAYLOAD, keys[i], true);
        char *body = envelope(p.protected_b64, p.payload_b64, p.signature_b64);
        assert_int_equal(parse_and_verify(body, NULL), JWS_BAD_SIGNATURE);
        free(body);
        free_parts(&p);
    }
    /* An ES384 signature under an ES256 header. */
    struct parts p = sign_parts(header("ES256", NULL, KID, NONCE, URL, NULL), PAYLOAD, p384, false);
    char *body = envelope(p.protected_b64, p.payload_b64, p.signature_b64);
    assert_int_equal(parse_and_verify(body, p256), JWS_BAD_SIGNATURE);
    free(body);
    free_parts(&p);
}

static void test_oversized(void **state)
{
    char big[1024];
    /* nonce, url and kid at their limits, then one over. */
    memset(big, 'A', sizeof(big));
    big[JWS_MAX_NONCE] = '\0';
    expect_signed(header("ES256", NULL, KID, big, URL, NULL), p256, JWS_OK);
    big[JWS_MAX_NONCE] = 'A';
    big[JWS_MAX_NONCE + 4] = '\0';
    expect_signed(header("ES256", NULL, KID, big, URL, NULL), p256, JWS_MALFORMED);
    memset(big, 'A', sizeof(big));
    memcpy(big, "https://", 8);
    big[JWS_MAX_URL] = '\0';
    expect_signed(header("ES256", NULL, KID, NONCE, big, NULL), p256, JWS_OK);
    expect_signed(header("ES256", NULL, big, NONCE, URL, NULL), p256, JWS_OK);
    big[JWS_MAX_URL] = 'A';
    big[JWS_MAX_URL + 1] = '\0';
    expect_signed(header("ES256", NULL, KID, NONCE, big, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, big, NONCE, URL, NULL), p256, JWS_MALFORMED);

    /* A body over JWS_MAX_BODY. */
    char *payload = malloc(JWS_MAX_BODY);
    assert_non_null(payload);
    memset(payload, 'a', JWS_MAX_BODY - 1);
    payload[JWS_MAX_BODY - 1] = '\0';
    char *body = make_jws(header("ES256", NULL, KID, NONCE, URL, NULL), payload, p256);
    expect_parse(body, JWS_MALFORMED);
    free(body);
    free(payload);

    /* A protected header of 10 KiB. */
    char *extra = malloc(10 * 1024);
    assert_non_null(extra);
    memset(extra, 'a', 10 * 1024 - 1);
    extra[10 * 1024 - 1] = '\0';
    memcpy(extra, "\"typ\":\"", 7);
    extra[10 * 1024 - 2] = '"';
    expect_signed(header("ES256", NULL, KID, NONCE, URL, extra), p256, JWS_MALFORMED);
    free(extra);

    /* A signature longer than an RSA-4096 one. */
    uint8_t sig[600] = {0};
    struct parts p =
        sign_parts(header("RS256", NULL, KID, NONCE, URL, NULL), PAYLOAD, rsa2048, false);
    char *long_sig = b64(sig, 513);
    body = envelope(p.protected_b64, p.payload_b64, long_sig);
    expect_parse(body, JWS_MALFORMED);
    free(body);
    free(long_sig);
    free_parts(&p);

    /* A jwk nested past its depth. */
    expect_signed(
        header("ES256", "{\"kty\":\"EC\",\"key_ops\":[[\"verify\"]]}", NULL, NONCE, URL, NULL),
        p256, JWS_MALFORMED);
}

static void test_envelope_shape(void **state)
{
    struct parts p = sign_parts(header("ES256", NULL, KID, NONCE, URL, NULL), PAYLOAD, p256, false);
    char *good = envelope(p.protected_b64, p.payload_b64, p.signature_b64);
    expect_parse(good, JWS_OK);
    const struct {
        const char *from, *to;
    } edits[] = {
        {"{\"protected\"", "{\"header\":{\"alg\":\"none\"},\"protected\""},
        {"{\"protected\"", "{\"signatures\":[],\"protected\""},
        {"{\"protected\"", "{\"extra\":\"\",\"protected\""},
        {"{\"protected\"", "{\"payload\":\"\",\"protected\""}, /* duplicate */
        {"\"payload\":\"", "\"payload\":7,\"x\":\""},
        {"\"payload\":\"", "\"payload\":null,\"x\":\""},
        {"{", "["},
        {"}", "}x"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *bad = replace(good, edits[i].from, edits[i].to);
        expect_parse(bad, JWS_MALFORMED);
        free(bad);
    }
    /* Members empty or missing. */
    char *bad = envelope(p.protected_b64, p.payload_b64, "");
    expect_parse(bad, JWS_MALFORMED);
    free(bad);
    bad = envelope("", p.payload_b64, p.signature_b64);
    expect_parse(bad, JWS_MALFORMED);
    free(bad);
    char text[4096];
    snprintf(text, sizeof(text), "{\"protected\":\"%s\",\"signature\":\"%s\"}", p.protected_b64,
             p.signature_b64);
    expect_parse(text, JWS_MALFORMED);
    snprintf(text, sizeof(text), "{\"payload\":\"%s\",\"signature\":\"%s\"}", p.payload_b64,
             p.signature_b64);
    expect_parse(text, JWS_MALFORMED);
    /* Compact serialization, and other non-envelopes. */
    snprintf(text, sizeof(text), "%s.%s.%s", p.protected_b64, p.payload_b64, p.signature_b64);
    expect_parse(text, JWS_MALFORMED);
    expect_parse("", JWS_MALFORMED);
    expect_parse("{}", JWS_MALFORMED);
    expect_parse("null", JWS_MALFORMED);
    expect_parse_len("{\"protected\":\"e30\"}\0", 20, JWS_MALFORMED);
    free(good);
    free_parts(&p);

    /* Protected headers that are no JSON object, or duplicate a member. */
    const char *headers[] = {"[]", "\"ES256\"", "{\"alg\":\"ES256\"", "",
                             "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"" KID
                             "\",\"url\":\"" URL "\"}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *body = make_jws(headers[i], PAYLOAD, p256);
        expect_parse(body, JWS_MALFORMED);
        free(body);
    }
    /* A JSON NUL byte in a header string. */
    expect_signed(header("ES256", NULL, KID, NONCE, "https://a\\u0000b", NULL), p256,
                  JWS_MALFORMED);
}

static void test_header_members(void **state)
{
    /* crit, even empty or naming b64 (RFC 7797), is refused. */
    expect_signed(header("ES256", NULL, KID, NONCE, URL, "\"crit\":[\"b64\"],\"b64\":false"), p256,
                  JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NONCE, URL, "\"crit\":[]"), p256, JWS_MALFORMED);
    /* Other registered members are ignored. */
    expect_signed(header("ES256", NULL, KID, NONCE, URL, "\"typ\":\"JOSE+JSON\""), p256, JWS_OK);

    /* url is required and a URL-like token. */
    expect_signed(header("ES256", NULL, KID, NONCE, NULL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NONCE, "", NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NONCE, "https://a b", NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NONCE, "https://\\u00e9", NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NONCE, NULL, "\"url\":[]"), p256, JWS_MALFORMED);

    /* nonce: absent reads as "" (the caller says badNonce); present, it must be base64url. */
    char *body = make_jws(header("ES256", NULL, KID, NULL, URL, NULL), PAYLOAD, p256);
    struct jws jws;
    assert_int_equal(jws_parse(body, strlen(body), &jws, NULL, 0), JWS_OK);
    assert_string_equal(jws.nonce, "");
    assert_int_equal(jws_verify(&jws, p256), JWS_OK);
    jws_clear(&jws);
    free(body);
    expect_signed(header("ES256", NULL, KID, "", URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, "abc+def", URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, "abcde", URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, "abc=", URL, NULL), p256, JWS_MALFORMED);
    expect_signed(header("ES256", NULL, KID, NULL, URL, "\"nonce\":12"), p256, JWS_MALFORMED);
}

static void test_verify_edges(void **state)
{
    struct jws jws;
    memset(&jws, 0, sizeof(jws));
    assert_int_equal(jws_verify(&jws, p256), JWS_BAD_SIGNATURE); /* nothing parsed */
    assert_int_equal(jws_verify(&jws, NULL), JWS_BAD_KEY);
    jws.alg = (enum jws_alg)7;
    assert_int_equal(jws_verify(&jws, p256), JWS_BAD_ALG);
    jws_clear(&jws);
    jws_clear(&jws); /* twice is fine */
    assert_queue_empty();

    /* detail may be NULL or tiny. */
    char detail[4] = "xyz";
    assert_int_equal(jws_parse("[]", 2, &jws, NULL, 0), JWS_MALFORMED);
    assert_int_equal(jws_parse("[]", 2, &jws, detail, sizeof(detail)), JWS_MALFORMED);
    assert_int_equal(strlen(detail), 3);
    assert_int_equal(jws_parse("[]", 2, &jws, detail, 0), JWS_MALFORMED);
}

static void test_error_problem(void **state)
{
    assert_null(jws_error_problem(JWS_OK));
    assert_string_equal(jws_error_problem(JWS_MALFORMED), "malformed");
    assert_string_equal(jws_error_problem(JWS_BAD_ALG), "badSignatureAlgorithm");
    assert_string_equal(jws_error_problem(JWS_BAD_KEY), "badPublicKey");
    assert_string_equal(jws_error_problem(JWS_BAD_SIGNATURE), "unauthorized");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_each_alg_verifies),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_alg_key_mismatch),
        cmocka_unit_test(test_bad_alg),
        cmocka_unit_test(test_jwk_xor_kid),
        cmocka_unit_test(test_base64url_in_envelope),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_post_as_get),
        cmocka_unit_test(test_private_jwk_refused),
        cmocka_unit_test(test_rfc7638_thumbprint),
        cmocka_unit_test(test_rsa_key_bounds),
        cmocka_unit_test(test_ec_key_checks),
        cmocka_unit_test(test_ecdsa_signature_form),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_envelope_shape),
        cmocka_unit_test(test_header_members),
        cmocka_unit_test(test_verify_edges),
        cmocka_unit_test(test_error_problem),
    };
    return cmocka_run_group_tests(tests, make_keys, free_keys);
}
