/* Unit tests of server/device/plist_json.c: a device's report (an XML plist) as JSON, every
 * plist type, the limits, and JSON commands back to plists ($data, $date, refusals). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "plist_json.h"

#define PL_HEAD                                                                                    \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "                                      \
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"                                        \
    "<plist version=\"1.0\">\n"
#define PL_TAIL "</plist>\n"

static const struct plist_json_limits limits = {48, 100000};

/* The JSON text of xml, or the error; *text is the caller's (free()). */
static enum plist_json_error convert(const char *xml, size_t len, size_t max_bytes,
                                     const struct plist_json_limits *lim, char **text)
{
    plist_t root = NULL;
    *text = NULL;
    enum plist_json_error err = plist_json_parse_xml(xml, len, lim->max_depth, &root);
    if (err != PLIST_JSON_OK)
        return err;
    struct json_writer *w = json_writer_new(max_bytes, 0);
    assert_non_null(w);
    err = plist_json_write(w, root, lim);
    const char *out;
    size_t out_len;
    if (err == PLIST_JSON_OK) {
        assert_true(json_writer_finish(w, &out, &out_len));
        *text = strndup(out, out_len);
        assert_non_null(*text);
    }
    json_writer_free(w);
    plist_free(root);
    return err;
}

static void assert_json(const char *xml, const char *expected)
{
    char *text = NULL;
    enum plist_json_error err = convert(xml, strlen(xml), 1 << 20, &limits, &text);
    if (err != PLIST_JSON_OK)
        print_error("refused (%s):\n%s\n", plist_json_strerror(err), xml);
    assert_int_equal(err, PLIST_JSON_OK);
    assert_string_equal(text, expected);
    free(text);
}

static void test_every_type(void **state)
{
    (void)state;
    assert_json(PL_HEAD "<dict>"
                        "<key>UDID</key><string>0000-1</string>"
                        "<key>Status</key><string>Acknowledged</string>"
                        "<key>QueryResponses</key><dict>"
                        "<key>BatteryLevel</key><real>0.5</real>"
                        "<key>Capacity</key><integer>128</integer>"
                        "<key>Negative</key><integer>-7</integer>"
                        "<key>IsSupervised</key><true/>"
                        "<key>Lost</key><false/>"
                        "<key>Token</key><data>AAEC/w==</data>"
                        "<key>When</key><date>2024-05-01T12:30:15Z</date>"
                        "<key>Before2001</key><date>1999-12-31T23:59:59Z</date>"
                        "<key>List</key><array><string>a</string><array/><dict/></array>"
                        "</dict></dict>" PL_TAIL,
                "{\"UDID\":\"0000-1\",\"Status\":\"Acknowledged\",\"QueryResponses\":{"
                "\"BatteryLevel\":0.5,\"Capacity\":128,\"Negative\":-7,\"IsSupervised\":true,"
                "\"Lost\":false,\"Token\":\"AAEC/w==\",\"When\":\"2024-05-01T12:30:15Z\","
                "\"Before2001\":\"1999-12-31T23:59:59Z\",\"List\":[\"a\",[],{}]}}");
}

static void test_text_is_kept_and_mended(void **state)
{
    (void)state;
    /* Escapes, entities, non-ASCII text, and empty data. */
    assert_json(PL_HEAD "<dict><key>k&lt;\"</key><string>caf\xc3\xa9 &amp; \xe2\x98\x83\t"
                        "</string><key>empty</key><data></data></dict>" PL_TAIL,
                "{\"k<\\\"\":\"caf\xc3\xa9 & \xe2\x98\x83\\t\",\"empty\":\"\"}");
    /* A byte that is no UTF-8 becomes U+FFFD rather than failing the whole report. */
    assert_json(PL_HEAD "<dict><key>Name</key><string>a\xff"
                        "b</string></dict>" PL_TAIL,
                "{\"Name\":\"a\xef\xbf\xbd"
                "b\"}");
}

static void test_not_finite_reals_are_null(void **state)
{
    (void)state;
    assert_json(PL_HEAD "<array><real>nan</real><real>+infinity</real><real>-2.25</real>"
                        "</array>" PL_TAIL,
                "[null,null,-2.25]");
}

static void test_refusals(void **state)
{
    (void)state;
    char *text = NULL;
    struct {
        const char *xml;
        enum plist_json_error err;
    } cases[] = {
        {"", PLIST_JSON_NOT_XML},
        {"   ", PLIST_JSON_NOT_XML},
        {"bplist00\x08", PLIST_JSON_NOT_XML},
        {"{\"json\": true}", PLIST_JSON_NOT_XML},
        {PL_HEAD "<dict><key>a</key>" PL_TAIL, PLIST_JSON_MALFORMED},
        {PL_HEAD "<dict><!-- hidden <dict> --></dict>" PL_TAIL, PLIST_JSON_MALFORMED},
        {PL_HEAD "<array><array><array><array></array></array></array></array>" PL_TAIL,
         PLIST_JSON_TOO_DEEP},
    };
    const struct plist_json_limits shallow = {3, 100};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum plist_json_error err =
            convert(cases[i].xml, strlen(cases[i].xml), 4096, &shallow, &text);
        if (err != cases[i].err)
            print_error("case %zu: %s, expected %s\n", i, plist_json_strerror(err),
                        plist_json_strerror(cases[i].err));
        assert_int_equal(err, cases[i].err);
        assert_null(text);
    }
}

static void test_limits(void **state)
{
    (void)state;
    char *text = NULL;
    static const char xml[] = PL_HEAD "<array><integer>1</integer><integer>2</integer>"
                                      "<integer>3</integer></array>" PL_TAIL;
    /* Four values (the array and three integers): three are too many. */
    const struct plist_json_limits three = {4, 3}, four = {4, 4};
    assert_int_equal(convert(xml, strlen(xml), 4096, &three, &text), PLIST_JSON_TOO_MANY);
    assert_int_equal(convert(xml, strlen(xml), 4096, &four, &text), PLIST_JSON_OK);
    assert_string_equal(text, "[1,2,3]");
    free(text);
    /* The writer's maximum holds. */
    assert_int_equal(convert(xml, strlen(xml), 4, &four, &text), PLIST_JSON_WRITE);
    /* Depth counts containers: the top-level array is depth 1. */
    static const char nested[] = PL_HEAD "<array><dict><key>a</key><array/></dict></array>" PL_TAIL;
    const struct plist_json_limits depth2 = {2, 100}, depth3 = {3, 100};
    assert_int_equal(convert(nested, strlen(nested), 4096, &depth2, &text), PLIST_JSON_TOO_DEEP);
    assert_int_equal(convert(nested, strlen(nested), 4096, &depth3, &text), PLIST_JSON_OK);
    free(text);
}

/* ---- JSON to plist ---- */

static plist_t from_json(const char *json, const struct plist_json_limits *lim, char *err,
                         size_t err_size)
{
    static const struct json_limits jl = {1 << 20, 64, 100000};
    struct json_doc *doc = NULL;
    assert_int_equal(json_parse(json, strlen(json), &jl, &doc, NULL), JSON_OK);
    plist_t out = NULL;
    bool ok = plist_json_to_plist(json_doc_root(doc), lim, &out, err, err_size);
    json_doc_free(doc);
    assert_true(ok == (out != NULL));
    return out;
}

static void test_json_command_to_plist(void **state)
{
    (void)state;
    char err[256];
    plist_t root = from_json("{\"Command\": {\"RequestType\": \"DeviceInformation\", "
                             "\"Queries\": [\"OSVersion\"], \"Pin\": 12, \"Ratio\": 1.5, "
                             "\"Flag\": true, \"Payload\": {\"$data\": \"AAEC/w==\"}, "
                             "\"At\": {\"$date\": \"2024-05-01T12:30:15Z\"}}}",
                             &limits, err, sizeof(err));
    assert_non_null(root);
    plist_t cmd = plist_dict_get_item(root, "Command");
    assert_string_equal(plist_get_string_ptr(plist_dict_get_item(cmd, "RequestType"), NULL),
                        "DeviceInformation");
    plist_t queries = plist_dict_get_item(cmd, "Queries");
    assert_int_equal(plist_array_get_size(queries), 1);
    uint64_t u = 0;
    plist_get_uint_val(plist_dict_get_item(cmd, "Pin"), &u);
    assert_int_equal(u, 12);
    assert_int_equal(plist_get_node_type(plist_dict_get_item(cmd, "Ratio")), PLIST_REAL);
    assert_int_equal(plist_get_node_type(plist_dict_get_item(cmd, "Flag")), PLIST_BOOLEAN);
    uint64_t len = 0;
    const char *data = plist_get_data_ptr(plist_dict_get_item(cmd, "Payload"), &len);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "\x00\x01\x02\xff", 4);
    int32_t sec = 0, usec = 0;
    plist_get_date_val(plist_dict_get_item(cmd, "At"), &sec, &usec);
    assert_int_equal(sec, 1714566615 - 978307200);

    /* And back: the same text as a device's answer would give. */
    struct json_writer *w = json_writer_new(4096, 0);
    assert_int_equal(plist_json_write(w, cmd, &limits), PLIST_JSON_OK);
    const char *text;
    assert_true(json_writer_finish(w, &text, NULL));
    assert_string_equal(text, "{\"RequestType\":\"DeviceInformation\",\"Queries\":[\"OSVersion\"],"
                              "\"Pin\":12,\"Ratio\":1.5,\"Flag\":true,\"Payload\":\"AAEC/w==\","
                              "\"At\":\"2024-05-01T12:30:15Z\"}");
    json_writer_free(w);
    plist_free(root);
}

static void test_json_refusals_name_the_path(void **state)
{
    (void)state;
    struct {
        const char *json, *err;
    } cases[] = {
        {"{\"Command\": {\"Queries\": [\"a\", null]}}",
         "$.Command.Queries[1]: null has no plist form"},
        {"{\"P\": {\"$data\": \"not base64!\"}}", "$.P: $data is not base64"},
        {"{\"P\": {\"$data\": 5}}", "$.P: $data must be a string"},
        {"{\"T\": {\"$date\": \"2024-02-30T00:00:00Z\"}}",
         "$.T: $date is not a time like 2024-05-01T12:00:00Z"},
        {"{\"T\": {\"$date\": \"yesterday\"}}",
         "$.T: $date is not a time like 2024-05-01T12:00:00Z"},
        {"[\"a\\u0000b\"]", "$[0]: a string with a NUL character has no plist form"},
        {"[[[[1]]]]", "$[0][0][0]: nested deeper than 3"},
    };
    const struct plist_json_limits shallow = {3, 100};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        plist_t p = from_json(cases[i].json, &shallow, err, sizeof(err));
        assert_null(p);
        assert_string_equal(err, cases[i].err);
    }
    /* Too many values. */
    char err[256] = "";
    const struct plist_json_limits few = {8, 3};
    assert_null(from_json("[1, 2, 3]", &few, err, sizeof(err)));
    assert_string_equal(err, "$[2]: more than 3 values");
    /* A dict with another key beside $data is an ordinary dict. */
    plist_t p = from_json("{\"$data\": \"AA==\", \"x\": 1}", &limits, err, sizeof(err));
    assert_non_null(p);
    assert_int_equal(plist_dict_get_size(p), 2);
    plist_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_text_is_kept_and_mended),
        cmocka_unit_test(test_not_finite_reals_are_null),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_json_command_to_plist),
        cmocka_unit_test(test_json_refusals_name_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
