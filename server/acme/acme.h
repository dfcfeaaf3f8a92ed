/*
 * acme: vouchd's ACME server (RFC 8555) with the device-attest-01 challenge (docs/acme.md), at
 * /acme/ on the HTTP front. An Apple device whose enrollment profile carries an ACME payload
 * (HardwareBound, Attest) makes a Secure Enclave key, has Apple attest it for the challenge, and
 * gets its MDM identity certificate for exactly that key from Vouch's issuing CA.
 *
 * Every request is checked before anything else: a flattened JWS (server/acme/jws.h) with an
 * allowed alg, a nonce this server issued and nobody used (consumed in the database), the url of
 * this very request under public_url, and a signature by the account's key (kid) or, for
 * newAccount and revokeCert, by the key it carries (jwk); the account must own what it names.
 * The attestation is verified by server/attestation/device_attest.c, the CSR and the certificate
 * by server/acme/acme_ca.c; the state lives in PostgreSQL (db/queries_acme.h), one statement per
 * step. Errors are application/problem+json with RFC 8555's types, and every answer carries a
 * fresh Replay-Nonce.
 *
 * The struct acme (owned by main.c through struct vouchd) holds the issuing CA and the URL base;
 * each request is an object of its own, freed when its answer is sent.
 */
#ifndef VOUCH_ACME_H
#define VOUCH_ACME_H

#include <stdbool.h>
#include <stddef.h>

struct acme;
struct vouchd;

/* The ACME server of srv's configuration (acme_ca_cert, acme_ca_key, public_url); NULL with a
 * message in err when the CA cannot be used. */
struct acme *acme_new(const struct vouchd *srv, char *err, size_t err_size);
void acme_free(struct acme *acme);

/* The issuing CA's certificate, PEM: the identity verifier trusts it too. */
const char *acme_get0_ca_pem(const struct acme *acme);

/* Registers /acme/ with the HTTP front (http_route). */
void acme_register_routes(void);

#endif
