/* Unit tests of server/attestation/device_attest.c: the attObj of ACME device-attest-01 answers.
 * Leaves come from the stand-in Apple PKI (tests/lib/fake_apple.h) with the freshness code
 * SHA-256 of the challenge token; the CBOR is built here with libcbor's builder, or written byte
 * by byte where the builder cannot say it; the real Apple leaf of tests/testdata/apple/ is read
 * as far as a chain without Apple's sub CA can go.
 *
 * Every verdict is taken twice, on a verifier whose cache already holds the stand-in sub CA and
 * on a new one (full path validation), and both must agree (verify_both()). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cbor.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "device_attest.h"
#include "fake_apple.h"
#include "hex.h"
#include "json.h"
#include "tu_file.h"

#define DAY ((time_t)86400)
#define NOW ((time_t)1768435200) /* 2026-01-15T00:00:00Z: the verification time */
#define MINTED (NOW - 60)        /* a device asks Apple right after it reads the challenge */
#define TESTDATA "tests/testdata/apple/" /* the tests run from the repository root */
#define REAL_LEAF_PEM TESTDATA "real-leaf-macos-TMWFWWWP67.pem"
#define REAL_LEAF_JSON TESTDATA "real-leaf-macos-TMWFWWWP67.expected.json"
#define REAL_LEAF_TIME ((time_t)1754006400) /* 2025-08-01T00:00:00Z, inside its life */
#define TESTDATA_FILE_MAX ((size_t)1024 * 1024)

/* Challenge tokens as vouchd mints them: 32 random bytes, base64url. */
static const char token[] = "Jm1bTwgIzYxZs0y3yG8cXQ4lRPk0x8nQ5EoIvA2uVdE";
static const char other_token[] = "q3Hq0yiM7b9pY4sZt6nW1eXcVbNmLkJhGfDsA0o9-_8";
static const char dev_serial[] = "F4GXK2ZQ0D";
static const char dev_udid[] = "00008030-001A2B3C4D5E802E";

static struct {
    struct fake_apple *pki;   /* the stand-in Apple */
    struct fake_apple *other; /* another hierarchy, same names, its own keys: not trusted */
    char *root_pem;
    struct attest_verifier *warm; /* its cache holds pki's sub CA after the first answer */
} g;

/* ---- set-up ---- */

static struct attest_verifier *new_verifier(const char *pem)
{
    char err[256];
    struct attest_verifier *v = attest_verifier_new(pem, strlen(pem), err, sizeof(err));
    if (v == NULL)
        fail_msg("attest_verifier_new: %s", err);
    return v;
}

static int setup(void **state)
{
    (void)state;
    char err[256];
    g.pki = fake_apple_new(err, sizeof(err));
    g.other = g.pki != NULL ? fake_apple_new(err, sizeof(err)) : NULL;
    if (g.other == NULL) {
        fprintf(stderr, "fake_apple_new: %s\n", err);
        return -1;
    }
    g.root_pem = fake_apple_root_pem(g.pki);
    if (g.root_pem == NULL)
        return -1;
    g.warm = attest_verifier_new(g.root_pem, strlen(g.root_pem), err, sizeof(err));
    return g.warm != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    attest_verifier_free(g.warm);
    free(g.root_pem);
    fake_apple_free(g.other);
    fake_apple_free(g.pki);
    return 0;
}

/* ---- helpers ---- */

static void sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, 32);
}

static char *b64url(const uint8_t *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4);
    size_t n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    assert_non_null(out);
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0)
        out[n++] = alphabet[(acc << (6 - bits)) & 0x3f];
    out[n] = '\0';
    return out;
}

/* The enrolled device's leaf spec, its freshness code SHA-256(tok) (NULL: none). */
static void device_spec(struct fake_leaf_spec *spec, const char *tok)
{
    uint8_t digest[32];
    struct fake_apple_device dev = {
        .serial_number = dev_serial,
        .udid = dev_udid,
        .os_version = "17.5",
        .software_update_device_id = "iPhone16,2",
    };
    if (tok != NULL) {
        sha256(tok, strlen(tok), digest);
        dev.nonce = digest;
        dev.nonce_len = sizeof(digest);
    }
    assert_true(fake_leaf_spec_device(spec, &dev, MINTED));
}

static void issue(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                  struct fake_chain *chain)
{
    char err[256];
    if (!fake_apple_leaf(pki, spec, chain, err, sizeof(err)))
        fail_msg("fake_apple_leaf: %s", err);
}

/* [DER...] as a definite CBOR array of byte strings. */
static cbor_item_t *x5c_of(uint8_t *const *der, const size_t *len, size_t count)
{
    cbor_item_t *array = cbor_new_definite_array(count);
    assert_non_null(array);
    for (size_t i = 0; i < count; i++)
        assert_true(cbor_array_push(array, cbor_move(cbor_build_bytestring(der[i], len[i]))));
    return array;
}

static void map_put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
    assert_true(cbor_map_add(map, (struct cbor_pair){.key = cbor_move(cbor_build_string(key)),
                                                     .value = cbor_move(value)}));
}

/* {x5c: x5c} (x5c NULL: {}). */
static cbor_item_t *att_stmt(cbor_item_t *x5c)
{
    cbor_item_t *map = cbor_new_definite_map(x5c != NULL ? 1 : 0);
    assert_non_null(map);
    if (x5c != NULL)
        map_put(map, "x5c", x5c);
    return map;
}

/* {fmt: fmt, attStmt: stmt} (either NULL: left out). */
static cbor_item_t *att_obj(const char *fmt, cbor_item_t *stmt)
{
    cbor_item_t *map = cbor_new_definite_map((fmt != NULL) + (stmt != NULL));
    assert_non_null(map);
    if (fmt != NULL)
        map_put(map, "fmt", cbor_build_string(fmt));
    if (stmt != NULL)
        map_put(map, "attStmt", stmt);
    return map;
}

/* item's encoding (malloc()ed); takes item. */
static uint8_t *serialize(cbor_item_t *item, size_t *len)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    *len = cbor_serialize_alloc(item, &buf, &size);
    assert_true(*len > 0);
    cbor_decref(&item);
    return buf;
}

/* item as attObj text (malloc()ed); takes item. */
static char *encode(cbor_item_t *item)
{
    size_t len;
    uint8_t *bytes = serialize(item, &len);
    char *text = b64url(bytes, len);
    free(bytes);
    return text;
}

/* The attObj a device sends for chain: {fmt: "apple", attStmt: {x5c: chain}}. */
static char *attobj_of(const struct fake_chain *chain)
{
    return encode(att_obj("apple", att_stmt(x5c_of(chain->der, chain->len, chain->count))));
}

static bool same_properties(const struct attest_properties *a, const struct attest_properties *b)
{
    return a->has_serial_number == b->has_serial_number && a->has_udid == b->has_udid &&
           strcmp(a->serial_number, b->serial_number) == 0 && strcmp(a->udid, b->udid) == 0 &&
           a->has_freshness == b->has_freshness && a->freshness_len == b->freshness_len &&
           memcmp(a->freshness, b->freshness, sizeof(a->freshness)) == 0 &&
           strcmp(a->os_version, b->os_version) == 0 && a->sip_enabled == b->sip_enabled;
}

/* device_attest_verify() on v, checking what every call must hold: true exactly when OK, an
 * empty OpenSSL error queue, a name for every refusal, no key unless verified. */
static enum device_attest_reason verify_on(struct attest_verifier *v, const char *text, size_t len,
                                           const char *tok, time_t t,
                                           struct device_attest_result *out)
{
    memset(out, 0x5a, sizeof(*out)); /* every field must be set by the verifier */
    bool ok = device_attest_verify(v, text, len, tok, t, out);
    assert_int_equal(ok, out->reason == DEVICE_ATTEST_OK);
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(device_attest_reason_name(out->reason) == NULL, ok);
    if (!ok)
        assert_int_equal(out->spki_len, 0);
    assert_true(out->chain_count <= ATTEST_MAX_CERTS);
    return out->reason;
}

/* The verdict on text on g.warm and on a new verifier: both must be want, and agree. out (the
 * cleared result is the caller's to device_attest_clear()) holds g.warm's. */
static void verify_both(const char *text, size_t len, const char *tok, time_t t,
                        enum device_attest_reason want, struct device_attest_result *out)
{
    struct attest_verifier *cold = new_verifier(g.root_pem);
    struct device_attest_result full;
    enum device_attest_reason got_full = verify_on(cold, text, len, tok, t, &full);
    enum device_attest_reason got = verify_on(g.warm, text, len, tok, t, out);
    if (got != want || got_full != want)
        fail_msg("want %s, got %s (cached path) and %s (full path)",
                 device_attest_reason_name(want) ? device_attest_reason_name(want) : "ok",
                 device_attest_reason_name(got) ? device_attest_reason_name(got) : "ok",
                 device_attest_reason_name(got_full) ? device_attest_reason_name(got_full) : "ok");
    assert_int_equal(out->leaf_parsed, full.leaf_parsed);
    if (out->leaf_parsed) {
        assert_true(same_properties(&out->properties, &full.properties));
        assert_int_equal(out->not_before, full.not_before);
        assert_int_equal(out->not_after, full.not_after);
        assert_memory_equal(out->leaf_sha256, full.leaf_sha256, 32);
    }
    assert_int_equal(out->spki_len, full.spki_len);
    assert_memory_equal(out->spki, full.spki, out->spki_len);
    assert_int_equal(out->chain_count, full.chain_count);
    device_attest_clear(&full);
    attest_verifier_free(cold);
}

static void expect_text(const char *text, enum device_attest_reason want)
{
    struct device_attest_result r;
    verify_both(text, strlen(text), token, NOW, want, &r);
    device_attest_clear(&r);
}

/* expect_text() of item's encoding; takes item. */
static void expect_item(cbor_item_t *item, enum device_attest_reason want)
{
    char *text = encode(item);
    expect_text(text, want);
    free(text);
}

/* expect_text() of raw CBOR bytes. */
static void expect_bytes(const uint8_t *bytes, size_t len, enum device_attest_reason want)
{
    char *text = b64url(bytes, len);
    expect_text(text, want);
    free(text);
}

/* Issues spec from pki and expects want for the attObj of the chain. */
static void expect_spec(const struct fake_apple *pki, const struct fake_leaf_spec *spec,
                        enum device_attest_reason want)
{
    struct fake_chain chain;
    issue(pki, spec, &chain);
    char *text = attobj_of(&chain);
    expect_text(text, want);
    free(text);
    fake_chain_free(&chain);
}

/* DER SubjectPublicKeyInfo of a certificate's key. */
static size_t cert_spki(const uint8_t *der, size_t len, uint8_t *out, size_t cap)
{
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)len);
    assert_non_null(cert);
    int n = i2d_PUBKEY(X509_get0_pubkey(cert), NULL);
    assert_true(n > 0 && (size_t)n <= cap);
    unsigned char *q = out;
    assert_int_equal(i2d_PUBKEY(X509_get0_pubkey(cert), &q), n);
    X509_free(cert);
    return (size_t)n;
}

/* ---- verified ---- */

static void test_valid_p384(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct device_attest_result r;
    uint8_t spki[DEVICE_ATTEST_MAX_SPKI], digest[32];

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    /* Twice: the first fills g.warm's cache, the second takes the cached path. */
    for (int round = 0; round < 2; round++) {
        verify_both(text, strlen(text), token, NOW, DEVICE_ATTEST_OK, &r);
        size_t n = cert_spki(chain.der[0], chain.len[0], spki, sizeof(spki));
        assert_int_equal(r.spki_len, n);
        assert_int_equal(n, 120); /* P-384 */
        assert_memory_equal(r.spki, spki, n);
        assert_true(r.leaf_parsed);
        assert_string_equal(r.properties.serial_number, dev_serial);
        assert_string_equal(r.properties.udid, dev_udid);
        assert_string_equal(r.properties.os_version, "17.5");
        assert_int_equal(r.not_before, MINTED);
        assert_int_equal(r.not_after, MINTED + FAKE_APPLE_LEAF_DAYS * DAY);
        sha256(chain.der[0], chain.len[0], digest);
        assert_memory_equal(r.leaf_sha256, digest, 32);
        /* The chain as sent, owned by the result. */
        assert_int_equal(r.chain_count, 2);
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(r.chain_len[i], chain.len[i]);
            assert_memory_equal(r.chain[i], chain.der[i], chain.len[i]);
        }
        device_attest_clear(&r);
        assert_int_equal(r.chain_count, 0);
        device_attest_clear(&r); /* twice is fine */
    }
    free(text);
    fake_chain_free(&chain);
}

static void test_valid_p256(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct device_attest_result r;
    uint8_t spki[DEVICE_ATTEST_MAX_SPKI];

    device_spec(&spec, token);
    spec.key = EVP_EC_gen("P-256");
    assert_non_null(spec.key);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    verify_both(text, strlen(text), token, NOW, DEVICE_ATTEST_OK, &r);
    unsigned char *p = spki;
    int n = i2d_PUBKEY(spec.key, &p);
    assert_int_equal(n, 91); /* P-256 */
    assert_int_equal(r.spki_len, (size_t)n);
    assert_memory_equal(r.spki, spki, (size_t)n);
    device_attest_clear(&r);
    free(text);
    fake_chain_free(&chain);
    EVP_PKEY_free(spec.key);
}

/* Members the verifier does not read, authData among them, change nothing. */
static void test_ignored_members(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    static const uint8_t auth_data[37] = {1, 2, 3};

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    /* authData as WebAuthn has it, a byte string. */
    cbor_item_t *obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, chain.count)));
    map_put(obj, "authData", cbor_build_bytestring(auth_data, sizeof(auth_data)));
    expect_item(obj, DEVICE_ATTEST_OK);

    /* authData first, of another type, unknown members nested and tagged, in attStmt too. */
    cbor_item_t *stmt = cbor_new_definite_map(3);
    map_put(stmt, "alg", cbor_build_negint8(6)); /* -7 */
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, chain.count));
    map_put(stmt, "sig", cbor_build_bytestring(auth_data, 8));
    cbor_item_t *nested = cbor_new_definite_map(1);
    map_put(nested, "a", cbor_build_tag(1, cbor_move(cbor_build_uint32(1768435200))));
    obj = cbor_new_definite_map(4);
    map_put(obj, "authData", nested);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "x-vendor", cbor_build_bool(true));
    map_put(obj, "attStmt", stmt);
    expect_item(obj, DEVICE_ATTEST_OK);
    fake_chain_free(&chain);
}

/* ---- what the leaf says ---- */

static void test_freshness_missing(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;

    device_spec(&spec, NULL);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISSING);
    /* Present but empty: no code either. */
    fake_leaf_spec_blank(&spec, FAKE_PROP_FRESHNESS);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISSING);
}

static void test_freshness_mismatch(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    uint8_t digest[33];

    /* The token itself, not its hash (what a careless device or server would use). */
    device_spec(&spec, NULL);
    assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_FRESHNESS, token));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISMATCH);

    /* SHA-256 of another challenge's token. */
    device_spec(&spec, other_token);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISMATCH);

    /* The right hash, cut short or lengthened. */
    sha256(token, strlen(token), digest);
    digest[32] = 0;
    assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, digest, 31));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISMATCH);
    assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, digest, 33));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISMATCH);
    /* One bit off, in the last byte. */
    digest[31] ^= 1;
    assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, digest, 32));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_FRESHNESS_MISMATCH);

    /* A good leaf, checked against another token, or none. */
    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    struct device_attest_result r;
    verify_both(text, strlen(text), other_token, NOW, DEVICE_ATTEST_FRESHNESS_MISMATCH, &r);
    device_attest_clear(&r);
    verify_both(text, strlen(text), NULL, NOW, DEVICE_ATTEST_FRESHNESS_MISMATCH, &r);
    device_attest_clear(&r);
    verify_both(text, strlen(text), "", NOW, DEVICE_ATTEST_FRESHNESS_MISMATCH, &r);
    device_attest_clear(&r);
    free(text);
    fake_chain_free(&chain);
}

static void test_identity_missing(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;

    device_spec(&spec, token);
    fake_leaf_spec_omit(&spec, FAKE_PROP_SERIAL_NUMBER);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_IDENTITY_MISSING);

    device_spec(&spec, token);
    fake_leaf_spec_blank(&spec, FAKE_PROP_UDID);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_IDENTITY_MISSING);

    device_spec(&spec, token);
    assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_SERIAL_NUMBER, "   "));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_IDENTITY_MISSING);

    /* User Enrollment: neither. */
    device_spec(&spec, token);
    fake_leaf_spec_omit(&spec, FAKE_PROP_SERIAL_NUMBER);
    fake_leaf_spec_omit(&spec, FAKE_PROP_UDID);
    expect_spec(g.pki, &spec, DEVICE_ATTEST_IDENTITY_MISSING);
}

static void test_bad_extension(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    static const uint8_t control[] = {'F', '4', 0x01, 'X'};
    uint8_t long_code[65] = {0};

    device_spec(&spec, token);
    assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_SERIAL_NUMBER, control, sizeof(control)));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_BAD_EXTENSION);

    device_spec(&spec, token);
    spec.props[FAKE_PROP_UDID].duplicate = true;
    expect_spec(g.pki, &spec, DEVICE_ATTEST_BAD_EXTENSION);

    device_spec(&spec, token);
    assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, long_code, sizeof(long_code)));
    expect_spec(g.pki, &spec, DEVICE_ATTEST_BAD_EXTENSION);

    /* Refused before the chain is looked at: a bad leaf from an untrusted hierarchy reads the
     * same (as attest.c judges it). */
    device_spec(&spec, token);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_SIP, 0);
    spec.props[FAKE_PROP_SIP].value[0] = 0x04; /* an OCTET STRING where an INTEGER belongs */
    expect_spec(g.other, &spec, DEVICE_ATTEST_BAD_EXTENSION);
}

static void test_unsupported_key(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    EVP_PKEY *keys[3] = {
        EVP_EC_gen("P-521"),
        EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
        EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048),
    };

    for (size_t i = 0; i < 3; i++) {
        assert_non_null(keys[i]);
        device_spec(&spec, token);
        spec.key = keys[i];
        expect_spec(g.pki, &spec, DEVICE_ATTEST_UNSUPPORTED_KEY);
        EVP_PKEY_free(keys[i]);
    }
    /* secp256k1 is 256 bits too, but not P-256. */
    EVP_PKEY *k1 = EVP_EC_gen("secp256k1");
    assert_non_null(k1);
    device_spec(&spec, token);
    spec.key = k1;
    expect_spec(g.pki, &spec, DEVICE_ATTEST_UNSUPPORTED_KEY);
    EVP_PKEY_free(k1);
}

/* ---- the chain ---- */

static void test_untrusted_chain(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain, ours;
    struct device_attest_result r;

    /* A whole chain from another hierarchy with the same names. */
    device_spec(&spec, token);
    issue(g.other, &spec, &chain);
    char *text = attobj_of(&chain);
    verify_both(text, strlen(text), token, NOW, DEVICE_ATTEST_UNTRUSTED_CHAIN, &r);
    /* What the untrusted leaf claims is still read, for the log. */
    assert_true(r.leaf_parsed);
    assert_string_equal(r.properties.serial_number, dev_serial);
    assert_int_equal(r.spki_len, 0);
    device_attest_clear(&r);
    free(text);

    /* Its leaf with our sub CA (the cached intermediate); our leaf alone. */
    issue(g.pki, &spec, &ours);
    uint8_t *der[2] = {chain.der[0], ours.der[1]};
    size_t len[2] = {chain.len[0], ours.len[1]};
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_UNTRUSTED_CHAIN);
    expect_item(att_obj("apple", att_stmt(x5c_of(ours.der, ours.len, 1))),
                DEVICE_ATTEST_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);
    fake_chain_free(&ours);

    /* Signed by the root itself: Apple's leaves hang under the sub CA. */
    device_spec(&spec, token);
    spec.issuer = FAKE_ISSUER_ROOT;
    expect_spec(g.pki, &spec, DEVICE_ATTEST_UNTRUSTED_CHAIN);
}

static void test_leaf_validity(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct device_attest_result r;

    device_spec(&spec, token);
    spec.not_before = NOW - 100 * DAY; /* expired 9 days ago */
    expect_spec(g.pki, &spec, DEVICE_ATTEST_UNTRUSTED_CHAIN);
    spec.not_before = NOW + DAY; /* not valid yet */
    expect_spec(g.pki, &spec, DEVICE_ATTEST_UNTRUSTED_CHAIN);

    /* The same good leaf: valid the day it was minted, untrusted once it has expired. */
    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    verify_both(text, strlen(text), token, MINTED + FAKE_APPLE_LEAF_DAYS * DAY - 1,
                DEVICE_ATTEST_OK, &r);
    device_attest_clear(&r);
    verify_both(text, strlen(text), token, MINTED + FAKE_APPLE_LEAF_DAYS * DAY,
                DEVICE_ATTEST_UNTRUSTED_CHAIN, &r);
    device_attest_clear(&r);
    free(text);
    fake_chain_free(&chain);
}

/* ---- the attObj's shape ---- */

static void test_format(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    expect_item(att_obj("packed", att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    expect_item(att_obj("Apple", att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    expect_item(att_obj("apple-appattest", att_stmt(NULL)), DEVICE_ATTEST_UNSUPPORTED_FORMAT);
    /* No fmt, or one that is not text. */
    expect_item(att_obj(NULL, att_stmt(x5c_of(chain.der, chain.len, chain.count))),
                DEVICE_ATTEST_MALFORMED);
    cbor_item_t *obj = cbor_new_definite_map(2);
    map_put(obj, "fmt", cbor_build_bytestring((const uint8_t *)"apple", 5));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, chain.count)));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

static void test_no_attestation(void **state)
{
    (void)state;
    expect_item(att_obj("apple", att_stmt(NULL)), DEVICE_ATTEST_NO_ATTESTATION);
    expect_item(att_obj("apple", att_stmt(cbor_new_definite_array(0))),
                DEVICE_ATTEST_NO_ATTESTATION);
    expect_item(att_obj("apple", NULL), DEVICE_ATTEST_NO_ATTESTATION);
    /* An attStmt with other members only. */
    cbor_item_t *stmt = cbor_new_definite_map(1);
    map_put(stmt, "alg", cbor_build_negint8(6));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_NO_ATTESTATION);
}

static void test_x5c_items(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    uint8_t *der[ATTEST_MAX_CERTS + 1];
    size_t len[ATTEST_MAX_CERTS + 1];

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);

    /* A leaf with a trailing byte, then a sub CA with one. */
    for (size_t k = 0; k < 2; k++) {
        uint8_t *longer = malloc(chain.len[k] + 1);
        assert_non_null(longer);
        memcpy(longer, chain.der[k], chain.len[k]);
        longer[chain.len[k]] = 0;
        der[0] = chain.der[0];
        der[1] = chain.der[1];
        len[0] = chain.len[0];
        len[1] = chain.len[1];
        der[k] = longer;
        len[k]++;
        expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
        free(longer);
    }

    /* One more item than ATTEST_MAX_CERTS. */
    for (size_t i = 0; i <= ATTEST_MAX_CERTS; i++) {
        der[i] = chain.der[i == 0 ? 0 : 1];
        len[i] = chain.len[i == 0 ? 0 : 1];
    }
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, ATTEST_MAX_CERTS + 1))),
                DEVICE_ATTEST_MALFORMED);
    /* ATTEST_MAX_CERTS is fine (the sub CA repeated). */
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, ATTEST_MAX_CERTS))), DEVICE_ATTEST_OK);

    /* An empty item, an item over ATTEST_MAX_CERT_BYTES, a garbage intermediate. */
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    uint8_t *big = calloc(1, ATTEST_MAX_CERT_BYTES + 1);
    assert_non_null(big);
    der[0] = chain.der[0];
    len[0] = chain.len[0];
    der[1] = big;
    len[1] = 0;
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    len[1] = ATTEST_MAX_CERT_BYTES + 1;
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    memcpy(big, junk, sizeof(junk));
    len[1] = sizeof(junk);
    expect_item(att_obj("apple", att_stmt(x5c_of(der, len, 2))), DEVICE_ATTEST_MALFORMED);
    free(big);

    /* Items of the wrong type: text, a tagged byte string; x5c not an array. */
    cbor_item_t *x5c = cbor_new_definite_array(2);
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_bytestring(chain.der[0], chain.len[0]))));
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_string("Apple Sub CA 1"))));
    expect_item(att_obj("apple", att_stmt(x5c)), DEVICE_ATTEST_MALFORMED);
    x5c = cbor_new_definite_array(2);
    assert_true(cbor_array_push(
        x5c, cbor_move(cbor_build_tag(
                 24, cbor_move(cbor_build_bytestring(chain.der[0], chain.len[0]))))));
    assert_true(cbor_array_push(x5c, cbor_move(cbor_build_bytestring(chain.der[1], chain.len[1]))));
    expect_item(att_obj("apple", att_stmt(x5c)), DEVICE_ATTEST_MALFORMED);
    expect_item(att_obj("apple", att_stmt(cbor_build_bytestring(chain.der[0], chain.len[0]))),
                DEVICE_ATTEST_MALFORMED);
    /* attStmt not a map. */
    expect_item(att_obj("apple", x5c_of(chain.der, chain.len, chain.count)),
                DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

static void test_maps(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);

    /* The top level an array, a text string. */
    cbor_item_t *array = cbor_new_definite_array(2);
    assert_true(cbor_array_push(array, cbor_move(cbor_build_string("apple"))));
    assert_true(cbor_array_push(array, cbor_move(att_stmt(x5c_of(chain.der, chain.len, 2)))));
    expect_item(array, DEVICE_ATTEST_MALFORMED);
    expect_item(cbor_build_string("apple"), DEVICE_ATTEST_MALFORMED);

    /* A key stated twice, at the top and in attStmt. */
    cbor_item_t *obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "fmt", cbor_build_string("apple"));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "attStmt", att_stmt(NULL));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    cbor_item_t *stmt = cbor_new_definite_map(2);
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 2));
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 1));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_MALFORMED);
    /* Even a duplicate of a member nobody reads. */
    obj = cbor_new_definite_map(4);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    map_put(obj, "authData", cbor_build_bytestring((const uint8_t *)"a", 1));
    map_put(obj, "authData", cbor_build_bytestring((const uint8_t *)"b", 1));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);

    /* A key that is not text, in each map. */
    obj = cbor_new_definite_map(3);
    map_put(obj, "fmt", cbor_build_string("apple"));
    map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
    assert_true(cbor_map_add(obj, (struct cbor_pair){.key = cbor_move(cbor_build_uint8(1)),
                                                     .value = cbor_move(cbor_build_uint8(2))}));
    expect_item(obj, DEVICE_ATTEST_MALFORMED);
    stmt = cbor_new_definite_map(2);
    map_put(stmt, "x5c", x5c_of(chain.der, chain.len, 2));
    assert_true(cbor_map_add(
        stmt, (struct cbor_pair){.key = cbor_move(cbor_build_bytestring((const uint8_t *)"x5c", 3)),
                                 .value = cbor_move(cbor_build_uint8(2))}));
    expect_item(att_obj("apple", stmt), DEVICE_ATTEST_MALFORMED);
    fake_chain_free(&chain);
}

/* What libcbor's builder will not write. */
static void test_raw_cbor(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    size_t len;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    uint8_t *good = serialize(att_obj("apple", att_stmt(x5c_of(chain.der, chain.len, 2))), &len);
    expect_bytes(good, len, DEVICE_ATTEST_OK);

    /* Cut short anywhere, or followed by anything. */
    static const size_t cuts[] = {1, 2, 5, 20, 100};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        expect_bytes(good, len - cuts[i], DEVICE_ATTEST_MALFORMED);
    uint8_t *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, good, len);
    longer[len] = 0x00;
    expect_bytes(longer, len + 1, DEVICE_ATTEST_MALFORMED);
    longer[len] = 0xa0; /* a second map */
    expect_bytes(longer, len + 1, DEVICE_ATTEST_MALFORMED);
    free(longer);

    /* The same object with indefinite lengths (refused, see device_attest.c): the top map. */
    uint8_t *indef = malloc(len + 1);
    assert_non_null(indef);
    assert_int_equal(good[0], 0xa2);
    indef[0] = 0xbf;
    memcpy(indef + 1, good + 1, len - 1);
    indef[len] = 0xff;
    expect_bytes(indef, len + 1, DEVICE_ATTEST_MALFORMED);
    free(indef);
    free(good);

    /* Garbage, and headers that declare more than any input holds. */
    static const uint8_t garbage[] = {'n', 'o', 't', ' ', 'C', 'B', 'O', 'R', '!'};
    static const uint8_t huge_array[] = {0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t huge_map[] = {0xbb, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00};
    static const uint8_t huge_bytes[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t reserved[] = {0xa1, 0x63, 'f', 'm', 't', 0x1c};
    static const uint8_t lone_break[] = {0xff};
    static const uint8_t empty_map[] = {0xa0};
    expect_bytes(garbage, sizeof(garbage), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_array, sizeof(huge_array), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_map, sizeof(huge_map), DEVICE_ATTEST_MALFORMED);
    expect_bytes(huge_bytes, sizeof(huge_bytes), DEVICE_ATTEST_MALFORMED);
    expect_bytes(reserved, sizeof(reserved), DEVICE_ATTEST_MALFORMED);
    expect_bytes(lone_break, sizeof(lone_break), DEVICE_ATTEST_MALFORMED);
    expect_bytes(empty_map, sizeof(empty_map), DEVICE_ATTEST_MALFORMED);

    /* {"fmt": "apple", "x": [[[...[0]...]]]}: the map and the arrays in an ignored member, up to
     * DEVICE_ATTEST_MAX_DEPTH containers, then one more. Within bounds, the object reads on to
     * "no attestation". */
    static const uint8_t head[] = {0xa2, 0x63, 'f', 'm', 't',  0x65, 'a',
                                   'p',  'p',  'l', 'e', 0x61, 'x'};
    uint8_t deep[sizeof(head) + DEVICE_ATTEST_MAX_DEPTH + 1];
    for (size_t arrays = DEVICE_ATTEST_MAX_DEPTH - 1; arrays <= DEVICE_ATTEST_MAX_DEPTH; arrays++) {
        size_t n = sizeof(head);
        memcpy(deep, head, sizeof(head));
        memset(deep + n, 0x81, arrays);
        n += arrays;
        deep[n++] = 0x00;
        expect_bytes(deep, n,
                     arrays < DEVICE_ATTEST_MAX_DEPTH ? DEVICE_ATTEST_NO_ATTESTATION
                                                      : DEVICE_ATTEST_MALFORMED);
    }

    /* DEVICE_ATTEST_MAX_ITEMS data items, then one more: the 4 of head, an array, zeros. */
    uint8_t many[sizeof(head) + 2 + DEVICE_ATTEST_MAX_ITEMS];
    for (size_t zeros = DEVICE_ATTEST_MAX_ITEMS - 5; zeros <= DEVICE_ATTEST_MAX_ITEMS - 4;
         zeros++) {
        size_t n = sizeof(head);
        memcpy(many, head, sizeof(head));
        many[n++] = 0x98;
        many[n++] = (uint8_t)zeros;
        memset(many + n, 0x00, zeros);
        n += zeros;
        expect_bytes(many, n,
                     zeros + 5 <= DEVICE_ATTEST_MAX_ITEMS ? DEVICE_ATTEST_NO_ATTESTATION
                                                          : DEVICE_ATTEST_MALFORMED);
    }
    fake_chain_free(&chain);
}

static void test_base64url(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;

    device_spec(&spec, token);
    issue(g.pki, &spec, &chain);
    char *text = attobj_of(&chain);
    size_t len = strlen(text);
    char *buf = malloc(len + 8);
    assert_non_null(buf);
    expect_text(text, DEVICE_ATTEST_OK);

    /* Padding: make the length one that base64 would pad, then pad it. */
    char *padded_text = NULL;
    {
        /* Whatever the object's length, one of "", "=", "==" is its padding; add one more
         * byte through an ignored member until some padding is due. */
        uint8_t filler[3] = {0};
        for (size_t extra = 0; extra < 3 && padded_text == NULL; extra++) {
            cbor_item_t *obj = cbor_new_definite_map(3);
            map_put(obj, "fmt", cbor_build_string("apple"));
            map_put(obj, "attStmt", att_stmt(x5c_of(chain.der, chain.len, 2)));
            map_put(obj, "authData", cbor_build_bytestring(filler, extra + 1));
            char *t = encode(obj);
            if (strlen(t) % 4 != 0)
                padded_text = t;
            else
                free(t);
        }
    }
    assert_non_null(padded_text);
    expect_text(padded_text, DEVICE_ATTEST_OK);
    size_t plen = strlen(padded_text);
    char *with_pad = malloc(plen + 3);
    assert_non_null(with_pad);
    memcpy(with_pad, padded_text, plen);
    size_t pads = 4 - plen % 4;
    memset(with_pad + plen, '=', pads);
    with_pad[plen + pads] = '\0';
    expect_text(with_pad, DEVICE_ATTEST_MALFORMED);
    free(with_pad);
    free(padded_text);

    /* Whitespace, a line break, plain base64's '+' and '/', a NUL. */
    static const char bad[] = {' ', '\n', '\r', '\t', '+', '/', '=', '.', '\0'};
    for (size_t i = 0; i < sizeof(bad); i++) {
        memcpy(buf, text, len + 1);
        buf[len / 2] = bad[i];
        struct device_attest_result bad_r;
        verify_both(buf, len, token, NOW, DEVICE_ATTEST_MALFORMED, &bad_r);
        device_attest_clear(&bad_r);
    }
    /* A trailing newline. */
    memcpy(buf, text, len);
    buf[len] = '\n';
    buf[len + 1] = '\0';
    expect_text(buf, DEVICE_ATTEST_MALFORMED);
    /* A length no encoding has (4k + 1), and unused bits that are not zero. */
    struct device_attest_result r;
    verify_both(text, (len - 1) / 4 * 4 + 1, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    if (len % 4 != 0) {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        memcpy(buf, text, len + 1);
        /* The last character carries 2 or 4 unused bits: set the lowest. */
        size_t v = (size_t)(strchr(alphabet, buf[len - 1]) - alphabet);
        buf[len - 1] = alphabet[v | 1];
        expect_text(buf, DEVICE_ATTEST_MALFORMED);
    }

    /* Empty, and over DEVICE_ATTEST_MAX_ATTOBJ. */
    verify_both("", 0, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    verify_both(NULL, 0, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    char *huge = malloc(DEVICE_ATTEST_MAX_ATTOBJ + 4);
    assert_non_null(huge);
    memset(huge, 'A', DEVICE_ATTEST_MAX_ATTOBJ + 4);
    verify_both(huge, DEVICE_ATTEST_MAX_ATTOBJ + 4, token, NOW, DEVICE_ATTEST_MALFORMED, &r);
    device_attest_clear(&r);
    free(huge);
    free(buf);
    free(text);
    fake_chain_free(&chain);
}

/* ---- Apple's own leaf ---- */

static uint8_t *real_leaf_der(size_t *len)
{
    char *pem = NULL;
    size_t pem_len;
    char err[256];
    if (tu_file_read(REAL_LEAF_PEM, TESTDATA_FILE_MAX, &pem, &pem_len, err, sizeof(err)) !=
        TU_READ_OK)
        fail_msg("%s (the tests run from the project root)", err);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(cert);
    int n = i2d_X509(cert, NULL);
    assert_true(n > 0);
    uint8_t *der = malloc((size_t)n);
    assert_non_null(der);
    unsigned char *p = der;
    assert_int_equal(i2d_X509(cert, &p), n);
    *len = (size_t)n;
    X509_free(cert);
    BIO_free(bio);
    free(pem);
    return der;
}

/* The ascii (or hex, decoded) value of an extension in the .expected.json. */
static size_t expected_value(const struct json_value *exts, const char *oid, const char *field,
                             uint8_t *out, size_t cap)
{
    for (size_t i = 0; i < json_array_length(exts); i++) {
        const struct json_value *e = json_array_at(exts, i);
        const char *o = json_object_get_string(e, "oid");
        if (o == NULL || strcmp(o, oid) != 0)
            continue;
        const char *v = json_object_get_string(e, field);
        assert_non_null(v);
        if (strcmp(field, "hex") == 0) {
            size_t n = 0;
            assert_true(hex_decode(v, strlen(v), out, cap, &n));
            return n;
        }
        assert_true(strlen(v) < cap);
        memcpy(out, v, strlen(v) + 1);
        return strlen(v);
    }
    fail_msg("%s not in %s", oid, REAL_LEAF_JSON);
    return 0;
}

/* The leaf Apple minted in an ACME flow (tests/testdata/README.md). Its issuer, Apple's "Sub CA
 * 1", is not published, so sent alone (as the whole chain a test can build) it stops at the
 * chain, before its freshness code (SHA-256 of a token nobody knows) is compared: untrusted,
 * at a time inside its life or out of it. What it claims is read all the same. */
static void test_real_apple_leaf(void **state)
{
    (void)state;
    size_t len;
    uint8_t *der = real_leaf_der(&len);
    struct attest_verifier *apple = new_verifier(attest_apple_root_pem);
    struct device_attest_result r;

    char *text = encode(att_obj("apple", att_stmt(x5c_of(&der, &len, 1))));
    assert_int_equal(verify_on(apple, text, strlen(text), token, REAL_LEAF_TIME, &r),
                     DEVICE_ATTEST_UNTRUSTED_CHAIN);
    assert_true(r.leaf_parsed);
    assert_int_equal(r.not_before, (time_t)1752399487); /* 2025-07-13T09:38:07Z */
    assert_int_equal(r.not_after, (time_t)1760261887);  /* 2025-10-12T09:38:07Z */

    /* Serial, UDID and freshness code as the .expected.json has them. */
    char *json = NULL;
    size_t json_len;
    char err[256];
    assert_int_equal(
        tu_file_read(REAL_LEAF_JSON, TESTDATA_FILE_MAX, &json, &json_len, err, sizeof(err)),
        TU_READ_OK);
    static const struct json_limits limits = {1 << 20, 32, 100000};
    struct json_doc *doc = NULL;
    assert_int_equal(json_parse(json, json_len, &limits, &doc, NULL), JSON_OK);
    const struct json_value *exts = json_object_find(json_doc_root(doc), "extensions_in_order");
    uint8_t value[ATTEST_MAX_VALUE + 1];
    expected_value(exts, "1.2.840.113635.100.8.9.1", "ascii", value, sizeof(value));
    assert_true(r.properties.has_serial_number);
    assert_string_equal(r.properties.serial_number, (const char *)value);
    assert_string_equal(r.properties.serial_number, "TMWFWWWP67");
    expected_value(exts, "1.2.840.113635.100.8.9.2", "ascii", value, sizeof(value));
    assert_true(r.properties.has_udid);
    assert_string_equal(r.properties.udid, (const char *)value);
    assert_string_equal(r.properties.udid, "00006030-000651690A84001C");
    size_t n = expected_value(exts, "1.2.840.113635.100.8.11.1", "hex", value, sizeof(value));
    assert_int_equal(n, 32);
    assert_true(r.properties.has_freshness);
    assert_int_equal(r.properties.freshness_len, 32);
    assert_memory_equal(r.properties.freshness, value, 32);
    json_doc_free(doc);
    free(json);
    device_attest_clear(&r);

    /* Out of its life: still the chain that fails first. */
    assert_int_equal(verify_on(apple, text, strlen(text), token, NOW, &r),
                     DEVICE_ATTEST_UNTRUSTED_CHAIN);
    device_attest_clear(&r);
    free(text);

    /* With the stand-in sub CA (same shape, other keys) under the stand-in root: untrusted. */
    uint8_t *items[2] = {der, NULL};
    size_t lens[2] = {len, 0};
    assert_true(fake_apple_sub_der(g.pki, &items[1], &lens[1]));
    text = encode(att_obj("apple", att_stmt(x5c_of(items, lens, 2))));
    verify_both(text, strlen(text), token, REAL_LEAF_TIME, DEVICE_ATTEST_UNTRUSTED_CHAIN, &r);
    device_attest_clear(&r);
    free(text);
    free(items[1]);
    attest_verifier_free(apple);
    free(der);
}

static void test_reason_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        NULL,
        "malformed",
        "unsupported_format",
        "no_attestation",
        "untrusted_chain",
        "freshness_missing",
        "freshness_mismatch",
        "identity_missing",
        "bad_extension",
        "unsupported_key",
    };
    for (int i = 0; i <= DEVICE_ATTEST_UNSUPPORTED_KEY; i++) {
        const char *name = device_attest_reason_name((enum device_attest_reason)i);
        if (names[i] == NULL)
            assert_null(name);
        else
            assert_string_equal(name, names[i]);
    }
    assert_null(device_attest_reason_name((enum device_attest_reason)99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_p384),
        cmocka_unit_test(test_valid_p256),
        cmocka_unit_test(test_ignored_members),
        cmocka_unit_test(test_freshness_missing),
        cmocka_unit_test(test_freshness_mismatch),
        cmocka_unit_test(test_identity_missing),
        cmocka_unit_test(test_bad_extension),
        cmocka_unit_test(test_unsupported_key),
        cmocka_unit_test(test_untrusted_chain),
        cmocka_unit_test(test_leaf_validity),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_no_attestation),
        cmocka_unit_test(test_x5c_items),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_raw_cbor),
        cmocka_unit_test(test_base64url),
        cmocka_unit_test(test_real_apple_leaf),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
