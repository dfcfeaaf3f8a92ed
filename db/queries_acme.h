/*
 * queries_acme: the statements of vouchd's ACME server and of the operator's view of what it
 * issued (db/functions/90_acme.sql). Each step of the ACME flow is one statement, one
 * transaction, and answers one JSON text read with db_decode_text() (queries.h): {"order":
 * state}, {"problem": {type, detail, reason}} or {"missing": true}; docs/acme.md describes them.
 *
 * Strings and bytes passed in are copied by db_query(); NULL strings are SQL NULL.
 */
#ifndef VOUCH_QUERIES_ACME_H
#define VOUCH_QUERIES_ACME_H

#include <stddef.h>
#include <stdint.h>

#include "queries.h"

/* Stores a Replay-Nonce for lifetime_s. */
void db_acme_nonce_add(struct db_pool *pool, const char *nonce, unsigned lifetime_s,
                       db_result_fn *cb, void *arg);
/* Consumes nonce, stores next, and reads account (NULL: none): {"nonce_ok", "account": {id,
 * jwk, status} | null}. */
void db_acme_begin(struct db_pool *pool, const char *nonce, const char *next, unsigned lifetime_s,
                   const char *account, db_result_fn *cb, void *arg);
void db_acme_new_account(struct db_pool *pool, const char *id, const uint8_t thumbprint[32],
                         const char *jwk, const char *contact_json, bool only_existing,
                         db_result_fn *cb, void *arg);
void db_acme_new_order(struct db_pool *pool, const char *account, const char *order_id,
                       const char *token, const char *client_id, unsigned lifetime_s,
                       db_result_fn *cb, void *arg);
void db_acme_order_get(struct db_pool *pool, const char *account, const char *order_id,
                       db_result_fn *cb, void *arg);
void db_acme_challenge_claim(struct db_pool *pool, const char *account, const char *order_id,
                             db_result_fn *cb, void *arg);

/* What vouchd concluded of a challenge's attestation. */
struct db_acme_attestation {
    const char *reason; /* NULL: verified */
    const char *detail;
    const char *udid, *serial_number; /* as attested; may be NULL */
    const uint8_t *spki;
    size_t spki_len;
    const uint8_t *const *chain;
    const size_t *chain_lens;
    size_t chain_count;
    const uint8_t *leaf_sha256;                 /* 32 bytes, or NULL */
    const char *generated_at, *leaf_expires_at; /* RFC 3339, may be NULL */
    const char *properties_json;                /* may be NULL */
};
void db_acme_challenge_result(struct db_pool *pool, const char *order_id,
                              const struct db_acme_attestation *att, db_result_fn *cb, void *arg);
/* Refuses the order (may be NULL) and keeps an identity.refused event. */
void db_acme_refuse(struct db_pool *pool, const char *order_id, const char *client_id,
                    const char *type, const char *reason, const char *detail, const char *udid,
                    const char *serial_number, db_result_fn *cb, void *arg);

struct db_acme_certificate {
    const char *serial_hex;
    const uint8_t *sha256; /* 32 bytes */
    const uint8_t *der;
    size_t der_len;
    const char *not_before, *not_after; /* RFC 3339 */
};
void db_acme_finalize(struct db_pool *pool, const char *account, const char *order_id,
                      const struct db_acme_certificate *cert, db_result_fn *cb, void *arg);
/* {"der": hex, "revoked": bool}, a problem, or missing. */
void db_acme_certificate(struct db_pool *pool, const char *account, const char *serial_hex,
                         db_result_fn *cb, void *arg);
/* account NULL: the request was signed by the certificate's own key. {"revoked": true} or a
 * problem. */
void db_acme_revoke(struct db_pool *pool, const char *account, const uint8_t sha256[32],
                    const char *reason, db_result_fn *cb, void *arg);

/* Mints a ClientIdentifier; device_token_sha256 (may be NULL) ties it to an expected device:
 * {"expected_serial": s | null} or {"refused": "unknown_token" | "token_spent"}. */
void db_acme_client_id_new(struct db_pool *pool, const char *value,
                           const uint8_t *device_token_sha256, unsigned lifetime_s,
                           db_result_fn *cb, void *arg);

/* The operator's side: expected devices (token_sha256s: count consecutive 32-byte hashes),
 * the list of them, issued certificates (udid NULL: all) and revocation (NULL text: unknown). */
void db_expect_devices(struct db_pool *pool, const char *const *serials,
                       const uint8_t *token_sha256s, size_t count, db_result_fn *cb, void *arg);
void db_expected_list(struct db_pool *pool, db_result_fn *cb, void *arg);
void db_cert_list(struct db_pool *pool, const char *udid, unsigned limit, db_result_fn *cb,
                  void *arg);
void db_cert_revoke(struct db_pool *pool, const char *serial_hex, const char *reason,
                    db_result_fn *cb, void *arg);

#endif
