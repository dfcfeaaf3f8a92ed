/*
 * identity: proves which device identity certificate stands behind a device request.
 *
 * Two ways in, as docs/protocol.md describes: the Mdm-Signature header (base64 of a detached CMS
 * SignedData over the exact body, made with the device's identity key) and a certificate header
 * set by a TLS-terminating proxy (RFC 9440 `:base64-DER:` or nginx's URL-escaped PEM). Either
 * way the certificate must chain to the configured identity CA, and the caller gets its SHA-256
 * (what enrollments are bound to), subject and expiry.
 *
 * No I/O: the verifier is built from PEM text and holds the trust store (owned, read-only after
 * construction) and a bounded cache of the certificates whose chains it verified (owned): a
 * device signs every request with the same certificate, and a known one costs the next request
 * only its signature check. An entry is used only within the validity of the whole chain it
 * was verified with, only for the same way in (signature or header), and dies with the
 * verifier (a new trust store starts empty). Every function bounds its input and leaves
 * OpenSSL's error queue empty. One thread.
 */
#ifndef VOUCH_IDENTITY_H
#define VOUCH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define IDENTITY_MAX_HEADER_LEN (32 * 1024)
/* The cache of chain-verified certificates (identity_cache_size): entries, about 4.6 KiB each
 * for a P-256 identity once filled, 0.4 KiB never used; the least recently used one makes room. */
#define IDENTITY_CACHE_DEFAULT 4096
#define IDENTITY_CACHE_MAX (1u << 20)

struct identity_verifier;

struct device_identity {
    uint8_t sha256[32]; /* of the certificate's DER */
    char subject[256];  /* RFC 2253, truncated */
    char not_after[32]; /* RFC 3339 UTC */
};

enum identity_error {
    IDENTITY_OK = 0,
    IDENTITY_MISSING,       /* no signature and no certificate header */
    IDENTITY_BAD_ENCODING,  /* not base64 / not DER / trailing bytes / too long */
    IDENTITY_BAD_CMS,       /* not a detached SignedData with exactly one signer */
    IDENTITY_BAD_SIGNATURE, /* the signature does not match the body */
    IDENTITY_UNTRUSTED,     /* the certificate does not chain to the identity CA */
};

struct identity_cache_stats {
    uint64_t hits;    /* identities proven with a cached certificate */
    uint64_t misses;  /* identities proven with a full chain verification */
    uint64_t expired; /* entries dropped because the time was outside their chain's validity */
    uint64_t evicted; /* entries dropped for another certificate */
};

/* Builds a verifier trusting the certificates in pem, caching up to cache_size verified
 * certificates (1 to IDENTITY_CACHE_MAX). NULL on error, with a message in err. */
struct identity_verifier *identity_verifier_new(const char *pem, size_t pem_len, size_t cache_size,
                                                char *err, size_t err_size);
void identity_verifier_free(struct identity_verifier *verifier);

/* Verifies as at `when` (0: the current time, the default), chains and cached entries alike:
 * for tests. */
void identity_verifier_set_time(struct identity_verifier *verifier, time_t when);

void identity_verifier_cache_stats(const struct identity_verifier *verifier,
                                   struct identity_cache_stats *out);

/* Verifies an Mdm-Signature header value against the request body. */
enum identity_error identity_from_signature(struct identity_verifier *verifier, const char *header,
                                            size_t header_len, const void *body, size_t body_len,
                                            struct device_identity *out)
    __attribute__((warn_unused_result));

/* Verifies a certificate passed by a proxy in a header. */
enum identity_error identity_from_cert_header(struct identity_verifier *verifier,
                                              const char *header, size_t header_len,
                                              struct device_identity *out)
    __attribute__((warn_unused_result));

/* The SHA-256 of a certificate (what enrollments are bound to) given in either header form, or
 * as plain PEM, without verifying anything: for a question about a certificate whose possession
 * a TLS terminator proved (the trust API). IDENTITY_OK, _MISSING or _BAD_ENCODING. */
enum identity_error identity_cert_sha256(const char *text, size_t len, uint8_t sha256[32])
    __attribute__((warn_unused_result));

const char *identity_error_name(enum identity_error err);

#endif
