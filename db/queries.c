#include "queries.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "params.h"

static const char *const verdict_names[] = {
    [DB_VERDICT_OK] = "ok",
    [DB_VERDICT_UNKNOWN_DEVICE] = "unknown_device",
    [DB_VERDICT_IDENTITY_MISMATCH] = "identity_mismatch",
    [DB_VERDICT_CERT_BOUND_ELSEWHERE] = "cert_bound_elsewhere",
    [DB_VERDICT_NOT_ENROLLED] = "not_enrolled",
    [DB_VERDICT_BAD_RESULT] = "bad_result",
    [DB_VERDICT_OK_QUEUED] = "ok_queued",
    [DB_VERDICT_REENROLL_REFUSED] = "reenroll_refused",
    [DB_VERDICT_IDENTITY_REVOKED] = "identity_revoked",
};

const char *db_verdict_name(enum db_verdict verdict)
{
    return verdict_names[verdict];
}

static enum db_verdict verdict_parse(const char *text)
{
    for (size_t i = 0; i < sizeof(verdict_names) / sizeof(verdict_names[0]); i++) {
        if (strcmp(text, verdict_names[i]) == 0)
            return (enum db_verdict)i;
    }
    return DB_VERDICT_BAD_RESULT;
}

static const char sql_authenticate[] =
    "SELECT vouch_authenticate($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
    " $13, $14, $15::boolean, $16::jsonb)";

void db_authenticate(struct db_pool *pool, const struct db_device_facts *f,
                     const struct db_cert *cert, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {
        text_param(f->udid),          bytes_param(cert->sha256, DB_CERT_HASH_LEN),
        text_param(cert->not_after),
        text_param(f->topic),         text_param(f->serial_number),
        text_param(f->model),         text_param(f->model_name),
        text_param(f->product_name),  text_param(f->os_version),
        text_param(f->build_version), text_param(f->device_name),
        text_param(f->imei),          text_param(f->meid),
        bytes_param(f->raw, f->raw_len), text_param(f->reenroll_refuse ? "t" : "f"),
        text_param(f->url_params),
    };
    db_query(pool, sql_authenticate, params, 16, false, cb, arg);
}

static const char sql_token_update[] =
    "SELECT vouch_token_update($1, $2, $3, $4, $5, $6, $7::boolean, $8, $9, $10, $11::jsonb)";

void db_token_update(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                     const char *topic, const uint8_t *token, size_t token_len,
                     const char *push_magic, const uint8_t *unlock_token,
                     size_t unlock_token_len, int awaiting_configuration,
                     const struct db_attest_request *attest, const uint8_t *raw,
                     size_t raw_len, const char *url_params, db_result_fn *cb, void *arg)
{
    const char *awaiting =
        awaiting_configuration < 0 ? NULL : (awaiting_configuration ? "true" : "false");
    const struct db_param params[] = {
        text_param(udid),
        bytes_param(cert->sha256, DB_CERT_HASH_LEN),
        text_param(topic),
        bytes_param(token, token_len),
        text_param(push_magic),
        unlock_token ? bytes_param(unlock_token, unlock_token_len) : text_param(NULL),
        text_param(awaiting),
        text_param(attest ? attest->command_uuid : NULL),
        attest ? bytes_param(attest->nonce, attest->nonce_len) : text_param(NULL),
        bytes_param(raw, raw_len),
        text_param(url_params),
    };
    db_query(pool, sql_token_update, params, 11, false, cb, arg);
}

static const char sql_checkout[] = "SELECT vouch_checkout($1, $2, $3, $4::jsonb)";

void db_checkout(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                 const uint8_t *raw, size_t raw_len, const char *url_params, db_result_fn *cb,
                 void *arg)
{
    const struct db_param params[] = {text_param(udid),
                                      bytes_param(cert->sha256, DB_CERT_HASH_LEN),
                                      bytes_param(raw, raw_len),
                                      text_param(url_params)};
    db_query(pool, sql_checkout, params, 4, false, cb, arg);
}

static const char sql_unsupported_checkin[] =
    "SELECT vouch_unsupported_checkin($1, $2, $3, $4, $5::jsonb)";

void db_unsupported_checkin(struct db_pool *pool, const char *udid, const struct db_cert *cert,
                            const char *message_type, const uint8_t *raw, size_t raw_len,
                            const char *url_params, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid),
                                      bytes_param(cert->sha256, DB_CERT_HASH_LEN),
                                      text_param(message_type),
                                      bytes_param(raw, raw_len),
                                      text_param(url_params)};
    db_query(pool, sql_unsupported_checkin, params, 5, false, cb, arg);
}

enum db_verdict db_decode_verdict(const PGresult *res)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0))
        return DB_VERDICT_BAD_RESULT;
    return verdict_parse(PQgetvalue(res, 0, 0));
}

static const char sql_report[] =
    "SELECT outcome, result_stored, next_command_uuid, next_body, request_nonce, older_nonces,"
    " enrolled_serial, enrolled_os_version, clock::bigint, older_requested_at,"
    " generation_verified, product_name, request_reason, next_nonce"
    " FROM vouch_report($1, $2, $3, $4, $5, $6::json, $7, $8, $9, $10, $11::jsonb)";

void db_report(struct db_pool *pool, const char *udid, const struct db_cert *cert,
               const char *status, const char *command_uuid, const struct db_report_body *body,
               const char *os_version, const char *build_version, const char *verdict_json,
               db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {
        text_param(udid),   bytes_param(cert->sha256, DB_CERT_HASH_LEN),
        text_param(status), text_param(command_uuid),
        bytes_param(body->report, body->report_len), text_param(verdict_json),
        text_param(os_version), text_param(build_version),
        bytes_param(body->stored, body->stored_len), text_param(body->answer),
        text_param(body->url_params),
    };
    /* Binary results: the next command's body comes back as raw bytes, not hex. */
    db_query(pool, sql_report, params, 11, true, cb, arg);
}

static const char sql_report_answers[] =
    "SELECT n, result_stored, next_command_uuid, next_body, next_nonce"
    " FROM vouch_report_answers($1::text[], $2::bytea[], $3::text[], $4::text[], $5::bytea[])";

enum { TEXT_OID = 25, BYTEA_OID = 17 };

void db_report_answers(struct db_pool *pool, const struct db_answer *answers, size_t count,
                       db_result_fn *cb, void *arg)
{
    enum { COLUMNS = 5 };
    const void **items = malloc(COLUMNS * count * sizeof(*items) + 1);
    size_t *lens = malloc(COLUMNS * count * sizeof(*lens) + 1);
    if (items == NULL || lens == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        const struct db_answer *a = &answers[i];
        items[i] = a->udid;
        lens[i] = strlen(a->udid);
        items[count + i] = a->cert->sha256;
        lens[count + i] = DB_CERT_HASH_LEN;
        items[2 * count + i] = a->status;
        lens[2 * count + i] = strlen(a->status);
        items[3 * count + i] = a->command_uuid;
        lens[3 * count + i] = strlen(a->command_uuid);
        items[4 * count + i] = a->report;
        lens[4 * count + i] = a->report_len;
    }
    static const uint32_t types[COLUMNS] = {TEXT_OID, BYTEA_OID, TEXT_OID, TEXT_OID, BYTEA_OID};
    uint8_t *arrays[COLUMNS];
    struct db_param params[COLUMNS];
    for (size_t k = 0; k < COLUMNS; k++) {
        size_t len;
        arrays[k] = db_binary_array(types[k], items + k * count, lens + k * count, count, &len);
        params[k] = bytes_param(arrays[k], len);
    }
    /* Binary results: the next command's body comes back as raw bytes, not hex. */
    db_query(pool, sql_report_answers, params, COLUMNS, true, cb, arg);
    for (size_t k = 0; k < COLUMNS; k++)
        free(arrays[k]);
    free(items);
    free(lens);
}

bool db_decode_answer_row(const PGresult *res, int row, size_t *index,
                          struct db_report_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (row >= PQntuples(res) || PQnfields(res) != 5 || PQgetisnull(res, row, 0) ||
        PQgetlength(res, row, 0) != 4 || PQgetisnull(res, row, 1) ||
        PQgetlength(res, row, 1) != 1)
        return false;
    const uint8_t *n = (const uint8_t *)PQgetvalue(res, row, 0);
    uint32_t position = (uint32_t)n[0] << 24 | (uint32_t)n[1] << 16 | (uint32_t)n[2] << 8 | n[3];
    if (position == 0) {
        *index = DB_ANSWERS_NONE;
        return true;
    }
    *index = (size_t)position - 1; /* WITH ORDINALITY counts from 1 */
    out->verdict = DB_VERDICT_OK;
    out->result_stored = PQgetvalue(res, row, 1)[0] != 0;
    if (!PQgetisnull(res, row, 2) && !PQgetisnull(res, row, 3)) {
        out->next_command_uuid = PQgetvalue(res, row, 2);
        out->next_body = (const uint8_t *)PQgetvalue(res, row, 3);
        out->next_body_len = (size_t)PQgetlength(res, row, 3);
    } else if (!PQgetisnull(res, row, 2) && !PQgetisnull(res, row, 4)) {
        out->next_command_uuid = PQgetvalue(res, row, 2);
        out->next_nonce = (const uint8_t *)PQgetvalue(res, row, 4);
        out->next_nonce_len = (size_t)PQgetlength(res, row, 4);
    }
    return true;
}

int64_t db_int64_be(const uint8_t bytes[8])
{
    uint64_t be = 0;
    for (size_t i = 0; i < 8; i++)
        be = be << 8 | bytes[i];
    return (int64_t)be;
}

/* A binary-format column: NULL for SQL NULL. */
static const uint8_t *binary_value(const PGresult *res, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(res, 0, col))
        return NULL;
    *len = (size_t)PQgetlength(res, 0, col);
    return (const uint8_t *)PQgetvalue(res, 0, col);
}

bool db_decode_report(const PGresult *res, struct db_report_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (PQntuples(res) != 1 || PQnfields(res) != 14 || PQgetisnull(res, 0, 0))
        return false;
    const char *outcome = PQgetvalue(res, 0, 0);
    if (strcmp(outcome, "attestation_context") == 0) {
        size_t len;
        out->attestation_context = true;
        out->request_nonce = binary_value(res, 4, &out->request_nonce_len);
        out->older_nonces = binary_value(res, 5, &out->older_nonces_len);
        out->enrolled_serial = (const char *)binary_value(res, 6, &len);
        out->enrolled_os_version = (const char *)binary_value(res, 7, &len);
        out->older_requested_at = binary_value(res, 9, &out->older_requested_at_len);
        const uint8_t *verified = binary_value(res, 10, &len);
        out->generation_verified = verified != NULL && len == 1 && verified[0] != 0;
        out->product_name = (const char *)binary_value(res, 11, &len);
        out->request_reason = (const char *)binary_value(res, 12, &len);
        const uint8_t *clock = binary_value(res, 8, &len);
        if (clock == NULL || len != 8)
            return false;
        out->clock = db_int64_be(clock);
        /* One time per older nonce, or none at all (no older nonce). */
        if (out->older_requested_at_len / 8 != out->older_nonces_len / 32)
            return false;
        return out->request_nonce != NULL;
    }
    out->verdict = verdict_parse(outcome);
    out->result_stored = !PQgetisnull(res, 0, 1) && PQgetlength(res, 0, 1) == 1 &&
                         PQgetvalue(res, 0, 1)[0] != 0;
    if (!PQgetisnull(res, 0, 2) && !PQgetisnull(res, 0, 3)) {
        out->next_command_uuid = PQgetvalue(res, 0, 2);
        out->next_body = (const uint8_t *)PQgetvalue(res, 0, 3);
        out->next_body_len = (size_t)PQgetlength(res, 0, 3);
    } else if (!PQgetisnull(res, 0, 2) && !PQgetisnull(res, 0, 13)) {
        out->next_command_uuid = PQgetvalue(res, 0, 2);
        out->next_nonce = (const uint8_t *)PQgetvalue(res, 0, 13);
        out->next_nonce_len = (size_t)PQgetlength(res, 0, 13);
    }
    return out->verdict != DB_VERDICT_BAD_RESULT;
}

static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

uint8_t *db_binary_array(uint32_t element_oid, const void *const *items, const size_t *lens,
                         size_t count, size_t *len)
{
    /* array_recv: dimensions, a has-NULLs flag, the element type, each dimension's size and
     * lower bound, then each element as its length (-1: NULL) and its bytes. */
    if (count > INT32_MAX)
        log_fatal("an array of %zu items", count);
    size_t size = 20 + 4 * count;
    bool nulls = false;
    for (size_t i = 0; i < count; i++) {
        if (items[i] != NULL && lens[i] > INT32_MAX)
            log_fatal("an array item of %zu bytes", lens[i]);
        nulls = nulls || items[i] == NULL;
        size += items[i] != NULL ? lens[i] : 0;
    }
    uint8_t *out = malloc(size), *p = out;
    if (out == NULL)
        log_fatal("out of memory");
    p = put_be32(p, 1);
    p = put_be32(p, nulls ? 1 : 0);
    p = put_be32(p, element_oid);
    p = put_be32(p, (uint32_t)count);
    p = put_be32(p, 1);
    for (size_t i = 0; i < count; i++) {
        if (items[i] == NULL) {
            p = put_be32(p, UINT32_MAX); /* -1 */
            continue;
        }
        p = put_be32(p, (uint32_t)lens[i]);
        if (lens[i] > 0)
            memcpy(p, items[i], lens[i]);
        p += lens[i];
    }
    *len = (size_t)(p - out);
    return out;
}

char *db_text_array_literal(const char *const *items, size_t count)
{
    size_t size = 3;
    for (size_t i = 0; i < count; i++)
        size += 6 + (items[i] ? 2 * strlen(items[i]) : 0);
    char *out = malloc(size);
    if (out == NULL)
        log_fatal("out of memory");
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            *p++ = ',';
        if (items[i] == NULL) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }
        *p++ = '"';
        /* Runs without a quote or a backslash copied whole: most items (UDIDs, tokens, ids)
         * are one run. */
        for (const char *s = items[i];;) {
            size_t run = strcspn(s, "\"\\");
            memcpy(p, s, run);
            p += run;
            s += run;
            if (*s == '\0')
                break;
            *p++ = '\\';
            *p++ = *s++;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

static const char sql_enqueue[] = "SELECT udid, queued FROM vouch_enqueue($1, $2, $3, $4)";

void db_enqueue(struct db_pool *pool, const char *command_uuid, const char *request_type,
                const uint8_t *body, size_t body_len, const char *const *udids, size_t count,
                db_result_fn *cb, void *arg)
{
    char *array = db_text_array_literal(udids, count);
    const struct db_param params[] = {
        text_param(command_uuid),
        text_param(request_type),
        bytes_param(body, body_len),
        text_param(array),
    };
    db_query(pool, sql_enqueue, params, 4, false, cb, arg);
    free(array);
}

bool db_decode_enqueue_row(const PGresult *res, int row, const char **udid, bool *queued)
{
    if (row >= PQntuples(res) || PQnfields(res) != 2 || PQgetisnull(res, row, 0))
        return false;
    *udid = PQgetvalue(res, row, 0);
    *queued = strcmp(PQgetvalue(res, row, 1), "t") == 0;
    return true;
}

static const char sql_device_list[] = "SELECT vouch_device_list($1, $2::integer, $3, $4)";
static const char sql_device_udids[] = "SELECT vouch_device_udids($1, $2::integer, $3, $4)";
static const char sql_device_attestations[] =
    "SELECT vouch_device_attestations(vouch_udid_resolve($1), $2::integer)";
static const char sql_device_get[] = "SELECT vouch_device_get(vouch_udid_resolve($1))";
static const char sql_device_commands[] =
    "SELECT vouch_device_commands(vouch_udid_resolve($1), $2::integer)";

void db_device_list(struct db_pool *pool, const char *after, unsigned limit,
                    const char *attestation, const char *serial, bool udids_only, db_result_fn *cb,
                    void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(after), text_param(limit_text),
                                      text_param(attestation), text_param(serial)};
    db_query(pool, udids_only ? sql_device_udids : sql_device_list, params, 4, false, cb, arg);
}

void db_device_attestations(struct db_pool *pool, const char *udid, unsigned limit,
                            db_result_fn *cb, void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(udid), text_param(limit_text)};
    db_query(pool, sql_device_attestations, params, 2, false, cb, arg);
}

/* {"\\x0a0b..","\\x..."}: the requests' nonces as a bytea[] literal in text format. */
static char *nonce_array_literal(const struct db_attest_request *reqs, size_t count)
{
    static const char hex[] = "0123456789abcdef";
    size_t size = 3;
    for (size_t i = 0; i < count; i++)
        size += 8 + 2 * reqs[i].nonce_len;
    char *out = malloc(size);
    if (out == NULL)
        log_fatal("out of memory");
    char *p = out;
    *p++ = '{';
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            *p++ = ',';
        memcpy(p, "\"\\\\x", 4);
        p += 4;
        for (size_t k = 0; k < reqs[i].nonce_len; k++) {
            *p++ = hex[reqs[i].nonce[k] >> 4];
            *p++ = hex[reqs[i].nonce[k] & 15];
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

static const char sql_request_attestations[] =
    "SELECT udid, outcome, command_uuid FROM vouch_request_attestations($1, $2, $3, $4)";

void db_request_attestations(struct db_pool *pool, const char *const *udids,
                             const struct db_attest_request *requests, size_t count,
                             const char *reason, db_result_fn *cb, void *arg)
{
    const char **uuids = malloc(count * sizeof(*uuids) + 1);
    if (uuids == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++)
        uuids[i] = requests[i].command_uuid;
    char *udid_array = db_text_array_literal(udids, count);
    char *uuid_array = db_text_array_literal(uuids, count);
    char *nonce_array = nonce_array_literal(requests, count);
    const struct db_param params[] = {
        text_param(udid_array), text_param(uuid_array), text_param(nonce_array),
        text_param(reason),
    };
    db_query(pool, sql_request_attestations, params, 4, false, cb, arg);
    free(udid_array);
    free(uuid_array);
    free(nonce_array);
    free(uuids);
}

bool db_decode_attestation_row(const PGresult *res, int row, const char **udid,
                               const char **outcome, const char **command_uuid)
{
    if (row >= PQntuples(res) || PQnfields(res) != 3 || PQgetisnull(res, row, 0) ||
        PQgetisnull(res, row, 1))
        return false;
    *udid = PQgetvalue(res, row, 0);
    *outcome = PQgetvalue(res, row, 1);
    *command_uuid = PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2);
    return true;
}

void db_device_get(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid)};
    db_query(pool, sql_device_get, params, 1, false, cb, arg);
}

void db_device_commands(struct db_pool *pool, const char *udid, unsigned limit,
                        db_result_fn *cb, void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(udid), text_param(limit_text)};
    db_query(pool, sql_device_commands, params, 2, false, cb, arg);
}

bool db_decode_text(const PGresult *res, const char **text, size_t *len)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 1)
        return false;
    if (PQgetisnull(res, 0, 0)) {
        *text = NULL;
        *len = 0;
    } else {
        *text = PQgetvalue(res, 0, 0);
        *len = (size_t)PQgetlength(res, 0, 0);
    }
    return true;
}

static const char sql_stats[] =
    "SELECT queue_depth, devices, enrolled, clock_skew FROM vouch_stats()";

void db_stats(struct db_pool *pool, db_result_fn *cb, void *arg)
{
    db_query(pool, sql_stats, NULL, 0, false, cb, arg);
}

static bool parse_int64(const char *text, int64_t *out)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0')
        return false;
    *out = v;
    return true;
}

bool db_decode_stats(const PGresult *res, struct db_stats *out)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 4)
        return false;
    char *end;
    out->clock_skew = strtod(PQgetvalue(res, 0, 3), &end);
    return end != PQgetvalue(res, 0, 3) && parse_int64(PQgetvalue(res, 0, 0), &out->queue_depth) &&
           parse_int64(PQgetvalue(res, 0, 1), &out->devices) &&
           parse_int64(PQgetvalue(res, 0, 2), &out->enrolled);
}

static const char sql_prune[] =
    "SELECT vouch_prune(make_interval(secs => $1::integer), $2::integer, "
    "make_interval(secs => $3::integer))";

void db_prune(struct db_pool *pool, unsigned retention_s, unsigned batch,
              unsigned attestation_retention_s, db_result_fn *cb, void *arg)
{
    char retention_text[16], batch_text[16], attestation_text[16];
    snprintf(retention_text, sizeof(retention_text), "%u", retention_s);
    snprintf(batch_text, sizeof(batch_text), "%u", batch);
    snprintf(attestation_text, sizeof(attestation_text), "%u", attestation_retention_s);
    const struct db_param params[] = {text_param(retention_text), text_param(batch_text),
                                      text_param(attestation_text)};
    db_query(pool, sql_prune, params, 3, false, cb, arg);
}

bool db_decode_count(const PGresult *res, int64_t *count)
{
    return PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0) &&
           parse_int64(PQgetvalue(res, 0, 0), count);
}

static const char sql_scheduler_tick[] =
    "SELECT udid, kind, reason FROM vouch_scheduler_tick($1, $2, $3, $4, $5::integer)";

void db_scheduler_tick(struct db_pool *pool, const struct db_attest_request *requests,
                       size_t count, const char *info_command_uuid, const uint8_t *info_body,
                       size_t info_body_len, unsigned info_limit, db_result_fn *cb, void *arg)
{
    const char **uuids = malloc(count * sizeof(*uuids) + 1);
    if (uuids == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++)
        uuids[i] = requests[i].command_uuid;
    char *uuid_array = db_text_array_literal(uuids, count);
    char *nonce_array = nonce_array_literal(requests, count);
    char limit[16];
    snprintf(limit, sizeof(limit), "%u", info_limit);
    const struct db_param params[] = {
        text_param(uuid_array),        text_param(nonce_array),
        text_param(info_command_uuid), bytes_param(info_body, info_body_len),
        text_param(limit),
    };
    db_query(pool, sql_scheduler_tick, params, 5, false, cb, arg);
    free(uuid_array);
    free(nonce_array);
    free(uuids);
}

bool db_decode_tick_row(const PGresult *res, int row, const char **udid, const char **kind,
                        const char **reason)
{
    if (row >= PQntuples(res) || PQnfields(res) != 3 || PQgetisnull(res, row, 0) ||
        PQgetisnull(res, row, 1))
        return false;
    *udid = PQgetvalue(res, row, 0);
    *kind = PQgetvalue(res, row, 1);
    *reason = PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2);
    return true;
}

static const char sql_scheduler_next[] =
    "SELECT attest_due, other_due, due_in, budget FROM vouch_scheduler_next($1::integer)";

void db_scheduler_next(struct db_pool *pool, unsigned limit, db_result_fn *cb, void *arg)
{
    char text[16];
    snprintf(text, sizeof(text), "%u", limit);
    const struct db_param params[] = {text_param(text)};
    db_query(pool, sql_scheduler_next, params, 1, false, cb, arg);
}

bool db_decode_scheduler_next(const PGresult *res, struct db_scheduler_next *out)
{
    if (PQntuples(res) != 1 || PQnfields(res) != 4 || PQgetisnull(res, 0, 0) ||
        PQgetisnull(res, 0, 1) || PQgetisnull(res, 0, 3))
        return false;
    out->attest_due = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    out->other_due = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    out->anything_planned = !PQgetisnull(res, 0, 2);
    out->due_in = out->anything_planned ? strtod(PQgetvalue(res, 0, 2), NULL) : 0;
    out->budget = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10);
    return true;
}

static const char sql_webhook_claim[] =
    "SELECT id, receiver, body, attempts FROM vouch_webhook_claim($1::integer, $2::integer)";

void db_webhook_claim(struct db_pool *pool, unsigned limit, unsigned lease_s, db_result_fn *cb,
                      void *arg)
{
    char l[16], s[16];
    snprintf(l, sizeof(l), "%u", limit);
    snprintf(s, sizeof(s), "%u", lease_s);
    const struct db_param params[] = {text_param(l), text_param(s)};
    db_query(pool, sql_webhook_claim, params, 2, false, cb, arg);
}

bool db_decode_webhook_claim(const PGresult *res, int row, int64_t *id, const char **receiver,
                             const char **body, size_t *body_len, int *attempts)
{
    if (row >= PQntuples(res) || PQnfields(res) != 4 || PQgetisnull(res, row, 0) ||
        PQgetisnull(res, row, 1) || PQgetisnull(res, row, 2))
        return false;
    *id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    *receiver = PQgetvalue(res, row, 1);
    *body = PQgetvalue(res, row, 2);
    *body_len = (size_t)PQgetlength(res, row, 2);
    *attempts = (int)strtol(PQgetvalue(res, row, 3), NULL, 10);
    return true;
}

static const char sql_webhook_results[] =
    "SELECT id, receiver, status, age_s FROM vouch_webhook_results($1::bigint[], $2::text[],"
    " $3::boolean[], $4::text[], $5::float8[], $6::integer)";

void db_webhook_results(struct db_pool *pool, const struct db_webhook_result *results,
                        size_t count, unsigned max_age_s, db_result_fn *cb, void *arg)
{
    const char **ids = calloc(count + 1, sizeof(*ids));
    const char **receivers = calloc(count + 1, sizeof(*receivers));
    const char **oks = calloc(count + 1, sizeof(*oks));
    const char **errors = calloc(count + 1, sizeof(*errors));
    const char **delays = calloc(count + 1, sizeof(*delays));
    char(*numbers)[2][24] = calloc(count + 1, sizeof(*numbers));
    if (!ids || !receivers || !oks || !errors || !delays || !numbers)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        snprintf(numbers[i][0], sizeof(numbers[i][0]), "%lld", (long long)results[i].id);
        snprintf(numbers[i][1], sizeof(numbers[i][1]), "%.3f", results[i].retry_s);
        ids[i] = numbers[i][0];
        delays[i] = numbers[i][1];
        receivers[i] = results[i].receiver;
        oks[i] = results[i].ok ? "t" : "f";
        errors[i] = results[i].error ? results[i].error : "";
    }
    char *a[5] = {db_text_array_literal(ids, count), db_text_array_literal(receivers, count),
                  db_text_array_literal(oks, count), db_text_array_literal(errors, count),
                  db_text_array_literal(delays, count)};
    char max_age[16];
    snprintf(max_age, sizeof(max_age), "%u", max_age_s);
    const struct db_param params[] = {text_param(a[0]), text_param(a[1]), text_param(a[2]),
                                      text_param(a[3]), text_param(a[4]), text_param(max_age)};
    db_query(pool, sql_webhook_results, params, 6, false, cb, arg);
    for (size_t i = 0; i < 5; i++)
        free(a[i]);
    free(ids);
    free(receivers);
    free(oks);
    free(errors);
    free(delays);
    free(numbers);
}

bool db_decode_webhook_result(const PGresult *res, int row, const char **status, double *age_s)
{
    if (row >= PQntuples(res) || PQnfields(res) != 4 || PQgetisnull(res, row, 2))
        return false;
    *status = PQgetvalue(res, row, 2);
    *age_s = PQgetisnull(res, row, 3) ? 0 : strtod(PQgetvalue(res, row, 3), NULL);
    return true;
}

static const char sql_event_list[] = "SELECT vouch_event_list($1, $2::bigint, $3::integer)";

void db_event_list(struct db_pool *pool, const char *status, const char *before, unsigned limit,
                   db_result_fn *cb, void *arg)
{
    char l[16];
    snprintf(l, sizeof(l), "%u", limit);
    const struct db_param params[] = {text_param(status), text_param(before), text_param(l)};
    db_query(pool, sql_event_list, params, 3, false, cb, arg);
}

static const char sql_allow_reenroll[] = "SELECT vouch_allow_reenroll(vouch_udid_resolve($1))";

void db_allow_reenroll(struct db_pool *pool, const char *udid, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid)};
    db_query(pool, sql_allow_reenroll, params, 1, false, cb, arg);
}

static const char sql_event_retry[] = "SELECT vouch_event_retry($1::bigint)";

void db_event_retry(struct db_pool *pool, const char *id, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(id)};
    db_query(pool, sql_event_retry, params, 1, false, cb, arg);
}
