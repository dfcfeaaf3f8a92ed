#include "plist_json.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "mdm_message.h"
#include "utf8.h"

/* Seconds from the Unix epoch to the plist epoch (2001-01-01T00:00:00Z): libplist 2.2 keeps
 * dates relative to the latter. */
#define PLIST_EPOCH_OFFSET 978307200LL

const char *plist_json_strerror(enum plist_json_error err)
{
    switch (err) {
    case PLIST_JSON_OK:
        return "ok";
    case PLIST_JSON_NOT_XML:
        return "not an XML property list";
    case PLIST_JSON_TOO_DEEP:
        return "nested too deep";
    case PLIST_JSON_TOO_MANY:
        return "too many values";
    case PLIST_JSON_MALFORMED:
        return "malformed property list";
    case PLIST_JSON_WRITE:
        return "the JSON text would be too large";
    }
    return "unknown error";
}

enum plist_json_error plist_json_parse_xml(const char *xml, size_t len, unsigned max_depth,
                                           plist_t *out)
{
    *out = NULL;
    size_t skip = 0;
    if (len >= 3 && memcmp(xml, "\xef\xbb\xbf", 3) == 0)
        skip = 3;
    while (skip < len &&
           (xml[skip] == ' ' || xml[skip] == '\t' || xml[skip] == '\r' || xml[skip] == '\n'))
        skip++;
    if (skip >= len || xml[skip] != '<' || len > UINT32_MAX)
        return PLIST_JSON_NOT_XML;
    switch (mdm_xml_scan(xml, len, max_depth)) {
    case MDM_XML_OK:
        break;
    case MDM_XML_TOO_DEEP:
        return PLIST_JSON_TOO_DEEP;
    case MDM_XML_MARKUP:
        return PLIST_JSON_MALFORMED;
    }
    plist_from_xml(xml, (uint32_t)len, out);
    return *out != NULL ? PLIST_JSON_OK : PLIST_JSON_MALFORMED;
}

/* ---- plist to JSON ---- */

struct to_json {
    struct json_writer *w;
    const struct plist_json_limits *limits;
    size_t nodes;
};

/* Writes s[0..len) as a JSON string (a key when as_key), each invalid UTF-8 byte as U+FFFD. */
static bool write_text(struct json_writer *w, const char *s, size_t len, bool as_key)
{
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
        bad += n == 0;
        i += n == 0 ? 1 : n;
    }
    if (bad == 0)
        return as_key ? json_write_keyn(w, s, len) : json_write_stringn(w, s, len);
    char *fixed = malloc(len + 2 * bad + 1);
    if (fixed == NULL)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_length((const unsigned char *)s + i, len - i);
        if (n == 0) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, n);
            o += n;
            i += n;
        }
    }
    bool ok = as_key ? json_write_keyn(w, fixed, o) : json_write_stringn(w, fixed, o);
    free(fixed);
    return ok;
}

static bool write_base64(struct json_writer *w, const char *data, uint64_t len)
{
    if (len > (uint64_t)INT32_MAX / 4 * 3 - 3)
        return false;
    size_t out_len = 4 * (((size_t)len + 2) / 3);
    unsigned char *text = malloc(out_len + 1);
    if (text == NULL)
        return false;
    int n = EVP_EncodeBlock(text, (const unsigned char *)data, (int)len);
    bool ok = n >= 0 && json_write_stringn(w, (const char *)text, (size_t)n);
    free(text);
    return ok;
}

static bool write_date(struct json_writer *w, plist_t node)
{
    int32_t sec = 0, usec = 0;
    plist_get_date_val(node, &sec, &usec);
    time_t t = (time_t)((int64_t)sec + PLIST_EPOCH_OFFSET);
    struct tm tm;
    char text[32];
    if (gmtime_r(&t, &tm) == NULL || strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_write_null(w);
    return json_write_string(w, text);
}

static enum plist_json_error write_node(struct to_json *c, plist_t node, unsigned depth);

static enum plist_json_error write_dict(struct to_json *c, plist_t node, unsigned depth)
{
    if (!json_write_begin_object(c->w))
        return PLIST_JSON_WRITE;
    plist_dict_iter it = NULL;
    plist_dict_new_iter(node, &it);
    enum plist_json_error err = it == NULL ? PLIST_JSON_WRITE : PLIST_JSON_OK;
    while (err == PLIST_JSON_OK) {
        char *key = NULL;
        plist_t item = NULL;
        plist_dict_next_item(node, it, &key, &item);
        if (item == NULL) {
            free(key);
            break;
        }
        if (key == NULL || !write_text(c->w, key, strlen(key), true))
            err = PLIST_JSON_WRITE;
        else
            err = write_node(c, item, depth);
        free(key);
    }
    free(it);
    if (err == PLIST_JSON_OK && !json_write_end_object(c->w))
        err = PLIST_JSON_WRITE;
    return err;
}

static enum plist_json_error write_array(struct to_json *c, plist_t node, unsigned depth)
{
    if (!json_write_begin_array(c->w))
        return PLIST_JSON_WRITE;
    plist_array_iter it = NULL;
    plist_array_new_iter(node, &it);
    enum plist_json_error err = it == NULL ? PLIST_JSON_WRITE : PLIST_JSON_OK;
    while (err == PLIST_JSON_OK) {
        plist_t item = NULL;
        plist_array_next_item(node, it, &item);
        if (item == NULL)
            break;
        err = write_node(c, item, depth);
    }
    free(it);
    if (err == PLIST_JSON_OK && !json_write_end_array(c->w))
        err = PLIST_JSON_WRITE;
    return err;
}

static enum plist_json_error write_node(struct to_json *c, plist_t node, unsigned depth)
{
    if (++c->nodes > c->limits->max_nodes)
        return PLIST_JSON_TOO_MANY;
    bool ok;
    switch (plist_get_node_type(node)) {
    case PLIST_DICT:
    case PLIST_ARRAY:
        if (depth + 1 > c->limits->max_depth || depth + 1 > JSON_WRITER_MAX_DEPTH)
            return PLIST_JSON_TOO_DEEP;
        return plist_get_node_type(node) == PLIST_DICT ? write_dict(c, node, depth + 1)
                                                       : write_array(c, node, depth + 1);
    case PLIST_STRING:
    case PLIST_KEY: {
        uint64_t len = 0;
        const char *s = plist_get_string_ptr(node, &len);
        ok = s != NULL && write_text(c->w, s, (size_t)len, false);
        break;
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(node, &b);
        ok = json_write_bool(c->w, b != 0);
        break;
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        plist_get_uint_val(node, &u);
        ok = json_write_int64(c->w, (int64_t)u);
        break;
    }
    case PLIST_REAL: {
        double d = 0;
        plist_get_real_val(node, &d);
        ok = isfinite(d) ? json_write_double(c->w, d) : json_write_null(c->w);
        break;
    }
    case PLIST_DATA: {
        uint64_t len = 0;
        const char *data = plist_get_data_ptr(node, &len);
        ok = write_base64(c->w, data != NULL ? data : "", data != NULL ? len : 0);
        break;
    }
    case PLIST_DATE:
        ok = write_date(c->w, node);
        break;
    case PLIST_UID: {
        uint64_t u = 0;
        plist_get_uid_val(node, &u);
        ok = json_write_int64(c->w, (int64_t)u);
        break;
    }
    default:
        ok = json_write_null(c->w);
        break;
    }
    return ok ? PLIST_JSON_OK : PLIST_JSON_WRITE;
}

enum plist_json_error plist_json_write(struct json_writer *w, plist_t node,
                                       const struct plist_json_limits *limits)
{
    struct to_json c = {w, limits, 0};
    return write_node(&c, node, 0);
}

/* ---- JSON to plist ---- */

struct to_plist {
    const struct plist_json_limits *limits;
    size_t nodes;
    char *err;
    size_t err_size;
    char path[256]; /* the JSON path of the value being converted, cut short when long */
};

static bool refuse(struct to_plist *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool refuse(struct to_plist *c, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (c->err_size > 0)
        snprintf(c->err, c->err_size, "%s: %s", c->path, why);
    return false;
}

/* "YYYY-MM-DDTHH:MM:SSZ" (a 'z' or a space for the 'T' are read too); false otherwise. */
static bool parse_rfc3339(const char *s, int64_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof(shape) - 1)
        return false;
    int v[6] = {0};
    static const int starts[6] = {0, 5, 8, 11, 14, 17}, widths[6] = {4, 2, 2, 2, 2, 2};
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        char ch = s[i];
        if (shape[i] == 'd' ? (ch < '0' || ch > '9')
                            : (ch != shape[i] && !(shape[i] == 'T' && (ch == 't' || ch == ' ')) &&
                               !(shape[i] == 'Z' && ch == 'z')))
            return false;
    }
    for (int f = 0; f < 6; f++)
        for (int k = 0; k < widths[f]; k++)
            v[f] = v[f] * 10 + (s[starts[f] + k] - '0');
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return false;
    struct tm tm = {.tm_year = v[0] - 1900,
                    .tm_mon = v[1] - 1,
                    .tm_mday = v[2],
                    .tm_hour = v[3],
                    .tm_min = v[4],
                    .tm_sec = v[5]};
    time_t t = timegm(&tm);
    if (tm.tm_mday != v[2]) /* February 30th and the like */
        return false;
    *out = (int64_t)t;
    return true;
}

static bool from_base64(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
    if (len % 4 != 0 || len > INT32_MAX)
        return false;
    size_t pad = 0;
    if (len > 0 && text[len - 1] == '=')
        pad++;
    if (len > 1 && text[len - 2] == '=')
        pad++;
    for (size_t i = 0; i < len - pad; i++) {
        char ch = text[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return false;
    }
    *out = malloc(len / 4 * 3 + 1);
    if (*out == NULL)
        return false;
    int n = len > 0 ? EVP_DecodeBlock(*out, (const unsigned char *)text, (int)len) : 0;
    if (n < 0 || (size_t)n < pad) {
        free(*out);
        *out = NULL;
        return false;
    }
    *out_len = (size_t)n - pad;
    return true;
}

static plist_t to_plist_node(struct to_plist *c, const struct json_value *v, unsigned depth);

/* {"$data": "..."} or {"$date": "..."}: the plist value it stands for, or NULL (*tagged tells
 * whether the object was one of them). */
static plist_t tagged_value(struct to_plist *c, const struct json_value *v, bool *tagged)
{
    const char *key, *text;
    size_t key_len, text_len;
    const struct json_value *member;
    *tagged = false;
    if (json_object_count(v) != 1 || !json_object_member(v, 0, &key, &key_len, &member) ||
        (strcmp(key, "$data") != 0 && strcmp(key, "$date") != 0))
        return NULL;
    *tagged = true;
    if (!json_get_string(member, &text, &text_len)) {
        refuse(c, "%s must be a string", key);
        return NULL;
    }
    if (strcmp(key, "$data") == 0) {
        unsigned char *bytes = NULL;
        size_t n = 0;
        if (!from_base64(text, text_len, &bytes, &n)) {
            refuse(c, "$data is not base64");
            return NULL;
        }
        plist_t node = plist_new_data((const char *)bytes, n);
        free(bytes);
        return node;
    }
    int64_t unix_time;
    if (text_len != strlen(text) || !parse_rfc3339(text, &unix_time)) {
        refuse(c, "$date is not a time like 2024-05-01T12:00:00Z");
        return NULL;
    }
    int64_t since = unix_time - PLIST_EPOCH_OFFSET;
    if (since < INT32_MIN || since > INT32_MAX) {
        refuse(c, "$date is out of the plist's range");
        return NULL;
    }
    return plist_new_date((int32_t)since, 0);
}

static plist_t to_plist_object(struct to_plist *c, const struct json_value *v, unsigned depth)
{
    bool tagged;
    plist_t node = tagged_value(c, v, &tagged);
    if (tagged)
        return node;
    node = plist_new_dict();
    size_t path_len = strlen(c->path);
    for (size_t i = 0; node != NULL && i < json_object_count(v); i++) {
        const char *key;
        const struct json_value *member;
        if (!json_object_member(v, i, &key, NULL, &member)) {
            plist_free(node);
            return NULL;
        }
        snprintf(c->path + path_len, sizeof(c->path) - path_len, ".%s", key);
        plist_t item = to_plist_node(c, member, depth);
        if (item == NULL) {
            plist_free(node);
            return NULL;
        }
        plist_dict_set_item(node, key, item);
    }
    c->path[path_len] = '\0';
    return node;
}

static plist_t to_plist_array(struct to_plist *c, const struct json_value *v, unsigned depth)
{
    plist_t node = plist_new_array();
    size_t path_len = strlen(c->path);
    for (size_t i = 0; node != NULL && i < json_array_length(v); i++) {
        snprintf(c->path + path_len, sizeof(c->path) - path_len, "[%zu]", i);
        plist_t item = to_plist_node(c, json_array_at(v, i), depth);
        if (item == NULL) {
            plist_free(node);
            return NULL;
        }
        plist_array_append_item(node, item);
    }
    c->path[path_len] = '\0';
    return node;
}

static plist_t to_plist_node(struct to_plist *c, const struct json_value *v, unsigned depth)
{
    if (++c->nodes > c->limits->max_nodes) {
        refuse(c, "more than %zu values", c->limits->max_nodes);
        return NULL;
    }
    switch (json_value_kind(v)) {
    case JSON_KIND_NULL:
        refuse(c, "null has no plist form");
        return NULL;
    case JSON_KIND_BOOL: {
        bool b = false;
        return json_get_bool(v, &b) ? plist_new_bool(b) : NULL;
    }
    case JSON_KIND_NUMBER: {
        int64_t n;
        double d;
        if (json_get_int64(v, &n))
            return plist_new_uint((uint64_t)n);
        return json_get_double(v, &d) ? plist_new_real(d) : NULL;
    }
    case JSON_KIND_STRING: {
        const char *s;
        size_t len;
        if (!json_get_string(v, &s, &len) || strlen(s) != len) {
            refuse(c, "a string with a NUL character has no plist form");
            return NULL;
        }
        return plist_new_string(s);
    }
    case JSON_KIND_ARRAY:
    case JSON_KIND_OBJECT:
        if (depth + 1 > c->limits->max_depth) {
            refuse(c, "nested deeper than %u", c->limits->max_depth);
            return NULL;
        }
        return json_value_kind(v) == JSON_KIND_ARRAY ? to_plist_array(c, v, depth + 1)
                                                     : to_plist_object(c, v, depth + 1);
    }
    return NULL;
}

bool plist_json_to_plist(const struct json_value *v, const struct plist_json_limits *limits,
                         plist_t *out, char *err, size_t err_size)
{
    struct to_plist c = {.limits = limits, .err = err, .err_size = err_size, .path = "$"};
    if (err_size > 0)
        err[0] = '\0';
    *out = to_plist_node(&c, v, 0);
    if (*out == NULL && err_size > 0 && err[0] == '\0')
        snprintf(err, err_size, "%s: cannot be converted (out of memory)", c.path);
    return *out != NULL;
}
