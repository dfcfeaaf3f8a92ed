#include "migration.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <plist/plist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "mdm_message.h"
#include "metrics.h"
#include "queries_migration.h"
#include "tokens.h"
#include "vouchd.h"

struct migration_request {
    struct vouchd *srv;
    struct evhttp_request *req;
    struct mdm_message msg;
};

/* The refusals of /migration, each counted as migration_REASON (a counter's label is a static
 * string): the reason is also the body. */
static const char *const refusals[][2] = {
    {"malformed", "migration_malformed"},
    {"missing_field", "migration_missing_field"},
    {"bad_field", "migration_bad_field"},
    {"unsupported_message_type", "migration_unsupported_message_type"},
    {"no_authenticate", "migration_no_authenticate"},
    {"already_enrolled", "migration_already_enrolled"},
    {"too_large", "migration_too_large"},
    {"binary_plist", "migration_binary_plist"},
    {"user_channel", "migration_user_channel"},
};

/* A binary plist's magic. Devices send check-ins as XML, NanoMDM keeps them as they came and
 * nano2nano sends them as it keeps them: a binary body is no captured check-in. It is refused
 * unparsed, because libplist 2.2's binary reader copies a shared object again at each reference
 * (a 1 KiB bplist can become a gigabyte), and this runs on the event loop. */
static const char bplist_magic[] = "bplist";

/* The keys of a user channel's check-in (MDM protocol: UserID, UserShortName, UserLongName on
 * macOS; EnrollmentUserID under User Enrollment). Vouch has no user channel: such a TokenUpdate
 * carries the user channel's token and PushMagic, never the device's. */
static const char *const user_channel_keys[] = {"UserID", "EnrollmentUserID", "UserShortName",
                                                "UserLongName"};

/* The first user-channel key of a parsed check-in's dict, or NULL. */
static const char *user_channel_key(const struct mdm_message *m)
{
    if (m->plist == NULL || plist_get_node_type((plist_t)m->plist) != PLIST_DICT)
        return NULL;
    for (size_t i = 0; i < sizeof(user_channel_keys) / sizeof(user_channel_keys[0]); i++) {
        if (plist_dict_get_item((plist_t)m->plist, user_channel_keys[i]) != NULL)
            return user_channel_keys[i];
    }
    return NULL;
}

/* A refusal: its counter, a log line, and the reason as the body (reason: one of refusals[], or
 * another static string counted as it is). */
static void refuse(struct evhttp_request *req, int status, const char *reason, const char *udid,
                   const char *detail)
{
    char peer[80], id[MDM_MAX_ID_LEN + 1];
    const char *counter = reason;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        if (strcmp(reason, refusals[i][0]) == 0) {
            reason = refusals[i][0];
            counter = refusals[i][1];
        }
    }
    metrics_count_rejection(counter);
    log_warn("refused a migration from %s%s%s: %s (%d)%s%s", http_peer(req, peer, sizeof(peer)),
             udid ? " udid=" : "", udid ? log_sanitize(udid, strlen(udid), id, sizeof(id)) : "",
             reason, status, detail ? ": " : "", detail ? detail : "");
    http_reply_text(req, EP_OTHER, status, reason);
}

static void migration_request_free(struct migration_request *mr)
{
    mr->srv->inflight--;
    mdm_message_clear(&mr->msg);
    free(mr);
}

static void migrate_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct migration_request *mr = arg;
    const char *text = NULL;
    size_t len = 0;
    if (outcome == DB_UNAVAILABLE || outcome == DB_OVERLOADED) {
        refuse(mr->req, 503, outcome == DB_UNAVAILABLE ? "database_unavailable" : "overloaded",
               mr->msg.udid, NULL);
    } else if (outcome != DB_OK || !db_decode_text(res, &text, &len) || text == NULL) {
        log_error("migration of %s: unexpected answer from the database", mr->msg.message_type);
        metrics_count_rejection("internal_error");
        http_reply_text(mr->req, EP_OTHER, 500, "internal error");
    } else if (strcmp(text, "ok") == 0 || strcmp(text, "unchanged") == 0) {
        char id[MDM_MAX_ID_LEN + 1];
        log_debug("migrated %s of %s%s", mr->msg.message_type,
                  log_sanitize(mr->msg.udid, strlen(mr->msg.udid), id, sizeof(id)),
                  text[0] == 'u' ? " (unchanged)" : "");
        http_reply(mr->req, EP_OTHER, 200, NULL, NULL, 0);
    } else if (strcmp(text, "no_authenticate") == 0 || strcmp(text, "already_enrolled") == 0) {
        refuse(mr->req, 409, text, mr->msg.udid, mr->msg.message_type);
    } else {
        log_error("migration: unexpected answer %s from the database", text);
        metrics_count_rejection("internal_error");
        http_reply_text(mr->req, EP_OTHER, 500, "internal error");
    }
    migration_request_free(mr);
}

/* The parser's refusals, in /migration's words (docs/api.md). */
static const char *parse_refusal(enum mdm_parse_error err)
{
    switch (err) {
    case MDM_PARSE_MISSING_FIELD:
        return "missing_field";
    case MDM_PARSE_BAD_FIELD:
        return "bad_field";
    case MDM_PARSE_UNKNOWN_TYPE:
        return "unsupported_message_type";
    default:
        return "malformed";
    }
}

/* An operator route: no Authorization at all is NanoMDM's 401 (nano2nano's own realm). */
static bool authorize(struct vouchd *srv, struct evhttp_request *req)
{
    if (http_header(req, "Authorization") == NULL) {
        char peer[80];
        metrics_count_rejection("migration_unauthorized");
        log_warn("refused a migration from %s: no credentials (401)",
                 http_peer(req, peer, sizeof(peer)));
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"nanomdm\"");
        http_reply(req, EP_OTHER, 401, "text/plain; charset=utf-8", "Unauthorized\n", 13);
        return false;
    }
    struct token_caller caller;
    if (!tokens_authorize(srv, req, &caller))
        return false;
    if (caller.scope != TOKEN_SCOPE_ADMIN) {
        char peer[80];
        metrics_count_rejection("admin_scope");
        log_warn("refused a migration from %s: token %s has scope %s, not admin",
                 http_peer(req, peer, sizeof(peer)), caller.name, token_scope_name(caller.scope));
        http_reply_text(req, EP_OTHER, 403, "admin_scope");
        return false;
    }
    tokens_audit(srv, req, &caller);
    return true;
}

static void handle_migration(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    (void)path;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_PUT && method != EVHTTP_REQ_POST) {
        /* As the admin API's: {"error": ...} */
        char peer[80];
        metrics_count_rejection("migration_method_not_allowed");
        log_warn("refused a migration from %s: method %s (405)", http_peer(req, peer, sizeof(peer)),
                 http_method_name(req));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "PUT, POST");
        http_reply_json_error(req, EP_OTHER, 405, "use PUT or POST");
        return;
    }
    if (!authorize(srv, req))
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len == 0) {
        refuse(req, 400, "malformed", NULL, "empty body");
        return;
    }
    if (len > srv->cfg->max_body_bytes) { /* the front refuses it first; never trust one place */
        refuse(req, 413, "too_large", NULL, NULL);
        return;
    }
    char magic[sizeof(bplist_magic) - 1];
    if (evbuffer_copyout(in, magic, sizeof(magic)) == (ev_ssize_t)sizeof(magic) &&
        memcmp(magic, bplist_magic, sizeof(magic)) == 0) {
        refuse(req, 400, "binary_plist", NULL, "send the check-in as XML, as the device sent it");
        return;
    }
    const char *body = (const char *)evbuffer_pullup(in, -1);
    struct migration_request *mr = calloc(1, sizeof(*mr));
    if (body == NULL || mr == NULL) {
        free(mr);
        http_reply_text(req, EP_OTHER, 503, "out of memory");
        return;
    }
    mr->srv = srv;
    mr->req = req;
    srv->inflight++;
    const char *field = NULL;
    enum mdm_parse_error perr =
        mdm_message_parse(body, len, MDM_CHANNEL_CHECKIN, &mr->msg, &field);
    if (perr != MDM_PARSE_OK) {
        char detail[96];
        snprintf(detail, sizeof(detail), "%s%s%s", mdm_parse_error_name(perr), field ? " " : "",
                 field ? field : "");
        refuse(req, 400, parse_refusal(perr), NULL, detail);
        migration_request_free(mr);
        return;
    }
    const struct mdm_message *m = &mr->msg;
    if (m->kind != MDM_AUTHENTICATE && m->kind != MDM_TOKEN_UPDATE) {
        refuse(req, 400, "unsupported_message_type", m->udid, m->message_type);
        migration_request_free(mr);
        return;
    }
    const char *user_key = user_channel_key(m);
    if (user_key != NULL) {
        char detail[96];
        snprintf(detail, sizeof(detail), "%s with %s: a user channel's, not the device's",
                 m->message_type, user_key);
        refuse(req, 400, "user_channel", m->udid, detail);
        migration_request_free(mr);
        return;
    }
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
        /* The event carries the plist as it was sent, as NanoMDM's would. */
        .raw = (const uint8_t *)body,
        .raw_len = len,
    };
    db_migrate(srv->db, m->message_type, &facts, m->token, m->token_len, m->push_magic,
               m->unlock_token, m->unlock_token_len, migrate_done, mr);
}

/* ---- GET /v1/migration ---- */

static void status_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct evhttp_request *req = arg;
    const char *text = NULL;
    size_t len = 0;
    if (outcome == DB_UNAVAILABLE || outcome == DB_OVERLOADED)
        http_reply_json_error(req, EP_OTHER, 503, "the database is not available");
    else if (outcome != DB_OK || !db_decode_text(res, &text, &len) || text == NULL)
        http_reply_json_error(req, EP_OTHER, 500, "internal error");
    else
        http_reply(req, EP_OTHER, 200, "application/json", text, len);
}

static void handle_status(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    (void)path;
    if (!tokens_any(srv->tokens)) {
        http_reply_json_error(req, EP_OTHER, 404,
                              "the admin API is off: no admin_token and no API tokens");
        return;
    }
    struct token_caller caller;
    if (!tokens_authorize(srv, req, &caller))
        return;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        http_reply_json_error(req, EP_OTHER, 405, "use GET");
        return;
    }
    if (!token_scope_allows(caller.scope, false, true)) {
        char peer[80];
        metrics_count_rejection("admin_scope");
        log_warn("refused GET /v1/migration from %s: token %s (scope %s)",
                 http_peer(req, peer, sizeof(peer)), caller.name, token_scope_name(caller.scope));
        http_reply_json_error(req, EP_OTHER, 403, "this token's scope does not allow this request");
        return;
    }
    tokens_audit(srv, req, &caller);
    db_migration_status(srv->db, srv->cfg->migration_on, status_done, req);
}

void migration_register_routes(bool on)
{
    http_route("/v1/migration", handle_status);
    if (on)
        http_route("/migration", handle_migration);
}

/* ---- The push certificate's topic ---- */

static void topics_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    (void)arg;
    (void)res;
    if (outcome != DB_OK)
        log_warn("cannot record the push certificate's topic in the database (%d): the device "
                 "objects may say no_certificate until the next start or reload",
                 (int)outcome);
}

/* This instance's name in push_topics: its host name and listen address. */
static void instance_name(const struct vouchd *srv, char *out, size_t size)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "?");
    host[sizeof(host) - 1] = '\0';
    snprintf(out, size, "%s %s", host, srv->cfg->listen ? srv->cfg->listen : "127.0.0.1:8080");
}

bool migration_store_push_topics(const struct vouchd *srv, const char *topic)
{
    char instance[512], err[1024];
    instance_name(srv, instance, sizeof(instance));
    const char *topics[1] = {topic};
    if (!db_set_push_topics_blocking(srv->cfg->database_url, instance, topics, topic ? 1 : 0, err,
                                     sizeof(err))) {
        log_error("%s", err);
        return false;
    }
    return true;
}

void migration_note_push_topics(struct vouchd *srv, const char *topic)
{
    char instance[512];
    instance_name(srv, instance, sizeof(instance));
    const char *topics[1] = {topic};
    db_set_push_topics(srv->db, instance, topics, topic != NULL ? 1 : 0, topics_done, NULL);
}
