#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "hex.h"
#include "http_trace.h"
#include "json.h"
#include "log.h"
#include "vouchd.h"

#define MAX_HEADERS_BYTES (64 * 1024)
/* X-Forwarded-For field lines read from one request; more is refused (a proxy adds one). */
#define MAX_FORWARDED_LINES 16

/* The configuration the front applies to every request (trusted_proxies), set by http_start(). */
static const struct config *front_cfg;

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

/* The socket's peer: the numeric address evhttp noted at accept (still there when the client
 * has gone before its reply is logged), or the kernel's (a scoped IPv6 address, fe80::1%eth0,
 * is not one net_addr_parse() reads). */
static bool peer_of(struct evhttp_request *req, struct net_addr *addr, unsigned *port)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *host = NULL;
    ev_uint16_t host_port = 0;
    if (conn == NULL)
        return false;
    evhttp_connection_get_peer(conn, &host, &host_port);
    *port = host_port;
    if (host != NULL && net_addr_parse(host, strlen(host), addr))
        return true;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    memset(addr, 0, sizeof(*addr));
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        addr->family = 4;
        memcpy(addr->bytes, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        return true;
    }
    if (ss.ss_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
    *port = ntohs(in6->sin6_port);
    /* An IPv4 peer of a dual-stack socket: one host, one form (as net_addr_parse()). */
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
        addr->family = 4;
        memcpy(addr->bytes, in6->sin6_addr.s6_addr + 12, 4);
    } else {
        addr->family = 6;
        memcpy(addr->bytes, in6->sin6_addr.s6_addr, 16);
    }
    return true;
}

/* The request's X-Forwarded-For field lines in order; false when there are too many. */
static bool forwarded_lines(struct evhttp_request *req, const char **lines, size_t *n)
{
    struct evkeyval *h;
    *n = 0;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        if (strcasecmp(h->key, "X-Forwarded-For") != 0)
            continue;
        if (*n == MAX_FORWARDED_LINES)
            return false;
        lines[(*n)++] = h->value;
    }
    return true;
}

/* The client's address (see http_client_address()); false when the peer is unknown or a trusted
 * proxy sent an X-Forwarded-For that cannot be read (dispatch() refuses those requests). */
static bool client_of(struct evhttp_request *req, struct net_addr *client, struct net_addr *peer,
                      unsigned *port)
{
    const char *lines[MAX_FORWARDED_LINES];
    size_t n;
    if (!peer_of(req, peer, port))
        return false;
    if (front_cfg == NULL || !config_is_trusted_proxy(front_cfg, peer)) {
        *client = *peer;
        return true;
    }
    return forwarded_lines(req, lines, &n) &&
           config_forwarded_client(front_cfg, peer, lines, n, client);
}

const char *http_client_address(struct evhttp_request *req, char *buf, size_t size)
{
    struct net_addr client, peer;
    unsigned port;
    if (!client_of(req, &client, &peer, &port)) {
        snprintf(buf, size, "?");
        return buf;
    }
    return net_addr_text(&client, buf, size);
}

const char *http_peer(struct evhttp_request *req, char *buf, size_t size)
{
    struct net_addr client, peer;
    unsigned port = 0;
    char client_text[64], peer_text[64];
    if (!client_of(req, &client, &peer, &port)) {
        snprintf(buf, size, "?");
        return buf;
    }
    net_addr_text(&peer, peer_text, sizeof(peer_text));
    const char *open = peer.family == 6 ? "[" : "", *close = peer.family == 6 ? "]" : "";
    /* The client first: a short buffer cuts the proxy's part. */
    if (memcmp(&client, &peer, sizeof(client)) != 0)
        snprintf(buf, size, "%s via %s%s%s:%u",
                 net_addr_text(&client, client_text, sizeof(client_text)), open, peer_text, close,
                 port);
    else
        snprintf(buf, size, "%s%s%s:%u", open, peer_text, close, port);
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
    http_trace_end(req, ep, status, len);
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

bool http_parse_query(struct evhttp_request *req, enum metrics_endpoint ep, struct evkeyvalq *query)
{
    TAILQ_INIT(query);
    const char *text = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (text != NULL && evhttp_parse_query_str(text, query) != 0) {
        http_reply_json_error(req, ep, 400, "bad query string");
        return false;
    }
    return true;
}

const char *http_method_name(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
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

/* ---- the connection guard --------------------------------------------------------------------
 * evhttp (libevent 2.1) bounds a connection's silence, not how long a request may take to
 * arrive: a client sending a byte every few seconds (slowloris) would hold its connection
 * forever. Nor does it count connections or tell when one closes (2.2 does; Debian 12 has 2.1).
 * So each connection gets a guard, filed under its socket descriptor as soon as evhttp has set
 * it (a priority-0 event, so no I/O callback can free the connection first): the first byte of a
 * request (a callback on the socket's input buffer) starts a deadline of request_timeout
 * seconds, the complete request (dispatch) ends it. A sweep every second shuts down the socket
 * of a request past its deadline (evhttp then sees the connection close) and drops the guards
 * of connections that are gone: their descriptor is closed or now belongs to another peer. At
 * max_connections vouchd stops accepting (the kernel's backlog holds the rest) until the sweep
 * finds one gone. */
struct conn_guard {
    struct vouchd *srv;
    struct bufferevent *bev; /* evhttp's; only compared after its connection may be gone */
    struct event *registrar; /* runs once, right after the accept callback (priority 0) */
    evutil_socket_t fd;      /* -1 until known: evhttp sets it after new_connection_bev() */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct timeval deadline; /* while reading */
    bool reading;            /* a request has begun and is not complete */
};

static struct guard_table {
    struct conn_guard **by_fd;
    size_t slots;
    unsigned open; /* connections accepted and not yet seen gone */
    struct event *sweep;
} guards;

static void accepting(struct vouchd *srv, bool on)
{
    struct evconnlistener *l =
        srv->listener ? evhttp_bound_socket_get_listener(srv->listener) : NULL;
    if (l != NULL && (on ? evconnlistener_enable(l) : evconnlistener_disable(l)) != 0)
        log_warn("cannot %s accepting connections", on ? "resume" : "pause");
}

static void guard_drop(struct conn_guard *g)
{
    if (g->fd >= 0 && (size_t)g->fd < guards.slots && guards.by_fd[g->fd] == g)
        guards.by_fd[g->fd] = NULL;
    if (guards.open-- == g->srv->cfg->max_connections && !g->srv->stopping)
        accepting(g->srv, true);
    event_free(g->registrar);
    free(g);
}

/* Is g's connection still the one on its descriptor? */
static bool guard_alive(const struct conn_guard *g)
{
    struct sockaddr_storage now;
    socklen_t len = sizeof(now);
    if (getpeername(g->fd, (struct sockaddr *)&now, &len) != 0)
        return false;
    return len == g->peer_len && memcmp(&now, &g->peer, len) == 0;
}

/* Files g under its descriptor, once evhttp has given the socket to its bufferevent. A guard
 * already there belongs to a connection that is gone (descriptors are reused at once). */
static bool guard_register(struct conn_guard *g)
{
    if (g->fd >= 0)
        return true;
    evutil_socket_t fd = bufferevent_getfd(g->bev);
    if (fd < 0)
        return false;
    if ((size_t)fd >= guards.slots) {
        size_t slots = (size_t)fd * 2 + 64;
        struct conn_guard **bigger = realloc(guards.by_fd, slots * sizeof(*bigger));
        if (bigger == NULL)
            log_fatal("out of memory");
        memset(bigger + guards.slots, 0, (slots - guards.slots) * sizeof(*bigger));
        guards.by_fd = bigger;
        guards.slots = slots;
    }
    if (guards.by_fd[fd] != NULL)
        guard_drop(guards.by_fd[fd]);
    g->fd = fd;
    /* A reply goes out in more than one write (evhttp's head, the body, a large body's last
     * segment): with Nagle's algorithm on, the last waits for the client's delayed ACK, up to
     * 40 ms on Linux. The client sends its next request only after the whole reply, so that
     * wait is idle time of every request-reply loop (GET /v1/push in batches, a device's
     * check-ins). Nothing here is written in pieces small enough to want coalescing. */
    const int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        log_debug("cannot turn off Nagle's algorithm on a connection: %s", strerror(errno));
    g->peer_len = sizeof(g->peer);
    if (getpeername(fd, (struct sockaddr *)&g->peer, &g->peer_len) != 0)
        g->peer_len = 0;
    guards.by_fd[fd] = g;
    return true;
}

static void guard_registered_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    guard_register(arg);
}

/* Bytes arrived on the connection: the first of a request starts its deadline. */
static void guard_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn_guard *g = arg;
    (void)buf;
    if (info->n_added == 0 || g->reading || !guard_register(g))
        return;
    evutil_gettimeofday(&g->deadline, NULL);
    g->deadline.tv_sec += (time_t)g->srv->cfg->request_timeout;
    g->reading = true;
}

/* The request has arrived in full: its deadline ends (a pipelined next one starts its own). */
static void guard_request_complete(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || (size_t)fd >= guards.slots || guards.by_fd[fd] == NULL ||
        guards.by_fd[fd]->bev != bev)
        return;
    struct conn_guard *g = guards.by_fd[fd];
    g->reading = false;
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        struct evbuffer_cb_info more = {.n_added = 1};
        guard_input(NULL, &more, g);
    }
}

static void guard_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct vouchd *srv = arg;
    struct timeval now;
    (void)fd;
    (void)what;
    evutil_gettimeofday(&now, NULL);
    for (size_t i = 0; i < guards.slots; i++) {
        struct conn_guard *g = guards.by_fd[i];
        if (g == NULL)
            continue;
        if (!guard_alive(g)) {
            guard_drop(g);
        } else if (g->reading && evutil_timercmp(&now, &g->deadline, >=)) {
            g->reading = false;
            metrics_count_rejection("request_timeout");
            log_warn("closed a connection: its request did not arrive within request_timeout "
                     "(%us)",
                     srv->cfg->request_timeout);
            shutdown(g->fd, SHUT_RDWR);
        }
    }
}

static struct bufferevent *new_connection_bev(struct event_base *base, void *arg)
{
    struct vouchd *srv = arg;
    struct conn_guard *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
        log_fatal("out of memory");
    g->srv = srv;
    g->fd = -1;
    evbuffer_add_cb(bufferevent_get_output(g->bev), output_added_cb, NULL);
    evbuffer_add_cb(bufferevent_get_input(g->bev), guard_input, g);
    /* evhttp sets the descriptor right after this returns, in the same accept callback; the
     * registrar runs right after that callback, before any I/O callback (of this connection
     * too: it may close at once, and its bufferevent must still be there to ask). */
    g->registrar = event_new(base, -1, 0, guard_registered_later, g);
    if (g->registrar == NULL || event_priority_set(g->registrar, 0) != 0)
        log_fatal("cannot make the connection guard's registrar");
    event_active(g->registrar, EV_TIMEOUT, 1);
    if (++guards.open == srv->cfg->max_connections) {
        log_warn("max_connections (%u) reached: not accepting more until one closes",
                 srv->cfg->max_connections);
        metrics_count_rejection("max_connections");
        accepting(srv, false);
    }
    return g->bev;
}

unsigned http_connections(void)
{
    return guards.open;
}

static bool path_is(const char *path, const char *want)
{
    return strcmp(path, want) == 0;
}

/* Why the (raw, still percent-encoded) path is refused, or NULL. Routes match exact paths, but a
 * proxy in front may normalise a path that vouchd reads as it is (or the other way round), and
 * the admin API decodes ids out of it: a path that two readers could take for two different
 * resources is refused rather than guessed at. */
static const char *path_problem(const char *path)
{
    for (const char *p = path; *p != '\0'; p++) {
        if (*p == '\\')
            return "a backslash";
        if (*p == '%') {
            int hi = hex_digit((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : hex_digit((unsigned char)p[2]);
            if (lo < 0)
                return "a malformed percent escape";
            int byte = hi * 16 + lo;
            if (byte == '/' || byte == '\\' || byte == '.' || byte == 0)
                return "an encoded '/', '\\', '.' or NUL";
            p += 2;
        } else if (*p == '/') {
            const char *segment = p + 1;
            size_t len = strcspn(segment, "/");
            if (len == 0 && segment[0] == '/')
                return "an empty segment (//)";
            if ((len == 1 && segment[0] == '.') ||
                (len == 2 && segment[0] == '.' && segment[1] == '.'))
                return "a dot segment";
        }
    }
    return NULL;
}

/* The client-certificate header and X-Forwarded-For say who the client is: only a trusted proxy
 * may send them. Anyone else who does is refused here, before any handler could read them.
 * Replies and returns false when the request is refused. */
static bool forwarding_is_trusted(struct vouchd *srv, struct evhttp_request *req)
{
    const char *cert_header = srv->cfg->cert_header;
    bool has_cert = cert_header != NULL && http_header(req, cert_header) != NULL;
    bool has_forwarded = http_header(req, "X-Forwarded-For") != NULL;
    if (!has_cert && !has_forwarded)
        return true;
    struct net_addr peer, client;
    unsigned port = 0;
    char peer_text[64] = "?";
    bool known = peer_of(req, &peer, &port);
    if (known)
        net_addr_text(&peer, peer_text, sizeof(peer_text));
    if (!known || !config_is_trusted_proxy(srv->cfg, &peer)) {
        metrics_count_rejection("untrusted_proxy");
        log_warn("refused a request from %s port %u: it carries %s%s%s, which only a peer in "
                 "trusted_proxies may send (403)",
                 peer_text, port, has_cert ? cert_header : "",
                 has_cert && has_forwarded ? " and " : "", has_forwarded ? "X-Forwarded-For" : "");
        http_reply_text(req, EP_OTHER, 403, "untrusted_proxy");
        return false;
    }
    const char *lines[MAX_FORWARDED_LINES];
    size_t n;
    if (!forwarded_lines(req, lines, &n) ||
        !config_forwarded_client(srv->cfg, &peer, lines, n, &client)) {
        metrics_count_rejection("bad_forwarded_for");
        log_warn("refused a request from trusted proxy %s: its X-Forwarded-For names something "
                 "that is not an address (400)",
                 peer_text);
        http_reply_text(req, EP_OTHER, 400, "bad_forwarded_for");
        return false;
    }
    return true;
}

/* The routes the endpoint families registered (http_route). */
#define HTTP_MAX_ROUTES 24
static struct {
    const char *pattern;
    size_t len;
    bool prefix;
    http_handler_fn *handler;
} routes[HTTP_MAX_ROUTES];
static size_t route_count;

void http_route(const char *pattern, http_handler_fn *handler)
{
    size_t len = strlen(pattern);
    if (route_count == HTTP_MAX_ROUTES || len == 0 || pattern[0] != '/')
        log_fatal("http_route(%s): no room, or not an absolute path", pattern);
    for (size_t i = 0; i < route_count; i++) {
        if (strcmp(routes[i].pattern, pattern) == 0)
            log_fatal("http_route(%s): registered twice", pattern);
    }
    routes[route_count].pattern = pattern;
    routes[route_count].len = len;
    routes[route_count].prefix = pattern[len - 1] == '/';
    routes[route_count].handler = handler;
    route_count++;
}

/* The handler of path: its exact route, else its longest prefix route; NULL when none. */
static http_handler_fn *route_of(const char *path)
{
    http_handler_fn *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < route_count; i++) {
        if (!routes[i].prefix && path_is(path, routes[i].pattern))
            return routes[i].handler;
        if (routes[i].prefix && routes[i].len > best_len &&
            strncmp(path, routes[i].pattern, routes[i].len) == 0) {
            best = routes[i].handler;
            best_len = routes[i].len;
        }
    }
    return best;
}

static void dispatch_traced(struct vouchd *srv, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] != '/') {
        metrics_count_rejection("bad_request_target");
        http_reply_text(req, EP_OTHER, 400, "bad request target");
        return;
    }
    /* Who sent it first: from here on, http_peer() and http_client_address() can be believed. */
    if (!forwarding_is_trusted(srv, req))
        return;
    /* "//host/path" parses as an authority and the path after it: judge what was sent. */
    const char *target = evhttp_request_get_uri(req);
    if (target == NULL)
        target = path;
    const char *problem =
        target[0] == '/' && target[1] == '/' ? "an empty segment (//)" : path_problem(path);
    if (problem != NULL) {
        char peer[128], shown[128];
        metrics_count_rejection("bad_path");
        log_warn("refused a request from %s: its path has %s: %s (400)",
                 http_peer(req, peer, sizeof(peer)), problem,
                 log_sanitize(target, strcspn(target, "?"), shown, sizeof(shown)));
        http_reply_text(req, EP_OTHER, 400, "bad_path");
        return;
    }
    http_handler_fn *handler = route_of(path);
    if (handler != NULL) {
        handler(srv, req, path);
    } else {
        metrics_count_rejection("not_found");
        http_reply_text(req, EP_OTHER, 404, "not found");
    }
}

/* A request has arrived in full: its trace begins (http_trace.h), and its id is the current
 * request id while its handler runs. */
static void dispatch(struct evhttp_request *req, void *arg)
{
    struct vouchd *srv = arg;
    char peer[128] = "";
    guard_request_complete(req);
    /* The peer goes only into the access line: not worked out when it is not logged. */
    http_trace_begin(req, log_enabled(LOG_INFO) ? http_peer(req, peer, sizeof(peer)) : peer);
    dispatch_traced(srv, req);
    log_set_request_id(NULL);
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
    front_cfg = srv->cfg;
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
    const struct timeval every_second = {1, 0};
    guards.sweep = event_new(srv->base, -1, EV_PERSIST, guard_sweep, srv);
    if (guards.sweep == NULL || event_add(guards.sweep, &every_second) != 0) {
        snprintf(err, err_size, "cannot start the connection sweep");
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
    http_trace_free_all();
    if (guards.sweep != NULL)
        event_free(guards.sweep);
    for (size_t i = 0; i < guards.slots; i++) {
        if (guards.by_fd[i] != NULL)
            event_free(guards.by_fd[i]->registrar);
        free(guards.by_fd[i]);
    }
    free(guards.by_fd);
    memset(&guards, 0, sizeof(guards));
    front_cfg = NULL;
}
