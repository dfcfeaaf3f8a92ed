/*
 * sim_pki: the device-identity PKI of vouch-sim.
 *
 * Plays the part of the SCEP/ACME certificate authority that issues real devices their identity
 * certificates, and the part of the device that signs every MDM request with that identity
 * (the Mdm-Signature header: a detached CMS SignedData over the exact body bytes).
 *
 * Pure: no file or network I/O (sim_store keeps the results in the state directory).
 *
 * Ownership: sim_pki_ca_load(), sim_pki_loader_new() and sim_pki_identity_load() hand over objects
 * the caller frees with the matching _free(). Strings returned through char ** are malloc()ed and
 * freed with free(). Nothing here keeps global state; one object must not be used by two threads at
 * once, so each worker thread has its own CA, loader and identities.
 *
 * Every fallible function returns false on failure and writes a one-line reason to err.
 */
#ifndef VOUCH_SIM_PKI_H
#define VOUCH_SIM_PKI_H

#include <stdbool.h>
#include <stddef.h>

enum sim_key_type {
    SIM_KEY_RSA, /* RSA 2048, what a SCEP payload with Keysize 2048 produces */
    SIM_KEY_EC   /* P-256, cheap to generate for big fleets (what ACME hardware-bound keys use) */
};

struct sim_ca;
struct sim_identity;
struct sim_pki_loader;

/* Makes a new self-signed CA (CA:TRUE, keyCertSign) for device identities: *cert_pem and *key_pem
 * receive NUL-terminated PEM text (certificate; unencrypted PKCS#8 key). */
bool sim_pki_ca_create(enum sim_key_type key_type, char **cert_pem, char **key_pem, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* Parses a CA certificate and its key and checks that they belong together. NULL on failure. */
struct sim_ca *sim_pki_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem,
                               size_t key_len, char *err, size_t errlen);
void sim_pki_ca_free(struct sim_ca *ca);

/* Makes a new key and a clientAuth certificate with CN = udid, issued by ca. *pem receives the
 * certificate PEM followed by the unencrypted PKCS#8 key PEM (NUL-terminated, *pem_len long). */
bool sim_pki_identity_issue(const struct sim_ca *ca, const char *udid, enum sim_key_type key_type,
                            char **pem, size_t *pem_len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Keeps what many sim_pki_identity_load() calls share: OpenSSL 3.0 spends most of a key parse
 * (about 0.6 ms of 0.8) building a decoder, which is too slow for a fleet of 100,000 devices, so
 * one decoder is kept; P-256 identities need none (sim_cms.h), only the SHA-256 and EC key
 * builder fetched here once. One loader per thread. */
struct sim_pki_loader *sim_pki_loader_new(char *err, size_t errlen);
void sim_pki_loader_free(struct sim_pki_loader *loader);

/* Parses what sim_pki_identity_issue() produced (certificate PEM, then key PEM); NULL on error. */
struct sim_identity *sim_pki_identity_load(struct sim_pki_loader *loader, const char *pem,
                                           size_t pem_len, char *err, size_t errlen);
void sim_pki_identity_free(struct sim_identity *id);

/* *b64 = base64 (one line, no newlines) of a DER detached CMS SignedData over body[0..len):
 * SHA-256, signed attributes as a device makes them, signer certificate included (written by
 * sim_cms for a P-256 identity, by OpenSSL's CMS_sign() for any other). */
bool sim_pki_sign_detached(struct sim_identity *id, const void *body, size_t len, char **b64,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

/* *value = the identity certificate as an RFC 9440 Client-Cert value, ":base64-DER:". */
bool sim_pki_cert_header_value(const struct sim_identity *id, char **value, char *err,
                               size_t errlen) __attribute__((warn_unused_result));

#endif
