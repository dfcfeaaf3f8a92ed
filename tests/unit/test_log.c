/* Unit tests of lib/log.c's pure pieces: JSON escaping (quotes, control characters, UTF-8 kept,
 * anything else as U+FFFD, never an escape cut in two), whole lines in both formats (a JSON line
 * parses with lib/json.c and carries ts, level, msg, the request id and the fields; a long
 * message is cut and the line stays valid), the sanity of request ids, and the format names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "log.h"

static const char TS[] = "2026-12-03T11:00:00.000Z";

static void assert_escaped(const char *in, size_t in_len, const char *expected)
{
    char out[256];
    size_t n = log_json_escape(in, in_len, out, sizeof(out));
    assert_string_equal(out, expected);
    assert_int_equal(n, strlen(expected));
}

static void test_escape_specials(void **state)
{
    (void)state;
    assert_escaped("plain", 5, "plain");
    assert_escaped("a\"b\\c", 5, "a\\\"b\\\\c");
    assert_escaped("l1\nl2\r\tx", 8, "l1\\nl2\\r\\tx");
    assert_escaped("\x01\x1f", 2, "\\u0001\\u001f");
    assert_escaped("nul\0here", 8, "nul\\u0000here");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* Valid UTF-8 (é, €, 😀) stays as it is. */
    assert_escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
                   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* A lone continuation byte, a cut sequence, an overlong '/', a surrogate, beyond U+10FFFF. */
    assert_escaped("\x80", 1, "\\ufffd");
    assert_escaped("a\xe2\x82", 3, "a\\ufffd\\ufffd");
    assert_escaped("\xc0\xaf", 2, "\\ufffd\\ufffd");
    assert_escaped("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
    assert_escaped("\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd");
}

static void test_escape_never_cuts_an_escape(void **state)
{
    (void)state;
    char out[8];
    /* "ab" fits, then \" would need 2 bytes with 5 used of 7: it fits; \u0001 does not. */
    size_t n = log_json_escape("ab\"\x01", 4, out, sizeof(out));
    assert_string_equal(out, "ab\\\"");
    assert_int_equal(n, 4);
    n = log_json_escape("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", 9, out, sizeof(out));
    assert_int_equal(n, 6); /* two whole euros, not a third in part */
    assert_int_equal(log_json_escape("x", 1, out, 1), 0);
    assert_string_equal(out, "");
}

/* Parses a JSON line (without its newline) and returns the document. */
static struct json_doc *parse_line(const char *line, size_t len)
{
    const struct json_limits limits = {1 << 16, 8, 256};
    struct json_doc *doc = NULL;
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1));
    assert_int_equal(json_parse(line, len - 1, &limits, &doc, NULL), JSON_OK);
    return doc;
}

static const char *member(const struct json_doc *doc, const char *key)
{
    const char *s = NULL;
    size_t len;
    if (!json_get_string(json_object_find(json_doc_root(doc), key), &s, &len))
        return NULL;
    return s;
}

static void test_json_line(void **state)
{
    (void)state;
    char line[1024];
    const char msg[] = "refused \"x\"\n\x01 \xff";
    const struct log_field fields[] = {
        {"path", "/v1/devices", 0}, {"status", NULL, 404}, {"duration_s", NULL, 0.00125}};
    size_t n = log_format_line(line, sizeof(line), LOG_JSON, TS, LOG_WARN, "req-1", msg,
                               sizeof(msg) - 1, fields, 3);
    assert_int_equal(n, strlen(line));
    struct json_doc *doc = parse_line(line, n);
    assert_string_equal(member(doc, "ts"), TS);
    assert_string_equal(member(doc, "level"), "warn");
    assert_string_equal(member(doc, "request_id"), "req-1");
    assert_string_equal(member(doc, "msg"), "refused \"x\"\n\x01 \xef\xbf\xbd");
    assert_string_equal(member(doc, "path"), "/v1/devices");
    int64_t status;
    double seconds;
    assert_true(json_get_int64(json_object_find(json_doc_root(doc), "status"), &status));
    assert_int_equal(status, 404);
    assert_true(json_get_double(json_object_find(json_doc_root(doc), "duration_s"), &seconds));
    assert_true(seconds > 0.00124 && seconds < 0.00126);
    json_doc_free(doc);

    /* No request id: no member. */
    n = log_format_line(line, sizeof(line), LOG_JSON, TS, LOG_INFO, "", "up", 2, NULL, 0);
    doc = parse_line(line, n);
    assert_null(json_object_find(json_doc_root(doc), "request_id"));
    assert_string_equal(member(doc, "msg"), "up");
    json_doc_free(doc);
}

static void test_json_line_cut_stays_valid(void **state)
{
    (void)state;
    char msg[3000], line[512];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = i % 7 == 0 ? '"' : 'a';
    const struct log_field fields[] = {{"peer", "127.0.0.1:5000", 0}};
    size_t n = log_format_line(line, sizeof(line), LOG_JSON, TS, LOG_ERROR, "r", msg, sizeof(msg),
                               fields, 1);
    assert_true(n < sizeof(line));
    struct json_doc *doc = parse_line(line, n);
    const char *got = member(doc, "msg");
    assert_non_null(got);
    assert_true(strlen(got) > 100 && strlen(got) < sizeof(line));
    assert_string_equal(member(doc, "peer"), "127.0.0.1:5000");
    json_doc_free(doc);
}

static void test_text_line(void **state)
{
    (void)state;
    char line[512];
    const struct log_field fields[] = {
        {"method", "GET", 0}, {"status", NULL, 200}, {"peer", "10.0.0.1 via 127.0.0.1:80", 0}};
    size_t n =
        log_format_line(line, sizeof(line), LOG_TEXT, TS, LOG_INFO, "abc", "access", 6, fields, 3);
    assert_string_equal(line, "2026-12-03T11:00:00.000Z info request_id=abc access method=GET "
                              "status=200 peer=\"10.0.0.1 via 127.0.0.1:80\"\n");
    assert_int_equal(n, strlen(line));
    n = log_format_line(line, sizeof(line), LOG_TEXT, TS, LOG_DEBUG, "", "hello", 5, NULL, 0);
    assert_string_equal(line, "2026-12-03T11:00:00.000Z debug hello\n");
    /* A long message is cut; the newline stays. */
    char msg[1000];
    memset(msg, 'm', sizeof(msg));
    n = log_format_line(line, 300, LOG_TEXT, TS, LOG_INFO, "", msg, sizeof(msg), NULL, 0);
    assert_int_equal(n, 299);
    assert_int_equal(line[298], '\n');
}

static void test_request_ids(void **state)
{
    (void)state;
    static const char *const sane[] = {
        "a", "0f1e2d3c4b5a6978", "6c4b3c2e-1d7f-4e5a-9b8c-0d1e2f3a4b5c", "01HF8Z:req/42+x=@y_z.w"};
    static const char *const insane[] = {"",          "has space",   "quote\"", "back\\slash",
                                         "new\nline", "caf\xc3\xa9", "tab\t",   "{json}"};
    for (size_t i = 0; i < sizeof(sane) / sizeof(sane[0]); i++)
        assert_true(log_request_id_is_sane(sane[i], strlen(sane[i])));
    for (size_t i = 0; i < sizeof(insane) / sizeof(insane[0]); i++)
        assert_false(log_request_id_is_sane(insane[i], strlen(insane[i])));
    char longest[LOG_REQUEST_ID_MAX + 2];
    memset(longest, 'x', sizeof(longest));
    assert_true(log_request_id_is_sane(longest, LOG_REQUEST_ID_MAX));
    assert_false(log_request_id_is_sane(longest, LOG_REQUEST_ID_MAX + 1));

    log_set_request_id("req-7");
    assert_string_equal(log_get0_request_id(), "req-7");
    log_set_request_id("not sane");
    assert_string_equal(log_get0_request_id(), "");
    log_set_request_id("req-8");
    log_set_request_id(NULL);
    assert_string_equal(log_get0_request_id(), "");
}

static void test_format_names(void **state)
{
    (void)state;
    enum log_format f = LOG_TEXT;
    assert_true(log_parse_format("json", &f));
    assert_int_equal(f, LOG_JSON);
    assert_true(log_parse_format("text", &f));
    assert_int_equal(f, LOG_TEXT);
    assert_false(log_parse_format("JSON", &f));
    assert_false(log_parse_format("logfmt", &f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_specials),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_never_cuts_an_escape),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_json_line_cut_stays_valid),
        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
