/*
 * standin: what the parts of apns-standin (the stand-in APNs server for tests) share.
 *
 * apns-standin.c owns the struct standin and everything it points to; the TLS/HTTP/2 front
 * (standin_h2) and the control API (standin_control) borrow it for their lifetime. Everything
 * runs on the one libevent loop, so no part locks.
 */
#ifndef VOUCH_STANDIN_H
#define VOUCH_STANDIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct event_base;
struct standin_script;
struct standin_pushlog;

#define STANDIN_STATUS_MAX 600

/* Counters for GET /stats; POST /reset zeroes all but connections_open. */
struct standin_stats {
    uint64_t connections_accepted;
    uint64_t connections_refused; /* over --max-connections */
    uint64_t connections_open;
    uint64_t tls_failures;  /* handshakes that failed, e.g. no or untrusted client cert */
    uint64_t alpn_failures; /* TLS up but h2 not negotiated */
    uint64_t streams;       /* HTTP/2 streams opened by clients */
    uint64_t requests;      /* streams that ended their request */
    uint64_t answered;      /* requests answered (any status) */
    uint64_t goaways;       /* GOAWAY frames sent */
    uint64_t cancelled;     /* streams reset by the client before the answer */
    uint64_t status[STANDIN_STATUS_MAX];
};

struct standin {
    struct event_base *base;
    struct standin_script *script;
    struct standin_pushlog *pushlog;
    struct standin_stats stats;
    FILE *request_log; /* one line per request; NULL: none */
};

/* Wall-clock time in milliseconds since the UNIX epoch. */
long long standin_now_ms(void);

/* Parses "IPv4:PORT" or "[IPv6]:PORT" (PORT 0..65535; 0 lets the kernel choose). */
bool standin_parse_address(const char *text, struct sockaddr_storage *out, socklen_t *out_len)
    __attribute__((warn_unused_result));

#endif
