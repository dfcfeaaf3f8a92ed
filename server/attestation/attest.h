/*
 * attest: verifies a Managed Device Attestation, the Apple-signed certificate chain a device
 * returns for the DevicePropertiesAttestation query (docs/attestation.md).
 *
 * Pure: no I/O, no clock (the caller passes the verification time), used by vouchd and by
 * `vouchctl verify`. The verifier owns the trust anchors (attestation_roots) and a small cache of
 * intermediates it has already verified to them, so that a steady stream of answers costs one
 * signature check each. Not thread-safe: one verifier per thread.
 *
 * "verified" means all of: every item is one DER certificate; the path leaf -> supplied
 * intermediates -> a configured root verifies at the verification time, trusting nothing else;
 * the freshness code is a nonce this server sent this device (fresh: the nonce of this very
 * request; cached: an older one of the same enrollment generation, in a leaf Apple made after that
 * request and less than Apple's 7-day cache ago); the attested serial and UDID equal the
 * enrollment's; for a fresh
 * answer, the attested OS version equals the one the device reports in the same answer; and every
 * Apple extension parses with its exact encoding. Anything else is "failed" with one reason.
 */
#ifndef VOUCH_ATTEST_H
#define VOUCH_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ATTEST_MAX_CERTS 4              /* a real device sends 2 */
#define ATTEST_MAX_CERT_BYTES (16 * 1024)
#define ATTEST_MAX_NONCE_BYTES 64 /* longest freshness code read (Apple's: 32) */
#define ATTEST_MAX_VALUE 128            /* longest property string kept */
/* A device hands back its last attestation, instead of making a new one, only while that one is
 * younger than this (Apple's one-new-attestation-per-7-days rule). */
#define ATTEST_CACHE_MAX_AGE_S (7 * 24 * 3600)
#define ATTEST_CLOCK_SKEW_S 300 /* between Apple's clock, the device's and the server's */

enum attest_status { ATTEST_VERIFIED, ATTEST_FAILED };

enum attest_freshness {
    ATTEST_FRESHNESS_NONE,    /* not determined (the chain failed before freshness was read) */
    ATTEST_FRESHNESS_FRESH,   /* the nonce of this very request */
    ATTEST_FRESHNESS_CACHED,  /* an older nonce this server sent this device */
    ATTEST_FRESHNESS_UNKNOWN, /* anything else */
};

enum attest_reason {
    ATTEST_REASON_NONE = 0,
    ATTEST_REASON_MALFORMED,           /* not a list of DER certificates, or a bad extension */
    ATTEST_REASON_UNTRUSTED_CHAIN,     /* does not verify to a configured root at that time */
    ATTEST_REASON_NONCE_MISMATCH,      /* freshness code is none of this device's nonces */
    ATTEST_REASON_NONCE_MISSING,       /* no freshness code */
    ATTEST_REASON_UDID_MISMATCH,
    ATTEST_REASON_SERIAL_MISMATCH,
    ATTEST_REASON_OS_VERSION_MISMATCH, /* a fresh answer states another OS than reported */
    ATTEST_REASON_STALE_ATTESTATION,   /* cached, but older than its request or Apple's cache */
    ATTEST_REASON_ATTESTATION_WITHHELD, /* no attestation from a device that can give one (not
                                           attest_verify's: the caller decides, see
                                           device_models.h) */
    ATTEST_REASON_NO_ANSWER,           /* errors or silence past the retries (the database's) */
};

/* A property is "null" when absent or blank: Apple could not establish it. */
struct attest_properties {
    bool has_serial_number, has_udid, has_os_version, has_sepos_version, has_llb_version,
        has_software_update_device_id, has_secure_boot;
    char serial_number[ATTEST_MAX_VALUE + 1];
    char udid[ATTEST_MAX_VALUE + 1];
    char os_version[ATTEST_MAX_VALUE + 1];
    char sepos_version[ATTEST_MAX_VALUE + 1];
    char llb_version[ATTEST_MAX_VALUE + 1];
    char software_update_device_id[ATTEST_MAX_VALUE + 1];
    char secure_boot[ATTEST_MAX_VALUE + 1];
    int sip_enabled;               /* -1 null, 0 false, 1 true (.13.1: 0 = enabled) */
    int third_party_kexts_allowed; /* -1 null, 0 false, 1 true (.13.3: 0 = not allowed) */
    bool has_freshness;
    uint8_t freshness[ATTEST_MAX_NONCE_BYTES]; /* raw, never DER-decoded */
    size_t freshness_len;
};

/* What the caller knows about the request the answer belongs to. */
struct attest_input {
    const uint8_t *const *certs; /* DER items as the device sent them, leaf first */
    const size_t *cert_lens;
    size_t cert_count;
    const uint8_t *request_nonce; /* the nonce of this request; NULL if none was sent */
    size_t request_nonce_len;
    const uint8_t *const *older_nonces; /* every other nonce sent to this device */
    const size_t *older_nonce_lens;
    const time_t *older_requested_at; /* when each was asked; NULL: cached answers unbounded */
    bool require_fresh; /* asked when Apple's rule allows a new attestation (an OS change):
                           a cached answer is stale */
    size_t older_nonce_count;
    const char *expected_udid;      /* the enrollment's; NULL: not checked (offline verify) */
    const char *expected_serial;    /* the enrollment's; NULL: not checked */
    const char *reported_os_version; /* from the same answer; NULL: not checked */
    time_t verify_time;
};

struct attest_verdict {
    enum attest_status status;
    enum attest_freshness freshness;
    enum attest_reason reason;
    bool leaf_parsed; /* properties, validity and leaf_sha256 are meaningful */
    struct attest_properties properties;
    time_t not_before; /* when Apple minted it: the attestation's age */
    time_t not_after;
    uint8_t leaf_sha256[32];
    const uint8_t *cached_nonce; /* cached: the older nonce it carried (the caller's memory) */
    size_t cached_nonce_len;
    time_t cached_requested_at; /* when that nonce was asked (0: not known) */
};

struct attest_verifier;

/* A verifier trusting the certificates in roots_pem. NULL with a message in err on error. */
struct attest_verifier *attest_verifier_new(const char *roots_pem, size_t roots_len, char *err,
                                            size_t err_size);
void attest_verifier_free(struct attest_verifier *verifier);

/* Verifies one answer. Always fills out; never fails otherwise. */
void attest_verify(struct attest_verifier *verifier, const struct attest_input *in,
                   struct attest_verdict *out);

/* Reads the Apple properties of a leaf (DER) without verifying anything. Returns false for a leaf
 * that is not one DER certificate or whose Apple extensions do not parse (fail closed). */
bool attest_read_leaf(const uint8_t *der, size_t len, struct attest_properties *props,
                      time_t *not_before, time_t *not_after) __attribute__((warn_unused_result));

const char *attest_status_name(enum attest_status status);
const char *attest_freshness_name(enum attest_freshness freshness); /* NULL for NONE */
const char *attest_reason_name(enum attest_reason reason);          /* NULL for NONE */

/* The PEM of the Apple Enterprise Attestation Root CA, the default of attestation_roots. */
extern const char attest_apple_root_pem[];

#endif
