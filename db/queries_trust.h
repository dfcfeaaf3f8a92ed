/*
 * queries_trust: the one query behind a trust decision (server/trust/, docs/trust.md): what the
 * database knows about a device named by its identity certificate's SHA-256, its UDID or its
 * serial number. Each is one indexed statement (by primary or unique keys, and
 * devices_serial_number), with no function call but vouch_now(): it is on the path of every
 * login of every device.
 *
 * The row (text format; db_decode_trust_facts reads it): device_found, cert_current, enrolled,
 * udid, serial_number, model, product_name, os_version, hardware_bound, identity_revoked,
 * identity_not_after, attestation_status, freshness, verified_at, expires_at, generated_at, now
 * (times as Unix seconds). No row: no device.
 */
#ifndef VOUCH_QUERIES_TRUST_H
#define VOUCH_QUERIES_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include "queries.h"

void db_trust_by_certificate(struct db_pool *pool, const uint8_t sha256[32], db_result_fn *cb,
                             void *arg);
void db_trust_by_udid(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg);
void db_trust_by_serial(struct db_pool *pool, const char *serial_number, db_result_fn *cb,
                        void *arg);

/* The facts as the decision reads them (server/trust/policy.h's struct trust_facts), borrowing
 * from res. False for an answer of another shape. With no row, device_found is false and now is
 * 0 (the caller decides at its own clock). */
struct db_trust_row {
    bool device_found, cert_current, enrolled, hardware_bound, identity_revoked;
    bool identity_provisional, identity_unproven; /* a migrated identity not yet proven */
    const char *udid, *serial_number, *model, *product_name, *os_version;
    const char *attestation_status, *freshness;
    int64_t identity_not_after, verified_at, expires_at, generated_at, now;
};
bool db_decode_trust_row(const PGresult *res, struct db_trust_row *out)
    __attribute__((warn_unused_result));

/* A trust.denied event (the caller rate-limits): udid may be NULL; fields_json is the event's
 * own fields as a JSON object. */
void db_trust_denied(struct db_pool *pool, const char *udid, const char *fields_json,
                     db_result_fn *cb, void *arg);

#endif
