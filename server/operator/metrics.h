/*
 * metrics: vouchd's counters, rendered in the Prometheus text format at GET /metrics.
 *
 * One process-wide set of counters, owned here and touched only from the event loop thread.
 * Label values are static strings chosen by the code, never text from the network, so the
 * number of series is fixed. Every family is rendered with its HELP and TYPE once and its samples
 * together (what `promtool check metrics` asks for); a renderer keeps to that too.
 */
#ifndef VOUCH_METRICS_H
#define VOUCH_METRICS_H

#include <stdint.h>

struct evbuffer;

enum metrics_endpoint {
    EP_MDM_CHECKIN,
    EP_MDM_CONNECT,
    EP_MDM,
    EP_CHECKIN,      /* NanoMDM's /checkin */
    EP_MDM_PATH,     /* the configured mdm_path */
    EP_CHECKIN_PATH, /* the configured checkin_path */
    EP_MDM_ENROLL,
    EP_ADMIN_DEVICES,
    EP_ADMIN_DEVICE,
    EP_ADMIN_COMMANDS,
    EP_ADMIN_ENQUEUE,
    EP_ADMIN_ATTEST,
    EP_ADMIN_ATTESTATIONS,
    EP_ADMIN_PUSH,
    EP_HEALTHZ,
    EP_METRICS,
    EP_ACME,
    EP_TRUST,
    EP_OTHER,
    EP_COUNT
};

/* A request to endpoint answered with status. */
void metrics_count_response(enum metrics_endpoint endpoint, int status);
/* How long a request to endpoint took, from its arrival to its reply, in seconds
 * (vouch_http_request_duration_seconds). */
void metrics_observe_duration(enum metrics_endpoint endpoint, double seconds);
/* A request refused, by reason (a static string such as "identity_mismatch"). */
void metrics_count_rejection(const char *reason);
/* A check-in message by MessageType, a report by Status (static strings). */
void metrics_count_checkin(const char *message_type);
void metrics_count_report(const char *status);
/* An attestation answer, by verdict: "verified", "unsupported" or a reason code. */
void metrics_count_attestation(const char *verdict);
/* A step of the ACME server done ("order", "challenge_valid", "issued", "revoked"), and an
 * ACME request refused, by reason (static strings). */
void metrics_count_acme(const char *step);
void metrics_count_acme_refusal(const char *reason);
/* A module's own families (two labels, histograms), rendered after the counters by
 * metrics_render(): at most METRICS_MAX_RENDERERS, registered at start-up. */
#define METRICS_MAX_RENDERERS 16
typedef void metrics_render_fn(void *arg, struct evbuffer *out);
void metrics_add_renderer(metrics_render_fn *fn, void *arg);
void metrics_remove_renderer(metrics_render_fn *fn, void *arg);
/* Adds name{labels} value lines of gauges the caller owns, after the counters. */
void metrics_render(struct evbuffer *out);

const char *metrics_endpoint_name(enum metrics_endpoint endpoint);

#endif
