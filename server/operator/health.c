#include "health.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "answer_batch.h"
#include "apns.h"
#include "apns_cert.h"
#include "histogram.h"
#include "identity.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "push.h"
#include "scheduler.h"
#include "vouch_version.h"
#include "vouchd.h"
#include "webhook.h"

/* /version, as NanoMDM's: any method, no authentication. */
static void handle_version(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    (void)srv;
    (void)path;
    static const char body[] = "{\"version\":\"" VOUCH_VERSION "\"}";
    http_reply(req, EP_OTHER, 200, "application/json", body, sizeof(body) - 1);
}

/* 200 while devices can be served (status "ok", or "degraded" when pushes cannot work: APNs
 * refused the push certificate or it expired); 503 without the database or while stopping. */
static void handle_healthz(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    bool db_up = db_pool_is_up(srv->db);
    bool up = db_up && !srv->stopping;
    const char *push = "off";
    if (srv->push != NULL) {
        const struct apns_cert *cert = apns_client_get0_cert(push_service_get0_apns(srv->push));
        push = push_service_certificate_refused(srv->push) ? "certificate_refused"
               : apns_cert_days_left(cert, time(NULL)) < 0 ? "certificate_expired"
                                                           : "ok";
    }
    bool degraded = strcmp(push, "ok") != 0 && strcmp(push, "off") != 0;
    /* The clock verdicts are taken at: "real", or "test" with how far it is moved. */
    char clock[64] = "\"real\"";
    if (srv->cfg->test_clock)
        snprintf(clock, sizeof(clock), "\"test\",\"clock_skew_s\":%.0f",
                 srv->stats_known ? srv->stats.clock_skew : 0.0);
    char body[224];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"database\":\"%s\",\"push\":\"%s\",\"clock\":%s}",
                     srv->stopping ? "stopping"
                     : !db_up      ? "unavailable"
                     : degraded    ? "degraded"
                                   : "ok",
                     db_up ? "up" : "down", push, clock);
    http_reply(req, EP_HEALTHZ, up ? 200 : 503, "application/json", body, (size_t)n);
}

static void emit_to_evbuffer(void *arg, const char *text, size_t len)
{
    evbuffer_add(arg, text, len);
}

/* The pool's families: connections, queries and their latency by outcome. */
static void render_database(const struct db_pool *db, struct evbuffer *out)
{
    struct db_pool_stats pool;
    db_pool_get_stats(db, &pool);
    evbuffer_add_printf(
        out,
        "# HELP vouch_db_pool_connections PostgreSQL connections of the pool, by state.\n"
        "# TYPE vouch_db_pool_connections gauge\n"
        "vouch_db_pool_connections{state=\"configured\"} %u\n"
        "vouch_db_pool_connections{state=\"up\"} %u\n"
        "vouch_db_pool_connections{state=\"busy\"} %u\n"
        "# HELP vouch_db_pool_waiting Queries waiting for a connection.\n"
        "# TYPE vouch_db_pool_waiting gauge\nvouch_db_pool_waiting %u\n"
        "# HELP vouch_db_queries_total Queries sent to PostgreSQL.\n"
        "# TYPE vouch_db_queries_total counter\nvouch_db_queries_total %" PRIu64 "\n"
        "# HELP vouch_db_failures_total Queries that failed (database unavailable or the query "
        "refused).\n"
        "# TYPE vouch_db_failures_total counter\nvouch_db_failures_total %" PRIu64 "\n"
        "# HELP vouch_db_reconnects_total Attempts to connect again after a connection broke.\n"
        "# TYPE vouch_db_reconnects_total counter\nvouch_db_reconnects_total %" PRIu64 "\n",
        pool.size, pool.up, pool.busy, pool.waiting, pool.queries, pool.failures, pool.reconnects);
    histogram_render_header("vouch_db_query_duration_seconds",
                            "Time from a query's start to its answer (waiting for a connection "
                            "included), by how it ended.",
                            emit_to_evbuffer, out);
    for (int o = 0; o < DB_OUTCOMES; o++) {
        const struct histogram *h = db_pool_get0_latency(db, (enum db_outcome)o);
        if (o == DB_OK || h->count != 0)
            histogram_render(h, "vouch_db_query_duration_seconds", "outcome",
                             db_outcome_name((enum db_outcome)o), emit_to_evbuffer, out);
    }
}

/* The identity verifier's cache (a new trust store, at SIGHUP, starts its counters again). */
static void render_identity_cache(const struct identity_verifier *identity, struct evbuffer *out)
{
    struct identity_cache_stats cache;
    identity_verifier_cache_stats(identity, &cache);
    evbuffer_add_printf(out,
                        "# HELP vouch_identity_cache_total Device identities proven with a "
                        "cached certificate (hit) or a full chain verification (miss), and "
                        "cached certificates dropped (expired, evicted).\n"
                        "# TYPE vouch_identity_cache_total counter\n"
                        "vouch_identity_cache_total{outcome=\"hit\"} %" PRIu64 "\n"
                        "vouch_identity_cache_total{outcome=\"miss\"} %" PRIu64 "\n"
                        "vouch_identity_cache_total{outcome=\"expired\"} %" PRIu64 "\n"
                        "vouch_identity_cache_total{outcome=\"evicted\"} %" PRIu64 "\n",
                        cache.hits, cache.misses, cache.expired, cache.evicted);
}

static void handle_metrics(struct vouchd *srv, struct evhttp_request *req, const char *path)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL)
        log_fatal("out of memory");
    evbuffer_add_printf(out,
                        "# HELP vouch_build_info The version of vouchd that answers (always 1).\n"
                        "# TYPE vouch_build_info gauge\n"
                        "vouch_build_info{version=\"%s\"} 1\n",
                        VOUCH_VERSION);
    metrics_render(out);
    render_database(srv->db, out);
    if (srv->identity != NULL)
        render_identity_cache(srv->identity, out);
    evbuffer_add_printf(out,
                        "# HELP vouch_requests_in_flight Device and admin requests waiting for "
                        "the database.\n"
                        "# TYPE vouch_requests_in_flight gauge\nvouch_requests_in_flight %u\n"
                        "# HELP vouch_http_connections HTTP connections open.\n"
                        "# TYPE vouch_http_connections gauge\nvouch_http_connections %u\n",
                        srv->inflight, http_connections());
    if (srv->stats_known)
        evbuffer_add_printf(
            out,
            "# HELP vouch_queue_depth Commands waiting for devices.\n"
            "# TYPE vouch_queue_depth gauge\nvouch_queue_depth %" PRId64 "\n"
            "# HELP vouch_enrolled_devices Devices enrolled (not checked out).\n"
            "# TYPE vouch_enrolled_devices gauge\nvouch_enrolled_devices %" PRId64 "\n"
            "# HELP vouch_clock_skew_seconds How far the test clock moves the "
            "time verdicts are taken at (0 but with test_clock).\n"
            "# TYPE vouch_clock_skew_seconds gauge\nvouch_clock_skew_seconds %.0f\n",
            srv->stats.queue_depth, srv->stats.enrolled, srv->stats.clock_skew);
    if (srv->push != NULL) {
        /* Read at each scrape: SIGHUP (and an upload) replace the certificate. */
        const struct apns_cert *cert = apns_client_get0_cert(push_service_get0_apns(srv->push));
        if (cert != NULL)
            evbuffer_add_printf(out,
                                "# HELP vouch_push_certificate_expiry_seconds When the APNs push "
                                "certificate expires (its notAfter, Unix time).\n"
                                "# TYPE vouch_push_certificate_expiry_seconds gauge\n"
                                "vouch_push_certificate_expiry_seconds %lld\n",
                                (long long)cert->not_after);
        push_service_render_metrics(srv->push, out);
    }
    if (srv->answers != NULL)
        answer_batch_render_metrics(srv->answers, out);
    scheduler_render_metrics(srv->scheduler, out);
    webhook_render_metrics(srv->webhook, out);
    size_t len = evbuffer_get_length(out);
    http_reply(req, EP_METRICS, 200, "text/plain; version=0.0.4", evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}

void health_register_routes(void)
{
    http_route("/healthz", handle_healthz);
    http_route("/metrics", handle_metrics);
    http_route("/version", handle_version);
}
