/*
 * bench_apns: vouchd's APNs client (apns/) alone, pushing N devices to an APNs stand-in as fast
 * as it answers: no database, no HTTP front, the same TLS connections, client certificate,
 * streams and answers as in vouchd. bench_push.py runs it beside h2load against the same
 * stand-in, so the client's own distance from the wire shows apart from the database's share.
 *
 * Usage: bench_apns URL CERT KEY CA N [CONNECTIONS]
 * Prints one line: "pushes=N delivered=D seconds=S cpu_seconds=C".
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apns.h"
#include "apns_cert.h"
#include "bench_clock.h"
#include "log.h"

/* Pushes waiting or in flight at once: what vouchd has when bench_push.py asks for 8 batches of
 * 1,000 devices at a time. */
#define WINDOW 8000

static unsigned long answered, delivered, total, pushed;
static struct event_base *base;
static struct apns_client *client;

static void done(void *arg, const struct apns_response *r);

static void push_one(void)
{
    uint8_t token[32] = {0};
    memcpy(token, &pushed, sizeof(pushed));
    pushed++;
    apns_client_push(client, token, sizeof(token), "6B4C1C6A-2A5B-4C3E-9F00-0123456789AB", done,
                     NULL);
}

static void done(void *arg, const struct apns_response *r)
{
    answered++;
    if (r->outcome == APNS_DELIVERED)
        delivered++;
    if (pushed < total)
        push_one();
    if (answered == total)
        event_base_loopbreak(base);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    if (f == NULL || buf == NULL) {
        fprintf(stderr, "bench_apns: cannot read %s\n", path);
        exit(1);
    }
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: bench_apns URL CERT KEY CA N [CONNECTIONS]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    total = strtoul(argv[5], NULL, 10);
    unsigned connections = argc > 6 ? (unsigned)strtoul(argv[6], NULL, 10) : 2;
    size_t cert_len, key_len;
    char *cert_pem = slurp(argv[2], &cert_len), *key_pem = slurp(argv[3], &key_len);
    struct apns_cert cert;
    char err[512];
    if (!apns_cert_from_pem(&cert, cert_pem, cert_len, key_pem, key_len, err, sizeof(err))) {
        fprintf(stderr, "bench_apns: %s\n", err);
        return 1;
    }
    free(cert_pem);
    free(key_pem);
    base = event_base_new();
    /* What vouchd gives it (server/main.c). */
    const struct apns_config cfg = {.url = argv[1],
                                    .ca_file = argv[4],
                                    .expiration_s = 7 * 86400,
                                    .max_in_flight = 1000,
                                    .max_attempts = 5,
                                    .timeout_ms = 30000,
                                    .connections = connections};
    client = apns_client_new(base, &cfg, &cert, err, sizeof(err));
    if (client == NULL) {
        fprintf(stderr, "bench_apns: %s\n", err);
        return 1;
    }
    double t0 = now_s(), c0 = cpu_s();
    while (pushed < total && pushed < WINDOW)
        push_one();
    event_base_dispatch(base);
    double seconds = now_s() - t0, cpu = cpu_s() - c0;
    printf("pushes=%lu delivered=%lu seconds=%.3f cpu_seconds=%.3f\n", answered, delivered, seconds,
           cpu);
    apns_client_free(client);
    event_base_free(base);
    return delivered == total ? 0 : 1;
}
