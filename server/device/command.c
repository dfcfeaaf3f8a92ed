#include "command.h"

#include <openssl/rand.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mdm_message.h"

bool command_new_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
    return true;
}

static bool copy_string_node(plist_t node, char *out, size_t out_size)
{
    if (node == NULL || plist_get_node_type(node) != PLIST_STRING)
        return false;
    uint64_t len = 0;
    const char *s = plist_get_string_ptr(node, &len);
    if (s == NULL || len == 0 || len >= out_size || !mdm_utf8_valid(s, (size_t)len))
        return false;
    memcpy(out, s, (size_t)len);
    out[len] = '\0';
    return true;
}

bool command_prepare(const char *body, size_t len, struct prepared_command *out, char *err,
                     size_t err_size)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > UINT32_MAX) {
        snprintf(err, err_size, "empty body: expected a command plist");
        return false;
    }
    /* XML only: libplist's binary reader recurses without a depth limit. */
    if (plist_is_binary(body, (uint32_t)len)) {
        snprintf(err, err_size, "binary plists are not accepted: send the command as XML");
        return false;
    }
    if (!mdm_xml_depth_ok(body, len, MDM_MAX_DEPTH)) {
        snprintf(err, err_size, "the plist is nested too deeply");
        return false;
    }
    plist_t root = NULL;
    plist_from_xml(body, (uint32_t)len, &root);
    if (root == NULL) {
        snprintf(err, err_size, "the body is not a valid plist");
        return false;
    }
    bool ok = false;
    plist_t command = NULL;
    if (plist_get_node_type(root) != PLIST_DICT) {
        snprintf(err, err_size, "the command plist must be a dict");
        goto out;
    }
    command = plist_dict_get_item(root, "Command");
    if (command == NULL || plist_get_node_type(command) != PLIST_DICT) {
        snprintf(err, err_size, "Command must be a dict");
        goto out;
    }
    if (!copy_string_node(plist_dict_get_item(command, "RequestType"), out->request_type,
                          sizeof(out->request_type))) {
        snprintf(err, err_size, "Command.RequestType must be a non-empty string");
        goto out;
    }
    plist_t uuid = plist_dict_get_item(root, "CommandUUID");
    if (uuid == NULL) {
        if (!command_new_uuid(out->uuid)) {
            snprintf(err, err_size, "no randomness for a CommandUUID");
            goto out;
        }
        plist_dict_set_item(root, "CommandUUID", plist_new_string(out->uuid));
    } else if (!copy_string_node(uuid, out->uuid, sizeof(out->uuid))) {
        snprintf(err, err_size, "CommandUUID must be a non-empty string of at most %d bytes",
                 COMMAND_MAX_UUID);
        goto out;
    }
    char *xml = NULL;
    uint32_t xml_len = 0;
    plist_to_xml(root, &xml, &xml_len);
    if (xml == NULL) {
        snprintf(err, err_size, "cannot serialize the command");
        goto out;
    }
    out->xml = malloc((size_t)xml_len + 1);
    if (out->xml != NULL) {
        memcpy(out->xml, xml, xml_len);
        out->xml[xml_len] = '\0';
        out->xml_len = xml_len;
        ok = true;
    } else {
        snprintf(err, err_size, "out of memory");
    }
    plist_to_xml_free(xml);
out:
    plist_free(root);
    return ok;
}

void command_clear(struct prepared_command *cmd)
{
    free(cmd->xml);
    memset(cmd, 0, sizeof(*cmd));
}

/* The DeviceInformation command that asks for an attestation (attestation.md). */
bool command_build_attestation(struct prepared_command *out, uint8_t nonce[COMMAND_NONCE_BYTES])
{
    static const char *const queries[] = {
        "DevicePropertiesAttestation", "UDID", "SerialNumber", "OSVersion", "BuildVersion",
        "ProductName", "Model", "SoftwareUpdateDeviceID"};
    memset(out, 0, sizeof(*out));
    if (RAND_bytes(nonce, COMMAND_NONCE_BYTES) != 1 || !command_new_uuid(out->uuid))
        return false;
    snprintf(out->request_type, sizeof(out->request_type), "DeviceInformation");

    plist_t root = plist_new_dict();
    plist_t command = plist_new_dict();
    plist_t list = plist_new_array();
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
        plist_array_append_item(list, plist_new_string(queries[i]));
    plist_dict_set_item(command, "RequestType", plist_new_string("DeviceInformation"));
    plist_dict_set_item(command, "Queries", list);
    plist_dict_set_item(command, "DeviceAttestationNonce",
                        plist_new_data((const char *)nonce, COMMAND_NONCE_BYTES));
    plist_dict_set_item(root, "Command", command);
    plist_dict_set_item(root, "CommandUUID", plist_new_string(out->uuid));

    char *xml = NULL;
    uint32_t xml_len = 0;
    plist_to_xml(root, &xml, &xml_len);
    plist_free(root);
    if (xml == NULL)
        return false;
    out->xml = malloc((size_t)xml_len + 1);
    if (out->xml != NULL) {
        memcpy(out->xml, xml, xml_len);
        out->xml[xml_len] = '\0';
        out->xml_len = xml_len;
    }
    plist_to_xml_free(xml);
    return out->xml != NULL;
}
