/* Unit tests of apns/apns_conn.c and the dispatcher of apns/apns.c over memory connections: an
 * nghttp2 server session in this process plays APNs. What a push looks like on the wire, answers
 * (200, 410, a bad status), SETTINGS_MAX_CONCURRENT_STREAMS honoured, a busy connection refilled
 * in batches, GOAWAY's refused streams
 * sent again on a new connection without counting an attempt, and a body beyond the bound.
 * The timers (the per-attempt timeout, PING for liveness) run by calling apns_conn_tick() after
 * moving the client's clock forward (apns_clock_skew_ms), and retries by firing their backoff
 * timers at once: no test waits for them. */
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
#define TIMEOUT_MS 30000 /* the client's timeout_ms */
/* apns_conn.c's PING_IDLE_S and PING_TIMEOUT_S, in ms */
#define PING_IDLE_MS 60000
#define PING_TIMEOUT_MS 15000
#define PING_SUSPECT_MS 2000 /* apns_conn.c's: no new stream on it past this */

struct request {
    int32_t stream_id;
    unsigned session;
    char path[256], topic[128], push_type[16], expiration[32], priority[8], body[128];
    bool complete, answered;
    uint32_t reset; /* RST_STREAM's error code + 1, 0 when the stream was not reset */
};

struct server {
    nghttp2_session *session;
    uint64_t conn_id;
    struct fake *fake;
    unsigned pings; /* PINGs received (not ACKs) */
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
    bool mute_pings; /* new server sessions do not answer PINGs */
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
    struct server *s = arg;
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
        s->pings++;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        struct request *reset = find_req(s, frame->hd.stream_id);
        if (reset != NULL)
            reset->reset = frame->rst_stream.error_code + 1;
    }
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
    nghttp2_option *opt;
    assert_int_equal(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_auto_ping_ack(opt, fake->mute_pings);
    assert_int_equal(nghttp2_session_server_new2(&s->session, cb, s, opt), 0);
    nghttp2_option_del(opt);
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

/* Moves the client's clock forward by ms and runs each connection's tick, as its 1-second timer
 * would, then lets the bytes move. */
static void advance(uint64_t ms)
{
    apns_clock_skew_ms += ms;
    for (unsigned i = 0; i < APNS_CONNECTIONS_MAX; i++) {
        if (fake->client->conns[i] != NULL)
            (void)apns_conn_tick(fake->client->conns[i]);
    }
    pump();
}

/* Fires the backoff timers of the pushes waiting for a retry, as if their delay had passed (and a
 * second with it, past the first backoff of a new connection). Returns how many fired. */
static unsigned fire_retries(void)
{
    unsigned n = 0;
    apns_clock_skew_ms += 1000;
    for (struct apns_job *job = fake->client->all; job != NULL; job = job->all_next) {
        if (job->timer_pending) {
            event_active(&job->timer, EV_TIMEOUT, 1);
            n++;
        }
    }
    pump();
    return n;
}

static void answer_one_push(void)
{
    push("a");
    pump();
    assert_int_equal(fake->nreq, 1);
    answer(&fake->reqs[0], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->answers[0].outcome, APNS_DELIVERED);
}

static unsigned connections_up(void)
{
    struct apns_stats st;
    apns_client_get_stats(fake->client, &st);
    return st.connections;
}

static void set_up_client(unsigned max_attempts)
{
    static struct fake f;
    memset(&f, 0, sizeof(f));
    fake = &f;
    apns_clock_skew_ms = 0;
    f.base = event_base_new();
    f.max_streams = 100;
    const struct apns_config cfg = {.url = "https://apns.test",
                                    .expiration_s = 3600,
                                    .max_in_flight = 100,
                                    .max_attempts = max_attempts,
                                    .timeout_ms = TIMEOUT_MS,
                                    .connections = 2};
    f.client = apns_client_new_memory(f.base, &cfg, TOPIC);
    assert_non_null(f.client);
}

static int setup(void **state)
{
    set_up_client(1);
    return 0;
}

static int setup_retrying(void **state)
{
    set_up_client(3);
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

/* A connection with streams in flight takes new ones in batches (an eighth of its limit at
 * least), so that a write carries many pushes; an idle one takes them at once. */
static void test_busy_connection_refills_in_batches(void **state)
{
    fake->max_streams = 16;
    for (int i = 0; i < 40; i++)
        push("m");
    pump();
    assert_int_equal(fake->nreq, 32); /* 16 on each of the two connections, 8 queued */
    /* One answer on the first connection frees one slot of 16: less than 2, no new stream. */
    unsigned on_first[16], n = 0;
    for (unsigned i = 0; i < fake->nreq && n < 16; i++) {
        if (fake->reqs[i].session == 0)
            on_first[n++] = i;
    }
    assert_int_equal(n, 16);
    answer(&fake->reqs[on_first[0]], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->nreq, 32);
    /* A second one: two slots free, two new streams in one write. */
    answer(&fake->reqs[on_first[1]], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 2);
    assert_int_equal(fake->nreq, 34);
    for (unsigned i = 0; i < fake->nreq; i++) {
        if (!fake->reqs[i].answered)
            answer(&fake->reqs[i], "200", NULL);
    }
    pump();
    /* Every connection idle again: what is left goes at once, however little. */
    for (unsigned i = 0; i < fake->nreq; i++) {
        if (!fake->reqs[i].answered)
            answer(&fake->reqs[i], "200", NULL);
    }
    pump();
    assert_int_equal(fake->nreq, 40);
    assert_int_equal(fake->nanswers, 40);
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

/* A stream without an answer in timeout_ms is reset (CANCEL) and retried, a transient failure
 * each time; after max_attempts the push is reported APNS_TRANSIENT. */
static void test_timeout_resets_and_retries_then_transient(void **state)
{
    push("t");
    pump();
    for (unsigned attempt = 1; attempt <= 3; attempt++) {
        assert_int_equal(fake->nreq, attempt);
        struct request *r = &fake->reqs[attempt - 1];
        assert_true(r->complete);
        assert_string_equal(r->body, "{\"mdm\":\"t\"}");
        assert_int_equal(r->session, 0); /* the connection answers its PINGs: kept */
        advance(TIMEOUT_MS - 1000);
        assert_int_equal(r->reset, 0);
        advance(1000);
        assert_int_equal(r->reset, NGHTTP2_CANCEL + 1);
        if (attempt < 3) {
            assert_int_equal(fake->nanswers, 0);
            assert_int_equal(fire_retries(), 1);
        }
    }
    assert_int_equal(fake->nanswers, 1);
    const struct apns_response *a = &fake->answers[0];
    assert_int_equal(a->outcome, APNS_TRANSIENT);
    assert_int_equal(a->http_status, 0);
    assert_int_equal(a->attempts, 3);
    assert_non_null(strstr(a->reason, "timeout"));
    struct apns_stats st;
    apns_client_get_stats(fake->client, &st);
    assert_int_equal(st.sent, 3);
    assert_int_equal(st.retries, 2);
    assert_int_equal(st.transient_failed, 1);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(fake->nservers, 1);
}

/* Only the streams older than the timeout are reset; an attempt answered after a timed-out one
 * settles the push, both attempts counted. */
static void test_timeout_then_answered(void **state)
{
    push("x");
    pump();
    advance(TIMEOUT_MS / 2);
    push("y");
    pump();
    assert_int_equal(fake->nreq, 2);
    advance(TIMEOUT_MS / 2);
    assert_int_equal(fake->reqs[0].reset, NGHTTP2_CANCEL + 1);
    assert_int_equal(fake->reqs[1].reset, 0);
    answer(&fake->reqs[1], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->answers[0].attempts, 1);
    assert_int_equal(fire_retries(), 1);
    assert_int_equal(fake->nreq, 3);
    assert_string_equal(fake->reqs[2].body, "{\"mdm\":\"x\"}");
    answer(&fake->reqs[2], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 2);
    assert_int_equal(fake->answers[1].outcome, APNS_DELIVERED);
    assert_int_equal(fake->answers[1].attempts, 2);
}

/* An idle connection is PINGed; one whose PING goes unanswered is dropped, and the push it had
 * in flight goes out again on a new connection: a connection error, so one attempt counted
 * (apns.h). */
static void test_unanswered_ping_drops_the_connection(void **state)
{
    fake->mute_pings = true;
    answer_one_push();
    advance(PING_IDLE_MS - 1000);
    assert_int_equal(fake->servers[0].pings, 0);
    advance(1000);
    assert_int_equal(fake->servers[0].pings, 1);
    /* Up until the PING's answer is due: it takes a push. */
    push("b");
    pump();
    assert_int_equal(fake->nreq, 2);
    assert_int_equal(fake->reqs[1].session, 0);
    advance(PING_TIMEOUT_MS - 1000);
    assert_non_null(fake->client->conns[0]);
    advance(1000);
    assert_int_equal(connections_up(), 0);
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fire_retries(), 1);
    assert_int_equal(fake->nreq, 3);
    assert_int_equal(fake->reqs[2].session, 1);
    assert_string_equal(fake->reqs[2].body, "{\"mdm\":\"b\"}");
    answer(&fake->reqs[2], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 2);
    assert_int_equal(fake->answers[1].outcome, APNS_DELIVERED);
    assert_int_equal(fake->answers[1].attempts, 2);
}

/* An answered PING keeps the connection: no drop when the answer's deadline passes, another PING
 * after the next idle period, and the next push goes out on it. */
static void test_answered_ping_keeps_the_connection(void **state)
{
    answer_one_push();
    advance(PING_IDLE_MS);
    assert_int_equal(fake->servers[0].pings, 1);
    advance(PING_TIMEOUT_MS + 1000);
    assert_int_equal(connections_up(), 1);
    assert_int_equal(fake->servers[0].pings, 1);
    advance(PING_IDLE_MS - PING_TIMEOUT_MS - 1000);
    assert_int_equal(fake->servers[0].pings, 2);
    push("b");
    pump();
    assert_int_equal(fake->nreq, 2);
    assert_int_equal(fake->reqs[1].session, 0);
    answer(&fake->reqs[1], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 2);
    assert_int_equal(fake->answers[1].attempts, 1);
    assert_int_equal(fake->nservers, 1);
}

/* A connection whose PING has gone unanswered for PING_SUSPECT_MS takes no new stream: the next
 * push goes out at once on a new connection instead of waiting out the PING's deadline on a peer
 * that may be gone. Once the PING is answered the first connection takes pushes again. */
static void test_unanswered_ping_stops_new_streams(void **state)
{
    fake->mute_pings = true;
    answer_one_push();
    advance(PING_IDLE_MS);
    assert_int_equal(fake->servers[0].pings, 1);
    advance(PING_SUSPECT_MS);
    push("b");
    pump();
    assert_int_equal(fake->nreq, 2);
    assert_int_equal(fake->reqs[1].session, 1);
    answer(&fake->reqs[1], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 2);
    assert_int_equal(fake->answers[1].attempts, 1);
    /* The PING's answer comes: the first connection has room again, and is the first tried. */
    assert_int_equal(nghttp2_submit_ping(fake->servers[0].session, NGHTTP2_FLAG_ACK, NULL), 0);
    pump();
    push("c");
    pump();
    assert_int_equal(fake->nreq, 3);
    assert_int_equal(fake->reqs[2].session, 0);
    advance(PING_TIMEOUT_MS);
    assert_int_equal(connections_up(), 2);
}

/* A connection that is never idle is PINGed when one of its streams times out, and dropped when
 * that PING is not answered: retries leave a dead peer instead of timing out on it again. */
static void test_timeout_pings_a_busy_connection(void **state)
{
    fake->mute_pings = true;
    push("a");
    pump();
    advance(TIMEOUT_MS);
    assert_int_equal(fake->reqs[0].reset, NGHTTP2_CANCEL + 1);
    assert_int_equal(fake->servers[0].pings, 1);
    /* The retry still goes out on it (the PING is not due yet), then fails with it. */
    assert_int_equal(fire_retries(), 1);
    assert_int_equal(fake->nreq, 2);
    assert_int_equal(fake->reqs[1].session, 0);
    advance(PING_TIMEOUT_MS - 2000);
    assert_int_equal(connections_up(), 1);
    advance(1000);
    assert_int_equal(connections_up(), 0);
    assert_int_equal(fire_retries(), 1);
    assert_int_equal(fake->nreq, 3);
    assert_int_equal(fake->reqs[2].session, 1);
    answer(&fake->reqs[2], "200", NULL);
    pump();
    assert_int_equal(fake->nanswers, 1);
    assert_int_equal(fake->answers[0].outcome, APNS_DELIVERED);
    assert_int_equal(fake->answers[0].attempts, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_on_the_wire_and_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_410_and_bad_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_concurrent_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_connection_refills_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goaway_sends_refused_streams_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_bytes_fail_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_resets_and_retries_then_transient,
                                        setup_retrying, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_answered, setup_retrying, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_ping_drops_the_connection, setup_retrying,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_answered_ping_keeps_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_ping_stops_new_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_pings_a_busy_connection, setup_retrying,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
