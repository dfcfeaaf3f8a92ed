#include "command.h"

#include <openssl/rand.h>
#include <plist/plist.h>
#include <stdint.h>
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
    snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
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

static uint64_t bplist_uint(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Is object obj (at offset off) an array, set or dict? Then *refs is where its references
 * start and *n how many there are (a dict's keys and values). False: it does not fit. */
static bool bplist_container(const unsigned char *b, uint64_t end, uint64_t off, unsigned ref_size,
                             bool *container, uint64_t *refs, uint64_t *n)
{
    if (off < 8 || off >= end)
        return false;
    unsigned type = b[off] >> 4;
    *container = type == 0xA || type == 0xC || type == 0xD;
    if (!*container)
        return true;
    uint64_t count = b[off] & 0xf, p = off + 1;
    if (count == 0xf) {
        if (p >= end || (b[p] >> 4) != 0x1 || (b[p] & 0xf) > 3)
            return false;
        unsigned len = 1u << (b[p] & 0xf);
        if (end - p - 1 < len)
            return false;
        count = bplist_uint(b + p + 1, len);
        p += 1 + len;
    }
    if (type == 0xD) {
        if (count > UINT64_MAX / 2)
            return false;
        count *= 2;
    }
    if (p > end || count > (end - p) / ref_size)
        return false;
    *refs = p;
    *n = count;
    return true;
}

struct bplist_frame {
    uint64_t obj, refs, n, next;
    unsigned height;
};

/* libplist 2.2's binary reader recurses once per level with no limit: this walks the object
 * graph first, without recursion, and refuses nesting beyond max_depth containers, cycles and
 * references outside the object table. Every container is walked once (heights are kept). */
static bool bplist_depth_ok(const char *data, size_t len, unsigned max_depth)
{
    const unsigned char *b = (const unsigned char *)data;
    if (len < 8 + 32 || memcmp(b, "bplist00", 8) != 0 || max_depth > MDM_MAX_DEPTH)
        return false;
    const unsigned char *t = b + len - 32;
    unsigned off_size = t[6], ref_size = t[7];
    uint64_t count = bplist_uint(t + 8, 8), top = bplist_uint(t + 16, 8),
             table = bplist_uint(t + 24, 8);
    if (off_size < 1 || off_size > 8 || ref_size < 1 || ref_size > 8 || count == 0 || count > len ||
        top >= count || table < 9 || table > len - 32 || count > (len - 32 - table) / off_size)
        return false;
    unsigned char *state = calloc(count, 1); /* 0 unseen, 1 on the stack, 2 done */
    unsigned char *height = calloc(count, 1);
    struct bplist_frame stack[MDM_MAX_DEPTH];
    unsigned sp = 0;
    bool ok = state != NULL && height != NULL;
    uint64_t child = top;
    bool have_child = ok;
    while (ok) {
        if (have_child) {
            have_child = false;
            bool container = false;
            struct bplist_frame f = {.obj = child, .height = 1};
            ok = child < count && state[child] != 1 &&
                 (state[child] == 2 ||
                  bplist_container(b, table, bplist_uint(b + table + child * off_size, off_size),
                                   ref_size, &container, &f.refs, &f.n));
            if (!ok)
                break;
            if (state[child] == 0 && !container) {
                state[child] = 2;
            } else if (state[child] == 0) {
                if (sp == max_depth) {
                    ok = false;
                    break;
                }
                state[child] = 1;
                stack[sp++] = f;
                continue;
            }
            if (sp == 0)
                break;
            if (sp + height[child] > max_depth) {
                ok = false;
                break;
            }
            if (stack[sp - 1].height < 1u + height[child])
                stack[sp - 1].height = 1u + height[child];
            continue;
        }
        struct bplist_frame *f = &stack[sp - 1];
        if (f->next < f->n) {
            child = bplist_uint(b + f->refs + f->next * ref_size, ref_size);
            f->next++;
            have_child = true;
            continue;
        }
        state[f->obj] = 2;
        height[f->obj] = (unsigned char)f->height;
        child = f->obj;
        sp--;
        if (sp == 0)
            break;
        if (stack[sp - 1].height < 1u + height[child])
            stack[sp - 1].height = 1u + height[child];
    }
    free(state);
    free(height);
    return ok;
}

bool command_prepare(const char *body, size_t len, struct prepared_command *out, char *err,
                     size_t err_size)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > UINT32_MAX) {
        snprintf(err, err_size, "empty body: expected a command plist");
        return false;
    }
    plist_t root = NULL;
    bool binary = plist_is_binary(body, (uint32_t)len);
    if (binary) {
        /* Checked before libplist reads it: its binary reader has no depth limit. */
        if (!bplist_depth_ok(body, len, MDM_MAX_DEPTH)) {
            snprintf(err, err_size, "the binary plist is malformed or nested too deeply");
            return false;
        }
        plist_from_bin(body, (uint32_t)len, &root);
    } else {
        if (!mdm_xml_depth_ok(body, len, MDM_MAX_DEPTH)) {
            snprintf(err, err_size, "the plist is nested too deeply");
            return false;
        }
        plist_from_xml(body, (uint32_t)len, &root);
    }
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
        out->uuid_generated = true;
    } else if (!copy_string_node(uuid, out->uuid, sizeof(out->uuid))) {
        snprintf(err, err_size, "CommandUUID must be a non-empty string of at most %d bytes",
                 COMMAND_MAX_UUID);
        goto out;
    }
    /* An XML command is stored as sent (as NanoMDM does); a binary one, or one that needed a
     * CommandUUID, is written as XML: devices get commands as application/xml. */
    char *xml = NULL;
    uint32_t xml_len = 0;
    if (!binary && !out->uuid_generated) {
        out->xml = malloc(len + 1);
        if (out->xml == NULL) {
            snprintf(err, err_size, "out of memory");
            goto out;
        }
        memcpy(out->xml, body, len);
        out->xml[len] = '\0';
        out->xml_len = len;
        ok = true;
        goto out;
    }
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

/* The Queries of the DeviceInformation command that asks for an attestation. Their order is
 * also the packed answer shape's key codes (command_answer_shape_pack, vouch_answer_xml). */
static const char *const attestation_queries[] = {"DevicePropertiesAttestation",
                                                  "UDID",
                                                  "SerialNumber",
                                                  "OSVersion",
                                                  "BuildVersion",
                                                  "ProductName",
                                                  "Model",
                                                  "SoftwareUpdateDeviceID"};

/* The DeviceInformation command that asks for an attestation (attestation.md). */
bool command_attestation_body(const char *uuid, const uint8_t *nonce, size_t nonce_len,
                              struct prepared_command *out)
{
    memset(out, 0, sizeof(*out));
    size_t uuid_len = strlen(uuid);
    if (uuid_len == 0 || uuid_len > COMMAND_MAX_UUID || nonce_len == 0 ||
        nonce_len > COMMAND_NONCE_BYTES)
        return false;
    memcpy(out->uuid, uuid, uuid_len + 1);
    snprintf(out->request_type, sizeof(out->request_type), "DeviceInformation");

    plist_t root = plist_new_dict();
    plist_t command = plist_new_dict();
    plist_t list = plist_new_array();
    for (size_t i = 0; i < sizeof(attestation_queries) / sizeof(attestation_queries[0]); i++)
        plist_array_append_item(list, plist_new_string(attestation_queries[i]));
    plist_dict_set_item(command, "RequestType", plist_new_string("DeviceInformation"));
    plist_dict_set_item(command, "Queries", list);
    plist_dict_set_item(command, "DeviceAttestationNonce",
                        plist_new_data((const char *)nonce, nonce_len));
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

bool command_new_attestation(char uuid[37], uint8_t nonce[COMMAND_NONCE_BYTES])
{
    return RAND_bytes(nonce, COMMAND_NONCE_BYTES) == 1 && command_new_uuid(uuid);
}

/* A string the database can write back into an XML plist as it is: UTF-8 without control
 * characters (XML 1.0 has no way to write most of them, and a parser may fold the others). */
static bool shape_string_ok(const char *s, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return mdm_utf8_valid(s, (size_t)len);
}

/* A string node's value, if it is one the shape can hold. */
static const char *shape_string(plist_t node)
{
    uint64_t len = 0;
    const char *s = PLIST_IS_STRING(node) ? plist_get_string_ptr(node, &len) : NULL;
    return s != NULL && strlen(s) == len && shape_string_ok(s, len) ? s : NULL;
}

static bool shape_push(char ***items, size_t *count, size_t *cap, const char *s)
{
    if (*count == *cap) {
        size_t cap2 = *cap ? *cap * 2 : 16;
        char **grown = realloc(*items, cap2 * sizeof(**items));
        if (grown == NULL)
            return false;
        *items = grown;
        *cap = cap2;
    }
    (*items)[*count] = strdup(s);
    return (*items)[(*count)++] != NULL;
}

/* The answer a shape stands for, with an empty DevicePropertiesAttestation (as
 * mdm_message_report_without_attestation leaves it). */
static plist_t shape_rebuild(char *const *items, size_t count, const char *udid,
                             const char *command_uuid, const char *status)
{
    plist_t root = plist_new_dict();
    for (const char *c = items[0]; *c; c++) {
        if (*c == 'U') {
            plist_dict_set_item(root, "UDID", plist_new_string(udid));
        } else if (*c == 'C') {
            plist_dict_set_item(root, "CommandUUID", plist_new_string(command_uuid));
        } else if (*c == 'S') {
            plist_dict_set_item(root, "Status", plist_new_string(status));
        } else {
            plist_t responses = plist_new_dict();
            for (size_t i = 1; i + 1 < count; i += 2)
                plist_dict_set_item(responses, items[i],
                                    strcmp(items[i], "DevicePropertiesAttestation") == 0
                                        ? plist_new_array()
                                        : plist_new_string(items[i + 1]));
            plist_dict_set_item(root, "QueryResponses", responses);
        }
    }
    return root;
}

/* Whether a and b serialize to the same binary plist. */
static bool same_bplist(plist_t a, plist_t b)
{
    char *x = NULL, *y = NULL;
    uint32_t x_len = 0, y_len = 0;
    plist_to_bin(a, &x, &x_len);
    plist_to_bin(b, &y, &y_len);
    bool same = x != NULL && y != NULL && x_len == y_len && memcmp(x, y, x_len) == 0;
    if (x != NULL)
        plist_to_bin_free(x);
    if (y != NULL)
        plist_to_bin_free(y);
    return same;
}

bool command_answer_shape(const void *report, const char *udid, const char *command_uuid,
                          const char *status, bool with_chain, char ***items, size_t *count)
{
    plist_t root = (plist_t)report;
    *items = NULL;
    *count = 0;
    if (!PLIST_IS_DICT(root) || plist_dict_get_size(root) != 4 || udid == NULL ||
        command_uuid == NULL || status == NULL)
        return false;
    const char *root_values[] = {udid, command_uuid, status};
    const char *const root_keys[] = {"UDID", "CommandUUID", "Status", "QueryResponses"};
    char order[5] = {0};
    for (size_t i = 0; i < 4; i++) {
        plist_t node = plist_dict_get_item(root, root_keys[i]);
        if (node == NULL || (i < 3 && (shape_string(node) == NULL ||
                                       strcmp(shape_string(node), root_values[i]) != 0)))
            return false;
    }
    plist_t responses = plist_dict_get_item(root, "QueryResponses");
    if (!PLIST_IS_DICT(responses))
        return false;
    /* The root's order: the dict's own, as the device sent it. */
    plist_dict_iter it = NULL;
    plist_dict_new_iter(root, &it);
    for (size_t i = 0; it != NULL && i < 4; i++) {
        char *key = NULL;
        plist_t value = NULL;
        plist_dict_next_item(root, it, &key, &value);
        order[i] = key != NULL ? key[0] : '\0'; /* U, C, S, Q: the four keys differ there */
        free(key);
    }
    free(it);
    size_t cap = 0;
    bool ok = strlen(order) == 4 && shape_push(items, count, &cap, order);
    bool chain_seen = false;
    it = NULL;
    plist_dict_new_iter(responses, &it);
    ok = ok && it != NULL;
    for (uint32_t i = 0; ok && i < plist_dict_get_size(responses); i++) {
        char *key = NULL;
        plist_t value = NULL;
        plist_dict_next_item(responses, it, &key, &value);
        const char *text = shape_string(value);
        if (key != NULL && strcmp(key, "DevicePropertiesAttestation") == 0) {
            ok = with_chain && PLIST_IS_ARRAY(value);
            chain_seen = true;
            text = "";
        }
        ok = ok && key != NULL && key[0] != '\0' && shape_string_ok(key, strlen(key)) &&
             text != NULL && shape_push(items, count, &cap, key) &&
             shape_push(items, count, &cap, text);
        free(key);
    }
    free(it);
    ok = ok && chain_seen == with_chain;
    if (ok) {
        /* The proof: the answer rebuilt from the shape is the one the device sent. */
        plist_t copy = plist_copy(root);
        plist_t certs = plist_dict_get_item(plist_dict_get_item(copy, "QueryResponses"),
                                            "DevicePropertiesAttestation");
        while (certs != NULL && plist_array_get_size(certs) > 0)
            plist_array_remove_item(certs, plist_array_get_size(certs) - 1);
        plist_t rebuilt = shape_rebuild(*items, *count, udid, command_uuid, status);
        ok = same_bplist(copy, rebuilt);
        plist_free(rebuilt);
        plist_free(copy);
    }
    if (!ok) {
        command_answer_shape_free(*items, *count);
        *items = NULL;
        *count = 0;
    }
    return ok;
}

void command_answer_shape_free(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

char *command_answer_shape_pack(char *const *items, size_t count, const char *udid)
{
    size_t size = 1;
    for (size_t i = 0; i < count; i++)
        size += strlen(items[i]) + 1;
    char *out = malloc(size);
    if (out == NULL)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < count; i++) {
        const char *item = items[i];
        char code[2] = {0};
        if (i > 0)
            *p++ = COMMAND_SHAPE_SEPARATOR;
        if (i > 0 && i % 2 == 1) {
            for (size_t k = 0; k < sizeof(attestation_queries) / sizeof(attestation_queries[0]);
                 k++) {
                if (strcmp(item, attestation_queries[k]) == 0)
                    code[0] = (char)(k + 1);
            }
        } else if (i > 0 && strcmp(item, udid) == 0) {
            code[0] = COMMAND_SHAPE_UDID;
        }
        if (code[0] != '\0')
            item = code;
        size_t len = strlen(item);
        memcpy(p, item, len);
        p += len;
    }
    *p = '\0';
    return out;
}
