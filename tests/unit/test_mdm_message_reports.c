/* Unit tests of server/device/mdm_message.c, command reports: the peers' captured reports, every
 * Status, Idle, and every refusal of a report's fields.
 *
 * Shared helpers: mdm_message_fixture.h. */
#include "mdm_message_fixture.h"

#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Real reports captured by the peers ---- */

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

/* ---- Synthetic reports ---- */

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

/* An attestation answer as stored beside its verdict: the certificates gone, their array left
 * empty in its place, everything else as the device sent it. */
static void test_report_without_attestation(void **state)
{
    (void)state;
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
        "<key>UDID</key><string>" UDID1 "</string>"
        "<key>CommandUUID</key><string>C1</string>"
        "<key>Status</key><string>Acknowledged</string>"
        "<key>QueryResponses</key><dict>"
        "<key>OSVersion</key><string>17.4</string>"
        "<key>DevicePropertiesAttestation</key><array><data>AQID</data><data>BAUG</data></array>"
        "<key>SerialNumber</key><string>S1</string>"
        "</dict></dict></plist>";
    struct mdm_message m;
    parse_ok(body, MDM_CHANNEL_REPORT, &m);
    assert_int_equal(m.attestation, MDM_ATTESTATION_PRESENT);
    uint8_t *stored = NULL;
    size_t len = 0;
    assert_true(mdm_message_report_without_attestation(&m, &stored, &len));
    assert_true(len > 8 && memcmp(stored, "bplist00", 8) == 0);
    /* The message itself is untouched: its certificates still borrow from it. */
    assert_int_equal(m.attest_cert_count, 2);
    assert_memory_equal(m.attest_certs[1], "\x04\x05\x06", 3);

    plist_t root = NULL;
    plist_from_bin((const char *)stored, (uint32_t)len, &root);
    assert_non_null(root);
    plist_t qr = plist_dict_get_item(root, "QueryResponses");
    const char *const order[] = {"OSVersion", "DevicePropertiesAttestation", "SerialNumber"};
    plist_dict_iter it = NULL;
    plist_dict_new_iter(qr, &it);
    for (size_t i = 0; i < 3; i++) {
        char *key = NULL;
        plist_t value = NULL;
        plist_dict_next_item(qr, it, &key, &value);
        assert_non_null(key);
        assert_string_equal(key, order[i]);
        if (i == 1) {
            assert_int_equal(plist_get_node_type(value), PLIST_ARRAY);
            assert_int_equal(plist_array_get_size(value), 0);
        }
        free(key);
    }
    free(it);
    plist_free(root);
    free(stored);
    mdm_message_clear(&m);

    /* Nothing to take out: no certificates, or a malformed attestation kept as sent. */
    static const char *const others[] = {
        "<plist version=\"1.0\"><dict><key>UDID</key><string>" UDID1 "</string>"
        "<key>CommandUUID</key><string>C1</string><key>Status</key><string>Acknowledged</string>"
        "<key>QueryResponses</key><dict><key>OSVersion</key><string>17.4</string></dict>"
        "</dict></plist>",
        "<plist version=\"1.0\"><dict><key>UDID</key><string>" UDID1 "</string>"
        "<key>CommandUUID</key><string>C1</string><key>Status</key><string>Acknowledged</string>"
        "<key>QueryResponses</key><dict><key>DevicePropertiesAttestation</key><array/></dict>"
        "</dict></plist>",
        "<plist version=\"1.0\"><dict><key>UDID</key><string>" UDID1 "</string>"
        "<key>Status</key><string>Idle</string></dict></plist>",
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        parse_ok(others[i], MDM_CHANNEL_REPORT, &m);
        assert_false(mdm_message_report_without_attestation(&m, &stored, &len));
        assert_null(stored);
        mdm_message_clear(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nanomdm_device_information_report),
        cmocka_unit_test(test_zentral_reports),
        cmocka_unit_test(test_report_statuses),
        cmocka_unit_test(test_report_idle),
        cmocka_unit_test(test_report_errors),
        cmocka_unit_test(test_report_without_attestation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
