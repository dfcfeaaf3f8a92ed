/*
 * token_api: the admin API's named tokens and its audit (docs/api.md, "Tokens and scopes"),
 * behind admin.c's authentication; admin scope only:
 *   POST   /v1/tokens                  {"name", "scope"}: a new token, shown once (201)
 *   GET    /v1/tokens                  every token, active or revoked (never the hash)
 *   DELETE /v1/tokens/{name}           revokes one (also POST /v1/tokens/{name}/revoke)
 *   GET    /v1/audit[?limit=&before=]  the audit, newest first
 * The lists are JSON made by the database; a request owns its state until the database answers.
 * Creating and revoking also change this instance's table of tokens at once (tokens.h).
 */
#ifndef VOUCH_TOKEN_API_H
#define VOUCH_TOKEN_API_H

#include <stdbool.h>

struct evhttp_request;
struct vouchd;
struct token_caller;

/* Is path one of the above (whatever the method)? */
bool token_api_owns(const char *path);

/* Handles path if it is one of the above (and replies); false when it is not. */
bool token_api_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                      const struct token_caller *caller);

#endif
