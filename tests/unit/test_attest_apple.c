/* Unit tests of server/attestation/attest.c against Apple's own certificates: the leaf Apple minted
 * (tests/testdata/apple/, provenance in tests/testdata/README.md) read field by field against its
 * decoded .expected.json, its values, why it does not verify against the real root here, the
 * root vouchd builds in (server/attestation/certs/), and leaves attest_read_leaf() refuses.
 *
 * Shared set-up and helpers: attest_fixture.h. */
#include "attest_fixture.h"

#include <openssl/bio.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attest_json.h"
#include "tu_file.h"
#include "hex.h"

#define REAL_LEAF_JSON TESTDATA "real-leaf-macos-TMWFWWWP67.expected.json"
#define APPLE_ROOT_PEM_FILE "server/attestation/certs/apple-enterprise-attestation-root-ca.pem"
#define APPLE_ROOT_SHA256 "ccf59ef8fcb3017d97f8b5fa6fa90e7a3f9283f76b55ac6cf6eda8b8b949f05b"
#define TESTDATA_FILE_MAX ((size_t)1024 * 1024)

/* A whole file of the test data, NUL-terminated; fails the test when it cannot be read. */
static uint8_t *read_file(const char *path, size_t *len)
{
    char *data = NULL;
    char err[512];

    if (tu_file_read(path, TESTDATA_FILE_MAX, &data, len, err, sizeof(err)) != TU_READ_OK)
        fail_msg("%s (the tests run from the project root)", err);
    return (uint8_t *)data;
}

static size_t decode_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;

    assert_non_null(hex);
    assert_true(hex_decode(hex, strlen(hex), out, cap, &n));
    return n;
}

/* "2025-07-13T09:38:07Z" -> time_t, independent of attest_json_format_time(). */
static time_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    char z = 0;
    assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &z),
                     7);
    assert_int_equal(z, 'Z');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

struct ascii_prop {
    const char *suffix;
    size_t has_offset, value_offset;
};

#define ASCII_PROP(suffix, f)                                                                      \
    {                                                                                              \
        suffix, offsetof(struct attest_properties, has_##f), offsetof(struct attest_properties, f) \
    }

static const struct ascii_prop ascii_props[] = {
    ASCII_PROP("9.1", serial_number),
    ASCII_PROP("9.2", udid),
    ASCII_PROP("9.4", software_update_device_id),
    ASCII_PROP("10.1", os_version),
    ASCII_PROP("10.2", sepos_version),
    ASCII_PROP("10.3", llb_version),
    ASCII_PROP("13.2", secure_boot),
};

/* Every value of the .expected.json, read with json.h, against attest_read_leaf(). */
static void test_real_leaf_matches_expected_json(void **state)
{
    (void)state;
    size_t len;
    char *text = (char *)read_file(REAL_LEAF_JSON, &len);
    struct json_doc *doc = NULL;
    struct json_parse_error perr;
    assert_int_equal(json_parse(text, len, &json_limits, &doc, &perr), JSON_OK);
    const struct json_value *root = json_doc_root(doc);

    struct attest_properties p;
    time_t not_before, not_after;
    memset(&p, 0x5a, sizeof(p));
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &p, &not_before, &not_after));

    assert_int_equal(not_before, parse_rfc3339(json_object_get_string(root, "not_before")));
    assert_int_equal(not_after, parse_rfc3339(json_object_get_string(root, "not_after")));

    char hex[65];
    sha256_hex(g.real_leaf, g.real_leaf_len, hex);
    assert_string_equal(hex, json_object_get_string(root, "leaf_sha256_fingerprint"));

    const struct json_value *exts = json_object_find(root, "extensions_in_order");
    assert_int_equal(json_array_length(exts), 10);
    unsigned seen = 0;
    const char *base = (const char *)&p;
    for (size_t i = 0; i < json_array_length(exts); i++) {
        const struct json_value *e = json_array_at(exts, i);
        const char *oid = json_object_get_string(e, "oid");
        assert_non_null(oid);
        assert_int_equal(strncmp(oid, APPLE_ARC, strlen(APPLE_ARC)), 0);
        const char *suffix = oid + strlen(APPLE_ARC);
        int64_t value;
        if (strcmp(suffix, "13.1") == 0) {
            /* SIP status 0 = enabled */
            assert_true(json_get_int64(json_object_find(e, "value"), &value));
            assert_int_equal(p.sip_enabled, value == 0 ? 1 : 0);
            seen++;
            continue;
        }
        if (strcmp(suffix, "13.3") == 0) {
            /* third-party kexts 0 = not allowed */
            assert_true(json_get_int64(json_object_find(e, "value"), &value));
            assert_int_equal(p.third_party_kexts_allowed, value == 0 ? 0 : 1);
            seen++;
            continue;
        }
        if (strcmp(suffix, "11.1") == 0) {
            uint8_t nonce[64];
            size_t n = decode_hex(json_object_get_string(e, "hex"), nonce, sizeof(nonce));
            assert_true(p.has_freshness);
            assert_int_equal(p.freshness_len, n);
            assert_memory_equal(p.freshness, nonce, n);
            seen++;
            continue;
        }
        const char *ascii = json_object_get_string(e, "ascii");
        assert_non_null(ascii);
        const char *hexval = json_object_get_string(e, "hex");
        if (hexval != NULL) { /* the test data agrees with itself */
            uint8_t raw[ATTEST_MAX_VALUE];
            size_t n = decode_hex(hexval, raw, sizeof(raw));
            assert_int_equal(n, strlen(ascii));
            assert_memory_equal(raw, ascii, n);
        }
        bool found = false;
        for (size_t k = 0; k < sizeof(ascii_props) / sizeof(ascii_props[0]); k++) {
            if (strcmp(ascii_props[k].suffix, suffix) != 0)
                continue;
            found = true;
            if (!*(const bool *)(const void *)(base + ascii_props[k].has_offset))
                fail_msg("%s: not read", oid);
            assert_string_equal(base + ascii_props[k].value_offset, ascii);
        }
        if (!found)
            fail_msg("%s: not a property attest.h knows", oid);
        seen++;
    }
    assert_int_equal(seen, 10);
    json_doc_free(doc);
    free(text);
}

/* The same values, spelled out, so a misread .expected.json cannot hide a bug. */
static void test_real_leaf_values(void **state)
{
    (void)state;
    static const uint8_t freshness[32] = {0x9f, 0xf2, 0x19, 0xc2, 0x83, 0x13, 0x13, 0xc8,
                                          0x19, 0x0b, 0x63, 0xe9, 0xdd, 0x8f, 0x80, 0xaa,
                                          0x0a, 0x4a, 0x97, 0x37, 0xa5, 0x8d, 0xaa, 0x93,
                                          0x1d, 0xa8, 0xab, 0xde, 0x2f, 0x2d, 0x5d, 0x62};
    struct attest_properties p;
    time_t not_before, not_after;
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &p, &not_before, &not_after));
    assert_true(p.has_serial_number);
    assert_string_equal(p.serial_number, "TMWFWWWP67");
    assert_true(p.has_udid);
    assert_string_equal(p.udid, "00006030-000651690A84001C");
    assert_true(p.has_os_version);
    assert_string_equal(p.os_version, "15.5");
    assert_true(p.has_sepos_version);
    assert_string_equal(p.sepos_version, "15.5");
    assert_true(p.has_llb_version);
    assert_string_equal(p.llb_version, "15.5");
    assert_true(p.has_software_update_device_id);
    assert_string_equal(p.software_update_device_id, "J514sAP");
    assert_true(p.has_secure_boot);
    assert_string_equal(p.secure_boot, "Full Security");
    assert_int_equal(p.sip_enabled, 1);
    assert_int_equal(p.third_party_kexts_allowed, 0);
    assert_true(p.has_freshness);
    assert_int_equal(p.freshness_len, 32);
    assert_memory_equal(p.freshness, freshness, 32);
    assert_int_equal(not_before, (time_t)1752399487); /* 2025-07-13T09:38:07Z */
    assert_int_equal(not_after, (time_t)1760261887);  /* 2025-10-12T09:38:07Z */
    char t[21];
    attest_json_format_time(not_before, t);
    assert_string_equal(t, "2025-07-13T09:38:07Z");
    attest_json_format_time(not_after, t);
    assert_string_equal(t, "2025-10-12T09:38:07Z");
}

/* Its Sub CA is not public: with Apple's root alone the chain cannot verify, but the properties
 * are still read and reported. */
static void test_real_leaf_untrusted_with_apple_root(void **state)
{
    (void)state;
    struct attest_verifier *v = new_verifier(attest_apple_root_pem);
    struct items it = {0};
    items_push(&it, g.real_leaf, g.real_leaf_len);
    struct request r = {.at = REAL_LEAF_TIME};
    struct attest_verdict out, ref;
    run(v, &it, &r, &out);
    assert_verdict(&out, "real leaf alone", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    assert_true(out.leaf_parsed);
    time_t nb, na;
    assert_true(attest_read_leaf(g.real_leaf, g.real_leaf_len, &ref.properties, &nb, &na));
    assert_true(same_properties(&out.properties, &ref.properties));
    assert_string_equal(out.properties.serial_number, "TMWFWWWP67");
    assert_int_equal(out.not_before, nb);
    assert_int_equal(out.not_after, na);
    char hex[65];
    hex_encode(out.leaf_sha256, 32, hex);
    assert_string_equal(hex, "6c25bfd9aa09f209892b8b4808ab44803045f5bc2e2c172f7e6c7832c38292c2");

    /* With every check the server would ask for, still the chain is what fails. */
    uint8_t freshness[32];
    memcpy(freshness, out.properties.freshness, sizeof(freshness));
    struct request full = {.nonce = freshness,
                           .nonce_len = 32,
                           .udid = "00006030-000651690A84001C",
                           .serial = "TMWFWWWP67",
                           .os = "15.5",
                           .at = REAL_LEAF_TIME};
    run(v, &it, &full, &out);
    assert_verdict(&out, "real leaf, all checks", ATTEST_FAILED, ATTEST_FRESHNESS_NONE,
                   ATTEST_REASON_UNTRUSTED_CHAIN);
    attest_verifier_free(v);
}

static void test_apple_root_builtin(void **state)
{
    (void)state;
    X509 *builtin = pem_cert(attest_apple_root_pem, strlen(attest_apple_root_pem));
    size_t len, file_pem_len, file_der_len;
    uint8_t *der = cert_der(builtin, &len);
    char hex[65];
    sha256_hex(der, len, hex);
    assert_string_equal(hex, APPLE_ROOT_SHA256);

    char *file_pem = (char *)read_file(APPLE_ROOT_PEM_FILE, &file_pem_len);
    X509 *file = pem_cert(file_pem, file_pem_len);
    uint8_t *file_der = cert_der(file, &file_der_len);
    assert_int_equal(len, file_der_len);
    assert_memory_equal(der, file_der, len);

    /* Exactly one certificate, valid 2022-02-16 to 2047-02-20. */
    BIO *bio = BIO_new_mem_buf(attest_apple_root_pem, (int)strlen(attest_apple_root_pem));
    X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(first);
    assert_null(second);
    char t[21];
    attest_json_format_time(asn1_time(X509_get0_notBefore(first)), t);
    assert_memory_equal(t, "2022-02-16", 10);
    attest_json_format_time(asn1_time(X509_get0_notAfter(first)), t);
    assert_memory_equal(t, "2047-02-20", 10);
    BIO_free(bio);
    X509_free(first);
    X509_free(builtin);
    X509_free(file);
    free(der);
    free(file_der);
    free(file_pem);
}

static void test_read_leaf_rejects(void **state)
{
    (void)state;
    struct attest_properties p;
    time_t nb, na;
    static const uint8_t garbage[] = {0x30, 0x82, 0x01, 0x00, 0x01};
    assert_false(attest_read_leaf(garbage, 0, &p, &nb, &na));
    assert_false(attest_read_leaf(garbage, sizeof(garbage), &p, &nb, &na));
    uint8_t *padded = malloc(g.real_leaf_len + 1);
    assert_non_null(padded);
    memcpy(padded, g.real_leaf, g.real_leaf_len);
    padded[g.real_leaf_len] = 0;
    assert_false(attest_read_leaf(padded, g.real_leaf_len + 1, &p, &nb, &na));
    assert_false(attest_read_leaf(padded, g.real_leaf_len - 1, &p, &nb, &na));
    assert_true(attest_read_leaf(padded, g.real_leaf_len, &p, &nb, &na));
    free(padded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_leaf_matches_expected_json),
        cmocka_unit_test(test_real_leaf_values),
        cmocka_unit_test(test_real_leaf_untrusted_with_apple_root),
        cmocka_unit_test(test_apple_root_builtin),
        cmocka_unit_test(test_read_leaf_rejects),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
