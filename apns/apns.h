/*
 * apns: the APNs client. Sends MDM pushes over HTTP/2 (nghttp2's session API) on vouchd's
 * libevent loop, multiplexed over a few persistent TLS connections (bufferevent_openssl)
 * authenticated with the MDM push certificate.
 *
 * A push is queued here and sent when fewer than max_in_flight streams are open, on the first
 * connection with room (apns.c says how pushes are spread). Transient failures (429, 5xx,
 * connection and TLS errors, resets, timeouts) are retried with jittered exponential backoff up
 * to max_attempts; a push that APNs refused unprocessed (GOAWAY, REFUSED_STREAM) goes out again
 * on another connection without counting an attempt. The caller hears the final answer once, on
 * the loop. The client owns its connections, its queue and the push certificate it was given.
 */
#ifndef VOUCH_APNS_H
#define VOUCH_APNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apns_cert.h"

struct event_base;
struct apns_client;

#define APNS_TOKEN_MAX 100 /* bytes; Apple's are 32 */

enum apns_outcome {
    APNS_DELIVERED,    /* 200: accepted by APNs */
    APNS_UNREGISTERED, /* 410: the token is dead as of timestamp_ms */
    APNS_REJECTED,     /* 400 and other permanent refusals: do not retry */
    APNS_FORBIDDEN,    /* 403: a push certificate problem */
    APNS_TRANSIENT,    /* 429, 5xx, connection errors: still failing after every retry */
};

struct apns_response {
    enum apns_outcome outcome;
    int http_status;      /* 0 when no answer came */
    char reason[64];      /* APNs' "reason", or what went wrong when no answer came */
    char apns_id[64];     /* on 200 */
    int64_t timestamp_ms; /* on 410 */
    unsigned attempts;
};

typedef void apns_done_fn(void *arg, const struct apns_response *response);

struct apns_config {
    const char *url;        /* base URL: https://api.push.apple.com, or a stand-in */
    const char *ca_file;    /* NULL: the system store */
    unsigned expiration_s;  /* apns-expiration = now + this (never 0) */
    unsigned max_in_flight; /* streams open at once */
    unsigned max_attempts;  /* tries for a transiently failing push */
    unsigned timeout_ms;    /* per attempt */
    unsigned connections;   /* HTTP/2 connections at most (1..16) */
};

struct apns_stats {
    uint64_t sent, delivered, unregistered, rejected, forbidden, transient_failed, retries;
    unsigned queued, in_flight;
    unsigned connections; /* up (TLS done), draining ones included */
};

/* Takes ownership of cert (set0). NULL with a message on error. */
struct apns_client *apns_client_new(struct event_base *base, const struct apns_config *cfg,
                                    struct apns_cert *cert, char *err, size_t err_size);
/* Pushes still queued or in flight are dropped without their callbacks. */
void apns_client_free(struct apns_client *client);

/* Replaces the push certificate (set0): pushes from now on use it; queued pushes are kept. */
void apns_client_set_cert(struct apns_client *client, struct apns_cert *cert);
const struct apns_cert *apns_client_get0_cert(const struct apns_client *client);

/* Queues one push. cb runs exactly once, later, from the loop. */
void apns_client_push(struct apns_client *client, const uint8_t *token, size_t token_len,
                      const char *push_magic, apns_done_fn *cb, void *arg);

void apns_client_get_stats(const struct apns_client *client, struct apns_stats *out);

const char *apns_outcome_name(enum apns_outcome outcome);

#endif
