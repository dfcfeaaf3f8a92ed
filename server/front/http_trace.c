#include "http_trace.h"

#include <event2/http.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "http.h"
#include "log.h"

#define TRACE_SLOTS 1024
#define LOGGED_PATH_MAX 256
#define GENERATED_ID_BYTES 8

struct http_trace {
    struct http_trace *next; /* in its slot */
    struct evhttp_request *req;
    struct timespec arrived; /* CLOCK_MONOTONIC */
    const char *method;      /* a static string */
    char id[LOG_REQUEST_ID_MAX + 1];
    char path[LOGGED_PATH_MAX + 1];
    char peer[128];
};

static struct http_trace *slots[TRACE_SLOTS];

static size_t slot_of(const struct evhttp_request *req)
{
    uint64_t v = (uint64_t)(uintptr_t)req;
    v ^= v >> 29;
    v *= UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(v >> 40) % TRACE_SLOTS;
}

/* The client's X-Request-Id when it sent one, once, and it is sane; else a new one. */
static void choose_id(struct evhttp_request *req, char *id)
{
    const char *theirs = NULL;
    if (http_header_once(req, "X-Request-Id", &theirs) && theirs != NULL &&
        log_request_id_is_sane(theirs, strnlen(theirs, LOG_REQUEST_ID_MAX + 1))) {
        memcpy(id, theirs, strlen(theirs) + 1);
        return;
    }
    /* Random bytes are drawn for 32 ids at a time: one call to the DRBG (its locks, its fork
     * check's getpid()) per 32 requests instead of one per request. */
    static unsigned char pool[32 * GENERATED_ID_BYTES];
    static size_t pool_used = sizeof(pool);
    unsigned char raw[GENERATED_ID_BYTES];
    if (pool_used == sizeof(pool) && RAND_bytes(pool, sizeof(pool)) == 1)
        pool_used = 0;
    if (pool_used < sizeof(pool)) {
        memcpy(raw, pool + pool_used, sizeof(raw));
        pool_used += sizeof(raw);
    } else {
        /* Unique enough for finding lines that belong together. */
        static uint64_t serial;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t v = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec + ++serial;
        memcpy(raw, &v, sizeof(raw));
    }
    hex_encode(raw, sizeof(raw), id);
}

const char *http_trace_begin(struct evhttp_request *req, const char *peer)
{
    struct http_trace *t = calloc(1, sizeof(*t));
    if (t == NULL)
        log_fatal("out of memory");
    t->req = req;
    clock_gettime(CLOCK_MONOTONIC, &t->arrived);
    t->method = http_method_name(req);
    choose_id(req, t->id);
    if (log_enabled(LOG_INFO)) { /* the path and the peer go into the access line alone */
        const char *target = evhttp_request_get_uri(req);
        if (target == NULL)
            target = "?";
        log_sanitize(target, strcspn(target, "?"), t->path, sizeof(t->path));
        snprintf(t->peer, sizeof(t->peer), "%s", peer);
    }
    size_t slot = slot_of(req);
    t->next = slots[slot];
    slots[slot] = t;
    log_set_request_id(t->id);
    return t->id;
}

void http_trace_end(struct evhttp_request *req, enum metrics_endpoint endpoint, int status,
                    size_t bytes)
{
    struct http_trace **at = &slots[slot_of(req)];
    while (*at != NULL && (*at)->req != req)
        at = &(*at)->next;
    struct http_trace *t = *at;
    if (t == NULL)
        return;
    *at = t->next;

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double seconds =
        (double)(now.tv_sec - t->arrived.tv_sec) + (double)(now.tv_nsec - t->arrived.tv_nsec) / 1e9;
    metrics_observe_duration(endpoint, seconds);
    double logged_seconds = (double)(int64_t)(seconds * 1e6 + 0.5) / 1e6; /* microseconds */
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-Id", t->id);

    /* The access line carries the request's id whoever replies (a handler, a query's
     * completion, a push answer). */
    char previous[LOG_REQUEST_ID_MAX + 1];
    snprintf(previous, sizeof(previous), "%s", log_get0_request_id());
    log_set_request_id(t->id);
    const struct log_field fields[] = {
        {"method", t->method, 0},
        {"path", t->path, 0},
        {"status", NULL, status},
        {"bytes", NULL, (double)bytes},
        {"duration_s", NULL, logged_seconds},
        {"peer", t->peer, 0},
    };
    log_write_fields(LOG_INFO, fields, sizeof(fields) / sizeof(fields[0]), "access");
    log_set_request_id(previous);
    free(t);
}

void http_trace_free_all(void)
{
    for (size_t i = 0; i < TRACE_SLOTS; i++) {
        while (slots[i] != NULL) {
            struct http_trace *t = slots[i];
            slots[i] = t->next;
            free(t);
        }
    }
}
