/* Unit tests of server/device/mdm_message.c, what every body must pass before its fields are
 * read: the length limits of ids and strings, valid text (the UTF-8 validator, NULs), bodies that
 * are not XML plist dicts, the error names, and the nesting-depth scan (mdm_xml_depth_ok) against
 * what libplist reads.
 *
 * Shared helpers: mdm_message_fixture.h. */
#include "mdm_message_fixture.h"

#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lengths and text ---- */

static void test_id_lengths(void **state)
{
    char id[MDM_MAX_ID_LEN + 2];
    memset(id, 'A', sizeof(id));
    id[MDM_MAX_ID_LEN] = '\0';
    char body[2048];
    struct mdm_message m;

    /* Exactly MDM_MAX_ID_LEN: accepted, as UDID and as CommandUUID. */
    snprintf(body, sizeof(body),
             PL_HEAD KS("UDID", "%s") KS("Status", "Acknowledged") KS("CommandUUID", "%s") PL_TAIL,
             id, id);
    parse_ok(body, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(strlen(m.udid), MDM_MAX_ID_LEN);
    assert_int_equal(strlen(m.command_uuid), MDM_MAX_ID_LEN);
    mdm_message_clear(&m);

    /* One more: refused. */
    id[MDM_MAX_ID_LEN] = 'A';
    id[MDM_MAX_ID_LEN + 1] = '\0';
    snprintf(body, sizeof(body), PL_HEAD KS("UDID", "%s") KS("Status", "Idle") PL_TAIL, id);
    parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_BAD_FIELD, "UDID");
    snprintf(body, sizeof(body), PL_HEAD KS("MessageType", "CheckOut") KS("UDID", "%s") PL_TAIL,
             id);
    parse_fail(body, MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "UDID");
    snprintf(body, sizeof(body),
             PL_HEAD KS("MessageType", "CheckOut") KS("EnrollmentID", "%s") PL_TAIL, id);
    parse_fail(body, MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "EnrollmentID");
    snprintf(body, sizeof(body),
             PL_HEAD KS("UDID", UDID1) KS("Status", "Acknowledged") KS("CommandUUID", "%s") PL_TAIL,
             id);
    parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_BAD_FIELD, "CommandUUID");

    /* Other strings: MDM_MAX_FIELD_LEN. */
    struct buf b = {0};
    buf_puts(&b,
             PL_HEAD KS("MessageType", "CheckOut") KS("UDID", UDID1) "<key>Topic</key><string>");
    buf_repeat(&b, "t", MDM_MAX_FIELD_LEN);
    buf_puts(&b, "</string>" PL_TAIL);
    parse_ok(b.data, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(strlen(m.topic), MDM_MAX_FIELD_LEN);
    mdm_message_clear(&m);
    b.len = 0;
    buf_puts(&b,
             PL_HEAD KS("MessageType", "CheckOut") KS("UDID", UDID1) "<key>Topic</key><string>");
    buf_repeat(&b, "t", MDM_MAX_FIELD_LEN + 1);
    buf_puts(&b, "</string>" PL_TAIL);
    parse_fail(b.data, MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "Topic");
    free(b.data);
}

static void test_bad_text(void **state)
{
    /* Raw invalid UTF-8. */
    parse_fail(PL_HEAD KS("UDID", "abc\xff") KS("Status", "Idle") PL_TAIL, MDM_CHANNEL_REPORT,
               MDM_PARSE_BAD_FIELD, "UDID");
    parse_fail(PL_HEAD KS("UDID", "\xc0\xaf") KS("Status", "Idle") PL_TAIL, MDM_CHANNEL_REPORT,
               MDM_PARSE_BAD_FIELD, "UDID");
    parse_fail(PL_HEAD KS("MessageType", "CheckOut") KS("UDID", UDID1) KS("Topic", "t\xe2\x82")
                   PL_TAIL,
               MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "Topic");
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1) KS("Topic", TOPIC)
                   KS("SerialNumber", "C02\xed\xa0\x80") PL_TAIL,
               MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "SerialNumber");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Status", "NotNow")
                   KS("CommandUUID", "\xf5\x80\x80\x80") PL_TAIL,
               MDM_CHANNEL_REPORT, MDM_PARSE_BAD_FIELD, "CommandUUID");
    /* A surrogate written as a character reference decodes to invalid UTF-8. */
    parse_fail(PL_HEAD KS("UDID", "a&#xD800;b") KS("Status", "Idle") PL_TAIL, MDM_CHANNEL_REPORT,
               MDM_PARSE_BAD_FIELD, "UDID");

    /* A NUL, raw or as a reference, never reaches a kept string. */
    static const char raw_nul[] = PL_HEAD KS("UDID", "ab\0cd") KS("Status", "Idle") PL_TAIL;
    struct mdm_message m;
    const char *field;
    enum mdm_parse_error e =
        mdm_message_parse(raw_nul, sizeof(raw_nul) - 1, MDM_CHANNEL_REPORT, &m, &field);
    if (e == MDM_PARSE_OK) {
        assert_int_equal(strlen(m.udid), 2); /* never "ab" silently standing for "ab\0cd" */
        mdm_message_clear(&m);
        fail_msg("a raw NUL inside UDID was accepted");
    }
    assert_null(m.plist);
    const char *ref_nul = PL_HEAD KS("UDID", "ab&#0;cd") KS("Status", "Idle") PL_TAIL;
    e = mdm_message_parse(ref_nul, strlen(ref_nul), MDM_CHANNEL_REPORT, &m, &field);
    assert_int_not_equal(e, MDM_PARSE_OK);
    assert_null(m.plist);

    /* Valid multi-byte text is kept as is. */
    parse_ok(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1) KS("Topic", TOPIC)
                 KS("DeviceName", "Zo\xc3\xab\xe2\x80\x99s iPhone \xf0\x9f\x8d\x8e") PL_TAIL,
             MDM_CHANNEL_CHECKIN, &m);
    assert_string_equal(m.device_name, "Zo\xc3\xab\xe2\x80\x99s iPhone \xf0\x9f\x8d\x8e");
    mdm_message_clear(&m);
}

/* ---- Bodies that are not plist dicts ---- */

static void test_not_a_plist(void **state)
{
    for (int ch = 0; ch < 2; ch++) {
        enum mdm_channel c = ch ? MDM_CHANNEL_REPORT : MDM_CHANNEL_CHECKIN;
        parse_fail_len("", 0, c, MDM_PARSE_NOT_XML, NULL);
        parse_fail("   \r\n\t", c, MDM_PARSE_NOT_XML, NULL);
        parse_fail("hello", c, MDM_PARSE_NOT_XML, NULL);
        parse_fail("{\"MessageType\": \"Authenticate\"}", c, MDM_PARSE_NOT_XML, NULL);
        parse_fail("bplist00\xd1\x01\x02", c, MDM_PARSE_NOT_XML, NULL);

        /* Malformed XML. */
        parse_fail(PL_HEAD KS("UDID", UDID1) "<key>Status</key><string>Idle</dict></plist>", c,
                   MDM_PARSE_MALFORMED, NULL);
        parse_fail(PL_HEAD KS("UDID", UDID1) "<key>Status</key><string>Idle</string>", c,
                   MDM_PARSE_MALFORMED, NULL);
        parse_fail("<plist><dict><key>UDID</key><strin", c, MDM_PARSE_MALFORMED, NULL);
        parse_fail("<plist><dict><key>UDID</key><banana>x</banana></dict></plist>", c,
                   MDM_PARSE_MALFORMED, NULL);
        parse_fail("<", c, MDM_PARSE_MALFORMED, NULL);
        parse_fail("<plist></plist>", c, MDM_PARSE_MALFORMED, NULL);

        /* Well-formed, but not a dict at the top. */
        parse_fail("<?xml version=\"1.0\"?><plist version=\"1.0\"><array>"
                   "<string>UDID</string></array></plist>",
                   c, MDM_PARSE_NOT_DICT, NULL);
        parse_fail("<plist version=\"1.0\"><string>Authenticate</string></plist>", c,
                   MDM_PARSE_NOT_DICT, NULL);
        parse_fail("<plist version=\"1.0\"><array/></plist>", c, MDM_PARSE_NOT_DICT, NULL);
        parse_fail("<plist version=\"1.0\"><dict/></plist>", c, MDM_PARSE_MISSING_FIELD,
                   ch ? "UDID" : "MessageType");
    }

    /* A real binary plist of a valid check-in. */
    plist_t d = plist_new_dict();
    plist_dict_set_item(d, "MessageType", plist_new_string("Authenticate"));
    plist_dict_set_item(d, "UDID", plist_new_string(UDID1));
    plist_dict_set_item(d, "Topic", plist_new_string(TOPIC));
    char *bin = NULL;
    uint32_t bin_len = 0;
    plist_to_bin(d, &bin, &bin_len);
    assert_non_null(bin);
    assert_memory_equal(bin, "bplist00", 8);
    parse_fail_len(bin, bin_len, MDM_CHANNEL_CHECKIN, MDM_PARSE_NOT_XML, NULL);
    /* Its XML form is accepted. */
    char *xml = NULL;
    uint32_t xml_len = 0;
    plist_to_xml(d, &xml, &xml_len);
    struct mdm_message m;
    parse_ok_len(xml, xml_len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    mdm_message_clear(&m);
    plist_to_bin_free(bin);
    plist_to_xml_free(xml);
    plist_free(d);
}

static void test_error_names(void **state)
{
    assert_string_equal(mdm_parse_error_name(MDM_PARSE_OK), "ok");
    for (int e = MDM_PARSE_OK; e <= MDM_PARSE_UNKNOWN_TYPE; e++) {
        const char *name = mdm_parse_error_name((enum mdm_parse_error)e);
        assert_non_null(name);
        assert_true(name[0] != '\0');
        for (int f = MDM_PARSE_OK; f < e; f++)
            assert_string_not_equal(name, mdm_parse_error_name((enum mdm_parse_error)f));
    }
}

/* ---- Nesting depth ---- */

/* A report whose value K is `levels` nested arrays: with its dict, depth levels + 1. */
static char *report_nested(size_t levels)
{
    struct buf b = {0};
    buf_puts(&b, PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") "\t<key>K</key>\n");
    buf_repeat(&b, "<array>", levels);
    buf_puts(&b, "<string>deep</string>");
    buf_repeat(&b, "</array>", levels);
    buf_puts(&b, PL_TAIL);
    return b.data;
}

static void test_depth_limit(void **state)
{
    struct mdm_message m;
    /* The top dict is level 1: MDM_MAX_DEPTH - 1 arrays inside it reach MDM_MAX_DEPTH. */
    char *body = report_nested(MDM_MAX_DEPTH - 1);
    assert_true(mdm_xml_depth_ok(body, strlen(body), MDM_MAX_DEPTH));
    parse_ok(body, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.status, MDM_STATUS_IDLE);
    mdm_message_clear(&m);
    free(body);

    body = report_nested(MDM_MAX_DEPTH);
    assert_false(mdm_xml_depth_ok(body, strlen(body), MDM_MAX_DEPTH));
    parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_TOO_DEEP, NULL);
    parse_fail(body, MDM_CHANNEL_CHECKIN, MDM_PARSE_TOO_DEEP, NULL);
    free(body);

    /* 10,000 levels: refused before libplist sees them. */
    body = report_nested(10000);
    parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_TOO_DEEP, NULL);
    free(body);

    /* Unterminated: 10,000 opening tags and nothing else. */
    struct buf b = {0};
    buf_repeat(&b, "<array>", 10000);
    parse_fail(b.data, MDM_CHANNEL_CHECKIN, MDM_PARSE_TOO_DEEP, NULL);
    free(b.data);

    /* Depth is depth, not a count of containers: many siblings at depth 4 are fine. */
    b = (struct buf){0};
    buf_puts(&b, PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") "<key>K</key><array>");
    buf_repeat(&b, "<array><dict><key>a</key><string>b</string></dict><array/></array>", 2000);
    buf_puts(&b, "</array>" PL_TAIL);
    parse_ok(b.data, MDM_CHANNEL_REPORT, &m);
    mdm_message_clear(&m);
    free(b.data);

    /* Deep, then back up, then deep again: closing tags count down. */
    b = (struct buf){0};
    buf_puts(&b, PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") "<key>K</key><array>");
    for (int i = 0; i < 5; i++) {
        buf_repeat(&b, "<array>", MDM_MAX_DEPTH - 2);
        buf_repeat(&b, "</array>", MDM_MAX_DEPTH - 2);
    }
    buf_puts(&b, "</array>" PL_TAIL);
    parse_ok(b.data, MDM_CHANNEL_REPORT, &m);
    mdm_message_clear(&m);
    free(b.data);
}

static void test_depth_scan(void **state)
{
    struct buf b = {0};
    for (unsigned n = 1; n <= 64; n++) {
        b.len = 0;
        buf_repeat(&b, "<array>", n);
        buf_repeat(&b, "</array>", n);
        assert_true(mdm_xml_depth_ok(b.data, b.len, n));
        assert_false(mdm_xml_depth_ok(b.data, b.len, n - 1));
        b.len = 0;
        buf_repeat(&b, "<dict>", n);
        buf_repeat(&b, "</dict>", n);
        assert_true(mdm_xml_depth_ok(b.data, b.len, n));
        assert_false(mdm_xml_depth_ok(b.data, b.len, n - 1));
    }
    /* Mixed, with whitespace inside the tags. */
    static const char mixed[] = "<dict ><key>a</key><array\n><dict\t></dict ></array></dict>";
    assert_true(mdm_xml_depth_ok(mixed, strlen(mixed), 3));
    assert_false(mdm_xml_depth_ok(mixed, strlen(mixed), 2));

    /* Self-closing containers do not nest. */
    b.len = 0;
    buf_puts(&b, "<dict>");
    buf_repeat(&b,
               "<key>k</key><dict/><key>l</key><array/><key>m</key><dict /><key>n</key>"
               "<array  />",
               500);
    buf_puts(&b, "</dict>");
    assert_true(mdm_xml_depth_ok(b.data, b.len, 1));
    assert_false(mdm_xml_depth_ok(b.data, b.len, 0));
    assert_true(mdm_xml_depth_ok("<dict/>", 7, 0));
    assert_true(mdm_xml_depth_ok("<array/>", 8, 0));
    assert_false(mdm_xml_depth_ok("<array>", 7, 0));
    assert_true(mdm_xml_depth_ok("", 0, 0));
    assert_true(mdm_xml_depth_ok("no tags at all", 14, 0));

    /* Only the bytes given are scanned. */
    static const char cut[] = "<array></array><array><array><array>";
    assert_true(mdm_xml_depth_ok(cut, 15, 1));
    assert_false(mdm_xml_depth_ok(cut, sizeof(cut) - 1, 2));

    /* Stray closing tags do not buy depth. */
    b.len = 0;
    buf_repeat(&b, "</array>", 100);
    buf_repeat(&b, "<array>", 3);
    assert_false(mdm_xml_depth_ok(b.data, b.len, 2));

    /* Self-closing containers inside a full-depth report are accepted. */
    b.len = 0;
    buf_puts(&b, PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") "<key>K</key>");
    buf_repeat(&b, "<array>", MDM_MAX_DEPTH - 1);
    buf_repeat(&b, "<dict/><array/><dict /><array />", 50);
    buf_repeat(&b, "</array>", MDM_MAX_DEPTH - 1);
    buf_puts(&b, PL_TAIL);
    struct mdm_message m;
    parse_ok(b.data, MDM_CHANNEL_REPORT, &m);
    mdm_message_clear(&m);
    free(b.data);
}

static void test_comments_and_cdata_refused(void **state)
{
    static const char comment[] =
        PL_HEAD "<!-- a comment -->" KS("UDID", UDID1) KS("Status", "Idle") PL_TAIL;
    assert_false(mdm_xml_depth_ok(comment, strlen(comment), MDM_MAX_DEPTH));
    struct mdm_message m;
    const char *field;
    assert_int_not_equal(
        mdm_message_parse(comment, strlen(comment), MDM_CHANNEL_REPORT, &m, &field), MDM_PARSE_OK);
    assert_null(m.plist);

    static const char cdata[] =
        PL_HEAD KS("UDID", "<![CDATA[" UDID1 "]]>") KS("Status", "Idle") PL_TAIL;
    assert_false(mdm_xml_depth_ok(cdata, strlen(cdata), MDM_MAX_DEPTH));
    assert_int_not_equal(mdm_message_parse(cdata, strlen(cdata), MDM_CHANNEL_REPORT, &m, &field),
                         MDM_PARSE_OK);
    assert_null(m.plist);

    /* A comment that would hide closing tags from the scan. */
    struct buf b = {0};
    buf_puts(&b, "<plist><dict><key>K</key>");
    buf_repeat(&b, "<array><!-- </array> -->", 100);
    assert_false(mdm_xml_depth_ok(b.data, b.len, MDM_MAX_DEPTH));
    free(b.data);
}

/* libplist skips more than comments: processing instructions and a DOCTYPE's internal subset
 * anywhere in the document, and '>' inside a quoted attribute value. Anything the depth scan
 * counts there must not let a body nest deeper than MDM_MAX_DEPTH. Each body below nests
 * `levels` arrays as libplist reads it. */
enum depth_trick { TRICK_PI, TRICK_DOCTYPE, TRICK_QUOTED_ATTRIBUTE };

static char *report_with_hidden_depth(enum depth_trick trick, size_t levels)
{
    struct buf b = {0};
    buf_puts(&b, PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") "\t<key>K</key>\n");
    for (size_t i = 1; i <= levels; i++) {
        buf_puts(&b, trick == TRICK_QUOTED_ATTRIBUTE ? "<array a=\"/>\">" : "<array>");
        if (i % 20 == 0 && trick != TRICK_QUOTED_ATTRIBUTE) {
            buf_puts(&b, trick == TRICK_PI ? "<?x " : "<!DOCTYPE x [ ");
            buf_repeat(&b, "</array>", 20);
            buf_puts(&b, trick == TRICK_PI ? "?>" : "]>");
        }
    }
    buf_puts(&b, "<string>deep</string>");
    buf_repeat(&b, "</array>", levels);
    buf_puts(&b, PL_TAIL);
    return b.data;
}

static void check_hidden_depth(enum depth_trick trick)
{
    /* Control: the same construction within the limit is what libplist reads as nested. */
    char *body = report_with_hidden_depth(trick, 10);
    struct mdm_message m;
    const char *field;
    enum mdm_parse_error e = mdm_message_parse(body, strlen(body), MDM_CHANNEL_REPORT, &m, &field);
    if (e == MDM_PARSE_OK) {
        plist_t node = plist_dict_get_item(m.plist, "K");
        for (int i = 0; i < 10; i++) {
            assert_non_null(node);
            assert_int_equal(plist_get_node_type(node), PLIST_ARRAY);
            node = plist_array_get_item(node, 0);
        }
        assert_int_equal(plist_get_node_type(node), PLIST_STRING);
        mdm_message_clear(&m);
    }
    free(body);

    /* 200 levels: four times the limit. */
    body = report_with_hidden_depth(trick, 200);
    bool scan_ok = mdm_xml_depth_ok(body, strlen(body), MDM_MAX_DEPTH);
    e = mdm_message_parse(body, strlen(body), MDM_CHANNEL_REPORT, &m, &field);
    if (e == MDM_PARSE_OK)
        mdm_message_clear(&m);
    free(body);
    if (scan_ok || e == MDM_PARSE_OK)
        print_error("a body nested 200 deep passed: mdm_xml_depth_ok=%d, parse=%s\n", scan_ok,
                    mdm_parse_error_name(e));
    assert_false(scan_ok);
    assert_int_not_equal(e, MDM_PARSE_OK);
}

static void test_depth_hidden_in_processing_instruction(void **state)
{
    check_hidden_depth(TRICK_PI);
}

static void test_depth_hidden_in_doctype_subset(void **state)
{
    check_hidden_depth(TRICK_DOCTYPE);
}

static void test_depth_hidden_by_quoted_attribute(void **state)
{
    check_hidden_depth(TRICK_QUOTED_ATTRIBUTE);
}

/* ---- UTF-8 ---- */

static void test_utf8(void **state)
{
    static const struct {
        const char *s;
        size_t len;
    } good[] = {
        {"", 0},
        {"plain ASCII ~", 13},
        {"\x7f", 1},
        {"\xc2\x80", 2},         /* U+0080, smallest 2-byte */
        {"\xc3\xa9", 2},         /* é */
        {"\xdf\xbf", 2},         /* U+07FF */
        {"\xe0\xa0\x80", 3},     /* U+0800, smallest 3-byte */
        {"\xe2\x82\xac", 3},     /* € */
        {"\xed\x9f\xbf", 3},     /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", 3},     /* U+E000, just above them */
        {"\xef\xbf\xbf", 3},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 4}, /* U+10000, smallest 4-byte */
        {"\xf0\x9f\x8d\x8e", 4}, /* 🍎 */
        {"\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF, the largest */
        {"a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x8d\x8e!", 11},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!mdm_utf8_valid(good[i].s, good[i].len))
            print_error("valid UTF-8 case %zu refused\n", i);
        assert_true(mdm_utf8_valid(good[i].s, good[i].len));
    }

    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
        {"\0", 1},     /* NUL */
        {"ab\0cd", 5}, /* NUL inside */
        {"\x80", 1},   /* lone continuation */
        {"\xbf", 1},
        {"a\x80z", 3},
        {"\xc0\x80", 2},                 /* overlong NUL */
        {"\xc0\xaf", 2},                 /* overlong '/' */
        {"\xc1\xbf", 2},                 /* overlong */
        {"\xe0\x80\x80", 3},             /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 4},         /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 4},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 3},             /* U+D800 */
        {"\xed\xbf\xbf", 3},             /* U+DFFF */
        {"\xed\xa0\xbd\xed\xb8\x80", 6}, /* CESU-8 surrogate pair */
        {"\xf4\x90\x80\x80", 4},         /* U+110000 */
        {"\xf5\x80\x80\x80", 4},         /* lead byte beyond U+10FFFF */
        {"\xf7\xbf\xbf\xbf", 4},
        {"\xf8\x88\x80\x80\x80", 5},     /* 5-byte form */
        {"\xfc\x84\x80\x80\x80\x80", 6}, /* 6-byte form */
        {"\xfe", 1},
        {"\xff", 1},
        {"\xc3", 1},     /* truncated 2-byte */
        {"\xe2\x82", 2}, /* truncated 3-byte */
        {"\xe2", 1},
        {"\xf0\x9f\x8d", 3}, /* truncated 4-byte */
        {"ok\xf0\x9f", 4},
        {"\xc3\x28", 2}, /* bad continuation */
        {"\xe2\x28\xa1", 3},
        {"\xe2\x82\x28", 3},
        {"\xf0\x28\x8c\xbc", 4},
        {"\xf0\x9f\x8d\x28", 4},
        {"\xc3\xc3\xa9", 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mdm_utf8_valid(bad[i].s, bad[i].len))
            print_error("invalid UTF-8 case %zu accepted\n", i);
        assert_false(mdm_utf8_valid(bad[i].s, bad[i].len));
    }

    /* Only len bytes are read: a valid sequence cut short is invalid, and bytes past len
     * do not matter. */
    assert_false(mdm_utf8_valid("\xe2\x82\xac", 2));
    assert_true(mdm_utf8_valid("ab\xff", 2));
    assert_true(mdm_utf8_valid("ab\0", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_lengths),
        cmocka_unit_test(test_bad_text),
        cmocka_unit_test(test_not_a_plist),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_depth_scan),
        cmocka_unit_test(test_comments_and_cdata_refused),
        cmocka_unit_test(test_depth_hidden_in_processing_instruction),
        cmocka_unit_test(test_depth_hidden_in_doctype_subset),
        cmocka_unit_test(test_depth_hidden_by_quoted_attribute),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
