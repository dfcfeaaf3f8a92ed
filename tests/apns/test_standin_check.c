/* Unit tests of the stand-in APNs server's pure parts: standin_check.c (the request checks and
 * the payload parser) and standin_script.c (the scripted answers). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "standin_check.h"
#include "standin_script.h"

#define TOPIC "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555"
#define TOKEN64 "abababababababababababababababababababababababababababababababab"
#define NOW 1700000000LL

static struct standin_verdict verdict;

/* A request that passes every check; tests spoil one part at a time. */
static struct standin_request good_request(void)
{
    static const char body[] = "{\"mdm\":\"magic\"}";
    struct standin_request r = {0};
    r.method = "POST";
    r.path = "/3/device/" TOKEN64;
    r.headers[STANDIN_HDR_TOPIC] = TOPIC;
    r.headers[STANDIN_HDR_PUSH_TYPE] = "mdm";
    r.headers[STANDIN_HDR_EXPIRATION] = "1999999999";
    r.headers[STANDIN_HDR_PRIORITY] = "10";
    r.body = body;
    r.body_len = r.body_total = sizeof(body) - 1;
    r.now = NOW;
    r.topic = TOPIC;
    return r;
}

static void expect(const struct standin_request *r, int status, const char *reason)
{
    standin_check_request(r, &verdict);
    assert_int_equal(verdict.status, status);
    if (reason == NULL)
        assert_null(verdict.reason);
    else
        assert_string_equal(verdict.reason, reason);
}

static void test_good_request(void **state)
{
    struct standin_request r = good_request();
    expect(&r, 200, NULL);
    assert_string_equal(verdict.token, TOKEN64);
    assert_string_equal(verdict.push_magic, "magic");
    assert_int_equal(verdict.expiration, 1999999999);
    assert_int_equal(verdict.priority, 10);
    r.headers[STANDIN_HDR_PRIORITY] = "5";
    r.path = "/3/device/ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";
    expect(&r, 200, NULL);
    assert_string_equal(verdict.token, TOKEN64); /* lowercased */
}

static void test_path_and_token(void **state)
{
    struct standin_request r = good_request();
    r.method = "GET";
    expect(&r, 405, "MethodNotAllowed");
    r = good_request();
    r.path = "/3/devices/" TOKEN64;
    expect(&r, 404, "BadPath");
    r.path = "/3/device/";
    expect(&r, 400, "MissingDeviceToken");
    r.path = "/3/device/abab";
    expect(&r, 400, "BadDeviceToken");
    r.path = "/3/device/" TOKEN64 "a"; /* odd */
    expect(&r, 400, "BadDeviceToken");
    r.path = "/3/device/" TOKEN64 "?x=1";
    expect(&r, 400, "BadDeviceToken");
    char path[512];
    snprintf(path, sizeof(path), "/3/device/%0200d", 0);
    r.path = path;
    expect(&r, 200, NULL);
    snprintf(path, sizeof(path), "/3/device/%0202d", 0);
    expect(&r, 400, "BadDeviceToken");
}

static void test_headers(void **state)
{
    struct standin_request r = good_request();
    r.duplicated = 1u << STANDIN_HDR_TOPIC;
    expect(&r, 400, "DuplicateHeaders");
    r = good_request();
    r.headers[STANDIN_HDR_TOPIC] = NULL;
    expect(&r, 400, "MissingTopic");
    r = good_request();
    r.headers[STANDIN_HDR_TOPIC] = TOPIC "x";
    expect(&r, 400, "TopicDisallowed");
    r.any_topic = true;
    expect(&r, 200, NULL);
    r = good_request();
    r.topic = NULL;
    expect(&r, 403, "BadCertificate");
    r = good_request();
    r.headers[STANDIN_HDR_PUSH_TYPE] = "background";
    expect(&r, 400, "InvalidPushType");

    static const char *const bad_expirations[] = {
        "0", "", "-1", "1e9", "1700000000", "1699999999", "19999999990", "soon"};
    for (size_t i = 0; i < sizeof(bad_expirations) / sizeof(*bad_expirations); i++) {
        r = good_request();
        r.headers[STANDIN_HDR_EXPIRATION] = bad_expirations[i];
        expect(&r, 400, "BadExpirationDate");
    }
    r = good_request();
    r.headers[STANDIN_HDR_EXPIRATION] = NULL;
    expect(&r, 400, "BadExpirationDate");
    r = good_request();
    r.headers[STANDIN_HDR_EXPIRATION] = "1700000001";
    expect(&r, 200, NULL);

    static const char *const bad_priorities[] = {"1", "010", "", "10 ", "high"};
    for (size_t i = 0; i < sizeof(bad_priorities) / sizeof(*bad_priorities); i++) {
        r = good_request();
        r.headers[STANDIN_HDR_PRIORITY] = bad_priorities[i];
        expect(&r, 400, "BadPriority");
    }
    r.headers[STANDIN_HDR_PRIORITY] = NULL;
    expect(&r, 400, "BadPriority");

    r = good_request();
    r.headers[STANDIN_HDR_ID] = "123e4567-e89b-12d3-a456-42661417400";
    expect(&r, 400, "BadMessageId");
    r.headers[STANDIN_HDR_ID] = "123E4567-E89B-12D3-A456-426614174000";
    expect(&r, 200, NULL);
    r.headers[STANDIN_HDR_COLLAPSE_ID] =
        "0123456789012345678901234567890123456789012345678901234567890123456789";
    expect(&r, 400, "BadCollapseId");
}

static void test_body(void **state)
{
    struct standin_request r = good_request();
    r.body_len = r.body_total = 0;
    expect(&r, 400, "PayloadEmpty");
    r = good_request();
    r.body_total = STANDIN_MAX_PAYLOAD + 1;
    expect(&r, 413, "PayloadTooLarge");
    r = good_request();
    r.body = "{\"mdm\":\"\"}";
    r.body_len = r.body_total = strlen(r.body);
    expect(&r, 400, "BadPayload");
    r.body = "{\"mdm\":\"a\",\"mdm\":\"b\"}";
    r.body_len = r.body_total = strlen(r.body);
    expect(&r, 400, "BadPayload");
}

static bool payload(const char *body, char *magic, size_t size)
{
    return standin_parse_payload(body, strlen(body), magic, size, NULL);
}

static void test_payload_parser(void **state)
{
    char m[64];
    assert_true(payload("{\"mdm\":\"x\"}", m, sizeof(m)));
    assert_string_equal(m, "x");
    assert_true(payload(" \r\n\t{ \"mdm\" :\t\"a b\" } \n", m, sizeof(m)));
    assert_string_equal(m, "a b");
    assert_true(payload("{\"mdm\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", m, sizeof(m)));
    assert_string_equal(m, "\"\\/\b\f\n\r\t");
    assert_true(payload("{\"mdm\":\"\\u00e9\\ud83d\\ude00\"}", m, sizeof(m)));
    assert_string_equal(m, "\xc3\xa9\xf0\x9f\x98\x80");
    assert_true(payload("{\"mdm\":\"\xc3\xa9\"}", m, sizeof(m)));
    assert_true(payload("{\"\\u006ddm\":\"x\"}", m, sizeof(m))); /* the key, escaped */

    static const char *const bad[] = {
        "",
        "{}",
        "[]",
        "\"x\"",
        "{\"mdm\":1}",
        "{\"mdm\":null}",
        "{\"mdm\":\"x\"",
        "{\"mdm\":\"x\",}",
        "{\"MDM\":\"x\"}",
        "{\"mdm\":\"x\",\"a\":\"b\"}",
        "{\"mdm\":\"x\"}}",
        "{'mdm':'x'}",
        "{\"mdm\":\"\\u0000\"}",
        "{\"mdm\":\"\\ud83d\"}",
        "{\"mdm\":\"\\ude00\"}",
        "{\"mdm\":\"\\x\"}",
        "{\"mdm\":\"\\u12\"}",
        "{\"mdm\":\"a\nb\"}",
        "{\"mdm\":\"\xc3\"}",
        "{\"mdm\":\"\xc0\xaf\"}",
        "{\"mdm\":\"\xed\xa0\x80\"}",
        "{\"mdm\":\"\xf4\x90\x80\x80\"}",
        "{\"mdm\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (payload(bad[i], m, sizeof(m)))
            fail_msg("accepted bad payload #%zu: %s", i, bad[i]);
    }
    /* A NUL byte in the raw body. */
    assert_false(standin_parse_payload("{\"mdm\":\"a\0b\"}", 13, m, sizeof(m), NULL));
    /* Too long for the buffer. */
    assert_false(payload("{\"mdm\":\"0123456789\"}", m, 10));
    assert_true(payload("{\"mdm\":\"012345678\"}", m, 10));
}

static void test_uuid(void **state)
{
    assert_true(standin_check_uuid("123e4567-e89b-12d3-a456-426614174000"));
    assert_false(standin_check_uuid("123e4567e89b-12d3-a456-426614174000-"));
    assert_false(standin_check_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    assert_false(standin_check_uuid(NULL));
}

/* --- the script ------------------------------------------------------------------------------ */

static struct standin_answer take(struct standin_script *s, const char *token)
{
    struct standin_answer a;
    standin_script_take(s, token, &a);
    return a;
}

static void test_script_queue(void **state)
{
    struct standin_script *s = standin_script_new();
    char err[128];
    const char *text = "# a comment\n\n" TOKEN64 " 500 2\r\n" TOKEN64 " 410\n"
                       "CDCD 400 DeviceTokenNotForTopic 1\n"
                       "cdcd 410 Unregistered ts=1700000000000\n"
                       "* delay 250 1\n* goaway\n";
    assert_true(standin_script_add(s, text, strlen(text), err, sizeof(err)));
    assert_int_equal(standin_script_count(s), 6);

    struct standin_answer a = take(s, TOKEN64);
    assert_int_equal(a.kind, STANDIN_ANSWER_STATUS);
    assert_int_equal(a.status, 500);
    assert_string_equal(a.reason, "InternalServerError");
    assert_int_equal(take(s, TOKEN64).status, 500);
    for (int i = 0; i < 3; i++) {
        a = take(s, TOKEN64);
        assert_int_equal(a.status, 410);
        assert_string_equal(a.reason, "Unregistered");
        assert_int_equal(a.timestamp_ms, -1);
    }
    a = take(s, "cdcd");
    assert_int_equal(a.status, 400);
    assert_string_equal(a.reason, "DeviceTokenNotForTopic");
    a = take(s, "cdcd");
    assert_int_equal(a.status, 410);
    assert_int_equal(a.timestamp_ms, 1700000000000LL);

    a = take(s, "efef");
    assert_int_equal(a.kind, STANDIN_ANSWER_DELAY);
    assert_int_equal(a.delay_ms, 250);
    assert_int_equal(take(s, "efef").kind, STANDIN_ANSWER_GOAWAY);
    assert_int_equal(take(s, "efef").kind, STANDIN_ANSWER_GOAWAY);

    standin_script_clear(s);
    assert_int_equal(standin_script_count(s), 0);
    assert_int_equal(take(s, TOKEN64).kind, STANDIN_ANSWER_NORMAL);
    standin_script_free(s);
}

static void test_script_errors(void **state)
{
    struct standin_script *s = standin_script_new();
    char err[128];
    static const char *const bad[] = {
        "abab",        "abab 300",        "abab 600",      "xyz 500",
        "abab delay",  "abab delay -1",   "abab 500 0",    "abab 500 Why many",
        "abab 500 -2", "abab goaway 1 2", "abab 410 ts=x", "abab 200 1 2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (standin_script_add(s, bad[i], strlen(bad[i]), err, sizeof(err)))
            fail_msg("accepted bad rule: %s", bad[i]);
        assert_memory_equal(err, "line 1: ", 8);
    }
    const char *partly = "abab 500\nabab bogus\n";
    assert_false(standin_script_add(s, partly, strlen(partly), err, sizeof(err)));
    assert_memory_equal(err, "line 2: ", 8);
    assert_int_equal(standin_script_count(s), 0); /* all or nothing */
    standin_script_free(s);
}

static void count_line(const char *line, void *arg)
{
    (*(int *)arg)++;
}

static void test_script_many_keys(void **state)
{
    struct standin_script *s = standin_script_new();
    char err[128], line[96];
    for (int i = 0; i < 5000; i++) {
        snprintf(line, sizeof(line), "%064x 410 1\n", i);
        assert_true(standin_script_add(s, line, strlen(line), err, sizeof(err)));
    }
    int lines = 0;
    standin_script_dump(s, count_line, &lines);
    assert_int_equal(lines, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(line, sizeof(line), "%064x", i);
        assert_int_equal(take(s, line).status, 410);
        assert_int_equal(take(s, line).kind, STANDIN_ANSWER_NORMAL);
    }
    assert_int_equal(standin_script_count(s), 0);
    standin_script_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_request),     cmocka_unit_test(test_path_and_token),
        cmocka_unit_test(test_headers),          cmocka_unit_test(test_body),
        cmocka_unit_test(test_payload_parser),   cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_script_queue),     cmocka_unit_test(test_script_errors),
        cmocka_unit_test(test_script_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
