#include "queries_commands.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "params.h"

static const char sql_command_answer[] =
    "SELECT udid, command_uuid, request_type, status, queued_at, result_at, "
    "not_now_count::text, report, NULL::text, NULL::text, chain "
    "FROM vouch_command_answer(vouch_udid_resolve($1), $2)";

void db_command_answer(struct db_pool *pool, const char *udid, const char *command_uuid,
                       db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid), text_param(command_uuid)};
    db_query(pool, sql_command_answer, params, 2, true, cb, arg);
}

static const char sql_command_answers[] =
    "SELECT udid, $1::text, request_type, status, queued_at, result_at, not_now_count::text, "
    "report, created_at, truncated::text, chain "
    "FROM vouch_command_answers($1, $2::integer, $3::bigint)";

void db_command_answers(struct db_pool *pool, const char *command_uuid, unsigned limit,
                        uint64_t max_report_bytes, db_result_fn *cb, void *arg)
{
    char limit_text[16], bytes_text[24];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    snprintf(bytes_text, sizeof(bytes_text), "%" PRIu64, max_report_bytes);
    const struct db_param params[] = {text_param(command_uuid), text_param(limit_text),
                                      text_param(bytes_text)};
    db_query(pool, sql_command_answers, params, 3, true, cb, arg);
}

/* A text column of a binary result as a C string, or NULL; false when it holds a NUL byte. */
static bool text_at(const PGresult *res, int row, int col, const char **out)
{
    *out = NULL;
    if (PQgetisnull(res, row, col))
        return true;
    /* libpq ends every value with a NUL, binary ones too. */
    *out = PQgetvalue(res, row, col);
    return strlen(*out) == (size_t)PQgetlength(res, row, col);
}

bool db_decode_command_row(const PGresult *res, int row, struct db_command_row *out)
{
    memset(out, 0, sizeof(*out));
    if (PQnfields(res) != 11 || row < 0 || row >= PQntuples(res))
        return false;
    const char *truncated;
    bool ok = text_at(res, row, 0, &out->udid) && text_at(res, row, 1, &out->command_uuid) &&
              text_at(res, row, 2, &out->request_type) && text_at(res, row, 3, &out->status) &&
              text_at(res, row, 4, &out->queued_at) && text_at(res, row, 5, &out->result_at) &&
              text_at(res, row, 6, &out->not_now_count) && text_at(res, row, 8, &out->created_at) &&
              text_at(res, row, 9, &truncated);
    if (!PQgetisnull(res, row, 7)) {
        out->report = (const uint8_t *)PQgetvalue(res, row, 7);
        out->report_len = (size_t)PQgetlength(res, row, 7);
    }
    if (!PQgetisnull(res, row, 10)) {
        out->chain = (const uint8_t *)PQgetvalue(res, row, 10);
        out->chain_len = (size_t)PQgetlength(res, row, 10);
    }
    out->truncated = truncated != NULL && strcmp(truncated, "true") == 0;
    return ok;
}

static const char sql_command_cancel[] =
    "SELECT vouch_command_cancel(vouch_udid_resolve($1), $2, $3)";

void db_command_cancel(struct db_pool *pool, const char *udid, const char *command_uuid,
                       const char *actor, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(udid), text_param(command_uuid),
                                      text_param(actor)};
    db_query(pool, sql_command_cancel, params, 3, false, cb, arg);
}

static const char sql_command_cancel_all[] = "SELECT vouch_command_cancel_all($1, $2)::text";

void db_command_cancel_all(struct db_pool *pool, const char *command_uuid, const char *actor,
                           db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(command_uuid), text_param(actor)};
    db_query(pool, sql_command_cancel_all, params, 2, false, cb, arg);
}
