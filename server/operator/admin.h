/*
 * admin: the operator's HTTP API (JSON, bearer tokens with a scope: tokens.h) under /v1/. Each
 * request is authorized, checked against its token's scope and audited here, then routed (the
 * tokens and the audit: token_api.h).
 *
 * Device objects and command lists are rendered as JSON by the database (db/migrations), so
 * their shape is defined in one place; this module checks the caller, the path and the
 * parameters, and passes the text through. A request owns its struct admin_request until the
 * database answers.
 */
#ifndef VOUCH_ADMIN_H
#define VOUCH_ADMIN_H

struct evhttp_request;
struct vouchd;

#include <stddef.h>

#include "db.h"

/* The text of a one-value database answer for an admin request: "" (len 0) for SQL NULL, or
 * NULL after answering 503 (database unavailable) or 500 (logged under who). */
const char *admin_db_text(struct evhttp_request *req, enum db_outcome outcome, const PGresult *res,
                          size_t *len, const char *who);

/* A read whose answer is the JSON text of one database value, for the endpoint files: pass
 * admin_read_done and admin_read_new(...) to a db_ query. The answer is 200 with the text,
 * empty_status with empty_message for SQL NULL, or what admin_db_text answers on a failure. The
 * read counts in srv->inflight until it is answered. */
struct vouchd;
struct admin_read;
struct admin_read *admin_read_new(struct vouchd *srv, struct evhttp_request *req, const char *who,
                                  int empty_status, const char *empty_message);
void admin_read_done(void *arg, enum db_outcome outcome, const PGresult *res);

/* Registers /v1/ with the HTTP front (http_route); health.c has the routes without a token. */
void admin_register_routes(void);

#endif
