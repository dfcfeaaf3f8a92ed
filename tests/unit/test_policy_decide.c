/* Unit tests of server/trust/policy.c, the decision: one test per reason, then reasons together,
 * valid_until as the earliest bound, and the policy options that change what counts. The helpers
 * (the good device, the plain policy, judge() and expect_reasons()) are in policy_fixture.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "policy_fixture.h"

/* ---- the decision: one reason at a time ---- */

static void test_allow_good_device(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_true(d.allow);
    assert_int_equal(d.valid_until, NOW + 50000); /* the verdict's expiry */
}

static void test_no_device(void **state)
{
    struct trust_policy p = plain_policy();
    /* Nothing else is judged: a missing device has no posture. */
    struct trust_facts f = {.device_found = false, .now = NOW, .attestation_status = "failed"};
    expect_only(&p, &f, TRUST_NOT_ENROLLED);
    f.by_certificate = true;
    expect_only(&p, &f, TRUST_IDENTITY_UNKNOWN);
    p.require_hardware_bound_identity = true;
    p.allow_serials_path = "/x";
    memcpy(p.min_os_version[TRUST_IOS], "17", 3);
    expect_only(&p, &f, TRUST_IDENTITY_UNKNOWN);
}

static void test_identity_superseded(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.cert_current = false;
    expect_only(&p, &f, TRUST_IDENTITY_SUPERSEDED);
    /* A device named by UDID or serial speaks through its current identity. */
    f.by_certificate = false;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_identity_revoked(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.identity_revoked = true;
    expect_only(&p, &f, TRUST_IDENTITY_REVOKED);
}

/* A migrated device's identity counts only once proven, whatever the policy requires. */
static void test_identity_migrated_unproven(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.identity_provisional = true;
    expect_only(&p, &f, TRUST_IDENTITY_PROVISIONAL);
    p.require = TRUST_REQUIRE_ENROLLED;
    expect_only(&p, &f, TRUST_IDENTITY_PROVISIONAL);
    f = good_facts();
    f.identity_unproven = true;
    expect_only(&p, &f, TRUST_IDENTITY_UNPROVEN);
}

static void test_identity_expired(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.identity_not_after = NOW;
    expect_only(&p, &f, TRUST_IDENTITY_EXPIRED);
    f.identity_not_after = NOW - 1;
    expect_only(&p, &f, TRUST_IDENTITY_EXPIRED);
    f.identity_not_after = NOW + 1;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 1);
    f.identity_not_after = 0; /* unknown: no bound */
    d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 50000);
}

static void test_not_enrolled(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.enrolled = false;
    expect_only(&p, &f, TRUST_NOT_ENROLLED);
    p.require = TRUST_REQUIRE_ENROLLED;
    expect_only(&p, &f, TRUST_NOT_ENROLLED);
}

static void test_attestation_missing(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    const char *statuses[] = {NULL, "none", "", "pending", "VERIFIED"};
    for (size_t i = 0; i < COUNT(statuses); i++) {
        f.attestation_status = statuses[i];
        expect_only(&p, &f, TRUST_ATTESTATION_MISSING);
    }
}

static void test_attestation_failed(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.attestation_status = "failed";
    expect_only(&p, &f, TRUST_ATTESTATION_FAILED);
}

static void test_attestation_expired(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.attestation_status = "expired";
    expect_only(&p, &f, TRUST_ATTESTATION_EXPIRED);
}

/* The scheduler has not yet marked it expired: the decision does not wait for it. */
static void test_verified_past_expiry_is_expired(void **state)
{
    struct trust_policy p = plain_policy();
    p.require = TRUST_REQUIRE_FRESH;
    p.max_attestation_age = 60;
    struct trust_facts f = good_facts();
    f.freshness = "cached";
    f.expires_at = NOW;
    /* Expired alone: freshness and age are not judged on an expired verdict. */
    expect_only(&p, &f, TRUST_ATTESTATION_EXPIRED);
    f.expires_at = NOW - 1000;
    expect_only(&p, &f, TRUST_ATTESTATION_EXPIRED);
    /* No expiry known: it stands. */
    p = plain_policy();
    f = good_facts();
    f.expires_at = 0;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 100000); /* the certificate's notAfter */
}

static void test_attestation_unsupported(void **state)
{
    struct trust_policy p = plain_policy();
    struct trust_facts f = good_facts();
    f.attestation_status = "unsupported";
    f.freshness = NULL;
    f.expires_at = 0;
    f.generated_at = 0;
    expect_only(&p, &f, TRUST_ATTESTATION_UNSUPPORTED);

    /* Allowed: no freshness, no age to judge, no verdict to bound the answer. */
    p.allow_unsupported = true;
    p.require = TRUST_REQUIRE_FRESH;
    p.max_attestation_age = 3600;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 100000);

    /* allow_unsupported admits no failure. */
    f.attestation_status = "failed";
    expect_only(&p, &f, TRUST_ATTESTATION_FAILED);
}

static void test_attestation_not_fresh(void **state)
{
    struct trust_policy p = plain_policy();
    p.require = TRUST_REQUIRE_FRESH;
    struct trust_facts f = good_facts();
    const char *stale[] = {"cached", "unknown", NULL, ""};
    for (size_t i = 0; i < COUNT(stale); i++) {
        f.freshness = stale[i];
        expect_only(&p, &f, TRUST_ATTESTATION_NOT_FRESH);
    }
    /* require = verified takes a cached answer. */
    p.require = TRUST_REQUIRE_VERIFIED;
    f.freshness = "cached";
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_attestation_too_old(void **state)
{
    struct trust_policy p = plain_policy();
    p.max_attestation_age = 3600;
    struct trust_facts f = good_facts();
    f.generated_at = NOW - 3600;
    expect_only(&p, &f, TRUST_ATTESTATION_TOO_OLD);
    f.generated_at = 0; /* unknown: too old for a policy that asks */
    expect_only(&p, &f, TRUST_ATTESTATION_TOO_OLD);
    f.generated_at = NOW - 3599;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 1);
    /* A generation time too large to add to: no overflow, not too old. */
    f.generated_at = INT64_MAX - 10;
    d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 50000);
    /* No maximum: any age will do. */
    p.max_attestation_age = 0;
    f.generated_at = 0;
    d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_os_too_old(void **state)
{
    struct trust_policy p = plain_policy();
    memcpy(p.min_os_version[TRUST_IOS], "17.5", 5);
    struct trust_facts f = good_facts(); /* iPhone, 17.4.1 */
    expect_only(&p, &f, TRUST_OS_TOO_OLD);
    f.os_version = "17.5";
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    memcpy(p.min_os_version[TRUST_IOS], "17.9", 5);
    f.os_version = "17.10";
    d = judge(&p, &f);
    expect_reasons(&d, -1);

    /* Each platform its own minimum. */
    p = plain_policy();
    memcpy(p.min_os_version[TRUST_IPADOS], "18", 3);
    memcpy(p.min_os_version[TRUST_TVOS], "17.2", 5);
    f = good_facts();
    d = judge(&p, &f); /* an iPhone: no iOS minimum */
    expect_reasons(&d, -1);
    f.product_name = "iPad13,4";
    f.os_version = "17.9";
    expect_only(&p, &f, TRUST_OS_TOO_OLD);
    f.product_name = "AppleTV11,1";
    f.os_version = "17.1.9";
    expect_only(&p, &f, TRUST_OS_TOO_OLD);
    f.os_version = "17.2.0";
    d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_os_unknown(void **state)
{
    struct trust_policy p = plain_policy();
    memcpy(p.min_os_version[TRUST_IOS], "17", 3);
    struct trust_facts f = good_facts();
    const char *bad[] = {NULL, "", "seventeen", "17.", "17.4 (21E236)"};
    for (size_t i = 0; i < COUNT(bad); i++) {
        f.os_version = bad[i];
        expect_only(&p, &f, TRUST_OS_UNKNOWN);
    }
    /* A minimum applies, but the platform is unknown. */
    f = good_facts();
    const char *products[] = {NULL, "Mac14,2", "Watch6,1"};
    for (size_t i = 0; i < COUNT(products); i++) {
        f.product_name = products[i];
        expect_only(&p, &f, TRUST_OS_UNKNOWN);
    }
    /* No minimum at all: nothing to know. */
    p = plain_policy();
    f.product_name = NULL;
    f.os_version = NULL;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_not_hardware_bound(void **state)
{
    struct trust_policy p = plain_policy();
    p.require_hardware_bound_identity = true;
    struct trust_facts f = good_facts();
    f.hardware_bound = false;
    expect_only(&p, &f, TRUST_NOT_HARDWARE_BOUND);
    p.require_hardware_bound_identity = false;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
}

static void test_serial_lists(void **state)
{
    char *deny[] = {"C02ABC", "F4GXK0ABCD12"};
    char *allow[] = {"B1", "F4GXK0ABCD12"};
    struct trust_policy p = plain_policy();
    p.deny_serials_path = "/deny";
    p.deny_serials = deny;
    p.deny_count = COUNT(deny);
    struct trust_facts f = good_facts();
    expect_only(&p, &f, TRUST_SERIAL_DENIED);
    f.serial_number = "f4gxk0abcd12";
    expect_only(&p, &f, TRUST_SERIAL_DENIED);
    f.serial_number = NULL; /* nothing to deny */
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    f.serial_number = "C02ABD";
    d = judge(&p, &f);
    expect_reasons(&d, -1);

    p = plain_policy();
    p.allow_serials_path = "/allow";
    p.allow_serials = allow;
    p.allow_count = COUNT(allow);
    f = good_facts();
    d = judge(&p, &f);
    expect_reasons(&d, -1);
    f.serial_number = "b1";
    d = judge(&p, &f);
    expect_reasons(&d, -1);
    f.serial_number = "C02ABC";
    expect_only(&p, &f, TRUST_SERIAL_NOT_ALLOWED);
    f.serial_number = NULL;
    expect_only(&p, &f, TRUST_SERIAL_NOT_ALLOWED);
    f.serial_number = "";
    expect_only(&p, &f, TRUST_SERIAL_NOT_ALLOWED);

    /* Both lists, and the serial fails both: both reasons are given. */
    p.deny_serials_path = "/deny";
    p.deny_serials = deny;
    p.deny_count = COUNT(deny);
    f.serial_number = "C02ABC";
    d = judge(&p, &f);
    expect_reasons(&d, TRUST_SERIAL_DENIED, TRUST_SERIAL_NOT_ALLOWED, -1);
}

/* ---- the decision: together ---- */

static void test_reasons_in_order(void **state)
{
    char *deny[] = {"F4GXK0ABCD12"};
    char *allow[] = {"OTHER"};
    struct trust_policy p = plain_policy();
    p.require = TRUST_REQUIRE_FRESH;
    p.max_attestation_age = 60;
    memcpy(p.min_os_version[TRUST_IOS], "18", 3);
    p.require_hardware_bound_identity = true;
    p.deny_serials_path = "/deny";
    p.deny_serials = deny;
    p.deny_count = 1;
    p.allow_serials_path = "/allow";
    p.allow_serials = allow;
    p.allow_count = 1;
    struct trust_facts f = good_facts();
    f.cert_current = false;
    f.identity_revoked = true;
    f.identity_not_after = NOW - 5;
    f.enrolled = false;
    f.freshness = "cached";
    f.generated_at = NOW - 61;
    f.hardware_bound = false;
    struct trust_decision d = judge(&p, &f);
    /* Enum order: not_enrolled comes first, though found after the identity ones. */
    expect_reasons(&d, TRUST_NOT_ENROLLED, TRUST_IDENTITY_SUPERSEDED, TRUST_IDENTITY_REVOKED,
                   TRUST_IDENTITY_EXPIRED, TRUST_ATTESTATION_NOT_FRESH, TRUST_ATTESTATION_TOO_OLD,
                   TRUST_OS_TOO_OLD, TRUST_NOT_HARDWARE_BOUND, TRUST_SERIAL_DENIED,
                   TRUST_SERIAL_NOT_ALLOWED, -1);

    /* The other attestation reasons, beside the OS ones. */
    f = good_facts();
    f.attestation_status = "failed";
    f.os_version = NULL;
    d = judge(&p, &f);
    expect_reasons(&d, TRUST_ATTESTATION_FAILED, TRUST_OS_UNKNOWN, TRUST_SERIAL_DENIED,
                   TRUST_SERIAL_NOT_ALLOWED, -1);

    f = good_facts();
    f.by_certificate = false;
    f.attestation_status = NULL;
    f.enrolled = false;
    f.product_name = "Mac14,2";
    f.serial_number = "OTHER";
    p.require_hardware_bound_identity = false;
    d = judge(&p, &f);
    expect_reasons(&d, TRUST_NOT_ENROLLED, TRUST_ATTESTATION_MISSING, TRUST_OS_UNKNOWN, -1);
}

static void test_require_enrolled_ignores_attestation(void **state)
{
    struct trust_policy p = plain_policy();
    p.require = TRUST_REQUIRE_ENROLLED;
    p.max_attestation_age = 60; /* about the attestation: does not apply either */
    struct trust_facts f = good_facts();
    const char *statuses[] = {NULL, "none", "failed", "expired", "unsupported", "verified"};
    for (size_t i = 0; i < COUNT(statuses); i++) {
        f.attestation_status = statuses[i];
        f.freshness = "cached";
        f.generated_at = 0;
        f.expires_at = NOW - 1;
        struct trust_decision d = judge(&p, &f);
        expect_reasons(&d, -1);
        assert_int_equal(d.valid_until, NOW + 100000); /* only the certificate bounds it */
    }
    /* Everything else still counts. */
    f.identity_revoked = true;
    memcpy(p.min_os_version[TRUST_IOS], "18", 3);
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, TRUST_IDENTITY_REVOKED, TRUST_OS_TOO_OLD, -1);
}

static void test_valid_until_earliest(void **state)
{
    struct trust_policy p = plain_policy();
    p.max_attestation_age = 1000;
    struct trust_facts f = good_facts();
    /* The verdict's expiry first. */
    f.expires_at = NOW + 10;
    f.generated_at = NOW - 100; /* too old at NOW + 900 */
    f.identity_not_after = NOW + 5000;
    struct trust_decision d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW + 10);
    /* The policy's age. */
    f.expires_at = NOW + 2000;
    d = judge(&p, &f);
    assert_int_equal(d.valid_until, NOW + 900);
    /* The certificate. */
    f.identity_not_after = NOW + 50;
    d = judge(&p, &f);
    assert_int_equal(d.valid_until, NOW + 50);
    /* None of them: not by time. */
    p.max_attestation_age = 0;
    f.expires_at = 0;
    f.identity_not_after = 0;
    d = judge(&p, &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, 0);
    /* A deny has none, whatever the bounds. */
    f = good_facts();
    f.attestation_status = "failed";
    d = judge(&p, &f);
    assert_false(d.allow);
    assert_int_equal(d.valid_until, 0);
}

/* Parsed policies decide like hand-made ones. */
static void test_parsed_policy_decides(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.require", "verified, fresh", 1},
        {"policy.web.max_attestation_age", "1h", 2},
        {"policy.web.min_os_version.IOS", "17.4", 3},
        {"policy.web.require_hardware_bound_identity", "true", 4},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    struct trust_facts f = good_facts();
    struct trust_decision d = judge(find(&ps, "web"), &f);
    expect_reasons(&d, -1);
    assert_int_equal(d.valid_until, NOW - 200 + 3600);
    f.os_version = "17.3.1";
    f.freshness = "cached";
    d = judge(find(&ps, "web"), &f);
    expect_reasons(&d, TRUST_ATTESTATION_NOT_FRESH, TRUST_OS_TOO_OLD, -1);
    /* The default policy: verified, nothing else. */
    d = judge(find(&ps, "default"), &f);
    expect_reasons(&d, -1);
    f.attestation_status = "none";
    d = judge(find(&ps, "default"), &f);
    expect_reasons(&d, TRUST_ATTESTATION_MISSING, -1);
    trust_policies_clear(&ps);
}
int main(void)
{
    const struct CMUnitTest deciding[] = {
        cmocka_unit_test(test_allow_good_device),
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_identity_superseded),
        cmocka_unit_test(test_identity_revoked),
        cmocka_unit_test(test_identity_migrated_unproven),
        cmocka_unit_test(test_identity_expired),
        cmocka_unit_test(test_not_enrolled),
        cmocka_unit_test(test_attestation_missing),
        cmocka_unit_test(test_attestation_failed),
        cmocka_unit_test(test_attestation_expired),
        cmocka_unit_test(test_verified_past_expiry_is_expired),
        cmocka_unit_test(test_attestation_unsupported),
        cmocka_unit_test(test_attestation_not_fresh),
        cmocka_unit_test(test_attestation_too_old),
        cmocka_unit_test(test_os_too_old),
        cmocka_unit_test(test_os_unknown),
        cmocka_unit_test(test_not_hardware_bound),
        cmocka_unit_test(test_serial_lists),
        cmocka_unit_test(test_reasons_in_order),
        cmocka_unit_test(test_require_enrolled_ignores_attestation),
        cmocka_unit_test(test_valid_until_earliest),
        cmocka_unit_test(test_parsed_policy_decides),
    };
    int failed = cmocka_run_group_tests_name("policy decisions", deciding, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
