#include "command_answers.h"

#include <event2/http.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "command.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "mdm_message.h"
#include "plist_json.h"
#include "queries_commands.h"
#include "vouchd.h"

#define DEVICES_MAX 1000
/* The reports of one GET /v1/commands/{uuid} answer, in all: past the first device, those that
 * would pass this are left for another look (truncated). */
#define FLEET_REPORT_BYTES ((uint64_t)16 * 1024 * 1024)
#define REPORT_MAX_NODES 4000000
/* An answer's JSON: base64 grows data by 4/3, an escape grows a control character to 6 bytes,
 * and the ErrorChain is written twice (in the report and apart). */
#define ANSWER_JSON_MAX(report_len) ((size_t)(report_len)*16 + 64 * 1024)

static const struct plist_json_limits report_limits = {MDM_MAX_DEPTH, REPORT_MAX_NODES};

enum answers_kind { ANSWER_ONE, ANSWER_ALL, CANCEL_ONE, CANCEL_ALL };

struct answers_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    enum answers_kind kind;
    char *udid; /* NULL for the fleet-wide requests */
    char *command_uuid;
};

static struct answers_request *request_new(struct vouchd *srv, struct evhttp_request *req,
                                           enum answers_kind kind, char *udid, char *command_uuid)
{
    struct answers_request *ar = calloc(1, sizeof(*ar));
    if (ar == NULL)
        log_fatal("out of memory");
    ar->srv = srv;
    ar->req = req;
    ar->kind = kind;
    ar->udid = udid;
    ar->command_uuid = command_uuid;
    srv->inflight++;
    return ar;
}

static void request_free(struct answers_request *ar)
{
    ar->srv->inflight--;
    free(ar->udid);
    free(ar->command_uuid);
    free(ar);
}

/* A percent-encoded path segment as a fresh id of at most max_len bytes, or NULL. */
static char *decode_segment(const char *segment, size_t len, size_t max_len)
{
    if (len == 0 || len > 3 * max_len)
        return NULL;
    char *raw = strndup(segment, len);
    if (raw == NULL)
        log_fatal("out of memory");
    size_t out_len = 0;
    char *id = evhttp_uridecode(raw, 0, &out_len);
    free(raw);
    bool ok = id != NULL && out_len > 0 && out_len <= max_len && mdm_utf8_valid(id, out_len);
    for (size_t i = 0; ok && i < out_len; i++)
        ok = (unsigned char)id[i] >= 0x20 && id[i] != 0x7f;
    if (!ok) {
        free(id);
        return NULL;
    }
    return id;
}

/* An attestation answer is stored without its certificates, its DevicePropertiesAttestation
 * left an empty array (vouch_report): the row's chain goes back there, so the answer reads as
 * the device sent it. A report stored whole (an older one, or one whose verdict was not
 * recorded) has no empty array there and is left as it is. */
static void put_back_chain(plist_t root, const struct db_command_row *row)
{
    plist_t responses = row->chain != NULL && PLIST_IS_DICT(root)
                            ? plist_dict_get_item(root, "QueryResponses")
                            : NULL;
    plist_t certs = responses != NULL && PLIST_IS_DICT(responses)
                        ? plist_dict_get_item(responses, "DevicePropertiesAttestation")
                        : NULL;
    if (certs == NULL || !PLIST_IS_ARRAY(certs) || plist_array_get_size(certs) != 0)
        return;
    for (size_t off = 0; off + 4 <= row->chain_len;) {
        const uint8_t *p = row->chain + off;
        size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (len > row->chain_len - off - 4)
            break;
        plist_array_append_item(certs, plist_new_data((const char *)p + 4, len));
        off += 4 + len;
    }
}

/* The report as JSON into w, or null when it cannot be read (logged: vouchd stored it). Also
 * the ErrorChain into *chain_text when wanted and present (the caller frees it). */
static bool write_report(struct json_writer *w, const struct db_command_row *row, char **chain)
{
    *chain = NULL;
    if (row->report == NULL)
        return json_write_null(w);
    plist_t root = NULL;
    enum plist_json_error err;
    if (row->report_len > 8 && row->report_len <= UINT32_MAX &&
        memcmp(row->report, "bplist00", 8) == 0) {
        /* An attestation answer as vouchd stored it (mdm_message_report_without_attestation):
         * a binary plist it wrote itself from an XML body that passed mdm_xml_scan. */
        plist_from_bin((const char *)row->report, (uint32_t)row->report_len, &root);
        err = root != NULL ? PLIST_JSON_OK : PLIST_JSON_MALFORMED;
    } else {
        err =
            plist_json_parse_xml((const char *)row->report, row->report_len, MDM_MAX_DEPTH, &root);
    }
    if (err == PLIST_JSON_OK)
        put_back_chain(root, row);
    struct json_writer *part =
        err == PLIST_JSON_OK ? json_writer_new(ANSWER_JSON_MAX(row->report_len + row->chain_len), 0)
                             : NULL;
    const char *text;
    size_t len;
    if (part != NULL)
        err = plist_json_write(part, root, &report_limits);
    bool ok = part != NULL && err == PLIST_JSON_OK && json_writer_finish(part, &text, &len);
    if (ok)
        ok = json_write_raw(w, text, len);
    else {
        log_warn("the report of device %s to command %s cannot be shown as JSON: %s",
                 row->udid ? row->udid : "?", row->command_uuid ? row->command_uuid : "?",
                 plist_json_strerror(err));
        ok = json_write_null(w);
    }
    plist_t errors = root != NULL && PLIST_IS_DICT(root) && row->status != NULL &&
                             strcmp(row->status, "Error") == 0
                         ? plist_dict_get_item(root, "ErrorChain")
                         : NULL;
    if (ok && part != NULL && errors != NULL && PLIST_IS_ARRAY(errors)) {
        json_writer_reset(part);
        if (plist_json_write(part, errors, &report_limits) == PLIST_JSON_OK &&
            json_writer_finish(part, &text, &len) && (*chain = strndup(text, len)) == NULL)
            log_fatal("out of memory");
    }
    json_writer_free(part);
    plist_free(root);
    return ok;
}

/* The "command answer" object of one row (docs/api.md). */
static bool write_answer(struct json_writer *w, const struct db_command_row *row)
{
    char *end;
    long not_now = row->not_now_count != NULL ? strtol(row->not_now_count, &end, 10) : 0;
    char *chain = NULL;
    bool ok = json_write_begin_object(w) && json_write_key(w, "udid") &&
              json_write_string_or_null(w, row->udid) && json_write_key(w, "command_uuid") &&
              json_write_string_or_null(w, row->command_uuid) &&
              json_write_key(w, "request_type") &&
              json_write_string_or_null(w, row->request_type) && json_write_key(w, "status") &&
              json_write_string_or_null(w, row->status) && json_write_key(w, "queued_at") &&
              json_write_string_or_null(w, row->queued_at) && json_write_key(w, "result_at") &&
              json_write_string_or_null(w, row->result_at) && json_write_key(w, "not_now_count") &&
              json_write_int64(w, not_now) && json_write_key(w, "report") &&
              write_report(w, row, &chain) && json_write_key(w, "error_chain");
    ok = ok && (chain != NULL ? json_write_raw(w, chain, strlen(chain)) : json_write_null(w));
    free(chain);
    return ok && json_write_end_object(w);
}

static void reply_writer(struct answers_request *ar, struct json_writer *w, bool ok)
{
    const char *text;
    size_t len;
    if (ok && json_writer_finish(w, &text, &len)) {
        http_reply(ar->req, EP_ADMIN_COMMANDS, 200, "application/json", text, len);
    } else {
        log_error("command answers: cannot write the answer: %s",
                  w != NULL ? json_write_strerror(json_writer_error(w)) : "out of memory");
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 500, "internal error");
    }
    json_writer_free(w);
}

/* An unavailable database (503) or a failed query (500): replied here, true. */
static bool reply_db_failure(struct answers_request *ar, enum db_outcome outcome,
                             const PGresult *res)
{
    if (outcome == DB_OK)
        return false;
    if (outcome == DB_UNAVAILABLE || outcome == DB_OVERLOADED) {
        metrics_count_rejection("database_unavailable");
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 503, "the database is not available");
    } else {
        log_error("command answers: %s", res != NULL ? PQresultErrorMessage(res) : "no answer");
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 500, "internal error");
    }
    return true;
}

static void answer_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct answers_request *ar = arg;
    struct db_command_row row;
    if (reply_db_failure(ar, outcome, res)) {
    } else if (PQntuples(res) == 0) {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 404, "no such command for this device");
    } else if (!db_decode_command_row(res, 0, &row)) {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 500, "internal error");
    } else {
        struct json_writer *w = json_writer_new(ANSWER_JSON_MAX(row.report_len + row.chain_len), 0);
        reply_writer(ar, w, w != NULL && write_answer(w, &row));
    }
    request_free(ar);
}

static void answers_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct answers_request *ar = arg;
    struct db_command_row head, row;
    if (reply_db_failure(ar, outcome, res)) {
        request_free(ar);
        return;
    }
    int rows = PQntuples(res);
    if (rows == 0) {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 404, "unknown command");
        request_free(ar);
        return;
    }
    size_t reports = 0;
    bool ok = db_decode_command_row(res, 0, &head) && head.udid == NULL;
    for (int i = 1; ok && i < rows; i++) {
        ok = db_decode_command_row(res, i, &row);
        reports += row.report_len + row.chain_len;
    }
    struct json_writer *w =
        ok ? json_writer_new(ANSWER_JSON_MAX(reports) + (size_t)rows * 2048, 0) : NULL;
    ok = w != NULL && json_write_begin_object(w) && json_write_key(w, "command_uuid") &&
         json_write_string(w, ar->command_uuid) && json_write_key(w, "request_type") &&
         json_write_string_or_null(w, head.request_type) && json_write_key(w, "created_at") &&
         json_write_string_or_null(w, head.created_at) && json_write_key(w, "devices") &&
         json_write_begin_array(w);
    for (int i = 1; ok && i < rows; i++)
        ok = db_decode_command_row(res, i, &row) && write_answer(w, &row);
    ok = ok && json_write_end_array(w) && json_write_key(w, "truncated") &&
         json_write_bool(w, head.truncated) && json_write_end_object(w);
    reply_writer(ar, w, ok);
    request_free(ar);
}

static void cancel_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct answers_request *ar = arg;
    size_t len;
    const char *text = NULL;
    if (reply_db_failure(ar, outcome, res)) {
        request_free(ar);
        return;
    }
    if (!db_decode_text(res, &text, &len)) {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 500, "internal error");
        request_free(ar);
        return;
    }
    struct json_writer *w = json_writer_new(4096, 0);
    bool ok = w != NULL && json_write_begin_object(w);
    if (ar->kind == CANCEL_ONE && text != NULL && strcmp(text, "answered") == 0) {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 409,
                              "the device has already answered this command");
    } else if (ar->kind == CANCEL_ONE && text != NULL && strcmp(text, "canceled") == 0) {
        log_info("canceled command %s for device %s", ar->command_uuid, ar->udid);
        reply_writer(ar, w,
                     ok && json_write_key(w, "udid") && json_write_string(w, ar->udid) &&
                         json_write_key(w, "command_uuid") &&
                         json_write_string(w, ar->command_uuid) && json_write_key(w, "canceled") &&
                         json_write_bool(w, true) && json_write_end_object(w));
        w = NULL;
    } else if (ar->kind == CANCEL_ALL && text != NULL) {
        char *end;
        long n = strtol(text, &end, 10);
        log_info("canceled command %s for %ld device(s)", ar->command_uuid, n);
        reply_writer(ar, w,
                     ok && *end == '\0' && json_write_key(w, "command_uuid") &&
                         json_write_string(w, ar->command_uuid) && json_write_key(w, "canceled") &&
                         json_write_int64(w, n) && json_write_end_object(w));
        w = NULL;
    } else {
        http_reply_json_error(ar->req, EP_ADMIN_COMMANDS, 404,
                              ar->kind == CANCEL_ONE ? "no such command for this device"
                                                     : "unknown command");
    }
    json_writer_free(w);
    request_free(ar);
}

/* Starts the request for udid (NULL: every device) and command_uuid, both taken over. */
static void start(struct vouchd *srv, struct evhttp_request *req, char *udid, char *command_uuid,
                  const char *actor)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_DELETE) {
        free(udid);
        free(command_uuid);
        http_reply_json_error(req, EP_ADMIN_COMMANDS, 405, "use GET or DELETE");
        return;
    }
    bool get = method == EVHTTP_REQ_GET;
    enum answers_kind kind =
        udid != NULL ? (get ? ANSWER_ONE : CANCEL_ONE) : (get ? ANSWER_ALL : CANCEL_ALL);
    struct answers_request *ar = request_new(srv, req, kind, udid, command_uuid);
    switch (kind) {
    case ANSWER_ONE:
        db_command_answer(srv->db, udid, command_uuid, answer_done, ar);
        break;
    case ANSWER_ALL:
        db_command_answers(srv->db, command_uuid, DEVICES_MAX, FLEET_REPORT_BYTES, answers_done,
                           ar);
        break;
    case CANCEL_ONE:
        db_command_cancel(srv->db, udid, command_uuid, actor, cancel_done, ar);
        break;
    case CANCEL_ALL:
        db_command_cancel_all(srv->db, command_uuid, actor, cancel_done, ar);
        break;
    }
}

bool command_answers_handle(struct vouchd *srv, struct evhttp_request *req, const char *path,
                            const char *actor)
{
    static const char devices[] = "/v1/devices/", commands[] = "/v1/commands/";
    const char *uuid_segment;
    char *udid = NULL;
    if (strncmp(path, commands, sizeof(commands) - 1) == 0) {
        uuid_segment = path + sizeof(commands) - 1;
    } else if (strncmp(path, devices, sizeof(devices) - 1) == 0) {
        /* "/v1/devices/{udid}/commands/{uuid}"; anything shorter is admin.c's. */
        const char *udid_segment = path + sizeof(devices) - 1;
        size_t udid_len = strcspn(udid_segment, "/");
        if (strncmp(udid_segment + udid_len, "/commands/", 10) != 0)
            return false;
        uuid_segment = udid_segment + udid_len + 10;
        if ((udid = decode_segment(udid_segment, udid_len, MDM_MAX_ID_LEN)) == NULL) {
            http_reply_json_error(req, EP_ADMIN_COMMANDS, 400, "bad device id in the path");
            return true;
        }
    } else {
        return false;
    }
    /* No such path below a command: an empty or a further segment is a 404. */
    size_t uuid_len = strlen(uuid_segment);
    bool no_such_path = uuid_len == 0 || strchr(uuid_segment, '/') != NULL;
    char *command_uuid =
        no_such_path ? NULL : decode_segment(uuid_segment, uuid_len, COMMAND_MAX_UUID);
    if (command_uuid == NULL) {
        free(udid);
        http_reply_json_error(req, EP_ADMIN_COMMANDS, no_such_path ? 404 : 400,
                              no_such_path ? "not found" : "bad command UUID in the path");
        return true;
    }
    start(srv, req, udid, command_uuid, actor);
    return true;
}
