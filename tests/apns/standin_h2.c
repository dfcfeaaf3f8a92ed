/*
 * standin_h2: see standin_h2.h.
 *
 * A connection is a state machine: HANDSHAKE (TLS under way) -> OPEN (h2 session running) ->
 * CLOSING (GOAWAY submitted: streams in progress finish, then the connection closes once nghttp2
 * wants nothing more and the output is flushed). A stream is one too: RECEIVING (headers and body
 * arriving) -> DELAYED (a scripted delay) -> ANSWERED (response submitted), or REFUSED (a GOAWAY
 * excluded it). nghttp2 runs in memory (mem_recv / mem_send) over a bufferevent_openssl.
 */
#include "standin_h2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "standin.h"
#include "standin_check.h"
#include "standin_pushlog.h"
#include "standin_script.h"

#define MAX_CONCURRENT_STREAMS 1000
#define MAX_HEADER_LIST_SIZE 8000
#define CONN_WINDOW (1 << 20)
#define OUTPUT_HIGH (1 << 20)
#define OUTPUT_LOW (256 << 10)
#define HANDSHAKE_TIMEOUT_S 10
#define LISTEN_BACKLOG 1024
#define METHOD_MAX 16
#define PATH_MAX_BYTES 512
#define HEADER_MAX_BYTES 256
#define GOAWAY_DEBUG "{\"reason\":\"Shutdown\"}"

enum conn_state { CONN_HANDSHAKE, CONN_OPEN, CONN_CLOSING };

enum stream_state { STREAM_RECEIVING, STREAM_DELAYED, STREAM_ANSWERED, STREAM_REFUSED };

struct standin_h2;

/* One listening socket and the TLS context of its connections. */
struct front {
    struct standin_h2 *h2;
    SSL_CTX *ssl_ctx;
    struct evconnlistener *listener;
    bool client_auth;
    char address[INET6_ADDRSTRLEN + 8];
};

struct stream {
    struct conn *conn;
    struct stream *prev, *next; /* the connection's streams (or the free list), freed with it */
    int32_t id;
    enum stream_state state;
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

    /* The big buffers last: a new stream zeroes only what comes before them (STREAM_RESET_SIZE);
     * each is read only once written (has_method, has_path, present, body_len, the check). */
    char method[METHOD_MAX];
    char path[PATH_MAX_BYTES];
    char headers[STANDIN_HDR_COUNT][HEADER_MAX_BYTES];
    char body[STANDIN_MAX_PAYLOAD];
    struct standin_verdict verdict;
};

#define STREAM_RESET_SIZE offsetof(struct stream, method)
/* Streams kept for reuse: a stream is ~15 KiB, and allocating and zeroing one per request was
 * the stand-in's main cost under h2load. */
#define STREAM_POOL_MAX 2048

struct conn {
    struct standin_h2 *h2;
    struct conn *prev, *next;
    enum conn_state state;
    uint64_t id;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct stream *streams;
    int32_t goaway_last_id; /* INT32_MAX until a GOAWAY is submitted */
    bool client_auth;       /* false: came in on the --listen-noauth front */
    char topic[STANDIN_TOPIC_MAX + 1];
    bool has_topic;
    char peer[INET6_ADDRSTRLEN + 8];
};

struct standin_h2 {
    struct standin *ctx;
    struct front fronts[2]; /* [0] client certificate required; [1] --listen-noauth, optional */
    nghttp2_session_callbacks *callbacks;
    nghttp2_option *options;
    struct conn *conns;
    size_t nconns;
    struct stream *pool; /* free streams, linked by next */
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

static bool conn_flush(struct conn *c);
static void conn_free(struct conn *c);

/* --- small helpers --------------------------------------------------------------------------- */

static void format_peer(const struct sockaddr *sa, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, size, "[%s]:%u", host, port);
    } else {
        snprintf(out, size, "?");
    }
}

/* A random (version 4) UUID, uppercase as APNs writes them. The random bytes are drawn from
 * OpenSSL in batches: one RAND_bytes() per answer showed in profiles. */
static void new_uuid(struct standin_h2 *h2, char out[STANDIN_UUID_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    if (h2->random_used + 16 > sizeof(h2->random)) {
        if (RAND_bytes(h2->random, sizeof(h2->random)) != 1) {
            fprintf(stderr, "apns-standin: RAND_bytes failed\n");
            abort();
        }
        h2->random_used = 0;
    }
    unsigned char *b = h2->random + h2->random_used;
    h2->random_used += 16;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xF];
    }
    out[o] = '\0';
}

/* Copies untrusted text for a log line: printable ASCII only, cut to fit. */
static const char *sanitize(const char *in, char *out, size_t size)
{
    size_t n = 0;
    if (in == NULL)
        in = "-";
    for (; *in != '\0' && n + 1 < size; in++)
        out[n++] = (*in > 0x20 && *in < 0x7f) ? *in : '?';
    out[n] = '\0';
    return out;
}

static const char *stream_header(const struct stream *st, enum standin_header h)
{
    return (st->present & (1u << h)) ? st->headers[h] : NULL;
}

/* --- recording ------------------------------------------------------------------------------- */

static void log_request(const struct conn *c, const struct stream *st, int status,
                        const char *reason)
{
    FILE *f = c->h2->ctx->request_log;
    if (f == NULL)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - st->started.tv_sec) * 1e3 +
                (double)(now.tv_nsec - st->started.tv_nsec) / 1e6;
    time_t secs = (time_t)(st->time_ms / 1000);
    struct tm tm;
    char when[32], method[METHOD_MAX], path[224], topic[80], magic[48];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(
        f,
        "%s.%03dZ conn=%llu stream=%d %s %s topic=%s magic=%s status=%d reason=%s "
        "apns-id=%s ms=%.3f\n",
        when, (int)(st->time_ms % 1000), (unsigned long long)c->id, st->id,
        sanitize(st->has_method ? st->method : NULL, method, sizeof(method)),
        sanitize(st->has_path ? st->path : NULL, path, sizeof(path)),
        sanitize(stream_header(st, STANDIN_HDR_TOPIC), topic, sizeof(topic)),
        sanitize(st->verdict.has_push_magic ? st->verdict.push_magic : NULL, magic, sizeof(magic)),
        status, reason != NULL ? reason : "-", st->apns_id[0] ? st->apns_id : "-", ms);
}

/* Records a request that ended, with the status the client received (0: none). */
static void stream_record(struct conn *c, struct stream *st, bool delivered)
{
    struct standin *ctx = c->h2->ctx;
    int status = st->status;
    const char *reason = st->reason[0] ? st->reason : NULL;

    if (st->state == STREAM_RECEIVING)
        return; /* the request never ended: nothing to record */
    if (st->state == STREAM_REFUSED) {
        status = 0;
        reason = "GOAWAY";
    } else if (!delivered || st->state == STREAM_DELAYED) {
        status = 0;
        reason = "Cancelled";
        ctx->stats.cancelled++;
    } else {
        ctx->stats.answered++;
        if (status > 0 && status < STANDIN_STATUS_MAX)
            ctx->stats.status[status]++;
    }

    struct standin_push p = {
        .conn = c->id,
        .stream = st->id,
        .time_ms = st->time_ms,
        .token = st->verdict.has_token ? st->verdict.token : NULL,
        .topic = stream_header(st, STANDIN_HDR_TOPIC),
        .push_type = stream_header(st, STANDIN_HDR_PUSH_TYPE),
        .expiration = stream_header(st, STANDIN_HDR_EXPIRATION),
        .priority = stream_header(st, STANDIN_HDR_PRIORITY),
        .push_magic = st->verdict.has_push_magic ? st->verdict.push_magic : NULL,
        .apns_id = status != 0 && st->apns_id[0] ? st->apns_id : NULL,
        .status = status,
        .reason = reason,
        .timestamp_ms = status == 410 ? st->timestamp_ms : -1,
    };
    standin_pushlog_append(ctx->pushlog, &p);
    log_request(c, st, status, reason);
}

static void stream_free(struct conn *c, struct stream *st)
{
    if (st->timer_added)
        evtimer_del(&st->delay_timer);
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    struct standin_h2 *h2 = c->h2;
    if (h2->npool < STREAM_POOL_MAX) {
        st->next = h2->pool;
        h2->pool = st;
        h2->npool++;
    } else {
        free(st);
    }
}

/* --- answering ------------------------------------------------------------------------------- */

static ssize_t response_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                             size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                             void *user_data)
{
    struct stream *st = source->ptr;
    size_t n = st->response_len - st->response_sent;
    if (n > length)
        n = length;
    memcpy(buf, st->response + st->response_sent, n);
    st->response_sent += n;
    if (st->response_sent == st->response_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(name, value)                                                                            \
    {                                                                                              \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value),                    \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

/* Submits the response for st->status and st->reason: 200 with apns-id and no body, or the error
 * with {"reason":...} (and "timestamp" for 410). */
static void stream_answer(struct conn *c, struct stream *st)
{
    st->state = STREAM_ANSWERED;
    snprintf(st->status_text, sizeof(st->status_text), "%d", st->status);
    if (st->status == 410) {
        if (st->timestamp_ms < 0)
            st->timestamp_ms = standin_now_ms();
        st->response_len = (size_t)snprintf(st->response, sizeof(st->response),
                                            "{\"reason\":\"%s\",\"timestamp\":%lld}", st->reason,
                                            st->timestamp_ms);
    } else if (st->status != 200) {
        st->response_len =
            (size_t)snprintf(st->response, sizeof(st->response), "{\"reason\":\"%s\"}", st->reason);
    }
    snprintf(st->content_length, sizeof(st->content_length), "%zu", st->response_len);

    nghttp2_nv ok[] = {NV(":status", st->status_text), NV("apns-id", st->apns_id)};
    nghttp2_nv error[] = {NV(":status", st->status_text), NV("apns-id", st->apns_id),
                          NV("content-type", "application/json; charset=utf-8"),
                          NV("content-length", st->content_length)};
    nghttp2_data_provider body = {.source.ptr = st, .read_callback = response_read};
    int rv = st->status == 200 ? nghttp2_submit_response(c->session, st->id, ok, 2, NULL)
                               : nghttp2_submit_response(c->session, st->id, error, 4, &body);
    if (rv != 0) {
        fprintf(stderr, "apns-standin: conn %llu stream %d: cannot answer: %s\n",
                (unsigned long long)c->id, st->id, nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
}

/* Submits GOAWAY (once per connection, or again with a lower last stream id). */
static void conn_goaway(struct conn *c, int32_t last_stream_id)
{
    if (c->state == CONN_HANDSHAKE || last_stream_id >= c->goaway_last_id)
        return;
    if (last_stream_id < 0)
        last_stream_id = 0;
    int rv = nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, last_stream_id, NGHTTP2_NO_ERROR,
                                   (const uint8_t *)GOAWAY_DEBUG, strlen(GOAWAY_DEBUG));
    if (rv != 0) {
        fprintf(stderr, "apns-standin: conn %llu: cannot send GOAWAY: %s\n",
                (unsigned long long)c->id, nghttp2_strerror(rv));
        return;
    }
    c->goaway_last_id = last_stream_id;
    c->state = CONN_CLOSING;
    c->h2->ctx->stats.goaways++;
}

static void delay_expired(evutil_socket_t fd, short what, void *arg)
{
    struct stream *st = arg;
    struct conn *c = st->conn;
    st->timer_added = false;
    stream_answer(c, st);
    conn_flush(c);
}

/* The request on st is complete: check it, consult the script, answer (or not). */
static void stream_end_request(struct conn *c, struct stream *st)
{
    struct standin *ctx = c->h2->ctx;
    struct standin_request req = {0};
    struct standin_answer answer;

    ctx->stats.requests++;
    st->time_ms = standin_now_ms();
    req.method = st->has_method ? st->method : NULL;
    req.path = st->has_path ? st->path : NULL;
    for (int h = 0; h < STANDIN_HDR_COUNT; h++)
        req.headers[h] = stream_header(st, (enum standin_header)h);
    req.duplicated = st->duplicated;
    req.body = st->body;
    req.body_len = st->body_len;
    req.body_total = st->body_total;
    req.now = (long long)time(NULL);
    if (c->h2->topic != NULL)
        req.topic = c->h2->topic;
    else if (c->client_auth)
        req.topic = c->has_topic ? c->topic : NULL;
    else
        req.any_topic = true; /* no certificate to take a topic from */
    standin_check_request(&req, &st->verdict);

    st->status = st->verdict.status;
    st->timestamp_ms = -1;
    snprintf(st->reason, sizeof(st->reason), "%s", st->verdict.reason ? st->verdict.reason : "");
    /* APNs echoes a valid apns-id and makes one up otherwise. */
    if (req.headers[STANDIN_HDR_ID] != NULL && standin_check_uuid(req.headers[STANDIN_HDR_ID]))
        snprintf(st->apns_id, sizeof(st->apns_id), "%s", req.headers[STANDIN_HDR_ID]);
    else
        new_uuid(c->h2, st->apns_id);

    if (st->id > c->goaway_last_id) {
        st->state = STREAM_REFUSED;
        return;
    }
    if (st->status == 200) {
        standin_script_take(ctx->script, st->verdict.token, &answer);
        switch (answer.kind) {
        case STANDIN_ANSWER_NORMAL:
            break;
        case STANDIN_ANSWER_STATUS:
            st->status = answer.status;
            snprintf(st->reason, sizeof(st->reason), "%s", answer.reason);
            st->timestamp_ms = answer.timestamp_ms;
            break;
        case STANDIN_ANSWER_GOAWAY:
            st->state = STREAM_REFUSED;
            conn_goaway(c, st->id - 2);
            return;
        case STANDIN_ANSWER_DELAY: {
            struct timeval tv = {answer.delay_ms / 1000, (answer.delay_ms % 1000) * 1000};
            st->state = STREAM_DELAYED;
            evtimer_assign(&st->delay_timer, ctx->base, delay_expired, st);
            evtimer_add(&st->delay_timer, &tv);
            st->timer_added = true;
            return;
        }
        }
    }
    stream_answer(c, st);
}

/* --- nghttp2 callbacks ----------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct standin_h2 *h2 = c->h2;
    struct stream *st = h2->pool;
    if (st != NULL) {
        h2->pool = st->next;
        h2->npool--;
    } else if ((st = malloc(sizeof(*st))) == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    memset(st, 0, STREAM_RESET_SIZE);
    st->conn = c;
    st->id = frame->hd.stream_id;
    st->state = STREAM_RECEIVING;
    clock_gettime(CLOCK_MONOTONIC, &st->started);
    st->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    c->h2->ctx->stats.streams++;
    return 0;
}

/* Copies a header value, cut to the buffer: every buffer is longer than any valid value (a topic
 * is at most STANDIN_TOPIC_MAX), so a cut value stays invalid. */
static void copy_value(char *dst, size_t size, const uint8_t *value, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, value, len);
    dst[len] = '\0';
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are ignored */
    struct stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    enum standin_header h;
    if (st == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        copy_value(st->method, sizeof(st->method), value, valuelen);
        st->has_method = true;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        copy_value(st->path, sizeof(st->path), value, valuelen);
        st->has_path = true;
    } else if (standin_header_lookup((const char *)name, namelen, &h)) {
        if (st->present & (1u << h))
            st->duplicated |= 1u << h;
        copy_value(st->headers[h], sizeof(st->headers[h]), value, valuelen);
        st->present |= 1u << h;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL || st->state != STREAM_RECEIVING)
        return 0;
    size_t room = sizeof(st->body) - st->body_len;
    size_t keep = len < room ? len : room;
    memcpy(st->body + st->body_len, data, keep);
    st->body_len += keep;
    st->body_total += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct conn *c = user_data;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st != NULL && st->state == STREAM_RECEIVING)
        stream_end_request(c, st);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct conn *c = user_data;
    struct stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL)
        return 0;
    if (st->state == STREAM_RECEIVING)
        c->h2->ctx->stats.cancelled++;
    stream_record(c, st, error_code == NGHTTP2_NO_ERROR);
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_free(c, st);
    return 0;
}

/* --- connections ----------------------------------------------------------------------------- */

/* Frames what nghttp2 has to send into the output buffer, up to OUTPUT_HIGH, and reads only
 * while the output is below it. Closes the connection when the session is over; returns false
 * when it did (c is gone). */
static bool conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (evbuffer_get_length(out) < OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            fprintf(stderr, "apns-standin: conn %llu: %s\n", (unsigned long long)c->id,
                    nghttp2_strerror((int)n));
            conn_free(c);
            return false;
        }
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0) {
            conn_free(c);
            return false;
        }
    }
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
        if (evbuffer_get_length(out) == 0) {
            conn_free(c);
            return false;
        }
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0); /* wake when fully flushed */
        return true;
    }
    if (evbuffer_get_length(out) >= OUTPUT_HIGH)
        bufferevent_disable(c->bev, EV_READ);
    else
        bufferevent_enable(c->bev, EV_READ);
    return true;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->session == NULL)
        return;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t n = nghttp2_session_mem_recv(c->session, v.iov_base, v.iov_len);
        if (n < 0) {
            if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                fprintf(stderr, "apns-standin: conn %llu from %s: %s\n", (unsigned long long)c->id,
                        c->peer, nghttp2_strerror((int)n));
            conn_free(c);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    conn_flush(c);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->session != NULL)
        conn_flush(c);
}

/* Reads the UID attribute of the client certificate's subject: the push topic. */
static bool peer_topic(SSL *ssl, char *out, size_t size)
{
    X509 *peer = SSL_get1_peer_certificate(ssl);
    bool ok = false;
    if (peer == NULL)
        return false;
    X509_NAME *name = X509_get_subject_name(peer);
    int idx = X509_NAME_get_index_by_NID(name, NID_userId, -1);
    if (idx >= 0) {
        ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, data);
        if (n > 0 && (size_t)n < size && memchr(utf8, '\0', (size_t)n) == NULL) {
            memcpy(out, utf8, (size_t)n);
            out[n] = '\0';
            ok = true;
        }
        OPENSSL_free(utf8);
    }
    X509_free(peer);
    return ok;
}

static void log_tls_failure(struct conn *c, const char *what)
{
    char reason[256] = "";
    unsigned long e;
    /* libevent queues SSL_get_error()'s small code first, then OpenSSL's own errors. */
    while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
        if (e > SSL_ERROR_WANT_CLIENT_HELLO_CB || reason[0] == '\0')
            ERR_error_string_n(e, reason, sizeof(reason));
    if (strncmp(reason, "error:0000000", 13) == 0)
        snprintf(reason, sizeof(reason), "connection closed by the client");
    fprintf(stderr, "apns-standin: conn %llu from %s: %s%s%s\n", (unsigned long long)c->id, c->peer,
            what, reason[0] ? ": " : "", reason);
}

/* TLS is up: insist on h2, learn the topic, start the HTTP/2 session. */
static void conn_start(struct conn *c)
{
    struct standin_h2 *h2 = c->h2;
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;

    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
        h2->ctx->stats.alpn_failures++;
        fprintf(stderr, "apns-standin: conn %llu from %s: no h2 in ALPN, closing\n",
                (unsigned long long)c->id, c->peer);
        conn_free(c);
        return;
    }
    if (c->client_auth)
        c->has_topic = peer_topic(ssl, c->topic, sizeof(c->topic));
    if (nghttp2_session_server_new2(&c->session, h2->callbacks, c, h2->options) != 0) {
        conn_free(c);
        return;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        conn_free(c);
        return;
    }
    c->state = CONN_OPEN;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
    if (h2->shutting_down)
        conn_goaway(c, 0);
    /* Data that came with the handshake is already waiting in the input buffer. */
    conn_read(c->bev, c);
}

static void conn_event(struct bufferevent *bev, short events, void *arg)
{
    struct conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        conn_start(c);
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        c->h2->ctx->stats.tls_failures++;
        log_tls_failure(c, (events & BEV_EVENT_TIMEOUT) ? "TLS handshake timed out"
                                                        : "TLS handshake failed");
    }
    conn_free(c);
}

static void conn_free(struct conn *c)
{
    struct standin_h2 *h2 = c->h2;
    if (c->session != NULL) {
        /* nghttp2_session_del() does not report streams it frees: record them here. */
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    while (c->streams != NULL) {
        if (c->streams->state == STREAM_RECEIVING)
            h2->ctx->stats.cancelled++;
        stream_record(c, c->streams, false);
        stream_free(c, c->streams);
    }
    if (c->bev != NULL) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (c->state != CONN_HANDSHAKE && ssl != NULL &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            SSL_shutdown(ssl); /* best effort close_notify; the socket is non-blocking */
        bufferevent_free(c->bev);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h2->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h2->nconns--;
    h2->ctx->stats.connections_open--;
    free(c);
    if (h2->shutting_down && h2->nconns == 0 && h2->shutdown_done != NULL) {
        void (*done)(void *) = h2->shutdown_done;
        h2->shutdown_done = NULL;
        done(h2->shutdown_arg);
    }
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct front *front = arg;
    struct standin_h2 *h2 = front->h2;
    struct standin *ctx = h2->ctx;
    char peer[INET6_ADDRSTRLEN + 8];

    format_peer(sa, peer, sizeof(peer));
    if (h2->nconns >= h2->max_connections || h2->shutting_down) {
        ctx->stats.connections_refused++;
        fprintf(stderr, "apns-standin: refusing connection from %s: %s\n", peer,
                h2->shutting_down ? "shutting down" : "--max-connections reached");
        evutil_closesocket(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct conn *c = calloc(1, sizeof(*c));
    SSL *ssl = SSL_new(front->ssl_ctx);
    if (c == NULL || ssl == NULL) {
        free(c);
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    c->bev = bufferevent_openssl_socket_new(ctx->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->bev == NULL) {
        SSL_free(ssl);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->h2 = h2;
    c->id = ++h2->next_conn_id;
    c->state = CONN_HANDSHAKE;
    c->client_auth = front->client_auth;
    c->goaway_last_id = INT32_MAX;
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    c->next = h2->conns;
    if (h2->conns != NULL)
        h2->conns->prev = c;
    h2->conns = c;
    h2->nconns++;
    ctx->stats.connections_accepted++;
    ctx->stats.connections_open++;

    struct timeval handshake_timeout = {HANDSHAKE_TIMEOUT_S, 0};
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
    bufferevent_set_timeouts(c->bev, &handshake_timeout, &handshake_timeout);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* --- setup ----------------------------------------------------------------------------------- */

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        if (i + 1 + len > inlen)
            break;
        if (len == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol: h2 or nothing */
}

static bool ssl_error(char *err, size_t err_size, const char *what, const char *file)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, err_size, "%s %s: %s", what, file ? file : "", reason);
    return false;
}

/* The TLS context of a front; with client_auth, a client certificate chaining to the client CAs
 * is required. */
static SSL_CTX *new_tls_context(const struct standin_h2_config *cfg, bool client_auth, char *err,
                                size_t err_size)
{
    static const unsigned char session_context[] = "apns-standin";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_error(err, err_size, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_id_context(ctx, session_context, sizeof(session_context) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    /* HTTP/2 (RFC 9113 9.2.2) forbids the non-AEAD TLS 1.2 suites. */
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM") != 1) {
        ssl_error(err, err_size, "cipher list", NULL);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        ssl_error(err, err_size, "--cert", cfg->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, err_size, "--key", cfg->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, err_size, "--key does not match --cert", cfg->key_file);
        goto fail;
    }
    if (!client_auth)
        return ctx;
    if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1) {
        ssl_error(err, err_size, "--client-ca", cfg->client_ca_file);
        goto fail;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
    if (names == NULL) {
        ssl_error(err, err_size, "--client-ca", cfg->client_ca_file);
        goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(
        ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static bool setup_nghttp2(struct standin_h2 *h2, char *err, size_t err_size)
{
    if (nghttp2_session_callbacks_new(&h2->callbacks) != 0 ||
        nghttp2_option_new(&h2->options) != 0) {
        snprintf(err, err_size, "nghttp2: out of memory");
        return false;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(h2->callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(h2->callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(h2->callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(h2->callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(h2->callbacks, on_stream_close);
    return true;
}

static bool setup_front(struct standin_h2 *h2, struct front *front,
                        const struct standin_h2_config *cfg, bool client_auth, char *err,
                        size_t err_size)
{
    const char *option = client_auth ? "--listen" : "--listen-noauth";
    const char *listen = client_auth ? cfg->listen : cfg->listen_noauth;
    struct sockaddr_storage ss;
    socklen_t sslen;

    front->h2 = h2;
    front->client_auth = client_auth;
    if (!standin_parse_address(listen, &ss, &sslen)) {
        snprintf(err, err_size, "%s %s: expected HOST:PORT (an IP address)", option, listen);
        return false;
    }
    front->ssl_ctx = new_tls_context(cfg, client_auth, err, err_size);
    if (front->ssl_ctx == NULL)
        return false;
    front->listener =
        evconnlistener_new_bind(h2->ctx->base, on_accept, front,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                LISTEN_BACKLOG, (struct sockaddr *)&ss, (int)sslen);
    if (front->listener == NULL) {
        snprintf(err, err_size, "%s %s: %s", option, listen, strerror(errno));
        return false;
    }
    socklen_t len = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(front->listener), (struct sockaddr *)&ss, &len) != 0) {
        snprintf(err, err_size, "getsockname: %s", strerror(errno));
        return false;
    }
    format_peer((struct sockaddr *)&ss, front->address, sizeof(front->address));
    return true;
}

struct standin_h2 *standin_h2_new(struct standin *ctx, const struct standin_h2_config *cfg,
                                  char *err, size_t err_size)
{
    struct standin_h2 *h2 = calloc(1, sizeof(*h2));
    if (h2 == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    h2->ctx = ctx;
    h2->topic = cfg->topic;
    h2->random_used = sizeof(h2->random); /* empty: the first apns-id draws a batch */
    h2->max_connections = cfg->max_connections;
    if (!setup_nghttp2(h2, err, err_size) ||
        !setup_front(h2, &h2->fronts[0], cfg, true, err, err_size) ||
        (cfg->listen_noauth != NULL &&
         !setup_front(h2, &h2->fronts[1], cfg, false, err, err_size))) {
        standin_h2_free(h2);
        return NULL;
    }
    return h2;
}

void standin_h2_free(struct standin_h2 *h2)
{
    if (h2 == NULL)
        return;
    h2->shutdown_done = NULL;
    while (h2->conns != NULL)
        conn_free(h2->conns);
    for (int i = 0; i < 2; i++) {
        if (h2->fronts[i].listener != NULL)
            evconnlistener_free(h2->fronts[i].listener);
        SSL_CTX_free(h2->fronts[i].ssl_ctx);
    }
    while (h2->pool != NULL) {
        struct stream *st = h2->pool;
        h2->pool = st->next;
        free(st);
    }
    nghttp2_session_callbacks_del(h2->callbacks);
    nghttp2_option_del(h2->options);
    free(h2);
}

const char *standin_h2_get0_address(const struct standin_h2 *h2)
{
    return h2->fronts[0].address;
}

const char *standin_h2_get0_noauth_address(const struct standin_h2 *h2)
{
    return h2->fronts[1].listener != NULL ? h2->fronts[1].address : NULL;
}

size_t standin_h2_open_connections(const struct standin_h2 *h2)
{
    return h2->nconns;
}

size_t standin_h2_goaway_all(struct standin_h2 *h2)
{
    size_t told = 0;
    struct conn *c = h2->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->state == CONN_OPEN) {
            conn_goaway(c, nghttp2_session_get_last_proc_stream_id(c->session));
            told++;
            conn_flush(c); /* may free c */
        }
        c = next;
    }
    return told;
}

void standin_h2_shutdown(struct standin_h2 *h2, void (*done)(void *arg), void *arg)
{
    h2->shutting_down = true;
    h2->shutdown_done = done;
    h2->shutdown_arg = arg;
    for (int i = 0; i < 2; i++)
        if (h2->fronts[i].listener != NULL)
            evconnlistener_disable(h2->fronts[i].listener);
    /* Connections still in their handshake get GOAWAY as soon as it completes. */
    standin_h2_goaway_all(h2);
    if (h2->nconns == 0 && h2->shutdown_done != NULL) {
        h2->shutdown_done = NULL;
        done(arg);
    }
}
