/*
 * standin_h2_record: a request that ended, written down (standin_h2_internal.h). When its stream
 * closes, or its connection goes, each request that ended gets one push-log record
 * (standin_pushlog) and one request-log line with the status the client actually received (0 and
 * GOAWAY or Cancelled when none), and is counted in the shared stats (answered, cancelled,
 * per-status). It owns nothing: it reads the stream and writes to what the struct standin owns.
 */
#include "standin_h2_internal.h"

#include <stdio.h>
#include <time.h>

#include "standin.h"
#include "standin_pushlog.h"

/* Copies untrusted text for a log line: printable ASCII only, cut to fit. */
static const char *sanitize(const char *in, char *out, size_t size)
{
    size_t n = 0;
    if (in == NULL)
        in = "-";
    for (; *in != '\0' && n + 1 < size; in++)
        out[n++] = (*in > 0x20 && *in < 0x7f) ? *in : '?';
    out[n] = '\0';
    return out;
}

static void log_request(const struct standin_h2_conn *c, const struct standin_h2_stream *st,
                        int status, const char *reason)
{
    FILE *f = c->h2->ctx->request_log;
    if (f == NULL)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - st->started.tv_sec) * 1e3 +
                (double)(now.tv_nsec - st->started.tv_nsec) / 1e6;
    time_t secs = (time_t)(st->time_ms / 1000);
    struct tm tm;
    char when[32], method[STANDIN_H2_METHOD_MAX], path[224], topic[80], magic[48];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(
        f,
        "%s.%03dZ conn=%llu stream=%d %s %s topic=%s magic=%s status=%d reason=%s "
        "apns-id=%s ms=%.3f\n",
        when, (int)(st->time_ms % 1000), (unsigned long long)c->id, st->id,
        sanitize(st->has_method ? st->method : NULL, method, sizeof(method)),
        sanitize(st->has_path ? st->path : NULL, path, sizeof(path)),
        sanitize(standin_h2_stream_header(st, STANDIN_HDR_TOPIC), topic, sizeof(topic)),
        sanitize(st->verdict.has_push_magic ? st->verdict.push_magic : NULL, magic, sizeof(magic)),
        status, reason != NULL ? reason : "-", st->apns_id[0] ? st->apns_id : "-", ms);
}

void standin_h2_record_stream(struct standin_h2_conn *c, const struct standin_h2_stream *st,
                              bool delivered)
{
    struct standin *ctx = c->h2->ctx;
    int status = st->status;
    const char *reason = st->reason[0] ? st->reason : NULL;

    if (st->state == STANDIN_H2_STREAM_RECEIVING)
        return; /* the request never ended: nothing to record */
    if (st->state == STANDIN_H2_STREAM_REFUSED) {
        status = 0;
        reason = "GOAWAY";
    } else if (!delivered || st->state == STANDIN_H2_STREAM_DELAYED) {
        status = 0;
        reason = "Cancelled";
        ctx->stats.cancelled++;
    } else {
        ctx->stats.answered++;
        if (status > 0 && status < STANDIN_STATUS_MAX)
            ctx->stats.status[status]++;
    }

    struct standin_push p = {
        .conn = c->id,
        .stream = st->id,
        .time_ms = st->time_ms,
        .token = st->verdict.has_token ? st->verdict.token : NULL,
        .topic = standin_h2_stream_header(st, STANDIN_HDR_TOPIC),
        .push_type = standin_h2_stream_header(st, STANDIN_HDR_PUSH_TYPE),
        .expiration = standin_h2_stream_header(st, STANDIN_HDR_EXPIRATION),
        .priority = standin_h2_stream_header(st, STANDIN_HDR_PRIORITY),
        .push_magic = st->verdict.has_push_magic ? st->verdict.push_magic : NULL,
        .apns_id = status != 0 && st->apns_id[0] ? st->apns_id : NULL,
        .status = status,
        .reason = reason,
        .timestamp_ms = status == 410 ? st->timestamp_ms : -1,
    };
    standin_pushlog_append(ctx->pushlog, &p);
    log_request(c, st, status, reason);
}
