/* libFuzzer target for the APNs client's HTTP/2 connection (apns/apns_conn.c and the client in
 * apns/apns.c that acts on what it hears): a client with a memory connection (no socket, no TLS)
 * sends three pushes, then the input plays the server, fed in chunks whose size the first byte
 * chooses, the loop run between chunks. Checks that each push is answered at most once, that
 * nothing is answered with a status outside 0 and 100..999, and (under ASan) that nothing leaks
 * or is touched after it is freed. Seeds: tests/fuzz/corpus/apns, real server frames
 * (tests/fuzz/make_apns_seeds.py). Build as tests/fuzz/meson.build says, with -Dfuzz=true. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apns_internal.h"
#include "log.h"

#define PUSHES 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned answered[PUSHES];

static void done(void *arg, const struct apns_response *r)
{
    size_t i = (size_t)(uintptr_t)arg;
    if (i >= PUSHES || answered[i]++ != 0)
        abort();
    if (r->http_status != 0 && (r->http_status < 100 || r->http_status > 999))
        abort();
    if (memchr(r->reason, '\0', sizeof(r->reason)) == NULL ||
        memchr(r->apns_id, '\0', sizeof(r->apns_id)) == NULL)
        abort();
}

static struct apns_conn *first_conn(struct apns_client *c)
{
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        if (c->conns[i] != NULL)
            return c->conns[i];
    }
    return NULL;
}

/* Runs the loop and throws away what the client wrote. */
static void settle(struct event_base *base, struct apns_client *c)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        if (c->conns[i] != NULL) {
            struct evbuffer *out = apns_conn_get0_output(c->conns[i]);
            evbuffer_drain(out, evbuffer_get_length(out));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    if (base == NULL) {
        log_set_level(LOG_ERROR);
        base = event_base_new();
        if (base == NULL)
            abort();
    }
    const struct apns_config cfg = {.url = "https://apns.test:443",
                                    .expiration_s = 3600,
                                    .max_in_flight = 8,
                                    .max_attempts = 2,
                                    .timeout_ms = 30000,
                                    .connections = 2};
    struct apns_client *c = apns_client_new_memory(base, &cfg, "com.apple.mgmt.External.fuzz");
    if (c == NULL)
        abort();
    memset(answered, 0, sizeof(answered));
    static const uint8_t token[32] = {1, 2, 3, 4};
    for (size_t i = 0; i < PUSHES; i++)
        apns_client_push(c, token, sizeof(token), "push-magic", done, (void *)(uintptr_t)i);
    settle(base, c);

    size_t chunk = size > 0 ? (size_t)(data[0] % 64) + 1 : 1;
    size_t off = size > 0 ? 1 : 0;
    /* Small chunks split frames; 0 makes it all one. */
    if (size > 0 && data[0] >= 192)
        chunk = size;
    while (off < size) {
        struct apns_conn *conn = first_conn(c);
        if (conn == NULL)
            break;
        size_t n = size - off < chunk ? size - off : chunk;
        (void)apns_conn_feed(conn, data + off, n);
        off += n;
        settle(base, c);
    }
    settle(base, c);
    apns_client_free(c);
    return 0;
}
