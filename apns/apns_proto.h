/*
 * apns_proto: the pure parts of the APNs client: the base URL taken apart, an HTTP status turned
 * into an outcome, APNs' JSON error body read (bounded), and the jittered exponential backoff of
 * retries and reconnections. No I/O; unit-tested (tests/unit/test_apns_proto.c) and reached by
 * the fuzz target of the client (tests/fuzz/fuzz_apns.c).
 */
#ifndef VOUCH_APNS_PROTO_H
#define VOUCH_APNS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apns.h"

#define APNS_HOST_MAX 253
#define APNS_REPLY_BODY_MAX 2048 /* bytes of an answer's body kept; the rest is ignored */

/* https://host[:port][/] (host a name, an IPv4 address or [IPv6]). */
struct apns_target {
    char host[APNS_HOST_MAX + 1];      /* without brackets */
    char authority[APNS_HOST_MAX + 9]; /* :authority: host[:port] as written, brackets kept */
    size_t authority_len;
    uint16_t port;
    bool host_is_ip; /* verified against an IP address SAN, and no SNI */
};

bool apns_target_parse(const char *url, struct apns_target *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));

/* 200 delivered, 410 unregistered, 403 forbidden, 429 / 5xx / 0 transient, the rest rejected. */
enum apns_outcome apns_outcome_of_status(int status);

/* Reads APNs' {"reason": "...", "timestamp": ms} from body[0..len) into r->reason and
 * r->timestamp_ms; anything else (not JSON, too deep, wrong types) leaves r as it was. */
void apns_reply_parse_body(const char *body, size_t len, struct apns_response *r);

/* The push's body, {"mdm":"<push_magic>"}, into out[0..out_max) (no NUL added), escaped as
 * lib/json.h's writer escapes a string (quote, backslash and control characters as \b \f \n
 * \r \t or \u00XX; UTF-8 kept) without building a document a push. Its length, or 0 when
 * push_magic[0..len) is not UTF-8 or the body does not fit. */
size_t apns_mdm_body(const char *push_magic, size_t len, char *out, size_t out_max);

/* Full jitter over an exponentially growing cap: cap = base_ms << failures (at most max_ms),
 * the delay uniform in [cap/2, cap], random a uniform 32-bit value. */
unsigned apns_backoff_ms(unsigned failures, unsigned base_ms, unsigned max_ms, uint32_t random);

#endif
