#include "acme_internal.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "queries_acme.h"
#include "vouchd.h"

static const char problem_prefix[] = "urn:ietf:params:acme:error:";

/* ---- small things ------------------------------------------------------------------------ */

bool acme_random_text(size_t bytes, char *out, size_t out_size)
{
    uint8_t raw[ACME_TOKEN_BYTES];
    if (bytes > sizeof(raw) || b64url_encoded_len(bytes) + 1 > out_size ||
        RAND_bytes(raw, (int)bytes) != 1)
        return false;
    b64url_encode(raw, bytes, out);
    return true;
}

/* An object id of a path: 1..ACME_MAX_ID characters of the base64url alphabet. */
bool acme_read_id(const char *text, char out[ACME_MAX_ID + 1])
{
    size_t len = strlen(text);
    if (len == 0 || len > ACME_MAX_ID ||
        strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != len)
        return false;
    memcpy(out, text, len + 1);
    return true;
}

/* A reason code from the database or a verifier, as the static string the counters need. */
static const char *reason_label(const char *reason)
{
    static const char *const known[] = {
        "malformed",
        "unsupported_format",
        "no_attestation",
        "untrusted_chain",
        "freshness_missing",
        "freshness_mismatch",
        "identity_missing",
        "bad_extension",
        "unsupported_key",
        "serial_mismatch",
        "unknown_client_identifier",
        "client_identifier_used",
        "client_identifier_expired",
        "csr_key_mismatch",
        "csr_malformed",
        "csr_bad_signature",
        "bad_nonce",
        "bad_signature",
        "bad_signature_alg",
        "bad_public_key",
        "wrong_url",
        "no_account",
        "account_not_valid",
        "not_owner",
        "order_not_ready",
        "unsupported_identifier",
        "already_revoked",
        "unknown_certificate",
        "unsupported_media_type",
        "method_not_allowed",
        "not_found",
        "bad_revocation_reason",
        "client_error",
        NULL,
    };
    for (size_t i = 0; reason != NULL && known[i] != NULL; i++) {
        if (strcmp(reason, known[i]) == 0)
            return known[i];
    }
    return "other";
}

void acme_request_free(struct acme_request *ar)
{
    ar->srv->inflight--;
    jws_clear(&ar->jws);
    json_doc_free(ar->payload);
    EVP_PKEY_free(ar->account_key);
    free(ar->issued.der);
    free(ar);
}

/* ---- answers ----------------------------------------------------------------------------- */

void acme_add_headers(struct acme_request *ar)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(ar->req);
    char link[600];
    snprintf(link, sizeof(link), "<%s/directory>;rel=\"index\"", ar->acme->base);
    evhttp_add_header(headers, "Link", link);
    evhttp_add_header(headers, "Cache-Control", "no-store");
    if (ar->nonce_stored)
        evhttp_add_header(headers, "Replay-Nonce", ar->nonce);
}

void acme_reply(struct acme_request *ar, int status, const char *type, const void *body, size_t len,
                const char *location)
{
    acme_add_headers(ar);
    if (location != NULL)
        evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Location", location);
    http_reply(ar->req, EP_ACME, status, type, body, len);
    acme_request_free(ar);
}

void acme_reply_writer(struct acme_request *ar, int status, struct json_writer *w,
                       const char *location)
{
    const char *text;
    size_t len;
    if (w != NULL && json_writer_finish(w, &text, &len)) {
        acme_reply(ar, status, "application/json", text, len, location);
    } else {
        log_error("acme: cannot write an answer (%s)",
                  w ? json_write_strerror(json_writer_error(w)) : "out of memory");
        metrics_count_rejection("internal_error");
        acme_reply(ar, 500, "application/problem+json",
                   "{\"type\":\"urn:ietf:params:acme:error:serverInternal\"}", 51, NULL);
    }
    json_writer_free(w);
}

static void send_problem(struct acme_request *ar)
{
    char peer[128], target[128];
    const char *uri = evhttp_request_get_uri(ar->req);
    metrics_count_acme_refusal(reason_label(ar->problem_reason));
    log_warn("acme: refused %s from %s: %s (%s, %d): %s",
             uri ? log_sanitize(uri, strlen(uri), target, sizeof(target)) : "?",
             http_peer(ar->req, peer, sizeof(peer)), ar->problem_reason, ar->problem_type,
             ar->problem_status, ar->problem_detail);
    struct json_writer *w = json_writer_new(4096, 0);
    char type[sizeof(problem_prefix) + sizeof(ar->problem_type)];
    snprintf(type, sizeof(type), "%s%s", problem_prefix, ar->problem_type);
    const char *text;
    size_t len;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, "type") &&
        json_write_string(w, type) && json_write_key(w, "detail") &&
        json_write_string(w, ar->problem_detail) && json_write_key(w, "status") &&
        json_write_int64(w, ar->problem_status) && json_write_end_object(w) &&
        json_writer_finish(w, &text, &len))
        acme_reply(ar, ar->problem_status, "application/problem+json", text, len, NULL);
    else
        acme_reply(ar, ar->problem_status, "application/problem+json", "{}", 2, NULL);
    json_writer_free(w);
}

static void problem_nonce_stored(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct acme_request *ar = arg;
    (void)res;
    ar->nonce_stored = outcome == DB_OK;
    send_problem(ar);
}

void acme_problem(struct acme_request *ar, int status, const char *type, const char *reason,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ar->problem_detail, sizeof(ar->problem_detail), fmt, ap);
    va_end(ap);
    ar->problem_status = status;
    snprintf(ar->problem_type, sizeof(ar->problem_type), "%s", type);
    snprintf(ar->problem_reason, sizeof(ar->problem_reason), "%s", reason);
    if (ar->nonce_stored || !acme_random_text(ACME_RANDOM_BYTES, ar->nonce, sizeof(ar->nonce))) {
        send_problem(ar);
        return;
    }
    db_acme_nonce_add(ar->srv->db, ar->nonce, ACME_NONCE_LIFETIME_S, problem_nonce_stored, ar);
}

/* A problem document the database chose ({"type", "detail", "reason"}). */
void acme_problem_from_db(struct acme_request *ar, const struct json_value *p)
{
    const char *type = json_object_get_string(p, "type");
    const char *reason = json_object_get_string(p, "reason");
    const char *detail = json_object_get_string(p, "detail");
    int status = 400;
    if (type != NULL && (strcmp(type, "unauthorized") == 0 || strcmp(type, "orderNotReady") == 0))
        status = 403;
    acme_problem(ar, status, type ? type : "serverInternal", reason ? reason : "other", "%s",
                 detail ? detail : "refused");
}

/* Maps what the database could not do to an answer; true when it answered. */
static bool db_failed(struct acme_request *ar, enum db_outcome outcome, const PGresult *res)
{
    switch (outcome) {
    case DB_OK:
        return false;
    case DB_UNAVAILABLE:
    case DB_OVERLOADED:
        metrics_count_rejection(outcome == DB_UNAVAILABLE ? "database_unavailable" : "overloaded");
        acme_add_headers(ar);
        http_reply(ar->req, EP_ACME, 503, "application/problem+json",
                   "{\"type\":\"urn:ietf:params:acme:error:serverInternal\","
                   "\"detail\":\"try again later\"}",
                   79);
        acme_request_free(ar);
        return true;
    case DB_QUERY_ERROR:
        break;
    }
    log_error("acme: the database refused a step: %s", res ? PQresultErrorMessage(res) : "?");
    metrics_count_rejection("internal_error");
    acme_add_headers(ar);
    http_reply(ar->req, EP_ACME, 500, "application/problem+json",
               "{\"type\":\"urn:ietf:params:acme:error:serverInternal\"}", 51);
    acme_request_free(ar);
    return true;
}

/* The JSON document a step of the database answered, or NULL after answering the client. */
struct json_doc *acme_db_answer(struct acme_request *ar, enum db_outcome outcome,
                                const PGresult *res)
{
    if (db_failed(ar, outcome, res))
        return NULL;
    const char *text;
    size_t len;
    struct json_doc *doc = NULL;
    static const struct json_limits limits = {1 << 20, 16, 4096};
    if (!db_decode_text(res, &text, &len) || text == NULL ||
        json_parse(text, len, &limits, &doc, NULL) != JSON_OK) {
        log_error("acme: unexpected answer from the database");
        metrics_count_rejection("internal_error");
        acme_add_headers(ar);
        http_reply(ar->req, EP_ACME, 500, "application/problem+json",
                   "{\"type\":\"urn:ietf:params:acme:error:serverInternal\"}", 51);
        acme_request_free(ar);
        return NULL;
    }
    return doc;
}

/* ---- ACME objects ------------------------------------------------------------------------ */

static bool write_url(struct json_writer *w, const struct acme *acme, const char *kind,
                      const char *id)
{
    char url[700];
    snprintf(url, sizeof(url), "%s/%s/%s", acme->base, kind, id);
    return json_write_string(w, url);
}

/* The authorization's status follows its one challenge. */
static const char *authz_status(const struct json_value *order)
{
    const char *challenge = json_object_get_string(order, "challenge_status");
    const char *status = json_object_get_string(order, "status");
    if (challenge != NULL && strcmp(challenge, "valid") == 0)
        return "valid";
    if ((challenge != NULL && strcmp(challenge, "invalid") == 0) ||
        (status != NULL && strcmp(status, "invalid") == 0))
        return "invalid";
    return "pending";
}

static bool write_identifier(struct json_writer *w, const struct json_value *order)
{
    return json_write_begin_object(w) && json_write_key(w, "type") &&
           json_write_string(w, "permanent-identifier") && json_write_key(w, "value") &&
           json_write_string(w, json_object_get_string(order, "client_id")) &&
           json_write_end_object(w);
}

static bool write_error_member(struct json_writer *w, const struct json_value *order)
{
    const struct json_value *error = json_object_find(order, "error");
    if (error == NULL || json_value_is_null(error))
        return true;
    return json_write_key(w, "error") && json_write_value(w, error);
}

static bool write_challenge(struct json_writer *w, const struct acme *acme,
                            const struct json_value *order)
{
    const char *id = json_object_get_string(order, "id");
    const char *status = json_object_get_string(order, "challenge_status");
    const char *validated = json_object_get_string(order, "validated");
    bool ok = json_write_begin_object(w) && json_write_key(w, "type") &&
              json_write_string(w, "device-attest-01") && json_write_key(w, "url") &&
              write_url(w, acme, "chall", id) && json_write_key(w, "status") &&
              json_write_string(w, status) && json_write_key(w, "token") &&
              json_write_string(w, json_object_get_string(order, "token"));
    if (ok && validated != NULL)
        ok = json_write_key(w, "validated") && json_write_string(w, validated);
    if (ok && status != NULL && strcmp(status, "invalid") == 0)
        ok = write_error_member(w, order);
    return ok && json_write_end_object(w);
}

static struct json_writer *order_document(const struct acme *acme, const struct json_value *order)
{
    struct json_writer *w = json_writer_new(ACME_MAX_ANSWER, 0);
    const char *id = json_object_get_string(order, "id");
    const char *status = json_object_get_string(order, "status");
    const char *certificate = json_object_get_string(order, "certificate");
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "status") &&
              json_write_string(w, status) && json_write_key(w, "expires") &&
              json_write_string(w, json_object_get_string(order, "expires")) &&
              json_write_key(w, "identifiers") && json_write_begin_array(w) &&
              write_identifier(w, order) && json_write_end_array(w) &&
              json_write_key(w, "authorizations") && json_write_begin_array(w) &&
              write_url(w, acme, "authz", id) && json_write_end_array(w) &&
              json_write_key(w, "finalize") && write_url(w, acme, "finalize", id);
    if (ok && certificate != NULL)
        ok = json_write_key(w, "certificate") && write_url(w, acme, "cert", certificate);
    if (ok && status != NULL && strcmp(status, "invalid") == 0)
        ok = write_error_member(w, order);
    if (ok && json_write_end_object(w))
        return w;
    json_writer_free(w);
    return NULL;
}

struct json_writer *acme_authz_document(const struct acme *acme, const struct json_value *order)
{
    struct json_writer *w = json_writer_new(ACME_MAX_ANSWER, 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "status") &&
              json_write_string(w, authz_status(order)) && json_write_key(w, "expires") &&
              json_write_string(w, json_object_get_string(order, "expires")) &&
              json_write_key(w, "identifier") && write_identifier(w, order) &&
              json_write_key(w, "challenges") && json_write_begin_array(w) &&
              write_challenge(w, acme, order) && json_write_end_array(w) &&
              json_write_end_object(w);
    if (ok)
        return w;
    json_writer_free(w);
    return NULL;
}

static struct json_writer *challenge_document(const struct acme *acme,
                                              const struct json_value *order)
{
    struct json_writer *w = json_writer_new(ACME_MAX_ANSWER, 0);
    if (w != NULL && write_challenge(w, acme, order))
        return w;
    json_writer_free(w);
    return NULL;
}

void acme_reply_order(struct acme_request *ar, int status, const struct json_value *order)
{
    char location[700];
    snprintf(location, sizeof(location), "%s/order/%s", ar->acme->base,
             json_object_get_string(order, "id"));
    acme_reply_writer(ar, status, order_document(ar->acme, order), location);
}

/* The challenge, with the Link to its authorization that RFC 8555 §7.5.1 asks for. */
void acme_reply_challenge(struct acme_request *ar, const struct json_value *order)
{
    char link[700];
    snprintf(link, sizeof(link), "<%s/authz/%s>;rel=\"up\"", ar->acme->base,
             json_object_get_string(order, "id"));
    evhttp_add_header(evhttp_request_get_output_headers(ar->req), "Link", link);
    acme_reply_writer(ar, 200, challenge_document(ar->acme, order), NULL);
}

void acme_reply_account(struct acme_request *ar, int status, const char *id,
                        const char *account_status, const struct json_value *contact,
                        const char *contact_json)
{
    char location[700];
    snprintf(location, sizeof(location), "%s/account/%s", ar->acme->base, id);
    struct json_writer *w = json_writer_new(ACME_MAX_ANSWER, 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "status") &&
              json_write_string(w, account_status);
    if (ok && contact != NULL && !json_value_is_null(contact))
        ok = json_write_key(w, "contact") && json_write_value(w, contact);
    else if (ok && contact_json != NULL && strcmp(contact_json, "null") != 0)
        ok = json_write_key(w, "contact") && json_write_raw(w, contact_json, strlen(contact_json));
    if (!(ok && json_write_end_object(w))) {
        json_writer_free(w);
        w = NULL;
    }
    acme_reply_writer(ar, status, w, location);
}
