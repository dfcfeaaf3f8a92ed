#include "pushcert.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "apns.h"
#include "apns_cert.h"
#include "apns_cert_store.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "migration.h"
#include "push.h"
#include "tokens.h"
#include "vouchd.h"

/* A certificate and an RSA 4096 key in PEM are under 6 KiB; room for a chain besides. */
#define PUSHCERT_BODY_MAX (64 * 1024)

static const struct apns_cert *current_cert(const struct vouchd *srv)
{
    return srv->push != NULL ? apns_client_get0_cert(push_service_get0_apns(srv->push)) : NULL;
}

/* {"topic": ..., "not_after": ...} with status 200. */
static void reply_cert(struct evhttp_request *req, const struct apns_cert *cert)
{
    char not_after[32];
    apns_cert_not_after_text(cert, not_after, sizeof(not_after));
    struct json_writer *w = json_writer_new(APNS_TOPIC_MAX * 6 + 128, 0);
    const char *text;
    size_t len;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, "topic") &&
        json_write_string(w, cert->topic) && json_write_key(w, "not_after") &&
        json_write_string(w, not_after) && json_write_end_object(w) &&
        json_writer_finish(w, &text, &len))
        http_reply(req, EP_OTHER, 200, "application/json", text, len);
    else
        http_reply_json_error(req, EP_OTHER, 500, "internal error");
    json_writer_free(w);
}

/* GET: NanoMDM's answer for the one certificate vouchd has; 404 for another topic or none. */
static void get_pushcert(struct vouchd *srv, struct evhttp_request *req)
{
    struct evkeyvalq query;
    if (!http_parse_query(req, EP_OTHER, &query))
        return;
    const char *topic = evhttp_find_header(&query, "topic");
    const struct apns_cert *cert = current_cert(srv);
    if (cert == NULL)
        http_reply_json_error(req, EP_OTHER, 404, "no push certificate is configured (apns_cert)");
    else if (topic != NULL && strcmp(topic, cert->topic) != 0)
        http_reply_json_error(req, EP_OTHER, 404, "no push certificate for this topic");
    else
        reply_cert(req, cert);
    evhttp_clear_headers(&query);
}

/* Reads the body (certificate then key, PEM) into cert, checked; the body's copy of the key is
 * wiped. 0, or the HTTP status to answer with reason (cert is then empty). */
static int read_upload(struct evhttp_request *req, struct apns_cert *cert, char *reason,
                       size_t reason_size)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    memset(cert, 0, sizeof(*cert));
    if (len == 0) {
        snprintf(reason, reason_size,
                 "the body must be the PEM certificate followed by the PEM private key");
        return 400;
    }
    if (len > PUSHCERT_BODY_MAX) {
        snprintf(reason, reason_size, "the body is larger than 64 KiB");
        return 413;
    }
    char *body = (char *)evbuffer_pullup(in, -1);
    if (body == NULL) {
        snprintf(reason, reason_size, "out of memory");
        return 500;
    }
    char err[512];
    bool ok = apns_cert_from_pem(cert, body, len, NULL, 0, err, sizeof(err)) &&
              apns_cert_check_installable(cert, time(NULL), err, sizeof(err));
    OPENSSL_cleanse(body, len);
    if (ok)
        return 0;
    apns_cert_clear(cert);
    /* apns_cert_from_pem() names the configuration key its input came from: not here. */
    const char *text = err;
    if (strncmp(text, "apns_cert: ", 11) == 0 || strncmp(text, "apns_key: ", 10) == 0)
        text = strchr(text, ' ') + 1;
    snprintf(reason, reason_size, "%s", text);
    return 400;
}

static void put_pushcert(struct vouchd *srv, struct evhttp_request *req,
                         const struct token_caller *caller)
{
    char peer[128], err[512];
    if (srv->push == NULL) {
        http_reply_json_error(req, EP_OTHER, 409,
                              "no apns_cert is configured: vouchd has no push service and no file "
                              "to keep a certificate in (install the first one with vouchctl "
                              "pushcert install, set apns_cert and apns_key, and restart)");
        return;
    }
    struct apns_cert cert;
    int status = read_upload(req, &cert, err, sizeof(err));
    if (status != 0) {
        log_warn("refused a push certificate from %s (token %s): %s",
                 http_peer(req, peer, sizeof(peer)), caller->name, err);
        http_reply_json_error(req, EP_OTHER, status, err);
        return;
    }
    if (!apns_cert_store(&cert, srv->cfg->apns_cert, srv->cfg->apns_key, err, sizeof(err))) {
        log_error("PUT /v1/pushcert: keeping the current push certificate: %s", err);
        http_reply_json_error(req, EP_OTHER, 500, err);
        apns_cert_clear(&cert);
        return;
    }
    char not_after[32];
    apns_cert_not_after_text(&cert, not_after, sizeof(not_after));
    log_info("push certificate replaced by token %s from %s (topic %s, expires %s)", caller->name,
             http_peer(req, peer, sizeof(peer)), cert.topic, not_after);
    long days = apns_cert_days_left(&cert, time(NULL));
    if (days < APNS_CERT_WARN_DAYS)
        log_warn("the push certificate for %s expires in %ld day(s): renew it", cert.topic, days);
    if (strcmp(cert.topic, current_cert(srv)->topic) != 0)
        log_warn("the new push certificate's topic %s differs from the old one's (%s): devices "
                 "enrolled under the old topic no longer answer pushes until they enroll again",
                 cert.topic, current_cert(srv)->topic);
    /* As SIGHUP does: new pushes use it, queued ones are kept; the client owns it from here. */
    apns_client_set_cert(push_service_get0_apns(srv->push), &cert);
    /* Where SQL sees it: the device objects' no_certificate, GET /v1/migration. */
    migration_note_push_topics(srv, current_cert(srv)->topic);
    reply_cert(req, current_cert(srv));
}

void pushcert_handle(struct vouchd *srv, struct evhttp_request *req,
                     const struct token_caller *caller)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        get_pushcert(srv, req);
        break;
    case EVHTTP_REQ_PUT:
        put_pushcert(srv, req, caller);
        break;
    default:
        http_reply_json_error(req, EP_OTHER, 405, "use GET or PUT");
        break;
    }
}
