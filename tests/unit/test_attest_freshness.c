/* Unit tests of server/attestation/attest.c, freshness: a fresh answer, a cached one (an older nonce of this
 * device), the bounds of cached answers (their request and Apple's 7-day cache), nonces that do not
 * match and a missing freshness code.
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

static void test_verified_fresh(void **state)
{
    (void)state;
    struct fake_leaf_spec spec;
    struct fake_apple_device dev = {.serial_number = dev_serial,
                                    .udid = dev_udid,
                                    .os_version = dev_os,
                                    .sepos_version = "21.5.1",
                                    .llb_version = "11881.120.1",
                                    .software_update_device_id = dev_sudid,
                                    .nonce = g.nonce,
                                    .nonce_len = sizeof(g.nonce),
                                    .macos = true};
    assert_true(fake_leaf_spec_device(&spec, &dev, MINTED));
    struct fake_chain chain;
    issue(g.pki, &spec, &chain);
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    assert_true(v.leaf_parsed);
    const struct attest_properties *p = &v.properties;
    assert_string_equal(p->serial_number, dev_serial);
    assert_string_equal(p->udid, dev_udid);
    assert_string_equal(p->os_version, dev_os);
    assert_string_equal(p->sepos_version, "21.5.1");
    assert_string_equal(p->llb_version, "11881.120.1");
    assert_string_equal(p->software_update_device_id, dev_sudid);
    assert_string_equal(p->secure_boot, "Full Security");
    assert_int_equal(p->sip_enabled, 1);
    assert_int_equal(p->third_party_kexts_allowed, 0);
    assert_int_equal(p->freshness_len, 32);
    assert_memory_equal(p->freshness, g.nonce, 32);
    assert_int_equal(v.not_before, MINTED);
    assert_int_equal(v.not_after, MINTED + 91 * DAY);
    uint8_t md[32];
    assert_int_equal(EVP_Digest(chain.der[0], chain.len[0], md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(v.leaf_sha256, md, 32);

    /* Nothing to compare (offline verify): verified on the chain and the nonce alone. */
    struct request offline = {.nonce = g.nonce, .nonce_len = sizeof(g.nonce), .at = NOW};
    expect_chain(&chain, &offline, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);
}

/* A cached answer carries a nonce asked before Apple made the leaf, and a device hands it back
 * only while it is younger than Apple's 7-day cache (with a few minutes of clock skew). */
static void test_cached_bounds(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce)); /* minted at MINTED */
    struct items it = items_of(&chain);
    struct request r = default_request();
    r.bounded = true;
    struct attest_verdict v;
    const struct {
        const char *what;
        time_t asked, at;
        enum attest_reason reason;
    } cases[] = {
        {"asked an hour before the leaf, a day later", MINTED - 3600, NOW, ATTEST_REASON_NONE},
        {"asked within the skew after the leaf", MINTED + 200, NOW, ATTEST_REASON_NONE},
        {"asked an hour after the leaf was made", MINTED + 3600, NOW,
         ATTEST_REASON_STALE_ATTESTATION},
        {"7 days old, within the skew", MINTED - 3600, MINTED + ATTEST_CACHE_MAX_AGE_S + 200,
         ATTEST_REASON_NONE},
        {"8 days old", MINTED - 3600, MINTED + 8 * DAY, ATTEST_REASON_STALE_ATTESTATION},
        {"88 days old", MINTED - 3600, MINTED + 88 * DAY, ATTEST_REASON_STALE_ATTESTATION},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.older_at[0] = cases[i].asked;
        r.at = cases[i].at;
        run(g.warm, &it, &r, &v);
        bool ok = cases[i].reason == ATTEST_REASON_NONE;
        assert_verdict(&v, cases[i].what, ok ? ATTEST_VERIFIED : ATTEST_FAILED,
                       ATTEST_FRESHNESS_CACHED, cases[i].reason);
        assert_non_null(v.cached_nonce);
        assert_int_equal(v.cached_nonce_len, sizeof(g.older_nonce));
        assert_memory_equal(v.cached_nonce, g.older_nonce, sizeof(g.older_nonce));
    }

    /* The bound belongs to the nonce the leaf carries, not to the others listed. */
    r = default_request();
    r.bounded = true;
    r.older[0] = g.random_nonce;
    r.older_at[0] = MINTED + 3600; /* would be stale */
    r.older[1] = g.older_nonce;
    r.older_len[1] = sizeof(g.older_nonce);
    r.older_at[1] = MINTED - 3600;
    r.older_count = 2;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "second of two older nonces", ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED,
                   ATTEST_REASON_NONE);

    /* Asked after an OS change, when Apple's rule lets the device make a new one: a cached
     * answer, however young, is stale; a fresh one passes. */
    r = default_request();
    r.bounded = true;
    r.older_at[0] = MINTED - 3600;
    r.require_fresh = true;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "cached, fresh required", ATTEST_FAILED, ATTEST_FRESHNESS_CACHED,
                   ATTEST_REASON_STALE_ATTESTATION);

    /* Without the times (vouchctl verify), a cached answer is not bounded. */
    r = default_request();
    r.at = MINTED + 30 * DAY;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "unbounded", ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE);

    /* A fresh answer carries no cached nonce. */
    fake_chain_free(&chain);
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    it = items_of(&chain);
    r = default_request();
    r.bounded = true;
    r.require_fresh = true;
    run(g.warm, &it, &r, &v);
    assert_verdict(&v, "fresh", ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE);
    assert_null(v.cached_nonce);
    fake_chain_free(&chain);
}

static void test_verified_cached(void **state)
{
    (void)state;
    struct fake_chain chain;
    issue_device(&chain, g.older_nonce, sizeof(g.older_nonce));
    struct request r = default_request();
    struct attest_verdict v;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);
    assert_memory_equal(v.properties.freshness, g.older_nonce, 32);

    /* The older nonce among several. */
    r.older[0] = g.random_nonce;
    r.older[1] = g.other_nonce + 1; /* another length */
    r.older_len[1] = 31;
    r.older[2] = g.older_nonce;
    r.older_len[2] = 32;
    r.older_count = 3;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);

    /* No nonce sent with this request (answer from the device's cache). */
    r = default_request();
    r.nonce = NULL;
    r.nonce_len = 0;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_CACHED, ATTEST_REASON_NONE, &v);

    /* The nonce of this request counts as fresh even when also listed as older. */
    fake_chain_free(&chain);
    issue_device(&chain, g.nonce, sizeof(g.nonce));
    r = default_request();
    r.older[1] = g.nonce;
    r.older_len[1] = 32;
    r.older_count = 2;
    expect_chain(&chain, &r, ATTEST_VERIFIED, ATTEST_FRESHNESS_FRESH, ATTEST_REASON_NONE, &v);
    fake_chain_free(&chain);
}

static void test_nonce_mismatch(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct request r = default_request();
    struct attest_verdict v;

    issue_device(&chain, g.random_nonce, sizeof(g.random_nonce));
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH,
                 &v);
    assert_true(v.leaf_parsed);
    assert_string_equal(v.properties.udid, dev_udid);
    fake_chain_free(&chain);

    /* A nonce this server sent another device (it is in that device's list, not this one's). */
    issue_device(&chain, g.other_nonce, sizeof(g.other_nonce));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);

    /* Only a prefix of this request's nonce, and the nonce plus one byte. */
    issue_device(&chain, g.nonce, 16);
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);
    uint8_t longer[33];
    memcpy(longer, g.nonce, 32);
    longer[32] = 0;
    issue_device(&chain, longer, sizeof(longer));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);

    /* No nonce known at all. */
    r.nonce = NULL;
    r.nonce_len = 0;
    r.older_count = 0;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH,
                 &v);
    fake_chain_free(&chain);

    /* Nonces differing only in the last bit. */
    uint8_t flipped[32];
    memcpy(flipped, g.nonce, 32);
    flipped[31] ^= 1;
    issue_device(&chain, flipped, sizeof(flipped));
    expect_default(&chain, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISMATCH);
    fake_chain_free(&chain);
}

static void test_nonce_missing(void **state)
{
    (void)state;
    struct fake_chain chain;
    struct attest_verdict v;
    struct request r = default_request();

    issue_device(&chain, NULL, 0); /* omitted */
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    assert_false(v.properties.has_freshness);
    assert_true(v.leaf_parsed);
    fake_chain_free(&chain);

    struct fake_leaf_spec spec;
    device_spec(&spec, g.nonce, sizeof(g.nonce));
    fake_leaf_spec_blank(&spec, FAKE_PROP_FRESHNESS);
    issue(g.pki, &spec, &chain);
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    assert_false(v.properties.has_freshness);
    /* Missing stays missing even when the server sent no nonce either. */
    r.nonce = NULL;
    r.nonce_len = 0;
    r.older_count = 0;
    expect_chain(&chain, &r, ATTEST_FAILED, ATTEST_FRESHNESS_UNKNOWN, ATTEST_REASON_NONCE_MISSING,
                 &v);
    fake_chain_free(&chain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_fresh), cmocka_unit_test(test_verified_cached),
        cmocka_unit_test(test_cached_bounds),  cmocka_unit_test(test_nonce_mismatch),
        cmocka_unit_test(test_nonce_missing),
    };
    return cmocka_run_group_tests(tests, attest_fixture_setup, attest_fixture_teardown);
}
