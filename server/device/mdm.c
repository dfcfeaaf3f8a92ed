#include "mdm.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "answer_batch.h"
#include "attest.h"
#include "attest_json.h"
#include "command.h"
#include "config.h"
#include "device_models.h"
#include "http.h"
#include "identity.h"
#include "json.h"
#include "log.h"
#include "mdm_message.h"
#include "push.h"
#include "queries.h"
#include "vouchd.h"

#define CONTENT_TYPE_CHECKIN "application/x-apple-aspen-mdm-checkin"
#define CONTENT_TYPE_REPORT "application/x-apple-aspen-mdm"

struct device_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    enum metrics_endpoint ep;
    struct mdm_message msg;
    struct device_identity identity;
    struct db_cert cert;
    const char *body; /* the request's body, alive until the reply */
    size_t body_len;
    char *url_params; /* NanoMDM's url_params: the query of the URL used, as JSON; or NULL */
    bool verdict_sent;
    struct db_answer answer; /* a command's answer, while answer_batch holds it */
    bool answer_slot;        /* its db_report holds one of answer_batch's slots */
};

_Static_assert(MDM_MAX_ATTEST_CERTS == ATTEST_MAX_CERTS, "attestation bounds differ");

/* Refuses a request: counter, log line, reply. */
static void refuse(struct vouchd *srv, struct evhttp_request *req, enum metrics_endpoint ep,
                   int status, const char *reason, const char *udid, const char *detail)
{
    char peer[80], id[MDM_MAX_ID_LEN + 1];
    metrics_count_rejection(reason);
    log_warn("refused %s from %s%s%s: %s (%d)%s%s", metrics_endpoint_name(ep),
             http_peer(req, peer, sizeof(peer)), udid ? " udid=" : "",
             udid ? log_sanitize(udid, strlen(udid), id, sizeof(id)) : "", reason, status,
             detail ? ": " : "", detail ? detail : "");
    http_reply_text(req, ep, status, reason);
}

/* The media type of a Content-Type header, without parameters, compared case-insensitively. */
static bool media_type_is(const char *header, const char *want)
{
    size_t len = strcspn(header, ";");
    while (len > 0 && (header[len - 1] == ' ' || header[len - 1] == '\t'))
        len--;
    return len == strlen(want) && strncasecmp(header, want, len) == 0;
}

/* Which channel a path serves: check-ins only, reports only, or both on one URL. */
static bool takes_checkins(enum metrics_endpoint ep)
{
    return ep != EP_MDM_CONNECT;
}

static bool takes_reports(enum metrics_endpoint ep)
{
    return ep == EP_MDM_CONNECT || ep == EP_MDM || ep == EP_MDM_PATH;
}

/* A Content-Type that names no MDM channel, which some clients send (or none at all): on a URL
 * that takes both, the body says which (MDM_CHANNEL_EITHER). */
static bool generic_type(const char *type)
{
    return type == NULL || media_type_is(type, "application/xml") ||
           media_type_is(type, "text/xml") || media_type_is(type, "application/octet-stream");
}

static bool pick_channel(struct evhttp_request *req, enum metrics_endpoint ep,
                         enum mdm_channel *channel)
{
    const char *type = http_header(req, "Content-Type");
    bool checkin = type != NULL && media_type_is(type, CONTENT_TYPE_CHECKIN);
    bool report = type != NULL && media_type_is(type, CONTENT_TYPE_REPORT);
    if (takes_checkins(ep) && takes_reports(ep) && !checkin && !report && generic_type(type)) {
        *channel = MDM_CHANNEL_EITHER;
        return true;
    }
    if ((checkin && !takes_checkins(ep)) || (report && !takes_reports(ep)) || (!checkin && !report))
        return false;
    *channel = checkin ? MDM_CHANNEL_CHECKIN : MDM_CHANNEL_REPORT;
    return true;
}

static enum identity_error prove_identity(struct vouchd *srv, struct evhttp_request *req,
                                          const void *body, size_t len, struct device_identity *id)
{
    const char *value = NULL, *signature = NULL;
    if (srv->cfg->cert_header != NULL) {
        if (!http_header_once(req, srv->cfg->cert_header, &value))
            return IDENTITY_BAD_ENCODING;
        /* A proxy may send the header empty when the client showed no certificate. */
        if (value != NULL && value[0] != '\0')
            return identity_from_cert_header(srv->identity, value, strlen(value), id);
    }
    if (!http_header_once(req, "Mdm-Signature", &signature))
        return IDENTITY_BAD_ENCODING;
    return identity_from_signature(srv->identity, signature, signature ? strlen(signature) : 0,
                                   body, len, id);
}

static void device_request_free(struct device_request *dr)
{
    dr->srv->inflight--;
    mdm_message_clear(&dr->msg);
    free(dr->url_params);
    free(dr);
}

/* Maps what the database could not do to a reply; returns true if it replied. */
static bool reply_db_failure(struct device_request *dr, enum db_outcome outcome)
{
    switch (outcome) {
    case DB_OK:
        return false;
    case DB_UNAVAILABLE:
    case DB_OVERLOADED:
        refuse(dr->srv, dr->req, dr->ep, 503,
               outcome == DB_UNAVAILABLE ? "database_unavailable" : "overloaded", dr->msg.udid,
               NULL);
        return true;
    case DB_QUERY_ERROR:
        break;
    }
    metrics_count_rejection("internal_error");
    http_reply_text(dr->req, dr->ep, 500, "internal error");
    return true;
}

static bool reply_verdict_refusal(struct device_request *dr, enum db_verdict verdict)
{
    if (verdict == DB_VERDICT_OK)
        return false;
    if (verdict == DB_VERDICT_BAD_RESULT) {
        log_error("unexpected answer from the database for %s", metrics_endpoint_name(dr->ep));
        metrics_count_rejection("internal_error");
        http_reply_text(dr->req, dr->ep, 500, "internal error");
        return true;
    }
    refuse(dr->srv, dr->req, dr->ep, 403, db_verdict_name(verdict), dr->msg.udid, NULL);
    return true;
}

static void checkin_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct device_request *dr = arg;
    enum db_verdict verdict = outcome == DB_OK ? db_decode_verdict(res) : DB_VERDICT_BAD_RESULT;
    if (verdict == DB_VERDICT_OK_QUEUED) {
        /* The enrollment's attestation request is queued: wake the device for it. */
        verdict = DB_VERDICT_OK;
        if (dr->srv->push != NULL)
            push_devices(dr->srv->push, &dr->msg.udid, 1, NULL, NULL);
    }
    if (!reply_db_failure(dr, outcome) && !reply_verdict_refusal(dr, verdict)) {
        char id[MDM_MAX_ID_LEN + 1];
        log_debug("%s from %s", dr->msg.message_type,
                  log_sanitize(dr->msg.udid, strlen(dr->msg.udid), id, sizeof(id)));
        http_reply(dr->req, dr->ep, 200, NULL, NULL, 0);
    }
    device_request_free(dr);
}

static void report_done(void *arg, enum db_outcome outcome, const PGresult *res);

/* The report answers a pending attestation request: verify it, then record the report with its
 * verdict in the same transaction as the next command is picked. */
static void verify_attestation(struct device_request *dr, const struct db_report_outcome *ctx)
{
    const struct mdm_message *m = &dr->msg;
    /* The newest of this generation's older nonces: a cached answer is at most 7 days old,
     * and the scheduler asks at most a few times a week. */
    const uint8_t *older[256];
    size_t older_lens[256], older_count = 0;
    time_t older_asked[256];
    for (size_t off = 0; off + COMMAND_NONCE_BYTES <= ctx->older_nonces_len &&
                         older_count < sizeof(older) / sizeof(older[0]);
         off += COMMAND_NONCE_BYTES) {
        older[older_count] = ctx->older_nonces + off;
        older_lens[older_count] = COMMAND_NONCE_BYTES;
        older_asked[older_count] = (time_t)db_int64_be(ctx->older_requested_at + 8 * older_count);
        older_count++;
    }
    struct attest_json_extra extra = {
        .certs = m->attest_certs,
        .cert_lens = m->attest_cert_lens,
        .cert_count = m->attest_cert_count,
        .reported_os_version = m->reported_os_version,
        .reported_build_version = m->reported_build_version,
        .pack_udid = m->udid, /* vouch_report's p_udid below */
    };
    struct json_writer *w = json_writer_new(256 * 1024, 0);
    bool ok = w != NULL;
    const char *os = m->reported_os_version ? m->reported_os_version : ctx->enrolled_os_version;
    if (ok && m->attestation == MDM_ATTESTATION_ABSENT &&
        (ctx->generation_verified || device_model_can_attest(ctx->product_name, os))) {
        /* It attested before, or its hardware can: silence is not "unsupported". */
        const struct attest_verdict withheld = {
            .status = ATTEST_FAILED,
            .reason = ATTEST_REASON_ATTESTATION_WITHHELD,
        };
        ok = attest_json_write_verdict(w, &withheld, &extra);
        metrics_count_attestation(attest_reason_name(withheld.reason));
        char id[MDM_MAX_ID_LEN + 1];
        log_warn("%s withheld its attestation",
                 log_sanitize(m->udid, strlen(m->udid), id, sizeof(id)));
    } else if (ok && m->attestation == MDM_ATTESTATION_ABSENT) {
        ok = attest_json_write_unsupported(w, &extra);
        metrics_count_attestation("unsupported");
    } else if (ok) {
        const struct attest_input in = {
            .certs = m->attest_certs,
            .cert_lens = m->attest_cert_lens,
            .cert_count = m->attestation == MDM_ATTESTATION_PRESENT ? m->attest_cert_count : 0,
            .request_nonce = ctx->request_nonce,
            .request_nonce_len = ctx->request_nonce_len,
            .older_nonces = older,
            .older_nonce_lens = older_lens,
            .older_requested_at = older_asked,
            .require_fresh =
                ctx->request_reason != NULL && strcmp(ctx->request_reason, "os_change") == 0,
            .older_nonce_count = older_count,
            .expected_udid = m->udid,
            .expected_serial = ctx->enrolled_serial,
            .reported_os_version = os,
            .verify_time = (time_t)ctx->clock,
        };
        struct attest_verdict verdict;
        attest_verify(dr->srv->attest, &in, &verdict);
        extra.checked = &in;
        ok = attest_json_write_verdict(w, &verdict, &extra);
        const char *reason = attest_reason_name(verdict.reason);
        metrics_count_attestation(reason ? reason : attest_status_name(verdict.status));
        if (verdict.status == ATTEST_FAILED) {
            char id[MDM_MAX_ID_LEN + 1];
            log_warn("attestation of %s failed: %s",
                     log_sanitize(m->udid, strlen(m->udid), id, sizeof(id)), reason);
        }
    }
    const char *text = NULL;
    ok = ok && json_writer_finish(w, &text, NULL);
    if (!ok) {
        log_error("cannot record an attestation verdict");
        metrics_count_rejection("internal_error");
        http_reply_text(dr->req, dr->ep, 500, "internal error");
        json_writer_free(w);
        device_request_free(dr);
        return;
    }
    dr->verdict_sent = true;
    /* Stored without its certificates, which the attestation row keeps (and the admin API puts
     * back): the chain is most of an answer's bytes. */
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    if (!mdm_message_report_without_attestation(m, &stored, &stored_len))
        stored = NULL;
    /* Better still, nothing at all when the attestation row can give the answer back whole:
     * then only its shape goes (its keys and strings, without what the row holds). */
    char **shape = NULL;
    size_t shape_count = 0;
    char *answer = NULL;
    if (command_answer_shape(m->plist, m->udid, m->command_uuid, m->status_text,
                             m->attestation == MDM_ATTESTATION_PRESENT, &shape, &shape_count)) {
        answer = command_answer_shape_pack(shape, shape_count, m->udid);
        command_answer_shape_free(shape, shape_count);
    }
    const struct db_report_body body = {
        (const uint8_t *)dr->body, dr->body_len, stored, stored_len, answer, dr->url_params};
    db_report(dr->srv->db, m->udid, &dr->cert, m->status_text, m->command_uuid, &body,
              m->reported_os_version, m->reported_build_version, text, report_done, dr);
    free(answer);
    free(stored);
    json_writer_free(w);
}

/* Replies with the next command: its stored body, or an attestation request's, built again
 * from its CommandUUID and nonce. */
static void reply_next_command(struct device_request *dr, const struct db_report_outcome *result)
{
    if (result->next_body != NULL) {
        http_reply(dr->req, dr->ep, 200, "application/xml", result->next_body,
                   result->next_body_len);
        return;
    }
    if (result->next_nonce == NULL) {
        http_reply(dr->req, dr->ep, 200, NULL, NULL, 0); /* nothing queued: ends the session */
        return;
    }
    struct prepared_command command;
    if (!command_attestation_body(result->next_command_uuid, result->next_nonce,
                                  result->next_nonce_len, &command)) {
        log_error("cannot build the attestation request %s", result->next_command_uuid);
        metrics_count_rejection("internal_error");
        http_reply_text(dr->req, dr->ep, 500, "internal error");
        return;
    }
    http_reply(dr->req, dr->ep, 200, "application/xml", command.xml, command.xml_len);
    command_clear(&command);
}

static void report_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct device_request *dr = arg;
    struct db_report_outcome result;
    if (dr->answer_slot) {
        dr->answer_slot = false;
        answer_batch_release(dr->srv->answers);
    }
    if (reply_db_failure(dr, outcome))
        goto out;
    if (!db_decode_report(res, &result)) {
        (void)reply_verdict_refusal(dr, DB_VERDICT_BAD_RESULT);
        goto out;
    }
    if (result.attestation_context) {
        if (dr->verdict_sent) {
            (void)reply_verdict_refusal(dr, DB_VERDICT_BAD_RESULT);
            goto out;
        }
        verify_attestation(dr, &result);
        return;
    }
    if (reply_verdict_refusal(dr, result.verdict))
        goto out;
    if (dr->msg.command_uuid != NULL && dr->msg.status != MDM_STATUS_NOT_NOW &&
        !result.result_stored)
        metrics_count_report("repeated");
    reply_next_command(dr, &result);
out:
    device_request_free(dr);
}

static void start_checkin(struct device_request *dr)
{
    struct vouchd *srv = dr->srv;
    const struct mdm_message *m = &dr->msg;
    metrics_count_checkin(m->message_type);
    switch (m->kind) {
    case MDM_AUTHENTICATE: {
        const struct db_device_facts facts = {
            .udid = m->udid,
            .topic = m->topic,
            .serial_number = m->serial_number,
            .model = m->model,
            .model_name = m->model_name,
            .product_name = m->product_name,
            .os_version = m->os_version,
            .build_version = m->build_version,
            .device_name = m->device_name,
            .imei = m->imei,
            .meid = m->meid,
            .raw = (const uint8_t *)dr->body,
            .raw_len = dr->body_len,
            .reenroll_refuse = srv->cfg->reenroll_refuse,
            .url_params = dr->url_params,
        };
        db_authenticate(srv->db, &facts, &dr->cert, checkin_done, dr);
        return;
    }
    case MDM_TOKEN_UPDATE: {
        /* Made every time, queued only by an enrollment's first TokenUpdate. */
        char uuid[37];
        uint8_t nonce[COMMAND_NONCE_BYTES];
        bool have_request = command_new_attestation(uuid, nonce);
        const struct db_attest_request attest = {uuid, nonce, sizeof(nonce)};
        if (!have_request)
            log_error("cannot build an attestation request: %s is not asked", m->udid);
        db_token_update(srv->db, m->udid, &dr->cert, m->topic, m->token, m->token_len,
                        m->push_magic, m->unlock_token, m->unlock_token_len,
                        m->awaiting_configuration, have_request ? &attest : NULL,
                        (const uint8_t *)dr->body, dr->body_len, dr->url_params, checkin_done, dr);
        return;
    }
    case MDM_CHECKOUT:
        db_checkout(srv->db, m->udid, &dr->cert, (const uint8_t *)dr->body, dr->body_len,
                    dr->url_params, checkin_done, dr);
        return;
    case MDM_CHECKIN_UNSUPPORTED:
    case MDM_REPORT:
        break;
    }
    log_fatal("start_checkin: message kind %d", (int)m->kind);
}

/* The check-in types vouchd does not serve (docs/protocol.md, "Check-in types vouchd does not
 * serve"): each gets the answer the MDM protocol gives a device whose server lacks the feature,
 * after the identity check every check-in passes (and, for an enrolled device, NanoMDM's
 * mdm.<MessageType> web-hook event). */
static const char empty_dict_plist[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                                       "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                                       "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                                       "<plist version=\"1.0\">\n<dict/>\n</plist>\n";

static void unsupported_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct device_request *dr = arg;
    const char *type = dr->msg.message_type;
    enum db_verdict verdict = outcome == DB_OK ? db_decode_verdict(res) : DB_VERDICT_BAD_RESULT;
    if (reply_db_failure(dr, outcome) || reply_verdict_refusal(dr, verdict)) {
        device_request_free(dr);
        return;
    }
    char id[MDM_MAX_ID_LEN + 1];
    log_sanitize(dr->msg.udid, strlen(dr->msg.udid), id, sizeof(id));
    if (strcmp(type, "GetBootstrapToken") == 0) {
        /* Apple: without a bootstrap token, a success that omits BootstrapToken. */
        log_info("%s from %s: no bootstrap token escrowed here (200, none)", type, id);
        http_reply(dr->req, dr->ep, 200, "application/xml", empty_dict_plist,
                   sizeof(empty_dict_plist) - 1);
    } else if (strcmp(type, "UserAuthenticate") == 0) {
        /* Apple: 410 tells the device the server has no user channel: it creates none. */
        refuse(dr->srv, dr->req, dr->ep, 410, "unsupported_message_type", dr->msg.udid, type);
    } else {
        /* SetBootstrapToken, DeclarativeManagement, GetToken, ReturnToService,
         * SetAwaitingConfiguration: a refusal leaves the device as it is (no token believed
         * escrowed, no declaration removed); it tries again later. */
        refuse(dr->srv, dr->req, dr->ep, 400, "unsupported_message_type", dr->msg.udid, type);
    }
    device_request_free(dr);
}

static void start_unsupported(struct device_request *dr)
{
    const struct mdm_message *m = &dr->msg;
    metrics_count_checkin(m->message_type);
    if (m->udid == NULL || m->udid[0] == '\0') {
        refuse(dr->srv, dr->req, dr->ep, 400, mdm_parse_error_name(MDM_PARSE_MISSING_FIELD), NULL,
               "UDID");
        device_request_free(dr);
        return;
    }
    db_unsupported_checkin(dr->srv->db, m->udid, &dr->cert, m->message_type,
                           (const uint8_t *)dr->body, dr->body_len, dr->url_params,
                           unsupported_done, dr);
}

static void send_report(struct device_request *dr)
{
    const struct mdm_message *m = &dr->msg;
    const struct db_report_body body = {
        (const uint8_t *)dr->body, dr->body_len, NULL, 0, NULL, dr->url_params};
    db_report(dr->srv->db, m->udid, &dr->cert, m->status_text, m->command_uuid, &body,
              m->reported_os_version, m->reported_build_version, NULL, report_done, dr);
}

/* The end of an answer answer_batch held (answer_batch.h). */
static void answer_batched(void *arg, enum db_outcome outcome,
                           const struct db_report_outcome *result, bool slot)
{
    struct device_request *dr = arg;
    if (result != NULL) {
        if (!result->result_stored)
            metrics_count_report("repeated");
        reply_next_command(dr, result);
        device_request_free(dr);
        return;
    }
    if (outcome != DB_OK) { /* vouchd is stopping */
        (void)reply_db_failure(dr, outcome);
        device_request_free(dr);
        return;
    }
    dr->answer_slot = slot;
    send_report(dr); /* vouch_report's general way decides */
}

/* A result that vouch_report's first fast way may take (db/functions/50_commands.sql): no
 * OS version (a DeviceInformation's answer), a status that ends the command. */
static bool batchable(const struct mdm_message *m)
{
    return m->command_uuid != NULL && m->reported_os_version == NULL &&
           (m->status == MDM_STATUS_ACKNOWLEDGED || m->status == MDM_STATUS_ERROR ||
            m->status == MDM_STATUS_COMMAND_FORMAT_ERROR);
}

static void start_report(struct device_request *dr)
{
    const struct mdm_message *m = &dr->msg;
    metrics_count_report(m->status_text);
    if (dr->srv->answers != NULL && batchable(m)) {
        dr->answer = (struct db_answer){m->udid, &dr->cert, m->status_text, m->command_uuid,
                                        (const uint8_t *)dr->body, dr->body_len};
        if (answer_batch_add(dr->srv->answers, &dr->answer, answer_batched, dr, &dr->answer_slot))
            return;
    }
    send_report(dr);
}

static void handle_request(struct vouchd *srv, struct evhttp_request *req, enum metrics_endpoint ep)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_PUT) {
        refuse(srv, req, ep, 405, "method_not_allowed", NULL, NULL);
        return;
    }
    enum mdm_channel channel;
    if (!pick_channel(req, ep, &channel)) {
        refuse(srv, req, ep, 415, "wrong_content_type", NULL, NULL);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        refuse(srv, req, ep, 400, "empty_body", NULL, NULL);
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);

    struct device_request *dr = calloc(1, sizeof(*dr));
    if (dr == NULL) {
        http_reply_text(req, ep, 503, "out of memory");
        return;
    }
    dr->srv = srv;
    dr->req = req;
    dr->ep = ep;
    dr->body = body;
    dr->body_len = len;
    srv->inflight++;

    /* Who is speaking comes first: nothing from an unproven sender reaches the parser's
     * deeper checks or the database. */
    enum identity_error id_err = prove_identity(srv, req, body, len, &dr->identity);
    if (id_err != IDENTITY_OK) {
        refuse(srv, req, ep, 403, identity_error_name(id_err), NULL, NULL);
        device_request_free(dr);
        return;
    }
    memcpy(dr->cert.sha256, dr->identity.sha256, sizeof(dr->cert.sha256));
    dr->cert.not_after = dr->identity.not_after[0] ? dr->identity.not_after : NULL;

    const char *field = NULL;
    enum mdm_parse_error perr = mdm_message_parse(body, len, channel, &dr->msg, &field);
    if (perr != MDM_PARSE_OK) {
        refuse(srv, req, ep, 400, mdm_parse_error_name(perr), NULL, field);
        device_request_free(dr);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    dr->url_params = mdm_url_params_json(uri ? evhttp_uri_get_query(uri) : NULL);
    if (dr->msg.kind == MDM_CHECKIN_UNSUPPORTED) {
        start_unsupported(dr);
        return;
    }
    if (dr->msg.kind == MDM_REPORT)
        start_report(dr);
    else
        start_checkin(dr);
}

static void handle_checkin(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_MDM_CHECKIN);
}

static void handle_connect(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_MDM_CONNECT);
}

/* One URL for both, as NanoMDM has it: the Content-Type says which, else the body. */
static void handle_either(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_MDM);
}

/* NanoMDM's check-in URL. */
static void handle_nano_checkin(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_CHECKIN);
}

static void handle_mdm_path(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_MDM_PATH);
}

static void handle_checkin_path(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    handle_request(srv, req, EP_CHECKIN_PATH);
}

void mdm_register_routes(const struct config *cfg)
{
    http_route("/mdm/checkin", handle_checkin);
    http_route("/mdm/connect", handle_connect);
    http_route("/mdm", handle_either);
    http_route("/checkin", handle_nano_checkin);
    /* config_parse() refused paths of other routes, and one path for both. */
    if (cfg->mdm_path != NULL && !config_is_device_path(cfg->mdm_path))
        http_route(cfg->mdm_path, handle_mdm_path);
    if (cfg->checkin_path != NULL && !config_is_device_path(cfg->checkin_path))
        http_route(cfg->checkin_path, handle_checkin_path);
}
