/* libFuzzer target: Managed Device Attestation answers through attest.c (attest_verify,
 * attest_read_leaf) and the verdict through attest_json.c.
 *
 * Input: one flags byte, then up to 5 items (one more than ATTEST_MAX_CERTS, so the "too many"
 * path is reachable), each a 2-byte big-endian length followed by that many bytes; a last item
 * shorter than its length takes whatever is left. Items are DER certificates, leaf first.
 *   flags bit 0: this request's nonce is FUZZ_NONCE (else no nonce was sent)
 *         bit 1: FUZZ_OLDER_NONCE is among the older nonces of this device (always there:
 *                the last 16 bytes of FUZZ_NONCE, a prefix-length trap)
 *         bit 2: the enrollment's UDID and serial are FUZZ_UDID and FUZZ_SERIAL
 *         bit 3: the device reports OS version FUZZ_OS
 *         bits 4-5: verification time: FUZZ_TIME, 400 days before, 400 days after, 2049-12-31
 *         bit 6: verify on a new verifier (full path validation) instead of the shared one,
 *                whose cache holds the stand-in sub CA after the first good chain
 *
 * Trust: the stand-in root below plus Apple's. The stand-in root is fixed (not created in
 * LLVMFuzzerInitialize) so that the seeds in corpus/attest, issued from it with
 * `fake-apple leaf` (leaves minted 2026-01-01, FUZZ_NONCE / FUZZ_OLDER_NONCE as freshness),
 * verify and the fuzzer starts past path validation; its keys were thrown away.
 *
 * Checks beyond memory safety: the verdict is coherent (verified <=> no reason, verified =>
 * fresh or cached), a parsed leaf is one attest_read_leaf() also reads, and the JSON record
 * parses. With VOUCH_FUZZ_DIFFERENTIAL=1 in the environment every input is also verified on a
 * new verifier and the verdicts must agree (cached intermediate vs full path; off by default
 * because of known disagreements, see tests/unit/test_attest_cache.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "attest_json.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_TIME ((time_t)1768435200) /* 2026-01-15T00:00:00Z */
#define FUZZ_UDID "00008030-001A2B3C4D5E802E"
#define FUZZ_SERIAL "F4GXK2ZQ0D"
#define FUZZ_OS "17.5"
#define MAX_ITEMS (ATTEST_MAX_CERTS + 1)

/* The bytes 0x00..0x1f and 0x20..0x3f: the seeds' freshness codes. */
static uint8_t fuzz_nonce[32], fuzz_older_nonce[32];

/* `fake-apple init` output; the seeds' chains end here. */
static const char stand_in_root_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICNTCCAbugAwIBAgIUNfELzPR3tEP41QUXN6tNeD4+7VIwCgYIKoZIzj0EAwMw\n"
    "WjE2MDQGA1UEAwwtU3RhbmQtaW4gQXBwbGUgRW50ZXJwcmlzZSBBdHRlc3RhdGlv\n"
    "biBSb290IENBMRMwEQYDVQQKDApBcHBsZSBJbmMuMQswCQYDVQQGEwJVUzAeFw0y\n"
    "MDAxMDEwMDAwMDBaFw00OTEyMzEyMzU5NTlaMFoxNjA0BgNVBAMMLVN0YW5kLWlu\n"
    "IEFwcGxlIEVudGVycHJpc2UgQXR0ZXN0YXRpb24gUm9vdCBDQTETMBEGA1UECgwK\n"
    "QXBwbGUgSW5jLjELMAkGA1UEBhMCVVMwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAATQ\n"
    "qdVO9laBQWHkzUn2pjYS8H/fOFHUPsZrXOFGeyBIUYNtYK6/wBz+wqDuW0SYyMXO\n"
    "VvXmGZJ5bE7vdq927PvafmxWgTXe1vZwgVFiiS/AOTZPBU7zzu173VrkaIiqmiej\n"
    "QjBAMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFPx+5K6C51pXPjPJGugIta/L\n"
    "s3YtMA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAwNoADBlAjEArMGvqY2mIq1n\n"
    "2mC2lBzBQGMiCnTA/5hdLEl5r+CyM8RZnQy+ODle9JorKtSguGbrAjBgsToQ6gkv\n"
    "66pnNPmdA5H+u2K5HVhpV67ahRPYSMSBBnLYzWffcG4+SPPMxgcnrqI=\n"
    "-----END CERTIFICATE-----\n";

static struct attest_verifier *shared;
static char *roots;
static size_t roots_len;
static bool differential;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (unsigned i = 0; i < 32; i++) {
        fuzz_nonce[i] = (uint8_t)i;
        fuzz_older_nonce[i] = (uint8_t)(0x20 + i);
    }
    roots_len = strlen(stand_in_root_pem) + strlen(attest_apple_root_pem);
    roots = malloc(roots_len + 1);
    if (roots == NULL)
        abort();
    memcpy(roots, stand_in_root_pem, strlen(stand_in_root_pem));
    memcpy(roots + strlen(stand_in_root_pem), attest_apple_root_pem,
           strlen(attest_apple_root_pem) + 1);
    char err[256];
    shared = attest_verifier_new(roots, roots_len, err, sizeof(err));
    if (shared == NULL) {
        fprintf(stderr, "fuzz_attest: %s\n", err);
        abort();
    }
    const char *diff = getenv("VOUCH_FUZZ_DIFFERENTIAL");
    differential = diff != NULL && diff[0] == '1';
    return 0;
}

static bool same_verdict(const struct attest_verdict *a, const struct attest_verdict *b)
{
    return a->status == b->status && a->freshness == b->freshness && a->reason == b->reason &&
           a->leaf_parsed == b->leaf_parsed;
}

static void check_json(const struct attest_verdict *v, const struct attest_input *in)
{
    struct attest_json_extra extra = {.certs = in->certs, .cert_lens = in->cert_lens,
                                      .cert_count = in->cert_count,
                                      .reported_os_version = in->reported_os_version,
                                      .checked = in,
                                      .pack_udid = in->expected_udid ? in->expected_udid : "udid"};
    struct json_writer *w = json_writer_new(1 << 20, 0);
    if (w == NULL)
        abort();
    const char *text;
    size_t len;
    if (!attest_json_write_verdict(w, v, &extra) || !json_writer_finish(w, &text, &len))
        abort();
    static const struct json_limits lim = {1 << 20, 8, 1000};
    struct json_doc *doc = NULL;
    if (json_parse(text, len, &lim, &doc, NULL) != JSON_OK)
        abort();
    json_doc_free(doc);
    json_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *items[MAX_ITEMS];
    size_t lens[MAX_ITEMS], count = 0, pos = 1;
    while (count < MAX_ITEMS && pos + 2 <= size) {
        size_t len = (size_t)data[pos] << 8 | data[pos + 1];
        pos += 2;
        if (len > size - pos)
            len = size - pos;
        items[count] = data + pos;
        lens[count] = len;
        count++;
        pos += len;
    }

    /* The leaf alone. */
    struct attest_properties props;
    time_t not_before, not_after;
    bool read_ok = count > 0 && attest_read_leaf(items[0], lens[0], &props, &not_before, &not_after);

    static const time_t times[] = {FUZZ_TIME, FUZZ_TIME - 400 * 86400, FUZZ_TIME + 400 * 86400,
                                   (time_t)2524607999};
    /* Always a 16-byte older nonce (the tail of FUZZ_NONCE: same bytes, another length). */
    const uint8_t *older[2] = {fuzz_nonce + 16, fuzz_older_nonce};
    size_t older_lens[2] = {16, 32};
    struct attest_input in = {
        .certs = items,
        .cert_lens = lens,
        .cert_count = count,
        .request_nonce = flags & 1 ? fuzz_nonce : NULL,
        .request_nonce_len = flags & 1 ? 32 : 0,
        .older_nonces = older,
        .older_nonce_lens = older_lens,
        .older_nonce_count = flags & 2 ? 2 : 1,
        .expected_udid = flags & 4 ? FUZZ_UDID : NULL,
        .expected_serial = flags & 4 ? FUZZ_SERIAL : NULL,
        .reported_os_version = flags & 8 ? FUZZ_OS : NULL,
        .verify_time = times[(flags >> 4) & 3],
    };

    struct attest_verdict v;
    struct attest_verifier *fresh = NULL;
    if ((flags & 0x40) || differential) {
        char err[256];
        fresh = attest_verifier_new(roots, roots_len, err, sizeof(err));
        if (fresh == NULL)
            abort();
    }
    attest_verify((flags & 0x40) ? fresh : shared, &in, &v);

    /* A coherent verdict. */
    if ((v.status == ATTEST_VERIFIED) != (v.reason == ATTEST_REASON_NONE))
        abort();
    if (v.status == ATTEST_VERIFIED &&
        v.freshness != ATTEST_FRESHNESS_FRESH && v.freshness != ATTEST_FRESHNESS_CACHED)
        abort();
    /* A leaf the verifier read is one attest_read_leaf() reads, the same way. */
    if (v.leaf_parsed && (!read_ok || v.not_before != not_before || v.not_after != not_after ||
                          v.properties.has_udid != props.has_udid ||
                          v.properties.sip_enabled != props.sip_enabled ||
                          v.properties.freshness_len != props.freshness_len))
        abort();
    check_json(&v, &in);

    if (differential) {
        struct attest_verdict other;
        attest_verify((flags & 0x40) ? shared : fresh, &in, &other);
        if (!same_verdict(&v, &other)) {
            fprintf(stderr, "fuzz_attest: %s verifier says %s/%s, %s one %s/%s\n",
                    (flags & 0x40) ? "new" : "shared", attest_status_name(v.status),
                    attest_reason_name(v.reason) ? attest_reason_name(v.reason) : "-",
                    (flags & 0x40) ? "shared" : "new", attest_status_name(other.status),
                    attest_reason_name(other.reason) ? attest_reason_name(other.reason) : "-");
            abort();
        }
    }
    attest_verifier_free(fresh);
    return 0;
}
