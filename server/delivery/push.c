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
#include "apns_cert.h"
#include "log.h"
#include "queries_push.h"
#include "vouchd.h"

/* The part of a UDID a log line shows (sanitized: it came from a request). */
#define PUSH_LOG_ID_MAX 128

#define BUCKETS 4096
#define RESULT_BATCH 2000             /* answers per statement */
#define RESULT_BACKLOG_MAX (1u << 20) /* answers waiting for the database, at most */
#define RESULT_FLUSH_MS 50
#define RETRY_SWEEP_S 30
/* Soon after start: a restarted instance resumes what its last run owed. */
#define FIRST_SWEEP_S 2
#define RETRY_SWEEP_LIMIT 1000
#define PRUNE_EVERY_S 600
#define PRUNE_AGAIN_S 1   /* a full batch went: more is old, keep on without holding the loop */
#define PRUNE_BATCH 10000 /* push_log entries dropped a statement */
/* How long push_log keeps an answer: as long as the retry sweep reads it (vouch_push_retry_due
 * looks a day back). Older, a device's newest answer lives on its enrollment, where the sweep
 * finds a transient one too; the log does not grow with every push for a month. */
#define PUSH_LOG_RETENTION_S 86400

/* APNs' documented reasons: metric labels come from this table only, never from the network. */
static const char *const apns_reasons[] = {
    "BadCollapseId",
    "BadDeviceToken",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DeviceTokenNotForTopic",
    "DuplicateHeaders",
    "IdleTimeout",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "TopicDisallowed",
    "BadCertificate",
    "BadCertificateEnvironment",
    "ExpiredProviderToken",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "BadPath",
    "MethodNotAllowed",
    "ExpiredToken",
    "Unregistered",
    "PayloadTooLarge",
    "TooManyProviderTokenUpdates",
    "TooManyRequests",
    "InternalServerError",
    "ServiceUnavailable",
    "Shutdown",
};
#define REASON_COUNT (sizeof(apns_reasons) / sizeof(apns_reasons[0]))
#define REASON_OTHER REASON_COUNT            /* an answer with another or no reason */
#define REASON_CONNECTION (REASON_COUNT + 1) /* no answer: connection, TLS, GOAWAY, timeout */

/* Someone waiting for a device's push: slot index of a batch (in the batch's array of them). */
struct waiter {
    struct waiter *next;
    struct batch *batch;
    size_t index;
};

/* One device with a push being looked up or in flight. */
struct entry {
    struct entry *next;   /* in its bucket */
    struct entry **pprev; /* what points to it: removed without walking the bucket */
    uint32_t hash;        /* hash_udid(udid): compared before the udid */
    struct push_service *ps;
    uint8_t token[APNS_TOKEN_MAX]; /* the token pushed: a 410 kills this one only */
    size_t token_len;
    struct waiter *waiters;
    bool sent; /* handed to APNs (else its lookup found no token) */
    bool no_certificate; /* its enrollment's topic is not the push certificate's */
    char udid[];
};

#define DETAIL_MAX 64 /* struct apns_response's apns_id and reason */

struct batch {
    push_batch_fn *done;
    void *arg;
    size_t count, remaining;
    struct push_report *reports;
    struct waiter *waiters; /* one a slot */
    /* What reports[] point to, freed with the batch: the udids one after the other, and a
     * detail per report (two allocations a batch, not two a device). */
    char *udids;
    char (*details)[DETAIL_MAX];
};

/* A lookup of tokens for a group of entries. */
struct lookup {
    struct push_service *ps;
    size_t count;
    struct entry *entries[];
};

/* An answer waiting for its statement: result is its stored code; the strings
 * are in one allocation, text: the udid at 0, then each other one present at its offset (0:
 * absent, SQL NULL). The token and the time go only with a 410, the one answer that uses them. */
struct pending_result {
    enum db_push_code result;
    char *text;
    uint16_t apns_id, reason, token_hex, dead_at;
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
    struct event flush_timer, sweep_timer, prune_timer;
    bool certificate_refused;
    bool stopping; /* push_service_stop: the database's last answers are not acted on */
    uint64_t by_outcome[5], no_token, no_certificate, coalesced, requested;
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
    return h;
}

static struct entry *entry_find(struct push_service *ps, const char *udid, uint32_t hash)
{
    for (struct entry *e = ps->buckets[hash % BUCKETS]; e != NULL; e = e->next) {
        if (e->hash == hash && strcmp(e->udid, udid) == 0)
            return e;
    }
    return NULL;
}

static void entry_insert(struct push_service *ps, struct entry *e)
{
    struct entry **head = &ps->buckets[e->hash % BUCKETS];
    e->next = *head;
    if (e->next != NULL)
        e->next->pprev = &e->next;
    e->pprev = head;
    *head = e;
    ps->in_flight_devices++;
}

static void entry_remove(struct push_service *ps, struct entry *e)
{
    *e->pprev = e->next;
    if (e->next != NULL)
        e->next->pprev = e->pprev;
    ps->in_flight_devices--;
    free(e);
}

/* One slot of the batch is done with; the last one frees it, telling its caller unless the
 * service is being freed (tell false: the batch goes unheard). */
static void batch_drop(struct batch *b, bool tell)
{
    if (--b->remaining > 0)
        return;
    if (tell && b->done != NULL)
        b->done(b->arg, b->reports, b->count);
    free(b->udids);
    free(b->details);
    free(b->reports);
    free(b->waiters);
    free(b);
}

static void batch_release(struct batch *b)
{
    batch_drop(b, true);
}

static void batch_report(struct batch *b, size_t index, const char *result, const char *detail)
{
    b->reports[index].result = result;
    b->reports[index].detail = NULL;
    if (detail != NULL) {
        size_t len = strnlen(detail, DETAIL_MAX - 1);
        memcpy(b->details[index], detail, len);
        b->details[index][len] = '\0';
        b->reports[index].detail = b->details[index];
    }
    batch_release(b);
}

/* Tells everyone waiting for a device and forgets the entry. */
static void entry_finish(struct push_service *ps, struct entry *e, const char *result,
                         const char *detail)
{
    struct waiter *w = e->waiters;
    entry_remove(ps, e);
    while (w != NULL) {
        struct waiter *next = w->next; /* batch_report may free w's batch, w with it */
        batch_report(w->batch, w->index, result, detail);
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

static const char *pending_get(const struct pending_result *p, uint16_t offset)
{
    return offset != 0 ? p->text + offset : NULL;
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
        rows[i] = (struct db_push_result){p->text,
                                          pending_get(p, p->token_hex),
                                          p->result,
                                          pending_get(p, p->apns_id),
                                          pending_get(p, p->reason),
                                          pending_get(p, p->dead_at)};
    }
    ps->flushing = true;
    ps->flushing_count = count;
    db_push_results(ps->srv->db, rows, count, results_written, ps);
    for (size_t i = 0; i < count; i++)
        free(ps->results[i].text);
    free(rows);
    memmove(ps->results, ps->results + count, (ps->result_count - count) * sizeof(*ps->results));
    ps->result_count -= count;
}

static void flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    flush_results(arg);
}

/* RFC 3339 with milliseconds: a 410's time is compared with the last TokenUpdate's. */
static void format_ms(int64_t ms, char out[32])
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;
    char base[21];
    if (gmtime_r(&seconds, &tm) == NULL ||
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        out[0] = '\0';
        return;
    }
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static void hex_encode(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Appends s (if not empty) to text at *used, returning its offset, 0 when absent. */
static uint16_t pending_put(char *text, size_t *used, const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    size_t len = strlen(s);
    uint16_t offset = (uint16_t)*used;
    memcpy(text + *used, s, len + 1);
    *used += len + 1;
    return offset;
}

/* push_log's code of an outcome (stored data: db/migrations/0013_push_log_narrow.sql). */
static enum db_push_code result_code(enum apns_outcome outcome)
{
    switch (outcome) {
    case APNS_DELIVERED:
        return DB_PUSH_DELIVERED;
    case APNS_UNREGISTERED:
        return DB_PUSH_UNREGISTERED;
    case APNS_REJECTED:
        return DB_PUSH_REJECTED;
    case APNS_FORBIDDEN:
        return DB_PUSH_FORBIDDEN;
    case APNS_TRANSIENT:
        break;
    }
    return DB_PUSH_TRANSIENT;
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
    char dead_at[32] = "", token_hex[2 * APNS_TOKEN_MAX + 1] = "";
    if (r->outcome == APNS_UNREGISTERED) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        format_ms(r->timestamp_ms > 0 ? r->timestamp_ms
                                      : (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                  dead_at);
        hex_encode(e->token, e->token_len, token_hex);
    }
    /* udid is bounded by the admin API and the MDM front (ID_MAX_LEN), the rest by their
     * arrays: the sum fits the 16-bit offsets. */
    size_t udid_len = strlen(udid);
    size_t size =
        udid_len + 1 + sizeof(r->apns_id) + sizeof(r->reason) + sizeof(token_hex) + sizeof(dead_at);
    if (size > UINT16_MAX) {
        log_warn("push answer for a UDID of %zu bytes not recorded", udid_len);
        ps->unrecorded++;
        return;
    }
    struct pending_result *p = &ps->results[ps->result_count++];
    p->text = malloc(size);
    if (p->text == NULL)
        log_fatal("out of memory");
    memcpy(p->text, udid, udid_len + 1);
    size_t used = udid_len + 1;
    p->result = result_code(r->outcome);
    p->apns_id = pending_put(p->text, &used, r->apns_id);
    p->reason = pending_put(p->text, &used, r->reason);
    p->token_hex = pending_put(p->text, &used, token_hex);
    p->dead_at = pending_put(p->text, &used, dead_at);
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
    if (r->outcome != APNS_DELIVERED) {
        char id[PUSH_LOG_ID_MAX + 1];
        log_info("push to %s: %s (%d %s) after %u attempt(s)",
                 log_sanitize(e->udid, strlen(e->udid), id, sizeof(id)),
                 apns_outcome_name(r->outcome), r->http_status, r->reason, r->attempts);
    }
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
    /* APNs takes a token only under its enrollment's topic, and vouchd pushes with its
     * certificate's: a device migrated with another topic is counted and logged, not sent. */
    const struct apns_cert *cert = apns_client_get0_cert(ps->apns);
    if (outcome == DB_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            const char *udid, *magic, *topic;
            const uint8_t *token;
            size_t token_len;
            if (!db_decode_push_target(res, row, &udid, &token, &token_len, &magic, &topic))
                continue;
            struct entry *e = entry_find(ps, udid, hash_udid(udid));
            if (e == NULL || e->sent)
                continue;
            if (cert != NULL && strcmp(topic, cert->topic) != 0) {
                char shown[APNS_TOPIC_MAX + 1], id[PUSH_LOG_ID_MAX + 1];
                log_warn("push to %s: no push certificate for its topic %s (vouchd pushes for "
                         "%s): not sent",
                         log_sanitize(e->udid, strlen(e->udid), id, sizeof(id)),
                         log_sanitize(topic, strlen(topic), shown, sizeof(shown)), cert->topic);
                e->no_certificate = true;
                continue;
            }
            e->sent = true;
            e->token_len = token_len < APNS_TOKEN_MAX ? token_len : APNS_TOKEN_MAX;
            memcpy(e->token, token, e->token_len);
            apns_client_push(ps->apns, token, token_len, magic, apns_done, e);
        }
    }
    for (size_t i = 0; i < l->count; i++) {
        if (l->entries[i]->sent)
            continue;
        if (l->entries[i]->no_certificate) {
            ps->no_certificate++;
            entry_finish(ps, l->entries[i], "no_certificate", NULL);
            continue;
        }
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
    size_t udids_size = 1;
    for (size_t i = 0; i < count; i++)
        udids_size += strlen(udids[i]) + 1;
    b->udids = malloc(udids_size);
    b->details = malloc((count ? count : 1) * sizeof(*b->details));
    b->waiters = malloc((count ? count : 1) * sizeof(*b->waiters));
    if (b->reports == NULL || b->udids == NULL || b->details == NULL || b->waiters == NULL)
        log_fatal("out of memory");
    size_t udids_used = 0;
    l->ps = ps;
    const char **lookup_udids = calloc(count ? count : 1, sizeof(char *));
    if (lookup_udids == NULL)
        log_fatal("out of memory");

    for (size_t i = 0; i < count; i++) {
        ps->requested++;
        size_t udid_len = strlen(udids[i]);
        b->reports[i].udid = memcpy(b->udids + udids_used, udids[i], udid_len + 1);
        udids_used += udid_len + 1;
        struct waiter *w = &b->waiters[i];
        w->batch = b;
        w->index = i;
        uint32_t hash = hash_udid(udids[i]);
        struct entry *e = entry_find(ps, udids[i], hash);
        if (e != NULL) {
            ps->coalesced++; /* already on its way: one push serves everyone */
        } else {
            e = calloc(1, sizeof(*e) + udid_len + 1);
            if (e == NULL)
                log_fatal("out of memory");
            e->ps = ps;
            e->hash = hash;
            memcpy(e->udid, udids[i], udid_len + 1);
            entry_insert(ps, e);
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

/* ---- keeping the push log bounded ---- */

static void pruned(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct push_service *ps = arg;
    if (ps->stopping)
        return;
    long long deleted = 0;
    if (outcome == DB_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        deleted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    if (deleted > 0)
        log_info("pruned %lld push log entries", deleted);
    const struct timeval next = {deleted >= PRUNE_BATCH ? PRUNE_AGAIN_S : PRUNE_EVERY_S, 0};
    evtimer_add(&ps->prune_timer, &next);
}

static void prune_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct push_service *ps = arg;
    if (!db_pool_is_up(ps->srv->db)) {
        const struct timeval every = {PRUNE_EVERY_S, 0};
        evtimer_add(&ps->prune_timer, &every);
        return;
    }
    db_push_prune(ps->srv->db, PUSH_LOG_RETENTION_S, PRUNE_BATCH, pruned, ps);
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
    evtimer_assign(&ps->prune_timer, srv->base, prune_timer_cb, ps);
    const struct timeval first = {FIRST_SWEEP_S, 0};
    evtimer_add(&ps->sweep_timer, &first);
    evtimer_add(&ps->prune_timer, &first);
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
    evtimer_del(&ps->prune_timer);
    apns_client_free(ps->apns); /* drops pushes in flight: their entries go below */
    for (size_t i = 0; i < BUCKETS; i++) {
        while (ps->buckets[i] != NULL) {
            struct entry *e = ps->buckets[i];
            struct waiter *w = e->waiters;
            ps->buckets[i] = e->next;
            while (w != NULL) {
                struct waiter *next = w->next;
                batch_drop(w->batch, false); /* at shutdown: never reported */
                w = next;
            }
            free(e);
        }
    }
    for (size_t i = 0; i < ps->result_count; i++)
        free(ps->results[i].text);
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
    evbuffer_add_printf(out, "vouch_pushes_total{outcome=\"no_certificate\"} %" PRIu64 "\n",
                        ps->no_certificate);
    evbuffer_add_printf(out,
                        "# HELP vouch_push_failures_total Pushes that ended without "
                        "delivery, by APNs reason.\n# TYPE vouch_push_failures_total counter\n");
    for (size_t i = 0; i < REASON_COUNT + 2; i++) {
        const char *reason = i < REASON_COUNT    ? apns_reasons[i]
                             : i == REASON_OTHER ? "other"
                                                 : "connection";
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
                        ps->requested, ps->coalesced, st.sent, st.retries, st.queued, st.in_flight,
                        ps->recorded, ps->unrecorded, st.connections,
                        ps->certificate_refused ? 1 : 0);
}
