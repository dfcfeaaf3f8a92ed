/* Unit tests of server/attestation/attest.c, what the leaf states: UDID, serial number and OS version against
 * the device, Apple's extensions malformed, blank or left out, and critical extensions nobody
 * understands.
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

/* The enrolled device as a Mac: every Apple property, g.nonce as freshness code. */
static void mac_spec(struct fake_leaf_spec *spec)
{
    struct fake_apple_device dev = {.serial_number = dev_serial,
                                    .udid = dev_udid,
                                    .os_version = dev_os,
                                    .software_update_device_id = dev_sudid,
                                    .nonce = g.nonce,
                                    .nonce_len = 32,
                                    .macos = true};
    assert_true(fake_leaf_spec_device(spec, &dev, MINTED));
}

static void expect_udid(const char *udid, bool blank)
{
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    if (blank)
        fake_leaf_spec_blank(&spec, FAKE_PROP_UDID);
    else if (udid == NULL)
        fake_leaf_spec_omit(&spec, FAKE_PROP_UDID);
    else
        assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_UDID, udid));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_UDID_MISMATCH);
    fake_chain_free(&chain);
}

static void test_udid_mismatch(void **state)
{
    (void)state;
    expect_udid("00008030-001A2B3C4D5E8999", false); /* another device */
    expect_udid("00008030-001a2b3c4d5e802e", false); /* lower case */
    expect_udid("00008030-001A2B3C4D5E802", false);  /* a prefix */
    expect_udid("00008030-001A2B3C4D5E802E ", false);
    expect_udid(NULL, false); /* missing */
    expect_udid(NULL, true);  /* blank */
}

static void test_serial_mismatch(void **state)
{
    (void)state;
    static const char *const serials[] = {"C02XL0GYJGH5", "f4gxk2zq0d", NULL, ""};
    for (size_t i = 0; i < sizeof(serials) / sizeof(serials[0]); i++) {
        struct fake_leaf_spec spec;
        struct fake_chain chain;
        device_spec(&spec, g.nonce, sizeof(g.nonce));
        if (serials[i] == NULL)
            fake_leaf_spec_omit(&spec, FAKE_PROP_SERIAL_NUMBER);
        else
            assert_true(fake_leaf_spec_set_string(&spec, FAKE_PROP_SERIAL_NUMBER, serials[i]));
        issue(g.pki, &spec, &chain);
        expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                       ATTEST_REASON_SERIAL_MISMATCH);
        fake_chain_free(&chain);
    }
}

static void test_os_version(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();
    r.os = "17.4";

    /* Fresh: the attested 17.5 contradicts the reported 17.4. */
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                 ATTEST_REASON_OS_VERSION_MISMATCH, &v);
    assert_string_equal(v.properties.os_version, dev_os);
    r.os = "17.5.1";
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                 ATTEST_REASON_OS_VERSION_MISMATCH, &v);
    /* Not reported: nothing to compare. */
    r.os = NULL;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);

    /* Cached: may predate an update, not a finding. */
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce));
    r.os = "17.4";
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);

    /* A leaf without the OS version (before iOS 17.2): undetermined, shown as null. */
    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_omit(&spec, FAKE_PROP_OS_VERSION);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_false(v.properties.has_os_version);
    fake_chain_free(&chain);
}

/* A leaf built from spec must be refused as malformed, by attest_read_leaf too. */
static void expect_malformed_spec(const struct fake_leaf_spec *spec, const char *what)
{
    struct fake_chain chain;
    issue(g.pki, spec, &chain);
    struct items it = items_of(&chain);
    struct request r = default_request();
    struct attest_verdict v;
    struct attest_verifier *fresh = new_verifier(g.root_pem);
    run(fresh, &it, &r, &v);
    attest_verifier_free(fresh);
    if (v.status != ATTEST_FAILED || v.reason != ATTEST_REASON_MALFORMED)
        fail_msg("%s: got %s/%s, expected failed/malformed", what, attest_status_name(v.status),
                 name_or_none(attest_reason_name(v.reason)));
    assert_false(v.leaf_parsed);
    assert_int_equal(v.freshness, ATTEST_FRESHNESS_NONE);
    struct attest_verdict cached;
    run(g.warm, &it, &r, &cached);
    assert_same_verdict(&v, &cached, what);
    struct attest_properties props;
    time_t nb, na;
    if (attest_read_leaf(chain.der[0], chain.len[0], &props, &nb, &na))
        fail_msg("%s: attest_read_leaf accepted it", what);
    fake_chain_free(&chain);
}

/* A leaf built from spec must verify (fresh): the boundary next to a malformed case. */
static void expect_verified_spec(const struct fake_leaf_spec *spec, struct attest_verdict *v)
{
    struct fake_chain chain;
    issue(g.pki, spec, &chain);
    struct request r = default_request();
    r.udid = NULL;
    r.serial = NULL;
    r.os = NULL;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, v);
    fake_chain_free(&chain);
}

static void test_malformed_extensions(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct attest_verdict v;
    char what[128];

    /* Every Apple extension, duplicated (same value twice). */
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
        mac_spec(&spec);
        spec.props[prop].duplicate = true;
        snprintf(what, sizeof(what), "duplicated %s", fake_apple_prop_name(prop));
        expect_malformed_spec(&spec, what);
    }

    /* .13.1 and .13.3 must be DER INTEGERs. */
    static const struct {
        const char *what;
        uint8_t bytes[8];
        size_t len;
    } bad_ints[] = {
        {"ASCII 0", {'0'}, 1},
        {"a bare 0x00", {0x00}, 1},
        {"a BOOLEAN", {0x01, 0x01, 0x00}, 3},
        {"an OCTET STRING", {0x04, 0x01, 0x00}, 3},
        {"an INTEGER with a trailing byte", {0x02, 0x01, 0x00, 0x00}, 4},
        {"a truncated INTEGER", {0x02, 0x02, 0x00}, 3},
        {"a negative INTEGER", {0x02, 0x01, 0xff}, 3},
        {"an INTEGER with padding", {0x02, 0x02, 0x00, 0x01}, 4},
        {"an INTEGER of length 0", {0x02, 0x00}, 2},
    };
    for (size_t i = 0; i < sizeof(bad_ints) / sizeof(bad_ints[0]); i++) {
        for (int prop = FAKE_PROP_SIP; prop <= FAKE_PROP_KEXTS; prop++) {
            device_spec(&spec, g.nonce, sizeof(g.nonce));
            assert_true(fake_leaf_spec_set(&spec, prop, bad_ints[i].bytes, bad_ints[i].len));
            snprintf(what, sizeof(what), "%s as %s", fake_apple_prop_name(prop), bad_ints[i].what);
            expect_malformed_spec(&spec, what);
        }
    }
    /* Good INTEGERs: 0 (safe state), 1, and one needing a leading zero. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_set_int(&spec, FAKE_PROP_SIP, 1);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 1);
    expect_verified_spec(&spec, &v);
    assert_int_equal(v.properties.sip_enabled, 0);
    assert_int_equal(v.properties.third_party_kexts_allowed, 1);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_SIP, 0x80);
    fake_leaf_spec_set_int(&spec, FAKE_PROP_KEXTS, 0);
    expect_verified_spec(&spec, &v);
    assert_int_equal(v.properties.sip_enabled, 0);
    assert_int_equal(v.properties.third_party_kexts_allowed, 0);

    /* ASCII properties: printable ASCII only. */
    static const enum fake_apple_prop ascii[] = {
        FAKE_PROP_SEPOS_VERSION, FAKE_PROP_LLB_VERSION,
        FAKE_PROP_OS_VERSION,    FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID,
        FAKE_PROP_SECURE_BOOT,   FAKE_PROP_SERIAL_NUMBER,
        FAKE_PROP_UDID};
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad_ascii[] = {
        {"UTF-8 e-acute", "17.5\xc3\xa9", 6},
        {"a Latin-1 byte", "17\xb5", 3},
        {"a NUL byte",
         "17\0"
         "5",
         4},
        {"a newline", "17.5\n", 5},
        {"DEL", "17.5\x7f", 5},
    };
    for (size_t k = 0; k < sizeof(ascii) / sizeof(ascii[0]); k++) {
        for (size_t i = 0; i < sizeof(bad_ascii) / sizeof(bad_ascii[0]); i++) {
            device_spec(&spec, g.nonce, sizeof(g.nonce));
            assert_true(fake_leaf_spec_set(&spec, ascii[k], bad_ascii[i].bytes, bad_ascii[i].len));
            snprintf(what, sizeof(what), "%s with %s", fake_apple_prop_name(ascii[k]),
                     bad_ascii[i].what);
            expect_malformed_spec(&spec, what);
        }
        /* Longer than ATTEST_MAX_VALUE: refused, not truncated; exactly the maximum: kept. */
        char longest[ATTEST_MAX_VALUE + 2];
        memset(longest, 'A', sizeof(longest));
        device_spec(&spec, g.nonce, sizeof(g.nonce));
        assert_true(fake_leaf_spec_set(&spec, ascii[k], longest, ATTEST_MAX_VALUE + 1));
        snprintf(what, sizeof(what), "%s of %d bytes", fake_apple_prop_name(ascii[k]),
                 ATTEST_MAX_VALUE + 1);
        expect_malformed_spec(&spec, what);
        assert_true(fake_leaf_spec_set(&spec, ascii[k], longest, ATTEST_MAX_VALUE));
        expect_verified_spec(&spec, &v);
    }
    assert_int_equal(strlen(v.properties.udid), ATTEST_MAX_VALUE);

    /* Freshness longer than ATTEST_MAX_NONCE_BYTES. */
    uint8_t nonce65[ATTEST_MAX_NONCE_BYTES + 1];
    assert_int_equal(RAND_bytes(nonce65, sizeof(nonce65)), 1);
    device_spec(&spec, nonce65, sizeof(nonce65));
    expect_malformed_spec(&spec, "freshness of 65 bytes");
    /* Exactly 64 bytes: read and matched against a 64-byte request nonce. */
    device_spec(&spec, nonce65, ATTEST_MAX_NONCE_BYTES);
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    r.nonce = nonce65;
    r.nonce_len = ATTEST_MAX_NONCE_BYTES;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_int_equal(v.properties.freshness_len, ATTEST_MAX_NONCE_BYTES);
    /* A request nonce longer than 64 bytes never matches. */
    r.nonce_len = ATTEST_MAX_NONCE_BYTES + 1;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH,
                 &v);
    fake_chain_free(&chain);

    /* A one-byte freshness code that happens to look like DER is still raw bytes. */
    static const uint8_t der_like[] = {0x02, 0x01, 0x00};
    device_spec(&spec, der_like, sizeof(der_like));
    issue(g.pki, &spec, &chain);
    r = default_request();
    r.nonce = der_like;
    r.nonce_len = sizeof(der_like);
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_int_equal(v.properties.freshness_len, 3);
    fake_chain_free(&chain);
}

static void assert_all_null(const struct attest_properties *p)
{
    assert_false(p->has_serial_number);
    assert_false(p->has_udid);
    assert_false(p->has_os_version);
    assert_false(p->has_sepos_version);
    assert_false(p->has_llb_version);
    assert_false(p->has_software_update_device_id);
    assert_false(p->has_secure_boot);
    assert_int_equal(p->sip_enabled, -1);
    assert_int_equal(p->third_party_kexts_allowed, -1);
}

static void test_blank_and_omitted_properties(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    struct attest_properties p;
    time_t nb, na;

    for (int mode = 0; mode < 3; mode++) {
        /* 0: every property omitted; 1: every one blank; 2: the ASCII ones all spaces */
        fake_leaf_spec_init(&spec, MINTED);
        for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
            if (prop == FAKE_PROP_FRESHNESS)
                continue;
            if (mode == 1 || (mode == 2 && (prop == FAKE_PROP_SIP || prop == FAKE_PROP_KEXTS)))
                fake_leaf_spec_blank(&spec, prop);
            else if (mode == 2)
                assert_true(fake_leaf_spec_set_string(&spec, prop, "   "));
        }
        assert_true(fake_leaf_spec_set(&spec, FAKE_PROP_FRESHNESS, g.nonce, sizeof(g.nonce)));
        issue(g.pki, &spec, &chain);
        memset(&p, 0x5a, sizeof(p));
        assert_true(attest_read_leaf(chain.der[0], chain.len[0], &p, &nb, &na));
        assert_all_null(&p);
        assert_true(p.has_freshness);

        /* Verified when nothing is compared, the properties null. */
        struct request r = {.nonce = g.nonce, .nonce_len = sizeof(g.nonce), .at = NOW};
        struct attest_verdict v;
        expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
        assert_all_null(&v.properties);
        /* Null is never "good": a UDID or serial to compare fails. */
        r.udid = dev_udid;
        expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_UDID_MISMATCH,
                     &v);
        r.udid = NULL;
        r.serial = dev_serial;
        expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_FRESH,
                     ATTEST_REASON_SERIAL_MISMATCH, &v);
        fake_chain_free(&chain);
    }

    /* One at a time, the rest present. */
    for (int prop = 0; prop < FAKE_PROP_COUNT; prop++) {
        if (prop == FAKE_PROP_FRESHNESS)
            continue;
        mac_spec(&spec);
        fake_leaf_spec_blank(&spec, prop);
        issue(g.pki, &spec, &chain);
        assert_true(attest_read_leaf(chain.der[0], chain.len[0], &p, &nb, &na));
        const bool has[] = {
            [FAKE_PROP_SEPOS_VERSION] = p.has_sepos_version,
            [FAKE_PROP_LLB_VERSION] = p.has_llb_version,
            [FAKE_PROP_OS_VERSION] = p.has_os_version,
            [FAKE_PROP_SOFTWARE_UPDATE_DEVICE_ID] = p.has_software_update_device_id,
            [FAKE_PROP_SECURE_BOOT] = p.has_secure_boot,
            [FAKE_PROP_SIP] = p.sip_enabled >= 0,
            [FAKE_PROP_KEXTS] = p.third_party_kexts_allowed >= 0,
            [FAKE_PROP_SERIAL_NUMBER] = p.has_serial_number,
            [FAKE_PROP_UDID] = p.has_udid,
        };
        for (int other = 0; other < FAKE_PROP_FRESHNESS; other++) {
            if (has[other] != (other != prop))
                fail_msg("%s blank: %s has %d", fake_apple_prop_name(prop),
                         fake_apple_prop_name(other), has[other]);
        }
        fake_chain_free(&chain);
    }
}

static void test_unknown_critical_extension(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_chain chain;
    static const uint8_t value[] = {0x05, 0x00};

    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, true, value, sizeof(value)));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* An Apple extension marked critical (Apple's never are; nothing in path validation
     * understands it). */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    spec.props[FAKE_PROP_OS_VERSION].critical = true;
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* An unknown Apple OID, critical. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.3", true, "x", 1));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_NONE, ATTEST_REASON_UNTRUSTED_CHAIN);
    fake_chain_free(&chain);

    /* The same, non-critical: ignored. */
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    assert_true(fake_leaf_spec_add_extra(&spec, PRIVATE_OID, false, value, sizeof(value)));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.3", false, "x", 1));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "9.1.1", false, "x", 1));
    assert_true(fake_leaf_spec_add_extra(&spec, APPLE_ARC "200.1", false, "x", 1));
    issue(g.pki, &spec, &chain);
    expect_default(&chain, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    fake_chain_free(&chain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udid_mismatch),
        cmocka_unit_test(test_serial_mismatch),
        cmocka_unit_test(test_os_version),
        cmocka_unit_test(test_malformed_extensions),
        cmocka_unit_test(test_blank_and_omitted_properties),
        cmocka_unit_test(test_unknown_critical_extension),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
