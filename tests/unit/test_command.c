/* Unit tests of server/device/command.c: checking an operator's command plist, adding a
 * CommandUUID, and the XML handed to devices. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "mdm_message.h"

#define PL_HEAD                                                                                    \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "                                      \
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"                                        \
    "<plist version=\"1.0\">\n"
#define PL_TAIL "</plist>\n"

#define DEVICE_INFORMATION_UUID "0001-DeviceInformation-7F3A"

static const char device_information[] =
    PL_HEAD "<dict>\n"
            "\t<key>CommandUUID</key>\n\t<string>" DEVICE_INFORMATION_UUID "</string>\n"
            "\t<key>Command</key>\n\t<dict>\n"
            "\t\t<key>RequestType</key>\n\t\t<string>DeviceInformation</string>\n"
            "\t\t<key>Queries</key>\n\t\t<array>\n"
            "\t\t\t<string>UDID</string>\n\t\t\t<string>SerialNumber</string>\n"
            "\t\t\t<string>OSVersion</string>\n\t\t</array>\n"
            "\t</dict>\n"
            "</dict>\n" PL_TAIL;

/* Whether s has the shape of an upper-case version-4 UUID (RFC 4122 variant). */
static bool is_uuid_v4(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i]) || islower((unsigned char)s[i])) {
            return false;
        }
    }
    return s[14] == '4' && strchr("89AB", s[19]) != NULL;
}

static void prepare_ok_len(const char *body, size_t len, struct prepared_command *cmd)
{
    char err[256] = "";
    bool ok = command_prepare(body, len, cmd, err, sizeof(err));
    if (!ok)
        print_error("command refused: %s\nfor:\n%.*s\n", err, (int)len, body);
    assert_true(ok);
    assert_non_null(cmd->xml);
    assert_true(cmd->xml_len > 0);
}

static void prepare_ok(const char *body, struct prepared_command *cmd)
{
    prepare_ok_len(body, strlen(body), cmd);
}

/* A refusal must come with a message (containing `needle` when given) and no output. */
static void prepare_fail_len(const char *body, size_t len, const char *needle)
{
    struct prepared_command cmd;
    memset(&cmd, 0xa5, sizeof(cmd));
    char err[256] = "";
    bool ok = command_prepare(body, len, &cmd, err, sizeof(err));
    if (ok) {
        print_error("command accepted, expected a refusal, for:\n%.*s\n",
                    (int)(len > 300 ? 300 : len), body);
        command_clear(&cmd);
        fail();
    }
    assert_true(err[0] != '\0');
    if (needle != NULL && strstr(err, needle) == NULL)
        print_error("message '%s' does not mention '%s'\n", err, needle);
    if (needle != NULL)
        assert_non_null(strstr(err, needle));
    assert_null(cmd.xml);
    assert_int_equal(cmd.xml_len, 0);
}

static void prepare_fail(const char *body, const char *needle)
{
    prepare_fail_len(body, strlen(body), needle);
}

/* Parses the prepared XML back, as a device would. The caller frees the result. */
static plist_t parse_back(const struct prepared_command *cmd)
{
    plist_t root = NULL;
    plist_from_xml(cmd->xml, (uint32_t)cmd->xml_len, &root);
    assert_non_null(root);
    assert_int_equal(plist_get_node_type(root), PLIST_DICT);
    return root;
}

static const char *dict_string(plist_t dict, const char *key)
{
    plist_t node = plist_dict_get_item(dict, key);
    assert_non_null(node);
    assert_int_equal(plist_get_node_type(node), PLIST_STRING);
    return plist_get_string_ptr(node, NULL);
}

/* ---- Accepted commands ---- */

static void test_keeps_command_uuid(void **state)
{
    struct prepared_command cmd;
    prepare_ok(device_information, &cmd);
    assert_string_equal(cmd.uuid, DEVICE_INFORMATION_UUID);
    assert_string_equal(cmd.request_type, "DeviceInformation");
    assert_null(memchr(cmd.xml, '\0', cmd.xml_len)); /* length-delimited, no NUL inside */
    assert_memory_equal(cmd.xml, "<?xml", 5);

    plist_t root = parse_back(&cmd);
    assert_int_equal(plist_dict_get_size(root), 2);
    assert_string_equal(dict_string(root, "CommandUUID"), DEVICE_INFORMATION_UUID);
    plist_t command = plist_dict_get_item(root, "Command");
    assert_non_null(command);
    assert_string_equal(dict_string(command, "RequestType"), "DeviceInformation");
    /* The command's own keys are kept. */
    plist_t queries = plist_dict_get_item(command, "Queries");
    assert_non_null(queries);
    assert_int_equal(plist_get_node_type(queries), PLIST_ARRAY);
    assert_int_equal(plist_array_get_size(queries), 3);
    assert_string_equal(plist_get_string_ptr(plist_array_get_item(queries, 1), NULL),
                        "SerialNumber");
    plist_free(root);
    command_clear(&cmd);
    assert_null(cmd.xml);
    assert_int_equal(cmd.xml_len, 0);
    assert_string_equal(cmd.uuid, "");
}

static void test_adds_command_uuid(void **state)
{
    static const char body[] = PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key>"
                                       "<string>ProfileList</string><key>ManagedOnly</key><true/>"
                                       "</dict></dict>" PL_TAIL;
    struct prepared_command cmd;
    prepare_ok(body, &cmd);
    if (!is_uuid_v4(cmd.uuid))
        print_error("generated CommandUUID '%s' is not an upper-case v4 UUID\n", cmd.uuid);
    assert_true(is_uuid_v4(cmd.uuid));
    assert_string_equal(cmd.request_type, "ProfileList");
    assert_non_null(memmem(cmd.xml, cmd.xml_len, cmd.uuid, strlen(cmd.uuid)));

    plist_t root = parse_back(&cmd);
    assert_string_equal(dict_string(root, "CommandUUID"), cmd.uuid);
    plist_t command = plist_dict_get_item(root, "Command");
    assert_string_equal(dict_string(command, "RequestType"), "ProfileList");
    plist_t managed = plist_dict_get_item(command, "ManagedOnly");
    assert_non_null(managed);
    assert_int_equal(plist_get_node_type(managed), PLIST_BOOLEAN);
    plist_free(root);

    /* The device's report for it would parse with that CommandUUID. */
    char report[512];
    snprintf(report, sizeof(report),
             PL_HEAD "<dict><key>UDID</key><string>U</string><key>Status</key>"
                     "<string>Acknowledged</string><key>CommandUUID</key><string>%s</string>"
                     "</dict>" PL_TAIL,
             cmd.uuid);
    struct mdm_message m;
    const char *field;
    assert_int_equal(mdm_message_parse(report, strlen(report), MDM_CHANNEL_REPORT, &m, &field),
                     MDM_PARSE_OK);
    assert_string_equal(m.command_uuid, cmd.uuid);
    mdm_message_clear(&m);

    /* Each preparation of the same body gets its own UUID. */
    struct prepared_command cmd2;
    prepare_ok(body, &cmd2);
    assert_true(is_uuid_v4(cmd2.uuid));
    assert_string_not_equal(cmd.uuid, cmd2.uuid);
    command_clear(&cmd);
    command_clear(&cmd2);
}

static void test_limits_accepted(void **state)
{
    /* RequestType and CommandUUID at their maximum length. */
    char rt[COMMAND_MAX_REQUEST_TYPE + 1];
    memset(rt, 'R', COMMAND_MAX_REQUEST_TYPE);
    rt[COMMAND_MAX_REQUEST_TYPE] = '\0';
    char uuid[COMMAND_MAX_UUID + 1];
    memset(uuid, 'u', COMMAND_MAX_UUID);
    uuid[COMMAND_MAX_UUID] = '\0';
    char body[1024];
    snprintf(body, sizeof(body),
             "<plist><dict><key>CommandUUID</key><string>%s</string><key>Command</key><dict>"
             "<key>RequestType</key><string>%s</string></dict></dict></plist>",
             uuid, rt);
    struct prepared_command cmd;
    prepare_ok(body, &cmd);
    assert_string_equal(cmd.uuid, uuid);
    assert_string_equal(cmd.request_type, rt);
    command_clear(&cmd);

    /* Non-ASCII UTF-8 is fine; entities are decoded. */
    prepare_ok("<plist><dict><key>CommandUUID</key><string>caf\xc3\xa9-&amp;-1</string>"
               "<key>Command</key><dict><key>RequestType</key><string>Settings</string>"
               "</dict></dict></plist>",
               &cmd);
    assert_string_equal(cmd.uuid, "caf\xc3\xa9-&-1");
    plist_t root = parse_back(&cmd);
    assert_string_equal(dict_string(root, "CommandUUID"), "caf\xc3\xa9-&-1");
    plist_free(root);
    command_clear(&cmd);

    /* Nesting up to MDM_MAX_DEPTH is accepted (root dict + Command dict + 46 arrays). */
    char *deep = malloc(64 * 1024);
    assert_non_null(deep);
    size_t n = (size_t)snprintf(deep, 1024,
                                "<plist><dict><key>Command</key><dict><key>RequestType</key>"
                                "<string>Settings</string><key>Settings</key>");
    for (int i = 0; i < MDM_MAX_DEPTH - 2; i++)
        n += (size_t)snprintf(deep + n, 16, "<array>");
    for (int i = 0; i < MDM_MAX_DEPTH - 2; i++)
        n += (size_t)snprintf(deep + n, 16, "</array>");
    n += (size_t)snprintf(deep + n, 64, "</dict></dict></plist>");
    prepare_ok_len(deep, n, &cmd);
    command_clear(&cmd);
    free(deep);
}

/* ---- Refused commands ---- */

static void test_refusals(void **state)
{
    /* Not a command plist at all. */
    prepare_fail_len("", 0, NULL);
    prepare_fail("garbage", NULL);
    prepare_fail("{\"Command\": {\"RequestType\": \"DeviceInformation\"}}", NULL);
    prepare_fail("<plist><dict><key>Command</key><dict><key>RequestType</key>", NULL);
    prepare_fail("<plist><dict><key>Command</key><banana/></dict></plist>", NULL);

    /* Not a dict at the top. */
    prepare_fail(PL_HEAD "<array><dict><key>Command</key><dict><key>RequestType</key>"
                         "<string>DeviceInformation</string></dict></dict></array>" PL_TAIL,
                 "dict");
    prepare_fail(PL_HEAD "<string>DeviceInformation</string>" PL_TAIL, "dict");

    /* Command missing or not a dict. */
    prepare_fail(PL_HEAD "<dict><key>CommandUUID</key><string>x</string></dict>" PL_TAIL,
                 "Command");
    prepare_fail(PL_HEAD
                 "<dict><key>RequestType</key><string>DeviceInformation</string></dict>" PL_TAIL,
                 "Command");
    prepare_fail(PL_HEAD
                 "<dict><key>Command</key><string>DeviceInformation</string></dict>" PL_TAIL,
                 "Command");
    prepare_fail(PL_HEAD "<dict><key>Command</key><array><string>RequestType</string></array>"
                         "</dict>" PL_TAIL,
                 "Command");

    /* RequestType missing, empty, not a string, too long, not UTF-8. */
    prepare_fail(PL_HEAD
                 "<dict><key>Command</key><dict><key>Queries</key><array/></dict></dict>" PL_TAIL,
                 "RequestType");
    prepare_fail(PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key><string></string>"
                         "</dict></dict>" PL_TAIL,
                 "RequestType");
    prepare_fail(PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key><string/>"
                         "</dict></dict>" PL_TAIL,
                 "RequestType");
    prepare_fail(PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key><integer>1</integer>"
                         "</dict></dict>" PL_TAIL,
                 "RequestType");
    prepare_fail(PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key><data>AQID</data>"
                         "</dict></dict>" PL_TAIL,
                 "RequestType");
    prepare_fail(PL_HEAD "<dict><key>Command</key><dict><key>RequestType</key>"
                         "<string>Device\xffInformation</string></dict></dict>" PL_TAIL,
                 "RequestType");
    char rt[COMMAND_MAX_REQUEST_TYPE + 2];
    memset(rt, 'R', COMMAND_MAX_REQUEST_TYPE + 1);
    rt[COMMAND_MAX_REQUEST_TYPE + 1] = '\0';
    char body[1024];
    snprintf(body, sizeof(body),
             "<plist><dict><key>Command</key><dict><key>RequestType</key><string>%s</string>"
             "</dict></dict></plist>",
             rt);
    prepare_fail(body, "RequestType");

    /* CommandUUID not a string, empty, too long, not UTF-8. */
#define CMD "<key>Command</key><dict><key>RequestType</key><string>DeviceLock</string></dict>"
    prepare_fail(PL_HEAD "<dict>" CMD "<key>CommandUUID</key><integer>7</integer></dict>" PL_TAIL,
                 "CommandUUID");
    prepare_fail(PL_HEAD "<dict>" CMD "<key>CommandUUID</key><data>AQID</data></dict>" PL_TAIL,
                 "CommandUUID");
    prepare_fail(PL_HEAD "<dict>" CMD "<key>CommandUUID</key><dict/></dict>" PL_TAIL,
                 "CommandUUID");
    prepare_fail(PL_HEAD "<dict>" CMD "<key>CommandUUID</key><string></string></dict>" PL_TAIL,
                 "CommandUUID");
    prepare_fail(PL_HEAD "<dict>" CMD
                         "<key>CommandUUID</key><string>\xed\xa0\x80</string></dict>" PL_TAIL,
                 "CommandUUID");
    char uuid[COMMAND_MAX_UUID + 2];
    memset(uuid, 'u', COMMAND_MAX_UUID + 1);
    uuid[COMMAND_MAX_UUID + 1] = '\0';
    snprintf(body, sizeof(body),
             "<plist><dict>" CMD "<key>CommandUUID</key><string>%s</string></dict></plist>", uuid);
    prepare_fail(body, "CommandUUID");
#undef CMD
}

static void test_binary_and_deep_refused(void **state)
{
    /* The same command as a binary plist (NanoMDM takes them): accepted, stored as XML. */
    plist_t root = NULL;
    plist_from_xml(device_information, (uint32_t)strlen(device_information), &root);
    assert_non_null(root);
    char *bin = NULL;
    uint32_t bin_len = 0;
    plist_to_bin(root, &bin, &bin_len);
    assert_non_null(bin);
    assert_memory_equal(bin, "bplist00", 8);
    struct prepared_command from_bin;
    prepare_ok_len(bin, bin_len, &from_bin);
    assert_memory_equal(from_bin.xml, "<?xml", 5);
    command_clear(&from_bin);
    plist_to_bin_free(bin);

    /* Binary, nested beyond MDM_MAX_DEPTH: refused before libplist reads it. */
    plist_t deep_root = plist_new_dict(), cmd_dict = plist_new_dict(), inner = plist_new_array();
    for (int i = 0; i < MDM_MAX_DEPTH + 2; i++) {
        plist_t outer = plist_new_array();
        plist_array_append_item(outer, inner);
        inner = outer;
    }
    plist_dict_set_item(cmd_dict, "RequestType", plist_new_string("Settings"));
    plist_dict_set_item(cmd_dict, "Settings", inner);
    plist_dict_set_item(deep_root, "Command", cmd_dict);
    bin = NULL;
    plist_to_bin(deep_root, &bin, &bin_len);
    assert_non_null(bin);
    prepare_fail_len(bin, bin_len, "binary");
    plist_to_bin_free(bin);
    plist_free(deep_root);
    plist_free(root);

    /* Just the magic. */
    prepare_fail_len("bplist00", 8, NULL);

    /* Nested beyond MDM_MAX_DEPTH, and far beyond it. */
    size_t levels[] = {MDM_MAX_DEPTH - 1, 10000};
    for (size_t k = 0; k < 2; k++) {
        size_t cap = 256 + levels[k] * 16;
        char *deep = malloc(cap);
        assert_non_null(deep);
        size_t n = (size_t)snprintf(deep, cap,
                                    "<plist><dict><key>Command</key><dict><key>RequestType</key>"
                                    "<string>Settings</string><key>Settings</key>");
        for (size_t i = 0; i < levels[k]; i++)
            n += (size_t)snprintf(deep + n, cap - n, "<array>");
        for (size_t i = 0; i < levels[k]; i++)
            n += (size_t)snprintf(deep + n, cap - n, "</array>");
        n += (size_t)snprintf(deep + n, cap - n, "</dict></dict></plist>");
        prepare_fail_len(deep, n, "deep");
        free(deep);
    }
}

/* The nesting scan shared with mdm_message must see what libplist sees: a processing
 * instruction libplist skips must not hide closing tags (see test_mdm_message_limits.c). */
static void test_depth_hidden_in_processing_instruction(void **state)
{
    /* static: a failed assertion jumps out of the test and must not leak it */
    static char deep[256 + 200 * 32];
    size_t levels = 200, cap = sizeof(deep);
    size_t n = (size_t)snprintf(deep, cap,
                                "<plist><dict><key>Command</key><dict><key>RequestType</key>"
                                "<string>Settings</string><key>Settings</key>");
    for (size_t i = 1; i <= levels; i++) {
        n += (size_t)snprintf(deep + n, cap - n, "<array>");
        if (i % 20 == 0) {
            n += (size_t)snprintf(deep + n, cap - n, "<?x ");
            for (int j = 0; j < 20; j++)
                n += (size_t)snprintf(deep + n, cap - n, "</array>");
            n += (size_t)snprintf(deep + n, cap - n, "?>");
        }
    }
    for (size_t i = 0; i < levels; i++)
        n += (size_t)snprintf(deep + n, cap - n, "</array>");
    n += (size_t)snprintf(deep + n, cap - n, "</dict></dict></plist>");
    assert_true(n < cap);
    prepare_fail_len(deep, n, NULL);
}

static void test_new_uuid(void **state)
{
    char seen[64][37];
    for (int i = 0; i < 64; i++) {
        memset(seen[i], 'x', sizeof(seen[i]));
        assert_true(command_new_uuid(seen[i]));
        assert_int_equal(seen[i][36], '\0');
        if (!is_uuid_v4(seen[i]))
            print_error("'%s' is not an upper-case v4 UUID\n", seen[i]);
        assert_true(is_uuid_v4(seen[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

/* The attestation request: the query Apple needs by its exact name, the cross-check queries, and
 * a 32-byte nonce as <data> that differs every time and is the one handed back. */
static void test_attestation_request(void **state)
{
    static const char *const expected[] = {"DevicePropertiesAttestation",
                                           "UDID",
                                           "SerialNumber",
                                           "OSVersion",
                                           "BuildVersion",
                                           "ProductName",
                                           "Model",
                                           "SoftwareUpdateDeviceID"};
    uint8_t first_nonce[COMMAND_NONCE_BYTES] = {0};
    char first_uuid[COMMAND_MAX_UUID + 1] = "";
    for (int round = 0; round < 2; round++) {
        struct prepared_command cmd;
        char uuid[37];
        uint8_t nonce[COMMAND_NONCE_BYTES];
        assert_true(command_new_attestation(uuid, nonce));
        assert_true(is_uuid_v4(uuid));
        assert_true(command_attestation_body(uuid, nonce, COMMAND_NONCE_BYTES, &cmd));
        assert_string_equal(cmd.uuid, uuid);
        assert_true(is_uuid_v4(cmd.uuid));
        assert_string_equal(cmd.request_type, "DeviceInformation");
        assert_int_equal(strlen(cmd.xml), cmd.xml_len);

        /* What a device receives is a command vouchd itself would accept from an operator. */
        struct prepared_command again;
        char err[256];
        assert_true(command_prepare(cmd.xml, cmd.xml_len, &again, err, sizeof(err)));
        assert_string_equal(again.uuid, cmd.uuid);
        command_clear(&again);

        plist_t root = NULL;
        plist_from_xml(cmd.xml, (uint32_t)cmd.xml_len, &root);
        assert_non_null(root);
        plist_t command = plist_dict_get_item(root, "Command");
        plist_t queries = plist_dict_get_item(command, "Queries");
        assert_int_equal(plist_get_node_type(queries), PLIST_ARRAY);
        assert_int_equal(plist_array_get_size(queries), sizeof(expected) / sizeof(expected[0]));
        for (uint32_t i = 0; i < plist_array_get_size(queries); i++) {
            char *q = NULL;
            plist_get_string_val(plist_array_get_item(queries, i), &q);
            assert_string_equal(q, expected[i]);
            free(q);
        }
        plist_t data = plist_dict_get_item(command, "DeviceAttestationNonce");
        assert_int_equal(plist_get_node_type(data), PLIST_DATA);
        uint64_t len = 0;
        const char *bytes = plist_get_data_ptr(data, &len);
        assert_int_equal(len, COMMAND_NONCE_BYTES);
        assert_memory_equal(bytes, nonce, COMMAND_NONCE_BYTES);
        plist_free(root);

        /* Rebuilt from its CommandUUID and nonce (the body is not stored): the same bytes. */
        struct prepared_command rebuilt;
        assert_true(command_attestation_body(cmd.uuid, nonce, COMMAND_NONCE_BYTES, &rebuilt));
        assert_int_equal(rebuilt.xml_len, cmd.xml_len);
        assert_memory_equal(rebuilt.xml, cmd.xml, cmd.xml_len);
        assert_string_equal(rebuilt.uuid, cmd.uuid);
        command_clear(&rebuilt);

        if (round == 0) {
            memcpy(first_nonce, nonce, sizeof(nonce));
            snprintf(first_uuid, sizeof(first_uuid), "%s", cmd.uuid);
        } else {
            assert_memory_not_equal(first_nonce, nonce, sizeof(nonce));
            assert_string_not_equal(first_uuid, cmd.uuid);
        }
        command_clear(&cmd);
    }
}

/* What the database gives back is checked before a body is built from it. */
static void test_attestation_body_refusals(void **state)
{
    (void)state;
    uint8_t nonce[COMMAND_NONCE_BYTES + 1] = {1};
    char long_uuid[COMMAND_MAX_UUID + 2];
    memset(long_uuid, 'A', sizeof(long_uuid) - 1);
    long_uuid[sizeof(long_uuid) - 1] = '\0';
    struct prepared_command cmd;
    assert_false(command_attestation_body("", nonce, COMMAND_NONCE_BYTES, &cmd));
    assert_false(command_attestation_body(long_uuid, nonce, COMMAND_NONCE_BYTES, &cmd));
    assert_false(command_attestation_body("U", nonce, 0, &cmd));
    assert_false(command_attestation_body("U", nonce, COMMAND_NONCE_BYTES + 1, &cmd));
    assert_true(command_attestation_body("U", nonce, 16, &cmd)); /* an older, shorter nonce */
    command_clear(&cmd);
}

/* An answer to an attestation request as a device sends it: root keys in the order given. */
static plist_t attestation_answer(const char *order, bool with_chain)
{
    plist_t root = plist_new_dict();
    for (const char *c = order; *c; c++) {
        if (*c == 'U') {
            plist_dict_set_item(root, "UDID", plist_new_string("UDID-1"));
        } else if (*c == 'C') {
            plist_dict_set_item(root, "CommandUUID", plist_new_string("CMD-1"));
        } else if (*c == 'S') {
            plist_dict_set_item(root, "Status", plist_new_string("Acknowledged"));
        } else {
            plist_t qr = plist_new_dict();
            plist_dict_set_item(qr, "SerialNumber", plist_new_string("C02XL0GXJGH5"));
            if (with_chain) {
                plist_t certs = plist_new_array();
                plist_array_append_item(certs, plist_new_data("\x30\x82", 2));
                plist_dict_set_item(qr, "DevicePropertiesAttestation", certs);
            }
            plist_dict_set_item(qr, "DeviceName", plist_new_string("<Tom & Jerry's>"));
            plist_dict_set_item(root, "QueryResponses", qr);
        }
    }
    return root;
}

static void test_answer_shape(void **state)
{
    (void)state;
    char **items = NULL;
    size_t count = 0;
    plist_t answer = attestation_answer("CQSU", true);
    assert_true(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", true, &items, &count));
    const char *const want[] = {
        "CQSU", "SerialNumber", "C02XL0GXJGH5",   "DevicePropertiesAttestation",
        "",     "DeviceName",   "<Tom & Jerry's>"};
    assert_int_equal(count, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < count; i++)
        assert_string_equal(items[i], want[i]);
    /* Packed: the request's Queries as their position, the device's UDID as one character. */
    char *packed = command_answer_shape_pack(items, count, "C02XL0GXJGH5");
    assert_string_equal(packed, "CQSU\x1f\x03\x1f\x1e\x1f\x01\x1f\x1f"
                                "DeviceName\x1f<Tom & Jerry's>");
    free(packed);
    command_answer_shape_free(items, count);
    /* Another device's, command's or status's values are not the row's. */
    assert_false(
        command_answer_shape(answer, "UDID-2", "CMD-1", "Acknowledged", true, &items, &count));
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-2", "Acknowledged", true, &items, &count));
    assert_false(command_answer_shape(answer, "UDID-1", "CMD-1", "Error", true, &items, &count));
    /* A chain where none was recorded, or none where one was. */
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    plist_free(answer);
    answer = attestation_answer("UCSQ", false);
    assert_true(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    assert_string_equal(items[0], "UCSQ");
    assert_int_equal(count, 5);
    command_answer_shape_free(items, count);
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", true, &items, &count));
    /* What the shape cannot hold: a value that is no string, a control character, a key more. */
    plist_t qr = plist_dict_get_item(answer, "QueryResponses");
    plist_dict_set_item(qr, "BatteryLevel", plist_new_uint(1));
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    assert_null(items);
    plist_dict_remove_item(qr, "BatteryLevel");
    plist_dict_set_item(qr, "DeviceName", plist_new_string("tab\there"));
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    plist_dict_set_item(qr, "DeviceName", plist_new_string("fine"));
    /* An empty key: packed, it would read back as a key code (review of issue 22). */
    plist_dict_set_item(qr, "", plist_new_string("x"));
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    plist_dict_remove_item(qr, "");
    assert_true(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    command_answer_shape_free(items, count);
    plist_dict_set_item(answer, "EnrollmentID", plist_new_string("x"));
    assert_false(
        command_answer_shape(answer, "UDID-1", "CMD-1", "Acknowledged", false, &items, &count));
    plist_free(answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeps_command_uuid),
        cmocka_unit_test(test_adds_command_uuid),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_binary_and_deep_refused),
        cmocka_unit_test(test_depth_hidden_in_processing_instruction),
        cmocka_unit_test(test_new_uuid),
        cmocka_unit_test(test_attestation_request),
        cmocka_unit_test(test_attestation_body_refusals),
        cmocka_unit_test(test_answer_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
