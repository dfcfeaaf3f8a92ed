/*
 * attest_json: writes attestation verdicts in the JSON shapes of docs/api.md (the device
 * object's attestation properties, reason codes, RFC 3339 UTC times).
 *
 * Pure. vouchd hands the result to the database, which keeps it as the attestation's record;
 * `vouchctl verify --json` prints it. The writer is the caller's.
 */
#ifndef VOUCH_ATTEST_JSON_H
#define VOUCH_ATTEST_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attest.h"

struct json_writer;

/* What else goes into the record: the chain as received and what the device reported. */
struct attest_json_extra {
    const uint8_t *const *certs; /* NULL: no "chain" member */
    const size_t *cert_lens;
    size_t cert_count;
    const char *reported_os_version; /* NULL: no "reported" member */
    const char *reported_build_version;
    /* What the verdict was checked against (NULL: no "checked" member), so that anyone can
     * check it again: the expected UDID and serial, the OS version compared, the time, whether
     * a new attestation was required, and when a cached answer's nonce was asked. */
    const struct attest_input *checked;
    /* The device's UDID as the database has it (vouch_report's): when set, "properties" and
     * "checked" also go packed, as the attestations row keeps them ("properties_packed",
     * "checked_packed": each value's JSON text in the keys' order, separated by U+001F, this
     * UDID's as U+001E), so that the database need not pack them. */
    const char *pack_udid;
};

/* {"status", "freshness", "reason", "generated_at", "expires_at", "leaf_sha256", "properties",
 *  ["properties_packed"], ["cached_nonce" (hex, a cached answer's)], ["checked"],
 *  ["checked_packed"], ["chain"], ["reported"]} */
bool attest_json_write_verdict(struct json_writer *w, const struct attest_verdict *verdict,
                               const struct attest_json_extra *extra)
    __attribute__((warn_unused_result));

/* {"status": "unsupported", ["reported"]}: the device answered without an attestation. */
bool attest_json_write_unsupported(struct json_writer *w, const struct attest_json_extra *extra)
    __attribute__((warn_unused_result));

/* The properties object of the device object. */
bool attest_json_write_properties(struct json_writer *w, const struct attest_properties *p)
    __attribute__((warn_unused_result));

/* RFC 3339 UTC ("2025-07-13T09:38:07Z") into out[21]. */
void attest_json_format_time(time_t t, char out[21]);

#endif
