/*
 * queries_tokens: the statements of the named API tokens and of the admin API's audit
 * (db/functions/95_tokens.sql). Creating or revoking a token notifies vouch_tokens, so every
 * instance reloads its tokens (server/operator/tokens.c).
 *
 * Strings and bytes passed in are copied by db_query(); NULL strings are SQL NULL.
 */
#ifndef VOUCH_QUERIES_TOKENS_H
#define VOUCH_QUERIES_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queries.h"

/* The active tokens: rows (name, scope, sha256), binary; read them with db_decode_token(). */
void db_tokens_active(struct db_pool *pool, db_result_fn *cb, void *arg);

/* The same read at start-up, before the event loop, on a blocking session of its own: cb runs
 * before this returns, with DB_OK and the rows, DB_UNAVAILABLE (no connection; res NULL) or
 * DB_QUERY_ERROR. */
void db_tokens_active_blocking(const char *conninfo, db_result_fn *cb, void *arg);

struct db_token_row {
    const char *name, *scope; /* borrowed from the result, NUL-terminated */
    const uint8_t *sha256;    /* 32 bytes */
};
bool db_decode_token(const PGresult *res, int row, struct db_token_row *out)
    __attribute__((warn_unused_result));

/* JSON text: the new token's object, or NULL text when the name is taken. */
void db_token_create(struct db_pool *pool, const char *name, const char *scope,
                     const uint8_t sha256[32], const char *created_by, db_result_fn *cb, void *arg);
/* JSON text: every token's object (never the hash). */
void db_token_list(struct db_pool *pool, db_result_fn *cb, void *arg);
/* JSON text: the token's object after revocation, or NULL text when there is none. */
void db_token_revoke(struct db_pool *pool, const char *name, db_result_fn *cb, void *arg);

/* Adds an audit entry; client may be NULL. */
void db_audit_add(struct db_pool *pool, const char *token, const char *scope, const char *method,
                  const char *path, const char *client, db_result_fn *cb, void *arg);
/* JSON text: a page of the audit, newest first, of entries before before_id (NULL: from the
 * newest; digits only, checked by the caller). */
void db_audit_list(struct db_pool *pool, const char *before_id, unsigned limit, db_result_fn *cb,
                   void *arg);

#endif
