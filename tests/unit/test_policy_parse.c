/* Unit tests of server/trust/policy.c, parsing: the policy.* keys of the configuration and every
 * error with its line; the comparison of OS versions, the names of reasons and platforms, and
 * the platform of a product name. The serial list files are in test_policy_lists.c, the
 * decision in test_policy_decide.c; the helpers in policy_fixture.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy_fixture.h"

/* ---- parsing ---- */

static void test_parse_nothing_gives_default(void **state)
{
    struct trust_policies ps;
    parse_ok(NULL, 0, &ps);
    assert_int_equal(ps.count, 1);
    const struct trust_policy *d = find(&ps, "default");
    assert_non_null(d);
    assert_int_equal(d->require, TRUST_REQUIRE_VERIFIED);
    assert_int_equal(d->max_attestation_age, 0);
    for (int i = 0; i < TRUST_PLATFORM_COUNT; i++)
        assert_string_equal(d->min_os_version[i], "");
    assert_false(d->require_hardware_bound_identity);
    assert_false(d->allow_unsupported);
    assert_null(d->deny_serials_path);
    assert_null(d->allow_serials_path);
    assert_null(d->deny_serials);
    assert_null(d->allow_serials);
    trust_policies_clear(&ps);
    assert_null(ps.items);
    assert_int_equal(ps.count, 0);
    trust_policies_clear(&ps); /* twice is harmless */
}

static void test_parse_every_key(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.require", "verified fresh", 1},
        {"policy.web.max_attestation_age", "14d", 2},
        {"policy.web.min_os_version.ios", "17.4", 3},
        {"policy.web.min_os_version.ipados", "17.4.1", 4},
        {"policy.web.min_os_version.tvos", "18", 5},
        {"policy.web.require_hardware_bound_identity", "true", 6},
        {"policy.web.allow_unsupported", "true", 7},
        {"policy.web.deny_serials", "/etc/vouch/lost.txt", 8},
        {"policy.web.allow_serials", "/etc/vouch/fleet.txt", 9},
        {"policy.vpn-2_B.require", "enrolled", 10},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    assert_int_equal(ps.count, 3);
    const struct trust_policy *web = find(&ps, "web");
    assert_non_null(web);
    assert_string_equal(web->name, "web");
    assert_int_equal(web->require, TRUST_REQUIRE_FRESH);
    assert_int_equal(web->max_attestation_age, 14 * 86400);
    assert_string_equal(web->min_os_version[TRUST_IOS], "17.4");
    assert_string_equal(web->min_os_version[TRUST_IPADOS], "17.4.1");
    assert_string_equal(web->min_os_version[TRUST_TVOS], "18");
    assert_true(web->require_hardware_bound_identity);
    assert_true(web->allow_unsupported);
    assert_string_equal(web->deny_serials_path, "/etc/vouch/lost.txt");
    assert_string_equal(web->allow_serials_path, "/etc/vouch/fleet.txt");
    assert_null(web->deny_serials); /* read only by trust_policies_load_lists() */
    assert_int_equal(web->deny_count, 0);

    const struct trust_policy *vpn = find(&ps, "vpn-2_B");
    assert_non_null(vpn);
    assert_int_equal(vpn->require, TRUST_REQUIRE_ENROLLED);
    assert_int_equal(vpn->max_attestation_age, 0);
    assert_false(vpn->allow_unsupported);

    const struct trust_policy *def = find(&ps, "default");
    assert_non_null(def);
    assert_int_equal(def->require, TRUST_REQUIRE_VERIFIED);
    trust_policies_clear(&ps);
}

static void test_parse_require_values(void **state)
{
    static const struct {
        const char *value;
        enum trust_requirement want;
    } cases[] = {
        {"verified", TRUST_REQUIRE_VERIFIED},       {"verified fresh", TRUST_REQUIRE_FRESH},
        {"verified, fresh", TRUST_REQUIRE_FRESH},   {"verified,fresh", TRUST_REQUIRE_FRESH},
        {"verified \t fresh", TRUST_REQUIRE_FRESH}, {"enrolled", TRUST_REQUIRE_ENROLLED},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        struct trust_policy_item item = {"policy.web.require", cases[i].value, 1};
        struct trust_policies ps;
        parse_ok(&item, 1, &ps);
        assert_int_equal(find(&ps, "web")->require, cases[i].want);
        trust_policies_clear(&ps);
    }
    const char *bad[] = {"",         "fresh",          "verified fresh fresh", "enrolled fresh",
                         "Verified", "verified stale", "fresh verified",       "verifiedfresh"};
    for (size_t i = 0; i < COUNT(bad); i++)
        one_item_fails("policy.web.require", bad[i],
                       "expected verified, verified fresh or enrolled");
}

static void test_parse_durations(void **state)
{
    static const struct {
        const char *value;
        unsigned want;
    } cases[] = {{"90", 90}, {"90s", 90}, {"15m", 900}, {"24h", 86400}, {"7d", 604800}, {"0", 0}};
    for (size_t i = 0; i < COUNT(cases); i++) {
        struct trust_policy_item item = {"policy.web.max_attestation_age", cases[i].value, 1};
        struct trust_policies ps;
        parse_ok(&item, 1, &ps);
        assert_int_equal(find(&ps, "web")->max_attestation_age, cases[i].want);
        trust_policies_clear(&ps);
    }
    const char *bad[] = {"", "10x", "-5", "d", "1.5h", "4294967296", "99999999999d"};
    for (size_t i = 0; i < COUNT(bad); i++)
        one_item_fails("policy.web.max_attestation_age", bad[i],
                       "expected a duration such as 90s, 15m, 24h or 7d");
}

static void test_parse_platforms_case_insensitive(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.min_os_version.IOS", "16", 1},
        {"policy.web.min_os_version.iPadOS", "17.1", 2},
        {"policy.web.min_os_version.TvOs", "17.2", 3},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    const struct trust_policy *web = find(&ps, "web");
    assert_string_equal(web->min_os_version[TRUST_IOS], "16");
    assert_string_equal(web->min_os_version[TRUST_IPADOS], "17.1");
    assert_string_equal(web->min_os_version[TRUST_TVOS], "17.2");
    trust_policies_clear(&ps);
}

static void test_parse_last_wins(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.require", "enrolled", 1},       {"policy.web.deny_serials", "/a", 2},
        {"policy.web.min_os_version.ios", "16", 3},  {"policy.web.require", "verified fresh", 4},
        {"policy.web.deny_serials", "/b", 5},        {"policy.web.min_os_version.IOS", "17.4", 6},
        {"policy.web.allow_unsupported", "true", 7}, {"policy.web.allow_unsupported", "false", 8},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->require, TRUST_REQUIRE_FRESH);
    assert_string_equal(web->deny_serials_path, "/b");
    assert_string_equal(web->min_os_version[TRUST_IOS], "17.4");
    assert_false(web->allow_unsupported);
    trust_policies_clear(&ps);
}

static void test_parse_default_configured(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.require", "verified", 1},
        {"policy.default.require", "enrolled", 2},
        {"policy.default.require_hardware_bound_identity", "true", 3},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    assert_int_equal(ps.count, 2);
    const struct trust_policy *def = find(&ps, "default");
    assert_int_equal(def->require, TRUST_REQUIRE_ENROLLED);
    assert_true(def->require_hardware_bound_identity);
    trust_policies_clear(&ps);
}

static void test_parse_find(void **state)
{
    const struct trust_policy_item items[] = {{"policy.web.require", "verified", 1},
                                              {"policy.webapp.require", "enrolled", 2}};
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    assert_string_equal(trust_policy_find(&ps, "webx", 3)->name, "web");
    assert_string_equal(trust_policy_find(&ps, "webapp/nginx", 6)->name, "webapp");
    assert_null(trust_policy_find(&ps, "we", 2));
    assert_null(trust_policy_find(&ps, "WEB", 3));
    assert_null(trust_policy_find(&ps, "", 0));
    trust_policies_clear(&ps);
}

static void test_parse_errors(void **state)
{
    one_item_fails("policy.web.xyz", "1", "unknown key");
    one_item_fails("policy.web.", "1", "unknown key");
    one_item_fails("policy.web.require.ios", "verified", "unknown key");
    one_item_fails("policy.web.Require", "verified", "unknown key");
    one_item_fails("policy.web.min_os_version", "17", "unknown key");
    one_item_fails("policy.web.min_os_version.macos", "14",
                   "unknown platform (expected ios, ipados or tvos)");
    one_item_fails("policy.web.min_os_version.", "14",
                   "unknown platform (expected ios, ipados or tvos)");
    const char *bad_versions[] = {"",     "a",      "17.",  ".17",          "17..4",
                                  "17.x", "17.4 ",  "-17",  "1234567890.1", "1.2.3.4.5.6.7.8.9",
                                  "v17",  "17,4.1", "17.4b"};
    for (size_t i = 0; i < COUNT(bad_versions); i++)
        one_item_fails("policy.web.min_os_version.ios", bad_versions[i],
                       "expected a version such as 17.4");
    const char *bad_bools[] = {"", "yes", "1", "True", "FALSE", "on"};
    for (size_t i = 0; i < COUNT(bad_bools); i++) {
        one_item_fails("policy.web.allow_unsupported", bad_bools[i], "expected true or false");
        one_item_fails("policy.web.require_hardware_bound_identity", bad_bools[i],
                       "expected true or false");
    }
    one_item_fails("policy.web.deny_serials", "", "expected a file name");
    one_item_fails("policy.web.allow_serials", "", "expected a file name");

    const char *name_why = "expected policy.NAME.KEY, NAME of 1 to 32 letters, digits, '-' or '_'";
    one_item_fails("policy..require", "verified", name_why);
    one_item_fails("policy.web", "verified", name_why);
    one_item_fails("policy.we b.require", "verified", name_why);
    const struct trust_policy_item accented = {"policy.w\xc3\xa9"
                                               "b.require",
                                               "verified", 7};
    char want[256];
    snprintf(want, sizeof(want), "line 7: policy.w??b.require: %s", name_why);
    parse_fails(&accented, 1, want);
    one_item_fails("policy.a23456789012345678901234567890123.require", "verified", name_why);
    one_item_fails("web.require", "verified", "not a policy key");
    one_item_fails("policy", "verified", "not a policy key");
}

static void test_parse_error_names_line_and_stops(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.web.require", "verified", 3},
        {"policy.web.max_attestation_age", "12h", 12},
        {"policy.web.xyz", "1", 40},
        {"policy.web.require", "nonsense", 41},
    };
    parse_fails(items, COUNT(items), "line 40: policy.web.xyz: unknown key");
    /* Unprintable bytes of a key are not copied into the message. */
    const struct trust_policy_item odd = {"policy.web.\x1b[31m", "1", 2};
    parse_fails(&odd, 1, "line 2: policy.web.?[31m: unknown key");
}

static void test_parse_name_lengths(void **state)
{
    const struct trust_policy_item items[] = {
        {"policy.a2345678901234567890123456789012.require", "enrolled", 1},
        {"policy.x.require", "enrolled", 2},
    };
    struct trust_policies ps;
    parse_ok(items, COUNT(items), &ps);
    assert_non_null(find(&ps, "a2345678901234567890123456789012"));
    assert_non_null(find(&ps, "x"));
    trust_policies_clear(&ps);
}

/* 32 policies at most, the default included whether it is configured or not. */
static void test_parse_too_many_policies(void **state)
{
    struct trust_policy_item items[TRUST_MAX_POLICIES + 1];
    char keys[TRUST_MAX_POLICIES + 1][64];
    for (int i = 0; i < TRUST_MAX_POLICIES + 1; i++) {
        snprintf(keys[i], sizeof(keys[i]), "policy.p%d.require", i);
        items[i] = (struct trust_policy_item){keys[i], "enrolled", (unsigned)(100 + i)};
    }
    /* 31 others and the default: full. */
    struct trust_policies ps;
    parse_ok(items, TRUST_MAX_POLICIES - 1, &ps);
    assert_int_equal(ps.count, TRUST_MAX_POLICIES);
    assert_non_null(find(&ps, "default"));
    trust_policies_clear(&ps);
    /* One more. */
    char want[256];
    snprintf(want, sizeof(want), "line %d: %s: too many policies (at most 32, default included)",
             100 + TRUST_MAX_POLICIES - 1, keys[TRUST_MAX_POLICIES - 1]);
    parse_fails(items, TRUST_MAX_POLICIES, want);

    /* The default configured last: it had its place all along. */
    items[TRUST_MAX_POLICIES - 1] =
        (struct trust_policy_item){"policy.default.require", "enrolled", 500};
    parse_ok(items, TRUST_MAX_POLICIES, &ps);
    assert_int_equal(ps.count, TRUST_MAX_POLICIES);
    assert_int_equal(find(&ps, "default")->require, TRUST_REQUIRE_ENROLLED);
    trust_policies_clear(&ps);

    /* Lines for policies that exist already are no new policy. */
    items[TRUST_MAX_POLICIES] =
        (struct trust_policy_item){"policy.p3.allow_unsupported", "true", 9};
    parse_ok(items, TRUST_MAX_POLICIES + 1, &ps);
    assert_int_equal(ps.count, TRUST_MAX_POLICIES);
    assert_true(find(&ps, "p3")->allow_unsupported);
    trust_policies_clear(&ps);
}
/* ---- versions and names ---- */

static void test_version_compare(void **state)
{
    static const struct {
        const char *a, *b;
        int want;
    } cases[] = {
        {"17.10", "17.9", 1},
        {"17.9", "17.10", -1},
        {"17.4", "17.4.0", 0},
        {"17.4.0.0", "17.4", 0},
        {"17", "17.0.0", 0},
        {"9", "10", -1},
        {"10", "9", 1},
        {"17.4.1", "17.4", 1},
        {"17.4", "17.4.1", -1},
        {"16.7.10", "17", -1},
        {"018", "18", 0},
        {"17.04", "17.4", 0},
        {"999999999", "1000000000.0", 1}, /* the right one is invalid: 10 digits */
        {"0", "0.0.0", 0},
        /* Invalid sorts below every valid version, and equal to another invalid one. */
        {"", "0", -1},
        {"0", "", 1},
        {"abc", "0", -1},
        {"17.", "1", -1},
        {".17", "1", -1},
        {"17..4", "1", -1},
        {"17.4b", "1", -1},
        {"1", "17.4 ", 1},
        {"1234567890", "0", -1},
        {"abc", "", 0},
        {"17.", "x", 0},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        int got = trust_version_compare(cases[i].a, cases[i].b);
        if (got != cases[i].want)
            fail_msg("compare(\"%s\", \"%s\") = %d, want %d", cases[i].a, cases[i].b, got,
                     cases[i].want);
    }
    assert_int_equal(trust_version_compare(NULL, "1"), -1);
    assert_int_equal(trust_version_compare("1", NULL), 1);
    assert_int_equal(trust_version_compare(NULL, NULL), 0);
}

static void test_names(void **state)
{
    static const char *const want[TRUST_REASON_COUNT] = {
        "not_enrolled",
        "identity_unknown",
        "identity_superseded",
        "identity_revoked",
        "identity_expired",
        "identity_provisional",
        "identity_unproven",
        "attestation_missing",
        "attestation_failed",
        "attestation_expired",
        "attestation_unsupported",
        "attestation_not_fresh",
        "attestation_too_old",
        "os_too_old",
        "os_unknown",
        "not_hardware_bound",
        "serial_denied",
        "serial_not_allowed",
    };
    for (int r = 0; r < TRUST_REASON_COUNT; r++)
        assert_string_equal(trust_reason_name((enum trust_reason)r), want[r]);
    assert_string_equal(trust_reason_name(TRUST_REASON_COUNT), "unknown");
    assert_string_equal(trust_platform_name(TRUST_IOS), "iOS");
    assert_string_equal(trust_platform_name(TRUST_IPADOS), "iPadOS");
    assert_string_equal(trust_platform_name(TRUST_TVOS), "tvOS");
    assert_string_equal(trust_platform_name(TRUST_PLATFORM_COUNT), "unknown");
}

static void test_platform_of(void **state)
{
    static const struct {
        const char *product;
        bool known;
        enum trust_platform want;
    } cases[] = {
        {"iPhone16,1", true, TRUST_IOS},
        {"iPhone", true, TRUST_IOS},
        {"iPod9,1", true, TRUST_IOS},
        {"iPad13,4", true, TRUST_IPADOS},
        {"AppleTV11,1", true, TRUST_TVOS},
        {"Mac14,2", false, TRUST_IOS},
        {"Watch6,1", false, TRUST_IOS},
        {"iphone16,1", false, TRUST_IOS},
        {"", false, TRUST_IOS},
        {"RealityDevice14,1", false, TRUST_IOS},
        {"VirtualMac2,1", false, TRUST_IOS},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        enum trust_platform p = TRUST_PLATFORM_COUNT;
        assert_int_equal(trust_platform_of(cases[i].product, &p), cases[i].known);
        if (cases[i].known)
            assert_int_equal(p, cases[i].want);
    }
    enum trust_platform p;
    assert_false(trust_platform_of(NULL, &p));
}

int main(void)
{
    const struct CMUnitTest parsing[] = {
        cmocka_unit_test(test_parse_nothing_gives_default),
        cmocka_unit_test(test_parse_every_key),
        cmocka_unit_test(test_parse_require_values),
        cmocka_unit_test(test_parse_durations),
        cmocka_unit_test(test_parse_platforms_case_insensitive),
        cmocka_unit_test(test_parse_last_wins),
        cmocka_unit_test(test_parse_default_configured),
        cmocka_unit_test(test_parse_find),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_error_names_line_and_stops),
        cmocka_unit_test(test_parse_name_lengths),
        cmocka_unit_test(test_parse_too_many_policies),
        cmocka_unit_test(test_version_compare),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_platform_of),
    };
    int failed = cmocka_run_group_tests_name("policy parsing", parsing, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
