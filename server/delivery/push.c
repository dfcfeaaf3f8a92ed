#include "push.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apns.h"
#include "log.h"
#include "queries.h"
#include "vouchd.h"

#define BUCKETS 4096
#define RESULT_BATCH 2000      /* answers per statement */
#define RESULT_BACKLOG_MAX (1u << 20) /* answers waiting for the database, at most */
#define RESULT_FLUSH_MS 50
#define RETRY_SWEEP_S 30
#define FIRST_SWEEP_S 2 /* soon after start: a restarted instance resumes what its last run owed */
#define RETRY_SWEEP_LIMIT 1000

/* APNs' documented reasons: metric labels come from this table only, never from the network. */
static const char *const apns_reasons[] = {
    "BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority",
    "BadTopic", "DeviceTokenNotForTopic", "DuplicateHeaders", "IdleTimeout", "InvalidPushType",
    "MissingDeviceToken", "MissingTopic", "PayloadEmpty", "TopicDisallowed", "BadCertificate",
    "BadCertificateEnvironment", "ExpiredProviderToken", "Forbidden", "InvalidProviderToken",
    "MissingProviderToken", "BadPath", "MethodNotAllowed", "ExpiredToken", "Unregistered",
    "PayloadTooLarge", "TooManyProviderTokenUpdates", "TooManyRequests", "InternalServerError",
    "ServiceUnavailable", "Shutdown",
};
#define REASON_COUNT (sizeof(apns_reasons) / sizeof(apns_reasons[0]))
#define REASON_OTHER REASON_COUNT          /* an answer with another or no reason */
#define REASON_CONNECTION (REASON_COUNT + 1) /* no answer: connection, TLS, GOAWAY, timeout */


/* Someone waiting for a device's push: slot index of a batch. */
struct waiter {
    struct waiter *next;
    struct batch *batch;
    size_t index;
};

/* One device with a push being looked up or in flight. */
struct entry {
    struct entry *next; /* in its bucket */
    struct push_service *ps;
    char token_hex[2 * APNS_TOKEN_MAX + 1]; /* the token pushed: a 410 kills this one only */
    struct waiter *waiters;
    bool sent; /* handed to APNs (else its lookup found no token) */
    char udid[];
};

struct batch {
    push_batch_fn *done;
    void *arg;
    size_t count, remaining;
    struct push_report *reports;
    char **strings; /* copies behind reports[], freed with the batch */
};

/* A lookup of tokens for a group of entries. */
struct lookup {
    struct push_service *ps;
    size_t count;
    struct entry *entries[];
};

struct pending_result {
    char *udid, *token_hex, *result, *apns_id, *reason, *dead_at;
};

struct push_service {
    struct vouchd *srv;
    struct apns_client *apns;
    struct entry *buckets[BUCKETS];
    size_t in_flight_devices;
    struct pending_result *results; /* answers not yet written, oldest first */
    size_t result_count, result_capacity;
    bool flushing;
    size_t flushing_count;         /* answers in the statement out */
    uint64_t recorded, unrecorded; /* answers written, and lost (database away, backlog full) */
    struct event flush_timer, sweep_timer;
    bool certificate_refused;
    bool stopping; /* push_service_stop: the database's last answers are not acted on */
    uint64_t by_outcome[5], no_token, coalesced, requested;
    uint64_t by_reason[REASON_COUNT + 2]; /* final answers other than 200 */
};

static size_t reason_index(const struct apns_response *r)
{
    if (r->http_status == 0)
        return REASON_CONNECTION;
    for (size_t i = 0; i < REASON_COUNT; i++) {
        if (strcmp(r->reason, apns_reasons[i]) == 0)
            return i;
    }
    return REASON_OTHER;
}

static uint32_t hash_udid(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % BUCKETS;
}

static struct entry *entry_find(struct push_service *ps, const char *udid)
{
    for (struct entry *e = ps->buckets[hash_udid(udid)]; e != NULL; e = e->next) {
        if (strcmp(e->udid, udid) == 0)
            return e;
    }
    return NULL;
}

static void entry_remove(struct push_service *ps, struct entry *e)
{
    struct entry **p = &ps->buckets[hash_udid(e->udid)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    ps->in_flight_devices--;
    free(e);
}

static char *copy(struct batch *b, size_t slot, const char *s)
{
    if (s == NULL)
        return NULL;
    free(b->strings[slot]);
    b->strings[slot] = strdup(s);
    if (b->strings[slot] == NULL)
        log_fatal("out of memory");
    return b->strings[slot];
}

/* One slot of the batch is done with; the last one frees it, telling its caller unless the
 * service is being freed (tell false: the batch goes unheard). */
static void batch_drop(struct batch *b, bool tell)
{
    if (--b->remaining > 0)
        return;
    if (tell && b->done != NULL)
        b->done(b->arg, b->reports, b->count);
    for (size_t i = 0; i < 3 * b->count; i++)
        free(b->strings[i]);
    free(b->strings);
    free(b->reports);
    free(b);
}

static void batch_release(struct batch *b)
{
    batch_drop(b, true);
}

static void batch_report(struct batch *b, size_t index, const char *result, const char *detail)
{
    /* Strings per report: udid copied at creation (slot 3i), detail (3i+1); result is static. */
    b->reports[index].result = result;
    b->reports[index].detail = copy(b, 3 * index + 1, detail);
    batch_release(b);
}

/* Tells everyone waiting for a device and forgets the entry. */
static void entry_finish(struct push_service *ps, struct entry *e, const char *result,
                         const char *detail)
{
    struct waiter *w = e->waiters;
    entry_remove(ps, e);
    while (w != NULL) {
        struct waiter *next = w->next;
        batch_report(w->batch, w->index, result, detail);
        free(w);
        w = next;
    }
}

/* ---- recording answers, in batches ---- */

static void flush_results(struct push_service *ps);

static void results_written(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct push_service *ps = arg;
    ps->flushing = false;
    if (ps->stopping)
        return;
    if (outcome != DB_OK) {
        log_warn("could not record push results: the database is not available");
        ps->unrecorded += ps->flushing_count;
    } else {
        ps->recorded += ps->flushing_count;
    }
    if (ps->result_count > 0)
        flush_results(ps);
}

static void flush_results(struct push_service *ps)
{
    if (ps->flushing || ps->result_count == 0)
        return;
    size_t count = ps->result_count < RESULT_BATCH ? ps->result_count : RESULT_BATCH;
    struct db_push_result *rows = calloc(count, sizeof(*rows));
    if (rows == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++) {
        const struct pending_result *p = &ps->results[i];
        rows[i] = (struct db_push_result){p->udid, p->token_hex, p->result, p->apns_id, p->reason,
                                          p->dead_at};
    }
    ps->flushing = true;
    ps->flushing_count = count;
    db_push_results(ps->srv->db, rows, count, results_written, ps);
    for (size_t i = 0; i < count; i++) {
        struct pending_result *p = &ps->results[i];
        free(p->udid);
        free(p->token_hex);
        free(p->result);
        free(p->apns_id);
        free(p->reason);
        free(p->dead_at);
    }
    free(rows);
    memmove(ps->results, ps->results + count, (ps->result_count - count) * sizeof(*ps->results));
    ps->result_count -= count;
}

static void flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    flush_results(arg);
}

static char *dup_or_null(const char *s)
{
    char *d = s && *s ? strdup(s) : NULL;
    if (s && *s && d == NULL)
        log_fatal("out of memory");
    return d;
}

/* RFC 3339 with milliseconds: a 410's time is compared with the last TokenUpdate's. */
static void format_ms(int64_t ms, char out[32])
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    char base[21];
    if (gmtime_r(&seconds, &tm) == NULL || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static void record_result(struct push_service *ps, const struct entry *e,
                          const struct apns_response *r)
{
    const char *udid = e->udid;
    if (ps->result_count >= RESULT_BATCH)
        flush_results(ps);
    if (ps->result_count == ps->result_capacity) {
        /* Answers arrive faster than one statement writes them: keep them (bounded) while the
         * write is out. Beyond the bound the database is far behind; the push itself happened. */
        if (ps->result_capacity >= RESULT_BACKLOG_MAX) {
            log_warn("push answers are waiting for the database; not recording one for %s", udid);
            ps->unrecorded++;
            return;
        }
        size_t capacity = ps->result_capacity * 2;
        struct pending_result *grown = realloc(ps->results, capacity * sizeof(*grown));
        if (grown == NULL)
            log_fatal("out of memory");
        ps->results = grown;
        ps->result_capacity = capacity;
    }
    struct pending_result *p = &ps->results[ps->result_count++];
    char dead_at[32] = "";
    if (r->outcome == APNS_UNREGISTERED) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        format_ms(r->timestamp_ms > 0 ? r->timestamp_ms
                                      : (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                  dead_at);
    }
    p->udid = dup_or_null(udid);
    p->token_hex = dup_or_null(e->token_hex);
    p->result = dup_or_null(apns_outcome_name(r->outcome));
    p->apns_id = dup_or_null(r->apns_id);
    p->reason = dup_or_null(r->reason);
    p->dead_at = dup_or_null(dead_at);
    if (!evtimer_pending(&ps->flush_timer, NULL)) {
        const struct timeval tv = {0, RESULT_FLUSH_MS * 1000};
        evtimer_add(&ps->flush_timer, &tv);
    }
}

/* ---- pushing ---- */

static void apns_done(void *arg, const struct apns_response *r)
{
    struct entry *e = arg;
    struct push_service *ps = e->ps;
    ps->by_outcome[r->outcome]++;
    if (r->outcome != APNS_DELIVERED)
        ps->by_reason[reason_index(r)]++;
    if (r->outcome == APNS_FORBIDDEN && !ps->certificate_refused) {
        ps->certificate_refused = true;
        log_error("APNs refused the push certificate (403 %s): renew or replace apns_cert",
                  r->reason);
    } else if (r->outcome == APNS_DELIVERED) {
        ps->certificate_refused = false;
    }
    if (r->outcome != APNS_DELIVERED)
        log_info("push to %s: %s (%d %s) after %u attempt(s)", e->udid,
                 apns_outcome_name(r->outcome), r->http_status, r->reason, r->attempts);
    record_result(ps, e, r);
    entry_finish(ps, e, apns_outcome_name(r->outcome),
                 r->outcome == APNS_DELIVERED ? r->apns_id : r->reason);
}

static void targets_found(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct lookup *l = arg;
    struct push_service *ps = l->ps;
    if (ps->stopping) {
        free(l); /* its entries go with the service */
        return;
    }
    if (outcome == DB_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            const char *udid, *magic;
            const uint8_t *token;
            size_t token_len;
            if (!db_decode_push_target(res, row, &udid, &token, &token_len, &magic))
                continue;
            struct entry *e = entry_find(ps, udid);
            if (e == NULL || e->sent)
                continue;
            e->sent = true;
            for (size_t k = 0; k < token_len && k < APNS_TOKEN_MAX; k++)
                snprintf(e->token_hex + 2 * k, 3, "%02x", token[k]);
            apns_client_push(ps->apns, token, token_len, magic, apns_done, e);
        }
    }
    for (size_t i = 0; i < l->count; i++) {
        if (l->entries[i]->sent)
            continue;
        if (outcome == DB_OK)
            ps->no_token++;
        entry_finish(ps, l->entries[i], outcome == DB_OK ? "no_token" : "unavailable", NULL);
    }
    free(l);
}

void push_devices(struct push_service *ps, const char *const *udids, size_t count,
                  push_batch_fn *done, void *arg)
{
    struct batch *b = calloc(1, sizeof(*b));
    struct lookup *l = calloc(1, sizeof(*l) + (count ? count : 1) * sizeof(struct entry *));
    if (b == NULL || l == NULL)
        log_fatal("out of memory");
    b->done = done;
    b->arg = arg;
    b->count = count;
    b->remaining = count + 1; /* the extra one is released below, after every slot is set */
    b->reports = calloc(count ? count : 1, sizeof(*b->reports));
    b->strings = calloc(3 * (count ? count : 1), sizeof(char *));
    if (b->reports == NULL || b->strings == NULL)
        log_fatal("out of memory");
    l->ps = ps;
    const char **lookup_udids = calloc(count ? count : 1, sizeof(char *));
    if (lookup_udids == NULL)
        log_fatal("out of memory");

    for (size_t i = 0; i < count; i++) {
        ps->requested++;
        b->reports[i].udid = copy(b, 3 * i, udids[i]);
        struct waiter *w = calloc(1, sizeof(*w));
        if (w == NULL)
            log_fatal("out of memory");
        w->batch = b;
        w->index = i;
        struct entry *e = entry_find(ps, udids[i]);
        if (e != NULL) {
            ps->coalesced++; /* already on its way: one push serves everyone */
        } else {
            size_t len = strlen(udids[i]);
            e = calloc(1, sizeof(*e) + len + 1);
            if (e == NULL)
                log_fatal("out of memory");
            e->ps = ps;
            memcpy(e->udid, udids[i], len + 1);
            uint32_t h = hash_udid(e->udid);
            e->next = ps->buckets[h];
            ps->buckets[h] = e;
            ps->in_flight_devices++;
            lookup_udids[l->count] = e->udid;
            l->entries[l->count++] = e;
        }
        w->next = e->waiters;
        e->waiters = w;
    }
    if (l->count > 0)
        db_push_targets(ps->srv->db, lookup_udids, l->count, targets_found, l);
    else
        free(l);
    free(lookup_udids);
    batch_release(b); /* the extra count: the batch may complete now (e.g. count == 0) */
}

/* ---- pushing again what failed ---- */

static void retry_due_found(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct push_service *ps = arg;
    if (ps->stopping || outcome != DB_OK || PQntuples(res) == 0)
        return;
    size_t count = (size_t)PQntuples(res);
    const char **udids = calloc(count, sizeof(*udids));
    if (udids == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < count; i++)
        udids[i] = PQgetvalue(res, (int)i, 0);
    log_info("pushing %zu device(s) again whose last push failed", count);
    push_devices(ps, udids, count, NULL, NULL);
    free(udids);
}

static void sweep_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct push_service *ps = arg;
    const struct timeval every = {RETRY_SWEEP_S, 0};
    evtimer_add(&ps->sweep_timer, &every);
    if (db_pool_is_up(ps->srv->db))
        db_push_retry_due(ps->srv->db, RETRY_SWEEP_LIMIT, retry_due_found, ps);
}

struct push_service *push_service_new(struct vouchd *srv, struct apns_client *apns)
{
    struct push_service *ps = calloc(1, sizeof(*ps));
    if (ps == NULL || (ps->results = calloc(RESULT_BATCH, sizeof(*ps->results))) == NULL)
        log_fatal("out of memory");
    ps->result_capacity = RESULT_BATCH;
    ps->srv = srv;
    ps->apns = apns;
    evtimer_assign(&ps->flush_timer, srv->base, flush_timer_cb, ps);
    evtimer_assign(&ps->sweep_timer, srv->base, sweep_timer_cb, ps);
    const struct timeval first = {FIRST_SWEEP_S, 0};
    evtimer_add(&ps->sweep_timer, &first);
    return ps;
}

void push_service_stop(struct push_service *ps)
{
    if (ps != NULL)
        ps->stopping = true;
}

void push_service_free(struct push_service *ps)
{
    if (ps == NULL)
        return;
    evtimer_del(&ps->flush_timer);
    evtimer_del(&ps->sweep_timer);
    apns_client_free(ps->apns); /* drops pushes in flight: their entries go below */
    for (size_t i = 0; i < BUCKETS; i++) {
        while (ps->buckets[i] != NULL) {
            struct entry *e = ps->buckets[i];
            struct waiter *w = e->waiters;
            ps->buckets[i] = e->next;
            while (w != NULL) {
                struct waiter *next = w->next;
                batch_drop(w->batch, false); /* at shutdown: never reported */
                free(w);
                w = next;
            }
            free(e);
        }
    }
    for (size_t i = 0; i < ps->result_count; i++) {
        free(ps->results[i].udid);
        free(ps->results[i].token_hex);
        free(ps->results[i].result);
        free(ps->results[i].apns_id);
        free(ps->results[i].reason);
        free(ps->results[i].dead_at);
    }
    free(ps->results);
    free(ps);
}

struct apns_client *push_service_get0_apns(struct push_service *ps)
{
    return ps->apns;
}

bool push_service_certificate_refused(const struct push_service *ps)
{
    return ps->certificate_refused;
}

void push_service_render_metrics(const struct push_service *ps, struct evbuffer *out)
{
    struct apns_stats st;
    apns_client_get_stats(ps->apns, &st);
    evbuffer_add_printf(out, "# HELP vouch_pushes_total Push answers, by outcome (no_token: a "
                             "device without a push token).\n"
                             "# TYPE vouch_pushes_total counter\n");
    for (int i = 0; i < 5; i++)
        evbuffer_add_printf(out, "vouch_pushes_total{outcome=\"%s\"} %" PRIu64 "\n",
                            apns_outcome_name((enum apns_outcome)i), ps->by_outcome[i]);
    evbuffer_add_printf(out, "vouch_pushes_total{outcome=\"no_token\"} %" PRIu64 "\n",
                        ps->no_token);
    evbuffer_add_printf(out, "# HELP vouch_push_failures_total Pushes that ended without "
                             "delivery, by APNs reason.\n# TYPE vouch_push_failures_total counter\n");
    for (size_t i = 0; i < REASON_COUNT + 2; i++) {
        const char *reason = i < REASON_COUNT ? apns_reasons[i]
                             : i == REASON_OTHER ? "other" : "connection";
        if (ps->by_reason[i] != 0)
            evbuffer_add_printf(out, "vouch_push_failures_total{reason=\"%s\"} %" PRIu64 "\n",
                                reason, ps->by_reason[i]);
    }
    evbuffer_add_printf(out,
                        "# HELP vouch_push_requests_total Pushes asked for (before coalescing).\n"
                        "# TYPE vouch_push_requests_total counter\n"
                        "vouch_push_requests_total %" PRIu64 "\n"
                        "# HELP vouch_push_coalesced_total Pushes asked for while one to the "
                        "same device was under way, served by it.\n"
                        "# TYPE vouch_push_coalesced_total counter\n"
                        "vouch_push_coalesced_total %" PRIu64 "\n"
                        "# HELP vouch_apns_attempts_total Requests sent to APNs.\n"
                        "# TYPE vouch_apns_attempts_total counter\n"
                        "vouch_apns_attempts_total %" PRIu64 "\n"
                        "# HELP vouch_apns_retries_total Requests to APNs sent again.\n"
                        "# TYPE vouch_apns_retries_total counter\n"
                        "vouch_apns_retries_total %" PRIu64 "\n"
                        "# HELP vouch_apns_queued Pushes waiting to be sent to APNs.\n"
                        "# TYPE vouch_apns_queued gauge\nvouch_apns_queued %u\n"
                        "# HELP vouch_apns_in_flight Requests to APNs waiting for answers.\n"
                        "# TYPE vouch_apns_in_flight gauge\nvouch_apns_in_flight %u\n"
                        "# HELP vouch_push_answers_recorded_total Push answers written to the "
                        "database (one statement per batch).\n"
                        "# TYPE vouch_push_answers_recorded_total counter\n"
                        "vouch_push_answers_recorded_total %" PRIu64 "\n"
                        "# HELP vouch_push_answers_unrecorded_total Push answers not written (the "
                        "database was away or too far behind).\n"
                        "# TYPE vouch_push_answers_unrecorded_total counter\n"
                        "vouch_push_answers_unrecorded_total %" PRIu64 "\n"
                        "# HELP vouch_apns_connections HTTP/2 connections to APNs up.\n"
                        "# TYPE vouch_apns_connections gauge\nvouch_apns_connections %u\n"
                        "# HELP vouch_apns_certificate_refused 1 while APNs refuses the push "
                        "certificate (403), until a push is delivered.\n"
                        "# TYPE vouch_apns_certificate_refused gauge\n"
                        "vouch_apns_certificate_refused %d\n",
                        ps->requested, ps->coalesced, st.sent, st.retries, st.queued,
                        st.in_flight, ps->recorded, ps->unrecorded, st.connections, ps->certificate_refused ? 1 : 0);
}
