/* Unit tests of the verdict as JSON (server/attestation/attest_json.c) for a verified and a failed answer
 * and for the real Apple leaf, and of the names server/attestation/attest.c gives statuses, freshness and
 * reasons.
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

#define MINTED_RFC3339 "2026-01-14T00:00:00Z"
#define EXPIRES_RFC3339 "2026-04-15T00:00:00Z" /* MINTED + 91 days */

static const struct json_value *parse_json(const char *text, size_t len, struct json_doc **doc)
{
    struct json_parse_error perr = {0};
    enum json_error e = json_parse(text, len, &json_limits, doc, &perr);
    if (e != JSON_OK)
        fail_msg("not JSON (%s at %zu): %s", json_strerror(e), perr.offset, text);
    return json_doc_root(*doc);
}

static char *write_verdict(const struct attest_verdict *v, const struct attest_json_extra *extra,
                           size_t *len)
{
    struct json_writer *w = json_writer_new(1 << 20, 0);
    assert_non_null(w);
    assert_true(attest_json_write_verdict(w, v, extra));
    const char *data;
    assert_true(json_writer_finish(w, &data, len));
    char *copy = strdup(data);
    json_writer_free(w);
    return copy;
}

static void assert_keys(const struct json_value *obj, const char *const *keys, size_t n)
{
    assert_int_equal(json_value_kind(obj), JSON_KIND_OBJECT);
    if (json_object_count(obj) != n)
        fail_msg("%zu members, expected %zu", json_object_count(obj), n);
    for (size_t i = 0; i < n; i++) {
        const char *key;
        const struct json_value *value;
        assert_true(json_object_member(obj, i, &key, NULL, &value));
        assert_string_equal(key, keys[i]);
    }
}

static const char *const property_keys[] = {
    "serial_number", "udid",        "os_version",
    "sepos_version", "llb_version", "software_update_device_id",
    "sip_enabled",   "secure_boot", "third_party_kexts_allowed"};

static void assert_json_string(const struct json_value *obj, const char *key, const char *want)
{
    const struct json_value *v = json_object_find(obj, key);
    if (v == NULL)
        fail_msg("no %s", key);
    if (want == NULL) {
        if (!json_value_is_null(v))
            fail_msg("%s: not null", key);
        return;
    }
    const char *got = json_object_get_string(obj, key);
    if (got == NULL)
        fail_msg("%s: not a string", key);
    assert_string_equal(got, want);
}

static void assert_json_tristate(const struct json_value *obj, const char *key, int want)
{
    const struct json_value *v = json_object_find(obj, key);
    assert_non_null(v);
    if (want < 0) {
        assert_true(json_value_is_null(v));
        return;
    }
    bool b;
    assert_true(json_get_bool(v, &b));
    assert_int_equal(b, want == 1);
}

static void test_json_verified(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_apple_device dev = {.serial_number = dev_serial,
                                    .udid = dev_udid,
                                    .os_version = dev_os,
                                    .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce),
                                    .macos = true};
    assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
    fake_leaf_spec_omit(&spec, FAKE_PROP_SEPOS_VERSION); /* absent */
    fake_leaf_spec_blank(&spec, FAKE_PROP_LLB_VERSION);  /* blank */
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 1);   /* allowed */
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);

    const uint8_t *der[2] = {chain.der[0], chain.der[1]};
    struct attest_json_extra extra = {.certs = der,
                                      .cert_lens = chain.len,
                                      .cert_count = 2,
                                      .reported_os_version = "17.5",
                                      .reported_build_version = "21F79"};
    size_t len;
    char *text = write_verdict(&v, &extra, &len);
    struct json_doc *doc = NULL;
    const struct json_value *root = parse_json(text, len, &doc);
    static const char *const keys[] = {"status",       "freshness",  "reason",
                                       "generated_at", "expires_at", "leaf_sha256",
                                       "properties",   "chain",      "reported"};
    assert_keys(root, keys, 9);
    assert_json_string(root, "status", "verified");
    assert_json_string(root, "freshness", "fresh");
    assert_json_string(root, "reason", NULL);
    assert_json_string(root, "generated_at", MINTED_RFC3339);
    assert_json_string(root, "expires_at", EXPIRES_RFC3339);
    char hex[65];
    sha256_hex(chain.der[0], chain.len[0], hex);
    assert_json_string(root, "leaf_sha256", hex);

    const struct json_value *p = json_object_find(root, "properties");
    assert_keys(p, property_keys, 9);
    assert_json_string(p, "serial_number", dev_serial);
    assert_json_string(p, "udid", dev_udid);
    assert_json_string(p, "os_version", dev_os);
    assert_json_string(p, "sepos_version", NULL);
    assert_json_string(p, "llb_version", NULL);
    assert_json_string(p, "software_update_device_id", NULL);
    assert_json_tristate(p, "sip_enabled", 1);
    assert_json_string(p, "secure_boot", "Full Security");
    assert_json_tristate(p, "third_party_kexts_allowed", 1);

    /* The chain as received, base64. */
    const struct json_value *c = json_object_find(root, "chain");
    assert_int_equal(json_array_length(c), 2);
    for (size_t i = 0; i < 2; i++) {
        const char *b64;
        size_t b64_len;
        assert_true(json_get_string(json_array_at(c, i), &b64, &b64_len));
        uint8_t *raw = malloc(b64_len);
        assert_non_null(raw);
        int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64_len);
        assert_true(n >= (int)chain.len[i] && n <= (int)chain.len[i] + 2);
        assert_memory_equal(raw, chain.der[i], chain.len[i]);
        free(raw);
    }
    const struct json_value *rep = json_object_find(root, "reported");
    static const char *const rep_keys[] = {"os_version", "build_version"};
    assert_keys(rep, rep_keys, 2);
    assert_json_string(rep, "os_version", "17.5");
    assert_json_string(rep, "build_version", "21F79");
    json_doc_free(doc);
    free(text);

    /* Reported with only the OS version: the build is null. No chain without certs. */
    struct attest_json_extra partial = {.reported_os_version = "17.5"};
    text = write_verdict(&v, &partial, &len);
    root = parse_json(text, len, &doc);
    assert_null(json_object_find(root, "chain"));
    assert_json_string(json_object_find(root, "reported"), "build_version", NULL);
    json_doc_free(doc);
    free(text);
    fake_chain_free(&chain);
}

static void test_json_failed(void **state)
{
    (void)state;
    struct items it = {0};
    struct request r = default_request();
    struct attest_verdict v;
    size_t len;
    struct json_doc *doc = NULL;

    /* Malformed: nothing read, every leaf-derived member null, no extra members. */
    static const uint8_t garbage[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    items_push(&it, garbage, sizeof(garbage));
    expect(&it, &r, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_MALFORMED, &v);
    char *text = write_verdict(&v, NULL, &len);
    const struct json_value *root = parse_json(text, len, &doc);
    static const char *const keys[] = {"status",     "freshness",   "reason",    "generated_at",
                                       "expires_at", "leaf_sha256", "properties"};
    assert_keys(root, keys, 7);
    assert_json_string(root, "status", "failed");
    assert_json_string(root, "freshness", NULL);
    assert_json_string(root, "reason", "malformed");
    assert_json_string(root, "generated_at", NULL);
    assert_json_string(root, "expires_at", NULL);
    assert_json_string(root, "leaf_sha256", NULL);
    assert_true(json_value_is_null(json_object_find(root, "properties")));
    json_doc_free(doc);
    free(text);

    /* Nonce missing, every property blank: freshness "unknown", properties all null. */
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    fake_leaf_spec_init(&spec, MINTED);
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++)
        fake_leaf_spec_blank(&spec, prop);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    text = write_verdict(&v, NULL, &len);
    root = parse_json(text, len, &doc);
    assert_json_string(root, "freshness", "unknown");
    assert_json_string(root, "reason", "nonce_missing");
    assert_json_string(root, "generated_at", MINTED_RFC3339);
    const struct json_value *p = json_object_find(root, "properties");
    assert_keys(p, property_keys, 9);
    for (size_t i = 0; i < 9; i++) {
        if (!json_value_is_null(json_object_find(p, property_keys[i])))
            fail_msg("%s: not null", property_keys[i]);
    }
    json_doc_free(doc);
    free(text);
    fake_chain_free(&chain);

    /* Each reason code by its docs/attestation.md name. */
    static const struct {
        enum attest_reason reason;
        const char *name;
    } reasons[] = {
        {ATTEST_REASON_MALFORMED, "malformed"},
        {ATTEST_REASON_UNTRUSTED_CHAIN, "untrusted_chain"},
        {ATTEST_REASON_NONCE_MISMATCH, "nonce_mismatch"},
        {ATTEST_REASON_NONCE_MISSING, "nonce_missing"},
        {ATTEST_REASON_UDID_MISMATCH, "udid_mismatch"},
        {ATTEST_REASON_SERIAL_MISMATCH, "serial_mismatch"},
        {ATTEST_REASON_OS_VERSION_MISMATCH, "os_version_mismatch"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        memset(&v, 0, sizeof(v));
        v.status = ATTEST_FAILED;
        v.reason = reasons[i].reason;
        v.freshness = ATTEST_FRESHNESS_CACHED;
        text = write_verdict(&v, NULL, &len);
        root = parse_json(text, len, &doc);
        assert_json_string(root, "reason", reasons[i].name);
        assert_json_string(root, "freshness", "cached");
        json_doc_free(doc);
        free(text);
    }
}

/* The verdict on Apple's real leaf, alone, at its own time: untrusted (no Sub CA), its
 * properties read. */
static void real_leaf_verdict(struct attest_verdict *v)
{
    struct attest_verifier *av = new_verifier(attest_apple_root_pem);
    struct items it = {0};
    items_push(&it, g.real_leaf, g.real_leaf_len);
    struct request r = {.at = REAL_LEAF_TIME};
    run(av, &it, &r, v);
    attest_verifier_free(av);
}

static void test_json_real_leaf(void **state)
{
    (void)state;
    struct attest_verdict v;
    real_leaf_verdict(&v);
    size_t len;
    char *text = write_verdict(&v, NULL, &len);
    struct json_doc *doc = NULL;
    const struct json_value *root = parse_json(text, len, &doc);
    assert_json_string(root, "status", "failed");
    assert_json_string(root, "freshness", NULL);
    assert_json_string(root, "reason", "untrusted_chain");
    assert_json_string(root, "generated_at", "2025-07-13T09:38:07Z");
    assert_json_string(root, "expires_at", "2025-10-12T09:38:07Z");
    assert_json_string(root, "leaf_sha256",
                       "6c25bfd9aa09f209892b8b4808ab44803045f5bc2e2c172f7e6c7832c38292c2");
    const struct json_value *p = json_object_find(root, "properties");
    assert_keys(p, property_keys, 9);
    assert_json_string(p, "serial_number", "TMWFWWWP67");
    assert_json_string(p, "udid", "00006030-000651690A84001C");
    assert_json_string(p, "os_version", "15.5");
    assert_json_string(p, "sepos_version", "15.5");
    assert_json_string(p, "llb_version", "15.5");
    assert_json_string(p, "software_update_device_id", "J514sAP");
    assert_json_tristate(p, "sip_enabled", 1);
    assert_json_string(p, "secure_boot", "Full Security");
    assert_json_tristate(p, "third_party_kexts_allowed", 0);
    json_doc_free(doc);
    free(text);

    /* Unsupported, with and without what the device reported. */
    struct json_writer *w = json_writer_new(4096, 0);
    assert_non_null(w);
    const char *data;
    assert_true(attest_json_write_unsupported(w, NULL));
    assert_true(json_writer_finish(w, &data, &len));
    assert_string_equal(data, "{\"status\":\"unsupported\"}");
    json_writer_reset(w);
    struct attest_json_extra extra = {.reported_os_version = "16.0",
                                      .reported_build_version = "20A362"};
    assert_true(attest_json_write_unsupported(w, &extra));
    assert_true(json_writer_finish(w, &data, &len));
    root = parse_json(data, len, &doc);
    assert_json_string(root, "status", "unsupported");
    assert_json_string(json_object_find(root, "reported"), "build_version", "20A362");
    json_doc_free(doc);
    json_writer_free(w);
}

/* What vouch_json_unpack (db/functions/30_devices.sql) makes of a packed object: '{', each key
 * quoted, ':', its value's text (U+001E: udid quoted), ',' between, '}'. */
static char *unpack(const char *packed, const char *const *keys, size_t count, const char *udid)
{
    size_t size = 3 + strlen(packed) + count * (strlen(udid) + 8);
    for (size_t i = 0; i < count; i++)
        size += strlen(keys[i]);
    char *out = malloc(size), *o = out;
    assert_non_null(out);
    char *limit = out + size;
    *o++ = '{';
    const char *p = packed;
    for (size_t i = 0; i < count; i++) {
        const char *end = strchr(p, '\x1f');
        if ((end == NULL) != (i + 1 == count))
            fail_msg("packed value %zu of %zu: wrong count", i + 1, count);
        if (end == NULL)
            end = p + strlen(p);
        o += snprintf(o, (size_t)(limit - o), "%s\"%s\":", i > 0 ? "," : "", keys[i]);
        if (end - p == 1 && *p == '\x1e') {
            o += snprintf(o, (size_t)(limit - o), "\"%s\"", udid);
        } else {
            memcpy(o, p, (size_t)(end - p));
            o += end - p;
        }
        p = *end ? end + 1 : end;
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

/* With pack_udid, properties and checked also go packed, as the attestations row keeps them;
 * unpacked as the database unpacks them, they are the very text of the objects. */
static void test_json_packed(void **state)
{
    (void)state;
    static const char *const checked_keys[] = {"udid", "serial", "os_version",
                                               "at",   "require_fresh", "cached_requested_at"};
    static const char udid[] = "00006030-000651690A84001C";
    struct attest_verdict v;
    real_leaf_verdict(&v);
    struct attest_input in = {.expected_udid = udid,
                              .expected_serial = "TMW\"FWWWP67", /* escaped in JSON */
                              .reported_os_version = NULL,
                              .require_fresh = true,
                              .verify_time = REAL_LEAF_TIME};
    struct attest_json_extra extra = {.checked = &in, .pack_udid = udid};
    size_t len;
    char *text = write_verdict(&v, &extra, &len);
    struct json_doc *doc = NULL;
    const struct json_value *root = parse_json(text, len, &doc);
    static const char *const keys[] = {"status",       "freshness",  "reason",
                                       "generated_at", "expires_at", "leaf_sha256",
                                       "properties",   "properties_packed", "checked",
                                       "checked_packed"};
    assert_keys(root, keys, 10);

    /* properties: the device's own UDID is U+001E; unpacked, the object's text. */
    const char *packed = json_object_get_string(root, "properties_packed");
    assert_non_null(packed);
    assert_non_null(strchr(packed, '\x1e'));
    assert_null(strstr(packed, udid));
    struct json_writer *w = json_writer_new(1 << 16, 0);
    assert_non_null(w);
    const char *object;
    assert_true(attest_json_write_properties(w, &v.properties));
    assert_true(json_writer_finish(w, &object, NULL));
    char *unpacked = unpack(packed, property_keys, 9, udid);
    assert_string_equal(unpacked, object);
    free(unpacked);
    json_writer_free(w);

    /* checked: its text in the verdict's, up to its closing brace (no value has one). */
    packed = json_object_get_string(root, "checked_packed");
    assert_non_null(packed);
    const char *start = strstr(text, "\"checked\":{") + strlen("\"checked\":");
    char *want = strndup(start, (size_t)(strchr(start, '}') - start + 1));
    unpacked = unpack(packed, checked_keys, 6, udid);
    assert_string_equal(unpacked, want);
    assert_non_null(strstr(want, "\"serial\":\"TMW\\\"FWWWP67\""));
    free(unpacked);
    free(want);
    json_doc_free(doc);
    free(text);

    /* A UDID that JSON escapes is not the U+001E of its own escaped text (the database compares
     * the value's text with the UDID between quotes): kept as its text, unpacked the same. */
    static const char quoted_udid[] = "00006030-\"000651690A84001C";
    in.expected_udid = quoted_udid;
    extra.pack_udid = quoted_udid;
    text = write_verdict(&v, &extra, &len);
    root = parse_json(text, len, &doc);
    packed = json_object_get_string(root, "checked_packed");
    assert_non_null(packed);
    assert_null(strchr(packed, '\x1e'));
    start = strstr(text, "\"checked\":{") + strlen("\"checked\":");
    want = strndup(start, (size_t)(strchr(start, '}') - start + 1));
    unpacked = unpack(packed, checked_keys, 6, quoted_udid);
    assert_string_equal(unpacked, want);
    free(unpacked);
    free(want);
    json_doc_free(doc);
    free(text);
    extra.pack_udid = udid;

    /* A value too long to pack leaves its packed member out, and the verdict whole. */
    char *long_udid = malloc(10001);
    assert_non_null(long_udid);
    memset(long_udid, 'A', 10000);
    long_udid[10000] = '\0';
    in.expected_udid = long_udid;
    text = write_verdict(&v, &extra, &len);
    root = parse_json(text, len, &doc);
    assert_non_null(json_object_find(root, "properties_packed"));
    assert_null(json_object_find(root, "checked_packed"));
    assert_json_string(json_object_find(root, "checked"), "udid", long_udid);
    json_doc_free(doc);
    free(text);
    free(long_udid);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(attest_status_name(ATTEST_VERIFIED), "verified");
    assert_string_equal(attest_status_name(ATTEST_FAILED), "failed");
    assert_null(attest_freshness_name(ATTEST_FRESHNESS_NONE));
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_FRESH), "fresh");
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_CACHED), "cached");
    assert_string_equal(attest_freshness_name(ATTEST_FRESHNESS_UNKNOWN), "unknown");
    assert_null(attest_reason_name(ATTEST_REASON_NONE));
    assert_string_equal(attest_reason_name(ATTEST_REASON_OS_VERSION_MISMATCH),
                        "os_version_mismatch");
    char t[21];
    attest_json_format_time(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00Z");
    attest_json_format_time((time_t)2524607999, t);
    assert_string_equal(t, "2049-12-31T23:59:59Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_verified),
        cmocka_unit_test(test_json_failed),
        cmocka_unit_test(test_json_real_leaf),
        cmocka_unit_test(test_json_packed),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
