#include "queries_trust.h"

#include <stdlib.h>
#include <string.h>

#include "params.h"

/* Unix seconds, truncated (extract() gives numeric, which ::bigint would round up). */
#define SECONDS(t) "floor(extract(epoch FROM " t "))::bigint"

/* The columns every variant selects, in db_decode_trust_row's order; ic is the certificate the
 * question is about (or the current one), e the enrollment, a the verdict's attestation. */
/* clang-format off */
#define TRUST_COLUMNS                                                                              \
    "SELECT true, e.identity_cert_sha256 IS NOT DISTINCT FROM ic.sha256,"                        \
    " coalesce(e.enabled, false), d.udid, d.serial_number, d.model, d.product_name,"             \
    " d.os_version, ac.sha256 IS NOT NULL, ac.revoked_at IS NOT NULL,"                          \
    " " SECONDS("coalesce(ac.not_after, ic.not_after)") ", d.attestation_status, a.freshness,"  \
    " " SECONDS("a.received_at") ", " SECONDS("d.attestation_expires_at") ","                   \
    " " SECONDS("a.generated_at") ", " SECONDS("vouch_now()") ","                               \
    " coalesce(e.identity_provisional, false),"                                                  \
    " coalesce(e.migrated_at IS NOT NULL AND e.identity_cert_sha256 = vouch_unbound_cert(),"      \
    " false)"
/* clang-format on */

static const char sql_by_certificate[] =
    TRUST_COLUMNS " FROM identity_certs ic JOIN devices d ON d.udid = ic.udid"
                  " LEFT JOIN enrollments e ON e.udid = d.udid"
                  " LEFT JOIN acme_certificates ac ON ac.sha256 = ic.sha256"
                  " LEFT JOIN attestations a ON a.id = d.attestation_id"
                  " WHERE ic.sha256 = $1";

/* A device named by UDID or serial speaks through its current identity. */
#define TRUST_BY_DEVICE                                                                            \
    TRUST_COLUMNS " FROM devices d LEFT JOIN enrollments e ON e.udid = d.udid"                     \
                  " LEFT JOIN identity_certs ic ON ic.sha256 = e.identity_cert_sha256"             \
                  " LEFT JOIN acme_certificates ac ON ac.sha256 = e.identity_cert_sha256"          \
                  " LEFT JOIN attestations a ON a.id = d.attestation_id"

static const char sql_by_udid[] = TRUST_BY_DEVICE " WHERE d.udid = $1";

/* Serial numbers are not unique keys: the device seen last. */
static const char sql_by_serial[] =
    TRUST_BY_DEVICE " WHERE d.serial_number = $1 ORDER BY d.last_seen_at DESC NULLS LAST LIMIT 1";

void db_trust_by_certificate(struct db_pool *pool, const uint8_t sha256[32], db_result_fn *cb,
                             void *arg)
{
    const struct db_param params[] = {bytes_param(sha256, 32)};
    db_query(pool, sql_by_certificate, params, 1, false, cb, arg);
}

void db_trust_by_udid(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid)};
    db_query(pool, sql_by_udid, params, 1, false, cb, arg);
}

void db_trust_by_serial(struct db_pool *pool, const char *serial_number, db_result_fn *cb,
                        void *arg)
{
    const struct db_param params[] = {text_param(serial_number)};
    db_query(pool, sql_by_serial, params, 1, false, cb, arg);
}

static const char *text_or_null(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

static bool bool_at(const PGresult *res, int col)
{
    return !PQgetisnull(res, 0, col) && PQgetvalue(res, 0, col)[0] == 't';
}

static int64_t seconds_at(const PGresult *res, int col)
{
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

bool db_decode_trust_row(const PGresult *res, struct db_trust_row *out)
{
    memset(out, 0, sizeof(*out));
    if (PQnfields(res) != 19 || PQntuples(res) > 1)
        return false;
    if (PQntuples(res) == 0)
        return true;
    out->device_found = bool_at(res, 0);
    out->cert_current = bool_at(res, 1);
    out->enrolled = bool_at(res, 2);
    out->udid = text_or_null(res, 3);
    out->serial_number = text_or_null(res, 4);
    out->model = text_or_null(res, 5);
    out->product_name = text_or_null(res, 6);
    out->os_version = text_or_null(res, 7);
    out->hardware_bound = bool_at(res, 8);
    out->identity_revoked = bool_at(res, 9);
    out->identity_not_after = seconds_at(res, 10);
    out->attestation_status = text_or_null(res, 11);
    out->freshness = text_or_null(res, 12);
    out->verified_at = seconds_at(res, 13);
    out->expires_at = seconds_at(res, 14);
    out->generated_at = seconds_at(res, 15);
    out->now = seconds_at(res, 16);
    out->identity_provisional = bool_at(res, 17);
    out->identity_unproven = bool_at(res, 18);
    return true;
}

static const char sql_trust_denied[] = "SELECT vouch_trust_denied($1, $2::jsonb)";

void db_trust_denied(struct db_pool *pool, const char *udid, const char *fields_json,
                     db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid), text_param(fields_json)};
    db_query(pool, sql_trust_denied, params, 2, false, cb, arg);
}
