#include "token_api.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "admin.h"
#include "hex.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "queries_tokens.h"
#include "tokens.h"
#include "vouchd.h"

#define TOKEN_PREFIX "vouch_"
#define TOKEN_RANDOM_BYTES 32
#define TOKEN_TEXT_LEN (sizeof(TOKEN_PREFIX) - 1 + 2 * TOKEN_RANDOM_BYTES)
#define BODY_MAX 4096
#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000
#define RESERVED_NAME "admin_token"

struct token_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    char name[TOKEN_NAME_MAX + 1];
    enum token_scope scope;
    char token[TOKEN_TEXT_LEN + 1]; /* POST /v1/tokens: the new token, shown once */
    unsigned char sha256[32];
};

static struct token_request *request_new(struct vouchd *srv, struct evhttp_request *req)
{
    struct token_request *tr = calloc(1, sizeof(*tr));
    if (tr == NULL)
        log_fatal("out of memory");
    tr->srv = srv;
    tr->req = req;
    srv->inflight++;
    return tr;
}

static void request_free(struct token_request *tr)
{
    tr->srv->inflight--;
    OPENSSL_cleanse(tr->token, sizeof(tr->token));
    free(tr);
}

static bool name_acceptable(const char *s, size_t len)
{
    return len > 0 && len <= TOKEN_NAME_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

static void created(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct token_request *tr = arg;
    size_t len;
    const char *text = admin_db_text(tr->req, outcome, res, &len, "tokens");
    if (text == NULL) {
        request_free(tr);
        return;
    }
    if (len == 0) {
        http_reply_json_error(tr->req, EP_OTHER, 409,
                              "a token with this name exists (revoked tokens keep their names)");
        request_free(tr);
        return;
    }
    tokens_note_created(tr->srv->tokens, tr->name, tr->scope, tr->sha256);
    log_info("tokens: created token %s (scope %s)", tr->name, token_scope_name(tr->scope));
    struct json_writer *w = json_writer_new(1024, 0);
    const char *out;
    size_t out_len;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, "name") &&
        json_write_string(w, tr->name) && json_write_key(w, "scope") &&
        json_write_string(w, token_scope_name(tr->scope)) && json_write_key(w, "token") &&
        json_write_string(w, tr->token) && json_write_end_object(w) &&
        json_writer_finish(w, &out, &out_len))
        http_reply(tr->req, EP_OTHER, 201, "application/json", out, out_len);
    else
        http_reply_json_error(tr->req, EP_OTHER, 500, "internal error");
    json_writer_free(w);
    request_free(tr);
}

/* POST /v1/tokens {"name", "scope"} */
static void create_token(struct vouchd *srv, struct evhttp_request *req,
                         const struct token_caller *caller)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    static const struct json_limits limits = {BODY_MAX, 4, 16};
    struct json_doc *doc = NULL;
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (len == 0 || len > BODY_MAX || body == NULL ||
        json_parse(body, len, &limits, &doc, NULL) != JSON_OK ||
        json_value_kind(json_doc_root(doc)) != JSON_KIND_OBJECT) {
        json_doc_free(doc);
        http_reply_json_error(req, EP_OTHER, 400, "the body must be a JSON object");
        return;
    }
    const struct json_value *root = json_doc_root(doc);
    const char *name, *scope;
    size_t name_len;
    const char *problem = NULL;
    enum token_scope parsed = TOKEN_SCOPE_READ;
    if (!json_get_string(json_object_find(root, "name"), &name, &name_len) ||
        !name_acceptable(name, name_len))
        problem = "name must be 1 to 64 letters, digits, '.', '_' or '-'";
    else if (name_len == sizeof(RESERVED_NAME) - 1 && memcmp(name, RESERVED_NAME, name_len) == 0)
        problem = "the name admin_token is the configuration's token";
    else if (!json_get_string(json_object_find(root, "scope"), &scope, NULL) ||
             !token_scope_parse(scope, &parsed))
        problem = "scope must be admin, read or trust";
    if (problem != NULL) {
        json_doc_free(doc);
        http_reply_json_error(req, EP_OTHER, 400, problem);
        return;
    }
    struct token_request *tr = request_new(srv, req);
    memcpy(tr->name, name, name_len);
    tr->name[name_len] = '\0';
    tr->scope = parsed;
    json_doc_free(doc);
    unsigned char random[TOKEN_RANDOM_BYTES];
    if (RAND_bytes(random, sizeof(random)) != 1) {
        http_reply_json_error(req, EP_OTHER, 500, "no random bytes");
        request_free(tr);
        return;
    }
    memcpy(tr->token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
    hex_encode(random, sizeof(random), tr->token + sizeof(TOKEN_PREFIX) - 1);
    OPENSSL_cleanse(random, sizeof(random));
    if (EVP_Digest(tr->token, strlen(tr->token), tr->sha256, NULL, EVP_sha256(), NULL) != 1) {
        http_reply_json_error(req, EP_OTHER, 500, "internal error");
        request_free(tr);
        return;
    }
    db_token_create(srv->db, tr->name, token_scope_name(tr->scope), tr->sha256, caller->name,
                    created, tr);
}

static void revoked(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct token_request *tr = arg;
    size_t len;
    const char *text = admin_db_text(tr->req, outcome, res, &len, "tokens");
    if (text != NULL && len == 0) {
        http_reply_json_error(tr->req, EP_OTHER, 404, "no token with that name");
    } else if (text != NULL) {
        tokens_note_revoked(tr->srv->tokens, tr->name);
        log_info("tokens: revoked token %s", tr->name);
        http_reply(tr->req, EP_OTHER, 200, "application/json", text, len);
    }
    request_free(tr);
}

/* DELETE /v1/tokens/{name}, POST /v1/tokens/{name}/revoke */
static void revoke_token(struct vouchd *srv, struct evhttp_request *req, const char *rest)
{
    size_t len = strcspn(rest, "/");
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool post_form = strcmp(rest + len, "/revoke") == 0;
    if (!name_acceptable(rest, len) || (rest[len] != '\0' && !post_form)) {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
        return;
    }
    if (method != (post_form ? EVHTTP_REQ_POST : EVHTTP_REQ_DELETE)) {
        http_reply_json_error(req, EP_OTHER, 405, post_form ? "use POST" : "use DELETE");
        return;
    }
    if (len == sizeof(RESERVED_NAME) - 1 && memcmp(rest, RESERVED_NAME, len) == 0) {
        http_reply_json_error(req, EP_OTHER, 400,
                              "admin_token is the configuration's: remove it there");
        return;
    }
    struct token_request *tr = request_new(srv, req);
    memcpy(tr->name, rest, len);
    tr->name[len] = '\0';
    db_token_revoke(srv->db, tr->name, revoked, tr);
}

/* GET /v1/audit?limit=N&before=ID */
static void list_audit(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    if (!http_parse_query(req, EP_OTHER, &query))
        return;
    const char *limit_text = evhttp_find_header(&query, "limit");
    const char *before = evhttp_find_header(&query, "before");
    long limit = AUDIT_LIMIT_DEFAULT;
    char *end = NULL;
    if (limit_text != NULL)
        limit = strtol(limit_text, &end, 10);
    size_t before_len = before != NULL ? strlen(before) : 0;
    if (limit_text != NULL &&
        (*limit_text == '\0' || *end != '\0' || limit < 1 || limit > AUDIT_LIMIT_MAX))
        http_reply_json_error(req, EP_OTHER, 400, "limit must be a whole number from 1 to 1000");
    else if (before != NULL && (before_len == 0 || before_len > 18 || before[0] == '0' ||
                                strspn(before, "0123456789") != before_len))
        http_reply_json_error(req, EP_OTHER, 400, "before must be an audit entry id");
    else
        db_audit_list(srv->db, before, (unsigned)limit, admin_read_done,
                      admin_read_new(srv, req, "tokens", 500, "internal error"));
    evhttp_clear_headers(&query);
}

bool token_api_owns(const char *path)
{
    return strcmp(path, "/v1/tokens") == 0 || strncmp(path, "/v1/tokens/", 11) == 0 ||
           strcmp(path, "/v1/audit") == 0;
}

bool token_api_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                      const struct token_caller *caller)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (strcmp(path, "/v1/tokens") == 0) {
        if (method == EVHTTP_REQ_GET)
            db_token_list(srv->db, admin_read_done,
                          admin_read_new(srv, req, "tokens", 500, "internal error"));
        else if (method == EVHTTP_REQ_POST)
            create_token(srv, req, caller);
        else
            http_reply_json_error(req, EP_OTHER, 405, "use GET or POST");
    } else if (strncmp(path, "/v1/tokens/", 11) == 0) {
        revoke_token(srv, req, path + 11);
    } else if (strcmp(path, "/v1/audit") == 0) {
        if (method != EVHTTP_REQ_GET)
            http_reply_json_error(req, EP_OTHER, 405, "use GET");
        else
            list_audit(srv, req);
    } else {
        return false;
    }
    return true;
}
