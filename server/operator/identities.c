#include "identities.h"

#include <ctype.h>
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
#include "mdm_message.h"
#include "queries_acme.h"
#include "vouchd.h"

#define CERTS_LIMIT_DEFAULT 100
#define CERTS_LIMIT_MAX 1000
#define EXPECT_MAX 1000
#define SERIAL_MAX 64
#define TOKEN_BYTES 24 /* an expected device's enrollment token: 192 bits, as 48 hex */
#define BODY_MAX (256 * 1024)

struct identities_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    /* POST /v1/expected-devices: the serials and their new tokens, in order. */
    char (*serials)[SERIAL_MAX + 1];
    char (*tokens)[2 * TOKEN_BYTES + 1];
    size_t count;
};

static struct identities_request *request_new(struct vouchd *srv, struct evhttp_request *req)
{
    struct identities_request *ir = calloc(1, sizeof(*ir));
    if (ir == NULL)
        log_fatal("out of memory");
    ir->srv = srv;
    ir->req = req;
    srv->inflight++;
    return ir;
}

static void request_free(struct identities_request *ir)
{
    ir->srv->inflight--;
    free(ir->serials);
    free(ir->tokens);
    free(ir);
}

/* The certificate list, a revocation's answer, the expected devices: one JSON value each. */
static struct admin_read *certs_read(struct vouchd *srv, struct evhttp_request *req)
{
    return admin_read_new(srv, req, "identities", 404, "no certificate with that serial");
}

static bool hex_serial(const char *s, size_t len)
{
    return len > 0 && len <= 64 && strspn(s, "0123456789abcdefABCDEF") == len;
}

/* GET /v1/certs?udid=&limit= */
static void list_certs(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    if (!http_parse_query(req, EP_OTHER, &query))
        return;
    const char *udid = evhttp_find_header(&query, "udid");
    const char *limit_text = evhttp_find_header(&query, "limit");
    long limit = CERTS_LIMIT_DEFAULT;
    char *end = NULL;
    if (limit_text != NULL)
        limit = strtol(limit_text, &end, 10);
    if (limit_text != NULL &&
        (*limit_text == '\0' || *end != '\0' || limit < 1 || limit > CERTS_LIMIT_MAX)) {
        http_reply_json_error(req, EP_OTHER, 400, "limit must be a whole number from 1 to 1000");
    } else if (udid != NULL && (udid[0] == '\0' || strlen(udid) > MDM_MAX_ID_LEN ||
                                !mdm_utf8_valid(udid, strlen(udid)))) {
        http_reply_json_error(req, EP_OTHER, 400, "udid must be a device id");
    } else {
        db_cert_list(srv->db, udid, (unsigned)limit, admin_read_done, certs_read(srv, req));
    }
    evhttp_clear_headers(&query);
}

/* The request's JSON body (an object), or NULL after replying 400. */
static struct json_doc *json_body(struct evhttp_request *req, bool empty_ok)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0 && empty_ok)
        return NULL;
    static const struct json_limits limits = {BODY_MAX, 4, 4 * EXPECT_MAX};
    struct json_doc *doc = NULL;
    const char *body = (const char *)evbuffer_pullup(in, -1);
    if (len > BODY_MAX || body == NULL || json_parse(body, len, &limits, &doc, NULL) != JSON_OK ||
        json_value_kind(json_doc_root(doc)) != JSON_KIND_OBJECT) {
        json_doc_free(doc);
        http_reply_json_error(req, EP_OTHER, 400, "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* POST /v1/certs/{serial}/revoke */
static void revoke_cert(struct vouchd *srv, struct evhttp_request *req, const char *rest)
{
    size_t len = strcspn(rest, "/");
    if (!hex_serial(rest, len) || strcmp(rest + len, "/revoke") != 0) {
        http_reply_json_error(req, EP_OTHER, 404, "not found");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        http_reply_json_error(req, EP_OTHER, 405, "use POST");
        return;
    }
    char serial[65];
    memcpy(serial, rest, len);
    serial[len] = '\0';
    char reason[65] = "operator";
    bool has_body = evbuffer_get_length(evhttp_request_get_input_buffer(req)) > 0;
    struct json_doc *doc = json_body(req, true);
    if (has_body && doc == NULL)
        return;
    const struct json_value *given = json_object_find(json_doc_root(doc), "reason");
    const char *text;
    size_t text_len;
    if (given != NULL && (!json_get_string(given, &text, &text_len) || text_len == 0 ||
                          text_len >= sizeof(reason) || !mdm_utf8_valid(text, text_len))) {
        json_doc_free(doc);
        http_reply_json_error(req, EP_OTHER, 400, "reason must be a string of 1..64 bytes");
        return;
    }
    if (given != NULL) {
        memcpy(reason, text, text_len);
        reason[text_len] = '\0';
    }
    json_doc_free(doc);
    log_info("revoking identity certificate %s (%s)", serial, reason);
    db_cert_revoke(srv->db, serial, reason, admin_read_done, certs_read(srv, req));
}

static bool serial_acceptable(const char *s, size_t len)
{
    /* Apple serial numbers: letters and digits (10 to 12 of them today). */
    return len > 0 && len <= SERIAL_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == len;
}

static void expected_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct identities_request *ir = arg;
    size_t len;
    const char *text = admin_db_text(ir->req, outcome, res, &len, "identities");
    if (text == NULL) {
        request_free(ir);
        return;
    }
    static const struct json_limits limits = {4 << 20, 4, 4 * EXPECT_MAX};
    struct json_doc *doc = NULL;
    struct json_writer *w = json_writer_new(4 << 20, 0);
    bool ok = json_parse(text, len, &limits, &doc, NULL) == JSON_OK && w != NULL &&
              json_write_begin_array(w);
    const struct json_value *rows = json_doc_root(doc);
    const char *base = ir->srv->cfg->public_url;
    for (size_t i = 0; ok && i < json_array_length(rows); i++) {
        const struct json_value *row = json_array_at(rows, i);
        const char *serial = json_object_get_string(row, "serial_number");
        const char *state = json_object_get_string(row, "state");
        const char *token = NULL;
        for (size_t j = 0; serial != NULL && j < ir->count && token == NULL; j++)
            token = strcmp(ir->serials[j], serial) == 0 ? ir->tokens[j] : NULL;
        bool enrolled = state != NULL && strcmp(state, "enrolled") == 0;
        ok = serial != NULL && state != NULL && token != NULL && json_write_begin_object(w) &&
             json_write_key(w, "serial_number") && json_write_string(w, serial) &&
             json_write_key(w, "state") && json_write_string(w, state);
        if (ok && !enrolled) {
            char url[1024];
            size_t base_len = base ? strlen(base) : 0;
            while (base_len > 0 && base[base_len - 1] == '/')
                base_len--;
            snprintf(url, sizeof(url), "%.*s/mdm/enroll?token=%s", (int)base_len, base ? base : "",
                     token);
            ok = json_write_key(w, "enroll_token") && json_write_string(w, token) &&
                 json_write_key(w, "profile_url") && json_write_string(w, url);
        }
        ok = ok && json_write_end_object(w);
    }
    const char *out;
    size_t out_len;
    if (ok && json_write_end_array(w) && json_writer_finish(w, &out, &out_len))
        http_reply(ir->req, EP_OTHER, 200, "application/json", out, out_len);
    else
        http_reply_json_error(ir->req, EP_OTHER, 500, "internal error");
    json_writer_free(w);
    json_doc_free(doc);
    request_free(ir);
}

/* POST /v1/expected-devices {"serial_numbers": [...]} */
static void expect_devices(struct vouchd *srv, struct evhttp_request *req)
{
    struct json_doc *doc = json_body(req, false);
    if (doc == NULL)
        return;
    const struct json_value *list = json_object_find(json_doc_root(doc), "serial_numbers");
    size_t count = json_array_length(list);
    if (json_value_kind(list) != JSON_KIND_ARRAY || count == 0 || count > EXPECT_MAX) {
        json_doc_free(doc);
        http_reply_json_error(req, EP_OTHER, 400,
                              "serial_numbers must be an array of 1 to 1000 serial numbers");
        return;
    }
    struct identities_request *ir = request_new(srv, req);
    ir->serials = calloc(count, sizeof(*ir->serials));
    ir->tokens = calloc(count, sizeof(*ir->tokens));
    const char **serial_ptrs = calloc(count, sizeof(*serial_ptrs));
    uint8_t *hashes = calloc(count, 32);
    if (ir->serials == NULL || ir->tokens == NULL || serial_ptrs == NULL || hashes == NULL)
        log_fatal("out of memory");
    const char *problem = NULL;
    for (size_t i = 0; i < count && problem == NULL; i++) {
        const char *s;
        size_t len;
        uint8_t token[TOKEN_BYTES];
        if (!json_get_string(json_array_at(list, i), &s, &len) || !serial_acceptable(s, len)) {
            problem = "each serial number is 1 to 64 letters and digits";
            break;
        }
        /* Apple prints serial numbers in capitals, and attestations carry them so. */
        for (size_t c = 0; c < len; c++)
            ir->serials[i][c] = (char)toupper((unsigned char)s[c]);
        ir->serials[i][len] = '\0';
        for (size_t j = 0; j < i && problem == NULL; j++) {
            if (strcmp(ir->serials[j], ir->serials[i]) == 0)
                problem = "a serial number is named twice";
        }
        if (RAND_bytes(token, sizeof(token)) != 1) {
            problem = "no random bytes";
            break;
        }
        hex_encode(token, sizeof(token), ir->tokens[i]);
        EVP_Digest(ir->tokens[i], strlen(ir->tokens[i]), hashes + 32 * i, NULL, EVP_sha256(), NULL);
        serial_ptrs[i] = ir->serials[i];
    }
    json_doc_free(doc);
    if (problem != NULL) {
        http_reply_json_error(req, EP_OTHER, 400, problem);
        request_free(ir);
    } else {
        ir->count = count;
        log_info("expecting %zu device(s) by serial number", count);
        db_expect_devices(srv->db, serial_ptrs, hashes, count, expected_done, ir);
    }
    free(serial_ptrs);
    free(hashes);
}

bool identities_handle(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (strcmp(path, "/v1/certs") == 0) {
        if (method != EVHTTP_REQ_GET)
            http_reply_json_error(req, EP_OTHER, 405, "use GET");
        else
            list_certs(srv, req);
    } else if (strncmp(path, "/v1/certs/", 10) == 0) {
        revoke_cert(srv, req, path + 10);
    } else if (strcmp(path, "/v1/expected-devices") == 0) {
        if (method == EVHTTP_REQ_GET)
            db_expected_list(srv->db, admin_read_done, certs_read(srv, req));
        else if (method == EVHTTP_REQ_POST)
            expect_devices(srv, req);
        else
            http_reply_json_error(req, EP_OTHER, 405, "use GET or POST");
    } else {
        return false;
    }
    return true;
}
