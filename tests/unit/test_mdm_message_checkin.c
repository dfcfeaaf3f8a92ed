/* Unit tests of server/device/mdm_message.c, check-ins: Authenticate, TokenUpdate and CheckOut
 * parsed from the peers' captured plists and from synthetic ones (User Enrollment, optional fields,
 * the check-ins vouchd does not serve), and every refusal of a check-in's fields.
 *
 * Shared helpers: mdm_message_fixture.h. */
#include "mdm_message_fixture.h"

#include <stdio.h>
#include <stdlib.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nanomdm_authenticate),    cmocka_unit_test(test_nanomdm_token_update),
        cmocka_unit_test(test_micromdm_checkins),       cmocka_unit_test(test_user_enrollment),
        cmocka_unit_test(test_checkin_optional_fields), cmocka_unit_test(test_unsupported_checkins),
        cmocka_unit_test(test_checkin_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
