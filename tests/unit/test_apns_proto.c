/* Unit tests of apns/apns_proto.c: apns_url taken apart, statuses turned into outcomes, APNs'
 * error bodies read (and hostile ones ignored), the backoff's bounds, the push's body written as
 * the JSON writer writes it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "apns_proto.h"
#include "json.h"

static void test_target_names_and_ports(void **state)
{
    struct apns_target t;
    char err[256];
    assert_true(apns_target_parse("https://api.push.apple.com", &t, err, sizeof(err)));
    assert_string_equal(t.host, "api.push.apple.com");
    assert_string_equal(t.authority, "api.push.apple.com");
    assert_int_equal(t.port, 443);
    assert_false(t.host_is_ip);

    assert_true(
        apns_target_parse("https://api.sandbox.push.apple.com:2197/", &t, err, sizeof(err)));
    assert_string_equal(t.host, "api.sandbox.push.apple.com");
    assert_string_equal(t.authority, "api.sandbox.push.apple.com:2197");
    assert_int_equal(t.port, 2197);

    assert_true(apns_target_parse("HTTPS://127.0.0.1:8443", &t, err, sizeof(err)));
    assert_string_equal(t.host, "127.0.0.1");
    assert_true(t.host_is_ip);
    assert_int_equal(t.port, 8443);

    assert_true(apns_target_parse("https://[::1]:9000", &t, err, sizeof(err)));
    assert_string_equal(t.host, "::1");
    assert_string_equal(t.authority, "[::1]:9000");
    assert_true(t.host_is_ip);
    assert_int_equal(t.port, 9000);
}

static void test_target_refusals(void **state)
{
    static const char *const bad[] = {
        "http://api.push.apple.com",
        "https://",
        "https://:443",
        "https://host:0",
        "https://host:65536",
        "https://host:12a",
        "https://host/3/device",
        "https://user@host",
        "https://[::1",
        "https://[::1]x",
        "https://::1",
        "https://[not-ip]:1",
        "https://ho st",
        "api.push.apple.com",
        "https://host:",
    };
    struct apns_target t;
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (apns_target_parse(bad[i], &t, err, sizeof(err)))
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "apns_url"));
    }
    assert_false(apns_target_parse(NULL, &t, err, sizeof(err)));
}

static void test_outcomes(void **state)
{
    assert_int_equal(apns_outcome_of_status(200), APNS_DELIVERED);
    assert_int_equal(apns_outcome_of_status(410), APNS_UNREGISTERED);
    assert_int_equal(apns_outcome_of_status(403), APNS_FORBIDDEN);
    assert_int_equal(apns_outcome_of_status(400), APNS_REJECTED);
    assert_int_equal(apns_outcome_of_status(404), APNS_REJECTED);
    assert_int_equal(apns_outcome_of_status(413), APNS_REJECTED);
    assert_int_equal(apns_outcome_of_status(429), APNS_TRANSIENT);
    assert_int_equal(apns_outcome_of_status(500), APNS_TRANSIENT);
    assert_int_equal(apns_outcome_of_status(503), APNS_TRANSIENT);
    assert_int_equal(apns_outcome_of_status(0), APNS_TRANSIENT);
}

static void test_reply_body(void **state)
{
    struct apns_response r = {0};
    static const char unregistered[] = "{\"reason\":\"Unregistered\",\"timestamp\":1700000000123}";
    apns_reply_parse_body(unregistered, strlen(unregistered), &r);
    assert_string_equal(r.reason, "Unregistered");
    assert_int_equal(r.timestamp_ms, 1700000000123);

    /* Not JSON, wrong types, too deep, too long: r is left alone. */
    static const char *const junk[] = {
        "not json",
        "{\"reason\":5,\"timestamp\":\"x\"}",
        "[[[[[[[[[[1]]]]]]]]]]",
        "",
        "{\"reason\":\"a\"",
        "{\"timestamp\":-5}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        struct apns_response q = {.timestamp_ms = 7};
        snprintf(q.reason, sizeof(q.reason), "kept");
        apns_reply_parse_body(junk[i], strlen(junk[i]), &q);
        assert_string_equal(q.reason, "kept");
        assert_int_equal(q.timestamp_ms, 7);
    }

    /* A long reason is cut to the field; control characters do not reach logs. */
    char body[300];
    snprintf(body, sizeof(body), "{\"reason\":\"%s\\n%0100d\"}", "Bad", 0);
    struct apns_response q = {0};
    apns_reply_parse_body(body, strlen(body), &q);
    assert_int_equal(strlen(q.reason), sizeof(q.reason) - 1);
    assert_memory_equal(q.reason, "Bad?000", 7);

    char big[APNS_REPLY_BODY_MAX + 10];
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"reason\":\"X\"}", 14);
    struct apns_response b = {0};
    apns_reply_parse_body(big, sizeof(big), &b);
    assert_string_equal(b.reason, "");
}

/* apns_mdm_body() against lib/json.h's writer, which it stands in for on every push. */
static void check_body(const char *magic)
{
    char out[2048];
    size_t len = apns_mdm_body(magic, strlen(magic), out, sizeof(out));
    struct json_writer *w = json_writer_new(sizeof(out), 0);
    const char *text;
    size_t text_len;
    assert_non_null(w);
    bool ok = json_write_begin_object(w) && json_write_key(w, "mdm") &&
              json_write_string(w, magic) && json_write_end_object(w) &&
              json_writer_finish(w, &text, &text_len);
    if (!ok) {
        assert_int_equal(len, 0); /* not UTF-8: refused by both */
    } else {
        assert_int_equal(len, text_len);
        assert_memory_equal(out, text, len);
    }
    json_writer_free(w);
}

static void test_mdm_body(void **state)
{
    char one[4] = "a?b";
    for (int c = 1; c < 256; c++) {
        one[1] = (char)c;
        check_body(one);
    }
    check_body("");
    check_body("2A4F9C4E-6D1B-4C43-B3C9-8F1A2B3C4D5E");
    check_body("quote\" backslash\\ tab\t newline\n bell\a unit\x1f del\x7f slash/");
    check_body("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    check_body("\xc0\x80");         /* overlong */
    check_body("\xed\xa0\x80");     /* a surrogate */
    check_body("\xe2\x82");         /* cut short */
    check_body("\xf4\x90\x80\x80"); /* above U+10FFFF */
    char out[16];
    assert_int_equal(apns_mdm_body("abc", 3, out, 10), 0);  /* {"mdm":"abc"} is 13 */
    assert_int_equal(apns_mdm_body("abc", 3, out, 12), 0);
    assert_int_equal(apns_mdm_body("abc", 3, out, 13), 13);
    assert_memory_equal(out, "{\"mdm\":\"abc\"}", 13);
    assert_int_equal(apns_mdm_body("ab", 2, out, 12), 12);
    assert_int_equal(apns_mdm_body("a\"", 2, out, 12), 0); /* the escape does not fit */
}

static void test_backoff(void **state)
{
    /* [cap/2, cap], the cap doubling from base up to max. */
    assert_int_equal(apns_backoff_ms(1, 500, 30000, 0), 500);
    assert_int_equal(apns_backoff_ms(1, 500, 30000, 500), 1000);
    assert_int_equal(apns_backoff_ms(2, 500, 30000, 0), 1000);
    assert_int_equal(apns_backoff_ms(2, 500, 30000, 1000), 2000);
    assert_int_equal(apns_backoff_ms(0, 100, 30000, 0), 50);
    for (unsigned f = 0; f < 40; f++) {
        for (uint32_t r = 0; r < 4000000000u; r += 123456789u) {
            unsigned d = apns_backoff_ms(f, 500, 30000, r);
            assert_true(d >= 250 && d <= 30000);
            if (f >= 6)
                assert_true(d >= 15000);
        }
    }
    assert_int_equal(apns_backoff_ms(3, 0, 30000, 99), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_names_and_ports),
        cmocka_unit_test(test_target_refusals),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_reply_body),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_mdm_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
