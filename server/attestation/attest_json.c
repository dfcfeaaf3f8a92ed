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

static bool write_optional_string(struct json_writer *w, const char *key, bool has,
                                  const char *value)
{
    return json_write_key(w, key) && (has ? json_write_string(w, value) : json_write_null(w));
}

static bool write_tristate(struct json_writer *w, const char *key, int value)
{
    return json_write_key(w, key) && (value < 0 ? json_write_null(w) : json_write_bool(w, value));
}

bool attest_json_write_properties(struct json_writer *w, const struct attest_properties *p)
{
    return json_write_begin_object(w) &&
           write_optional_string(w, "serial_number", p->has_serial_number, p->serial_number) &&
           write_optional_string(w, "udid", p->has_udid, p->udid) &&
           write_optional_string(w, "os_version", p->has_os_version, p->os_version) &&
           write_optional_string(w, "sepos_version", p->has_sepos_version, p->sepos_version) &&
           write_optional_string(w, "llb_version", p->has_llb_version, p->llb_version) &&
           write_optional_string(w, "software_update_device_id",
                                 p->has_software_update_device_id,
                                 p->software_update_device_id) &&
           write_tristate(w, "sip_enabled", p->sip_enabled) &&
           write_optional_string(w, "secure_boot", p->has_secure_boot, p->secure_boot) &&
           write_tristate(w, "third_party_kexts_allowed", p->third_party_kexts_allowed) &&
           json_write_end_object(w);
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

/* "checked": what the verdict was checked against (see attest_json_extra). */
static bool write_checked(struct json_writer *w, const struct attest_verdict *v,
                          const struct attest_input *in)
{
    char at[21], asked[21];
    attest_json_format_time(in->verify_time, at);
    attest_json_format_time(v->cached_requested_at, asked);
    return json_write_key(w, "checked") && json_write_begin_object(w) &&
           json_write_key(w, "udid") && json_write_string_or_null(w, in->expected_udid) &&
           json_write_key(w, "serial") && json_write_string_or_null(w, in->expected_serial) &&
           json_write_key(w, "os_version") &&
           json_write_string_or_null(w, in->reported_os_version) && json_write_key(w, "at") &&
           json_write_string(w, at) && json_write_key(w, "require_fresh") &&
           json_write_bool(w, in->require_fresh) && json_write_key(w, "cached_requested_at") &&
           json_write_string_or_null(w, v->cached_requested_at ? asked : NULL) &&
           json_write_end_object(w);
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
    if (ok && extra != NULL && extra->checked != NULL)
        ok = write_checked(w, v, extra->checked);
    return ok && write_extra(w, extra) && json_write_end_object(w);
}

bool attest_json_write_unsupported(struct json_writer *w, const struct attest_json_extra *extra)
{
    return json_write_begin_object(w) && json_write_key(w, "status") &&
           json_write_string(w, "unsupported") && write_extra(w, extra) &&
           json_write_end_object(w);
}
