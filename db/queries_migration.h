/*
 * queries_migration: the statements of /migration, GET /v1/migration and the push topics each
 * instance has installed (db/functions/45_migration.sql).
 *
 * Strings and bytes passed in are copied by db_query(); NULL strings are SQL NULL.
 */
#ifndef VOUCH_QUERIES_MIGRATION_H
#define VOUCH_QUERIES_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queries.h"

/* One migrated check-in: kind is "Authenticate" or "TokenUpdate"; the device facts (facts->raw
 * the plist as sent), and for a TokenUpdate its push token, PushMagic and unlock token (NULL
 * when absent). One transaction. Text answer: ok, unchanged, no_authenticate or
 * already_enrolled (db_decode_text). */
void db_migrate(struct db_pool *pool, const char *kind, const struct db_device_facts *facts,
                const uint8_t *token, size_t token_len, const char *push_magic,
                const uint8_t *unlock_token, size_t unlock_token_len, db_result_fn *cb, void *arg);

/* JSON text: GET /v1/migration's answer; on says whether migration = on. */
void db_migration_status(struct db_pool *pool, bool on, db_result_fn *cb, void *arg);

/* The topics of the push certificates this instance has (count 0: none), under its name. */
void db_set_push_topics(struct db_pool *pool, const char *instance, const char *const *topics,
                        size_t count, db_result_fn *cb, void *arg);

/* The same at start-up, before the event loop, on a blocking session of its own: false with a
 * message in err when it cannot. */
bool db_set_push_topics_blocking(const char *conninfo, const char *instance,
                                 const char *const *topics, size_t count, char *err,
                                 size_t err_size) __attribute__((warn_unused_result));

#endif
