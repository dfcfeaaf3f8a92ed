/* Unit tests of server/device/mdm_message.c: check-ins and command reports parsed from the peers'
 * captured plists, every refusal, the UTF-8 validator and the nesting-depth scan. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdm_message.h"

/* The tests run with the repository root as working directory. */
#define PEER_DIR "tests/testdata/peer-plists/"

#define PL_HEAD                                                                                    \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "                                      \
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"                                        \
    "<plist version=\"1.0\">\n<dict>\n"
#define PL_TAIL "</dict>\n</plist>\n"
#define KS(k, v) "\t<key>" k "</key>\n\t<string>" v "</string>\n"

#define TOPIC "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
#define UDID1 "66ADE930-5FDF-5EC4-8429-15640684C489"

/* ---- Helpers ---- */

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_repeat(struct buf *b, const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        buf_puts(b, s);
}

static char *read_peer_file(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", PEER_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        print_error("cannot open %s (the tests run from the repository root)\n", path);
    assert_non_null(f);
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    assert_true(b.len > 0);
    *len = b.len;
    return b.data;
}

static const char *channel_name(enum mdm_channel channel)
{
    return channel == MDM_CHANNEL_CHECKIN ? "check-in" : "report";
}

/* Parses a body that must be accepted. The caller clears msg. */
static void parse_ok_len(const char *body, size_t len, enum mdm_channel channel,
                         struct mdm_message *msg)
{
    const char *field = "untouched";
    enum mdm_parse_error e = mdm_message_parse(body, len, channel, msg, &field);
    if (e != MDM_PARSE_OK)
        print_error("%s refused: %s (field %s) for:\n%.*s\n", channel_name(channel),
                    mdm_parse_error_name(e), field ? field : "-", (int)(len > 2000 ? 2000 : len),
                    body);
    assert_int_equal(e, MDM_PARSE_OK);
    assert_null(field);
    assert_non_null(msg->plist);
}

static void parse_ok(const char *body, enum mdm_channel channel, struct mdm_message *msg)
{
    parse_ok_len(body, strlen(body), channel, msg);
}

/* Parses a body that must be refused with `expected`; `field` is the key that must be named (NULL:
 * none). The message must be left cleared. */
static void parse_fail_len(const char *body, size_t len, enum mdm_channel channel,
                           enum mdm_parse_error expected, const char *expected_field)
{
    struct mdm_message msg;
    memset(&msg, 0xa5, sizeof(msg));
    const char *field = "untouched";
    enum mdm_parse_error e = mdm_message_parse(body, len, channel, &msg, &field);
    if (e != expected)
        print_error("%s: expected %s, got %s (field %s) for:\n%.*s\n", channel_name(channel),
                    mdm_parse_error_name(expected), mdm_parse_error_name(e), field ? field : "-",
                    (int)(len > 2000 ? 2000 : len), body);
    assert_int_equal(e, expected);
    if (expected_field == NULL) {
        assert_null(field);
    } else {
        assert_non_null(field);
        assert_string_equal(field, expected_field);
    }
    assert_null(msg.plist);
    assert_null(msg.udid);
    assert_null(msg.topic);
    assert_null(msg.token);
    assert_null(msg.command_uuid);
    assert_null(msg.message_type);
    assert_null(msg.status_text);
}

static void parse_fail(const char *body, enum mdm_channel channel, enum mdm_parse_error expected,
                       const char *expected_field)
{
    parse_fail_len(body, strlen(body), channel, expected, expected_field);
}

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

/* ---- Real check-ins captured by the peers ---- */

static void test_nanomdm_authenticate(void **state)
{
    size_t len;
    struct mdm_message m;
    char *body = read_peer_file("nanomdm/mdm__testdata__Authenticate.1.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    assert_string_equal(m.message_type, "Authenticate");
    assert_string_equal(m.udid, "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69");
    assert_false(m.user_enrollment);
    assert_string_equal(m.topic, TOPIC);
    assert_string_equal(m.serial_number, "F5JM992LF193");
    assert_string_equal(m.product_name, "iPad2,5");
    assert_string_equal(m.os_version, "9.3.5");
    assert_string_equal(m.build_version, "13G36");
    assert_null(m.model);
    assert_null(m.model_name);
    assert_null(m.device_name);
    assert_null(m.imei);
    assert_null(m.meid);
    assert_null(m.token);
    assert_null(m.command_uuid);
    mdm_message_clear(&m);
    assert_null(m.plist);
    free(body);

    body = read_peer_file("nanomdm/mdm__testdata__Authenticate.2.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    assert_string_equal(m.udid, UDID1);
    assert_string_equal(m.topic, TOPIC);
    assert_string_equal(m.serial_number, "C02MT66KFLHH");
    assert_string_equal(m.model, "iMac14,2");
    assert_string_equal(m.model_name, "iMac");
    assert_string_equal(m.product_name, "iMac14,2");
    assert_string_equal(m.os_version, "10.12.6");
    assert_string_equal(m.build_version, "16G2136");
    assert_string_equal(m.device_name, "Fruit");
    mdm_message_clear(&m);
    free(body);

    /* The same bodies sent to the report endpoint are not reports. */
    body = read_peer_file("nanomdm/mdm__testdata__Authenticate.1.plist", &len);
    parse_fail_len(body, len, MDM_CHANNEL_REPORT, MDM_PARSE_MISSING_FIELD, "Status");
    free(body);
}

static void test_nanomdm_token_update(void **state)
{
    static const uint8_t token1[32] = {0x47, 0xe8, 0xee, 0xc0, 0x62, 0xc2, 0xf7, 0x29,
                                       0xec, 0x17, 0x03, 0xc1, 0xb3, 0xe1, 0x8f, 0x19,
                                       0x71, 0xd8, 0x5f, 0x00, 0xbe, 0x76, 0x44, 0x5d,
                                       0x34, 0x08, 0x0b, 0xaa, 0x70, 0x1b, 0x5f, 0x51};
    static const uint8_t token2[32] = {0x1b, 0xa7, 0xc9, 0x00, 0x66, 0xc5, 0x0f, 0x77,
                                       0x68, 0x9a, 0x24, 0xf3, 0xa4, 0x25, 0xca, 0xf6,
                                       0x8a, 0x30, 0x0f, 0x72, 0x9e, 0x88, 0xe4, 0x60,
                                       0xa9, 0x41, 0x60, 0x22, 0xd5, 0xd6, 0x42, 0xcc};
    size_t len;
    struct mdm_message m;
    char *body = read_peer_file("nanomdm/mdm__testdata__TokenUpdate.1.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_TOKEN_UPDATE);
    assert_string_equal(m.message_type, "TokenUpdate");
    assert_string_equal(m.udid, "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69");
    assert_string_equal(m.topic, TOPIC);
    assert_string_equal(m.push_magic, "CEFDF0BD-E342-4A27-8742-E930EA116B0A");
    assert_int_equal(m.token_len, 32);
    assert_memory_equal(m.token, token1, 32);
    assert_non_null(m.unlock_token);
    assert_int_equal(m.unlock_token_len, 1288);
    assert_memory_equal(m.unlock_token, "DATA", 4);
    assert_memory_equal(m.unlock_token + 1284, "\x1a\x4b\x16\x06", 4);
    assert_int_equal(m.awaiting_configuration, 0);
    assert_null(m.serial_number);
    mdm_message_clear(&m);
    free(body);

    body = read_peer_file("nanomdm/mdm__testdata__TokenUpdate.2.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_TOKEN_UPDATE);
    assert_string_equal(m.udid, UDID1);
    assert_string_equal(m.push_magic, "888CEB39-BFFA-40F6-89FA-B60752EB63C2");
    assert_int_equal(m.token_len, 32);
    assert_memory_equal(m.token, token2, 32);
    assert_null(m.unlock_token);
    assert_int_equal(m.unlock_token_len, 0);
    assert_int_equal(m.awaiting_configuration, 0);
    mdm_message_clear(&m);
    free(body);
}

static void test_nanomdm_device_information_report(void **state)
{
    size_t len;
    struct mdm_message m;
    char *body = read_peer_file("nanomdm/mdm__testdata__DeviceInformation.1.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.kind, MDM_REPORT);
    assert_string_equal(m.udid, UDID1);
    assert_false(m.user_enrollment);
    assert_int_equal(m.status, MDM_STATUS_ACKNOWLEDGED);
    assert_string_equal(m.status_text, "Acknowledged");
    assert_string_equal(m.command_uuid, "76eda240-5488-4989-8339-f2ae160113c4");
    /* The result keys stay in the owned plist. */
    plist_t qr = plist_dict_get_item(m.plist, "QueryResponses");
    assert_non_null(qr);
    assert_int_equal(plist_get_node_type(qr), PLIST_DICT);
    mdm_message_clear(&m);

    /* A report is not a check-in. */
    parse_fail_len(body, len, MDM_CHANNEL_CHECKIN, MDM_PARSE_MISSING_FIELD, "MessageType");
    free(body);
}

static void test_micromdm_checkins(void **state)
{
    static const char *const topic = "com.apple.mgmt.External.3a7c95f2-c214-4b53-a585-a553c2623e04";
    static const char *const udid = "A5EF1BA1-586D-4F29-B4F3-759DADAC2DDD";
    size_t len;
    struct mdm_message m;

    char *body =
        read_peer_file("micromdm/docs__user-guide__api-and-webhooks.md__Authenticate.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    assert_string_equal(m.udid, udid);
    assert_string_equal(m.topic, topic);
    assert_string_equal(m.serial_number, "C04W00D3HTD0");
    assert_string_equal(m.model, "MacBookPro14,3");
    assert_string_equal(m.model_name, "MacBook Pro");
    assert_string_equal(m.device_name, "HostName");
    assert_string_equal(m.os_version, "10.13.6");
    assert_string_equal(m.build_version, "17G65");
    mdm_message_clear(&m);
    free(body);

    body =
        read_peer_file("micromdm/docs__user-guide__api-and-webhooks.md__TokenUpdate.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_TOKEN_UPDATE);
    assert_string_equal(m.udid, udid);
    assert_string_equal(m.topic, topic);
    assert_string_equal(m.push_magic, "728F8670-4934-4A30-BADF-7B43C261FC14");
    assert_int_equal(m.token_len, 16);
    assert_memory_equal(m.token, "\x73\x71\x72\x1d\x68\x63\x1b\x7b\x66\x48\x0e\x79\x2c\x51\x48\x42",
                        16);
    assert_int_equal(m.awaiting_configuration, 0);
    mdm_message_clear(&m);
    free(body);

    body = read_peer_file("micromdm/docs__user-guide__api-and-webhooks.md__CheckOut.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_CHECKOUT);
    assert_string_equal(m.message_type, "CheckOut");
    assert_string_equal(m.udid, udid);
    assert_string_equal(m.topic, topic);
    assert_null(m.token);
    mdm_message_clear(&m);
    free(body);

    /* The "Connect" example is a command report. */
    body = read_peer_file("micromdm/docs__user-guide__api-and-webhooks.md__Connect.plist", &len);
    parse_ok_len(body, len, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.kind, MDM_REPORT);
    assert_string_equal(m.udid, udid);
    assert_int_equal(m.status, MDM_STATUS_ACKNOWLEDGED);
    assert_string_equal(m.command_uuid, "41d35de3-a343-4146-ba4b-0069bae2a54f");
    mdm_message_clear(&m);
    free(body);
}

static void test_zentral_reports(void **state)
{
    /* Every zentral file is an Acknowledged command report with UDID, Status and CommandUUID. */
    static const struct {
        const char *file, *udid, *command_uuid;
    } cases[] = {
        {"zentral/tests__mdm__testdata__certificate_list.plist", "00008020-000915083C80012E",
         "0001-CertificateList"},
        {"zentral/tests__mdm__testdata__device_information.plist",
         "9353BC9A-5CF9-4C9E-9AD4-8D1E41D5FE3E", "02CD8B7A-465F-49E6-86D6-D3ACAAE5529E"},
        {"zentral/tests__mdm__testdata__profile_list.plist", "7DD67F73-27DE-57B7-872F-C68FACCD9186",
         "ABCC7D59-00FC-45DE-995A-296B119583E8"},
        {"zentral/tests__mdm__testdata__security_info.plist",
         "9353BC9A-5CF9-4C9E-9AD4-8D1E41D5FE3E", "9A105E87-EC35-4F65-A265-423CFB92D624"},
        {"zentral/tests__mdm__testdata__security_info_ios.plist",
         "cb48a725986c8b4e23b6ca68e5b6941d073c990f", "9A105E87-EC35-4F65-A265-423CFB92D624"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        struct mdm_message m;
        char *body = read_peer_file(cases[i].file, &len);
        parse_ok_len(body, len, MDM_CHANNEL_REPORT, &m);
        assert_int_equal(m.kind, MDM_REPORT);
        assert_string_equal(m.udid, cases[i].udid);
        assert_false(m.user_enrollment);
        assert_int_equal(m.status, MDM_STATUS_ACKNOWLEDGED);
        assert_string_equal(m.status_text, "Acknowledged");
        assert_string_equal(m.command_uuid, cases[i].command_uuid);
        mdm_message_clear(&m);
        parse_fail_len(body, len, MDM_CHANNEL_CHECKIN, MDM_PARSE_MISSING_FIELD, "MessageType");
        free(body);
    }
}

/* ---- Synthetic check-ins ---- */

static void test_user_enrollment(void **state)
{
    struct mdm_message m;
    parse_ok(PL_HEAD KS("MessageType", "Authenticate") KS("EnrollmentID", "ENR-1234")
                 KS("Topic", TOPIC) PL_TAIL,
             MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_AUTHENTICATE);
    assert_string_equal(m.udid, "ENR-1234");
    assert_true(m.user_enrollment);
    mdm_message_clear(&m);

    parse_ok(PL_HEAD KS("EnrollmentID", "ENR-1234") KS("Status", "Idle") PL_TAIL,
             MDM_CHANNEL_REPORT, &m);
    assert_string_equal(m.udid, "ENR-1234");
    assert_true(m.user_enrollment);
    mdm_message_clear(&m);

    /* With both, the UDID is the id and this is not a User Enrollment. */
    parse_ok(PL_HEAD KS("UDID", UDID1) KS("EnrollmentID", "ENR-1234") KS("Status", "Idle") PL_TAIL,
             MDM_CHANNEL_REPORT, &m);
    assert_string_equal(m.udid, UDID1);
    assert_false(m.user_enrollment);
    mdm_message_clear(&m);

    parse_fail(
        PL_HEAD KS("MessageType", "Authenticate") "<key>EnrollmentID</key><integer>1</integer>" KS(
            "Topic", TOPIC) PL_TAIL,
        MDM_CHANNEL_CHECKIN, MDM_PARSE_BAD_FIELD, "EnrollmentID");
}

static void test_checkin_optional_fields(void **state)
{
    struct mdm_message m;
    /* CheckOut does not need a Topic. */
    parse_ok(PL_HEAD KS("MessageType", "CheckOut") KS("UDID", UDID1) PL_TAIL, MDM_CHANNEL_CHECKIN,
             &m);
    assert_int_equal(m.kind, MDM_CHECKOUT);
    assert_null(m.topic);
    mdm_message_clear(&m);

    /* AwaitingConfiguration true, and absent. */
    parse_ok(PL_HEAD KS("MessageType", "TokenUpdate") KS("UDID", UDID1) KS("Topic", TOPIC)
                 KS("PushMagic", "pm") "<key>Token</key><data>AQID</data>"
                                       "<key>AwaitingConfiguration</key><true/>" PL_TAIL,
             MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.awaiting_configuration, 1);
    assert_int_equal(m.token_len, 3);
    assert_memory_equal(m.token, "\x01\x02\x03", 3);
    mdm_message_clear(&m);
    parse_ok(PL_HEAD KS("MessageType", "TokenUpdate") KS("UDID", UDID1) KS("Topic", TOPIC)
                 KS("PushMagic", "pm") "<key>Token</key><data>AQID</data>" PL_TAIL,
             MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.awaiting_configuration, -1);
    mdm_message_clear(&m);

    /* Entities are decoded; leading BOM-less whitespace before the prolog is fine. */
    parse_ok("\r\n  " PL_HEAD KS("MessageType", "CheckOut") KS("UDID", "a&amp;b&lt;c&#x41;")
                 PL_TAIL,
             MDM_CHANNEL_CHECKIN, &m);
    assert_string_equal(m.udid, "a&b<cA");
    mdm_message_clear(&m);
}

static void test_unsupported_checkins(void **state)
{
    static const char *const types[] = {"UserAuthenticate",  "SetBootstrapToken",
                                        "GetBootstrapToken", "DeclarativeManagement",
                                        "GetToken",          "ReturnToService"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 PL_HEAD KS("MessageType", "%s") KS("UDID", UDID1) KS("UserID", "U-1")
                     KS("Topic", TOPIC) PL_TAIL,
                 types[i]);
        struct mdm_message m;
        parse_ok(body, MDM_CHANNEL_CHECKIN, &m);
        assert_int_equal(m.kind, MDM_CHECKIN_UNSUPPORTED);
        assert_string_equal(m.message_type, types[i]);
        assert_string_equal(m.udid, UDID1);
        /* message_type is a static string: it outlives the message (valgrind checks this). */
        const char *type = m.message_type;
        mdm_message_clear(&m);
        assert_string_equal(type, types[i]);
    }

    /* Unsupported even without an id: the body is well-formed, the type just is not served. */
    struct mdm_message m;
    parse_ok(PL_HEAD KS("MessageType", "UserAuthenticate") PL_TAIL, MDM_CHANNEL_CHECKIN, &m);
    assert_int_equal(m.kind, MDM_CHECKIN_UNSUPPORTED);
    mdm_message_clear(&m);
}

static void test_checkin_errors(void **state)
{
    const enum mdm_channel c = MDM_CHANNEL_CHECKIN;
    /* MessageType */
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Topic", TOPIC) PL_TAIL, c, MDM_PARSE_MISSING_FIELD,
               "MessageType");
    parse_fail(PL_HEAD "<key>MessageType</key><integer>1</integer>" KS("UDID", UDID1) PL_TAIL, c,
               MDM_PARSE_BAD_FIELD, "MessageType");
    parse_fail(PL_HEAD KS("MessageType", "Authenticat") KS("UDID", UDID1) KS("Topic", TOPIC)
                   PL_TAIL,
               c, MDM_PARSE_UNKNOWN_TYPE, "MessageType");
    parse_fail(PL_HEAD KS("MessageType", "authenticate") KS("UDID", UDID1) KS("Topic", TOPIC)
                   PL_TAIL,
               c, MDM_PARSE_UNKNOWN_TYPE, "MessageType");
    parse_fail(PL_HEAD KS("MessageType", "") KS("UDID", UDID1) PL_TAIL, c, MDM_PARSE_UNKNOWN_TYPE,
               "MessageType");

    /* UDID */
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("Topic", TOPIC) PL_TAIL, c,
               MDM_PARSE_MISSING_FIELD, "UDID");
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", "") KS("Topic", TOPIC) PL_TAIL,
               c, MDM_PARSE_MISSING_FIELD, "UDID");
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") "<key>UDID</key><integer>42</integer>" KS(
                   "Topic", TOPIC) PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "UDID");
    parse_fail(PL_HEAD KS("MessageType", "CheckOut") "<key>UDID</key><data>AQID</data>" PL_TAIL, c,
               MDM_PARSE_BAD_FIELD, "UDID");

    /* Topic */
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1) PL_TAIL, c,
               MDM_PARSE_MISSING_FIELD, "Topic");
    parse_fail(PL_HEAD KS("MessageType", "TokenUpdate") KS("UDID", UDID1)
                   KS("PushMagic", "p") "<key>Token</key><data>AQID</data>" PL_TAIL,
               c, MDM_PARSE_MISSING_FIELD, "Topic");
    parse_fail(PL_HEAD KS("MessageType", "CheckOut")
                   KS("UDID", UDID1) "<key>Topic</key><true/>" PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "Topic");

    /* Authenticate's strings */
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1)
                   KS("Topic", TOPIC) "<key>SerialNumber</key><integer>7</integer>" PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "SerialNumber");
    parse_fail(PL_HEAD KS("MessageType", "Authenticate") KS("UDID", UDID1)
                   KS("Topic", TOPIC) "<key>DeviceName</key><array/>" PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "DeviceName");

    /* TokenUpdate */
#define TU_HEAD PL_HEAD KS("MessageType", "TokenUpdate") KS("UDID", UDID1) KS("Topic", TOPIC)
    parse_fail(TU_HEAD KS("PushMagic", "pm") PL_TAIL, c, MDM_PARSE_MISSING_FIELD, "Token");
    parse_fail(TU_HEAD KS("PushMagic", "pm") "<key>Token</key><data></data>" PL_TAIL, c,
               MDM_PARSE_MISSING_FIELD, "Token");
    parse_fail(TU_HEAD KS("PushMagic", "pm") KS("Token", "R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNA==")
                   PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "Token");
    parse_fail(TU_HEAD "<key>Token</key><data>AQID</data>" PL_TAIL, c, MDM_PARSE_MISSING_FIELD,
               "PushMagic");
    parse_fail(TU_HEAD KS("PushMagic", "") "<key>Token</key><data>AQID</data>" PL_TAIL, c,
               MDM_PARSE_MISSING_FIELD, "PushMagic");
    parse_fail(TU_HEAD
               "<key>PushMagic</key><data>AQID</data><key>Token</key><data>AQID</data>" PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "PushMagic");
    parse_fail(TU_HEAD KS("PushMagic", "pm") "<key>Token</key><data>AQID</data>" KS("UnlockToken",
                                                                                    "abc") PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "UnlockToken");
    parse_fail(TU_HEAD KS("PushMagic", "pm") "<key>Token</key><data>AQID</data>" KS(
                   "AwaitingConfiguration", "false") PL_TAIL,
               c, MDM_PARSE_BAD_FIELD, "AwaitingConfiguration");

    /* A push token larger than MDM_MAX_TOKEN_LEN (1536 bytes, base64). */
    struct buf b = {0};
    buf_puts(&b, TU_HEAD KS("PushMagic", "pm") "<key>Token</key><data>");
    buf_repeat(&b, "AAAA", 512);
    buf_puts(&b, "</data>" PL_TAIL);
    parse_fail(b.data, c, MDM_PARSE_BAD_FIELD, "Token");
    /* Exactly MDM_MAX_TOKEN_LEN (1023 + 1 bytes) is accepted. */
    b.len = 0;
    buf_puts(&b, TU_HEAD KS("PushMagic", "pm") "<key>Token</key><data>");
    buf_repeat(&b, "AAAA", 341);
    buf_puts(&b, "AA==</data>" PL_TAIL);
    struct mdm_message m;
    parse_ok(b.data, c, &m);
    assert_int_equal(m.token_len, MDM_MAX_TOKEN_LEN);
    mdm_message_clear(&m);
    free(b.data);
#undef TU_HEAD
}

/* ---- Reports ---- */

static void test_report_statuses(void **state)
{
    static const struct {
        const char *text;
        enum mdm_status status;
    } cases[] = {
        {"Acknowledged", MDM_STATUS_ACKNOWLEDGED},
        {"Error", MDM_STATUS_ERROR},
        {"CommandFormatError", MDM_STATUS_COMMAND_FORMAT_ERROR},
        {"NotNow", MDM_STATUS_NOT_NOW},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024];
        snprintf(body, sizeof(body),
                 PL_HEAD KS("UDID", UDID1) KS("Status", "%s") KS("CommandUUID", "CMD-%zu") PL_TAIL,
                 cases[i].text, i);
        struct mdm_message m;
        parse_ok(body, MDM_CHANNEL_REPORT, &m);
        assert_int_equal(m.kind, MDM_REPORT);
        assert_int_equal(m.status, cases[i].status);
        assert_string_equal(m.status_text, cases[i].text);
        char uuid[32];
        snprintf(uuid, sizeof(uuid), "CMD-%zu", i);
        assert_string_equal(m.command_uuid, uuid);
        const char *status_text = m.status_text;
        mdm_message_clear(&m);
        assert_string_equal(status_text, cases[i].text); /* static */

        /* Without a CommandUUID, or an empty one: refused. */
        snprintf(body, sizeof(body), PL_HEAD KS("UDID", UDID1) KS("Status", "%s") PL_TAIL,
                 cases[i].text);
        parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_MISSING_FIELD, "CommandUUID");
        snprintf(body, sizeof(body),
                 PL_HEAD KS("UDID", UDID1) KS("Status", "%s") KS("CommandUUID", "") PL_TAIL,
                 cases[i].text);
        parse_fail(body, MDM_CHANNEL_REPORT, MDM_PARSE_MISSING_FIELD, "CommandUUID");
    }

    /* The Error report of the spec, with its ErrorChain. */
    struct mdm_message m;
    parse_ok(
        PL_HEAD KS("UDID", UDID1) KS("Status", "Error") KS(
            "CommandUUID",
            "C-1") "<key>ErrorChain</key><array><dict><key>ErrorCode</key><integer>12021</integer>"
                   "<key>ErrorDomain</key><string>MCMDMErrorDomain</string>"
                   "<key>LocalizedDescription</key><string>Unknown command</string>"
                   "<key>USEnglishDescription</key><string>Unknown "
                   "command</string></dict></array>" PL_TAIL,
        MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.status, MDM_STATUS_ERROR);
    assert_string_equal(m.command_uuid, "C-1");
    mdm_message_clear(&m);
}

static void test_report_idle(void **state)
{
    struct mdm_message m;
    parse_ok(PL_HEAD KS("UDID", UDID1) KS("Status", "Idle") PL_TAIL, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.kind, MDM_REPORT);
    assert_int_equal(m.status, MDM_STATUS_IDLE);
    assert_string_equal(m.status_text, "Idle");
    assert_null(m.command_uuid);
    mdm_message_clear(&m);

    /* An Idle report answers no command: a CommandUUID in it is ignored. */
    parse_ok(PL_HEAD KS("UDID", UDID1) KS("Status", "Idle")
                 KS("CommandUUID", "76eda240-5488-4989-8339-f2ae160113c4") PL_TAIL,
             MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.status, MDM_STATUS_IDLE);
    assert_null(m.command_uuid);
    mdm_message_clear(&m);
}

static void test_report_errors(void **state)
{
    const enum mdm_channel r = MDM_CHANNEL_REPORT;
    parse_fail(PL_HEAD KS("UDID", UDID1) PL_TAIL, r, MDM_PARSE_MISSING_FIELD, "Status");
    parse_fail(PL_HEAD KS("UDID", UDID1) "<key>Status</key><integer>0</integer>" PL_TAIL, r,
               MDM_PARSE_BAD_FIELD, "Status");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Status", "Done") KS("CommandUUID", "C") PL_TAIL, r,
               MDM_PARSE_UNKNOWN_TYPE, "Status");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Status", "acknowledged") KS("CommandUUID", "C")
                   PL_TAIL,
               r, MDM_PARSE_UNKNOWN_TYPE, "Status");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Status", "") PL_TAIL, r, MDM_PARSE_UNKNOWN_TYPE,
               "Status");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS("Status", "Acknowledged") PL_TAIL, r,
               MDM_PARSE_MISSING_FIELD, "CommandUUID");
    parse_fail(PL_HEAD KS("UDID", UDID1) KS(
                   "Status", "Acknowledged") "<key>CommandUUID</key><integer>5</integer>" PL_TAIL,
               r, MDM_PARSE_BAD_FIELD, "CommandUUID");
    parse_fail(PL_HEAD KS("Status", "Idle") PL_TAIL, r, MDM_PARSE_MISSING_FIELD, "UDID");
    parse_fail(PL_HEAD "<key>UDID</key><integer>1</integer>" KS("Status", "Idle") PL_TAIL, r,
               MDM_PARSE_BAD_FIELD, "UDID");
}

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
        cmocka_unit_test(test_nanomdm_authenticate),
        cmocka_unit_test(test_nanomdm_token_update),
        cmocka_unit_test(test_nanomdm_device_information_report),
        cmocka_unit_test(test_micromdm_checkins),
        cmocka_unit_test(test_zentral_reports),
        cmocka_unit_test(test_user_enrollment),
        cmocka_unit_test(test_checkin_optional_fields),
        cmocka_unit_test(test_unsupported_checkins),
        cmocka_unit_test(test_checkin_errors),
        cmocka_unit_test(test_report_statuses),
        cmocka_unit_test(test_report_idle),
        cmocka_unit_test(test_report_errors),
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
