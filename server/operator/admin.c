#include "admin.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/queue.h>

#include "apns.h"
#include "command.h"
#include "command_answers.h"
#include "fleet_api.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mdm_message.h"
#include "nanomdm.h"
#include "openapi.h"
#include "identities.h"
#include "token_api.h"
#include "tokens.h"
#include "push.h"
#include "pushcert.h"
#include "scheduler.h"
#include "webhook.h"
#include "queries.h"
#include "vouchd.h"
#include "vouch_version.h"

#define DEVICE_PAGE_DEFAULT 100
#define DEVICE_PAGE_MAX 1000
#define COMMANDS_LIMIT 100
#define ENQUEUE_MAX_IDS 1000
#define ATTEST_MAX_IDS 1000
#define ATTESTATIONS_LIMIT 100
#define JSON_BODY_MAX (256 * 1024)
#define ID_MAX_LEN MDM_MAX_ID_LEN

struct admin_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    enum metrics_endpoint ep;
    struct prepared_command command; /* enqueue */
    char **ids;                      /* enqueue, attest, push */
    size_t id_count;
    bool single;  /* attest: POST /v1/devices/{udid}/attest */
    bool nanomdm; /* the caller came as NanoMDM's (Basic nanomdm:KEY): NanoMDM's answers */
    bool nopush;  /* enqueue: ?nopush=<non-empty> */
    bool *failed; /* nanomdm enqueue: per ar->ids, the device is unknown (not queued) */
};

static void admin_request_free(struct admin_request *ar)
{
    ar->srv->inflight--;
    command_clear(&ar->command);
    free(ar->failed);
    for (size_t i = 0; i < ar->id_count; i++)
        free(ar->ids[i]);
    free(ar->ids);
    free(ar);
}

static struct admin_request *admin_request_new(struct vouchd *srv, struct evhttp_request *req,
                                               enum metrics_endpoint ep)
{
    struct admin_request *ar = calloc(1, sizeof(*ar));
    if (ar == NULL)
        log_fatal("out of memory");
    ar->srv = srv;
    ar->req = req;
    ar->ep = ep;
    srv->inflight++;
    return ar;
}

static bool reply_db_failure(struct admin_request *ar, enum db_outcome outcome, const PGresult *res)
{
    switch (outcome) {
    case DB_OK:
        return false;
    case DB_UNAVAILABLE:
    case DB_OVERLOADED:
        metrics_count_rejection("database_unavailable");
        http_reply_json_error(ar->req, ar->ep, 503, "the database is not available");
        return true;
    case DB_QUERY_ERROR:
        break;
    }
    if (strcmp(db_sqlstate(res), "23505") == 0) {
        http_reply_json_error(ar->req, ar->ep, 409, "a command with this CommandUUID exists");
        return true;
    }
    http_reply_json_error(ar->req, ar->ep, 500, "internal error");
    return true;
}

/* Replies with JSON text made by the database; NULL text is 404. */
static void json_text_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct admin_request *ar = arg;
    const char *text;
    size_t len;
    if (!reply_db_failure(ar, outcome, res)) {
        if (!db_decode_text(res, &text, &len))
            http_reply_json_error(ar->req, ar->ep, 500, "internal error");
        else if (text == NULL)
            http_reply_json_error(ar->req, ar->ep, 404, "unknown device");
        else
            http_reply(ar->req, ar->ep, 200, "application/json", text, len);
    }
    admin_request_free(ar);
}

static bool valid_id(const char *id, size_t len)
{
    if (len == 0 || len > ID_MAX_LEN || !mdm_utf8_valid(id, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return false;
    }
    return true;
}

/* Decodes one percent-encoded path segment into a fresh string, or NULL if it is not an id. */
static char *decode_id(const char *segment, size_t len)
{
    if (len == 0 || len > 3 * ID_MAX_LEN)
        return NULL;
    char raw[3 * ID_MAX_LEN + 1];
    memcpy(raw, segment, len);
    raw[len] = '\0';
    size_t out_len = 0;
    char *id = evhttp_uridecode(raw, 0, &out_len);
    if (id != NULL && !valid_id(id, out_len)) {
        free(id);
        id = NULL;
    }
    return id;
}

struct id_ref {
    const char *id;
    size_t pos;
};

static int id_ref_cmp(const void *a, const void *b)
{
    const struct id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Keeps the first of each device id in ar->ids, in order: a device named twice is asked, pushed
 * and reported once (O(n log n); n is at most 1000). */
static void drop_duplicate_ids(struct admin_request *ar)
{
    if (ar->id_count < 2)
        return;
    struct id_ref *refs = calloc(ar->id_count, sizeof(*refs));
    bool *dup = calloc(ar->id_count, sizeof(*dup));
    if (refs == NULL || dup == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < ar->id_count; i++)
        refs[i] = (struct id_ref){ar->ids[i], i};
    qsort(refs, ar->id_count, sizeof(*refs), id_ref_cmp);
    for (size_t i = 1; i < ar->id_count; i++)
        if (strcmp(refs[i].id, refs[i - 1].id) == 0)
            dup[refs[i].pos] = true;
    size_t kept = 0;
    for (size_t i = 0; i < ar->id_count; i++) {
        if (dup[i])
            free(ar->ids[i]);
        else
            ar->ids[kept++] = ar->ids[i];
    }
    ar->id_count = kept;
    free(dup);
    free(refs);
}

/* Splits "a,b,c" (percent-encoded) into ar->ids, each id once; returns a problem or NULL. */
static const char *parse_id_list(struct admin_request *ar, const char *ids)
{
    if ((ar->ids = calloc(ENQUEUE_MAX_IDS, sizeof(char *))) == NULL)
        log_fatal("out of memory");
    for (const char *p = ids;;) {
        size_t len = strcspn(p, ",");
        if (ar->id_count == ENQUEUE_MAX_IDS)
            return "too many device ids (at most 1000)";
        if ((ar->ids[ar->id_count] = decode_id(p, len)) == NULL)
            return "bad device id in the path";
        ar->id_count++;
        if (p[len] == '\0') {
            drop_duplicate_ids(ar);
            return NULL;
        }
        p += len + 1;
    }
}

/* The query string of a listing, and its page size (?limit=, 1 to 1000): false (and a 400) when
 * the query string cannot be read; *problem says what is wrong with the limit. */
static bool parse_listing_query(struct evhttp_request *req, enum metrics_endpoint ep,
                                struct evkeyvalq *query, unsigned *limit, const char **problem)
{
    if (!http_parse_query(req, ep, query))
        return false;
    *limit = DEVICE_PAGE_DEFAULT;
    *problem = NULL;
    const char *limit_text = evhttp_find_header(query, "limit");
    if (limit_text != NULL) {
        char *end;
        long v = strtol(limit_text, &end, 10);
        if (*limit_text == '\0' || *end != '\0' || v < 1 || v > DEVICE_PAGE_MAX)
            *problem = "limit must be a whole number from 1 to 1000";
        else
            *limit = (unsigned)v;
    }
    return true;
}

static void handle_device_list(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    unsigned limit;
    const char *problem;
    if (!parse_listing_query(req, EP_ADMIN_DEVICES, &query, &limit, &problem))
        return;
    const char *after = evhttp_find_header(&query, "after");
    const char *filter = evhttp_find_header(&query, "attestation");
    const char *serial = evhttp_find_header(&query, "serial");
    const char *fields = evhttp_find_header(&query, "fields");
    if (after != NULL && !valid_id(after, strlen(after)))
        problem = "after must be a device id";
    if (serial != NULL && !valid_id(serial, strlen(serial)))
        problem = "serial must be a serial number";
    /* A parameter this list does not know would otherwise be ignored silently (?serail=X gave
     * the first page of every device). */
    struct evkeyval *param;
    TAILQ_FOREACH(param, &query, next)
    {
        if (strcmp(param->key, "limit") != 0 && strcmp(param->key, "after") != 0 &&
            strcmp(param->key, "attestation") != 0 && strcmp(param->key, "serial") != 0 &&
            strcmp(param->key, "fields") != 0)
            problem = "unknown query parameter (the device list takes limit, after, attestation, "
                      "serial and fields)";
    }
    /* fields=udid: each device as {"udid"} alone (vouchctl attest --all needs no more). */
    if (fields != NULL && strcmp(fields, "udid") != 0)
        problem = "fields must be udid (or absent: whole device objects)";
    static const char *const filters[] = {"verified", "failed",      "expired",
                                          "none",     "unsupported", "pending"};
    bool known = filter == NULL;
    for (size_t i = 0; !known && i < sizeof(filters) / sizeof(filters[0]); i++)
        known = strcmp(filter, filters[i]) == 0;
    if (!known)
        problem = "attestation must be one of verified, failed, expired, none, unsupported "
                  "(the last verdict) or pending (a request out)";
    if (problem != NULL) {
        http_reply_json_error(req, EP_ADMIN_DEVICES, 400, problem);
    } else {
        struct admin_request *ar = admin_request_new(srv, req, EP_ADMIN_DEVICES);
        db_device_list(srv->db, after, limit, filter, serial, fields != NULL, json_text_done, ar);
    }
    evhttp_clear_headers(&query);
}

/* ---- NanoMDM's answers (docs/api.md section 9; their text: nanomdm.h) ---- */

/* NanoMDM's enqueue or push answer: status.{id} with push_result / push_error / command_error,
 * no_push, a top-level push_error, command_uuid and request_type, each only when it has a value.
 * reports (may be NULL: no push) are in the order of the ids pushed, which are ar->ids without
 * the failed ones. HTTP status as NanoMDM's: 500 with a top-level error or when every id
 * failed, 207 when some did, else 200; but 404 when every id failed for being unknown. */
static void reply_nanomdm(struct admin_request *ar, const struct push_report *reports,
                          size_t report_count, const char *push_error)
{
    bool with_command = ar->command.xml != NULL;
    struct json_writer *w = json_writer_new(512 + ar->id_count * (ID_MAX_LEN * 6 + 320), 0);
    bool ok = w != NULL && json_write_begin_object(w);
    size_t failed_ids = 0, unknown_ids = 0, r = 0;
    bool any_status = false;
    for (size_t i = 0; ok && i < ar->id_count; i++) {
        bool unknown = ar->failed != NULL && ar->failed[i];
        const struct push_report *rep = NULL;
        if (!unknown && reports != NULL && r < report_count)
            rep = &reports[r++];
        if (!unknown && rep == NULL)
            continue;
        if (!any_status)
            ok = json_write_key(w, "status") && json_write_begin_object(w);
        any_status = true;
        ok = ok && json_write_key(w, ar->ids[i]) && json_write_begin_object(w);
        if (unknown) {
            failed_ids++;
            unknown_ids++;
            ok = ok && json_write_key(w, "command_error") &&
                 json_write_string(w, "unknown device: nothing queued for it");
        } else if (strcmp(rep->result, "delivered") == 0) {
            ok = ok && json_write_key(w, "push_result") &&
                 json_write_string(w, rep->detail != NULL ? rep->detail : "");
        } else {
            char message[192];
            if (strcmp(rep->result, "no_token") == 0)
                snprintf(message, sizeof(message),
                         "no_token: unknown device, not enrolled, or its push token is dead");
            else
                snprintf(message, sizeof(message), "%s: %s", rep->result,
                         rep->detail != NULL ? rep->detail : "no reason given");
            failed_ids++;
            ok = ok && json_write_key(w, "push_error") && json_write_string(w, message);
        }
        ok = ok && json_write_end_object(w);
    }
    if (ok && any_status)
        ok = json_write_end_object(w);
    if (ok && ar->nopush && with_command)
        ok = json_write_key(w, "no_push") && json_write_bool(w, true);
    if (ok && push_error != NULL)
        ok = json_write_key(w, "push_error") && json_write_string(w, push_error);
    if (ok && with_command)
        ok = json_write_key(w, "command_uuid") && json_write_string(w, ar->command.uuid) &&
             json_write_key(w, "request_type") && json_write_string(w, ar->command.request_type);
    const char *text;
    size_t len;
    ok = ok && json_write_end_object(w) && json_writer_finish(w, &text, &len);
    int status = push_error != NULL            ? 500
                 : failed_ids == 0             ? 200
                 : failed_ids < ar->id_count   ? 207
                 : unknown_ids == ar->id_count ? 404
                                               : 500;
    if (!ok)
        http_reply_json_error(ar->req, ar->ep, 500, "internal error");
    else
        nanomdm_reply_json(ar->req, ar->ep, status, text, len);
    json_writer_free(w);
}

static void nanomdm_push_done(void *arg, const struct push_report *reports, size_t count)
{
    struct admin_request *ar = arg;
    reply_nanomdm(ar, reports, count, NULL);
    admin_request_free(ar);
}

#define NO_PUSH_CERT "no push certificate is configured (apns_cert): vouchd cannot push"

/* Pushes ar->ids (without the failed ones), then answers NanoMDM's way; or answers at once
 * under ?nopush, or without a push certificate (NanoMDM: a top-level push_error, 500). */
static void nanomdm_push_then_reply(struct admin_request *ar)
{
    if (ar->nopush) {
        reply_nanomdm(ar, NULL, 0, NULL);
        admin_request_free(ar);
        return;
    }
    if (ar->srv->push == NULL) {
        reply_nanomdm(ar, NULL, 0, NO_PUSH_CERT);
        admin_request_free(ar);
        return;
    }
    const char **to_push = calloc(ar->id_count + 1, sizeof(char *));
    if (to_push == NULL)
        log_fatal("out of memory");
    size_t n = 0;
    for (size_t i = 0; i < ar->id_count; i++)
        if (ar->failed == NULL || !ar->failed[i])
            to_push[n++] = ar->ids[i];
    if (n == 0) {
        reply_nanomdm(ar, NULL, 0, NULL);
        admin_request_free(ar);
    } else {
        push_devices(ar->srv->push, to_push, n, nanomdm_push_done, ar);
    }
    free(to_push);
}

/* NanoMDM's nopush: skipped when the first nopush parameter has a non-empty value ("?nopush"
 * and "?nopush=" still push). Read by hand: libevent refuses a parameter without "=". */
static bool query_nopush(struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    for (const char *p = q; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, "&;");
        if (len >= 6 && strncmp(p, "nopush", 6) == 0 && (len == 6 || p[6] == '='))
            return len > 7;
        p += len + (p[len] != '\0');
    }
    return false;
}

static void nanomdm_enqueue_done(struct admin_request *ar, enum db_outcome outcome,
                                 const PGresult *res)
{
    if (outcome != DB_OK) {
        bool dup = outcome == DB_QUERY_ERROR && strcmp(db_sqlstate(res), "23505") == 0;
        nanomdm_reply_error(ar->req, ar->ep,
                            dup                         ? 409
                            : outcome == DB_QUERY_ERROR ? 500
                                                        : 503,
                            "command_error",
                            dup                         ? "a command with this CommandUUID exists"
                            : outcome == DB_QUERY_ERROR ? "internal error"
                                                        : "the database is not available");
        admin_request_free(ar);
        return;
    }
    /* The answer's rows, one per id, become the ids (in the database's order). */
    size_t rows = (size_t)PQntuples(res);
    char **ids = calloc(rows + 1, sizeof(char *));
    bool *failed = calloc(rows + 1, sizeof(bool));
    if (ids == NULL || failed == NULL)
        log_fatal("out of memory");
    size_t queued_count = 0;
    for (size_t row = 0; row < rows; row++) {
        const char *udid;
        bool queued;
        if (!db_decode_enqueue_row(res, (int)row, &udid, &queued)) {
            udid = "?";
            queued = false;
        }
        if ((ids[row] = strdup(udid)) == NULL)
            log_fatal("out of memory");
        failed[row] = !queued;
        queued_count += queued;
    }
    for (size_t i = 0; i < ar->id_count; i++)
        free(ar->ids[i]);
    free(ar->ids);
    ar->ids = ids;
    ar->id_count = rows;
    ar->failed = failed;
    if (queued_count > 0)
        log_info("queued %s %s for %zu device(s)", ar->command.request_type, ar->command.uuid,
                 queued_count);
    nanomdm_push_then_reply(ar);
}

static void enqueue_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct admin_request *ar = arg;
    if (ar->nanomdm) {
        nanomdm_enqueue_done(ar, outcome, res);
        return;
    }
    if (reply_db_failure(ar, outcome, res)) {
        admin_request_free(ar);
        return;
    }
    struct json_writer *w = json_writer_new(64 + ar->id_count * (ID_MAX_LEN * 6 + 64), 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "command_uuid") &&
              json_write_string(w, ar->command.uuid) && json_write_key(w, "request_type") &&
              json_write_string(w, ar->command.request_type) && json_write_key(w, "status") &&
              json_write_begin_object(w);
    size_t queued_count = 0;
    const char **to_push = calloc((size_t)PQntuples(res) + 1, sizeof(char *));
    if (to_push == NULL)
        log_fatal("out of memory");
    for (int row = 0; ok && row < PQntuples(res); row++) {
        const char *udid;
        bool queued;
        ok = db_decode_enqueue_row(res, row, &udid, &queued);
        if (ok && queued)
            to_push[queued_count] = udid;
        ok = ok && json_write_key(w, udid) && json_write_begin_object(w) &&
             json_write_key(w, "queued") && json_write_bool(w, queued);
        if (ok && !queued)
            ok = json_write_key(w, "error") && json_write_string(w, "unknown device");
        ok = ok && json_write_end_object(w);
        queued_count += queued;
    }
    const char *text;
    size_t len;
    ok = ok && json_write_end_object(w) && json_write_end_object(w) &&
         json_writer_finish(w, &text, &len);
    if (!ok)
        http_reply_json_error(ar->req, ar->ep, 500, "internal error");
    else
        http_reply(ar->req, ar->ep, queued_count > 0 ? 200 : 404, "application/json", text, len);
    if (ok && queued_count > 0)
        log_info("queued %s %s for %zu device(s)", ar->command.request_type, ar->command.uuid,
                 queued_count);
    if (queued_count > 0 && ar->srv->push != NULL && !ar->nopush)
        push_devices(ar->srv->push, to_push, queued_count, NULL, NULL);
    free(to_push);
    json_writer_free(w);
    admin_request_free(ar);
}

/* PUT or POST /v1/enqueue/{id}[,...][?nopush=1]: the body is a command plist (XML or binary).
 * A NanoMDM caller gets NanoMDM's semantics: an empty body only pushes, the answer waits for
 * the pushes, in NanoMDM's shape; bad input is a 400 (NanoMDM: 500) with a command_error. */
static void handle_enqueue(struct vouchd *srv, struct evhttp_request *req, const char *ids,
                           bool nanomdm)
{
    enum metrics_endpoint ep = EP_ADMIN_ENQUEUE;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_PUT && method != EVHTTP_REQ_POST) {
        http_reply_json_error(req, ep, 405, "use PUT or POST");
        return;
    }
    struct admin_request *ar = admin_request_new(srv, req, ep);
    ar->nanomdm = nanomdm;
    ar->nopush = query_nopush(req);
    const char *problem = parse_id_list(ar, ids);
    char err[256], decoding[sizeof(err) + 32];
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (problem == NULL && nanomdm && len == 0) {
        if (ar->nopush) {
            problem = "must enqueue or push";
        } else {
            nanomdm_push_then_reply(ar);
            return;
        }
    }
    if (problem == NULL) {
        const char *body = (const char *)evbuffer_pullup(in, -1);
        if (!command_prepare(body, len, &ar->command, err, sizeof(err)))
            problem = err;
        else if (nanomdm && ar->command.uuid_generated)
            problem = "empty command uuid"; /* NanoMDM refuses a command without one */
        if (problem != NULL && nanomdm) {
            snprintf(decoding, sizeof(decoding), "decoding command: %s", problem);
            problem = decoding;
        }
    }
    if (problem != NULL) {
        metrics_count_rejection("bad_command");
        if (nanomdm) {
            command_clear(&ar->command);
            nanomdm_reply_error(ar->req, ar->ep, 400, "command_error", problem);
        } else {
            http_reply_json_error(req, ep, 400, problem);
        }
        admin_request_free(ar);
        return;
    }
    db_enqueue(srv->db, ar->command.uuid, ar->command.request_type,
               (const uint8_t *)ar->command.xml, ar->command.xml_len, (const char *const *)ar->ids,
               ar->id_count, enqueue_done, ar);
}

/* The answer rows of a device named again, in another case (drop_duplicate_ids dropped exact
 * repeats; the database answers each mention under the device's own UDID, a later one with the
 * first one's request): true for each row after the device's first, so that it is reported and
 * pushed once, as an exact repeat is. */
static bool *repeated_devices(const PGresult *res)
{
    size_t n = (size_t)PQntuples(res);
    struct id_ref *refs = calloc(n + 1, sizeof(*refs));
    bool *repeat = calloc(n + 1, sizeof(*repeat));
    if (refs == NULL || repeat == NULL)
        log_fatal("out of memory");
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        const char *udid, *outcome, *uuid;
        if (db_decode_attestation_row(res, (int)i, &udid, &outcome, &uuid))
            refs[kept++] = (struct id_ref){udid, i};
    }
    qsort(refs, kept, sizeof(*refs), id_ref_cmp);
    for (size_t i = 1; i < kept; i++)
        if (strcmp(refs[i].id, refs[i - 1].id) == 0)
            repeat[refs[i].pos] = true;
    free(refs);
    return repeat;
}

static void attest_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct admin_request *ar = arg;
    if (reply_db_failure(ar, outcome, res)) {
        admin_request_free(ar);
        return;
    }
    struct json_writer *w = json_writer_new(256 + ar->id_count * (ID_MAX_LEN * 6 + 128), 0);
    bool ok = w != NULL;
    size_t queued = 0, known = 0, pushes = 0;
    const char **to_push = calloc((size_t)PQntuples(res) + 1, sizeof(char *));
    if (to_push == NULL)
        log_fatal("out of memory");
    if (ok && !ar->single)
        ok = json_write_begin_object(w) && json_write_key(w, "results") &&
             json_write_begin_object(w);
    bool *repeat = repeated_devices(res);
    for (int row = 0; ok && row < PQntuples(res); row++) {
        const char *udid, *result, *uuid;
        ok = db_decode_attestation_row(res, row, &udid, &result, &uuid);
        if (!ok)
            break;
        if (repeat[row])
            continue;
        bool unknown = strcmp(result, "unknown_device") == 0;
        known += !unknown;
        /* A request still pending (say, since enrollment) is pushed again: the device owes it. */
        if (strcmp(result, "queued") == 0 || strcmp(result, "pending") == 0)
            to_push[pushes++] = udid;
        queued += strcmp(result, "queued") == 0;
        if (!ar->single)
            ok = json_write_key(w, udid);
        ok = ok && json_write_begin_object(w);
        if (ok && ar->single)
            ok = json_write_key(w, "udid") && json_write_string(w, udid);
        if (ok && unknown)
            ok = json_write_key(w, "error") && json_write_string(w, "unknown device");
        else if (ok)
            ok = json_write_key(w, "command_uuid") && json_write_string_or_null(w, uuid) &&
                 json_write_key(w, "queued") && json_write_bool(w, strcmp(result, "queued") == 0);
        ok = ok && json_write_end_object(w);
    }
    free(repeat);
    if (ok && !ar->single)
        ok = json_write_end_object(w) && json_write_end_object(w);
    const char *text;
    size_t len;
    if (!ok || !json_writer_finish(w, &text, &len))
        http_reply_json_error(ar->req, ar->ep, 500, "internal error");
    else if (ar->single && known == 0)
        http_reply_json_error(ar->req, ar->ep, 404, "unknown device");
    else
        http_reply(ar->req, ar->ep, 200, "application/json", text, len);
    if (ok && queued > 0)
        log_info("asked %zu device(s) for an attestation", queued);
    if (pushes > 0 && ar->srv->push != NULL)
        push_devices(ar->srv->push, to_push, pushes, NULL, NULL);
    free(to_push);
    json_writer_free(w);
    admin_request_free(ar);
}

/* Makes one attestation request per id (a fresh UUID and nonce each) and queues them. */
static void start_attest(struct admin_request *ar)
{
    struct db_attest_request *requests = calloc(ar->id_count, sizeof(*requests));
    char(*uuids)[37] = calloc(ar->id_count, 37);
    uint8_t(*nonces)[COMMAND_NONCE_BYTES] = calloc(ar->id_count, COMMAND_NONCE_BYTES);
    if (requests == NULL || uuids == NULL || nonces == NULL)
        log_fatal("out of memory");
    bool ok = true;
    for (size_t i = 0; ok && i < ar->id_count; i++) {
        ok = command_new_attestation(uuids[i], nonces[i]);
        requests[i] = (struct db_attest_request){uuids[i], nonces[i], COMMAND_NONCE_BYTES};
    }
    if (ok)
        db_request_attestations(ar->srv->db, (const char *const *)ar->ids, requests, ar->id_count,
                                "operator", attest_done, ar);
    free(uuids);
    free(requests);
    free(nonces);
    if (!ok) {
        http_reply_json_error(ar->req, ar->ep, 500, "cannot build attestation requests");
        admin_request_free(ar);
    }
}

/* GET /v1/push/{id}[,...], NanoMDM's shape: {"status": {"<id>": {"push_result": "<apns-id>"}
 * or {"push_error": "..."}}}, answered when every push has its answer. */
static void push_done(void *arg, const struct push_report *reports, size_t count)
{
    struct admin_request *ar = arg;
    if (ar->nanomdm) {
        nanomdm_push_done(ar, reports, count);
        return;
    }
    struct json_writer *w = json_writer_new(256 + count * (ID_MAX_LEN * 6 + 160), 0);
    bool ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "status") &&
              json_write_begin_object(w);
    size_t delivered = 0;
    for (size_t i = 0; ok && i < count; i++) {
        bool good = strcmp(reports[i].result, "delivered") == 0;
        delivered += good;
        ok = json_write_key(w, reports[i].udid) && json_write_begin_object(w);
        if (ok && good)
            ok =
                json_write_key(w, "push_result") && json_write_string_or_null(w, reports[i].detail);
        else if (ok)
            ok = json_write_key(w, "push_error") && json_write_string(w, reports[i].result) &&
                 json_write_key(w, "reason") && json_write_string_or_null(w, reports[i].detail);
        ok = ok && json_write_end_object(w);
    }
    const char *text;
    size_t len;
    ok = ok && json_write_end_object(w) && json_write_end_object(w) &&
         json_writer_finish(w, &text, &len);
    if (!ok)
        http_reply_json_error(ar->req, ar->ep, 500, "internal error");
    else
        http_reply(ar->req, ar->ep, delivered > 0 ? 200 : 404, "application/json", text, len);
    json_writer_free(w);
    admin_request_free(ar);
}

static void handle_push(struct vouchd *srv, struct evhttp_request *req, const char *ids,
                        bool nanomdm)
{
    enum metrics_endpoint ep = EP_ADMIN_PUSH;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        http_reply_json_error(req, ep, 405, "use GET");
        return;
    }
    if (nanomdm) {
        struct admin_request *ar = admin_request_new(srv, req, ep);
        ar->nanomdm = true;
        const char *problem = parse_id_list(ar, ids);
        if (problem != NULL) {
            metrics_count_rejection("bad_request");
            nanomdm_reply_error(ar->req, ar->ep, 400, "push_error", problem);
            admin_request_free(ar);
        } else {
            nanomdm_push_then_reply(ar);
        }
        return;
    }
    if (srv->push == NULL) {
        http_reply_json_error(req, ep, 503, "no apns_cert is configured: vouchd cannot push");
        return;
    }
    struct admin_request *ar = admin_request_new(srv, req, ep);
    const char *problem = parse_id_list(ar, ids);
    if (problem != NULL) {
        metrics_count_rejection("bad_request");
        http_reply_json_error(req, ep, 400, problem);
        admin_request_free(ar);
        return;
    }
    push_devices(srv->push, (const char *const *)ar->ids, ar->id_count, push_done, ar);
}

/* POST /v1/attest {"udids": [...]} */
static void handle_attest_many(struct vouchd *srv, struct evhttp_request *req)
{
    enum metrics_endpoint ep = EP_ADMIN_ATTEST;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        http_reply_json_error(req, ep, 405, "use POST");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    const struct json_limits limits = {
        .max_bytes = JSON_BODY_MAX, .max_depth = 8, .max_nodes = ATTEST_MAX_IDS + 16};
    struct json_doc *doc = NULL;
    struct json_parse_error perr;
    char problem[160] = "";
    if (len == 0 || json_parse(body, len, &limits, &doc, &perr) != JSON_OK) {
        snprintf(problem, sizeof(problem), "expected a JSON body {\"udids\": [...]}");
        goto refuse;
    }
    const struct json_value *udids = json_object_find(json_doc_root(doc), "udids");
    size_t count = json_array_length(udids);
    if (json_value_kind(udids) != JSON_KIND_ARRAY || count == 0 || count > ATTEST_MAX_IDS) {
        snprintf(problem, sizeof(problem), "udids must be an array of 1 to %d device ids",
                 ATTEST_MAX_IDS);
        goto refuse;
    }
    struct admin_request *ar = admin_request_new(srv, req, ep);
    ar->ids = calloc(count, sizeof(char *));
    if (ar->ids == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        const char *id;
        size_t id_len;
        if (!json_get_string(json_array_at(udids, i), &id, &id_len) || !valid_id(id, id_len)) {
            snprintf(problem, sizeof(problem), "udids[%zu] is not a device id", i);
            admin_request_free(ar);
            goto refuse;
        }
        if ((ar->ids[ar->id_count++] = strndup(id, id_len)) == NULL)
            log_fatal("out of memory");
    }
    json_doc_free(doc);
    drop_duplicate_ids(ar);
    start_attest(ar);
    return;
refuse:
    json_doc_free(doc);
    metrics_count_rejection("bad_request");
    http_reply_json_error(req, ep, 400, problem);
}

static void handle_device(struct vouchd *srv, struct evhttp_request *req, const char *rest)
{
    /* rest: "{udid}" or "{udid}/commands", "{udid}/attestations", "{udid}/attest",
     * "{udid}/allow-reenroll" */
    const char *slash = strchr(rest, '/');
    size_t id_len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *sub = slash ? slash + 1 : "";
    enum metrics_endpoint ep;
    enum evhttp_cmd_type method = EVHTTP_REQ_GET;
    bool allow_reenroll = false;
    if (slash == NULL)
        ep = EP_ADMIN_DEVICE;
    else if (strcmp(sub, "allow-reenroll") == 0) {
        ep = EP_ADMIN_DEVICE;
        method = EVHTTP_REQ_POST;
        allow_reenroll = true;
    } else if (strcmp(sub, "commands") == 0)
        ep = EP_ADMIN_COMMANDS;
    else if (strcmp(sub, "attestations") == 0)
        ep = EP_ADMIN_ATTESTATIONS;
    else if (strcmp(sub, "attest") == 0) {
        ep = EP_ADMIN_ATTEST;
        method = EVHTTP_REQ_POST;
    } else {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
        return;
    }
    if (evhttp_request_get_command(req) != method) {
        http_reply_json_error(req, ep, 405, method == EVHTTP_REQ_GET ? "use GET" : "use POST");
        return;
    }
    char *udid = decode_id(rest, id_len);
    if (udid == NULL) {
        http_reply_json_error(req, ep, 400, "bad device id in the path");
        return;
    }
    struct admin_request *ar = admin_request_new(srv, req, ep);
    if (allow_reenroll) {
        db_allow_reenroll(srv->db, udid, json_text_done, ar);
        free(udid);
        return;
    }
    switch (ep) {
    case EP_ADMIN_COMMANDS:
        db_device_commands(srv->db, udid, COMMANDS_LIMIT, json_text_done, ar);
        break;
    case EP_ADMIN_ATTESTATIONS:
        db_device_attestations(srv->db, udid, ATTESTATIONS_LIMIT, json_text_done, ar);
        break;
    case EP_ADMIN_ATTEST:
        ar->ids = calloc(1, sizeof(char *));
        if (ar->ids == NULL)
            log_fatal("out of memory");
        ar->ids[0] = udid;
        ar->id_count = 1;
        ar->single = true;
        start_attest(ar);
        return;
    default:
        db_device_get(srv->db, udid, json_text_done, ar);
        break;
    }
    free(udid);
}

/* An event id: digits that fit a bigint (at most 18, so no overflow reaches the database). */
static bool event_id_ok(const char *text, size_t len)
{
    return len > 0 && len <= 18 && strspn(text, "0123456789") >= len && text[0] != '0';
}

/* GET /v1/events?status=pending|dead|delivered&before=ID&limit=N: the outbox, newest first. */
static void handle_event_list(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    unsigned limit;
    const char *problem;
    if (!parse_listing_query(req, EP_OTHER, &query, &limit, &problem))
        return;
    const char *status = evhttp_find_header(&query, "status");
    const char *before = evhttp_find_header(&query, "before");
    if (before != NULL && !event_id_ok(before, strlen(before)))
        problem = "before must be an event id";
    if (status != NULL && strcmp(status, "pending") != 0 && strcmp(status, "dead") != 0 &&
        strcmp(status, "delivered") != 0)
        problem = "status must be one of pending, dead, delivered";
    if (problem != NULL) {
        http_reply_json_error(req, EP_OTHER, 400, problem);
    } else {
        struct admin_request *ar = admin_request_new(srv, req, EP_OTHER);
        db_event_list(srv->db, status, before, limit, json_text_done, ar);
    }
    evhttp_clear_headers(&query);
}

static void event_retry_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct admin_request *ar = arg;
    const char *text;
    size_t len;
    if (!reply_db_failure(ar, outcome, res)) {
        if (!db_decode_text(res, &text, &len) || text == NULL)
            http_reply_json_error(ar->req, ar->ep, 500, "internal error");
        else if (strcmp(text, "0") == 0)
            http_reply_json_error(ar->req, ar->ep, 404, "no pending or dead delivery of it");
        else {
            char body[64];
            int n = snprintf(body, sizeof(body), "{\"retried\": %s}", text);
            http_reply(ar->req, ar->ep, 200, "application/json", body, (size_t)n);
        }
    }
    admin_request_free(ar);
}

/* POST /v1/events/{id}/retry: sends a dead (or waiting) event again, now. */
static void handle_event(struct vouchd *srv, struct evhttp_request *req, const char *rest)
{
    char id[24];
    size_t len = strspn(rest, "0123456789");
    if (!event_id_ok(rest, len) || strcmp(rest + len, "/retry") != 0) {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        http_reply_json_error(req, EP_OTHER, 405, "use POST");
        return;
    }
    memcpy(id, rest, len);
    id[len] = '\0';
    struct admin_request *ar = admin_request_new(srv, req, EP_OTHER);
    db_event_retry(srv->db, id, event_retry_done, ar);
}

static void handle_request(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    static const char devices[] = "/v1/devices";
    static const char enqueue[] = "/v1/enqueue/";
    if (!tokens_any(srv->tokens)) {
        http_reply_json_error(req, EP_OTHER, 404,
                              "the admin API is off: no admin_token and no API tokens");
        return;
    }
    struct token_caller caller;
    if (!tokens_authorize(srv, req, &caller))
        return;
    if (openapi_handle(srv, req, path, &caller))
        return;
    /* A GET of /v1/push/ pushes devices: that is acting, not reading. The tokens and the
     * audit are the admin's own. */
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    bool read_only = (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD) &&
                     strncmp(path, "/v1/push/", 9) != 0 && strncmp(path, enqueue, 12) != 0;
    if (!token_scope_allows(caller.scope, false, read_only) ||
        (token_api_owns(path) && caller.scope != TOKEN_SCOPE_ADMIN)) {
        char message[96], peer[128], shown[128];
        snprintf(message, sizeof(message), "this token's scope (%s) does not allow this request",
                 token_scope_name(caller.scope));
        log_warn("refused an admin request from %s: token %s (scope %s) may not %s %s",
                 http_peer(req, peer, sizeof(peer)), caller.name, token_scope_name(caller.scope),
                 read_only ? "read" : "act on",
                 log_sanitize(path, strlen(path), shown, sizeof(shown)));
        metrics_count_rejection("admin_scope");
        http_reply_json_error(req, EP_OTHER, 403, message);
        return;
    }
    tokens_audit(srv, req, &caller);
    if (command_answers_handle(srv, req, path, caller.name)) {
        /* /v1/commands/{uuid}, /v1/devices/{udid}/commands/{uuid} */
    } else if (strcmp(path, devices) == 0 || strcmp(path, "/v1/devices/") == 0) {
        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
            http_reply_json_error(req, EP_ADMIN_DEVICES, 405, "use GET");
        else
            handle_device_list(srv, req);
    } else if (strncmp(path, devices, sizeof(devices) - 1) == 0 &&
               path[sizeof(devices) - 1] == '/') {
        handle_device(srv, req, path + sizeof(devices));
    } else if (strncmp(path, enqueue, sizeof(enqueue) - 1) == 0) {
        handle_enqueue(srv, req, path + sizeof(enqueue) - 1, caller.nanomdm);
    } else if (strcmp(path, "/v1/attest") == 0) {
        handle_attest_many(srv, req);
    } else if (strncmp(path, "/v1/push/", 9) == 0) {
        handle_push(srv, req, path + 9, caller.nanomdm);
    } else if (strcmp(path, "/v1/pushcert") == 0) {
        pushcert_handle(srv, req, &caller);
    } else if (strcmp(path, "/v1/events") == 0) {
        if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
            http_reply_json_error(req, EP_OTHER, 405, "use GET");
        else
            handle_event_list(srv, req);
    } else if (strncmp(path, "/v1/events/", 11) == 0) {
        handle_event(srv, req, path + 11);
    } else if (!fleet_api_handle(srv, req, path) && !identities_handle(srv, req, path) &&
               !token_api_handle(srv, req, path, &caller)) {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
    }
}

void admin_register_routes(void)
{
    http_route("/v1/", handle_request);
}
