/*
 * standin_h2_internal: what the files of the HTTP/2 front of apns-standin share, and nothing
 * else includes. The front's contract is standin_h2.h; this is its data model and the calls the
 * files make into one another.
 *
 * One job per file:
 *   standin_h2.c         the front: listening sockets, their TLS contexts (certificate, client
 *                        CAs, ALPN h2 only), the nghttp2 callbacks and options, the public API
 *   standin_h2_conn.c    one connection: accepted, TLS handshake, ALPN and client-certificate
 *                        topic, the nghttp2 session pumped in memory over the bufferevent,
 *                        output back-pressure, GOAWAY, close
 *   standin_h2_stream.c  the nghttp2 session callbacks: a stream per request, its headers and
 *                        body gathered, the request's end, the stream's close; the stream pool
 *   standin_h2_answer.c  a complete request: checked, the script consulted, the response
 *                        (status, apns-id, JSON body) submitted now, after a delay, or never
 *   standin_h2_record.c  a request that ended: its push-log record, request-log line, counters
 *
 * Who owns what: the struct standin_h2 borrows the struct standin (standin.h) and the configured
 * topic; it owns its fronts, its connections (conns) and the pool of free streams (pool). A
 * connection owns its bufferevent (and through it the SSL and the socket), its nghttp2 session
 * and its streams (streams); standin_h2_conn_free() closes all of them. A stream owns its delay
 * timer; standin_h2_stream_free() puts it back into the pool.
 *
 * A connection is a state machine: HANDSHAKE (TLS under way) -> OPEN (h2 session running) ->
 * CLOSING (GOAWAY submitted: streams in progress finish, then the connection closes once nghttp2
 * wants nothing more and the output is flushed). A stream is one too: RECEIVING (headers and body
 * arriving) -> DELAYED (a scripted delay) -> ANSWERED (response submitted), or REFUSED (a GOAWAY
 * excluded it). nghttp2 runs in memory (mem_recv / mem_send) over a bufferevent_openssl.
 */
#ifndef VOUCH_STANDIN_H2_INTERNAL_H
#define VOUCH_STANDIN_H2_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <event2/event_struct.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "standin_check.h"
#include "standin_h2.h"
#include "standin_script.h"

/* Header value buffers: each is longer than any valid value, so a value cut to fit stays
 * invalid. */
#define STANDIN_H2_METHOD_MAX 16
#define STANDIN_H2_PATH_MAX 512
#define STANDIN_H2_HEADER_MAX 256

enum standin_h2_conn_state {
    STANDIN_H2_CONN_HANDSHAKE,
    STANDIN_H2_CONN_OPEN,
    STANDIN_H2_CONN_CLOSING
};

enum standin_h2_stream_state {
    STANDIN_H2_STREAM_RECEIVING,
    STANDIN_H2_STREAM_DELAYED,
    STANDIN_H2_STREAM_ANSWERED,
    STANDIN_H2_STREAM_REFUSED
};

/* One listening socket and the TLS context of its connections. */
struct standin_h2_front {
    struct standin_h2 *h2;
    SSL_CTX *ssl_ctx;
    struct evconnlistener *listener;
    bool client_auth;
    char address[INET6_ADDRSTRLEN + 8];
};

struct standin_h2_stream {
    struct standin_h2_conn *conn;
    struct standin_h2_stream *prev, *next; /* the connection's streams (or the free list), freed
                                            * with it */
    int32_t id;
    enum standin_h2_stream_state state;
    bool has_method, has_path;
    unsigned present;    /* bit per standin_header */
    unsigned duplicated; /* bit per standin_header */
    size_t body_len;
    size_t body_total;

    long long time_ms;       /* when the request ended */
    struct timespec started; /* monotonic, for the latency in the request log */
    struct event delay_timer;
    bool timer_added;

    int status;
    char reason[STANDIN_REASON_MAX + 1];
    long long timestamp_ms;
    char apns_id[STANDIN_UUID_LEN + 1];
    char status_text[4];
    char content_length[24];
    char response[STANDIN_REASON_MAX + 64];
    size_t response_len;
    size_t response_sent;

    /* The big buffers last: a new stream zeroes only what comes before them (STREAM_RESET_SIZE in
     * standin_h2_stream.c); each is read only once written (has_method, has_path, present,
     * body_len, the check). */
    char method[STANDIN_H2_METHOD_MAX];
    char path[STANDIN_H2_PATH_MAX];
    char headers[STANDIN_HDR_COUNT][STANDIN_H2_HEADER_MAX];
    char body[STANDIN_MAX_PAYLOAD];
    struct standin_verdict verdict;
};

struct standin_h2_conn {
    struct standin_h2 *h2;
    struct standin_h2_conn *prev, *next;
    enum standin_h2_conn_state state;
    uint64_t id;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct standin_h2_stream *streams;
    int32_t goaway_last_id; /* INT32_MAX until a GOAWAY is submitted */
    bool client_auth;       /* false: came in on the --listen-noauth front */
    char topic[STANDIN_TOPIC_MAX + 1];
    bool has_topic;
    char peer[INET6_ADDRSTRLEN + 8];
};

struct standin_h2 {
    struct standin *ctx;
    struct standin_h2_front fronts[2]; /* [0] client certificate required; [1] --listen-noauth,
                                        * optional */
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *options;
    struct standin_h2_conn *conns;
    size_t nconns;
    struct standin_h2_stream *pool; /* free streams, linked by next */
    size_t npool;
    unsigned char random[4096]; /* for apns-id */
    size_t random_used;
    size_t max_connections;
    uint64_t next_conn_id;
    const char *topic; /* borrowed from the configuration */
    bool shutting_down;
    void (*shutdown_done)(void *arg);
    void *shutdown_arg;
};

/* --- standin_h2_conn.c ------------------------------------------------------------------------ */

/* Takes the accepted socket fd (peer: its address, for log lines) into a new connection of the
 * front and starts the TLS handshake; closes fd when that cannot be done. */
void standin_h2_conn_accept(struct standin_h2_front *front, evutil_socket_t fd, const char *peer);

/* Frames what nghttp2 has to send into the output buffer, up to 1 MiB, and reads only while the
 * output is below it. Closes the connection when the session is over; returns false when it did
 * (c is gone). */
bool standin_h2_conn_flush(struct standin_h2_conn *c);

/* Submits GOAWAY (once per connection, or again with a lower last stream id); nothing during the
 * handshake. */
void standin_h2_conn_goaway(struct standin_h2_conn *c, int32_t last_stream_id);

/* Closes and frees c: records and frees its streams, runs the shutdown callback when c was the
 * last connection of a front shutting down. */
void standin_h2_conn_free(struct standin_h2_conn *c);

/* --- standin_h2_stream.c ---------------------------------------------------------------------- */

/* Installs the stream callbacks (begin headers, header, data, frame, close) of every session. */
void standin_h2_stream_set_callbacks(nghttp2_session_callbacks *callbacks);

/* Unlinks st from its connection, stops its delay timer and puts it in the pool (or frees it). */
void standin_h2_stream_free(struct standin_h2_conn *c, struct standin_h2_stream *st);

/* Frees the pool of free streams. */
void standin_h2_stream_pool_free(struct standin_h2 *h2);

/* The value of request header h, NULL when it was not sent. */
static inline const char *standin_h2_stream_header(const struct standin_h2_stream *st,
                                                   enum standin_header h)
{
    return (st->present & (1u << h)) ? st->headers[h] : NULL;
}

/* --- standin_h2_answer.c ---------------------------------------------------------------------- */

/* The request on st is complete: check it, consult the script, answer (or not). */
void standin_h2_answer_request(struct standin_h2_conn *c, struct standin_h2_stream *st);

/* --- standin_h2_record.c ---------------------------------------------------------------------- */

/* Records a request that ended, with the status the client received (delivered false: none), in
 * the push log, the request log and the counters. Nothing for a request still being received. */
void standin_h2_record_stream(struct standin_h2_conn *c, const struct standin_h2_stream *st,
                              bool delivered);

#endif
