/*
 * standin_h2_stream: the nghttp2 session callbacks of the HTTP/2 front (standin_h2_internal.h),
 * one stream per request. A request's HEADERS open a stream (taken from the pool the struct
 * standin_h2 keeps, linked into its connection's list); :method, :path and the apns-* headers
 * the checks read are copied, cut to fixed buffers; the body is kept up to 4096 bytes and only
 * counted beyond; END_STREAM hands the request to standin_h2_answer; the stream's close records
 * it (standin_h2_record) and returns the stream to the pool. Trailers and other frames are
 * ignored. The connection owns its streams; nghttp2 holds only a borrowed pointer to each (stream
 * user data), cleared on close.
 */
#include "standin_h2_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "standin.h"

#define STREAM_RESET_SIZE offsetof(struct standin_h2_stream, method)
/* Streams kept for reuse: a stream is ~15 KiB, and allocating and zeroing one per request was
 * the stand-in's main cost under h2load. */
#define STREAM_POOL_MAX 2048

void standin_h2_stream_free(struct standin_h2_conn *c, struct standin_h2_stream *st)
{
    if (st->timer_added)
        evtimer_del(&st->delay_timer);
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    struct standin_h2 *h2 = c->h2;
    if (h2->npool < STREAM_POOL_MAX) {
        st->next = h2->pool;
        h2->pool = st;
        h2->npool++;
    } else {
        free(st);
    }
}

void standin_h2_stream_pool_free(struct standin_h2 *h2)
{
    while (h2->pool != NULL) {
        struct standin_h2_stream *st = h2->pool;
        h2->pool = st->next;
        free(st);
    }
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct standin_h2_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct standin_h2 *h2 = c->h2;
    struct standin_h2_stream *st = h2->pool;
    if (st != NULL) {
        h2->pool = st->next;
        h2->npool--;
    } else if ((st = malloc(sizeof(*st))) == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    memset(st, 0, STREAM_RESET_SIZE);
    st->conn = c;
    st->id = frame->hd.stream_id;
    st->state = STANDIN_H2_STREAM_RECEIVING;
    clock_gettime(CLOCK_MONOTONIC, &st->started);
    st->next = c->streams;
    if (c->streams != NULL)
        c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(session, st->id, st);
    c->h2->ctx->stats.streams++;
    return 0;
}

/* Copies a header value, cut to the buffer: every buffer is longer than any valid value (a topic
 * is at most STANDIN_TOPIC_MAX), so a cut value stays invalid. */
static void copy_value(char *dst, size_t size, const uint8_t *value, size_t len)
{
    if (len >= size)
        len = size - 1;
    memcpy(dst, value, len);
    dst[len] = '\0';
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are ignored */
    struct standin_h2_stream *st =
        nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    enum standin_header h;
    if (st == NULL)
        return 0;
    if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
        copy_value(st->method, sizeof(st->method), value, valuelen);
        st->has_method = true;
    } else if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        copy_value(st->path, sizeof(st->path), value, valuelen);
        st->has_path = true;
    } else if (standin_header_lookup((const char *)name, namelen, &h)) {
        if (st->present & (1u << h))
            st->duplicated |= 1u << h;
        copy_value(st->headers[h], sizeof(st->headers[h]), value, valuelen);
        st->present |= 1u << h;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct standin_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL || st->state != STANDIN_H2_STREAM_RECEIVING)
        return 0;
    size_t room = sizeof(st->body) - st->body_len;
    size_t keep = len < room ? len : room;
    memcpy(st->body + st->body_len, data, keep);
    st->body_len += keep;
    st->body_total += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct standin_h2_conn *c = user_data;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct standin_h2_stream *st =
        nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st != NULL && st->state == STANDIN_H2_STREAM_RECEIVING)
        standin_h2_answer_request(c, st);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    struct standin_h2_conn *c = user_data;
    struct standin_h2_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL)
        return 0;
    if (st->state == STANDIN_H2_STREAM_RECEIVING)
        c->h2->ctx->stats.cancelled++;
    standin_h2_record_stream(c, st, error_code == NGHTTP2_NO_ERROR);
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    standin_h2_stream_free(c, st);
    return 0;
}

void standin_h2_stream_set_callbacks(nghttp2_session_callbacks *callbacks)
{
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
}
