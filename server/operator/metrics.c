#include "metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

#include "log.h"

#define MAX_STATUS 600
#define MAX_LABELS 64

/* A counter per static label string; the table is small and searched linearly. */
struct labelled_counters {
    const char *labels[MAX_LABELS];
    uint64_t counts[MAX_LABELS];
    unsigned used;
};

static uint64_t responses[EP_COUNT][MAX_STATUS];
static struct labelled_counters rejections, checkins, reports, attestations;

static const char *const endpoint_names[EP_COUNT] = {
    [EP_MDM_CHECKIN] = "/mdm/checkin",       [EP_MDM_CONNECT] = "/mdm/connect",
    [EP_MDM] = "/mdm",                       [EP_ADMIN_DEVICES] = "/v1/devices",
    [EP_ADMIN_DEVICE] = "/v1/devices/{udid}", [EP_ADMIN_COMMANDS] = "/v1/devices/{udid}/commands",
    [EP_ADMIN_ENQUEUE] = "/v1/enqueue",      [EP_HEALTHZ] = "/healthz",
    [EP_ADMIN_ATTEST] = "/v1/attest",        [EP_ADMIN_ATTESTATIONS] = "/v1/devices/{udid}/attestations",
    [EP_ADMIN_PUSH] = "/v1/push",             [EP_MDM_ENROLL] = "/mdm/enroll",
    [EP_METRICS] = "/metrics",               [EP_OTHER] = "other",
};

const char *metrics_endpoint_name(enum metrics_endpoint endpoint)
{
    return endpoint_names[endpoint];
}

void metrics_count_response(enum metrics_endpoint endpoint, int status)
{
    if (status >= 100 && status < MAX_STATUS)
        responses[endpoint][status]++;
}

static void count_label(struct labelled_counters *c, const char *label)
{
    for (unsigned i = 0; i < c->used; i++) {
        if (c->labels[i] == label || strcmp(c->labels[i], label) == 0) {
            c->counts[i]++;
            return;
        }
    }
    if (c->used == MAX_LABELS)
        log_fatal("more than %d metric labels: %s", MAX_LABELS, label);
    c->labels[c->used] = label;
    c->counts[c->used++] = 1;
}

void metrics_count_rejection(const char *reason)
{
    count_label(&rejections, reason);
}

void metrics_count_checkin(const char *message_type)
{
    count_label(&checkins, message_type);
}

void metrics_count_report(const char *status)
{
    count_label(&reports, status);
}

void metrics_count_attestation(const char *verdict)
{
    count_label(&attestations, verdict);
}

static void render_labelled(struct evbuffer *out, const char *name, const char *help,
                            const char *label, const struct labelled_counters *c)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (unsigned i = 0; i < c->used; i++)
        evbuffer_add_printf(out, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, c->labels[i],
                            c->counts[i]);
}

void metrics_render(struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP vouch_http_responses_total HTTP responses by endpoint and "
                             "status.\n# TYPE vouch_http_responses_total counter\n");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        for (int status = 0; status < MAX_STATUS; status++) {
            if (responses[ep][status] != 0)
                evbuffer_add_printf(out,
                                    "vouch_http_responses_total{endpoint=\"%s\",code=\"%d\"} "
                                    "%" PRIu64 "\n",
                                    endpoint_names[ep], status, responses[ep][status]);
        }
    }
    render_labelled(out, "vouch_rejections_total", "Requests refused, by reason.", "reason",
                    &rejections);
    render_labelled(out, "vouch_checkins_total", "Check-in messages, by MessageType.",
                    "message_type", &checkins);
    render_labelled(out, "vouch_reports_total", "Command reports, by Status.", "status",
                    &reports);
    render_labelled(out, "vouch_attestations_total",
                    "Attestation answers, by verdict (verified, unsupported, or a reason code).",
                    "verdict", &attestations);
}
