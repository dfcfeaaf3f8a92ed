#include "attest_json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

void attest_json_format_time(time_t t, char out[21])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        out[0] = '\0';
}

/* A member of the properties or checked object: its key and its value, a string (NULL: null),
 * true/false/null (a tristate: < 0 is null) or true/false. */
enum field_kind { FIELD_STRING, FIELD_TRISTATE, FIELD_BOOL };

struct field {
    const char *key;
    enum field_kind kind;
    const char *string;
    int flag;
};

#define PROPERTY_FIELDS 9
#define CHECKED_FIELDS 6
/* A packed object's bound: nine properties of ATTEST_MAX_VALUE bytes fit, each escaped in full;
 * what the device reported (checked's OS version) may not. */
#define PACKED_MAX 8192

static struct field string_field(const char *key, bool has, const char *value)
{
    return (struct field){key, FIELD_STRING, has ? value : NULL, 0};
}

/* In the order of vouch_properties_keys() (db/functions/30_devices.sql). */
static void property_fields(const struct attest_properties *p, struct field f[PROPERTY_FIELDS])
{
    f[0] = string_field("serial_number", p->has_serial_number, p->serial_number);
    f[1] = string_field("udid", p->has_udid, p->udid);
    f[2] = string_field("os_version", p->has_os_version, p->os_version);
    f[3] = string_field("sepos_version", p->has_sepos_version, p->sepos_version);
    f[4] = string_field("llb_version", p->has_llb_version, p->llb_version);
    f[5] = string_field("software_update_device_id", p->has_software_update_device_id,
                        p->software_update_device_id);
    f[6] = (struct field){"sip_enabled", FIELD_TRISTATE, NULL, p->sip_enabled};
    f[7] = string_field("secure_boot", p->has_secure_boot, p->secure_boot);
    f[8] = (struct field){"third_party_kexts_allowed", FIELD_TRISTATE, NULL,
                          p->third_party_kexts_allowed};
}

/* "checked": what the verdict was checked against (see attest_json_extra), in the order of
 * vouch_checked_keys(). at and asked hold the times' text. */
static void checked_fields(const struct attest_verdict *v, const struct attest_input *in,
                           char at[21], char asked[21], struct field f[CHECKED_FIELDS])
{
    attest_json_format_time(in->verify_time, at);
    attest_json_format_time(v->cached_requested_at, asked);
    f[0] = string_field("udid", true, in->expected_udid);
    f[1] = string_field("serial", true, in->expected_serial);
    f[2] = string_field("os_version", true, in->reported_os_version);
    f[3] = string_field("at", true, at);
    f[4] = (struct field){"require_fresh", FIELD_BOOL, NULL, in->require_fresh};
    f[5] = string_field("cached_requested_at", v->cached_requested_at != 0, asked);
}

static bool write_value(struct json_writer *w, const struct field *f)
{
    switch (f->kind) {
    case FIELD_STRING:
        return json_write_string_or_null(w, f->string);
    case FIELD_TRISTATE:
        return f->flag < 0 ? json_write_null(w) : json_write_bool(w, f->flag != 0);
    case FIELD_BOOL:
        return json_write_bool(w, f->flag != 0);
    }
    return false;
}

static bool write_object(struct json_writer *w, const struct field *f, size_t count)
{
    bool ok = json_write_begin_object(w);
    for (size_t i = 0; ok && i < count; i++)
        ok = json_write_key(w, f[i].key) && write_value(w, &f[i]);
    return ok && json_write_end_object(w);
}

/* key: the object of these fields packed, as the attestations row keeps it (properties_packed,
 * checked_packed; docs/attestation.md, "Storage"): each value's JSON text in order, separated
 * by U+001F, a value whose text is udid between quotes as U+001E. vouch_json_unpack
 * (db/functions/30_devices.sql) gives back the very text write_object writes, and the database
 * need not pack it again (vouch_json_pack, which also checks that; tests/check-packed-keys.py
 * holds the key lists together). Values too long for PACKED_MAX (a long OS version a device
 * reported) leave the member out: the database packs the object itself, or keeps it whole.
 * False only when w failed. */
static bool write_packed(struct json_writer *w, const char *key, const struct field *f,
                         size_t count, const char *udid)
{
    struct json_writer *value = json_writer_new(PACKED_MAX, 0);
    char *packed = malloc(PACKED_MAX);
    size_t len = 0, udid_len = strlen(udid);
    bool fits = value != NULL && packed != NULL;
    for (size_t i = 0; fits && i < count; i++) {
        const char *text;
        size_t text_len;
        json_writer_reset(value);
        fits = write_value(value, &f[i]) && json_writer_finish(value, &text, &text_len) &&
               len + text_len + 1 <= PACKED_MAX;
        if (!fits)
            break;
        if (text_len == udid_len + 2 && text[0] == '"' && text[text_len - 1] == '"' &&
            memcmp(text + 1, udid, udid_len) == 0) {
            packed[len++] = '\x1e';
        } else {
            memcpy(packed + len, text, text_len);
            len += text_len;
        }
        if (i + 1 < count)
            packed[len++] = '\x1f';
    }
    bool ok = !fits || (json_write_key(w, key) && json_write_stringn(w, packed, len));
    free(packed);
    json_writer_free(value);
    return ok;
}

bool attest_json_write_properties(struct json_writer *w, const struct attest_properties *p)
{
    struct field f[PROPERTY_FIELDS];
    property_fields(p, f);
    return write_object(w, f, PROPERTY_FIELDS);
}

static bool write_base64(struct json_writer *w, const uint8_t *data, size_t len)
{
    char *text = malloc(4 * ((len + 2) / 3) + 1);
    if (text == NULL)
        return false;
    int n = EVP_EncodeBlock((unsigned char *)text, data, (int)len);
    bool ok = n >= 0 && json_write_stringn(w, text, (size_t)n);
    free(text);
    return ok;
}

static bool write_extra(struct json_writer *w, const struct attest_json_extra *extra)
{
    if (extra == NULL)
        return true;
    bool ok = true;
    if (extra->certs != NULL) {
        ok = json_write_key(w, "chain") && json_write_begin_array(w);
        for (size_t i = 0; ok && i < extra->cert_count; i++)
            ok = write_base64(w, extra->certs[i], extra->cert_lens[i]);
        ok = ok && json_write_end_array(w);
    }
    if (ok && (extra->reported_os_version != NULL || extra->reported_build_version != NULL))
        ok = json_write_key(w, "reported") && json_write_begin_object(w) &&
             json_write_key(w, "os_version") &&
             json_write_string_or_null(w, extra->reported_os_version) &&
             json_write_key(w, "build_version") &&
             json_write_string_or_null(w, extra->reported_build_version) &&
             json_write_end_object(w);
    return ok;
}

bool attest_json_write_verdict(struct json_writer *w, const struct attest_verdict *v,
                               const struct attest_json_extra *extra)
{
    bool ok = json_write_begin_object(w) && json_write_key(w, "status") &&
              json_write_string(w, attest_status_name(v->status)) &&
              json_write_key(w, "freshness") &&
              json_write_string_or_null(w, attest_freshness_name(v->freshness)) &&
              json_write_key(w, "reason") &&
              json_write_string_or_null(w, attest_reason_name(v->reason));
    if (ok && v->leaf_parsed) {
        char not_before[21], not_after[21], hex[65];
        attest_json_format_time(v->not_before, not_before);
        attest_json_format_time(v->not_after, not_after);
        for (size_t i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", v->leaf_sha256[i]);
        ok = json_write_key(w, "generated_at") && json_write_string(w, not_before) &&
             json_write_key(w, "expires_at") && json_write_string(w, not_after) &&
             json_write_key(w, "leaf_sha256") && json_write_string(w, hex) &&
             json_write_key(w, "properties") && attest_json_write_properties(w, &v->properties);
        if (ok && extra != NULL && extra->pack_udid != NULL) {
            struct field f[PROPERTY_FIELDS];
            property_fields(&v->properties, f);
            ok = write_packed(w, "properties_packed", f, PROPERTY_FIELDS, extra->pack_udid);
        }
        if (ok && v->cached_nonce != NULL && v->cached_nonce_len <= ATTEST_MAX_NONCE_BYTES) {
            char nonce[2 * ATTEST_MAX_NONCE_BYTES + 1] = "";
            for (size_t i = 0; i < v->cached_nonce_len; i++)
                snprintf(nonce + 2 * i, 3, "%02x", v->cached_nonce[i]);
            ok = json_write_key(w, "cached_nonce") && json_write_string(w, nonce);
        }
    } else if (ok) {
        ok = json_write_key(w, "generated_at") && json_write_null(w) &&
             json_write_key(w, "expires_at") && json_write_null(w) &&
             json_write_key(w, "leaf_sha256") && json_write_null(w) &&
             json_write_key(w, "properties") && json_write_null(w);
    }
    if (ok && extra != NULL && extra->checked != NULL) {
        char at[21], asked[21];
        struct field f[CHECKED_FIELDS];
        checked_fields(v, extra->checked, at, asked, f);
        ok = json_write_key(w, "checked") && write_object(w, f, CHECKED_FIELDS);
        if (ok && extra->pack_udid != NULL)
            ok = write_packed(w, "checked_packed", f, CHECKED_FIELDS, extra->pack_udid);
    }
    return ok && write_extra(w, extra) && json_write_end_object(w);
}

bool attest_json_write_unsupported(struct json_writer *w, const struct attest_json_extra *extra)
{
    return json_write_begin_object(w) && json_write_key(w, "status") &&
           json_write_string(w, "unsupported") && write_extra(w, extra) &&
           json_write_end_object(w);
}
