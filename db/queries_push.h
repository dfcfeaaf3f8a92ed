/*
 * queries_push: the statements of server/delivery/push.c. Where to push (a batch of UDIDs to
 * their tokens in one statement), the answers recorded (one statement per batch, appended to
 * push_log; a 410 kills its token in the same statement), what to push again, and the push
 * log's pruning. SQL is in db/functions/80_push.sql.
 *
 * Strings passed in are copied by db_query(); results decoded here borrow from the PGresult
 * handed to the callback and are valid only until it returns.
 */
#ifndef VOUCH_QUERIES_PUSH_H
#define VOUCH_QUERIES_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* Push targets among udids[0..count): rows (udid, token bytea, push_magic, topic), binary. */
void db_push_targets(struct db_pool *pool, const char *const *udids, size_t count, db_result_fn *cb,
                     void *arg);
bool db_decode_push_target(const PGresult *res, int row, const char **udid, const uint8_t **token,
                           size_t *token_len, const char **push_magic, const char **topic)
    __attribute__((warn_unused_result));

/* A batch of push answers, oldest first: result is the stored code (DB_PUSH_*: push_log keeps
 * it as a smallint, migration 0013); apns_id, reason may be NULL (an apns-id in APNs' form, an
 * upper-case UUID, is stored as a uuid, any other as it came). A 410 (DB_PUSH_UNREGISTERED)
 * carries token_hex, the token pushed, and dead_at, RFC 3339 with milliseconds: it kills that
 * token only if it is still the device's; the other answers need neither (NULL). Every answer is
 * appended to push_log in one statement; DB_OK means the batch is committed. */
enum db_push_code {
    DB_PUSH_DELIVERED = 0,
    DB_PUSH_UNREGISTERED = 1,
    DB_PUSH_REJECTED = 2,
    DB_PUSH_FORBIDDEN = 3,
    DB_PUSH_TRANSIENT = 4,
};
struct db_push_result {
    const char *udid;
    const char *token_hex; /* the token pushed */
    enum db_push_code result;
    const char *apns_id;
    const char *reason;
    const char *dead_at;
};
void db_push_results(struct db_pool *pool, const struct db_push_result *results, size_t count,
                     db_result_fn *cb, void *arg);
/* Devices to push again (one column, udid). */
void db_push_retry_due(struct db_pool *pool, unsigned limit, db_result_fn *cb, void *arg);
/* Drops up to batch push_log entries older than retention_s seconds; a device's newest one is
 * folded into its enrollment first. One row: the number of entries dropped. */
void db_push_prune(struct db_pool *pool, int64_t retention_s, unsigned batch, db_result_fn *cb,
                   void *arg);

#endif
