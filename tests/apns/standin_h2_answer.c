/*
 * standin_h2_answer: the answer side of the HTTP/2 front (standin_h2_internal.h). A complete
 * request is checked (standin_check), the script consulted (standin_script, only for requests
 * that pass), and the response submitted on the stream: 200 with apns-id and no body, or the
 * error with {"reason":...} (and "timestamp" for 410); after a scripted delay on a timer the
 * stream owns; or never, for a stream a GOAWAY excluded. apns-id echoes a valid one or is a new
 * UUID, drawn from the random batch the struct standin_h2 keeps. The response headers and body
 * live in the stream, which nghttp2 reads until the stream closes.
 */
#include "standin_h2_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "standin.h"

/* A random (version 4) UUID, uppercase as APNs writes them. The random bytes are drawn from
 * OpenSSL in batches: one RAND_bytes() per answer showed in profiles. */
static void new_uuid(struct standin_h2 *h2, char out[STANDIN_UUID_LEN + 1])
{
    static const char hex[] = "0123456789ABCDEF";
    if (h2->random_used + 16 > sizeof(h2->random)) {
        if (RAND_bytes(h2->random, sizeof(h2->random)) != 1) {
            fprintf(stderr, "apns-standin: RAND_bytes failed\n");
            abort();
        }
        h2->random_used = 0;
    }
    unsigned char *b = h2->random + h2->random_used;
    h2->random_used += 16;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xF];
    }
    out[o] = '\0';
}

static ssize_t response_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                             size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                             void *user_data)
{
    struct standin_h2_stream *st = source->ptr;
    size_t n = st->response_len - st->response_sent;
    if (n > length)
        n = length;
    memcpy(buf, st->response + st->response_sent, n);
    st->response_sent += n;
    if (st->response_sent == st->response_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(name, value)                                                                            \
    {                                                                                              \
        (uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, strlen(value),                    \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

/* Submits the response for st->status and st->reason: 200 with apns-id and no body, or the error
 * with {"reason":...} (and "timestamp" for 410). */
static void stream_answer(struct standin_h2_conn *c, struct standin_h2_stream *st)
{
    st->state = STANDIN_H2_STREAM_ANSWERED;
    snprintf(st->status_text, sizeof(st->status_text), "%d", st->status);
    if (st->status == 410) {
        if (st->timestamp_ms < 0)
            st->timestamp_ms = standin_now_ms();
        st->response_len = (size_t)snprintf(st->response, sizeof(st->response),
                                            "{\"reason\":\"%s\",\"timestamp\":%lld}", st->reason,
                                            st->timestamp_ms);
    } else if (st->status != 200) {
        st->response_len =
            (size_t)snprintf(st->response, sizeof(st->response), "{\"reason\":\"%s\"}", st->reason);
    }
    snprintf(st->content_length, sizeof(st->content_length), "%zu", st->response_len);

    nghttp2_nv ok[] = {NV(":status", st->status_text), NV("apns-id", st->apns_id)};
    nghttp2_nv error[] = {NV(":status", st->status_text), NV("apns-id", st->apns_id),
                          NV("content-type", "application/json; charset=utf-8"),
                          NV("content-length", st->content_length)};
    nghttp2_data_provider body = {.source.ptr = st, .read_callback = response_read};
    int rv = st->status == 200 ? nghttp2_submit_response(c->session, st->id, ok, 2, NULL)
                               : nghttp2_submit_response(c->session, st->id, error, 4, &body);
    if (rv != 0) {
        fprintf(stderr, "apns-standin: conn %llu stream %d: cannot answer: %s\n",
                (unsigned long long)c->id, st->id, nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    }
}

static void delay_expired(evutil_socket_t fd, short what, void *arg)
{
    struct standin_h2_stream *st = arg;
    struct standin_h2_conn *c = st->conn;
    st->timer_added = false;
    stream_answer(c, st);
    standin_h2_conn_flush(c);
}

void standin_h2_answer_request(struct standin_h2_conn *c, struct standin_h2_stream *st)
{
    struct standin *ctx = c->h2->ctx;
    struct standin_request req = {0};
    struct standin_answer answer;

    ctx->stats.requests++;
    st->time_ms = standin_now_ms();
    req.method = st->has_method ? st->method : NULL;
    req.path = st->has_path ? st->path : NULL;
    for (int h = 0; h < STANDIN_HDR_COUNT; h++)
        req.headers[h] = standin_h2_stream_header(st, (enum standin_header)h);
    req.duplicated = st->duplicated;
    req.body = st->body;
    req.body_len = st->body_len;
    req.body_total = st->body_total;
    req.now = (long long)time(NULL);
    if (c->h2->topic != NULL)
        req.topic = c->h2->topic;
    else if (c->client_auth)
        req.topic = c->has_topic ? c->topic : NULL;
    else
        req.any_topic = true; /* no certificate to take a topic from */
    standin_check_request(&req, &st->verdict);

    st->status = st->verdict.status;
    st->timestamp_ms = -1;
    snprintf(st->reason, sizeof(st->reason), "%s", st->verdict.reason ? st->verdict.reason : "");
    /* APNs echoes a valid apns-id and makes one up otherwise. */
    if (req.headers[STANDIN_HDR_ID] != NULL && standin_check_uuid(req.headers[STANDIN_HDR_ID]))
        snprintf(st->apns_id, sizeof(st->apns_id), "%s", req.headers[STANDIN_HDR_ID]);
    else
        new_uuid(c->h2, st->apns_id);

    if (st->id > c->goaway_last_id) {
        st->state = STANDIN_H2_STREAM_REFUSED;
        return;
    }
    if (st->status == 200) {
        standin_script_take(ctx->script, st->verdict.token, &answer);
        switch (answer.kind) {
        case STANDIN_ANSWER_NORMAL:
            break;
        case STANDIN_ANSWER_STATUS:
            st->status = answer.status;
            snprintf(st->reason, sizeof(st->reason), "%s", answer.reason);
            st->timestamp_ms = answer.timestamp_ms;
            break;
        case STANDIN_ANSWER_GOAWAY:
            st->state = STANDIN_H2_STREAM_REFUSED;
            standin_h2_conn_goaway(c, st->id - 2);
            return;
        case STANDIN_ANSWER_DELAY: {
            struct timeval tv = {answer.delay_ms / 1000, (answer.delay_ms % 1000) * 1000};
            st->state = STANDIN_H2_STREAM_DELAYED;
            evtimer_assign(&st->delay_timer, ctx->base, delay_expired, st);
            evtimer_add(&st->delay_timer, &tv);
            st->timer_added = true;
            return;
        }
        }
    }
    stream_answer(c, st);
}
