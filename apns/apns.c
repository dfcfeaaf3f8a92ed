#include "apns.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "curl_loop.h"
#include "json.h"
#include "log.h"

#define RESPONSE_BODY_MAX 2048
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000

struct apns_job {
    struct apns_job *next;              /* in the send queue */
    struct apns_job *all_prev, *all_next; /* every job the client holds, for apns_client_free */
    struct apns_client *client;
    char url[64 + 2 * APNS_TOKEN_MAX];
    char body[512];
    apns_done_fn *cb;
    void *arg;
    unsigned attempts;
    struct event retry; /* backoff timer, or the deferred report of a refused push */
    bool retry_pending;
    const char *refusal; /* refused before sending: reported from the loop with this reason */
    /* the attempt in flight */
    CURL *easy;
    unsigned easy_generation; /* the certificate generation easy was configured with */
    struct curl_slist *headers;
    char apns_id[64];
    char response[RESPONSE_BODY_MAX];
    size_t response_len;
    char curl_error[CURL_ERROR_SIZE];
};

struct retired_cert {
    struct retired_cert *next;
    struct apns_cert cert;
};

struct apns_client {
    struct event_base *base;
    struct apns_config cfg;
    char *url;
    char *ca_file;
    struct apns_cert cert;
    unsigned cert_generation;  /* bumped by apns_client_set_cert */
    struct retired_cert *retired; /* earlier certificates: curl handles may still point at them */
    struct curl_loop *loop;
    struct apns_job *queue_head, *queue_tail;
    struct apns_job *all; /* every job, queued, in flight or waiting to retry */
    /* Easy handles kept between pushes: a new handle per push would allocate (and fault in)
     * curl's buffers every time. */
    CURL **idle_handles;
    size_t idle_count;
    unsigned queued, in_flight, waiting_retry;
    struct apns_stats stats;
};

static const char *const outcome_names[] = {"delivered", "unregistered", "rejected", "forbidden",
                                            "transient"};

const char *apns_outcome_name(enum apns_outcome outcome)
{
    return outcome_names[outcome];
}

static void start_jobs(struct apns_client *c);

/* ---- one push ---- */

static size_t header_cb(char *data, size_t size, size_t n, void *userp)
{
    struct apns_job *job = userp;
    size_t len = size * n;
    static const char name[] = "apns-id:";
    if (len > sizeof(name) && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        const char *v = data + sizeof(name) - 1;
        size_t v_len = len - (sizeof(name) - 1);
        while (v_len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            v_len--;
        }
        while (v_len > 0 && (v[v_len - 1] == '\r' || v[v_len - 1] == '\n' || v[v_len - 1] == ' '))
            v_len--;
        if (v_len >= sizeof(job->apns_id))
            v_len = sizeof(job->apns_id) - 1;
        memcpy(job->apns_id, v, v_len);
        job->apns_id[v_len] = '\0';
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp)
{
    struct apns_job *job = userp;
    size_t len = size * n;
    size_t room = sizeof(job->response) - 1 - job->response_len;
    /* APNs' answers are small JSON; anything beyond the bound is ignored, not buffered. */
    size_t take = len < room ? len : room;
    memcpy(job->response + job->response_len, data, take);
    job->response_len += take;
    job->response[job->response_len] = '\0';
    return len;
}

/* The options every push shares, set once per handle and certificate. curl reads the blobs in
 * place (NOCOPY): a replaced certificate is kept alive in c->retired. */
static bool configure_easy(struct apns_client *c, CURL *e)
{
    struct curl_blob cert = {c->cert.cert_pem, c->cert.cert_pem_len, CURL_BLOB_NOCOPY};
    struct curl_blob key = {c->cert.key_pem, c->cert.key_pem_len, CURL_BLOB_NOCOPY};
    bool ok = curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->cfg.timeout_ms) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK;
    if (ok && c->ca_file != NULL)
        ok = curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) == CURLE_OK;
    return ok;
}

static bool setup_easy(struct apns_client *c, struct apns_job *job)
{
    char header[APNS_TOPIC_MAX + 32];
    job->apns_id[0] = '\0';
    job->response_len = 0;
    job->curl_error[0] = '\0';
    if (job->easy != NULL && job->easy_generation != c->cert_generation) {
        curl_easy_cleanup(job->easy); /* a retry after the certificate changed */
        job->easy = NULL;
    }
    if (job->easy == NULL) {
        if (c->idle_count > 0) {
            job->easy = c->idle_handles[--c->idle_count];
        } else {
            if ((job->easy = curl_easy_init()) == NULL || !configure_easy(c, job->easy))
                return false;
        }
        job->easy_generation = c->cert_generation;
    }
    CURL *e = job->easy;
    curl_slist_free_all(job->headers);
    job->headers = NULL;
    snprintf(header, sizeof(header), "apns-topic: %s", c->cert.topic);
    job->headers = curl_slist_append(job->headers, header);
    job->headers = curl_slist_append(job->headers, "apns-push-type: mdm");
    snprintf(header, sizeof(header), "apns-expiration: %lld",
             (long long)time(NULL) + (long long)c->cfg.expiration_s);
    job->headers = curl_slist_append(job->headers, header);
    job->headers = curl_slist_append(job->headers, "apns-priority: 10");
    job->headers = curl_slist_append(job->headers, "Content-Type: application/json");
    return job->headers != NULL && curl_easy_setopt(e, CURLOPT_URL, job->url) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->body) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_HEADERDATA, job) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_WRITEDATA, job) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->curl_error) == CURLE_OK &&
           curl_easy_setopt(e, CURLOPT_PRIVATE, job) == CURLE_OK;
}

static void job_free(struct apns_job *job)
{
    struct apns_client *c = job->client;
    if (job->easy != NULL && c->idle_count < c->cfg.max_in_flight &&
        job->easy_generation == c->cert_generation) {
        c->idle_handles[c->idle_count++] = job->easy;
        job->easy = NULL;
    }
    if (job->all_prev)
        job->all_prev->all_next = job->all_next;
    else
        c->all = job->all_next;
    if (job->all_next)
        job->all_next->all_prev = job->all_prev;
    if (job->retry_pending)
        evtimer_del(&job->retry);
    curl_slist_free_all(job->headers);
    if (job->easy != NULL)
        curl_easy_cleanup(job->easy);
    free(job);
}

static void job_finish(struct apns_client *c, struct apns_job *job, struct apns_response *r)
{
    r->attempts = job->attempts;
    switch (r->outcome) {
    case APNS_DELIVERED: c->stats.delivered++; break;
    case APNS_UNREGISTERED: c->stats.unregistered++; break;
    case APNS_REJECTED: c->stats.rejected++; break;
    case APNS_FORBIDDEN: c->stats.forbidden++; break;
    case APNS_TRANSIENT: c->stats.transient_failed++; break;
    }
    job->cb(job->arg, r);
    job_free(job);
}

static void enqueue_job(struct apns_client *c, struct apns_job *job)
{
    job->next = NULL;
    if (c->queue_tail)
        c->queue_tail->next = job;
    else
        c->queue_head = job;
    c->queue_tail = job;
    c->queued++;
}

static void retry_cb(evutil_socket_t fd, short kind, void *arg)
{
    struct apns_job *job = arg;
    struct apns_client *c = job->client;
    job->retry_pending = false;
    c->waiting_retry--;
    if (job->refusal != NULL) {
        struct apns_response r = {.outcome = APNS_REJECTED};
        snprintf(r.reason, sizeof(r.reason), "%s", job->refusal);
        job_finish(c, job, &r);
        return;
    }
    enqueue_job(c, job);
    start_jobs(c);
}

/* Reports a refusal from the loop, never from inside a call of the caller's. */
static void refuse_later(struct apns_client *c, struct apns_job *job, const char *reason)
{
    static const struct timeval now = {0, 0};
    job->refusal = reason;
    job->retry_pending = true;
    c->waiting_retry++;
    evtimer_assign(&job->retry, c->base, retry_cb, job);
    evtimer_add(&job->retry, &now);
}

/* Full jitter: a uniform delay up to an exponentially growing cap, so that many devices failing
 * together do not come back together. */
static void schedule_retry(struct apns_client *c, struct apns_job *job)
{
    unsigned cap = BACKOFF_BASE_MS << (job->attempts < 8 ? job->attempts : 8);
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)rand();
    unsigned delay = cap / 2 + r % (cap / 2 + 1);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_assign(&job->retry, c->base, retry_cb, job);
    job->retry_pending = true;
    c->waiting_retry++;
    c->stats.retries++;
    evtimer_add(&job->retry, &tv);
}

static void parse_error_body(const struct apns_job *job, struct apns_response *r)
{
    static const struct json_limits limits = {.max_bytes = RESPONSE_BODY_MAX, .max_depth = 4,
                                              .max_nodes = 32};
    struct json_doc *doc = NULL;
    if (job->response_len == 0 ||
        json_parse(job->response, job->response_len, &limits, &doc, NULL) != JSON_OK)
        return;
    const char *reason = json_object_get_string(json_doc_root(doc), "reason");
    if (reason != NULL)
        snprintf(r->reason, sizeof(r->reason), "%s", reason);
    int64_t ts;
    if (json_get_int64(json_object_find(json_doc_root(doc), "timestamp"), &ts))
        r->timestamp_ms = ts;
    json_doc_free(doc);
}

static enum apns_outcome classify(long status)
{
    if (status == 200)
        return APNS_DELIVERED;
    if (status == 410)
        return APNS_UNREGISTERED;
    if (status == 403)
        return APNS_FORBIDDEN;
    if (status == 429 || status >= 500 || status == 0)
        return APNS_TRANSIENT;
    return APNS_REJECTED;
}

static void attempt_done(struct apns_client *c, struct apns_job *job, CURLcode result)
{
    long status = 0;
    curl_loop_remove(c->loop, job->easy);
    c->in_flight--;
    if (result == CURLE_OK)
        curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    struct apns_response r = {.http_status = (int)status, .outcome = classify(status)};
    if (result != CURLE_OK) {
        /* No answer: refused, reset, TLS failure, GOAWAY, timeout. */
        const char *why = job->curl_error[0] ? job->curl_error : curl_easy_strerror(result);
        snprintf(r.reason, sizeof(r.reason), "%.*s", (int)sizeof(r.reason) - 1, why);
        r.outcome = APNS_TRANSIENT;
    } else if (status == 200) {
        snprintf(r.apns_id, sizeof(r.apns_id), "%s", job->apns_id);
    } else {
        parse_error_body(job, &r);
    }
    if (r.outcome == APNS_TRANSIENT && job->attempts < c->cfg.max_attempts) {
        log_debug("push to %s: %d %s: retrying", job->url, r.http_status, r.reason);
        schedule_retry(c, job);
        return;
    }
    job_finish(c, job, &r);
}

/* curl_loop: a transfer finished; then, once per batch, room for more. */
static void transfer_done(void *arg, CURL *easy, CURLcode result)
{
    struct apns_job *job = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
    attempt_done(arg, job, result);
}

static void transfers_done(void *arg)
{
    start_jobs(arg);
}

static void start_jobs(struct apns_client *c)
{
    while (c->queue_head != NULL && c->in_flight < c->cfg.max_in_flight) {
        struct apns_job *job = c->queue_head;
        c->queue_head = job->next;
        if (c->queue_head == NULL)
            c->queue_tail = NULL;
        c->queued--;
        job->attempts++;
        c->stats.sent++;
        bool set_up = setup_easy(c, job);
        CURLMcode added = set_up ? curl_loop_add(c->loop, job->easy) : CURLM_OK;
        if (!set_up || added != CURLM_OK) {
            log_error("cannot start a push: %s",
                      set_up ? curl_multi_strerror(added) : "curl refused an option");
            refuse_later(c, job, "cannot set up the request");
            continue;
        }
        c->in_flight++;
    }
}

void apns_client_push(struct apns_client *c, const uint8_t *token, size_t token_len,
                      const char *push_magic, apns_done_fn *cb, void *arg)
{
    struct apns_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        log_fatal("out of memory");
    job->client = c;
    job->cb = cb;
    job->arg = arg;
    job->all_next = c->all;
    if (c->all)
        c->all->all_prev = job;
    c->all = job;

    int n = snprintf(job->url, sizeof(job->url), "%s/3/device/", c->url);
    for (size_t i = 0; i < token_len && i < APNS_TOKEN_MAX; i++)
        n += snprintf(job->url + n, sizeof(job->url) - (size_t)n, "%02x", token[i]);
    /* PushMagic is a UUID string from the device; JSON-escape it all the same. */
    struct json_writer *w = json_writer_new(sizeof(job->body) - 1, 0);
    const char *text = NULL;
    size_t len = 0;
    if (w != NULL && json_write_begin_object(w) && json_write_key(w, "mdm") &&
        json_write_string(w, push_magic) && json_write_end_object(w) &&
        json_writer_finish(w, &text, &len))
        memcpy(job->body, text, len + 1);
    json_writer_free(w);

    if (token_len == 0 || token_len > APNS_TOKEN_MAX || text == NULL) {
        refuse_later(c, job, "BadDeviceToken");
        return;
    }
    enqueue_job(c, job);
    start_jobs(c);
}

struct apns_client *apns_client_new(struct event_base *base, const struct apns_config *cfg,
                                    struct apns_cert *cert, char *err, size_t err_size)
{
    struct apns_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    c->base = base;
    c->cfg = *cfg;
    c->url = strdup(cfg->url);
    c->ca_file = cfg->ca_file ? strdup(cfg->ca_file) : NULL;
    c->cfg.url = c->url;
    c->cfg.ca_file = c->ca_file;
    size_t url_len = c->url ? strlen(c->url) : 0;
    while (url_len > 0 && c->url[url_len - 1] == '/')
        c->url[--url_len] = '\0';
    c->loop = curl_loop_new(base, transfer_done, transfers_done, c);
    c->idle_handles = calloc(cfg->max_in_flight ? cfg->max_in_flight : 1, sizeof(CURL *));
    if (c->idle_handles == NULL || c->url == NULL || (cfg->ca_file && c->ca_file == NULL) ||
        c->loop == NULL || url_len == 0 || url_len > 64) {
        snprintf(err, err_size, "apns_url: cannot set up the client for '%s'", cfg->url);
        apns_client_free(c);
        return NULL;
    }
    CURLM *multi = curl_loop_multi(c->loop);
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)cfg->max_in_flight);
    /* One push certificate, one topic: one persistent connection carries every stream. */
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
    c->cert = *cert;
    memset(cert, 0, sizeof(*cert));
    return c;
}

void apns_client_set_cert(struct apns_client *c, struct apns_cert *cert)
{
    struct retired_cert *old = calloc(1, sizeof(*old));
    if (old == NULL)
        log_fatal("out of memory");
    old->cert = c->cert;
    old->next = c->retired;
    c->retired = old;
    c->cert = *cert;
    memset(cert, 0, sizeof(*cert));
    c->cert_generation++;
    /* Idle handles hold the old certificate: new pushes get fresh ones. */
    for (size_t i = 0; i < c->idle_count; i++)
        curl_easy_cleanup(c->idle_handles[i]);
    c->idle_count = 0;
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
}

void apns_client_free(struct apns_client *c)
{
    if (c == NULL)
        return;
    while (c->all != NULL) {
        struct apns_job *job = c->all;
        if (job->easy != NULL && c->loop != NULL)
            curl_loop_remove(c->loop, job->easy);
        job_free(job);
    }
    for (size_t i = 0; i < c->idle_count; i++)
        curl_easy_cleanup(c->idle_handles[i]);
    free(c->idle_handles);
    curl_loop_free(c->loop);
    apns_cert_clear(&c->cert);
    while (c->retired != NULL) {
        struct retired_cert *r = c->retired;
        c->retired = r->next;
        apns_cert_clear(&r->cert);
        free(r);
    }
    free(c->url);
    free(c->ca_file);
    free(c);
}
