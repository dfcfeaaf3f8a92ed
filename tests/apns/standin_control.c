/*
 * standin_control: see standin_control.h. Built on libevent's evhttp, which runs on the same loop
 * as the HTTP/2 front, so a handler reads the script, the push log and the counters directly.
 */
#include "standin_control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "standin.h"
#include "standin_h2.h"
#include "standin_pushlog.h"
#include "standin_script.h"

#define MAX_BODY (16 * 1024 * 1024)
#define MAX_HEADERS 8192
#define MAX_WAIT_MS 60000
#define HTTP_TIMEOUT_S 120

/* A GET /pushes?wait= held until a line arrives or its timer fires. */
struct waiter {
    struct standin_control *ctl;
    struct waiter *prev, *next;
    struct evhttp_request *req;
    unsigned long long since;
    size_t limit;
    struct event timer;
};

struct standin_control {
    struct standin *ctx;
    struct standin_h2 *h2;
    struct evhttp *http;
    struct waiter *waiters;
    char address[INET6_ADDRSTRLEN + 8];
};

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *out = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    if (out != NULL)
        evbuffer_add(out, text, strlen(text));
    evhttp_send_reply(req, code, reason, out);
    if (out != NULL)
        evbuffer_free(out);
}

/* Parses a non-negative decimal query value; false when present but malformed. */
static bool query_number(const struct evkeyvalq *q, const char *name, unsigned long long max,
                         unsigned long long *out)
{
    const char *v = evhttp_find_header(q, name);
    if (v == NULL)
        return true;
    if (*v < '0' || *v > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > max)
        return false;
    *out = n;
    return true;
}

/* --- GET /pushes ----------------------------------------------------------------------------- */

struct pushes_out {
    struct evbuffer *buf;
    unsigned long long last;
};

static void emit_push(const char *line, size_t len, void *arg)
{
    struct pushes_out *o = arg;
    evbuffer_add(o->buf, line, len);
    o->last++;
}

static void reply_pushes(struct standin_control *ctl, struct evhttp_request *req,
                         unsigned long long since, size_t limit)
{
    struct standin_pushlog *log = ctl->ctx->pushlog;
    unsigned long long last_seq = standin_pushlog_last_seq(log);
    unsigned long long oldest = last_seq - standin_pushlog_count(log); /* seq before the first */
    struct pushes_out o = {evbuffer_new(), since < oldest ? oldest : since};
    char next[32];

    if (o.buf == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    standin_pushlog_read(log, since, limit, emit_push, &o);
    if (o.last > last_seq)
        o.last = last_seq; /* since was ahead: the reader talks to a restarted stand-in */
    snprintf(next, sizeof(next), "%llu", o.last);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/x-ndjson");
    evhttp_add_header(h, "X-Next-Since", next);
    evhttp_send_reply(req, 200, "OK", o.buf);
    evbuffer_free(o.buf);
}

static void waiter_free(struct waiter *w)
{
    struct standin_control *ctl = w->ctl;
    evtimer_del(&w->timer);
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        ctl->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    free(w);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct waiter *w = arg;
    reply_pushes(w->ctl, w->req, w->since, w->limit);
    waiter_free(w);
}

/* Push log listener: a line was added, so every held poll has something to read. */
static void wake_waiters(void *arg)
{
    struct standin_control *ctl = arg;
    while (ctl->waiters != NULL) {
        struct waiter *w = ctl->waiters;
        reply_pushes(ctl, w->req, w->since, w->limit);
        waiter_free(w);
    }
}

static void handle_pushes(struct standin_control *ctl, struct evhttp_request *req,
                          const struct evkeyvalq *q)
{
    unsigned long long since = 0, limit = 0, wait_ms = 0;
    if (!query_number(q, "since", UINT64_MAX, &since) ||
        !query_number(q, "limit", SIZE_MAX, &limit) ||
        !query_number(q, "wait", MAX_WAIT_MS, &wait_ms)) {
        reply_text(req, 400, "Bad Request",
                   "since, limit: non-negative integers; wait: 0..60000 ms\n");
        return;
    }
    if (wait_ms == 0 || standin_pushlog_last_seq(ctl->ctx->pushlog) > since) {
        reply_pushes(ctl, req, since, (size_t)limit);
        return;
    }
    struct waiter *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    w->ctl = ctl;
    w->req = req;
    w->since = since;
    w->limit = (size_t)limit;
    w->next = ctl->waiters;
    if (ctl->waiters != NULL)
        ctl->waiters->prev = w;
    ctl->waiters = w;
    struct timeval tv = {(time_t)(wait_ms / 1000), (suseconds_t)((wait_ms % 1000) * 1000)};
    evtimer_assign(&w->timer, ctl->ctx->base, waiter_timeout, w);
    evtimer_add(&w->timer, &tv);
}

/* --- the other endpoints --------------------------------------------------------------------- */

static void emit_rule(const char *line, void *arg)
{
    evbuffer_add(arg, line, strlen(line));
}

static void handle_script_get(struct standin_control *ctl, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    standin_script_dump(ctl->ctx->script, emit_rule, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void handle_script_post(struct standin_control *ctl, struct evhttp_request *req,
                               const struct evkeyvalq *q)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *text = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *replace = evhttp_find_header(q, "replace");
    char err[256];
    char msg[320];

    if (text == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    if (replace != NULL && strcmp(replace, "1") == 0) {
        /* All or nothing: parse into a scratch script first so a bad line leaves the old rules. */
        struct standin_script *scratch = standin_script_new();
        bool ok = standin_script_add(scratch, text, len, err, sizeof(err));
        standin_script_free(scratch);
        if (ok)
            standin_script_clear(ctl->ctx->script);
    }
    if (!standin_script_add(ctl->ctx->script, text, len, err, sizeof(err))) {
        snprintf(msg, sizeof(msg), "%s\n", err);
        reply_text(req, 400, "Bad Request", msg);
        return;
    }
    snprintf(msg, sizeof(msg), "%zu rules\n", standin_script_count(ctl->ctx->script));
    reply_text(req, 200, "OK", msg);
}

static void handle_stats(struct standin_control *ctl, struct evhttp_request *req)
{
    const struct standin_stats *s = &ctl->ctx->stats;
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        reply_text(req, 500, "Internal Server Error", "out of memory\n");
        return;
    }
    evbuffer_add_printf(
        out,
        "{\"connections_accepted\":%llu,\"connections_refused\":%llu,"
        "\"connections_open\":%llu,\"tls_failures\":%llu,\"alpn_failures\":%llu,"
        "\"streams\":%llu,\"requests\":%llu,\"answered\":%llu,\"cancelled\":%llu,"
        "\"goaways\":%llu,\"records\":%zu,\"last_seq\":%llu,\"script_rules\":%zu,\"status\":{",
        (unsigned long long)s->connections_accepted, (unsigned long long)s->connections_refused,
        (unsigned long long)s->connections_open, (unsigned long long)s->tls_failures,
        (unsigned long long)s->alpn_failures, (unsigned long long)s->streams,
        (unsigned long long)s->requests, (unsigned long long)s->answered,
        (unsigned long long)s->cancelled, (unsigned long long)s->goaways,
        standin_pushlog_count(ctl->ctx->pushlog),
        (unsigned long long)standin_pushlog_last_seq(ctl->ctx->pushlog),
        standin_script_count(ctl->ctx->script));
    const char *sep = "";
    for (int i = 0; i < STANDIN_STATUS_MAX; i++) {
        if (s->status[i] == 0)
            continue;
        evbuffer_add_printf(out, "%s\"%d\":%llu", sep, i, (unsigned long long)s->status[i]);
        sep = ",";
    }
    evbuffer_add_printf(out, "}}\n");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void handle_reset(struct standin_control *ctl, struct evhttp_request *req)
{
    struct standin_stats *s = &ctl->ctx->stats;
    uint64_t open = s->connections_open;
    standin_script_clear(ctl->ctx->script);
    standin_pushlog_clear(ctl->ctx->pushlog);
    memset(s, 0, sizeof(*s));
    s->connections_open = open;
    reply_text(req, 200, "OK", "reset\n");
}

static void handle_goaway(struct standin_control *ctl, struct evhttp_request *req)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "%zu connections\n", standin_h2_goaway_all(ctl->h2));
    reply_text(req, 200, "OK", msg);
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct standin_control *ctl = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evkeyvalq query;
    bool get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;

    if (evcon == NULL || !is_loopback(evhttp_connection_get_addr(evcon))) {
        reply_text(req, 403, "Forbidden", "loopback only\n");
        return;
    }
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *qs = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    /* Parsing "" still initializes the list, so it can be cleared below either way. */
    if (evhttp_parse_query_str(qs != NULL ? qs : "", &query) != 0 || path == NULL) {
        evhttp_clear_headers(&query);
        reply_text(req, 400, "Bad Request", "bad URI\n");
        return;
    }

    if (strcmp(path, "/pushes") == 0 && get)
        handle_pushes(ctl, req, &query);
    else if (strcmp(path, "/script") == 0 && post)
        handle_script_post(ctl, req, &query);
    else if (strcmp(path, "/script") == 0 && get)
        handle_script_get(ctl, req);
    else if (strcmp(path, "/stats") == 0 && get)
        handle_stats(ctl, req);
    else if (strcmp(path, "/reset") == 0 && post)
        handle_reset(ctl, req);
    else if (strcmp(path, "/goaway") == 0 && post)
        handle_goaway(ctl, req);
    else if (strcmp(path, "/healthz") == 0 && get)
        reply_text(req, 200, "OK", "ok\n");
    else if (strcmp(path, "/pushes") == 0 || strcmp(path, "/script") == 0 ||
             strcmp(path, "/stats") == 0 || strcmp(path, "/reset") == 0 ||
             strcmp(path, "/goaway") == 0 || strcmp(path, "/healthz") == 0)
        reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
    else
        reply_text(req, 404, "Not Found",
                   "endpoints: POST /script, GET /script, GET /pushes, GET /stats, POST /reset, "
                   "POST /goaway, GET /healthz\n");
    evhttp_clear_headers(&query);
}

struct standin_control *standin_control_new(struct standin *ctx, struct standin_h2 *h2,
                                            const char *listen, char *err, size_t err_size)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char host[INET6_ADDRSTRLEN];
    unsigned port;

    if (!standin_parse_address(listen, &ss, &sslen)) {
        snprintf(err, err_size, "--control %s: expected HOST:PORT (an IP address)", listen);
        return NULL;
    }
    if (!is_loopback((struct sockaddr *)&ss)) {
        snprintf(err, err_size, "--control %s: only a loopback address is allowed", listen);
        return NULL;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }

    struct standin_control *ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    ctl->ctx = ctx;
    ctl->h2 = h2;
    ctl->http = evhttp_new(ctx->base);
    if (ctl->http == NULL) {
        snprintf(err, err_size, "evhttp_new failed");
        free(ctl);
        return NULL;
    }
    evhttp_set_max_body_size(ctl->http, MAX_BODY);
    evhttp_set_max_headers_size(ctl->http, MAX_HEADERS);
    evhttp_set_timeout(ctl->http, HTTP_TIMEOUT_S);
    evhttp_set_allowed_methods(ctl->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(ctl->http, dispatch, ctl);
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(ctl->http, host, (ev_uint16_t)port);
    if (bound == NULL) {
        snprintf(err, err_size, "--control %s: cannot bind: %s", listen, strerror(errno));
        evhttp_free(ctl->http);
        free(ctl);
        return NULL;
    }
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    snprintf(ctl->address, sizeof(ctl->address), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
             host, port);
    standin_pushlog_set_listener(ctx->pushlog, wake_waiters, ctl);
    return ctl;
}

void standin_control_free(struct standin_control *ctl)
{
    if (ctl == NULL)
        return;
    standin_pushlog_set_listener(ctl->ctx->pushlog, NULL, NULL);
    while (ctl->waiters != NULL) {
        struct waiter *w = ctl->waiters;
        reply_pushes(ctl, w->req, w->since, w->limit);
        waiter_free(w);
    }
    evhttp_free(ctl->http);
    free(ctl);
}

const char *standin_control_get0_address(const struct standin_control *ctl)
{
    return ctl->address;
}
