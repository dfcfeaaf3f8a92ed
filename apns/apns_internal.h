/*
 * apns_internal: the APNs client's data model, shared by apns.c (the queue, retries and the pool
 * of connections) and apns_conn.c (one HTTP/2 connection); not for users of apns.h.
 *
 * Ownership: the client owns every job (its `all` list) and every connection (conns[]). A job is
 * in exactly one place: the client's send queue, a connection's list of streams in flight, a
 * backoff timer, or being reported. A connection borrows the jobs on its list; when it closes it
 * hands each back to the client (apns_client_stream_ended) before it frees itself.
 */
#ifndef VOUCH_APNS_INTERNAL_H
#define VOUCH_APNS_INTERNAL_H

#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "apns.h"
#include "apns_proto.h"

struct apns_conn;
struct evdns_base;

#define APNS_CONNECTIONS_MAX 16
/* A job refused by GOAWAY or REFUSED_STREAM goes back to the queue without counting an attempt,
 * this many times at most (then it counts, so that a server refusing everything is noticed). */
#define APNS_UNPROCESSED_MAX 8

struct apns_job {
    struct apns_job *next, *prev;         /* the send queue (next only) or a connection's list */
    struct apns_job *all_prev, *all_next; /* every job the client holds, for apns_client_free */
    struct apns_client *client;
    struct apns_conn *conn; /* in flight on it */
    int32_t stream_id;
    uint64_t sent_ms; /* monotonic, when this attempt was submitted */
    unsigned attempts, unprocessed;
    bool timed_out;
    struct event timer; /* backoff, or the deferred report of a refused push */
    bool timer_pending;
    const char *refusal; /* refused before sending: reported from the loop with this reason */
    apns_done_fn *cb;
    void *arg;
    /* the answer of the attempt in flight */
    int status;
    char apns_id[64];
    char *reply; /* APNS_REPLY_BODY_MAX bytes, allocated at the first DATA frame */
    size_t reply_len;
    /* the request */
    char expiration[24]; /* of this attempt */
    size_t expiration_len;
    char length[8]; /* content-length */
    size_t length_len;
    size_t path_len, body_len, body_off;
    char *body;  /* inside data[], after the path */
    char data[]; /* path (/3/device/<hex>) then body ({"mdm":"..."}) */
};

/* How a stream ended, for apns_client_stream_ended. */
enum apns_stream_end {
    APNS_STREAM_ANSWERED,    /* a complete answer: job->status, apns_id, reply */
    APNS_STREAM_UNPROCESSED, /* refused before the server processed it: send again */
    APNS_STREAM_FAILED,      /* no answer: reset, connection lost, timeout */
};

enum apns_conn_state {
    APNS_CONN_CONNECTING, /* TCP + TLS handshake */
    APNS_CONN_OPEN,       /* takes new streams */
    APNS_CONN_DRAINING,   /* GOAWAY (theirs or ours) or an old certificate: no new streams */
    APNS_CONN_CLOSING,    /* our GOAWAY is being written; freed when the output is empty */
};

struct apns_client {
    struct event_base *base;
    struct evdns_base *dns;
    struct apns_config cfg;
    char *url;
    char *ca_file;
    struct apns_target target;
    time_t expiration_second; /* expiration is the apns-expiration text of this second */
    char expiration[24];
    size_t expiration_len;
    bool freeing; /* in apns_client_free: ended streams are not reported */
    bool memory;  /* connections are memory pipes (tests, fuzzing): no socket, no TLS */
    struct apns_cert cert;
    SSL_CTX *ssl_ctx; /* of cert */
    unsigned cert_generation;
    struct apns_conn *conns[APNS_CONNECTIONS_MAX];
    uint64_t next_conn_id;
    unsigned connect_failures; /* in a row: the backoff of the next connection */
    uint64_t connect_after_ms; /* monotonic: no new connection before this */
    struct event connect_timer, dispatch_event;
    bool dispatch_scheduled;
    struct apns_job *queue_head, *queue_tail;
    struct apns_job *all;
    unsigned queued, in_flight, waiting_retry;
    struct apns_stats stats;
};

/* The monotonic clock of timeouts, PINGs and backoffs, in ms: CLOCK_MONOTONIC plus
 * apns_clock_skew_ms, which only tests set (to let a timeout pass without waiting for it). */
uint64_t apns_now_ms(void);
extern uint64_t apns_clock_skew_ms;
uint32_t apns_random(void);

/* apns.c, called by a connection: */
/* A stream of conn ended; the job is off the connection's list. Never frees the connection. */
void apns_client_stream_ended(struct apns_client *c, struct apns_job *job, enum apns_stream_end how,
                              const char *why);
/* conn reached OPEN, or has room again, or stops taking streams: run the dispatcher soon. */
void apns_client_schedule_dispatch(struct apns_client *c);
/* conn is closing (before it hands back its jobs). backoff: the next connection waits (it
 * failed, or APNs sent GOAWAY); ever_open: TLS and HTTP/2 were up; answered: it answered a push,
 * so the backoff starts afresh. */
void apns_client_conn_closed(struct apns_client *c, struct apns_conn *conn, bool backoff,
                             bool ever_open, bool answered);

/* apns_conn.c: */
/* Starts connecting (TLS to c->target, or a memory pipe when c->memory). NULL on failure. */
struct apns_conn *apns_conn_new(struct apns_client *c, const char *topic, uint64_t id);
/* Frees at once; jobs still on it go back to the client as failed (or unprocessed). */
void apns_conn_free(struct apns_conn *conn, const char *why);
enum apns_conn_state apns_conn_state(const struct apns_conn *conn);
unsigned apns_conn_cert_generation(const struct apns_conn *conn);
uint64_t apns_conn_id(const struct apns_conn *conn);
/* Open, but APNs' first SETTINGS have not come yet. */
bool apns_conn_waiting_settings(const struct apns_conn *conn);
/* Streams it can take now: the peer's SETTINGS_MAX_CONCURRENT_STREAMS and cap, minus those in
 * flight; 0 unless OPEN and the peer's SETTINGS came. */
unsigned apns_conn_room(const struct apns_conn *conn, unsigned cap);
/* Submits job as a new stream (written at the end of this loop pass). False: not taken. */
bool apns_conn_submit(struct apns_conn *conn, struct apns_job *job)
    __attribute__((warn_unused_result));
/* No new streams; closes (with our GOAWAY) once the streams in flight have ended. */
void apns_conn_drain(struct apns_conn *conn);
/* The once-a-second check (stream timeouts, PINGs), run now: a timer runs it, tests call it
 * after moving apns_clock_skew_ms. False when the connection failed and was freed. */
bool apns_conn_tick(struct apns_conn *conn);

/* Memory connections (c->memory): what the client wrote, and bytes from the "server". */
struct evbuffer *apns_conn_get0_output(struct apns_conn *conn);
/* False when the connection failed and was freed. */
bool apns_conn_feed(struct apns_conn *conn, const uint8_t *data, size_t len);

/* A client whose connections are memory pipes, for tests and fuzzing (no certificate). */
struct apns_client *apns_client_new_memory(struct event_base *base, const struct apns_config *cfg,
                                           const char *topic);

#endif
