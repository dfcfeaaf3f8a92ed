/*
 * apns_conn: one HTTP/2 connection to APNs (apns_internal.h). TCP and TLS come from a
 * bufferevent_openssl on vouchd's loop (the name resolved by evdns, never blocking): TLS 1.2+,
 * ALPN h2 required, the push certificate as client certificate, the server's certificate and
 * name verified. nghttp2 runs in memory: what arrives is fed to nghttp2_session_mem_recv, and
 * what nghttp2 has to send is gathered once per loop pass (a flush event made active by whoever
 * queued frames) into one contiguous write. Each push is a stream; its answer (status, apns-id,
 * up to APNS_REPLY_BODY_MAX bytes of body) is handed to the client when the stream closes.
 *
 * Liveness: a tick each second times out streams older than the attempt timeout (RST_STREAM
 * CANCEL), PINGs a connection idle for PING_IDLE_S or one whose stream has just timed out, and
 * drops it when the PING is not answered in PING_TIMEOUT_S; past PING_SUSPECT_MS unanswered it
 * takes no new stream, so pushes go to another connection meanwhile. A GOAWAY from APNs stops new
 * streams; nghttp2 closes the streams above its last-stream-id as REFUSED_STREAM, which the client
 * sends again elsewhere without counting an attempt.
 *
 * A memory connection (client->memory, for tests and the fuzz target) has no socket: its output
 * collects in an evbuffer and its input comes from apns_conn_feed().
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "apns_internal.h"
#include "log.h"

#define HANDSHAKE_TIMEOUT_S 10
#define PING_IDLE_S 60
#define PING_TIMEOUT_S 15
/* A PING unanswered this long makes the connection suspect: it keeps its streams until the
 * PING's deadline but takes no new one (APNs answers a PING in a round trip). */
#define PING_SUSPECT_MS 2000
#define WRITE_CHUNK (64 << 10) /* nghttp2's output gathered into writes of this size */
#define OUTPUT_HIGH (1 << 20)  /* unwritten output beyond which reading pauses */
#define INPUT_MAX (256 << 10)  /* read at most this much before feeding nghttp2 */
#define HEADER_LIST_MAX 8192   /* our SETTINGS_MAX_HEADER_LIST_SIZE */
#define CONN_WINDOW (1 << 20)
#define REFILL_SHARE 8 /* a busy connection takes new streams when 1/8 of its limit is free */

struct apns_conn {
    struct apns_client *client;
    uint64_t id;
    enum apns_conn_state state;
    unsigned cert_generation;
    struct bufferevent *bev; /* NULL for a memory connection */
    struct evbuffer *memory_out;
    nghttp2_session *session;
    struct apns_job *head, *tail; /* streams in flight, oldest first */
    unsigned streams;
    struct event flush_event, tick;
    bool flush_scheduled, ever_open, read_paused;
    bool goaway_received;
    unsigned long answered; /* streams answered: the connection was of use */
    bool settings_received; /* APNs' first SETTINGS: its stream limit is known */
    int32_t goaway_last_id;
    uint64_t last_active_ms, ping_sent_ms; /* ping_sent_ms 0: no PING outstanding */
    char topic[APNS_TOPIC_MAX + 1];
    size_t topic_len;
    uint8_t wbuf[WRITE_CHUNK];
};

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;

static void conn_list_remove(struct apns_conn *conn, struct apns_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        conn->head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        conn->tail = job->prev;
    job->next = job->prev = NULL;
    job->conn = NULL;
    conn->streams--;
    /* nghttp2 may still call back for the stream (its close follows a frame not sent): it finds
     * no job then, never one that was handed back, retried elsewhere or freed. */
    nghttp2_session_set_stream_user_data(conn->session, job->stream_id, NULL);
}

/* The job of one of this connection's streams, or NULL once conn_list_remove handed it back.
 * A request whose HEADERS never left (refused after a GOAWAY) has no nghttp2 stream yet, hence
 * no user data: it is found in the list. */
static struct apns_job *conn_find(struct apns_conn *conn, int32_t stream_id)
{
    struct apns_job *job = nghttp2_session_get_stream_user_data(conn->session, stream_id);
    if (job != NULL)
        return job;
    for (job = conn->head; job != NULL; job = job->next) {
        if (job->stream_id == stream_id)
            return job;
    }
    return NULL;
}

/* Takes a stream off the connection and tells the client. */
static void stream_end(struct apns_conn *conn, struct apns_job *job, enum apns_stream_end how,
                       const char *why)
{
    conn_list_remove(conn, job);
    apns_client_stream_ended(conn->client, job, how, why);
    apns_client_schedule_dispatch(conn->client);
}

/* ---- nghttp2 callbacks (never free the connection: they only note what happened) ---- */

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *arg)
{
    struct apns_conn *conn = arg;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct apns_job *job = conn_find(conn, frame->hd.stream_id);
    if (job == NULL)
        return 0;
    if (name_len == 7 && memcmp(name, ":status", 7) == 0) {
        int status = 0;
        for (size_t i = 0; i < value_len && i < 3; i++) {
            if (value[i] < '0' || value[i] > '9')
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
            status = status * 10 + (value[i] - '0');
        }
        if (value_len != 3)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        /* 1xx are interim: the final status comes later. */
        if (status >= 200)
            job->status = status;
    } else if (name_len == 7 && memcmp(name, "apns-id", 7) == 0) {
        size_t n = value_len < sizeof(job->apns_id) - 1 ? value_len : sizeof(job->apns_id) - 1;
        for (size_t i = 0; i < n; i++)
            job->apns_id[i] = value[i] > 0x20 && value[i] < 0x7f ? (char)value[i] : '?';
        job->apns_id[n] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *arg)
{
    struct apns_conn *conn = arg;
    struct apns_job *job = conn_find(conn, stream_id);
    if (job == NULL)
        return 0;
    if (job->reply == NULL && (job->reply = malloc(APNS_REPLY_BODY_MAX)) == NULL)
        log_fatal("out of memory");
    size_t room = APNS_REPLY_BODY_MAX - job->reply_len;
    size_t take = len < room ? len : room; /* beyond the bound: ignored, not buffered */
    memcpy(job->reply + job->reply_len, data, take);
    job->reply_len += take;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *arg)
{
    struct apns_conn *conn = arg;
    struct apns_job *job = conn_find(conn, stream_id);
    char why[64];
    if (job == NULL)
        return 0;
    conn->last_active_ms = apns_now_ms();
    if (error_code == NGHTTP2_NO_ERROR && job->status != 0) {
        conn->answered++;
        stream_end(conn, job, APNS_STREAM_ANSWERED, NULL);
    } else if (error_code == NGHTTP2_REFUSED_STREAM && job->status == 0) {
        stream_end(conn, job, APNS_STREAM_UNPROCESSED, "refused stream (GOAWAY)");
    } else if (job->timed_out) {
        stream_end(conn, job, APNS_STREAM_FAILED, "timeout: no answer from APNs");
    } else {
        snprintf(why, sizeof(why), "stream reset: %s", nghttp2_http2_strerror(error_code));
        stream_end(conn, job, APNS_STREAM_FAILED, why);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct apns_conn *conn = arg;
    switch (frame->hd.type) {
    case NGHTTP2_GOAWAY:
        if (!conn->goaway_received || frame->goaway.last_stream_id < conn->goaway_last_id)
            conn->goaway_last_id = frame->goaway.last_stream_id;
        conn->goaway_received = true;
        if (conn->state == APNS_CONN_OPEN)
            conn->state = APNS_CONN_DRAINING;
        log_info("APNs connection %llu: GOAWAY (%s, last stream %d)", (unsigned long long)conn->id,
                 nghttp2_http2_strerror(frame->goaway.error_code),
                 (int)frame->goaway.last_stream_id);
        apns_client_schedule_dispatch(conn->client);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            conn->ping_sent_ms = 0;
            apns_client_schedule_dispatch(conn->client); /* it takes streams again */
        }
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            conn->settings_received = true;
            apns_client_schedule_dispatch(conn->client); /* the stream limit may have grown */
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int error,
                             void *arg)
{
    struct apns_conn *conn = arg;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* A request that never left (the peer sent GOAWAY first): it was not processed. */
    struct apns_job *job = conn_find(conn, frame->hd.stream_id);
    if (job != NULL)
        stream_end(conn, job, APNS_STREAM_UNPROCESSED, nghttp2_strerror(error));
    return 0;
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *arg)
{
    struct apns_job *job = source->ptr;
    size_t left = job->body_len - job->body_off;
    size_t n = left < length ? left : length;
    memcpy(buf, job->body + job->body_off, n);
    job->body_off += n;
    if (job->body_off == job->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void set_up_nghttp2(void)
{
    if (callbacks != NULL)
        return;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&options) != 0)
        log_fatal("out of memory");
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, on_frame_not_send);
    /* Until APNs' SETTINGS come: as many streams as it will surely take. */
    nghttp2_option_set_peer_max_concurrent_streams(options, 100);
    nghttp2_option_set_max_reserved_remote_streams(options, 0);
    nghttp2_option_set_max_send_header_block_length(options, 16384);
}

/* ---- output: one gathered write per loop pass ---- */

static void conn_fail(struct apns_conn *conn, const char *why);

/* Tells the client the connection is going. The next one waits for a backoff after a failure or
 * a GOAWAY; the backoff grows only while connections end without answering anything (APNs
 * sending GOAWAY at once, again and again, is not met with a connection per millisecond). */
static void conn_closed(struct apns_conn *conn, bool failed)
{
    apns_client_conn_closed(conn->client, conn, failed || conn->goaway_received, conn->ever_open,
                            conn->answered > 0);
}

/* Moves what nghttp2 has to send into the output. False: the connection was freed. */
static bool conn_flush(struct apns_conn *conn)
{
    struct evbuffer *out = conn->bev ? bufferevent_get_output(conn->bev) : conn->memory_out;
    size_t used = 0;
    conn->flush_scheduled = false;
    while (evbuffer_get_length(out) + used < OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(conn->session, &data);
        if (n < 0) {
            conn_fail(conn, nghttp2_strerror((int)n));
            return false;
        }
        if (n == 0)
            break;
        if (used + (size_t)n > sizeof(conn->wbuf)) {
            if (evbuffer_add(out, conn->wbuf, used) != 0) {
                conn_fail(conn, "out of memory");
                return false;
            }
            used = 0;
        }
        if ((size_t)n > sizeof(conn->wbuf)) {
            if (evbuffer_add(out, data, (size_t)n) != 0) {
                conn_fail(conn, "out of memory");
                return false;
            }
            continue;
        }
        memcpy(conn->wbuf + used, data, (size_t)n);
        used += (size_t)n;
    }
    if (used > 0 && evbuffer_add(out, conn->wbuf, used) != 0) {
        conn_fail(conn, "out of memory");
        return false;
    }
    /* Reading pauses while APNs does not read what we wrote (changed only when it changes: each
     * call costs an epoll_ctl). */
    bool pause = evbuffer_get_length(out) >= OUTPUT_HIGH;
    if (conn->bev != NULL && pause != conn->read_paused) {
        conn->read_paused = pause;
        if (pause)
            bufferevent_disable(conn->bev, EV_READ);
        else
            bufferevent_enable(conn->bev, EV_READ);
    }
    if (conn->state == APNS_CONN_DRAINING && conn->streams == 0) {
        /* Nothing left in flight: say goodbye, then close once it is written. */
        conn->state = APNS_CONN_CLOSING;
        if (nghttp2_submit_goaway(conn->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0) ==
            0)
            return conn_flush(conn);
    }
    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session)) {
        /* The session is over: after our GOAWAY or APNs' with nothing in flight it is a clean
         * end (once our last bytes are written); else a protocol error ended it. */
        bool clean =
            conn->state == APNS_CONN_CLOSING || (conn->goaway_received && conn->streams == 0);
        if (!clean) {
            conn_fail(conn, "HTTP/2 session ended by a protocol error");
            return false;
        }
        if (conn->bev != NULL && evbuffer_get_length(out) > 0)
            return true; /* write_cb comes back when it is written */
        conn_closed(conn, false);
        apns_conn_free(conn, "closed");
        return false;
    }
    return true;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    conn_flush(arg);
}

static void schedule_flush(struct apns_conn *conn)
{
    if (!conn->flush_scheduled) {
        conn->flush_scheduled = true;
        event_active(&conn->flush_event, EV_WRITE, 0);
    }
}

static void conn_fail(struct apns_conn *conn, const char *why)
{
    log_warn("APNs connection %llu to %s: %s", (unsigned long long)conn->id,
             conn->client->target.authority, why);
    conn_closed(conn, true);
    apns_conn_free(conn, why);
}

/* ---- input ---- */

bool apns_conn_feed(struct apns_conn *conn, const uint8_t *data, size_t len)
{
    conn->last_active_ms = apns_now_ms();
    ssize_t n = nghttp2_session_mem_recv(conn->session, data, len);
    if (n < 0) {
        conn_fail(conn, nghttp2_strerror((int)n));
        return false;
    }
    schedule_flush(conn);
    return true;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct apns_conn *conn = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (conn->session == NULL)
        return;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t len = v.iov_len;
        if (!apns_conn_feed(conn, v.iov_base, len))
            return;
        evbuffer_drain(in, len);
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct apns_conn *conn = arg;
    if (conn->session != NULL)
        conn_flush(conn);
}

/* ---- the connection's life ---- */

static bool start_session(struct apns_conn *conn)
{
    set_up_nghttp2();
    if (nghttp2_session_client_new2(&conn->session, callbacks, conn, options) != 0)
        return false;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, HEADER_LIST_MAX},
    };
    if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
        nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) !=
            0)
        return false;
    conn->state = APNS_CONN_OPEN;
    conn->ever_open = true;
    conn->last_active_ms = apns_now_ms();
    schedule_flush(conn);
    apns_client_schedule_dispatch(conn->client);
    return true;
}

static void tls_error_text(struct apns_conn *conn, char *out, size_t size)
{
    unsigned long e;
    out[0] = '\0';
    while ((e = bufferevent_get_openssl_error(conn->bev)) != 0) {
        if (e > SSL_ERROR_WANT_CLIENT_HELLO_CB || out[0] == '\0')
            ERR_error_string_n(e, out, size);
    }
    SSL *ssl = bufferevent_openssl_get_ssl(conn->bev);
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        snprintf(out, size, "the server certificate does not verify: %s",
                 X509_verify_cert_error_string(verify));
    }
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    struct apns_conn *conn = arg;
    char why[256];
    if (events & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
        if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
            conn_fail(conn, "the server did not agree to HTTP/2 (ALPN h2)");
            return;
        }
        bufferevent_set_timeouts(bev, NULL, NULL);
        if (!start_session(conn)) {
            conn_fail(conn, "cannot start the HTTP/2 session");
            return;
        }
        log_debug("APNs connection %llu to %s: up", (unsigned long long)conn->id,
                  conn->client->target.authority);
        read_cb(bev, conn); /* data that came with the handshake */
        return;
    }
    if (events & BEV_EVENT_ERROR) {
        int dns = bufferevent_socket_get_dns_error(bev);
        if (dns != 0)
            snprintf(why, sizeof(why), "cannot resolve %.64s: %s", conn->client->target.host,
                     evutil_gai_strerror(dns));
        else
            tls_error_text(conn, why, sizeof(why));
        if (why[0] == '\0')
            snprintf(why, sizeof(why), "%s",
                     evutil_socket_error_to_string(evutil_socket_geterror(bufferevent_getfd(bev))));
        conn_fail(conn, why);
    } else if (events & BEV_EVENT_TIMEOUT) {
        conn_fail(conn, "timeout while connecting");
    } else if (events & BEV_EVENT_EOF) {
        if (conn->state == APNS_CONN_CLOSING || (conn->goaway_received && conn->streams == 0)) {
            conn_closed(conn, false);
            apns_conn_free(conn, "closed by APNs");
        } else {
            conn_fail(conn, "connection closed by APNs");
        }
    }
}

bool apns_conn_tick(struct apns_conn *conn)
{
    uint64_t now = apns_now_ms();
    if (conn->session == NULL)
        return true;
    if (conn->ping_sent_ms != 0 && now - conn->ping_sent_ms >= PING_TIMEOUT_S * 1000u) {
        conn_fail(conn, "PING not answered");
        return false;
    }
    bool wrote = false, timed_out = false;
    uint64_t timeout = conn->client->cfg.timeout_ms;
    for (struct apns_job *job = conn->head; job != NULL && now - job->sent_ms >= timeout;
         job = job->next) {
        if (!job->timed_out) {
            job->timed_out = true;
            nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, job->stream_id,
                                      NGHTTP2_CANCEL);
            wrote = timed_out = true;
        }
    }
    /* A busy connection is never idle: its peer may be gone all the same, and each push and
     * retry sent on it would wait its timeout. A stream timing out is when to ask. */
    bool idle = conn->streams == 0 && now - conn->last_active_ms >= PING_IDLE_S * 1000u;
    if (conn->ping_sent_ms == 0 && (idle || timed_out)) {
        if (nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
            conn->ping_sent_ms = now;
            wrote = true;
        }
    }
    if (wrote)
        schedule_flush(conn);
    return true;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)apns_conn_tick(arg);
}

static SSL *new_ssl(struct apns_client *c)
{
    SSL *ssl = SSL_new(c->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    bool ok = c->target.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, c->target.host) == 1
                                   : (SSL_set_tlsext_host_name(ssl, c->target.host) == 1 &&
                                      SSL_set1_host(ssl, c->target.host) == 1);
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

struct apns_conn *apns_conn_new(struct apns_client *c, const char *topic, uint64_t id)
{
    struct apns_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return NULL;
    conn->client = c;
    conn->id = id;
    conn->state = APNS_CONN_CONNECTING;
    conn->cert_generation = c->cert_generation;
    snprintf(conn->topic, sizeof(conn->topic), "%s", topic);
    conn->topic_len = strlen(conn->topic);
    event_assign(&conn->flush_event, c->base, -1, 0, flush_cb, conn);
    event_assign(&conn->tick, c->base, -1, EV_PERSIST, tick_cb, conn);
    const struct timeval second = {1, 0};
    event_add(&conn->tick, &second);
    if (c->memory) {
        if ((conn->memory_out = evbuffer_new()) == NULL || !start_session(conn)) {
            apns_conn_free(conn, "cannot start");
            return NULL;
        }
        return conn;
    }
    SSL *ssl = new_ssl(c);
    if (ssl == NULL) {
        ERR_clear_error();
        apns_conn_free(conn, "cannot start");
        return NULL;
    }
    conn->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                               BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (conn->bev == NULL) {
        SSL_free(ssl);
        apns_conn_free(conn, "cannot start");
        return NULL;
    }
    /* Our buffers give the size of a TLS write, not libevent's 16 KiB default. */
    bufferevent_set_max_single_write(conn->bev, WRITE_CHUNK);
    bufferevent_set_max_single_read(conn->bev, INPUT_MAX);
    bufferevent_setcb(conn->bev, read_cb, write_cb, event_cb, conn);
    const struct timeval handshake = {HANDSHAKE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(conn->bev, &handshake, &handshake);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect_hostname(conn->bev, c->dns, AF_UNSPEC, c->target.host,
                                            c->target.port) != 0) {
        apns_conn_free(conn, "cannot start");
        return NULL;
    }
    return conn;
}

void apns_conn_free(struct apns_conn *conn, const char *why)
{
    if (conn == NULL)
        return;
    /* Whatever is still in flight has no answer now. */
    while (conn->head != NULL) {
        struct apns_job *job = conn->head;
        bool refused = conn->goaway_received && job->stream_id > conn->goaway_last_id;
        conn_list_remove(conn, job);
        apns_client_stream_ended(conn->client, job,
                                 refused ? APNS_STREAM_UNPROCESSED : APNS_STREAM_FAILED,
                                 refused ? "refused stream (GOAWAY)" : why);
    }
    event_del(&conn->flush_event);
    event_del(&conn->tick);
    if (conn->bev != NULL)
        bufferevent_free(conn->bev);
    nghttp2_session_del(conn->session);
    if (conn->memory_out != NULL)
        evbuffer_free(conn->memory_out);
    free(conn);
}

enum apns_conn_state apns_conn_state(const struct apns_conn *conn)
{
    return conn->state;
}

unsigned apns_conn_cert_generation(const struct apns_conn *conn)
{
    return conn->cert_generation;
}

bool apns_conn_waiting_settings(const struct apns_conn *conn)
{
    return conn->state == APNS_CONN_OPEN && !conn->settings_received;
}

uint64_t apns_conn_id(const struct apns_conn *conn)
{
    return conn->id;
}

unsigned apns_conn_room(const struct apns_conn *conn, unsigned cap)
{
    /* Nothing before APNs' SETTINGS: streams beyond its limit would be refused. */
    if (conn->state != APNS_CONN_OPEN || !conn->settings_received)
        return 0;
    /* Pushes sent on a peer that may be gone would each wait out its timeout: while the
     * connection is suspect the dispatcher uses the others, or opens one. */
    if (conn->ping_sent_ms != 0 && apns_now_ms() - conn->ping_sent_ms >= PING_SUSPECT_MS)
        return 0;
    uint32_t peer =
        nghttp2_session_get_remote_settings(conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (peer < cap)
        cap = peer;
    unsigned room = conn->streams < cap ? cap - conn->streams : 0;
    /* New streams go in batches, once 1/REFILL_SHARE of the limit is free (an idle connection
     * has all of it): one write then carries that many pushes, which APNs reads in one go and
     * answers in few writes. Refilled a stream at a time, as each answer came back, it had
     * settled at about 18 pushes a write, and the stand-in read 9 at a time (11,000 reads per
     * 100,000 pushes, 2,100 now; the client's CPU a push 3.3 -> 2.6 us). While most streams
     * wait on a slow APNs, up to an eighth of the limit stays unused until more answers come. */
    if (room < (cap + REFILL_SHARE - 1) / REFILL_SHARE)
        return 0;
    return room;
}

bool apns_conn_submit(struct apns_conn *conn, struct apns_job *job)
{
    struct apns_client *c = conn->client;
    if (conn->state != APNS_CONN_OPEN)
        return false;
    job->body_off = 0;
    job->status = 0;
    job->apns_id[0] = '\0';
    job->reply_len = 0;
    job->timed_out = false;
    /* apns-expiration is computed for each attempt; its text once a second. */
    time_t now = time(NULL);
    if (now != c->expiration_second) {
        c->expiration_second = now;
        c->expiration_len = (size_t)snprintf(c->expiration, sizeof(c->expiration), "%lld",
                                             (long long)now + (long long)c->cfg.expiration_s);
    }
    memcpy(job->expiration, c->expiration, c->expiration_len);
    job->expiration_len = c->expiration_len;
#define NV(n, v, vlen, f)                                                                          \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen),                                     \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE | (f)                     \
    }
    const nghttp2_nv nva[] = {
        NV(":method", "POST", 4, 0),
        NV(":scheme", "https", 5, 0),
        NV(":authority", c->target.authority, c->target.authority_len, 0),
        /* A path (its device token) changes with every push: kept out of the HPACK table, so
         * that the headers that repeat stay in it. The expiration's text changes once a second
         * and every push of that second repeats it: indexed, it costs both ends one byte a push
         * instead of a literal name and value (a new entry a second; those and the other
         * repeated headers age out of the 4 KiB table in turn, each then sent once again). */
        NV(":path", job->data, job->path_len, NGHTTP2_NV_FLAG_NO_INDEX),
        NV("apns-topic", conn->topic, conn->topic_len, 0),
        NV("apns-push-type", "mdm", 3, 0),
        NV("apns-expiration", job->expiration, job->expiration_len, 0),
        NV("apns-priority", "10", 2, 0),
        NV("content-type", "application/json", 16, 0),
        NV("content-length", job->length, job->length_len, 0),
    };
#undef NV
    nghttp2_data_provider body = {.source.ptr = job, .read_callback = read_body};
    int32_t id =
        nghttp2_submit_request(conn->session, NULL, nva, sizeof(nva) / sizeof(nva[0]), &body, job);
    if (id < 0) {
        log_warn("APNs connection %llu: cannot submit a push: %s", (unsigned long long)conn->id,
                 nghttp2_strerror(id));
        apns_conn_drain(conn);
        return false;
    }
    job->stream_id = id;
    job->conn = conn;
    job->sent_ms = apns_now_ms();
    job->prev = conn->tail;
    job->next = NULL;
    if (conn->tail)
        conn->tail->next = job;
    else
        conn->head = job;
    conn->tail = job;
    conn->streams++;
    conn->last_active_ms = job->sent_ms;
    schedule_flush(conn);
    return true;
}

void apns_conn_drain(struct apns_conn *conn)
{
    if (conn->state == APNS_CONN_OPEN)
        conn->state = APNS_CONN_DRAINING;
    if (conn->state == APNS_CONN_DRAINING)
        schedule_flush(conn);
}

struct evbuffer *apns_conn_get0_output(struct apns_conn *conn)
{
    return conn->memory_out;
}
