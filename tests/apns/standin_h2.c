/*
 * standin_h2: see standin_h2.h. This file is the front itself: its listening sockets, the TLS
 * context of each (TLS 1.2+, AEAD suites, ALPN h2 or nothing, and for the first a client
 * certificate chaining to --client-ca), the nghttp2 callbacks and options every session shares,
 * the refusal of connections over --max-connections or during shutdown, and the public API. The
 * rest of the front is in standin_h2_conn.c (a connection), standin_h2_stream.c (the nghttp2
 * stream callbacks), standin_h2_answer.c (the responses) and standin_h2_record.c (the record of
 * each request); standin_h2_internal.h is their shared data model and says who owns what.
 */
#include "standin_h2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/listener.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "standin.h"
#include "standin_h2_internal.h"

#define LISTEN_BACKLOG 1024

/* --- accepting ------------------------------------------------------------------------------- */

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

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct standin_h2_front *front = arg;
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
    standin_h2_conn_accept(front, fd, peer);
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
    standin_h2_stream_set_callbacks(h2->callbacks);
    return true;
}

static bool setup_front(struct standin_h2 *h2, struct standin_h2_front *front,
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
        standin_h2_conn_free(h2->conns);
    for (int i = 0; i < 2; i++) {
        if (h2->fronts[i].listener != NULL)
            evconnlistener_free(h2->fronts[i].listener);
        SSL_CTX_free(h2->fronts[i].ssl_ctx);
    }
    standin_h2_stream_pool_free(h2);
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
    struct standin_h2_conn *c = h2->conns;
    while (c != NULL) {
        struct standin_h2_conn *next = c->next;
        if (c->state == STANDIN_H2_CONN_OPEN) {
            standin_h2_conn_goaway(c, nghttp2_session_get_last_proc_stream_id(c->session));
            told++;
            standin_h2_conn_flush(c); /* may free c */
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
