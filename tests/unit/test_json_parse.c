/* Unit tests of lib/json.c, the parser: json.h's contract on libjansson for scalars, strings
 * (escapes, NUL, control characters, UTF-8), structure and the accessors, duplicate keys, syntax
 * errors and trailing data with their offsets, the limits (depth, values, bytes), and the error
 * strings.
 *
 * Shared helpers: json_fixture.h. */
#include "json_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses text that must be refused with the given error; returns the error offset. */
static size_t parse_fail_len(const char *text, size_t len, const struct json_limits *limits,
                             enum json_error expected)
{
    struct json_doc *doc = (struct json_doc *)&doc; /* must be reset to NULL */
    struct json_parse_error err = {.offset = 12345, .message = NULL};
    enum json_error e = json_parse(text, len, limits, &doc, &err);
    if (e != expected)
        print_error("expected error %d, got %d (%s) for: %.*s\n", (int)expected, (int)e,
                    err.message ? err.message : "-", (int)len, text);
    assert_int_equal(e, expected);
    assert_null(doc);
    assert_non_null(err.message);
    assert_true(err.offset <= len || expected == JSON_ERR_TOO_LARGE);
    return err.offset;
}

static size_t parse_fail(const char *text, enum json_error expected)
{
    return parse_fail_len(text, strlen(text), &test_limits, expected);
}

/* Decodes a one-string document and checks its bytes. */
static void assert_string_decodes(const char *json, const char *bytes, size_t bytes_len)
{
    struct json_doc *doc = parse(json);
    const char *s = NULL;
    size_t len = 0;
    assert_int_equal(json_value_kind(json_doc_root(doc)), JSON_KIND_STRING);
    assert_true(json_get_string(json_doc_root(doc), &s, &len));
    assert_int_equal(len, bytes_len);
    assert_memory_equal(s, bytes, bytes_len);
    assert_int_equal(s[len], '\0');
    json_doc_free(doc);
}

/* ---- Parser: scalars ---- */

static void test_parse_literals(void **state)
{
    bool b = false;
    struct json_doc *doc = parse("true");
    assert_int_equal(json_value_kind(json_doc_root(doc)), JSON_KIND_BOOL);
    assert_true(json_get_bool(json_doc_root(doc), &b));
    assert_true(b);
    json_doc_free(doc);

    doc = parse(" false ");
    assert_true(json_get_bool(json_doc_root(doc), &b));
    assert_false(b);
    json_doc_free(doc);

    doc = parse("\t\r\nnull\n");
    assert_true(json_value_is_null(json_doc_root(doc)));
    assert_false(json_get_bool(json_doc_root(doc), &b));
    json_doc_free(doc);

    parse_fail("tru", JSON_ERR_SYNTAX);
    parse_fail("nul", JSON_ERR_SYNTAX);
    parse_fail("True", JSON_ERR_SYNTAX);
    /* libjansson reads a run of letters as one word: these are not a literal and garbage. */
    parse_fail("truex", JSON_ERR_SYNTAX);
    parse_fail("nullnull", JSON_ERR_SYNTAX);
    parse_fail("true x", JSON_ERR_TRAILING);
    parse_fail("null,", JSON_ERR_TRAILING);
}

static void test_parse_numbers(void **state)
{
    /* json_number_text() is the writer's spelling: integers in decimal, other numbers as
     * "%.17g" with ".0" when they would look like an integer, exponents without '+' or zeros. */
    static const struct {
        const char *text;
        double value;
        const char *number_text;
    } good[] = {
        {"0", 0.0, "0"},
        {"-0", 0.0, "0"},
        {"1", 1.0, "1"},
        {"-12", -12.0, "-12"},
        {"1.5", 1.5, "1.5"},
        {"1.50", 1.5, "1.5"},
        {"-0.0", -0.0, "-0.0"},
        {"1e3", 1000.0, "1000.0"},
        {"1E+3", 1000.0, "1000.0"},
        {"25e-2", 0.25, "0.25"},
        {"-12.25E-2", -0.1225, "-0.1225"},
        {"1e-400", 0.0, "0.0"},
        {"123456789", 123456789.0, "123456789"},
        {"0.000001", 1e-6, "9.9999999999999995e-7"},
        {"1e22", 1e22, "1e22"},
        {"1.7976931348623157e308", 1.7976931348623157e308, "1.7976931348623157e308"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct json_doc *doc = parse(good[i].text);
        double d = -1;
        assert_int_equal(json_value_kind(json_doc_root(doc)), JSON_KIND_NUMBER);
        assert_true(json_get_double(json_doc_root(doc), &d));
        assert_true(d == good[i].value);
        assert_string_equal(json_number_text(json_doc_root(doc)), good[i].number_text);
        json_doc_free(doc);
    }

    static const char *const bad[] = {"01",       "-01",       "1.",   ".5",   "+1",  "-",
                                      "1e",       "1e+",       "1.e3", "0x10", "NaN", "-NaN",
                                      "Infinity", "-Infinity", "- 1",  "1.5.", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct json_doc *doc = NULL;
        assert_int_not_equal(json_parse(bad[i], strlen(bad[i]), &test_limits, &doc, NULL), JSON_OK);
        assert_null(doc);
    }

    /* Out of range for a double: refused, not turned into infinity. */
    parse_fail("1e400", JSON_ERR_NUMBER);
    parse_fail("[-1e999]", JSON_ERR_NUMBER);

    /* Integers are int64_t: one digit more is refused, not rounded into a double. */
    parse_fail("92233720368547758070", JSON_ERR_NUMBER);
    parse_fail("[-92233720368547758080]", JSON_ERR_NUMBER);
    /* A long fraction is a double like any other. */
    char longnum[402] = "0.";
    memset(longnum + 2, '1', sizeof(longnum) - 3);
    longnum[sizeof(longnum) - 1] = '\0';
    struct json_doc *doc = parse(longnum);
    double d = 0;
    assert_true(json_get_double(json_doc_root(doc), &d));
    assert_true(d > 0.111 && d < 0.112);
    assert_string_equal(json_number_text(json_doc_root(doc)), "0.1111111111111111");
    json_doc_free(doc);
}

static void test_parse_int64(void **state)
{
    int64_t n = 0;
    struct json_doc *doc = parse("[9223372036854775807, -9223372036854775808, "
                                 "1.0, 1e2, 42, -7, \"5\"]");
    const struct json_value *a = json_doc_root(doc);
    assert_true(json_get_int64(json_array_at(a, 0), &n));
    assert_true(n == INT64_MAX);
    assert_string_equal(json_number_text(json_array_at(a, 0)), "9223372036854775807");
    assert_true(json_get_int64(json_array_at(a, 1), &n));
    assert_true(n == INT64_MIN);
    assert_string_equal(json_number_text(json_array_at(a, 1)), "-9223372036854775808");
    assert_false(json_get_int64(json_array_at(a, 2), &n)); /* fraction */
    assert_false(json_get_int64(json_array_at(a, 3), &n)); /* exponent */
    assert_true(json_get_int64(json_array_at(a, 4), &n));
    assert_int_equal(n, 42);
    assert_true(json_get_int64(json_array_at(a, 5), &n));
    assert_int_equal(n, -7);
    assert_false(json_get_int64(json_array_at(a, 6), &n)); /* a string */
    assert_null(json_number_text(json_array_at(a, 6)));
    json_doc_free(doc);
    /* One past either end is refused: the parser has no integers but int64_t ones. */
    parse_fail("[9223372036854775808]", JSON_ERR_NUMBER);
    parse_fail("-9223372036854775809", JSON_ERR_NUMBER);
}

/* ---- Parser: strings ---- */

static void test_parse_string_escapes(void **state)
{
    assert_string_decodes("\"\"", "", 0);
    assert_string_decodes("\"plain\"", "plain", 5);
    assert_string_decodes("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8);
    assert_string_decodes("\"a\\u0041b\"", "aAb", 3);
    assert_string_decodes("\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9", 4);
    assert_string_decodes("\"\\u20ac\"", "\xe2\x82\xac", 3);
    assert_string_decodes("\"\\u007f\\u0080\\u07ff\\u0800\\uffff\"",
                          "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11);
    /* Surrogate pairs: U+1F600 and the extremes U+10000 and U+10FFFF. */
    assert_string_decodes("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
    assert_string_decodes("\"\\uD83D\\uDE00x\"", "\xf0\x9f\x98\x80x", 5);
    assert_string_decodes("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4);
    assert_string_decodes("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
    /* An escaped quote does not end the string. */
    assert_string_decodes("\"say \\\"hi\\\"\"", "say \"hi\"", 8);
    /* Raw DEL is not a control character in JSON. */
    assert_string_decodes("\"\x7f\"", "\x7f", 1);
}

static void test_parse_string_nul(void **state)
{
    struct json_doc *doc = parse("{\"k\": \"a\\u0000b\"}");
    const struct json_value *v = json_object_find(json_doc_root(doc), "k");
    const char *s = NULL;
    size_t len = 0;
    /* As a C string it would be truncated, so it is refused; with a length it is whole. */
    assert_false(json_get_string(v, &s, NULL));
    assert_null(json_object_get_string(json_doc_root(doc), "k"));
    assert_true(json_get_string(v, &s, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 3);
    json_doc_free(doc);
}

static void test_parse_string_bad_escapes(void **state)
{
    parse_fail("\"\\x\"", JSON_ERR_STRING);
    parse_fail("\"\\'\"", JSON_ERR_STRING);
    parse_fail("\"\\U0041\"", JSON_ERR_STRING);
    parse_fail("\"\\u12\"", JSON_ERR_STRING);
    parse_fail("\"\\u12G4\"", JSON_ERR_STRING);
    parse_fail("\"\\u\"", JSON_ERR_STRING);
    /* Lone or mismatched surrogates would decode to invalid UTF-8. */
    parse_fail("\"\\ud83d\"", JSON_ERR_STRING);
    parse_fail("\"\\ud83dabcdef\"", JSON_ERR_STRING);
    parse_fail("\"\\ud83d\\u0041\"", JSON_ERR_STRING);
    parse_fail("\"\\ud83d\\ud83d\"", JSON_ERR_STRING);
    parse_fail("\"\\ude00\"", JSON_ERR_STRING);
    parse_fail("\"\\ude00\\ud83d\"", JSON_ERR_STRING);
    parse_fail("\"\\ud83d\\n\"", JSON_ERR_STRING);
    parse_fail("\"\\ud83d\\ude0\"", JSON_ERR_STRING);
    /* Unterminated. */
    parse_fail("\"abc", JSON_ERR_SYNTAX);
    parse_fail("\"abc\\\"", JSON_ERR_SYNTAX);
    parse_fail("\"\\", JSON_ERR_STRING); /* libjansson: an escape cut short */
}

static void test_parse_string_control_chars(void **state)
{
    assert_int_equal(parse_fail("\"a\nb\"", JSON_ERR_STRING), 2);
    parse_fail("\"\t\"", JSON_ERR_STRING);
    parse_fail("\"\x01\"", JSON_ERR_STRING);
    parse_fail("\"\x1f\"", JSON_ERR_STRING);
    assert_int_equal(parse_fail_len("\"a\0\"", 4, &test_limits, JSON_ERR_STRING), 2);
    parse_fail("{\"k\x02\": 1}", JSON_ERR_STRING);
}

static void test_parse_utf8(void **state)
{
    /* Valid multi-byte text passes through untouched. */
    assert_string_decodes("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                          "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    assert_string_decodes("\"\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"",
                          "\xf4\x8f\xbf\xbf\xed\x9f\xbf\xee\x80\x80", 10);

    static const char *const bad[] = {
        "\"\x80\"",             /* lone continuation byte */
        "\"\xbf\"",             /* lone continuation byte */
        "\"\xc3\"",             /* truncated two-byte sequence */
        "\"\xc3x\"",            /* bad continuation */
        "\"\xc0\xaf\"",         /* overlong '/' */
        "\"\xc1\xbf\"",         /* overlong */
        "\"\xe0\x80\xaf\"",     /* overlong three-byte */
        "\"\xe0\x9f\xbf\"",     /* overlong three-byte */
        "\"\xed\xa0\x80\"",     /* UTF-16 high surrogate encoded in UTF-8 */
        "\"\xed\xbf\xbf\"",     /* UTF-16 low surrogate encoded in UTF-8 */
        "\"\xe2\x82\"",         /* truncated three-byte sequence */
        "\"\xf0\x8f\xbf\xbf\"", /* overlong four-byte */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"", /* invalid lead byte */
        "\"\xf0\x9f\x98\"",     /* truncated four-byte sequence */
        "\"\xfe\"",             /* never valid */
        "\"\xff\"",             /* never valid */
        "{\"\xff\": 1}",        /* in a key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fail(bad[i], JSON_ERR_UTF8);
    assert_int_equal(parse_fail("[\"ok\", \"ab\xc3(\"]", JSON_ERR_UTF8), 10);
}

/* ---- Parser: structure ---- */

static void test_parse_structure(void **state)
{
    struct json_doc *doc =
        parse("{\"udid\": \"U1\", \"enrolled\": true, \"n\": 3, \"push\": {\"token_state\": "
              "\"active\", \"last_push_at\": null}, \"list\": [1, \"two\", [], {}, null],"
              " \"\": \"empty key\"}");
    const struct json_value *root = json_doc_root(doc);
    assert_int_equal(json_value_kind(root), JSON_KIND_OBJECT);
    assert_int_equal(json_object_count(root), 6);
    assert_string_equal(json_object_get_string(root, "udid"), "U1");
    assert_string_equal(json_object_get_string(root, ""), "empty key");
    assert_null(json_object_find(root, "missing"));
    assert_null(json_object_find(root, "udi"));
    assert_null(json_object_find(root, "udidx"));
    assert_null(json_object_get_string(root, "n")); /* not a string */

    const struct json_value *push = json_object_find(root, "push");
    assert_string_equal(json_object_get_string(push, "token_state"), "active");
    assert_true(json_value_is_null(json_object_find(push, "last_push_at")));
    assert_false(json_value_is_null(json_object_find(push, "missing")));

    const struct json_value *list = json_object_find(root, "list");
    assert_int_equal(json_array_length(list), 5);
    assert_int_equal(json_value_kind(json_array_at(list, 0)), JSON_KIND_NUMBER);
    assert_int_equal(json_value_kind(json_array_at(list, 1)), JSON_KIND_STRING);
    assert_int_equal(json_value_kind(json_array_at(list, 2)), JSON_KIND_ARRAY);
    assert_int_equal(json_array_length(json_array_at(list, 2)), 0);
    assert_int_equal(json_value_kind(json_array_at(list, 3)), JSON_KIND_OBJECT);
    assert_int_equal(json_object_count(json_array_at(list, 3)), 0);
    assert_null(json_object_find(json_array_at(list, 3), "x"));
    assert_true(json_value_is_null(json_array_at(list, 4)));
    assert_null(json_array_at(list, 5));

    /* Members iterate in document order, not in lookup order. */
    static const char *const order[] = {"udid", "enrolled", "n", "push", "list", ""};
    for (size_t i = 0; i < 6; i++) {
        const char *key = NULL;
        size_t key_len = 99;
        const struct json_value *value = NULL;
        assert_true(json_object_member(root, i, &key, &key_len, &value));
        assert_string_equal(key, order[i]);
        assert_int_equal(key_len, strlen(order[i]));
        assert_ptr_equal(value, json_object_find(root, order[i]));
    }
    assert_false(json_object_member(root, 6, NULL, NULL, NULL));

    /* Wrong types and NULL are harmless, so lookups chain. */
    assert_null(json_object_find(list, "udid"));
    assert_null(json_array_at(root, 0));
    assert_int_equal(json_array_length(root), 0);
    assert_int_equal(json_object_count(list), 0);
    assert_null(json_object_find(json_object_find(root, "nope"), "deeper"));
    assert_int_equal(json_value_kind(NULL), JSON_KIND_NULL);
    assert_false(json_value_is_null(NULL));
    assert_null(json_doc_root(NULL));
    json_doc_free(doc);
    json_doc_free(NULL);
}

static void test_parse_many_keys(void **state)
{
    /* Enough members that lookups go through the sorted index, in reverse insertion order. */
    char buf[64 * 1024];
    size_t n = 0;
    buf[n++] = '{';
    for (int i = 999; i >= 0; i--) {
        int m = snprintf(buf + n, sizeof(buf) - n, "%s\"key%d\": %d", i == 999 ? "" : ",", i, i);
        assert_true(m > 0 && (size_t)m < sizeof(buf) - n);
        n += (size_t)m;
    }
    buf[n++] = '}';
    struct json_doc *doc = parse_len(buf, n);
    const struct json_value *root = json_doc_root(doc);
    assert_int_equal(json_object_count(root), 1000);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        int64_t v = -1;
        assert_true(snprintf(key, sizeof(key), "key%d", i) > 0);
        assert_true(json_get_int64(json_object_find(root, key), &v));
        assert_int_equal(v, i);
    }
    json_doc_free(doc);
}

static void test_parse_duplicate_keys(void **state)
{
    parse_fail("{\"a\": 1, \"a\": 2}", JSON_ERR_DUPLICATE_KEY);
    parse_fail("{\"a\": 1, \"b\": 2, \"\\u0061\": 3}", JSON_ERR_DUPLICATE_KEY);
    parse_fail("[{}, {\"x\": {\"y\": 1, \"y\": 1}}]", JSON_ERR_DUPLICATE_KEY);

    /* libjansson compares keys after decoding, in objects of any size, at any depth. */
    parse_fail("{\"\\u00e9\": 1, \"\xc3\xa9\": 2}", JSON_ERR_DUPLICATE_KEY);
    parse_fail("{\"a\": {\"b\": [{\"c\": 1, \"d\": 2, \"c\": 3}]}}", JSON_ERR_DUPLICATE_KEY);
    char big[16 * 1024];
    size_t n = 0;
    big[n++] = '{';
    for (int i = 0; i < 500; i++) {
        int m = snprintf(big + n, sizeof(big) - n, "\"k%d\": %d,", i, i);
        assert_true(m > 0 && (size_t)m < sizeof(big) - n);
        n += (size_t)m;
    }
    memcpy(big + n, "\"k250\": 0}", 10);
    n += 10;
    assert_int_equal(parse_fail_len(big, n, &test_limits, JSON_ERR_DUPLICATE_KEY), n - 4);

    /* Prefixes, case and the same key in different objects are all distinct. */
    struct json_doc *doc = parse("{\"a\": 1, \"ab\": 2, \"A\": 4, \"o\": {\"a\": 5}}");
    const struct json_value *root = json_doc_root(doc);
    int64_t v = 0;
    assert_true(json_get_int64(json_object_find(root, "a"), &v));
    assert_int_equal(v, 1);
    assert_true(json_get_int64(json_object_find(root, "ab"), &v));
    assert_int_equal(v, 2);
    assert_null(json_object_findn(root, "a\0", 2));
    assert_true(json_get_int64(json_object_find(root, "A"), &v));
    assert_int_equal(v, 4);
    json_doc_free(doc);

    /* libjansson keeps no key with a NUL in it: such a key is refused, a value may have one. */
    parse_fail("{\"a\\u0000\": 3}", JSON_ERR_STRING);
    doc = parse("{\"a\": \"\\u0000\"}");
    json_doc_free(doc);
}

static void test_parse_syntax_errors(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "\n\t",
        "[",
        "]",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1,,2]",
        "{\"a\"}",
        "{\"a\":}",
        "{a: 1}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{1: 2}",
        "['x']",
        "[1}",
        "{\"a\":1]",
        "// c\n1",
        "/* c */ 1",
        "\xef\xbb\xbf\x31", /* byte order mark, then "1" */
        "[\"a\" \"b\"]",
        "{\"a\":[1,2}",
        "[[]",
        "{\"a\":{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fail(bad[i], JSON_ERR_SYNTAX);

    /* The offset is where libjansson stopped: just after the offending token. */
    assert_int_equal(parse_fail("[1, x]", JSON_ERR_SYNTAX), 5);
    assert_int_equal(parse_fail("{\"a\":1 \"b\":2}", JSON_ERR_SYNTAX), 10);
    assert_int_equal(parse_fail("[1,", JSON_ERR_SYNTAX), 3);
}

static void test_parse_trailing_garbage(void **state)
{
    assert_int_equal(parse_fail("[1]]", JSON_ERR_TRAILING), 4);
    assert_int_equal(parse_fail("1 2", JSON_ERR_TRAILING), 3);
    assert_int_equal(parse_fail("{} x", JSON_ERR_TRAILING), 4);
    parse_fail("\"a\"\"b\"", JSON_ERR_TRAILING);
    parse_fail("null,", JSON_ERR_TRAILING);
    assert_int_equal(parse_fail_len("[]\0", 3, &test_limits, JSON_ERR_TRAILING), 3);
    assert_int_equal(parse_fail_len("{\"a\":1}\0{}", 9, &test_limits, JSON_ERR_TRAILING), 8);
    /* libjansson passes over a NUL byte right after a number or a literal: json.c does not. */
    assert_int_equal(parse_fail_len("1\0", 2, &test_limits, JSON_ERR_TRAILING), 1);
    assert_int_equal(parse_fail_len("true\0 ", 6, &test_limits, JSON_ERR_TRAILING), 4);
    assert_int_equal(parse_fail_len("[1\0]", 4, &test_limits, JSON_ERR_SYNTAX), 2);
    assert_int_equal(parse_fail_len("{\"a\":null\0}", 11, &test_limits, JSON_ERR_SYNTAX), 9);
    /* Trailing JSON whitespace is fine. */
    struct json_doc *doc = parse(" [1] \n\t\r ");
    json_doc_free(doc);
}

/* ---- Parser: limits ---- */

static void test_limit_depth(void **state)
{
    struct json_limits l = test_limits;
    struct json_doc *doc = NULL;

    l.max_depth = 3;
    assert_int_equal(json_parse("[{\"a\":[]}]", 10, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    l.max_depth = 2;
    assert_int_equal(parse_fail_len("[{\"a\":[]}]", 10, &l, JSON_ERR_TOO_DEEP), 6);
    assert_int_equal(parse_fail_len("[[[1]]]", 7, &l, JSON_ERR_TOO_DEEP), 2);

    l.max_depth = 0;
    assert_int_equal(json_parse("\"scalar\"", 8, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    parse_fail_len("[]", 2, &l, JSON_ERR_TOO_DEEP);
    parse_fail_len("{}", 2, &l, JSON_ERR_TOO_DEEP);

    /* libjansson's parser recurses: whatever max_depth says, JSON_MAX_DEPTH is the deepest,
     * refused before libjansson sees the text. */
    size_t n = JSON_MAX_DEPTH;
    char *deep = malloc(2 * n + 3);
    assert_non_null(deep);
    memset(deep, '[', n);
    deep[n] = '1';
    memset(deep + n + 1, ']', n);
    l.max_bytes = 2 * n + 3;
    l.max_nodes = n + 1;
    l.max_depth = SIZE_MAX;
    assert_int_equal(json_parse(deep, 2 * n + 1, &l, &doc, NULL), JSON_OK);
    const struct json_value *v = json_doc_root(doc);
    for (size_t i = 0; i < n - 1; i++)
        v = json_array_at(v, 0);
    assert_int_equal(json_value_kind(v), JSON_KIND_ARRAY);
    assert_int_equal(json_array_length(v), 1);
    json_doc_free(doc);
    /* One more: refused at its bracket. */
    memset(deep, '[', n + 1);
    deep[n + 1] = '1';
    memset(deep + n + 2, ']', n + 1);
    assert_int_equal(parse_fail_len(deep, 2 * n + 3, &l, JSON_ERR_TOO_DEEP), n);
    l.max_depth = n - 1;
    assert_int_equal(parse_fail_len(deep, 2 * n + 1, &l, JSON_ERR_TOO_DEEP), n - 1);
    /* Unclosed: refused cleanly. */
    l.max_depth = n;
    parse_fail_len(deep, n, &l, JSON_ERR_SYNTAX);
    free(deep);
}

static void test_limit_nodes(void **state)
{
    struct json_limits l = test_limits;
    struct json_doc *doc = NULL;

    /* An array of 3 numbers is 4 values; keys do not count. */
    l.max_nodes = 4;
    assert_int_equal(json_parse("[1,2,3]", 7, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    assert_int_equal(json_parse("{\"a\":1,\"b\":2,\"c\":3}", 19, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    l.max_nodes = 3;
    /* Counted before libjansson allocates anything: at the comma before the fourth value. */
    assert_int_equal(parse_fail_len("[1,2,3]", 7, &l, JSON_ERR_TOO_MANY), 4);
    assert_int_equal(parse_fail_len("[[[1]]]", 7, &l, JSON_ERR_TOO_MANY), 2);
    /* Brackets and commas in strings are not values. */
    assert_int_equal(json_parse("[\"[,{\", \"\\\",]\"]", 15, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    l.max_nodes = 0;
    parse_fail_len("1", 1, &l, JSON_ERR_TOO_MANY);
}

static void test_limit_bytes(void **state)
{
    struct json_limits l = test_limits;
    struct json_doc *doc = NULL;
    struct json_parse_error err;

    l.max_bytes = 7;
    assert_int_equal(json_parse("[1,2,3]", 7, &l, &doc, NULL), JSON_OK);
    json_doc_free(doc);
    l.max_bytes = 6;
    assert_int_equal(json_parse("[1,2,3]", 7, &l, &doc, &err), JSON_ERR_TOO_LARGE);
    assert_null(doc);
    assert_int_equal(err.offset, 6);
    /* Checked before any byte is read. */
    assert_int_equal(json_parse("\xff\xff\xff\xff\xff\xff\xff\xff", 8, &l, &doc, NULL),
                     JSON_ERR_TOO_LARGE);
    l.max_bytes = 0;
    assert_int_equal(json_parse("", 0, &l, &doc, NULL), JSON_ERR_SYNTAX);
}

static void test_error_strings(void **state)
{
    for (int e = JSON_OK; e <= JSON_ERR_NOMEM; e++) {
        assert_non_null(json_strerror((enum json_error)e));
        assert_true(strlen(json_strerror((enum json_error)e)) > 0);
    }
    for (int e = JSON_WRITE_OK; e <= JSON_WRITE_NOMEM; e++)
        assert_non_null(json_write_strerror((enum json_write_error)e));
    assert_string_equal(json_strerror(JSON_ERR_TRAILING), "trailing data after the value");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_literals),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_parse_int64),
        cmocka_unit_test(test_parse_string_escapes),
        cmocka_unit_test(test_parse_string_nul),
        cmocka_unit_test(test_parse_string_bad_escapes),
        cmocka_unit_test(test_parse_string_control_chars),
        cmocka_unit_test(test_parse_utf8),
        cmocka_unit_test(test_parse_structure),
        cmocka_unit_test(test_parse_many_keys),
        cmocka_unit_test(test_parse_duplicate_keys),
        cmocka_unit_test(test_parse_syntax_errors),
        cmocka_unit_test(test_parse_trailing_garbage),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_nodes),
        cmocka_unit_test(test_limit_bytes),
        cmocka_unit_test(test_error_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
