#include "webhook.h"

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "curl_loop.h"
#include "log.h"
#include "queries.h"
#include "vouch_version.h"
#include "vouchd.h"

#define MAX_IN_FLIGHT 64     /* POSTs at once, all receivers together */
#define LOOK_EVERY_S 5       /* for retries that fell due (new events NOTIFY) */
#define LEASE_MARGIN_S 5     /* a claim lasts the timeout and this: then another may send */
#define BACKOFF_BASE_S 10.0  /* first retry after 5-10 s, doubling */
#define BACKOFF_MAX_S 1800.0 /* at most every 15-30 minutes */
#define NOTIFY_CHANNEL "vouch_events"

struct delivery {
    struct delivery *prev, *next; /* in flight */
    struct webhook *wh;
    CURL *easy;
    struct curl_slist *headers;
    int64_t id;
    int attempts; /* before this one */
    char receiver[CONFIG_MAX_ITEM + 1];
    char *body;
    char error[CURL_ERROR_SIZE + 32];
    bool ok;
};

struct webhook {
    struct vouchd *srv;
    struct curl_loop *loop;
    struct event timer;
    struct event flush;
    bool claiming, writing, again;
    unsigned in_flight;
    struct delivery *flying; /* the requests in flight */
    size_t receiver_count;
    /* answers waiting to be recorded */
    struct delivery **done;
    size_t done_count;
    /* figures */
    uint64_t delivered, retried, dead;
    double last_lag_s;
};

static void look(struct webhook *wh);

static void sleep_for(struct webhook *wh, int seconds)
{
    struct timeval tv = {seconds, 0};
    evtimer_del(&wh->timer);
    evtimer_add(&wh->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    look(arg);
}

static void notified(void *arg)
{
    look(arg);
}

static void delivery_free(struct delivery *d)
{
    if (d->easy != NULL)
        curl_easy_cleanup(d->easy);
    curl_slist_free_all(d->headers);
    free(d->body);
    free(d);
}

/* Equal jitter: half the cap plus up to the other half, the cap doubling per attempt, so that
 * the events of a receiver that was down do not all come back at once. */
static double retry_delay(int attempts)
{
    double cap = BACKOFF_BASE_S;
    for (int i = 0; i < attempts && cap < BACKOFF_MAX_S; i++)
        cap *= 2;
    if (cap > BACKOFF_MAX_S)
        cap = BACKOFF_MAX_S;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)rand();
    return cap / 2 + cap / 2 * ((double)r / (double)UINT32_MAX);
}

static void results_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct webhook *wh = arg;
    wh->writing = false;
    if (outcome == DB_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            const char *status;
            double age;
            if (!db_decode_webhook_result(res, row, &status, &age))
                continue;
            if (strcmp(status, "delivered") == 0) {
                wh->delivered++;
                wh->last_lag_s = age;
            } else if (strcmp(status, "pending") == 0) {
                wh->retried++;
            } else if (strcmp(status, "dead") == 0) {
                wh->dead++;
                log_warn("web-hook event %s is dead: not delivered within webhook_max_age",
                         PQgetvalue(res, row, 0));
            }
        }
    } else {
        /* Not recorded: the leases run out and the events are sent again (at least once). */
        log_warn("web-hook answers not recorded (database unavailable): they will be re-sent");
    }
    if (wh->done_count > 0)
        event_active(&wh->flush, EV_TIMEOUT, 0);
    look(wh);
}

/* Records the answers gathered so far, in one statement. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct webhook *wh = arg;
    if (wh->writing || wh->done_count == 0)
        return;
    struct db_webhook_result *results = calloc(wh->done_count, sizeof(*results));
    if (results == NULL)
        log_fatal("out of memory");
    for (size_t i = 0; i < wh->done_count; i++) {
        struct delivery *d = wh->done[i];
        results[i] = (struct db_webhook_result){d->id, d->receiver, d->ok, d->error,
                                                d->ok ? 0 : retry_delay(d->attempts)};
    }
    wh->writing = true;
    db_webhook_results(wh->srv->db, results, wh->done_count, wh->srv->cfg->webhook_max_age,
                       results_done, wh);
    for (size_t i = 0; i < wh->done_count; i++)
        delivery_free(wh->done[i]);
    wh->done_count = 0;
    free(results);
}

static void transfer_done(void *arg, CURL *easy, CURLcode result)
{
    struct webhook *wh = arg;
    struct delivery *d = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&d);
    curl_loop_remove(wh->loop, easy);
    wh->in_flight--;
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        wh->flying = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    long status = 0;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    d->ok = result == CURLE_OK && status >= 200 && status < 300;
    if (!d->ok) {
        if (result != CURLE_OK) {
            if (d->error[0] == '\0')
                snprintf(d->error, sizeof(d->error), "%s", curl_easy_strerror(result));
        } else {
            snprintf(d->error, sizeof(d->error), "HTTP %ld", status);
        }
        log_info("web-hook event %" PRId64 " to %s: %s (attempt %d)", d->id, d->receiver, d->error,
                 d->attempts + 1);
    }
    curl_easy_cleanup(d->easy);
    d->easy = NULL;
    wh->done[wh->done_count++] = d;
}

static void transfers_done(void *arg)
{
    struct webhook *wh = arg;
    event_active(&wh->flush, EV_TIMEOUT, 0);
}

static size_t discard(char *data, size_t size, size_t n, void *userp)
{
    return size * n; /* the receiver's answer body is not needed */
}

/* X-Hmac-Signature: base64(HMAC-SHA256(body, webhook_secret)). */
static bool sign(const char *secret, const char *body, size_t len, char *header, size_t size)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac,
             &mac_len) == NULL)
        return false;
    EVP_EncodeBlock(b64, mac, (int)mac_len);
    return snprintf(header, size, "X-Hmac-Signature: %s", b64) < (int)size;
}

static bool start_delivery(struct webhook *wh, int64_t id, const char *receiver, const char *body,
                           size_t body_len, int attempts)
{
    struct delivery *d = calloc(1, sizeof(*d));
    char signature[128];
    if (d == NULL || (d->body = malloc(body_len + 1)) == NULL)
        log_fatal("out of memory");
    memcpy(d->body, body, body_len);
    d->body[body_len] = '\0';
    d->wh = wh;
    d->id = id;
    d->attempts = attempts;
    snprintf(d->receiver, sizeof(d->receiver), "%s", receiver);
    const struct config *cfg = wh->srv->cfg;
    bool ok = sign(cfg->webhook_secret, d->body, body_len, signature, sizeof(signature)) &&
              (d->easy = curl_easy_init()) != NULL;
    if (ok) {
        d->headers = curl_slist_append(NULL, "Content-Type: application/json");
        d->headers = curl_slist_append(d->headers, signature);
        d->headers = curl_slist_append(d->headers, "User-Agent: vouchd/" VOUCH_VERSION);
        d->headers = curl_slist_append(d->headers, "Expect:");
        CURL *e = d->easy;
        ok = d->headers != NULL && curl_easy_setopt(e, CURLOPT_URL, d->receiver) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)body_len) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)cfg->webhook_timeout) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->error) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_PRIVATE, d) == CURLE_OK &&
             curl_loop_add(wh->loop, e) == CURLM_OK;
    }
    if (!ok) {
        log_error("web-hook event %" PRId64 ": cannot set up the request", id);
        delivery_free(d);
        return false;
    }
    wh->in_flight++;
    d->next = wh->flying;
    if (wh->flying != NULL)
        wh->flying->prev = d;
    wh->flying = d;
    return true;
}

static void claim_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct webhook *wh = arg;
    wh->claiming = false;
    if (outcome != DB_OK) {
        sleep_for(wh, LOOK_EVERY_S);
        return;
    }
    int rows = PQntuples(res);
    for (int row = 0; row < rows; row++) {
        int64_t id;
        const char *receiver, *body;
        size_t body_len;
        int attempts;
        if (db_decode_webhook_claim(res, row, &id, &receiver, &body, &body_len, &attempts))
            start_delivery(wh, id, receiver, body, body_len, attempts);
    }
    /* Something came (more may be due) or a NOTIFY came meanwhile: look again. Otherwise
     * retries fall due later, or a NOTIFY comes. */
    if ((rows > 0 || wh->again) && wh->in_flight + wh->done_count < MAX_IN_FLIGHT)
        look(wh);
    else
        sleep_for(wh, LOOK_EVERY_S);
}

static void look(struct webhook *wh)
{
    if (wh->receiver_count == 0 || wh->srv->stopping)
        return;
    size_t busy = wh->in_flight + wh->done_count;
    if (wh->claiming || busy >= MAX_IN_FLIGHT) {
        wh->again = true; /* the next answer looks again */
        return;
    }
    wh->claiming = true;
    wh->again = false;
    db_webhook_claim(wh->srv->db, (unsigned)(MAX_IN_FLIGHT - busy),
                     wh->srv->cfg->webhook_timeout + LEASE_MARGIN_S, claim_done, wh);
}

struct webhook *webhook_new(struct vouchd *srv)
{
    struct webhook *wh = calloc(1, sizeof(*wh));
    if (wh == NULL || (wh->done = calloc(MAX_IN_FLIGHT, sizeof(*wh->done))) == NULL)
        log_fatal("out of memory");
    wh->srv = srv;
    wh->receiver_count = srv->cfg->receiver_count;
    wh->loop = curl_loop_new(srv->base, transfer_done, transfers_done, wh);
    if (wh->loop == NULL)
        log_fatal("cannot create the web-hook dispatcher's curl handle");
    evtimer_assign(&wh->timer, srv->base, timer_cb, wh);
    event_assign(&wh->flush, srv->base, -1, 0, flush_cb, wh);
    db_listen(srv->db, NOTIFY_CHANNEL, notified, wh);
    sleep_for(wh, 0);
    return wh;
}

void webhook_free(struct webhook *wh)
{
    if (wh == NULL)
        return;
    evtimer_del(&wh->timer);
    event_del(&wh->flush);
    for (size_t i = 0; i < wh->done_count; i++)
        delivery_free(wh->done[i]);
    /* Requests still in flight: their leases run out and another attempt sends them. */
    while (wh->flying != NULL) {
        struct delivery *d = wh->flying;
        wh->flying = d->next;
        curl_loop_remove(wh->loop, d->easy);
        delivery_free(d);
    }
    curl_loop_free(wh->loop);
    free(wh->done);
    free(wh);
}

void webhook_render_metrics(const struct webhook *wh, struct evbuffer *out)
{
    if (wh == NULL)
        return;
    evbuffer_add_printf(out,
                        "# HELP vouch_webhook_deliveries_total Web-hook attempts, by what came "
                        "of them: delivered, retried later, or dead (too old to retry).\n"
                        "# TYPE vouch_webhook_deliveries_total counter\n"
                        "vouch_webhook_deliveries_total{result=\"delivered\"} %" PRIu64 "\n"
                        "vouch_webhook_deliveries_total{result=\"retried\"} %" PRIu64 "\n"
                        "vouch_webhook_deliveries_total{result=\"dead\"} %" PRIu64 "\n"
                        "# HELP vouch_webhook_in_flight Web-hook requests waiting for answers.\n"
                        "# TYPE vouch_webhook_in_flight gauge\n"
                        "vouch_webhook_in_flight %u\n"
                        "# HELP vouch_webhook_lag_seconds Age of the last event delivered.\n"
                        "# TYPE vouch_webhook_lag_seconds gauge\n"
                        "vouch_webhook_lag_seconds %.3f\n",
                        wh->delivered, wh->retried, wh->dead, wh->in_flight, wh->last_lag_s);
}
