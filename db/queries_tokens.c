#include "queries_tokens.h"

#include <stdio.h>
#include <string.h>

#include "params.h"

static const char sql_tokens_active[] = "SELECT name, scope, sha256 FROM vouch_tokens_active()";

void db_tokens_active(struct db_pool *pool, db_result_fn *cb, void *arg)
{
    db_query(pool, sql_tokens_active, NULL, 0, true, cb, arg);
}

void db_tokens_active_blocking(const char *conninfo, db_result_fn *cb, void *arg)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        PQfinish(conn);
        cb(arg, DB_UNAVAILABLE, NULL);
        return;
    }
    PGresult *res = PQexecParams(conn, sql_tokens_active, 0, NULL, NULL, NULL, NULL, 1);
    cb(arg, PQresultStatus(res) == PGRES_TUPLES_OK ? DB_OK : DB_QUERY_ERROR, res);
    PQclear(res);
    PQfinish(conn);
}

bool db_decode_token(const PGresult *res, int row, struct db_token_row *out)
{
    if (PQnfields(res) != 3 || row < 0 || row >= PQntuples(res) || PQgetisnull(res, row, 0) ||
        PQgetisnull(res, row, 1) || PQgetisnull(res, row, 2) || PQgetlength(res, row, 2) != 32)
        return false;
    /* libpq ends every value with a NUL, binary ones too: the text columns are C strings. */
    out->name = PQgetvalue(res, row, 0);
    out->scope = PQgetvalue(res, row, 1);
    out->sha256 = (const uint8_t *)PQgetvalue(res, row, 2);
    return strlen(out->name) == (size_t)PQgetlength(res, row, 0) &&
           strlen(out->scope) == (size_t)PQgetlength(res, row, 1);
}

static const char sql_token_create[] = "SELECT vouch_token_create($1, $2, $3, $4)";

void db_token_create(struct db_pool *pool, const char *name, const char *scope,
                     const uint8_t sha256[32], const char *created_by, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(name), text_param(scope), bytes_param(sha256, 32),
                                      text_param(created_by)};
    db_query(pool, sql_token_create, params, 4, false, cb, arg);
}

static const char sql_token_list[] = "SELECT vouch_token_list()";

void db_token_list(struct db_pool *pool, db_result_fn *cb, void *arg)
{
    db_query(pool, sql_token_list, NULL, 0, false, cb, arg);
}

static const char sql_token_revoke[] = "SELECT vouch_token_revoke($1)";

void db_token_revoke(struct db_pool *pool, const char *name, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(name)};
    db_query(pool, sql_token_revoke, params, 1, false, cb, arg);
}

static const char sql_audit_add[] = "SELECT vouch_audit_add($1, $2, $3, $4, $5)";

void db_audit_add(struct db_pool *pool, const char *token, const char *scope, const char *method,
                  const char *path, const char *client, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(token), text_param(scope), text_param(method),
                                      text_param(path), text_param(client)};
    db_query(pool, sql_audit_add, params, 5, false, cb, arg);
}

static const char sql_audit_list[] = "SELECT vouch_audit_list($1::bigint, $2::integer)";

void db_audit_list(struct db_pool *pool, const char *before_id, unsigned limit, db_result_fn *cb,
                   void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(before_id), text_param(limit_text)};
    db_query(pool, sql_audit_list, params, 2, false, cb, arg);
}
