/*
 * standin_h2: the HTTP/2-over-TLS front of apns-standin, behaving like api.push.apple.com.
 *
 * TLS 1.2 or newer, ALPN h2 and nothing else, and a client certificate that must chain to the
 * client CAs (the handshake fails without one). The topic a connection may push to is the UID
 * attribute (0.9.2342.19200300.100.1.1) of its client certificate's subject, as with Apple's MDM
 * push certificates, unless the configuration names one topic for everybody.
 *
 * An optional second front (listen_noauth) is the same server without client authentication,
 * for load generators that cannot present a certificate (h2load): its connections may push to
 * the configured topic, or to any topic when none is configured. Tests of authentication use the
 * first front only. Each request is
 * checked (standin_check), then answered as the script says (standin_script): now, after a delay,
 * or with a GOAWAY and no answer. SETTINGS_MAX_CONCURRENT_STREAMS is 1000, as APNs sends.
 *
 * Every request that ended is recorded in the push log when its stream closes, with the status the
 * client actually received (0 when it received none), and counted in the shared stats.
 *
 * Memory is bounded: per-connection output above 1 MiB stops both the framing of more output and
 * the reading of more input until the client reads; a request body is kept up to 4096 bytes and
 * only counted beyond; header values are cut at fixed sizes that exceed every valid value.
 *
 * The front borrows the struct standin; it owns its listener, TLS context, connections and
 * streams, which standin_h2_free() closes.
 */
#ifndef VOUCH_STANDIN_H2_H
#define VOUCH_STANDIN_H2_H

#include <stdbool.h>
#include <stddef.h>

struct standin;

struct standin_h2_config {
    const char *listen;         /* "127.0.0.1:PORT" or "[::1]:PORT"; PORT 0 picks a free one */
    const char *listen_noauth;  /* a second front without client authentication, or NULL */
    const char *cert_file;      /* server certificate (chain), PEM */
    const char *key_file;       /* its key, PEM */
    const char *client_ca_file; /* CA certificates a client certificate must chain to, PEM */
    const char *topic;          /* the one topic everybody may use; NULL: the client cert's UID */
    size_t max_connections;
};

struct standin_h2;

/* Binds and starts accepting. NULL, with a reason in err, when a file or the address is bad. */
struct standin_h2 *standin_h2_new(struct standin *ctx, const struct standin_h2_config *cfg,
                                  char *err, size_t err_size);

/* Closes every connection at once and frees the front. */
void standin_h2_free(struct standin_h2 *h2);

/* The address actually bound, e.g. "127.0.0.1:43123". */
const char *standin_h2_get0_address(const struct standin_h2 *h2);

/* The address of the front without client authentication; NULL when there is none. */
const char *standin_h2_get0_noauth_address(const struct standin_h2 *h2);

size_t standin_h2_open_connections(const struct standin_h2 *h2);

/* Sends GOAWAY (NO_ERROR, debug data {"reason":"Shutdown"}) on every connection: requests already
 * begun are answered, then each connection closes. Returns how many connections were told. */
size_t standin_h2_goaway_all(struct standin_h2 *h2);

/* Stops accepting and sends GOAWAY everywhere; done(arg) runs once no connection is left. */
void standin_h2_shutdown(struct standin_h2 *h2, void (*done)(void *arg), void *arg);

#endif
