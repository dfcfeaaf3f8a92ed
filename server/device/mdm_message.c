#include "mdm_message.h"

#include <plist/plist.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "json.h"
#include "utf8.h"

static const char *const parse_error_names[] = {
    [MDM_PARSE_OK] = "ok",
    [MDM_PARSE_NOT_XML] = "not_xml",
    [MDM_PARSE_TOO_DEEP] = "too_deep",
    [MDM_PARSE_MALFORMED] = "malformed_plist",
    [MDM_PARSE_NOT_DICT] = "not_a_dict",
    [MDM_PARSE_MISSING_FIELD] = "missing_field",
    [MDM_PARSE_BAD_FIELD] = "bad_field",
    [MDM_PARSE_UNKNOWN_TYPE] = "unknown_type",
    [MDM_PARSE_XML_MARKUP] = "unsupported_xml",
};

const char *mdm_parse_error_name(enum mdm_parse_error err)
{
    return parse_error_names[err];
}

bool mdm_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0, n; i < len; i += n) {
        if (s[i] == 0 || (n = utf8_sequence_length(s + i, len - i)) == 0)
            return false;
    }
    return true;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == ':' || c == '.';
}

static bool only_blanks(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    }
    return true;
}

static size_t count_char(const char *s, const char *end, char c)
{
    size_t n = 0;
    for (; s < end; s++)
        n += *s == c;
    return n;
}

enum mdm_xml_verdict mdm_xml_scan(const char *body, size_t len, unsigned max_depth)
{
    /* The scan must see every tag libplist acts on, and nothing libplist skips must look like
     * a tag to it. Plists need no comments, CDATA, processing instructions (but the leading
     * <?xml ...?>), internal DTD subsets or attributes (but on <plist>), so those are refused:
     * they are where the two readings could differ. */
    unsigned depth = 0;
    bool seen_element = false;
    const char *p = body, *end = body + len;
    while ((p = memchr(p, '<', (size_t)(end - p))) != NULL) {
        const char *rest = p + 1;
        size_t left = (size_t)(end - rest);
        if (left > 0 && *rest == '?') {
            const char *close = memmem(rest, left, "?>", 2);
            if (seen_element || left < 4 || memcmp(rest, "?xml", 4) != 0 || close == NULL ||
                memchr(rest, '<', (size_t)(close - rest)) != NULL)
                return MDM_XML_MARKUP;
            p = close + 2;
            continue;
        }
        if (left > 0 && *rest == '!') {
            const char *gt = memchr(rest, '>', left);
            if (seen_element || left < 8 || memcmp(rest, "!DOCTYPE", 8) != 0 || gt == NULL ||
                memchr(rest, '[', (size_t)(gt - rest)) != NULL ||
                memchr(rest, '<', (size_t)(gt - rest)) != NULL)
                return MDM_XML_MARKUP;
            p = gt + 1;
            continue;
        }
        bool closing = left > 0 && *rest == '/';
        const char *name = closing ? rest + 1 : rest;
        const char *name_end = name;
        while (name_end < end && is_name_char(*name_end))
            name_end++;
        size_t name_len = (size_t)(name_end - name);
        if (name_end >= end)
            return MDM_XML_OK; /* unterminated: libplist refuses it, and nothing follows */
        const char *gt = memchr(name_end, '>', (size_t)(end - name_end));
        if (gt == NULL)
            return MDM_XML_OK; /* unterminated: libplist refuses it, and nothing follows */
        if (name_len == 0 || memchr(name_end, '<', (size_t)(gt - name_end)) != NULL)
            return MDM_XML_MARKUP;
        const char *inner_end = gt;
        bool self_closing = !closing && inner_end > name_end && inner_end[-1] == '/';
        if (self_closing)
            inner_end--;
        bool is_plist = name_len == 5 && memcmp(name, "plist", 5) == 0;
        if (!only_blanks(name_end, inner_end)) {
            /* Attributes: only <plist version="1.0">, with balanced quotes so that no '>'
             * hides inside one. */
            if (closing || !is_plist || count_char(name_end, inner_end, '"') % 2 != 0 ||
                count_char(name_end, inner_end, '\'') % 2 != 0)
                return MDM_XML_MARKUP;
        }
        bool container = (name_len == 4 && memcmp(name, "dict", 4) == 0) ||
                         (name_len == 5 && memcmp(name, "array", 5) == 0);
        if (container && closing) {
            if (depth > 0)
                depth--;
        } else if (container && !self_closing && ++depth > max_depth) {
            return MDM_XML_TOO_DEEP;
        }
        if (!closing)
            seen_element = true;
        p = gt + 1;
    }
    return MDM_XML_OK;
}

bool mdm_xml_depth_ok(const char *body, size_t len, unsigned max_depth)
{
    return mdm_xml_scan(body, len, max_depth) == MDM_XML_OK;
}

/* Field access. Each getter returns false for a present key of the wrong kind; an absent key
 * leaves *out NULL and returns true. */
static bool get_string(plist_t dict, const char *key, size_t max_len, const char **out)
{
    *out = NULL;
    plist_t node = plist_dict_get_item(dict, key);
    if (node == NULL)
        return true;
    if (plist_get_node_type(node) != PLIST_STRING)
        return false;
    uint64_t len = 0;
    const char *s = plist_get_string_ptr(node, &len);
    if (s == NULL || len > max_len || !mdm_utf8_valid(s, (size_t)len))
        return false;
    *out = s;
    return true;
}

static bool get_data(plist_t dict, const char *key, size_t max_len, const uint8_t **out,
                     size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    plist_t node = plist_dict_get_item(dict, key);
    if (node == NULL)
        return true;
    if (plist_get_node_type(node) != PLIST_DATA)
        return false;
    uint64_t len = 0;
    const char *d = plist_get_data_ptr(node, &len);
    if (len > max_len)
        return false;
    *out = (const uint8_t *)d;
    *out_len = (size_t)len;
    return true;
}

static bool get_bool(plist_t dict, const char *key, int *out)
{
    *out = -1;
    plist_t node = plist_dict_get_item(dict, key);
    if (node == NULL)
        return true;
    if (plist_get_node_type(node) != PLIST_BOOLEAN)
        return false;
    uint8_t v = 0;
    plist_get_bool_val(node, &v);
    *out = v ? 1 : 0;
    return true;
}

struct field_spec {
    const char *key;
    size_t offset; /* of the const char * in struct mdm_message */
};

#define FIELD(key, member) {key, offsetof(struct mdm_message, member)}

static const struct field_spec authenticate_fields[] = {
    FIELD("SerialNumber", serial_number), FIELD("Model", model),
    FIELD("ModelName", model_name),       FIELD("ProductName", product_name),
    FIELD("OSVersion", os_version),       FIELD("BuildVersion", build_version),
    FIELD("DeviceName", device_name),     FIELD("IMEI", imei),
    FIELD("MEID", meid),
};

static enum mdm_parse_error parse_identity(plist_t root, struct mdm_message *msg,
                                           const char **field)
{
    const char *udid, *enrollment_id;
    if (!get_string(root, "UDID", MDM_MAX_ID_LEN, &udid)) {
        *field = "UDID";
        return MDM_PARSE_BAD_FIELD;
    }
    if (!get_string(root, "EnrollmentID", MDM_MAX_ID_LEN, &enrollment_id)) {
        *field = "EnrollmentID";
        return MDM_PARSE_BAD_FIELD;
    }
    msg->udid = udid ? udid : enrollment_id;
    msg->user_enrollment = udid == NULL && enrollment_id != NULL;
    if (msg->udid == NULL || msg->udid[0] == '\0') {
        *field = "UDID";
        return MDM_PARSE_MISSING_FIELD;
    }
    return MDM_PARSE_OK;
}

static enum mdm_parse_error parse_checkin(plist_t root, struct mdm_message *msg,
                                          const char **field)
{
    *field = "MessageType";
    if (!get_string(root, "MessageType", 64, &msg->message_type))
        return MDM_PARSE_BAD_FIELD;
    if (msg->message_type == NULL)
        return MDM_PARSE_MISSING_FIELD;

    static const char *const unsupported[] = {
        "UserAuthenticate", "SetBootstrapToken", "GetBootstrapToken", "DeclarativeManagement",
        "GetToken", "ReturnToService", "SetAwaitingConfiguration"};
    /* message_type is set to a static string, so it can label a metric. */
    if (strcmp(msg->message_type, "Authenticate") == 0) {
        msg->kind = MDM_AUTHENTICATE;
        msg->message_type = "Authenticate";
    } else if (strcmp(msg->message_type, "TokenUpdate") == 0) {
        msg->kind = MDM_TOKEN_UPDATE;
        msg->message_type = "TokenUpdate";
    } else if (strcmp(msg->message_type, "CheckOut") == 0) {
        msg->kind = MDM_CHECKOUT;
        msg->message_type = "CheckOut";
    } else {
        msg->kind = MDM_CHECKIN_UNSUPPORTED;
        for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
            if (strcmp(msg->message_type, unsupported[i]) == 0) {
                msg->message_type = unsupported[i];
                (void)parse_identity(root, msg, field); /* for the log line only */
                *field = NULL;
                return MDM_PARSE_OK;
            }
        }
        return MDM_PARSE_UNKNOWN_TYPE;
    }

    enum mdm_parse_error err = parse_identity(root, msg, field);
    if (err != MDM_PARSE_OK)
        return err;
    *field = "Topic";
    if (!get_string(root, "Topic", MDM_MAX_FIELD_LEN, &msg->topic))
        return MDM_PARSE_BAD_FIELD;
    if (msg->topic == NULL && msg->kind != MDM_CHECKOUT)
        return MDM_PARSE_MISSING_FIELD;

    if (msg->kind == MDM_AUTHENTICATE) {
        for (size_t i = 0; i < sizeof(authenticate_fields) / sizeof(authenticate_fields[0]);
             i++) {
            *field = authenticate_fields[i].key;
            const char **slot = (const char **)((char *)msg + authenticate_fields[i].offset);
            if (!get_string(root, authenticate_fields[i].key, MDM_MAX_FIELD_LEN, slot))
                return MDM_PARSE_BAD_FIELD;
        }
    } else if (msg->kind == MDM_TOKEN_UPDATE) {
        *field = "Token";
        if (!get_data(root, "Token", MDM_MAX_TOKEN_LEN, &msg->token, &msg->token_len))
            return MDM_PARSE_BAD_FIELD;
        if (msg->token == NULL || msg->token_len == 0)
            return MDM_PARSE_MISSING_FIELD;
        *field = "PushMagic";
        if (!get_string(root, "PushMagic", MDM_MAX_FIELD_LEN, &msg->push_magic))
            return MDM_PARSE_BAD_FIELD;
        if (msg->push_magic == NULL || msg->push_magic[0] == '\0')
            return MDM_PARSE_MISSING_FIELD;
        *field = "UnlockToken";
        if (!get_data(root, "UnlockToken", 64 * 1024, &msg->unlock_token,
                      &msg->unlock_token_len))
            return MDM_PARSE_BAD_FIELD;
        *field = "AwaitingConfiguration";
        if (!get_bool(root, "AwaitingConfiguration", &msg->awaiting_configuration))
            return MDM_PARSE_BAD_FIELD;
    }
    *field = NULL;
    return MDM_PARSE_OK;
}

static enum mdm_attestation parse_attestation(plist_t node, struct mdm_message *msg)
{
    if (plist_get_node_type(node) != PLIST_ARRAY)
        return MDM_ATTESTATION_MALFORMED;
    uint32_t count = plist_array_get_size(node);
    if (count == 0 || count > MDM_MAX_ATTEST_CERTS)
        return MDM_ATTESTATION_MALFORMED;
    for (uint32_t i = 0; i < count; i++) {
        plist_t item = plist_array_get_item(node, i);
        if (item == NULL || plist_get_node_type(item) != PLIST_DATA)
            return MDM_ATTESTATION_MALFORMED;
        uint64_t len = 0;
        const char *data = plist_get_data_ptr(item, &len);
        if (data == NULL || len == 0 || len > MDM_MAX_ATTEST_CERT_BYTES)
            return MDM_ATTESTATION_MALFORMED;
        msg->attest_certs[i] = (const uint8_t *)data;
        msg->attest_cert_lens[i] = (size_t)len;
    }
    msg->attest_cert_count = count;
    return MDM_ATTESTATION_PRESENT;
}

/* The answer to DeviceInformation: what the device reports, and its attestation if any. A bad
 * attestation is not a bad report: it is recorded as such and the verdict says malformed. */
static enum mdm_parse_error parse_query_responses(plist_t root, struct mdm_message *msg,
                                                  const char **field)
{
    *field = NULL;
    plist_t responses = plist_dict_get_item(root, "QueryResponses");
    if (responses == NULL || plist_get_node_type(responses) != PLIST_DICT)
        return MDM_PARSE_OK;
    *field = "OSVersion";
    if (!get_string(responses, "OSVersion", MDM_MAX_FIELD_LEN, &msg->reported_os_version))
        return MDM_PARSE_BAD_FIELD;
    *field = "BuildVersion";
    if (!get_string(responses, "BuildVersion", MDM_MAX_FIELD_LEN, &msg->reported_build_version))
        return MDM_PARSE_BAD_FIELD;
    plist_t attestation = plist_dict_get_item(responses, "DevicePropertiesAttestation");
    if (attestation != NULL) {
        msg->attestation = parse_attestation(attestation, msg);
        if (msg->attestation == MDM_ATTESTATION_MALFORMED)
            msg->attest_cert_count = 0;
    }
    *field = NULL;
    return MDM_PARSE_OK;
}

static const struct {
    const char *name;
    enum mdm_status status;
} statuses[] = {
    {"Idle", MDM_STATUS_IDLE},
    {"Acknowledged", MDM_STATUS_ACKNOWLEDGED},
    {"Error", MDM_STATUS_ERROR},
    {"CommandFormatError", MDM_STATUS_COMMAND_FORMAT_ERROR},
    {"NotNow", MDM_STATUS_NOT_NOW},
};

static enum mdm_parse_error parse_report(plist_t root, struct mdm_message *msg,
                                         const char **field)
{
    msg->kind = MDM_REPORT;
    enum mdm_parse_error err = parse_identity(root, msg, field);
    if (err != MDM_PARSE_OK)
        return err;
    *field = "Status";
    if (!get_string(root, "Status", 64, &msg->status_text))
        return MDM_PARSE_BAD_FIELD;
    if (msg->status_text == NULL)
        return MDM_PARSE_MISSING_FIELD;
    size_t i;
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (strcmp(msg->status_text, statuses[i].name) == 0)
            break;
    }
    if (i == sizeof(statuses) / sizeof(statuses[0]))
        return MDM_PARSE_UNKNOWN_TYPE;
    msg->status = statuses[i].status;
    msg->status_text = statuses[i].name; /* static, so it can label a metric */

    *field = "CommandUUID";
    if (!get_string(root, "CommandUUID", MDM_MAX_ID_LEN, &msg->command_uuid))
        return MDM_PARSE_BAD_FIELD;
    if (msg->status == MDM_STATUS_IDLE)
        msg->command_uuid = NULL; /* an Idle report answers no command */
    else if (msg->command_uuid == NULL || msg->command_uuid[0] == '\0')
        return MDM_PARSE_MISSING_FIELD;
    if (msg->status == MDM_STATUS_ACKNOWLEDGED)
        return parse_query_responses(root, msg, field);
    *field = NULL;
    return MDM_PARSE_OK;
}

static bool looks_like_xml(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '<';
}

enum mdm_parse_error mdm_message_parse(const char *body, size_t len, enum mdm_channel channel,
                                       struct mdm_message *msg, const char **field)
{
    memset(msg, 0, sizeof(*msg));
    msg->awaiting_configuration = -1;
    *field = NULL;
    if (len == 0 || len > UINT32_MAX || !looks_like_xml(body, len))
        return MDM_PARSE_NOT_XML;
    switch (mdm_xml_scan(body, len, MDM_MAX_DEPTH)) {
    case MDM_XML_OK:
        break;
    case MDM_XML_TOO_DEEP:
        return MDM_PARSE_TOO_DEEP;
    case MDM_XML_MARKUP:
        return MDM_PARSE_XML_MARKUP;
    }

    plist_t root = NULL;
    plist_from_xml(body, (uint32_t)len, &root);
    if (root == NULL)
        return MDM_PARSE_MALFORMED;
    msg->plist = root;
    if (plist_get_node_type(root) != PLIST_DICT) {
        mdm_message_clear(msg);
        msg->awaiting_configuration = -1;
        return MDM_PARSE_NOT_DICT;
    }
    bool checkin =
        channel == MDM_CHANNEL_CHECKIN ||
        (channel == MDM_CHANNEL_EITHER && plist_dict_get_item(root, "MessageType") != NULL);
    enum mdm_parse_error err =
        checkin ? parse_checkin(root, msg, field) : parse_report(root, msg, field);
    if (err != MDM_PARSE_OK) {
        mdm_message_clear(msg);
        msg->awaiting_configuration = -1;
    }
    return err;
}

bool mdm_message_report_without_attestation(const struct mdm_message *msg, uint8_t **out,
                                            size_t *len)
{
    *out = NULL;
    *len = 0;
    if (msg->plist == NULL || msg->kind != MDM_REPORT ||
        msg->attestation != MDM_ATTESTATION_PRESENT)
        return false;
    plist_t copy = plist_copy(msg->plist);
    plist_t responses = copy != NULL ? plist_dict_get_item(copy, "QueryResponses") : NULL;
    plist_t certs = responses != NULL && plist_get_node_type(responses) == PLIST_DICT
                        ? plist_dict_get_item(responses, "DevicePropertiesAttestation")
                        : NULL;
    char *text = NULL;
    uint32_t text_len = 0;
    if (certs != NULL && plist_get_node_type(certs) == PLIST_ARRAY) {
        while (plist_array_get_size(certs) > 0)
            plist_array_remove_item(certs, plist_array_get_size(certs) - 1);
        plist_to_bin(copy, &text, &text_len);
    }
    if (text != NULL && (*out = malloc(text_len)) != NULL) {
        memcpy(*out, text, text_len);
        *len = text_len;
    }
    if (text != NULL)
        plist_to_bin_free(text);
    if (copy != NULL)
        plist_free(copy);
    return *out != NULL;
}

void mdm_message_clear(struct mdm_message *msg)
{
    if (msg->plist != NULL)
        plist_free(msg->plist);
    memset(msg, 0, sizeof(*msg));
}

/* ---- url_params ------------------------------------------------------------------------- */

/* Decodes s[0..len) into out (at most max bytes); false for a bad escape, too long a result,
 * or bytes that are not UTF-8 without NUL. */
static bool query_unescape(const char *s, size_t len, char *out, size_t max, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return false;
            int h = hex_digit(s[i + 1]), l = hex_digit(s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == max)
            return false;
        out[n++] = c;
    }
    *out_len = n;
    return mdm_utf8_valid(out, n);
}

char *mdm_url_params_json(const char *query)
{
    if (query == NULL || query[0] == '\0' || strlen(query) > MDM_MAX_URL_QUERY)
        return NULL;
    char keys[MDM_MAX_URL_PARAMS][MDM_MAX_URL_PARAM_KEY];
    size_t key_lens[MDM_MAX_URL_PARAMS], count = 0;
    struct json_writer *w = json_writer_new(64 * 1024, 0);
    bool ok = w != NULL && json_write_begin_object(w);
    for (const char *p = query; ok && *p != '\0' && count < MDM_MAX_URL_PARAMS;) {
        size_t len = strcspn(p, "&");
        const char *pair = p;
        p += len + (p[len] == '&');
        if (len == 0 || memchr(pair, ';', len) != NULL)
            continue;
        const char *eq = memchr(pair, '=', len);
        size_t klen = eq ? (size_t)(eq - pair) : len;
        char key[MDM_MAX_URL_PARAM_KEY], value[MDM_MAX_URL_PARAM_VALUE];
        size_t key_len, value_len = 0;
        if (!query_unescape(pair, klen, key, sizeof(key), &key_len) ||
            (eq != NULL &&
             !query_unescape(eq + 1, len - klen - 1, value, sizeof(value), &value_len)))
            continue;
        bool seen = false; /* the first value of a key, as NanoMDM's v[0] */
        for (size_t i = 0; i < count && !seen; i++)
            seen = key_lens[i] == key_len && memcmp(keys[i], key, key_len) == 0;
        if (seen)
            continue;
        memcpy(keys[count], key, key_len);
        key_lens[count++] = key_len;
        ok = json_write_keyn(w, key, key_len) && json_write_stringn(w, value, value_len);
    }
    const char *text = NULL;
    size_t text_len = 0;
    char *out = NULL;
    if (ok && count > 0 && json_write_end_object(w) && json_writer_finish(w, &text, &text_len) &&
        (out = malloc(text_len + 1)) != NULL) {
        memcpy(out, text, text_len);
        out[text_len] = '\0';
    }
    json_writer_free(w);
    return out;
}
