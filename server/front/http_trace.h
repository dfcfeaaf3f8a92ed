/*
 * http_trace: each HTTP request between its arrival and its reply: its id, the time it arrived,
 * its method, path and peer. The front (http.c) begins a trace when a request has arrived in full
 * and ends it when the reply goes out; then the id is echoed in the reply's X-Request-Id, the
 * time taken goes into vouch_http_request_duration_seconds (by endpoint), and one access line is
 * logged at info: method, path (up to the '?': no query string, which may carry a token), status,
 * body bytes, duration and peer.
 *
 * The id is the request's X-Request-Id when it came once and is sane (log_request_id_is_sane:
 * at most 64 characters that need no escaping), else 16 random hex digits made here. While
 * the handler runs, it is lib/log's current request id (http.c sets it; the database pool carries
 * it on to the completions of the queries the handler starts), so every line logged for the
 * request carries it.
 *
 * The traces are owned here, filed by the evhttp_request they belong to: evhttp keeps a request
 * until its reply is sent (even when the client has gone), and every handler replies, so a
 * trace lives exactly as long as its request. Everything runs on the event loop's thread.
 */
#ifndef VOUCH_HTTP_TRACE_H
#define VOUCH_HTTP_TRACE_H

#include <stddef.h>

#include "metrics.h"

struct evhttp_request;

/* Begins req's trace (peer: who sent it, as http_peer() writes it; only read when the access
 * line is logged) and makes its id the current request id. Returns the id (owned by the trace). */
const char *http_trace_begin(struct evhttp_request *req, const char *peer);

/* Ends req's trace as its reply (status, bytes of body) is about to be sent: X-Request-Id on the
 * reply, the duration counted under endpoint, the access line. Nothing for a request without a
 * trace. */
void http_trace_end(struct evhttp_request *req, enum metrics_endpoint endpoint, int status,
                    size_t bytes);

/* Frees the traces of requests never answered (at shutdown, with evhttp's requests). */
void http_trace_free_all(void);

#endif
