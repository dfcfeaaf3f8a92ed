/*
 * tokens: who may call the admin and trust APIs (docs/api.md, "Tokens and scopes"), and the
 * audit of what they did.
 *
 * A caller presents `Authorization: Bearer TOKEN`, or, as NanoMDM's clients do, HTTP Basic
 * with the user `nanomdm` and a token as the password (struct token_caller.nanomdm: admin.c
 * then answers in NanoMDM's shapes). The configuration's admin_token is the
 * bootstrap token (name "admin_token", scope admin); more are named tokens with a scope, made
 * and revoked through the API (`vouchctl tokens`), stored in the database as SHA-256 only. Every
 * instance keeps the active tokens in memory (a lookup per request costs no query) and reloads
 * them when any instance changes one (NOTIFY vouch_tokens) and every minute.
 *
 *   admin  everything
 *   read   GET requests of the admin API (not the tokens, the audit nor pushes: admin.c)
 *   trust  the trust API only (/v1/trust/...)
 *
 * Failed logins are counted per client address (admin_login_limit per minute, then 429). Every
 * authorized admin call (trust decisions excepted: they are counted in /metrics) is written to
 * the audit table: who (token name), what (method, path), when, from where (client address).
 *
 * The struct tokens is owned by main.c through struct vouchd; everything runs on the loop.
 */
#ifndef VOUCH_TOKENS_H
#define VOUCH_TOKENS_H

#include <stdbool.h>

struct evhttp_request;
struct vouchd;

enum token_scope { TOKEN_SCOPE_ADMIN, TOKEN_SCOPE_READ, TOKEN_SCOPE_TRUST };

#define TOKEN_NAME_MAX 64

struct token_caller {
    char name[TOKEN_NAME_MAX + 1];
    enum token_scope scope;
    bool nanomdm; /* came as HTTP Basic nanomdm:TOKEN, NanoMDM's way */
};

struct tokens;

/* Starts with the configuration's admin_token (if any) and loads the database's tokens once
 * the pool is up. Call after srv->db and srv->base exist and before the loop runs (it
 * LISTENs); free after db_pool_free() (a load still waiting in the pool calls back into it).
 * NULL only when out of memory. */
struct tokens *tokens_new(struct vouchd *srv);
void tokens_free(struct tokens *tokens);

/* Is there any way in (admin_token, or a token in the database)? True as well until the
 * database has been read once: until then it cannot be known. */
bool tokens_any(const struct tokens *tokens);

/* Checks the request's bearer token (or Basic nanomdm:TOKEN). True with *caller filled in;
 * false after answering the request (401 with WWW-Authenticate: NanoMDM's plain-text answer
 * after a failed Basic nanomdm attempt, Vouch's JSON one otherwise; 429 after too many failed logins from its address; 503
 * for a token that is not admin_token while the database's tokens have never been read). */
bool tokens_authorize(struct vouchd *srv, struct evhttp_request *req, struct token_caller *caller)
    __attribute__((warn_unused_result));

/* May a caller of scope make this request? (trust_api: a /v1/trust/ path.) */
bool token_scope_allows(enum token_scope scope, bool trust_api, bool read_only);
const char *token_scope_name(enum token_scope scope);

/* Writes "caller did METHOD PATH from ADDRESS" to the audit table (not waiting for it). */
void tokens_audit(struct vouchd *srv, struct evhttp_request *req,
                  const struct token_caller *caller);

/* The scope of its name ("admin", "read", "trust"); false for any other text. */
bool token_scope_parse(const char *text, enum token_scope *scope)
    __attribute__((warn_unused_result));

/* This instance created or revoked a token in the database: it counts here at once (the other
 * instances hear of it through NOTIFY vouch_tokens), and the table is read again. */
void tokens_note_created(struct tokens *tokens, const char *name, enum token_scope scope,
                         const unsigned char sha256[32]);
void tokens_note_revoked(struct tokens *tokens, const char *name);

#endif
