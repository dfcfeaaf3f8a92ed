/*
 * device_attest: verifies an ACME device-attest-01 challenge answer from an Apple device
 * (docs/acme.md): the base64url attObj, a CBOR map {fmt: "apple", attStmt: {x5c: [leaf DER,
 * intermediate DER...]}} (authData ignored), decoded with libcbor under fixed bounds.
 *
 * Pure: no I/O, no clock (the caller passes the verification time). Shares attest.c's trust
 * anchors, chain verification (with its cache of intermediates) and Apple extension reader
 * through the same struct attest_verifier and attest_internal.h, so both routes judge a chain
 * and a leaf alike. Not thread-safe, like the verifier it uses.
 *
 * The decoder: the CBOR must be exactly one data item (no trailing byte) of at most
 * DEVICE_ATTEST_MAX_ITEMS data items and DEVICE_ATTEST_MAX_DEPTH nested containers, checked
 * before libcbor allocates anything, with definite lengths only (indefinite-length strings, arrays
 * and maps are refused anywhere, as malformed: devices encode definite lengths, and one encoding
 * per object keeps the decoder small); the top level and attStmt are maps with text keys, none
 * twice; fmt a text string; x5c a definite array of byte strings. Members other than fmt,
 * attStmt and x5c (authData among them) are ignored, whatever their type. A missing attStmt
 * reads as no attestation, like a missing or empty x5c.
 *
 * "verified" means all of: fmt is "apple"; x5c holds 1..ATTEST_MAX_CERTS items, each exactly one
 * DER certificate; the path leaf -> supplied intermediates -> a configured root verifies at the
 * verification time, trusting nothing else; the freshness code (1.2.840.113635.100.8.11.1) is
 * present and equals SHA-256 of the challenge token's ASCII (compared in constant time); the
 * attested serial (.9.1) and UDID (.9.2) are present and not blank; every Apple extension parses
 * with its exact encoding; the leaf's key is EC P-256 or P-384. Anything else is one reason,
 * the first found in this order of checks: the object (malformed, unsupported_format,
 * no_attestation), the leaf (malformed, bad_extension: read before its chain, as attest.c does),
 * the chain (malformed for an intermediate that is not DER, untrusted_chain), then
 * freshness_missing, freshness_mismatch, identity_missing, unsupported_key.
 * What the order expects (the ClientIdentifier's serial) is the caller's to compare.
 */
#ifndef VOUCH_DEVICE_ATTEST_H
#define VOUCH_DEVICE_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "attest.h"

#define DEVICE_ATTEST_MAX_ATTOBJ (32 * 1024) /* base64url characters of one attObj */
#define DEVICE_ATTEST_MAX_SPKI 256           /* DER SubjectPublicKeyInfo of a P-384 key: 120 */
/* A real attObj is 9 data items in 3 nested containers ({fmt, attStmt: {x5c: [leaf, sub]}});
 * these leave room for ignored members and none for an allocation bomb. */
#define DEVICE_ATTEST_MAX_ITEMS 64 /* CBOR data items in one attObj, map keys included */
#define DEVICE_ATTEST_MAX_DEPTH 8  /* containers (maps, arrays, tags) open at once */

enum device_attest_reason {
    DEVICE_ATTEST_OK = 0,
    DEVICE_ATTEST_MALFORMED,          /* attObj not unpadded base64url, not CBOR of the shape
                                         above, over a bound, or an x5c item not one DER cert */
    DEVICE_ATTEST_UNSUPPORTED_FORMAT, /* fmt is not "apple" */
    DEVICE_ATTEST_NO_ATTESTATION,     /* no x5c, or an empty one (Attest ignored by the device) */
    DEVICE_ATTEST_UNTRUSTED_CHAIN,    /* does not verify to a configured root at that time */
    DEVICE_ATTEST_FRESHNESS_MISSING,  /* no .11.1 */
    DEVICE_ATTEST_FRESHNESS_MISMATCH, /* .11.1 is not SHA-256(token) */
    DEVICE_ATTEST_IDENTITY_MISSING,   /* serial or UDID absent or blank (User Enrollment) */
    DEVICE_ATTEST_BAD_EXTENSION,      /* an Apple extension with a wrong encoding */
    DEVICE_ATTEST_UNSUPPORTED_KEY,    /* the attested key is not EC P-256 or P-384 */
};

struct device_attest_result {
    enum device_attest_reason reason;
    bool leaf_parsed; /* properties, times, leaf_sha256 and chain are meaningful */
    struct attest_properties properties;
    time_t not_before, not_after; /* the leaf's: when Apple made it, when it ends */
    uint8_t leaf_sha256[32];
    /* The attested key, DER SubjectPublicKeyInfo: finalize's CSR must carry exactly this key. */
    uint8_t spki[DEVICE_ATTEST_MAX_SPKI];
    size_t spki_len;
    /* The chain as sent (leaf first), copied out of the CBOR (owned; device_attest_clear()). */
    uint8_t *chain[ATTEST_MAX_CERTS];
    size_t chain_len[ATTEST_MAX_CERTS];
    size_t chain_count;
};

/* Verifies att_obj[0..len) (the JSON member's base64url text) for a challenge token (the ASCII
 * of the challenge's token; NULL matches nothing) at verify_time. Always fills out (zeroed
 * first); true when the reason is DEVICE_ATTEST_OK; spki is set only then. Leaves OpenSSL's
 * error queue empty. Call device_attest_clear() on out afterwards in every case. */
bool device_attest_verify(struct attest_verifier *verifier, const char *att_obj, size_t len,
                          const char *token, time_t verify_time, struct device_attest_result *out);

/* Frees the chain copied into result; twice is fine. */
void device_attest_clear(struct device_attest_result *result);

/* "malformed", "unsupported_format", "no_attestation", "untrusted_chain", "freshness_missing",
 * "freshness_mismatch", "identity_missing", "bad_extension", "unsupported_key"; NULL for OK. */
const char *device_attest_reason_name(enum device_attest_reason reason);

#endif
