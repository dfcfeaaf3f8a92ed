#include "acme.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme_internal.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "queries_acme.h"
#include "vouchd.h"

static struct acme *acme_of(const struct vouchd *srv)
{
    return srv->acme;
}

/* ---- set-up ------------------------------------------------------------------------------ */

struct acme *acme_new(const struct vouchd *srv, char *err, size_t err_size)
{
    const struct config *cfg = srv->cfg;
    if (cfg->public_url == NULL) {
        snprintf(err, err_size, "acme_ca_cert needs public_url: ACME URLs are absolute");
        return NULL;
    }
    struct acme *acme = calloc(1, sizeof(*acme));
    if (acme == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    size_t len = strlen(cfg->public_url);
    while (len > 0 && cfg->public_url[len - 1] == '/')
        len--;
    if (len >= sizeof(acme->public_base)) {
        snprintf(err, err_size, "public_url: too long for ACME URLs");
        free(acme);
        return NULL;
    }
    memcpy(acme->public_base, cfg->public_url, len);
    acme->public_base[len] = '\0';
    snprintf(acme->base, sizeof(acme->base), "%s/acme", acme->public_base);
    acme->organization = cfg->organization;
    char why[256];
    acme->ca = acme_ca_load(cfg->acme_ca_cert, cfg->acme_ca_key, why, sizeof(why));
    if (acme->ca == NULL) {
        snprintf(err, err_size, "acme_ca_cert / acme_ca_key: %s", why);
        free(acme);
        return NULL;
    }
    return acme;
}

void acme_free(struct acme *acme)
{
    if (acme == NULL)
        return;
    acme_ca_free(acme->ca);
    free(acme);
}

const char *acme_get0_ca_pem(const struct acme *acme)
{
    return acme_ca_pem(acme->ca);
}

/* ---- unsigned requests ------------------------------------------------------------------- */

static void directory(struct vouchd *srv, struct evhttp_request *req)
{
    const struct acme *acme = acme_of(srv);
    static const char *const members[][2] = {
        {"newNonce", "new-nonce"},
        {"newAccount", "new-account"},
        {"newOrder", "new-order"},
        {"revokeCert", "revoke-cert"},
    };
    struct json_writer *w = json_writer_new(4096, 0);
    char url[700];
    bool ok = w != NULL && json_write_begin_object(w);
    for (size_t i = 0; ok && i < sizeof(members) / sizeof(members[0]); i++) {
        snprintf(url, sizeof(url), "%s/%s", acme->base, members[i][1]);
        ok = json_write_key(w, members[i][0]) && json_write_string(w, url);
    }
    const char *text = NULL;
    size_t len = 0;
    ok = ok && json_write_key(w, "meta") && json_write_begin_object(w) &&
         json_write_key(w, "externalAccountRequired") && json_write_bool(w, false) &&
         json_write_end_object(w) && json_write_end_object(w) && json_writer_finish(w, &text, &len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                      "public, max-age=60");
    if (ok)
        http_reply(req, EP_ACME, 200, "application/json", text, len);
    else
        http_reply(req, EP_ACME, 500, NULL, NULL, 0);
    json_writer_free(w);
}

struct nonce_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    char nonce[64];
    int status;
};

static void nonce_stored(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct nonce_request *nr = arg;
    (void)res;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(nr->req);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    char link[600];
    snprintf(link, sizeof(link), "<%s/directory>;rel=\"index\"", acme_of(nr->srv)->base);
    evhttp_add_header(headers, "Link", link);
    if (outcome == DB_OK) {
        evhttp_add_header(headers, "Replay-Nonce", nr->nonce);
        http_reply(nr->req, EP_ACME, nr->status, NULL, NULL, 0);
    } else {
        metrics_count_rejection("database_unavailable");
        http_reply(nr->req, EP_ACME, 503, NULL, NULL, 0);
    }
    nr->srv->inflight--;
    free(nr);
}

/* newNonce: HEAD answers 200, GET 204 (RFC 8555 §7.2). */
static void new_nonce(struct vouchd *srv, struct evhttp_request *req, bool head)
{
    struct nonce_request *nr = calloc(1, sizeof(*nr));
    if (nr == NULL || !acme_random_text(ACME_RANDOM_BYTES, nr->nonce, sizeof(nr->nonce))) {
        free(nr);
        http_reply(req, EP_ACME, 503, NULL, NULL, 0);
        return;
    }
    nr->srv = srv;
    nr->req = req;
    nr->status = head ? 200 : 204;
    srv->inflight++;
    db_acme_nonce_add(srv->db, nr->nonce, ACME_NONCE_LIFETIME_S, nonce_stored, nr);
}

/* ---- the envelope: nonce, account, signature --------------------------------------------- */

/* The stored contact of a kid's account as JSON text ("null" when it has none), for the answer
 * to a POST-as-GET of the account. */
static void keep_contact(struct acme_request *ar, const struct json_value *contact)
{
    snprintf(ar->account_contact, sizeof(ar->account_contact), "null");
    if (contact == NULL || json_value_is_null(contact))
        return;
    struct json_writer *w = json_writer_new(sizeof(ar->account_contact) - 1, 0);
    const char *text;
    size_t len;
    if (w != NULL && json_write_value(w, contact) && json_writer_finish(w, &text, &len) &&
        len < sizeof(ar->account_contact))
        memcpy(ar->account_contact, text, len + 1);
    json_writer_free(w);
}

static void begun(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    struct json_doc *doc = acme_db_answer(ar, outcome, res);
    if (doc == NULL)
        return;
    ar->nonce_stored = true; /* the next nonce is stored, consumed or not */
    const struct json_value *root = json_doc_root(doc);
    bool nonce_ok = false;
    if (!json_get_bool(json_object_find(root, "nonce_ok"), &nonce_ok) || !nonce_ok) {
        json_doc_free(doc);
        acme_problem(ar, 400, "badNonce", "bad_nonce",
                     "the nonce is unknown, used or expired: take the one in this answer");
        return;
    }
    EVP_PKEY *key = ar->jws.jwk;
    if (ar->jws.has_kid) {
        const struct json_value *account = json_object_find(root, "account");
        const char *jwk = json_object_get_string(account, "jwk");
        const char *status = json_object_get_string(account, "status");
        if (jwk == NULL || status == NULL) {
            json_doc_free(doc);
            acme_problem(ar, 400, "accountDoesNotExist", "no_account", "no such account");
            return;
        }
        snprintf(ar->account_status, sizeof(ar->account_status), "%s", status);
        keep_contact(ar, json_object_find(account, "contact"));
        ar->account_key = jws_key_from_jwk(jwk, strlen(jwk), NULL, NULL);
        key = ar->account_key;
        if (strcmp(status, "valid") != 0 || key == NULL) {
            json_doc_free(doc);
            acme_problem(ar, 403, "unauthorized", "account_not_valid", "the account is %s", status);
            return;
        }
    }
    json_doc_free(doc);
    enum jws_error error = jws_verify(&ar->jws, key);
    if (error != JWS_OK) {
        acme_problem(ar, error == JWS_BAD_SIGNATURE ? 403 : 400, jws_error_problem(error),
                     error == JWS_BAD_SIGNATURE ? "bad_signature" : "bad_public_key",
                     "the JWS signature does not verify with the %s key",
                     ar->jws.has_kid ? "account's" : "request's");
        return;
    }
    acme_run_step(ar);
}

/* The account id a kid names: the URL of an account of this server. */
static bool account_of_kid(const struct acme *acme, const char *kid, char out[ACME_MAX_ID + 1])
{
    size_t base_len = strlen(acme->base);
    return strncmp(kid, acme->base, base_len) == 0 &&
           strncmp(kid + base_len, "/account/", 9) == 0 && acme_read_id(kid + base_len + 9, out);
}

static const char *jws_reason(enum jws_error error)
{
    switch (error) {
    case JWS_BAD_ALG:
        return "bad_signature_alg";
    case JWS_BAD_KEY:
        return "bad_public_key";
    case JWS_BAD_SIGNATURE:
        return "bad_signature";
    default:
        return "malformed";
    }
}

/* Reads and checks the envelope of a POST, then consumes its nonce (begun() goes on). */
static void signed_request(struct acme_request *ar, const char *path)
{
    struct evhttp_request *req = ar->req;
    const char *content_type = http_header(req, "Content-Type");
    if (content_type == NULL || strncmp(content_type, "application/jose+json", 21) != 0) {
        acme_problem(ar, 415, "malformed", "unsupported_media_type",
                     "the body must be application/jose+json");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > JWS_MAX_BODY) {
        acme_problem(ar, 413, "malformed", "malformed", "the body is larger than %d bytes",
                     JWS_MAX_BODY);
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    char detail[200] = "";
    enum jws_error error = jws_parse(body ? body : "", len, &ar->jws, detail, sizeof(detail));
    if (error != JWS_OK) {
        acme_problem(ar, 400, jws_error_problem(error), jws_reason(error), "%s",
                     detail[0] ? detail : "not a JWS");
        return;
    }
    /* The url is where the client meant to send it: exactly this request, under public_url. */
    char expected[1024];
    snprintf(expected, sizeof(expected), "%s%s", ar->acme->public_base, path);
    if (strcmp(ar->jws.url, expected) != 0) {
        acme_problem(ar, 403, "unauthorized", "wrong_url",
                     "the JWS url is not this request's URL (%s)", expected);
        return;
    }
    bool jwk_allowed = ar->step == STEP_NEW_ACCOUNT || ar->step == STEP_REVOKE;
    bool kid_allowed = ar->step != STEP_NEW_ACCOUNT;
    if ((ar->jws.jwk != NULL && !jwk_allowed) || (ar->jws.has_kid && !kid_allowed)) {
        acme_problem(ar, 400, "malformed", "malformed", "%s requests are signed with %s",
                     ar->step == STEP_NEW_ACCOUNT ? "newAccount" : "these",
                     ar->step == STEP_NEW_ACCOUNT ? "a jwk" : "the account's kid");
        return;
    }
    if (ar->jws.has_kid && !account_of_kid(ar->acme, ar->jws.kid, ar->account)) {
        acme_problem(ar, 400, "accountDoesNotExist", "no_account", "the kid is not an account URL");
        return;
    }
    if (ar->jws.payload_len > 0) {
        static const struct json_limits limits = {JWS_MAX_BODY, 8, 256};
        struct json_parse_error why;
        if (json_parse((const char *)ar->jws.payload, ar->jws.payload_len, &limits, &ar->payload,
                       &why) != JSON_OK ||
            json_value_kind(json_doc_root(ar->payload)) != JSON_KIND_OBJECT) {
            acme_problem(ar, 400, "malformed", "malformed", "the payload is not a JSON object");
            return;
        }
    }
    if (!acme_random_text(ACME_RANDOM_BYTES, ar->nonce, sizeof(ar->nonce))) {
        acme_problem(ar, 500, "serverInternal", "other", "no random bytes");
        return;
    }
    db_acme_begin(ar->srv->db, ar->jws.nonce, ar->nonce, ACME_NONCE_LIFETIME_S,
                  ar->jws.has_kid ? ar->account : NULL, begun, ar);
}

/* ---- routing ----------------------------------------------------------------------------- */

struct object_route {
    const char *prefix;
    enum acme_step step;
};

static const struct object_route object_routes[] = {
    {"/acme/account/", STEP_ACCOUNT},   {"/acme/order/", STEP_ORDER},
    {"/acme/authz/", STEP_AUTHZ},       {"/acme/chall/", STEP_CHALLENGE},
    {"/acme/finalize/", STEP_FINALIZE}, {"/acme/cert/", STEP_CERT},
};

/* Which step path names (and its object id); false for no ACME resource. */
static bool step_of(const char *path, enum acme_step *step, char id[ACME_MAX_ID + 1])
{
    id[0] = '\0';
    if (strcmp(path, "/acme/new-account") == 0)
        *step = STEP_NEW_ACCOUNT;
    else if (strcmp(path, "/acme/new-order") == 0)
        *step = STEP_NEW_ORDER;
    else if (strcmp(path, "/acme/revoke-cert") == 0)
        *step = STEP_REVOKE;
    else {
        for (size_t i = 0; i < sizeof(object_routes) / sizeof(object_routes[0]); i++) {
            size_t len = strlen(object_routes[i].prefix);
            if (strncmp(path, object_routes[i].prefix, len) == 0 && acme_read_id(path + len, id)) {
                *step = object_routes[i].step;
                return true;
            }
        }
        return false;
    }
    return true;
}

static void handle_request(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (acme_of(srv) == NULL) {
        metrics_count_rejection("not_found");
        http_reply_text(req, EP_ACME, 404, "not found (no acme_ca_cert: no ACME server here)");
        return;
    }
    if (strcmp(path, "/acme/directory") == 0 && method == EVHTTP_REQ_GET) {
        directory(srv, req);
        return;
    }
    if (strcmp(path, "/acme/new-nonce") == 0 &&
        (method == EVHTTP_REQ_HEAD || method == EVHTTP_REQ_GET)) {
        new_nonce(srv, req, method == EVHTTP_REQ_HEAD);
        return;
    }
    struct acme_request *ar = calloc(1, sizeof(*ar));
    if (ar == NULL) {
        http_reply(req, EP_ACME, 503, NULL, NULL, 0);
        return;
    }
    ar->srv = srv;
    ar->acme = acme_of(srv);
    ar->req = req;
    srv->inflight++;
    if (!step_of(path, &ar->step, ar->id)) {
        acme_problem(ar, 404, "malformed", "not_found", "no such ACME resource");
        return;
    }
    if (method != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        acme_problem(ar, 405, "malformed", "method_not_allowed",
                     "ACME resources take POST (POST-as-GET to read)");
        return;
    }
    signed_request(ar, path);
}

void acme_register_routes(void)
{
    http_route("/acme/", handle_request);
}
