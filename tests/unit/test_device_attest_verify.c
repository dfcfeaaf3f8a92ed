/* Unit tests of server/attestation/device_attest.c, the verdict on the attObj of ACME
 * device-attest-01 answers: what a verified answer holds (the key, the device, the chain), what
 * the leaf says (freshness code SHA-256 of the challenge token, identity, extensions, key), the
 * chain, the real Apple leaf of tests/testdata/apple/ (read as far as a chain without Apple's sub
 * CA can go), and the names of the reasons. The attObj's CBOR and base64url are in
 * test_device_attest_cbor.c; the stand-in Apple PKI and the helpers in device_attest_fixture.c.
 *
 * Every verdict is taken twice, on a verifier whose cache already holds the stand-in sub CA and
 * on a new one (full path validation), and both must agree (verify_both()). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cbor.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "device_attest.h"
#include "device_attest_fixture.h"
#include "fake_apple.h"
#include "hex.h"
#include "json.h"
#include "tu_file.h"

#define TESTDATA "tests/testdata/apple/" /* the tests run from the repository root */
#define REAL_LEAF_PEM TESTDATA "real-leaf-macos-TMWFWWWP67.pem"
#define REAL_LEAF_JSON TESTDATA "real-leaf-macos-TMWFWWWP67.expected.json"
#define REAL_LEAF_TIME ((time_t)1754006400) /* 2025-08-01T00:00:00Z, inside its life */
#define TESTDATA_FILE_MAX ((size_t)1024 * 1024)

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
        cmocka_unit_test(test_valid_p384),         cmocka_unit_test(test_valid_p256),
        cmocka_unit_test(test_ignored_members),    cmocka_unit_test(test_freshness_missing),
        cmocka_unit_test(test_freshness_mismatch), cmocka_unit_test(test_identity_missing),
        cmocka_unit_test(test_bad_extension),      cmocka_unit_test(test_unsupported_key),
        cmocka_unit_test(test_untrusted_chain),    cmocka_unit_test(test_leaf_validity),
        cmocka_unit_test(test_real_apple_leaf),    cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests(tests, device_attest_fixture_setup,
                                  device_attest_fixture_teardown);
}
