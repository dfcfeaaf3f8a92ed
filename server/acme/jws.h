/*
 * jws: the JSON Web Signature envelope of every ACME request (RFC 8555 §6.2, RFC 7515 flattened
 * JSON serialization) and the JSON Web Keys of ACME accounts (RFC 7517, RFC 7638 thumbprints).
 *
 * Pure: no I/O, no clock, no database; used by server/acme/acme.c and fuzzed on its own.
 * jws_parse() reads and bounds the envelope and its protected header without trusting anything
 * in it; jws_verify() checks the signature with the key the caller chose (the header's jwk for
 * newAccount, the account's stored key for kid). The caller checks nonce, url and kid against
 * its own state. Algorithms: ES256 (P-256), ES384 (P-384) and RS256 (RSA >= 2048 bits); never
 * "none", HMAC or a key whose type does not match alg. ECDSA signatures are the JWS form, r||s
 * of the curve's size, converted to DER here for OpenSSL.
 *
 * Ownership: a struct jws owns its decoded payload and its jwk key (freed by jws_clear()); keys
 * returned by jws_key_from_jwk() belong to the caller (EVP_PKEY_free()). Every function leaves
 * OpenSSL's error queue empty.
 */
#ifndef VOUCH_JWS_H
#define VOUCH_JWS_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWS_MAX_BODY (64 * 1024) /* a whole request body; a CSR or attObj is a few KiB */
#define JWS_MAX_NONCE 128        /* header "nonce" */
#define JWS_MAX_URL 512          /* header "url" and "kid" */
#define JWS_MAX_JWK 4096         /* canonical JWK text (RSA 4096 fits) */
#define JWS_THUMBPRINT_LEN 32    /* SHA-256 */
#define JWS_RSA_MIN_BITS 2048    /* RS256 key sizes: the maximum is what ACME clients make */
#define JWS_RSA_MAX_BITS 4096    /* and bounds the cost of one verification */

enum jws_alg { JWS_ALG_ES256, JWS_ALG_ES384, JWS_ALG_RS256 };

enum jws_error {
    JWS_OK = 0,
    JWS_MALFORMED,     /* not flattened JSON, bad base64url, a member missing or of the wrong
                          kind, both or neither of jwk/kid, too long: RFC 8555 "malformed" */
    JWS_BAD_ALG,       /* alg missing, "none", HMAC or unknown: "badSignatureAlgorithm" */
    JWS_BAD_KEY,       /* a jwk that is not a usable EC P-256/P-384 or RSA >= 2048 public key,
                          or of another type than alg: "badPublicKey" */
    JWS_BAD_SIGNATURE, /* the signature does not verify: "unauthorized" (RFC 8555 §6.2) */
};

struct jws {
    enum jws_alg alg;
    /* "" when the header has none: the caller answers that with badNonce (RFC 8555 §6.5), as
       for any nonce it did not issue. A nonce that is not base64url is JWS_MALFORMED. */
    char nonce[JWS_MAX_NONCE + 1];
    char url[JWS_MAX_URL + 1]; /* required; url and kid are printable ASCII, no spaces */
    bool has_kid;              /* exactly one of has_kid and jwk */
    char kid[JWS_MAX_URL + 1];
    EVP_PKEY *jwk;                       /* the header's key, when it has one (owned) */
    char jwk_canonical[JWS_MAX_JWK + 1]; /* RFC 7638 member order, no spaces: what is stored */
    uint8_t jwk_thumbprint[JWS_THUMBPRINT_LEN]; /* SHA-256 of jwk_canonical */
    unsigned char *payload;                     /* decoded payload, NUL-terminated (owned) */
    size_t payload_len;                         /* 0: POST-as-GET (payload "") */
    /* What the signature covers and the signature itself (owned). */
    char *signing_input; /* protected "." payload, as sent */
    size_t signing_input_len;
    unsigned char *signature;
    size_t signature_len;
};

/* Parses body[0..len) into out (zeroed first). On error, out holds nothing to free and detail
 * (may be NULL) gets a one-line reason safe to send back to the client (it never quotes the
 * request). The envelope has exactly the members protected, payload and signature (so no
 * unprotected "header", no general serialization); the header may not have "crit"; duplicate
 * keys are refused at every level; a header jwk must match alg (JWS_BAD_KEY). */
enum jws_error jws_parse(const char *body, size_t len, struct jws *out, char *detail,
                         size_t detail_size) __attribute__((warn_unused_result));

/* Checks out's signature with key (its jwk, or the account's). JWS_BAD_KEY when key's type or
 * curve is not what alg names, or an RSA key's size is out of bounds; an ECDSA signature that is
 * not r||s of the curve's size (DER, say) is JWS_BAD_SIGNATURE. */
enum jws_error jws_verify(const struct jws *jws, EVP_PKEY *key) __attribute__((warn_unused_result));

/* Frees what jws_parse() allocated; a zeroed or cleared struct is fine. */
void jws_clear(struct jws *jws);

/* A key from JWK JSON text (as jws_parse() reads a header's jwk, or jwk_canonical as stored),
 * with its canonical text and thumbprint (either may be NULL). NULL when not a usable key: a
 * private member ("d", ...), another kty or crv, EC coordinates not of the curve's size or not
 * on it, an RSA modulus outside [JWS_RSA_MIN_BITS, JWS_RSA_MAX_BITS], or n or e with leading
 * zero bytes (RFC 7518 §6.3.1.1: one key, one canonical text, one thumbprint). */
EVP_PKEY *jws_key_from_jwk(const char *json, size_t len, char canonical[JWS_MAX_JWK + 1],
                           uint8_t thumbprint[JWS_THUMBPRINT_LEN]);

/* The RFC 8555 problem type suffix for an error ("malformed", "badSignatureAlgorithm", ...);
 * NULL for JWS_OK. */
const char *jws_error_problem(enum jws_error err);

/* base64url (unpadded, strict) is lib/b64url.h's. */

#endif
