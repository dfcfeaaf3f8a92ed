/*
 * http: vouchd's HTTP front on libevent's evhttp. It owns the listener, applies the limits
 * (body size, header size, timeouts), routes each request through a table the endpoint families
 * fill at start-up (http_route(); main.c wires them: it knows no handler), and is the one place
 * replies are sent and counted. Each request is traced from its arrival to its reply
 * (http_trace.h): its id in X-Request-Id and on every log line of its handling, its latency, one
 * access line.
 *
 * Before routing it refuses what no handler should have to judge: the client-certificate header
 * (cert_header) or X-Forwarded-For from a peer that is not in trusted_proxies (403
 * untrusted_proxy), an X-Forwarded-For from a trusted proxy that does not name an address (400
 * bad_forwarded_for), and a path with dot segments, empty segments, backslashes or encoded '/',
 * '\', '.' or NUL (400 bad_path). Each is logged and counted in vouch_rejections_total.
 *
 * A handler that needs the database returns after starting the query and replies from the
 * query's callback; evhttp keeps the request until then (and frees it quietly if the client has
 * gone away).
 */
#ifndef VOUCH_HTTP_H
#define VOUCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

/* The event loop's priorities (event_base_priority_init); the default is the lowest. */
#define HTTP_PRIORITIES 2

struct evhttp_request;
struct vouchd;

/* Handles a request whose path (absolute, without dot or empty segments) matched its route. */
typedef void http_handler_fn(struct vouchd *srv, struct evhttp_request *req, const char *path);

/* Registers a route before http_start(): an exact path, or, ending in '/', every path under it.
 * Exact paths win over prefixes, and longer prefixes over shorter ones. A route table with no
 * room left, or a pattern given twice, is a broken invariant (log_fatal). */
void http_route(const char *pattern, http_handler_fn *handler);

bool http_start(struct vouchd *srv, char *err, size_t err_size) __attribute__((warn_unused_result));
/* Stops accepting connections; requests in flight still get their replies. */
void http_stop_listening(struct vouchd *srv);
void http_free(struct vouchd *srv);
/* Connections open now (each bounded: max_connections, request_timeout). */
unsigned http_connections(void);

/* Sends status with body (may be empty: then no Content-Type and a zero-byte body). */
void http_reply(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                const char *content_type, const void *body, size_t len);
/* A short text/plain reply, for devices. */
void http_reply_text(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                     const char *text);
/* {"error": message} as application/json, for the admin API. */
void http_reply_json_error(struct evhttp_request *req, enum metrics_endpoint ep, int status,
                           const char *message);

/* Who sent the request, for log lines: "address:port" of the peer, or "client via
 * proxy:port" when a trusted proxy forwarded it for another address ("?" if the connection is
 * gone). */
/* Reads the request's query string into query (the caller clears it with evhttp_clear_headers):
 * false after answering 400 when it cannot be read. */
struct evkeyvalq;
bool http_parse_query(struct evhttp_request *req, enum metrics_endpoint ep, struct evkeyvalq *query)
    __attribute__((warn_unused_result));
/* "GET", "POST", ...: the request's method, as it goes in logs and the audit ("?" if unknown). */
const char *http_method_name(struct evhttp_request *req);
const char *http_peer(struct evhttp_request *req, char *buf, size_t size);

/* The client's address, in inet_ntop's form (one text per address), for per-client limits: the
 * peer's, or, when the peer is one of trusted_proxies, the right-most X-Forwarded-For address
 * that is not itself a trusted proxy (config_forwarded_client()). "?" when the connection is
 * gone. dispatch() has refused requests whose forwarding headers come from anyone else, so a
 * handler never sees an untrusted one. */
const char *http_client_address(struct evhttp_request *req, char *buf, size_t size);

/* The value of a request header, or NULL. */
const char *http_header(struct evhttp_request *req, const char *name);
/* The same for a header that must appear at most once: false when it appears more often (a
 * second copy could be read differently by a proxy and by vouchd). */
bool http_header_once(struct evhttp_request *req, const char *name, const char **value)
    __attribute__((warn_unused_result));

#endif
