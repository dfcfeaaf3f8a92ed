#include "http.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "admin.h"
#include "json.h"
#include "log.h"
#include "enroll.h"
#include "mdm.h"
#include "vouchd.h"

#define MAX_HEADERS_BYTES (64 * 1024)

const char *http_header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

bool http_header_once(struct evhttp_request *req, const char *name, const char **value)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    struct evkeyval *h;
    *value = NULL;
    TAILQ_FOREACH(h, headers, next)
    {
        if (strcasecmp(h->key, name) != 0)
            continue;
        if (*value != NULL)
            return false;
        *value = h->value;
    }
    return true;
}

const char *http_peer(struct evhttp_request *req, char *buf, size_t size)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *address = NULL;
    ev_uint16_t port = 0;
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &address, &port);
    snprintf(buf, size, "%s:%u", address ? address : "?", (unsigned)port);
    return buf;
}

void http_reply(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                const char *content_type, const void *body, size_t len)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (len > 0) {
        evhttp_add_header(headers, "Content-Type", content_type);
        evbuffer_add(out, body, len);
    }
    if (status == 503)
        evhttp_add_header(headers, "Retry-After", "5");
    metrics_count_response(ep, status);
    evhttp_send_reply(req, status, NULL, NULL);
}

void http_reply_text(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                     const char *text)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s\n", text);
    http_reply(req, ep, status, "text/plain; charset=utf-8", line,
               n < 0 ? 0 : ((size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1));
}

void http_reply_json_error(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                           const char *message)
{
    struct json_writer *w = json_writer_new(4096, 0);
    const char *text = NULL;
    size_t len = 0;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, "error") &&
        json_write_string(w, message) && json_write_end_object(w) &&
        json_writer_finish(w, &text, &len))
        http_reply(req, ep, status, "application/json", text, len);
    else
        http_reply(req, ep, status, "application/json", "{\"error\":\"?\"}", 13);
    json_writer_free(w);
}

/* evhttp answers an oversized body with 413 by itself, before any handler runs. To log and
 * count those too, every connection's output buffer is watched for a status line "413". */
static void output_added_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    static const char status_413[] = "HTTP/1.1 413";
    if (info->n_added < sizeof(status_413) - 1)
        return;
    struct evbuffer_ptr at;
    char head[sizeof(status_413) - 1];
    if (evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(buf, &at, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
        return;
    if (memcmp(head, status_413, sizeof(head)) == 0 ||
        memcmp(head, "HTTP/1.0 413", sizeof(head)) == 0) {
        metrics_count_rejection("body_too_large");
        metrics_count_response(EP_OTHER, 413);
        log_warn("refused a request: body larger than max_body_bytes (413)");
    }
}

static struct bufferevent *new_connection_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL)
        evbuffer_add_cb(bufferevent_get_output(bev), output_added_cb, NULL);
    return bev;
}

static bool path_is(const char *path, const char *want)
{
    return strcmp(path, want) == 0;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct vouchd *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] != '/') {
        metrics_count_rejection("bad_request_target");
        http_reply_text(req, EP_OTHER, 400, "bad request target");
        return;
    }
    if (path_is(path, "/mdm/checkin"))
        mdm_handle_request(srv, req, EP_MDM_CHECKIN);
    else if (path_is(path, "/mdm/connect"))
        mdm_handle_request(srv, req, EP_MDM_CONNECT);
    else if (path_is(path, "/mdm"))
        mdm_handle_request(srv, req, EP_MDM);
    else if (path_is(path, "/mdm/enroll"))
        enroll_handle_request(srv, req);
    else if (path_is(path, "/healthz"))
        admin_handle_healthz(srv, req);
    else if (path_is(path, "/metrics"))
        admin_handle_metrics(srv, req);
    else if (strncmp(path, "/v1/", 4) == 0)
        admin_handle_request(srv, req, path);
    else {
        metrics_count_rejection("not_found");
        http_reply_text(req, EP_OTHER, 404, "not found");
    }
}

static bool split_listen(const char *listen, char *host, size_t host_size, ev_uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen)
        return false;
    const char *h = listen;
    size_t h_len = (size_t)(colon - listen);
    if (h[0] == '[' && h_len >= 2 && h[h_len - 1] == ']') {
        h++;
        h_len -= 2;
    }
    if (h_len >= host_size)
        return false;
    memcpy(host, h, h_len);
    host[h_len] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return false;
    *port = (ev_uint16_t)p;
    return true;
}

bool http_start(struct vouchd *srv, char *err, size_t err_size)
{
    char host[256];
    ev_uint16_t port;
    if (!split_listen(srv->cfg->listen, host, sizeof(host), &port)) {
        snprintf(err, err_size, "listen: expected address:port, got '%s'", srv->cfg->listen);
        return false;
    }
    srv->http = evhttp_new(srv->base);
    if (srv->http == NULL) {
        snprintf(err, err_size, "cannot create the HTTP server");
        return false;
    }
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->cfg->max_body_bytes);
    evhttp_set_max_headers_size(srv->http, MAX_HEADERS_BYTES);
    evhttp_set_timeout(srv->http, (int)srv->cfg->http_timeout);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    evhttp_set_default_content_type(srv->http, NULL);
    evhttp_set_bevcb(srv->http, new_connection_bev, srv);
    evhttp_set_gencb(srv->http, dispatch, srv);
    srv->listener = evhttp_bind_socket_with_handle(srv->http, host, port);
    if (srv->listener == NULL) {
        snprintf(err, err_size, "listen: cannot bind %s", srv->cfg->listen);
        return false;
    }
    return true;
}

void http_stop_listening(struct vouchd *srv)
{
    if (srv->listener != NULL) {
        evhttp_del_accept_socket(srv->http, srv->listener);
        srv->listener = NULL;
    }
}

void http_free(struct vouchd *srv)
{
    if (srv->http != NULL)
        evhttp_free(srv->http);
    srv->http = NULL;
}
