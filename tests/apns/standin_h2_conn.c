/*
 * standin_h2_conn: one connection of the HTTP/2 front (standin_h2_internal.h), from the accepted
 * socket to its close. The TLS handshake runs in a bufferevent_openssl (10 s at most); then h2
 * must have been negotiated (ALPN), the topic is read from the client certificate's subject UID,
 * and an nghttp2 server session starts with SETTINGS_MAX_CONCURRENT_STREAMS 1000. nghttp2 runs in
 * memory: input is fed to mem_recv, mem_send's output is framed into the bufferevent up to 1 MiB,
 * and reading pauses above that until the client reads. GOAWAY moves the connection to CLOSING;
 * it closes once nghttp2 wants nothing more and the output is flushed. The connection owns its
 * bufferevent (SSL and socket with it), its session and its streams; the struct standin_h2 keeps
 * it in its list and counts it.
 */
#include "standin_h2_internal.h"

#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "standin.h"

#define MAX_CONCURRENT_STREAMS 1000
#define MAX_HEADER_LIST_SIZE 8000
#define CONN_WINDOW (1 << 20)
#define OUTPUT_HIGH (1 << 20)
#define OUTPUT_LOW (256 << 10)
#define HANDSHAKE_TIMEOUT_S 10
#define GOAWAY_DEBUG "{\"reason\":\"Shutdown\"}"

void standin_h2_conn_goaway(struct standin_h2_conn *c, int32_t last_stream_id)
{
    if (c->state == STANDIN_H2_CONN_HANDSHAKE || last_stream_id >= c->goaway_last_id)
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
    c->state = STANDIN_H2_CONN_CLOSING;
    c->h2->ctx->stats.goaways++;
}

bool standin_h2_conn_flush(struct standin_h2_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (evbuffer_get_length(out) < OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->session, &data);
        if (n < 0) {
            fprintf(stderr, "apns-standin: conn %llu: %s\n", (unsigned long long)c->id,
                    nghttp2_strerror((int)n));
            standin_h2_conn_free(c);
            return false;
        }
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0) {
            standin_h2_conn_free(c);
            return false;
        }
    }
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) {
        if (evbuffer_get_length(out) == 0) {
            standin_h2_conn_free(c);
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
    struct standin_h2_conn *c = arg;
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
            standin_h2_conn_free(c);
            return;
        }
        evbuffer_drain(in, (size_t)n);
    }
    standin_h2_conn_flush(c);
}

static void conn_write(struct bufferevent *bev, void *arg)
{
    struct standin_h2_conn *c = arg;
    if (c->session != NULL)
        standin_h2_conn_flush(c);
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

static void log_tls_failure(struct standin_h2_conn *c, const char *what)
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
static void conn_start(struct standin_h2_conn *c)
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
        standin_h2_conn_free(c);
        return;
    }
    if (c->client_auth)
        c->has_topic = peer_topic(ssl, c->topic, sizeof(c->topic));
    if (nghttp2_session_server_new2(&c->session, h2->callbacks, c, h2->options) != 0) {
        standin_h2_conn_free(c);
        return;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 2) != 0 ||
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        standin_h2_conn_free(c);
        return;
    }
    c->state = STANDIN_H2_CONN_OPEN;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUTPUT_LOW, 0);
    if (h2->shutting_down)
        standin_h2_conn_goaway(c, 0);
    /* Data that came with the handshake is already waiting in the input buffer. */
    conn_read(c->bev, c);
}

static void conn_event(struct bufferevent *bev, short events, void *arg)
{
    struct standin_h2_conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        conn_start(c);
        return;
    }
    if (c->state == STANDIN_H2_CONN_HANDSHAKE) {
        c->h2->ctx->stats.tls_failures++;
        log_tls_failure(c, (events & BEV_EVENT_TIMEOUT) ? "TLS handshake timed out"
                                                        : "TLS handshake failed");
    }
    standin_h2_conn_free(c);
}

void standin_h2_conn_free(struct standin_h2_conn *c)
{
    struct standin_h2 *h2 = c->h2;
    if (c->session != NULL) {
        /* nghttp2_session_del() does not report streams it frees: record them here. */
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    while (c->streams != NULL) {
        if (c->streams->state == STANDIN_H2_STREAM_RECEIVING)
            h2->ctx->stats.cancelled++;
        standin_h2_record_stream(c, c->streams, false);
        standin_h2_stream_free(c, c->streams);
    }
    if (c->bev != NULL) {
        SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
        if (c->state != STANDIN_H2_CONN_HANDSHAKE && ssl != NULL &&
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

void standin_h2_conn_accept(struct standin_h2_front *front, evutil_socket_t fd, const char *peer)
{
    struct standin_h2 *h2 = front->h2;
    struct standin *ctx = h2->ctx;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct standin_h2_conn *c = calloc(1, sizeof(*c));
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
    c->state = STANDIN_H2_CONN_HANDSHAKE;
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
