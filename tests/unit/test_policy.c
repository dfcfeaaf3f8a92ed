/* Unit tests of server/trust/policy.c: the policy.* keys of the configuration and every error
 * with its line; the serial list files (written to a temporary directory); the comparison of
 * OS versions; and the decision, one test per reason, then reasons together, valid_until as
 * the earliest bound, and the policy options that change what counts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "tu_file.h"

#define NOW 1800000000
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

/* Parses items (line numbers as given) and expects success. */
static void parse_ok(const struct trust_policy_item *items, size_t count,
                     struct trust_policies *out)
{
    char err[256] = "";
    bool ok = trust_policies_parse(items, count, out, err, sizeof(err));
    if (!ok)
        fail_msg("parse failed: %s", err);
}

/* Parses items and expects failure with exactly want. */
static void parse_fails(const struct trust_policy_item *items, size_t count, const char *want)
{
    struct trust_policies out = {(struct trust_policy *)1, 99};
    char err[256] = "";
    assert_false(trust_policies_parse(items, count, &out, err, sizeof(err)));
    assert_string_equal(err, want);
    /* A failed parse leaves nothing to free. */
    assert_null(out.items);
    assert_int_equal(out.count, 0);
    trust_policies_clear(&out);
}

/* One item at line 7: the error that follows. */
static void one_item_fails(const char *key, const char *value, const char *why)
{
    struct trust_policy_item item = {key, value, 7};
    char want[256];
    snprintf(want, sizeof(want), "line 7: %s: %s", key, why);
    parse_fails(&item, 1, want);
}

static const struct trust_policy *find(const struct trust_policies *p, const char *name)
{
    return trust_policy_find(p, name, strlen(name));
}

/* A device that every policy of these tests admits. */
static struct trust_facts good_facts(void)
{
    return (struct trust_facts){
        .device_found = true,
        .by_certificate = true,
        .cert_current = true,
        .enrolled = true,
        .udid = "00008110-000A1B2C3D4E5F60",
        .serial_number = "F4GXK0ABCD12",
        .model = "MTUV3LL/A",
        .product_name = "iPhone16,1",
        .os_version = "17.4.1",
        .hardware_bound = true,
        .identity_revoked = false,
        .identity_not_after = NOW + 100000,
        .attestation_status = "verified",
        .freshness = "fresh",
        .verified_at = NOW - 100,
        .expires_at = NOW + 50000,
        .generated_at = NOW - 200,
        .now = NOW,
    };
}

static struct trust_policy plain_policy(void)
{
    struct trust_policy p;
    memset(&p, 0, sizeof(p));
    memcpy(p.name, "web", 4);
    p.require = TRUST_REQUIRE_VERIFIED;
    return p;
}

/* Expects exactly the reasons given (terminated by -1), in that order. */
static void expect_reasons(const struct trust_decision *d, ...)
{
    va_list ap;
    va_start(ap, d);
    size_t n = 0;
    for (int r = va_arg(ap, int); r != -1; r = va_arg(ap, int)) {
        if (n >= d->reason_count)
            fail_msg("missing reason %s (only %zu given)", trust_reason_name(r), d->reason_count);
        if (d->reasons[n] != (enum trust_reason)r)
            fail_msg("reason %zu: got %s, want %s", n, trust_reason_name(d->reasons[n]),
                     trust_reason_name(r));
        n++;
    }
    va_end(ap);
    if (n != d->reason_count)
        fail_msg("extra reason %s", trust_reason_name(d->reasons[n]));
    assert_int_equal(d->allow, n == 0);
    if (!d->allow)
        assert_int_equal(d->valid_until, 0);
}

static struct trust_decision judge(const struct trust_policy *p, const struct trust_facts *f)
{
    struct trust_decision d;
    memset(&d, 0xa5, sizeof(d));
    trust_evaluate(p, f, &d);
    return d;
}

/* One reason alone: the good device, changed by one thing. */
static void expect_only(const struct trust_policy *p, const struct trust_facts *f,
                        enum trust_reason r)
{
    struct trust_decision d = judge(p, f);
    expect_reasons(&d, (int)r, -1);
}

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

/* ---- serial lists ---- */

static char dir[64];

static int make_dir(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/test_policy.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    static const char *const names[] = {"deny.txt", "allow.txt", "bad.txt",  "long.txt",
                                        "many.txt", "big.txt",   "empty.txt"};
    for (size_t i = 0; i < COUNT(names); i++) {
        char path[128];
        if (tu_path_join(path, sizeof(path), dir, names[i]))
            unlink(path);
    }
    return rmdir(dir) == 0 ? 0 : -1;
}

/* Writes text to DIR/name; path receives the file's path. */
static void write_list(const char *name, const char *text, size_t len, char *path, size_t size)
{
    char err[256];
    assert_true(tu_path_join(path, size, dir, name));
    if (!tu_file_write_atomic(path, text, len, 0600, err, sizeof(err)))
        fail_msg("%s", err);
}

/* A policy "web" whose deny and allow lists are the files at the given paths (NULL: none). */
static void policies_with_lists(const char *deny, const char *allow, struct trust_policies *ps)
{
    struct trust_policy_item items[3] = {{"policy.web.require", "verified", 1}};
    size_t n = 1;
    if (deny != NULL)
        items[n++] = (struct trust_policy_item){"policy.web.deny_serials", deny, 2};
    if (allow != NULL)
        items[n++] = (struct trust_policy_item){"policy.web.allow_serials", allow, 3};
    parse_ok(items, n, ps);
}

static void load_fails(const char *deny, const char *want)
{
    struct trust_policies ps;
    policies_with_lists(deny, NULL, &ps);
    char err[512] = "";
    assert_false(trust_policies_load_lists(&ps, err, sizeof(err)));
    assert_string_equal(err, want);
    trust_policies_clear(&ps);
}

static void test_lists_load_sorted_upper_case(void **state)
{
    static const char deny_text[] = "# lost in March\n"
                                    "  f4gxk0abcd12 \r\n"
                                    "\n"
                                    "\t\n"
                                    "C02ABC\n"
                                    "   # indented comment\n"
                                    "b1"; /* no final newline */
    static const char allow_text[] = "DMPXY123\nF4GXK0ABCD12\nf4gxk0abcd12\n";
    char deny[128], allow[128];
    write_list("deny.txt", deny_text, strlen(deny_text), deny, sizeof(deny));
    write_list("allow.txt", allow_text, strlen(allow_text), allow, sizeof(allow));
    struct trust_policies ps;
    policies_with_lists(deny, allow, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->deny_count, 3);
    assert_string_equal(web->deny_serials[0], "B1");
    assert_string_equal(web->deny_serials[1], "C02ABC");
    assert_string_equal(web->deny_serials[2], "F4GXK0ABCD12");
    assert_int_equal(web->allow_count, 3);
    assert_string_equal(web->allow_serials[0], "DMPXY123");
    assert_string_equal(web->allow_serials[1], "F4GXK0ABCD12");
    assert_string_equal(web->allow_serials[2], "F4GXK0ABCD12");
    assert_int_equal(find(&ps, "default")->deny_count, 0);

    /* The decision looks them up in any case. */
    struct trust_facts f = good_facts();
    f.serial_number = "dmpxy123";
    struct trust_decision d = judge(web, &f);
    expect_reasons(&d, -1);
    f.serial_number = "zz9";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_NOT_ALLOWED, -1);
    f.serial_number = "c02abc";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_DENIED, TRUST_SERIAL_NOT_ALLOWED, -1);
    f.serial_number = "f4gXK0abcd12";
    d = judge(web, &f);
    expect_reasons(&d, TRUST_SERIAL_DENIED, -1);

    /* Loading again (a reload) replaces the lists. */
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    assert_int_equal(find(&ps, "web")->deny_count, 3);
    trust_policies_clear(&ps);
}

static void test_lists_empty_allow_admits_nobody(void **state)
{
    char allow[128];
    write_list("empty.txt", "# nobody yet\n\n", 14, allow, sizeof(allow));
    struct trust_policies ps;
    policies_with_lists(NULL, allow, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->allow_count, 0);
    struct trust_facts f = good_facts();
    expect_only(web, &f, TRUST_SERIAL_NOT_ALLOWED);
    trust_policies_clear(&ps);
}

static void test_lists_errors(void **state)
{
    char path[128], want[512];

    assert_true(tu_path_join(path, sizeof(path), dir, "absent.txt"));
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
    load_fails(path, want);

    snprintf(want, sizeof(want), "%s: cannot read: not a regular file", dir);
    load_fails(dir, want);

    static const char bad[] = "# ok\nABC123\nABC 123\n";
    write_list("bad.txt", bad, strlen(bad), path, sizeof(path));
    snprintf(want, sizeof(want),
             "%s line 3: not a serial number (letters, digits, '-', '_' or '.'; one a line)", path);
    load_fails(path, want);

    static const char nul[] = "ABC\n\nAB\0C\n";
    write_list("bad.txt", nul, sizeof(nul) - 1, path, sizeof(path));
    snprintf(want, sizeof(want),
             "%s line 3: not a serial number (letters, digits, '-', '_' or '.'; one a line)", path);
    load_fails(path, want);

    char long_line[80];
    memset(long_line, 'A', 65);
    long_line[65] = '\n';
    write_list("long.txt", long_line, 66, path, sizeof(path));
    snprintf(want, sizeof(want), "%s line 1: serial number longer than 64 characters", path);
    load_fails(path, want);
    write_list("long.txt", long_line + 1, 65, path, sizeof(path)); /* 64: fine */
    struct trust_policies ps;
    policies_with_lists(path, NULL, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    trust_policies_clear(&ps);
}

static void test_lists_bounds(void **state)
{
    /* TRUST_MAX_SERIALS serials, then one more. */
    size_t line_len = 8;
    size_t size = (TRUST_MAX_SERIALS + 2) * line_len + 16;
    char *text = malloc(size);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, size, "# many\n");
    for (int i = 0; i < TRUST_MAX_SERIALS; i++)
        len += (size_t)snprintf(text + len, size - len, "S%06d\n", i);
    char path[128];
    write_list("many.txt", text, len, path, sizeof(path));
    struct trust_policies ps;
    policies_with_lists(path, NULL, &ps);
    char err[256];
    assert_true(trust_policies_load_lists(&ps, err, sizeof(err)));
    const struct trust_policy *web = find(&ps, "web");
    assert_int_equal(web->deny_count, TRUST_MAX_SERIALS);
    struct trust_facts f = good_facts();
    f.serial_number = "s099999";
    expect_only(web, &f, TRUST_SERIAL_DENIED);
    f.serial_number = "S100000";
    struct trust_decision d = judge(web, &f);
    expect_reasons(&d, -1);
    trust_policies_clear(&ps);

    len += (size_t)snprintf(text + len, size - len, "\nS100000\n");
    write_list("many.txt", text, len, path, sizeof(path));
    char want[256];
    snprintf(want, sizeof(want), "%s line %d: more than %d serial numbers", path,
             TRUST_MAX_SERIALS + 3, TRUST_MAX_SERIALS);
    load_fails(path, want);
    free(text);

    /* A file over 8 MiB is refused before it is parsed (a sparse one will do). */
    assert_true(tu_path_join(path, sizeof(path), dir, "big.txt"));
    FILE *big = fopen(path, "w");
    assert_non_null(big);
    assert_int_equal(ftruncate(fileno(big), 8 * 1024 * 1024 + 1), 0);
    assert_int_equal(fclose(big), 0);
    snprintf(want, sizeof(want), "%s: larger than %u bytes", path, 8u * 1024 * 1024);
    load_fails(path, want);
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
    const struct CMUnitTest lists[] = {
        cmocka_unit_test(test_lists_load_sorted_upper_case),
        cmocka_unit_test(test_lists_empty_allow_admits_nobody),
        cmocka_unit_test(test_lists_errors),
        cmocka_unit_test(test_lists_bounds),
    };
    const struct CMUnitTest deciding[] = {
        cmocka_unit_test(test_allow_good_device),
        cmocka_unit_test(test_no_device),
        cmocka_unit_test(test_identity_superseded),
        cmocka_unit_test(test_identity_revoked),
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
    int failed = cmocka_run_group_tests_name("policy parsing", parsing, NULL, NULL);
    failed += cmocka_run_group_tests_name("policy lists", lists, make_dir, remove_dir);
    failed += cmocka_run_group_tests_name("policy decisions", deciding, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
