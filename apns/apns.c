/*
 * apns: the client (apns.h): the send queue, the dispatcher that spreads pushes over the
 * connections, retries with jittered backoff, the pool of connections (apns_conn.c) and the push
 * certificate's TLS context. The data model is in apns_internal.h.
 *
 * Spreading: a push goes to the first open connection with room (at most
 * ceil(max_in_flight / connections) streams each, and never more than the connection's
 * SETTINGS_MAX_CONCURRENT_STREAMS; a busy connection has room once an eighth of that is free,
 * apns_conn_room); another connection is opened only when every one is full, so a few pushes
 * share one connection and a flood uses them all. A connection that fails is replaced
 * after a jittered exponential backoff; while none can be opened the queued pushes count a failed
 * attempt each, as they would have with any other client.
 */
#include "apns.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apns_internal.h"
#include "log.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000
#define CONNECT_BACKOFF_BASE_MS 100
#define CONNECT_BACKOFF_MAX_MS 30000

static const char *const outcome_names[] = {"delivered", "unregistered", "rejected", "forbidden",
                                            "transient"};

const char *apns_outcome_name(enum apns_outcome outcome)
{
    return outcome_names[outcome];
}

uint64_t apns_clock_skew_ms;

uint64_t apns_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + apns_clock_skew_ms;
}

uint32_t apns_random(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)rand();
    return r;
}

/* ---- jobs ---- */

static void job_free(struct apns_job *job)
{
    struct apns_client *c = job->client;
    if (job->all_prev)
        job->all_prev->all_next = job->all_next;
    else
        c->all = job->all_next;
    if (job->all_next)
        job->all_next->all_prev = job->all_prev;
    if (job->timer_pending)
        evtimer_del(&job->timer);
    free(job->reply);
    free(job);
}

static void job_finish(struct apns_client *c, struct apns_job *job, struct apns_response *r)
{
    r->attempts = job->attempts;
    switch (r->outcome) {
    case APNS_DELIVERED:
        c->stats.delivered++;
        break;
    case APNS_UNREGISTERED:
        c->stats.unregistered++;
        break;
    case APNS_REJECTED:
        c->stats.rejected++;
        break;
    case APNS_FORBIDDEN:
        c->stats.forbidden++;
        break;
    case APNS_TRANSIENT:
        c->stats.transient_failed++;
        break;
    }
    job->cb(job->arg, r);
    job_free(job);
}

static void enqueue_job(struct apns_client *c, struct apns_job *job, bool front)
{
    job->next = NULL;
    if (front) {
        job->next = c->queue_head;
        c->queue_head = job;
        if (c->queue_tail == NULL)
            c->queue_tail = job;
    } else {
        if (c->queue_tail)
            c->queue_tail->next = job;
        else
            c->queue_head = job;
        c->queue_tail = job;
    }
    c->queued++;
}

static void timer_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct apns_job *job = arg;
    struct apns_client *c = job->client;
    job->timer_pending = false;
    c->waiting_retry--;
    if (job->refusal != NULL) {
        struct apns_response r = {.outcome = APNS_REJECTED};
        snprintf(r.reason, sizeof(r.reason), "%s", job->refusal);
        job_finish(c, job, &r);
        return;
    }
    enqueue_job(c, job, false);
    apns_client_schedule_dispatch(c);
}

static void job_timer(struct apns_client *c, struct apns_job *job, unsigned delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_assign(&job->timer, c->base, timer_cb, job);
    job->timer_pending = true;
    c->waiting_retry++;
    evtimer_add(&job->timer, &tv);
}

/* Reports a refusal from the loop, never from inside a call of the caller's. */
static void refuse_later(struct apns_client *c, struct apns_job *job, const char *reason)
{
    job->refusal = reason;
    job_timer(c, job, 0);
}

/* An attempt ended without an answer that settles it: again after a backoff, or the end. */
static void attempt_failed(struct apns_client *c, struct apns_job *job, struct apns_response *r)
{
    if (job->attempts < c->cfg.max_attempts) {
        log_debug("push to %.*s: %d %s: retrying", (int)job->path_len, job->data, r->http_status,
                  r->reason);
        c->stats.retries++;
        job_timer(c, job,
                  apns_backoff_ms(job->attempts, BACKOFF_BASE_MS, BACKOFF_MAX_MS, apns_random()));
        return;
    }
    job_finish(c, job, r);
}

void apns_client_stream_ended(struct apns_client *c, struct apns_job *job, enum apns_stream_end how,
                              const char *why)
{
    c->in_flight--;
    if (c->freeing)
        return;
    struct apns_response r = {.http_status = job->status};
    switch (how) {
    case APNS_STREAM_ANSWERED:
        r.outcome = apns_outcome_of_status(job->status);
        if (job->status == 200)
            snprintf(r.apns_id, sizeof(r.apns_id), "%s", job->apns_id);
        else if (job->reply != NULL)
            apns_reply_parse_body(job->reply, job->reply_len, &r);
        free(job->reply);
        job->reply = NULL;
        if (r.outcome == APNS_TRANSIENT) {
            attempt_failed(c, job, &r);
            return;
        }
        job_finish(c, job, &r);
        return;
    case APNS_STREAM_UNPROCESSED:
        if (++job->unprocessed <= APNS_UNPROCESSED_MAX) {
            /* Never reached APNs' processing: first in line again, no attempt counted. */
            job->attempts--;
            enqueue_job(c, job, true);
            apns_client_schedule_dispatch(c);
            return;
        }
        break;
    case APNS_STREAM_FAILED:
        break;
    }
    free(job->reply);
    job->reply = NULL;
    r.http_status = 0;
    r.outcome = APNS_TRANSIENT;
    snprintf(r.reason, sizeof(r.reason), "%s", why ? why : "no answer");
    attempt_failed(c, job, &r);
}

/* ---- connections ---- */

static unsigned conn_cap(const struct apns_client *c)
{
    unsigned n = c->cfg.connections;
    return (c->cfg.max_in_flight + n - 1) / n;
}

static void connect_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    apns_client_schedule_dispatch(arg);
}

/* Every queued push counts a failed attempt: no connection can be made now. */
static void fail_queue(struct apns_client *c, const char *why)
{
    struct apns_job *job;
    while ((job = c->queue_head) != NULL) {
        c->queue_head = job->next;
        if (c->queue_head == NULL)
            c->queue_tail = NULL;
        c->queued--;
        job->attempts++;
        c->stats.sent++;
        struct apns_response r = {.outcome = APNS_TRANSIENT};
        snprintf(r.reason, sizeof(r.reason), "%s", why);
        attempt_failed(c, job, &r);
    }
}

void apns_client_conn_closed(struct apns_client *c, struct apns_conn *conn, bool backoff,
                             bool ever_open, bool answered)
{
    bool any_open = false;
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        if (c->conns[i] == conn)
            c->conns[i] = NULL;
        else if (c->conns[i] != NULL && apns_conn_state(c->conns[i]) != APNS_CONN_CONNECTING)
            any_open = true;
    }
    if (c->freeing)
        return;
    if (backoff) {
        /* The failures that count are those in a row, without a connection of use between. */
        if (answered)
            c->connect_failures = 0;
        unsigned delay = apns_backoff_ms(c->connect_failures, CONNECT_BACKOFF_BASE_MS,
                                         CONNECT_BACKOFF_MAX_MS, apns_random());
        c->connect_failures++;
        c->connect_after_ms = apns_now_ms() + delay;
        if (!ever_open && !any_open)
            fail_queue(c, "cannot connect to APNs");
    }
    apns_client_schedule_dispatch(c);
}

/* Opens one more connection if the pool is short and the backoff allows. */
static void maybe_connect(struct apns_client *c)
{
    unsigned live = 0, free_slot = APNS_CONNECTIONS_MAX;
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        struct apns_conn *conn = c->conns[i];
        if (conn == NULL) {
            if (free_slot == APNS_CONNECTIONS_MAX)
                free_slot = i;
            continue;
        }
        enum apns_conn_state st = apns_conn_state(conn);
        if (st == APNS_CONN_CONNECTING || apns_conn_waiting_settings(conn))
            return; /* one handshake at a time */
        if (st == APNS_CONN_OPEN)
            live++;
    }
    if (live >= c->cfg.connections || free_slot == APNS_CONNECTIONS_MAX)
        return;
    uint64_t now = apns_now_ms();
    if (now < c->connect_after_ms) {
        uint64_t wait = c->connect_after_ms - now;
        struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
        if (!evtimer_pending(&c->connect_timer, NULL))
            evtimer_add(&c->connect_timer, &tv);
        return;
    }
    struct apns_conn *conn = apns_conn_new(c, c->cert.topic, ++c->next_conn_id);
    if (conn == NULL) {
        log_error("cannot start a connection to APNs at %s", c->target.authority);
        c->connect_after_ms = now + apns_backoff_ms(c->connect_failures++, CONNECT_BACKOFF_BASE_MS,
                                                    CONNECT_BACKOFF_MAX_MS, apns_random());
        maybe_connect(c);
        return;
    }
    c->conns[free_slot] = conn;
}

static void dispatch(struct apns_client *c)
{
    unsigned cap = conn_cap(c);
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX && c->queue_head != NULL; i++) {
        struct apns_conn *conn = c->conns[i];
        if (conn == NULL)
            continue;
        if (apns_conn_state(conn) == APNS_CONN_OPEN &&
            apns_conn_cert_generation(conn) != c->cert_generation) {
            apns_conn_drain(conn);
            continue;
        }
        unsigned room = apns_conn_room(conn, cap);
        while (room > 0 && c->queue_head != NULL && c->in_flight < c->cfg.max_in_flight) {
            struct apns_job *job = c->queue_head;
            c->queue_head = job->next;
            if (c->queue_head == NULL)
                c->queue_tail = NULL;
            c->queued--;
            if (!apns_conn_submit(conn, job)) {
                enqueue_job(c, job, true);
                break;
            }
            job->attempts++;
            c->stats.sent++;
            c->in_flight++;
            room--;
        }
    }
    if (c->queue_head != NULL && c->in_flight < c->cfg.max_in_flight)
        maybe_connect(c);
}

static void dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    struct apns_client *c = arg;
    c->dispatch_scheduled = false;
    dispatch(c);
}

void apns_client_schedule_dispatch(struct apns_client *c)
{
    if (!c->dispatch_scheduled) {
        c->dispatch_scheduled = true;
        event_active(&c->dispatch_event, EV_WRITE, 0);
    }
}

/* ---- the API ---- */

void apns_client_push(struct apns_client *c, const uint8_t *token, size_t token_len,
                      const char *push_magic, apns_done_fn *cb, void *arg)
{
    static const char prefix[] = "/3/device/";
    size_t magic_len = strlen(push_magic);
    /* PushMagic is a UUID string from the device; JSON-escaped all the same (6 bytes a byte at
     * worst). */
    size_t body_max = 16 + 6 * (magic_len < 256 ? magic_len : 256);
    size_t path_max = sizeof(prefix) + 2 * APNS_TOKEN_MAX;
    struct apns_job *job = calloc(1, sizeof(*job) + path_max + body_max + 1);
    if (job == NULL)
        log_fatal("out of memory");
    job->client = c;
    job->cb = cb;
    job->arg = arg;
    job->all_next = c->all;
    if (c->all)
        c->all->all_prev = job;
    c->all = job;

    memcpy(job->data, prefix, sizeof(prefix) - 1);
    size_t n = sizeof(prefix) - 1;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < token_len && i < APNS_TOKEN_MAX; i++) {
        job->data[n++] = hex[token[i] >> 4];
        job->data[n++] = hex[token[i] & 15];
    }
    job->path_len = n;
    job->body = job->data + path_max;
    job->body_len = magic_len <= 256 ? apns_mdm_body(push_magic, magic_len, job->body, body_max) : 0;
    char digits[20];
    size_t nd = 0;
    for (size_t v = job->body_len; nd == 0 || v > 0; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    for (job->length_len = 0; nd > 0; job->length_len++) /* content-length, no printf a push */
        job->length[job->length_len] = digits[--nd];
    job->length[job->length_len] = '\0';

    if (token_len == 0 || token_len > APNS_TOKEN_MAX || job->body_len == 0) {
        refuse_later(c, job, "BadDeviceToken");
        return;
    }
    enqueue_job(c, job, false);
    apns_client_schedule_dispatch(c);
}

static SSL_CTX *new_ssl_ctx(const struct apns_cert *cert, const char *ca_file, char *err,
                            size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *cert_bio = BIO_new_mem_buf(cert->cert_pem, (int)cert->cert_pem_len);
    BIO *key_bio = BIO_new_mem_buf(cert->key_pem, (int)cert->key_pem_len);
    X509 *x509 = cert_bio ? PEM_read_bio_X509(cert_bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = key_bio ? PEM_read_bio_PrivateKey(key_bio, NULL, NULL, NULL) : NULL;
    static const unsigned char alpn[] = "\x02h2";
    const char *why = NULL;
    if (ctx == NULL || x509 == NULL || key == NULL)
        why = "cannot read the push certificate";
    else if (SSL_CTX_use_certificate(ctx, x509) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
             SSL_CTX_check_private_key(ctx) != 1)
        why = "the push certificate does not go with its key";
    else if (ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                             : SSL_CTX_set_default_verify_paths(ctx) != 1)
        why = "cannot load the CAs that verify APNs (apns_ca)";
    else if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
             SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        why = "cannot set up TLS";
    X509_free(x509);
    EVP_PKEY_free(key);
    BIO_free(cert_bio);
    BIO_free(key_bio);
    if (why != NULL) {
        char detail[160] = "";
        ERR_error_string_n(ERR_peek_last_error(), detail, sizeof(detail));
        ERR_clear_error();
        snprintf(err, err_size, "%s (%s)", why, detail);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static struct apns_client *client_new(struct event_base *base, const struct apns_config *cfg,
                                      char *err, size_t err_size)
{
    struct apns_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    c->base = base;
    c->cfg = *cfg;
    if (c->cfg.connections == 0)
        c->cfg.connections = 1;
    if (c->cfg.connections > APNS_CONNECTIONS_MAX)
        c->cfg.connections = APNS_CONNECTIONS_MAX;
    if (c->cfg.max_in_flight == 0)
        c->cfg.max_in_flight = 1;
    c->url = strdup(cfg->url);
    c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    c->cfg.url = c->url;
    c->cfg.ca_file = c->ca_file;
    evtimer_assign(&c->connect_timer, base, connect_timer_cb, c);
    event_assign(&c->dispatch_event, base, -1, 0, dispatch_cb, c);
    if (c->url == NULL || (cfg->ca_file && c->ca_file == NULL)) {
        snprintf(err, err_size, "out of memory");
        apns_client_free(c);
        return NULL;
    }
    if (!apns_target_parse(c->url, &c->target, err, err_size)) {
        apns_client_free(c);
        return NULL;
    }
    return c;
}

struct apns_client *apns_client_new(struct event_base *base, const struct apns_config *cfg,
                                    struct apns_cert *cert, char *err, size_t err_size)
{
    struct apns_client *c = client_new(base, cfg, err, err_size);
    if (c == NULL)
        return NULL;
    /* Name resolution on the loop: a blocking getaddrinfo() would stall vouchd. */
    c->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (c->dns == NULL && !c->target.host_is_ip)
        c->dns = evdns_base_new(base, 0); /* no resolv.conf: /etc/hosts and numeric hosts */
    if ((c->ssl_ctx = new_ssl_ctx(cert, c->ca_file, err, err_size)) == NULL) {
        apns_client_free(c);
        return NULL;
    }
    c->cert = *cert;
    memset(cert, 0, sizeof(*cert));
    return c;
}

struct apns_client *apns_client_new_memory(struct event_base *base, const struct apns_config *cfg,
                                           const char *topic)
{
    char err[256];
    struct apns_client *c = client_new(base, cfg, err, sizeof(err));
    if (c == NULL)
        return NULL;
    c->memory = true;
    snprintf(c->cert.topic, sizeof(c->cert.topic), "%s", topic);
    return c;
}

void apns_client_set_cert(struct apns_client *c, struct apns_cert *cert)
{
    char err[256];
    SSL_CTX *ctx = c->memory ? NULL : new_ssl_ctx(cert, c->ca_file, err, sizeof(err));
    if (ctx == NULL && !c->memory) {
        /* The caller checked the pair; this is out of memory or a CA file gone since. */
        log_error("cannot use the new push certificate: %s", err);
        apns_cert_clear(cert);
        return;
    }
    SSL_CTX_free(c->ssl_ctx); /* connections keep their own reference through their SSL */
    c->ssl_ctx = ctx;
    apns_cert_clear(&c->cert);
    c->cert = *cert;
    memset(cert, 0, sizeof(*cert));
    c->cert_generation++;
    c->connect_failures = 0;
    c->connect_after_ms = 0;
    /* Handshakes under way used the old certificate: dropped; open connections drain (their
     * streams end with the old certificate) and new ones take the queue. */
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        struct apns_conn *conn = c->conns[i];
        if (conn == NULL)
            continue;
        if (apns_conn_state(conn) == APNS_CONN_CONNECTING) {
            c->conns[i] = NULL;
            apns_conn_free(conn, "push certificate replaced");
        } else {
            apns_conn_drain(conn);
        }
    }
    apns_client_schedule_dispatch(c);
}

const struct apns_cert *apns_client_get0_cert(const struct apns_client *c)
{
    return &c->cert;
}

void apns_client_get_stats(const struct apns_client *c, struct apns_stats *out)
{
    *out = c->stats;
    out->queued = c->queued + c->waiting_retry;
    out->in_flight = c->in_flight;
    out->connections = 0;
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        if (c->conns[i] != NULL && apns_conn_state(c->conns[i]) != APNS_CONN_CONNECTING)
            out->connections++;
    }
}

void apns_client_free(struct apns_client *c)
{
    if (c == NULL)
        return;
    c->freeing = true; /* connections hand back their jobs: nothing is reported */
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        struct apns_conn *conn = c->conns[i];
        c->conns[i] = NULL;
        apns_conn_free(conn, "shutting down");
    }
    while (c->all != NULL)
        job_free(c->all);
    event_del(&c->connect_timer);
    event_del(&c->dispatch_event);
    if (c->dns != NULL)
        evdns_base_free(c->dns, 0);
    SSL_CTX_free(c->ssl_ctx);
    apns_cert_clear(&c->cert);
    free(c->url);
    free(c->ca_file);
    free(c);
}
