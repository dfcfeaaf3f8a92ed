/* Unit tests of apns/apns_conn.c and the dispatcher of apns/apns.c over memory connections: an
 * nghttp2 server session in this process plays APNs. What a push looks like on the wire, answers
 * (200, 410, a bad status), SETTINGS_MAX_CONCURRENT_STREAMS honoured, GOAWAY's refused streams
 * sent again on a new connection without counting an attempt, and a body beyond the bound. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apns_internal.h"

#define TOPIC "com.apple.mgmt.External.test"
#define MAX_REQ 64
#define MAX_SESSIONS 4

struct request {
    int32_t stream_id;
    unsigned session;
    char path[256], topic[128], push_type[16], expiration[32], priority[8], body[128];
    bool complete, answered;
};

struct server {
    nghttp2_session *session;
    uint64_t conn_id;
    struct fake *fake;
};

struct fake {
    struct event_base *base;
    struct apns_client *client;
    struct server servers[MAX_SESSIONS];
    unsigned nservers;
    struct request reqs[MAX_REQ];
    unsigned nreq;
    uint32_t max_streams;
    struct apns_response answers[MAX_REQ];
    unsigned nanswers;
};

static struct fake *fake;

static struct request *find_req(struct server *s, int32_t id)
{
    for (unsigned i = 0; i < fake->nreq; i++) {
        if (fake->reqs[i].stream_id == id && &fake->servers[fake->reqs[i].session] == s)
            return &fake->reqs[i];
    }
    return NULL;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct server *s = arg;
    if (frame->hd.type == NGHTTP2_HEADERS && fake->nreq < MAX_REQ) {
        struct request *r = &fake->reqs[fake->nreq++];
        memset(r, 0, sizeof(*r));
        r->stream_id = frame->hd.stream_id;
        r->session = (unsigned)(s - fake->servers);
    }
    return 0;
}

static void copy(char *dst, size_t size, const uint8_t *v, size_t len)
{
    snprintf(dst, size, "%.*s", (int)len, (const char *)v);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *arg)
{
    struct request *r = find_req(arg, frame->hd.stream_id);
    if (r == NULL)
        return 0;
    if (strncmp((const char *)name, ":path", name_len) == 0)
        copy(r->path, sizeof(r->path), value, value_len);
    else if (strncmp((const char *)name, "apns-topic", name_len) == 0)
        copy(r->topic, sizeof(r->topic), value, value_len);
    else if (strncmp((const char *)name, "apns-push-type", name_len) == 0)
        copy(r->push_type, sizeof(r->push_type), value, value_len);
    else if (strncmp((const char *)name, "apns-expiration", name_len) == 0)
        copy(r->expiration, sizeof(r->expiration), value, value_len);
    else if (strncmp((const char *)name, "apns-priority", name_len) == 0)
        copy(r->priority, sizeof(r->priority), value, value_len);
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *arg)
{
    struct request *r = find_req(arg, id);
    if (r != NULL) {
        size_t used = strlen(r->body), room = sizeof(r->body) - 1 - used;
        memcpy(r->body + used, data, len < room ? len : room);
        r->body[used + (len < room ? len : room)] = '\0';
    }
    return 0;
}

static int on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *arg)
{
    struct request *r = find_req(arg, frame->hd.stream_id);
    if (r != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        r->complete = true;
    return 0;
}

static struct server *server_for(struct apns_conn *conn, uint64_t id)
{
    for (unsigned i = 0; i < fake->nservers; i++) {
        if (fake->servers[i].conn_id == id)
            return &fake->servers[i];
    }
    assert_true(fake->nservers < MAX_SESSIONS);
    struct server *s = &fake->servers[fake->nservers++];
    nghttp2_session_callbacks *cb;
    assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    assert_int_equal(nghttp2_session_server_new(&s->session, cb, s), 0);
    nghttp2_session_callbacks_del(cb);
    s->conn_id = id;
    s->fake = fake;
    nghttp2_settings_entry settings = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, fake->max_streams};
    assert_int_equal(nghttp2_submit_settings(s->session, NGHTTP2_FLAG_NONE, &settings, 1), 0);
    return s;
}

/* Runs the loop and moves bytes both ways until nothing moves. */
static void pump(void)
{
    for (int round = 0; round < 100; round++) {
        bool moved = false;
        event_base_loop(fake->base, EVLOOP_NONBLOCK);
        for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
            struct apns_conn *conn = fake->client->conns[i];
            if (conn == NULL)
                continue;
            struct server *s = server_for(conn, apns_conn_id(conn));
            struct evbuffer *out = apns_conn_get0_output(conn);
            size_t len = evbuffer_get_length(out);
            if (len > 0) {
                const uint8_t *data = evbuffer_pullup(out, -1);
                assert_int_equal(nghttp2_session_mem_recv(s->session, data, len), (ssize_t)len);
                evbuffer_drain(out, len);
                moved = true;
            }
            const uint8_t *data;
            ssize_t n;
            while ((n = nghttp2_session_mem_send(s->session, &data)) > 0) {
                moved = true;
                if (!apns_conn_feed(conn, data, (size_t)n))
                    break;
            }
        }
        if (!moved && round > 2)
            return;
    }
}

static void done(void *arg, const struct apns_response *r)
{
    assert_true(fake->nanswers < MAX_REQ);
    fake->answers[fake->nanswers++] = *r;
}

static ssize_t read_text(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *arg)
{
    const char *text = source->ptr;
    size_t n = strlen(text) < length ? strlen(text) : length;
    memcpy(buf, text, n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void answer(struct request *r, const char *status, const char *body)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0},
        {(uint8_t *)"apns-id", (uint8_t *)"ID-1", 7, 4, 0},
    };
    nghttp2_data_provider prd = {.source.ptr = (void *)body, .read_callback = read_text};
    assert_int_equal(nghttp2_submit_response(fake->servers[r->session].session, r->stream_id, nva,
                                             2, body ? &prd : NULL),
                     0);
    r->answered = true;
}

static void push(const char *magic)
{
    static const uint8_t token[32] = {0xab, 0xcd};
    apns_client_push(fake->client, token, sizeof(token), magic, done, NULL);
}

static int setup(void **state)
{
    static struct fake f;
    memset(&f, 0, sizeof(f));
    fake = &f;
    f.base = event_base_new();
    f.max_streams = 100;
    const struct apns_config cfg = {.url = "https://apns.test",
                                    .expiration_s = 3600,
                                    .max_in_flight = 100,
                                    .max_attempts = 1,
                                    .timeout_ms = 30000,
                                    .connections = 2};
    f.client = apns_client_new_memory(f.base, &cfg, TOPIC);
    assert_non_null(f.client);
    return 0;
}

static int teardown(void **state)
{
    apns_client_free(fake->client);
    for (unsigned i = 0; i < fake->nservers; i++)
        nghttp2_session_del(fake->servers[i].session);
    event_base_free(fake->base);
    return 0;
}

static void test_push_on_the_wire_and_200(void **state)
{
    push("magic-1");
    pump();
    assert_int_equal(fake->nreq, 1);
    struct request *r = &fake->reqs[0];
    assert_true(r->complete);
    assert_string_equal(r->path, "/3/device/abcd"
                                 "000000000000000000000000000000000000000000000000000000000000");
    assert_string_equal(r->topic, TOPIC);
    assert_string_equal(r->push_type, "mdm");
    assert_string_equal(r->priority, "10");
    long long exp = strtoll(r->expiration, NULL, 10);
    assert_true(exp >= (long long)time(NULL) + 3590 && exp <= (long long)time(NULL) + 3600);
    assert_string_equal(r->body, "{\"mdm\":\"magic-1\"}");
    answer(r, "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->answers[0].outcome, APNS_DELIVERED);
    assert_int_equal(fake->answers[0].http_status, 200);
    assert_string_equal(fake->answers[0].apns_id, "ID-1");
    assert_int_equal(fake->answers[0].attempts, 1);
    struct apns_stats st;
    apns_client_get_stats(fake->client, &st);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.in_flight, 0);
}

static void test_410_and_bad_answers(void **state)
{
    push("a");
    push("b");
    push("c");
    pump();
    assert_int_equal(fake->nreq, 3);
    answer(&fake->reqs[0], "410", "{\"reason\":\"Unregistered\",\"timestamp\":1700000000123}");
    answer(&fake->reqs[1], "2x0", NULL); /* not a status: the stream is reset */
    /* A body beyond the bound: read up to it, not buffered beyond. */
    static char big[APNS_REPLY_BODY_MAX * 3];
    memset(big, 'x', sizeof(big) - 1);
    answer(&fake->reqs[2], "400", big);
    pump();
    assert_int_equal(fake->nanswers, 3);
    for (unsigned i = 0; i < 3; i++) {
        const struct apns_response *a = &fake->answers[i];
        if (a->outcome == APNS_UNREGISTERED) {
            assert_string_equal(a->reason, "Unregistered");
            assert_int_equal(a->timestamp_ms, 1700000000123);
        } else if (a->outcome == APNS_TRANSIENT) {
            assert_int_equal(a->http_status, 0);
            assert_non_null(strstr(a->reason, "reset"));
        } else {
            assert_int_equal(a->outcome, APNS_REJECTED);
            assert_int_equal(a->http_status, 400);
        }
    }
}

static void test_max_concurrent_streams(void **state)
{
    fake->max_streams = 2;
    for (int i = 0; i < 5; i++)
        push("m");
    pump();
    /* A first connection full at 2 streams: a second one takes 2 more, and no more. */
    assert_int_equal(fake->nreq, 4);
    assert_int_equal(fake->nservers, 2);
    for (unsigned i = 0; i < 4; i++)
        answer(&fake->reqs[i], "200", NULL);
    pump();
    assert_int_equal(fake->nreq, 5);
    answer(&fake->reqs[4], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 5);
}

static void test_goaway_sends_refused_streams_again(void **state)
{
    for (int i = 0; i < 3; i++)
        push("g");
    pump();
    assert_int_equal(fake->nreq, 3);
    assert_int_equal(fake->nservers, 1);
    nghttp2_session *s = fake->servers[0].session;
    assert_int_equal(nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, fake->reqs[0].stream_id,
                                           NGHTTP2_NO_ERROR, NULL, 0),
                     0);
    answer(&fake->reqs[0], "200", NULL);
    pump();
    /* The two refused pushes went out again on a second connection. */
    assert_int_equal(fake->nreq, 5);
    assert_int_equal(fake->reqs[3].session, 1);
    assert_int_equal(fake->reqs[4].session, 1);
    answer(&fake->reqs[3], "200", NULL);
    answer(&fake->reqs[4], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(fake->answers[i].outcome, APNS_DELIVERED);
        assert_int_equal(fake->answers[i].attempts, 1);
    }
}

static void test_hostile_bytes_fail_the_connection(void **state)
{
    push("h");
    pump();
    assert_int_equal(fake->nreq, 1);
    struct apns_conn *conn = fake->client->conns[0];
    assert_non_null(conn);
    /* A WINDOW_UPDATE that overflows the connection's window, then junk. */
    static const uint8_t junk[] = "\x00\x00\x04\x08\x00\x00\x00\x00\x00\x7f\xff\xff\xff garbage";
    (void)apns_conn_feed(conn, junk, sizeof(junk));
    event_base_loop(fake->base, EVLOOP_NONBLOCK);
    assert_null(fake->client->conns[0]);
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->answers[0].outcome, APNS_TRANSIENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_on_the_wire_and_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_410_and_bad_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_concurrent_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goaway_sends_refused_streams_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes_fail_the_connection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
