#include "metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <string.h>

#include "counters.h"
#include "histogram.h"
#include "log.h"

#define MAX_STATUS 600

static uint64_t responses[EP_COUNT][MAX_STATUS];
static struct histogram durations[EP_COUNT];
static struct counters rejections =
    COUNTERS_INIT("vouch_rejections_total", "Requests refused, by reason.", "reason");
static struct counters checkins =
    COUNTERS_INIT("vouch_checkins_total", "Check-in messages, by MessageType.", "message_type");
static struct counters reports =
    COUNTERS_INIT("vouch_reports_total", "Command reports, by Status.", "status");
static struct counters attestations = COUNTERS_INIT(
    "vouch_attestations_total",
    "Attestation answers, by verdict (verified, unsupported, or a reason code).", "verdict");

static struct counters acme_steps =
    COUNTERS_INIT("vouch_acme_total",
                  "ACME steps done: orders placed, challenges verified, certificates issued "
                  "and revoked.",
                  "step");
static struct counters acme_refusals =
    COUNTERS_INIT("vouch_acme_refusals_total", "ACME requests refused, by reason.", "reason");

static const char *const endpoint_names[EP_COUNT] = {
    [EP_MDM_CHECKIN] = "/mdm/checkin",
    [EP_MDM_CONNECT] = "/mdm/connect",
    [EP_MDM] = "/mdm",
    [EP_CHECKIN] = "/checkin",
    [EP_MDM_PATH] = "mdm_path",
    [EP_CHECKIN_PATH] = "checkin_path",
    [EP_ADMIN_DEVICES] = "/v1/devices",
    [EP_ADMIN_DEVICE] = "/v1/devices/{udid}",
    [EP_ADMIN_COMMANDS] = "/v1/devices/{udid}/commands",
    [EP_ADMIN_ENQUEUE] = "/v1/enqueue",
    [EP_HEALTHZ] = "/healthz",
    [EP_ADMIN_ATTEST] = "/v1/attest",
    [EP_ADMIN_ATTESTATIONS] = "/v1/devices/{udid}/attestations",
    [EP_ADMIN_PUSH] = "/v1/push",
    [EP_MDM_ENROLL] = "/mdm/enroll",
    [EP_METRICS] = "/metrics",
    [EP_ACME] = "/acme",
    [EP_TRUST] = "/v1/trust",
    [EP_OTHER] = "other",
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

void metrics_observe_duration(enum metrics_endpoint endpoint, double seconds)
{
    histogram_observe(&durations[endpoint], seconds);
}

void metrics_count_rejection(const char *reason)
{
    counters_add(&rejections, reason);
}

void metrics_count_checkin(const char *message_type)
{
    counters_add(&checkins, message_type);
}

void metrics_count_report(const char *status)
{
    counters_add(&reports, status);
}

void metrics_count_attestation(const char *verdict)
{
    counters_add(&attestations, verdict);
}

void metrics_count_acme(const char *step)
{
    counters_add(&acme_steps, step);
}

void metrics_count_acme_refusal(const char *reason)
{
    counters_add(&acme_refusals, reason);
}

static struct {
    metrics_render_fn *fn;
    void *arg;
} renderers[METRICS_MAX_RENDERERS];

void metrics_add_renderer(metrics_render_fn *fn, void *arg)
{
    for (size_t i = 0; i < METRICS_MAX_RENDERERS; i++) {
        if (renderers[i].fn == NULL) {
            renderers[i].fn = fn;
            renderers[i].arg = arg;
            return;
        }
    }
    log_fatal("metrics_add_renderer: no room");
}

void metrics_remove_renderer(metrics_render_fn *fn, void *arg)
{
    for (size_t i = 0; i < METRICS_MAX_RENDERERS; i++) {
        if (renderers[i].fn == fn && renderers[i].arg == arg)
            renderers[i].fn = NULL;
    }
}

static void emit_to_evbuffer(void *arg, const char *text, size_t len)
{
    evbuffer_add(arg, text, len);
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
    histogram_render_header("vouch_http_request_duration_seconds",
                            "Time from a request's arrival (complete) to its reply, by endpoint.",
                            emit_to_evbuffer, out);
    for (int ep = 0; ep < EP_COUNT; ep++) {
        if (durations[ep].count != 0)
            histogram_render(&durations[ep], "vouch_http_request_duration_seconds", "endpoint",
                             endpoint_names[ep], emit_to_evbuffer, out);
    }
    counters_render(&rejections, emit_to_evbuffer, out);
    counters_render(&checkins, emit_to_evbuffer, out);
    counters_render(&reports, emit_to_evbuffer, out);
    counters_render(&attestations, emit_to_evbuffer, out);
    counters_render(&acme_steps, emit_to_evbuffer, out);
    counters_render(&acme_refusals, emit_to_evbuffer, out);
    for (size_t i = 0; i < METRICS_MAX_RENDERERS; i++) {
        if (renderers[i].fn != NULL)
            renderers[i].fn(renderers[i].arg, out);
    }
}
