#include "tokens.h"

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "queries_tokens.h"
#include "vouchd.h"

#define NOTIFY_CHANNEL "vouch_tokens"
#define REFRESH_INTERVAL_S 60
/* Far more than anyone names; a lookup compares with every one of them. */
#define TOKENS_MAX 4096
#define ADMIN_TOKEN_NAME "admin_token"
#define AUDIT_PATH_MAX 1024

struct token_entry {
    char name[TOKEN_NAME_MAX + 1];
    enum token_scope scope;
    unsigned char sha256[32];
};

struct tokens {
    struct vouchd *srv;
    bool have_admin_token;
    unsigned char admin_sha256[32];
    struct token_entry *entries; /* the database's active tokens */
    size_t count;
    bool loaded;      /* the database's tokens have been read at least once */
    bool loading;     /* a read is in flight */
    unsigned wanted;  /* bumped by each reason to read again */
    unsigned asked;   /* the value of wanted when the read in flight was sent */
    bool load_failed; /* the last read failed (logged once until one succeeds) */
    struct event *refresh;
};

static void tokens_load(struct tokens *t);

static int token_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct token_entry *)a)->name, ((const struct token_entry *)b)->name);
}

/* Takes the database's answer as the table of tokens; after a failure keeps the one it has. */
static void tokens_apply(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct tokens *t = arg;
    int rows = outcome == DB_OK ? PQntuples(res) : 0;
    struct token_entry *entries = rows > 0 ? calloc((size_t)rows, sizeof(*entries)) : NULL;
    if (rows > 0 && entries == NULL)
        log_fatal("out of memory");
    size_t count = 0;
    for (int i = 0; outcome == DB_OK && i < rows; i++) {
        struct db_token_row row;
        if (!db_decode_token(res, i, &row) || strlen(row.name) > TOKEN_NAME_MAX ||
            !token_scope_parse(row.scope, &entries[count].scope)) {
            log_warn("tokens: skipping a row of api_tokens that vouchd cannot read");
            continue;
        }
        if (count == TOKENS_MAX) {
            log_warn("tokens: more than %d active tokens: the rest do not work", TOKENS_MAX);
            break;
        }
        memcpy(entries[count].name, row.name, strlen(row.name) + 1);
        memcpy(entries[count].sha256, row.sha256, 32);
        count++;
    }
    if (outcome != DB_OK) {
        free(entries);
        if (!t->load_failed)
            log_warn("tokens: cannot read api_tokens (%s): keeping the %zu known",
                     res != NULL ? PQresultErrorMessage(res) : "the database is not available",
                     t->count);
        t->load_failed = true;
        return;
    }
    if (t->load_failed || !t->loaded || count != t->count)
        log_info("tokens: %zu active API token(s)%s", count,
                 t->have_admin_token ? " besides admin_token" : "");
    free(t->entries);
    t->entries = entries;
    t->count = count;
    t->loaded = true;
    t->load_failed = false;
}

static void loaded(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct tokens *t = arg;
    t->loading = false;
    /* Something changed while the read was out: its answer may predate that. (Not after a
     * failure: that is also how the pool ends its queries when it is freed.) */
    if (outcome == DB_OK && t->asked != t->wanted)
        tokens_load(t);
    else
        tokens_apply(t, outcome, res);
}

/* Reads the database's active tokens; a read already out is answered, then read again. */
static void tokens_load(struct tokens *t)
{
    t->wanted++;
    if (t->loading)
        return;
    t->loading = true;
    t->asked = t->wanted;
    db_tokens_active(t->srv->db, loaded, t);
}

/* NOTIFY vouch_tokens, or the listening connection came (back) up. */
static void notified(void *arg)
{
    tokens_load(arg);
}

static void refresh_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tokens_load(arg);
}

struct tokens *tokens_new(struct vouchd *srv)
{
    struct tokens *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->srv = srv;
    const char *admin = srv->cfg->admin_token;
    if (admin != NULL) {
        t->have_admin_token = true;
        if (EVP_Digest(admin, strlen(admin), t->admin_sha256, NULL, EVP_sha256(), NULL) != 1)
            log_fatal("SHA-256 of admin_token failed");
    }
    t->refresh = event_new(srv->base, -1, EV_PERSIST, refresh_tick, t);
    if (t->refresh == NULL) {
        free(t);
        return NULL;
    }
    const struct timeval every = {REFRESH_INTERVAL_S, 0};
    event_add(t->refresh, &every);
    /* Read once now, before the loop runs (as the migrations are), so that named tokens work
     * from the first request; then whenever the listener's connection comes (back) up, on
     * each NOTIFY and every minute. */
    db_tokens_active_blocking(srv->cfg->database_url, tokens_apply, t);
    db_listen(srv->db, NOTIFY_CHANNEL, notified, t);
    return t;
}

void tokens_free(struct tokens *tokens)
{
    if (tokens == NULL)
        return;
    event_free(tokens->refresh);
    free(tokens->entries);
    free(tokens);
}

bool tokens_any(const struct tokens *tokens)
{
    return tokens->have_admin_token || !tokens->loaded || tokens->count > 0;
}

/* Fills *caller with the token whose digest is sha256: every candidate is compared in full,
 * whatever matches, so the time tells nothing of where a guess differs. False: none. */
static bool tokens_find(const struct tokens *t, const unsigned char sha256[32],
                        struct token_caller *caller)
{
    const struct token_entry *found = NULL;
    if (t->have_admin_token && CRYPTO_memcmp(sha256, t->admin_sha256, 32) == 0) {
        snprintf(caller->name, sizeof(caller->name), "%s", ADMIN_TOKEN_NAME);
        caller->scope = TOKEN_SCOPE_ADMIN;
        return true;
    }
    for (size_t i = 0; i < t->count; i++) {
        if (CRYPTO_memcmp(sha256, t->entries[i].sha256, 32) == 0)
            found = &t->entries[i];
    }
    if (found == NULL)
        return false;
    memcpy(caller->name, found->name, sizeof(caller->name));
    caller->scope = found->scope;
    return true;
}

/* Failed logins (a wrong token), per client address: after admin_login_limit within
 * AUTH_FAILURE_WINDOW_S seconds, that address gets 429 (right token or not, so guessing learns
 * nothing) until the window ends. A small fixed table: when it is full the stalest window goes.
 * The address is http_client_address()'s: behind a proxy listed in trusted_proxies, the client
 * the proxy names, so one client's guesses do not lock out the others behind the same proxy. */
#define AUTH_FAILURE_WINDOW_S 60
#define AUTH_FAILURE_SLOTS 256
#define AUTH_FAILURE_PROBES 8

static struct auth_failures {
    char addr[64];
    time_t window_start;
    unsigned count;
} auth_failures[AUTH_FAILURE_SLOTS];

static struct auth_failures *failures_of(const char *addr, time_t now, bool create)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = addr; *c != '\0'; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    struct auth_failures *victim = NULL;
    for (unsigned i = 0; i < AUTH_FAILURE_PROBES; i++) {
        struct auth_failures *f = &auth_failures[(h + i) % AUTH_FAILURE_SLOTS];
        if (f->addr[0] != '\0' && strcmp(f->addr, addr) == 0) {
            if (now - f->window_start >= AUTH_FAILURE_WINDOW_S) {
                f->window_start = now;
                f->count = 0;
            }
            return f;
        }
        if (victim == NULL || f->addr[0] == '\0' ||
            (victim->addr[0] != '\0' && f->window_start < victim->window_start))
            victim = f;
    }
    if (!create)
        return NULL;
    snprintf(victim->addr, sizeof(victim->addr), "%s", addr);
    victim->window_start = now;
    victim->count = 0;
    return victim;
}

/* "Basic BASE64(nanomdm:TOKEN)": true with the token's SHA-256 in digest; *nanomdm_user says
 * whether the user was nanomdm (NanoMDM's only one) whatever the password. */
static bool basic_credentials(const char *auth, unsigned char digest[32], bool *nanomdm_user)
{
    static const char prefix[] = "Basic ", user[] = "nanomdm:";
    *nanomdm_user = false;
    if (strncasecmp(auth, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *b64 = auth + sizeof(prefix) - 1;
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len > 4 * 256)
        return false;
    unsigned char decoded[3 * 256 + 1];
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return false;
    /* EVP_DecodeBlock counts the padding's zero bytes. */
    for (size_t i = len; i > 0 && b64[i - 1] == '='; i--)
        n--;
    if ((size_t)n < sizeof(user) - 1 || memcmp(decoded, user, sizeof(user) - 1) != 0)
        return false;
    *nanomdm_user = true;
    size_t pw_len = (size_t)n - (sizeof(user) - 1);
    return pw_len > 0 &&
           EVP_Digest(decoded + sizeof(user) - 1, pw_len, digest, NULL, EVP_sha256(), NULL) == 1;
}

bool tokens_authorize(struct vouchd *srv, struct evhttp_request *req, struct token_caller *caller)
{
    static const char prefix[] = "Bearer ";
    const struct tokens *t = srv->tokens;
    char addr[64];
    time_t now = time(NULL);
    struct auth_failures *failed =
        failures_of(http_client_address(req, addr, sizeof(addr)), now, false);
    unsigned limit = srv->cfg->admin_login_limit;
    if (failed != NULL && limit > 0 && failed->count >= limit) {
        char retry[16];
        snprintf(retry, sizeof(retry), "%ld",
                 (long)(failed->window_start + AUTH_FAILURE_WINDOW_S - now));
        metrics_count_rejection("admin_rate_limited");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", retry);
        http_reply_json_error(req, EP_OTHER, 429, "too many failed admin logins: wait");
        return false;
    }
    const char *auth = http_header(req, "Authorization");
    unsigned char digest[32];
    bool bearer = auth != NULL && strncmp(auth, prefix, sizeof(prefix) - 1) == 0;
    bool nanomdm_user = false;
    bool presented = false;
    /* Digests, not tokens, are compared: the time is independent of the token's length too. */
    if (bearer)
        presented = EVP_Digest(auth + sizeof(prefix) - 1, strlen(auth + sizeof(prefix) - 1), digest,
                               NULL, EVP_sha256(), NULL) == 1;
    else if (auth != NULL)
        presented = basic_credentials(auth, digest, &nanomdm_user);
    caller->nanomdm = nanomdm_user;
    if (presented && tokens_find(t, digest, caller))
        return true;
    if (presented && !t->loaded) {
        /* It may be a named token vouchd has not read yet: no verdict, and no failed login. */
        metrics_count_rejection("database_unavailable");
        http_reply_json_error(req, EP_OTHER, 503, "the database is not available");
        return false;
    }
    char peer[128];
    /* A guess is a token that is wrong; a request without one guesses nothing. */
    failed = auth != NULL ? failures_of(addr, now, true) : NULL;
    if (failed != NULL && ++failed->count == limit)
        log_warn("%u failed admin logins from %s within %us: refusing it for the rest of "
                 "the window",
                 limit, addr, AUTH_FAILURE_WINDOW_S);
    metrics_count_rejection("admin_unauthorized");
    log_warn("refused an admin request from %s: bad or missing %s",
             http_peer(req, peer, sizeof(peer)), nanomdm_user ? "API key" : "token");
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    if (nanomdm_user) {
        /* NanoMDM's own answer (nanolib's Basic-auth middleware), for its clients. */
        evhttp_add_header(headers, "WWW-Authenticate", "Basic realm=\"nanomdm\"");
        http_reply(req, EP_OTHER, 401, "text/plain; charset=utf-8", "Unauthorized\n", 13);
        return false;
    }
    evhttp_add_header(headers, "WWW-Authenticate", "Bearer realm=\"vouch\"");
    http_reply_json_error(req, EP_OTHER, 401, "unauthorized");
    return false;
}

bool token_scope_allows(enum token_scope scope, bool trust_api, bool read_only)
{
    switch (scope) {
    case TOKEN_SCOPE_ADMIN:
        return true;
    case TOKEN_SCOPE_READ:
        return read_only && !trust_api;
    case TOKEN_SCOPE_TRUST:
        return trust_api;
    }
    return false;
}

const char *token_scope_name(enum token_scope scope)
{
    switch (scope) {
    case TOKEN_SCOPE_ADMIN:
        return "admin";
    case TOKEN_SCOPE_READ:
        return "read";
    case TOKEN_SCOPE_TRUST:
        return "trust";
    }
    return "?";
}

bool token_scope_parse(const char *text, enum token_scope *scope)
{
    static const enum token_scope all[] = {TOKEN_SCOPE_ADMIN, TOKEN_SCOPE_READ, TOKEN_SCOPE_TRUST};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(text, token_scope_name(all[i])) == 0) {
            *scope = all[i];
            return true;
        }
    }
    return false;
}

void tokens_note_created(struct tokens *tokens, const char *name, enum token_scope scope,
                         const unsigned char sha256[32])
{
    struct token_entry key;
    snprintf(key.name, sizeof(key.name), "%s", name);
    bool known = false;
    for (size_t i = 0; i < tokens->count && !known; i++)
        known = strcmp(tokens->entries[i].name, key.name) == 0;
    if (!known && tokens->count < TOKENS_MAX) {
        struct token_entry *grown =
            realloc(tokens->entries, (tokens->count + 1) * sizeof(*tokens->entries));
        if (grown == NULL)
            log_fatal("out of memory");
        key.scope = scope;
        memcpy(key.sha256, sha256, 32);
        grown[tokens->count++] = key;
        tokens->entries = grown;
        qsort(tokens->entries, tokens->count, sizeof(*tokens->entries), token_entry_cmp);
    }
    tokens_load(tokens);
}

void tokens_note_revoked(struct tokens *tokens, const char *name)
{
    size_t kept = 0;
    for (size_t i = 0; i < tokens->count; i++) {
        if (strcmp(tokens->entries[i].name, name) != 0)
            tokens->entries[kept++] = tokens->entries[i];
    }
    tokens->count = kept;
    tokens_load(tokens);
}

static void audit_added(void *arg, enum db_outcome outcome, const PGresult *res)
{
    (void)arg;
    if (outcome != DB_OK)
        log_error("audit: an admin call was not recorded: %s",
                  res != NULL ? PQresultErrorMessage(res) : "the database is not available");
}

void tokens_audit(struct vouchd *srv, struct evhttp_request *req, const struct token_caller *caller)
{
    /* The request-target as sent (path and query), bytes outside printable ASCII
     * percent-encoded so the text is always valid, at most AUDIT_PATH_MAX bytes. */
    static const char digits[] = "0123456789ABCDEF";
    const char *uri = evhttp_request_get_uri(req);
    char path[AUDIT_PATH_MAX + 1];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(uri ? uri : ""); *p != '\0'; p++) {
        bool plain = *p > 0x20 && *p < 0x7f;
        if (n + (plain ? 1 : 3) > AUDIT_PATH_MAX - 3) {
            memcpy(path + n, "...", 3);
            n += 3;
            break;
        }
        if (plain) {
            path[n++] = (char)*p;
        } else {
            path[n++] = '%';
            path[n++] = digits[*p >> 4];
            path[n++] = digits[*p & 15];
        }
    }
    path[n] = '\0';
    char addr[64];
    db_audit_add(srv->db, caller->name, token_scope_name(caller->scope), http_method_name(req),
                 path, http_client_address(req, addr, sizeof(addr)), audit_added, NULL);
}
