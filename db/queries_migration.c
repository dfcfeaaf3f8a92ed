#include "queries_migration.h"

#include <stdio.h>
#include <stdlib.h>

#include "params.h"

static const char sql_migrate[] =
    "SELECT vouch_migrate($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

void db_migrate(struct db_pool *pool, const char *kind, const struct db_device_facts *facts,
                const uint8_t *token, size_t token_len, const char *push_magic,
                const uint8_t *unlock_token, size_t unlock_token_len, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {
        text_param(kind),
        text_param(facts->udid),
        text_param(facts->topic),
        text_param(facts->serial_number),
        text_param(facts->model),
        text_param(facts->model_name),
        text_param(facts->product_name),
        text_param(facts->os_version),
        text_param(facts->build_version),
        text_param(facts->device_name),
        text_param(facts->imei),
        text_param(facts->meid),
        bytes_param(token, token_len),
        text_param(push_magic),
        bytes_param(unlock_token, unlock_token_len),
        bytes_param(facts->raw, facts->raw_len),
    };
    db_query(pool, sql_migrate, params, 16, false, cb, arg);
}

static const char sql_migration_status[] = "SELECT vouch_migration_status($1::boolean)";

void db_migration_status(struct db_pool *pool, bool on, db_result_fn *cb, void *arg)
{
    const struct db_param params[] = {text_param(on ? "true" : "false")};
    db_query(pool, sql_migration_status, params, 1, false, cb, arg);
}

static const char sql_set_push_topics[] = "SELECT vouch_set_push_topics($1, $2::text[])";

void db_set_push_topics(struct db_pool *pool, const char *instance, const char *const *topics,
                        size_t count, db_result_fn *cb, void *arg)
{
    char *array = db_text_array_literal(topics, count);
    const struct db_param params[] = {text_param(instance), text_param(array ? array : "{}")};
    db_query(pool, sql_set_push_topics, params, 2, false, cb, arg);
    free(array);
}

bool db_set_push_topics_blocking(const char *conninfo, const char *instance,
                                 const char *const *topics, size_t count, char *err,
                                 size_t err_size)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, err_size, "cannot connect to the database: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return false;
    }
    char *array = db_text_array_literal(topics, count);
    const char *values[] = {instance, array ? array : "{}"};
    PGresult *res = PQexecParams(conn, sql_set_push_topics, 2, NULL, values, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(err, err_size, "cannot record the push certificate's topic: %s",
                 PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
    free(array);
    return ok;
}
