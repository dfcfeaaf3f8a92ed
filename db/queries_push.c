#include "queries_push.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "params.h"
#include "queries.h"

static const char sql_push_targets[] =
    "SELECT udid, token, push_magic, topic FROM vouch_push_targets($1)";

void db_push_targets(struct db_pool *pool, const char *const *udids, size_t count, db_result_fn *cb,
                     void *arg)
{
    char *array = db_text_array_literal(udids, count);
    const struct db_param params[] = {text_param(array)};
    db_query(pool, sql_push_targets, params, 1, true, cb, arg);
    free(array);
}

bool db_decode_push_target(const PGresult *res, int row, const char **udid, const uint8_t **token,
                           size_t *token_len, const char **push_magic, const char **topic)
{
    if (row >= PQntuples(res) || PQnfields(res) != 4 || PQgetisnull(res, row, 0) ||
        PQgetisnull(res, row, 1) || PQgetisnull(res, row, 2) || PQgetisnull(res, row, 3))
        return false;
    *topic = PQgetvalue(res, row, 3);
    *udid = PQgetvalue(res, row, 0);
    *token = (const uint8_t *)PQgetvalue(res, row, 1);
    *token_len = (size_t)PQgetlength(res, row, 1);
    *push_magic = PQgetvalue(res, row, 2);
    return true;
}

static const char sql_push_results[] = "SELECT vouch_push_results($1, $2, $3::smallint[], "
                                       "$4::uuid[], $5, $6, $7::timestamptz[])";

/* APNs' form of an apns-id: a UUID in upper case, which push_log keeps as a uuid (and reads
 * back in upper case). */
static bool is_upper_uuid(const char *s)
{
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[36] == '\0';
}

void db_push_results(struct db_pool *pool, const struct db_push_result *results, size_t count,
                     db_result_fn *cb, void *arg)
{
    static const char *const codes[] = {"0", "1", "2", "3", "4"};
    enum { COLUMNS = 7 };
    const char **columns = malloc(COLUMNS * count * sizeof(*columns) + 1);
    if (columns == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        const char *id = results[i].apns_id;
        bool uuid = id != NULL && is_upper_uuid(id);
        columns[i] = results[i].udid;
        columns[count + i] = results[i].token_hex;
        columns[2 * count + i] = codes[(unsigned)results[i].result % 5];
        columns[3 * count + i] = uuid ? id : NULL;
        columns[4 * count + i] = uuid ? NULL : id;
        columns[5 * count + i] = results[i].reason;
        columns[6 * count + i] = results[i].dead_at;
    }
    /* Each array ends at its last non-NULL item: unnest pads the shorter arrays of a row set
     * with NULLs, and most columns (a token, a reason, the time of a 410) are NULL in every
     * answer of a batch but the few failed ones; PostgreSQL parses "{}" instead of 2,000 NULLs. */
    char *arrays[COLUMNS];
    struct db_param params[COLUMNS];
    for (size_t k = 0; k < COLUMNS; k++) {
        const char **column = columns + k * count;
        size_t used = count;
        while (used > 0 && column[used - 1] == NULL)
            used--;
        arrays[k] = db_text_array_literal(column, used);
        params[k] = text_param(arrays[k]);
    }
    db_query(pool, sql_push_results, params, COLUMNS, false, cb, arg);
    for (size_t k = 0; k < COLUMNS; k++)
        free(arrays[k]);
    free(columns);
}

static const char sql_push_retry_due[] = "SELECT udid FROM vouch_push_retry_due($1::integer)";

void db_push_retry_due(struct db_pool *pool, unsigned limit, db_result_fn *cb, void *arg)
{
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%u", limit);
    const struct db_param params[] = {text_param(limit_text)};
    db_query(pool, sql_push_retry_due, params, 1, false, cb, arg);
}

static const char sql_push_prune[] =
    "SELECT vouch_push_prune(make_interval(secs => $1::bigint), $2::integer)";

void db_push_prune(struct db_pool *pool, int64_t retention_s, unsigned batch, db_result_fn *cb,
                   void *arg)
{
    char retention_text[24], batch_text[16];
    snprintf(retention_text, sizeof(retention_text), "%" PRId64, retention_s);
    snprintf(batch_text, sizeof(batch_text), "%u", batch);
    const struct db_param params[] = {text_param(retention_text), text_param(batch_text)};
    db_query(pool, sql_push_prune, params, 2, false, cb, arg);
}
