#include "answer_batch.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Answers in one statement at most: the arrays' size, and how long the first one waits. */
#define BATCH_MAX 64
/* A larger answer goes alone: a batch's reports stay under BATCH_MAX times this (16 MiB). */
#define ANSWER_BYTES_MAX (256 * 1024)
/* How long answers go alone after a batch said a web-hook receiver wants mdm.Connect. */
#define PAUSE_S 60

struct waiting {
    struct db_answer answer;
    answer_batch_fn *done;
    void *arg;
    char request_id[LOG_REQUEST_ID_MAX + 1]; /* its request's, current again in done */
};

struct answer_batch {
    struct db_pool *pool;
    unsigned slots, out;   /* answer statements allowed out at once, and out now */
    struct waiting *queue; /* oldest first */
    size_t count, capacity;
    time_t paused_until; /* answers go alone until then (CLOCK_MONOTONIC seconds) */
    bool stopping;
    uint64_t batched, batches; /* answers a batch took; batch statements sent */
};

/* A batch statement out: its answers, in the order of the arrays it sent. */
struct sent {
    struct answer_batch *b;
    size_t count;
    struct waiting items[];
};

static time_t now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec;
}

/* Calls w's callback under its request's id (what it logs and the statements it sends belong
 * to that request, not to the one whose database answer let this batch go). */
static void call_done(const struct waiting *w, enum db_outcome outcome,
                      const struct db_report_outcome *result, bool slot)
{
    char previous[LOG_REQUEST_ID_MAX + 1];
    snprintf(previous, sizeof(previous), "%s", log_get0_request_id());
    log_set_request_id(w->request_id);
    w->done(w->arg, outcome, result, slot);
    log_set_request_id(previous);
}

static void flush(struct answer_batch *b);

static void batch_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct sent *s = arg;
    struct answer_batch *b = s->b;
    bool taken[BATCH_MAX] = {false};
    b->out--;
    for (int row = 0; outcome == DB_OK && row < PQntuples(res); row++) {
        struct db_report_outcome result;
        size_t i;
        if (!db_decode_answer_row(res, row, &i, &result)) {
            log_error("unexpected row from vouch_report_answers");
        } else if (i == DB_ANSWERS_NONE) {
            log_info("a web-hook receiver takes mdm.Connect: devices' answers go one a "
                     "statement for %d s",
                     PAUSE_S);
            b->paused_until = now_s() + PAUSE_S;
        } else if (i >= s->count || taken[i]) {
            log_error("unexpected row from vouch_report_answers");
        } else {
            taken[i] = true;
            b->batched++;
            call_done(&s->items[i], DB_OK, &result, false);
        }
    }
    /* Whatever the batch did not take, or could not (its statement failed as a whole: a lock
     * it would wait for, a deadlock, the database away), goes on alone, which tells each its
     * own outcome; at shutdown the database is gone. */
    for (size_t i = 0; i < s->count; i++) {
        if (!taken[i])
            call_done(&s->items[i], b->stopping ? DB_UNAVAILABLE : DB_OK, NULL, false);
    }
    free(s);
    flush(b);
}

/* How many of the waiting answers, from the first, go in the next batch: at most BATCH_MAX,
 * and one a device (a device's second answer waits for the next, after its first is in). */
static size_t batch_size(const struct answer_batch *b)
{
    size_t n = 0;
    while (n < b->count && n < BATCH_MAX) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(b->queue[i].answer.udid, b->queue[n].answer.udid) == 0)
                return n;
        }
        n++;
    }
    return n;
}

/* Sends what waits while slots are free: one answer alone back to its caller (on the slot), two
 * or more in one statement. */
static void flush(struct answer_batch *b)
{
    while (!b->stopping && b->out < b->slots && b->count > 0) {
        b->out++;
        size_t n = batch_size(b);
        if (n == 1) {
            struct waiting w = b->queue[0];
            b->count--;
            memmove(b->queue, b->queue + 1, b->count * sizeof(b->queue[0]));
            call_done(&w, DB_OK, NULL, true);
            continue;
        }
        struct sent *s = malloc(sizeof(*s) + n * sizeof(s->items[0]));
        struct db_answer *answers = malloc(n * sizeof(*answers));
        if (s == NULL || answers == NULL)
            log_fatal("out of memory");
        s->b = b;
        s->count = n;
        memcpy(s->items, b->queue, n * sizeof(s->items[0]));
        for (size_t i = 0; i < n; i++)
            answers[i] = s->items[i].answer;
        b->count -= n;
        memmove(b->queue, b->queue + n, b->count * sizeof(b->queue[0]));
        b->batches++;
        /* The statement is the batch's, no one request's. */
        char previous[LOG_REQUEST_ID_MAX + 1];
        snprintf(previous, sizeof(previous), "%s", log_get0_request_id());
        log_set_request_id(NULL);
        db_report_answers(b->pool, answers, n, batch_done, s); /* copies the arrays */
        log_set_request_id(previous);
        free(answers);
    }
}

struct answer_batch *answer_batch_new(struct db_pool *pool, unsigned slots)
{
    struct answer_batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        log_fatal("out of memory");
    b->pool = pool;
    b->slots = slots > 0 ? slots : 1;
    return b;
}

void answer_batch_stop(struct answer_batch *b)
{
    if (b == NULL)
        return;
    b->stopping = true;
    while (b->count > 0) {
        struct waiting w = b->queue[--b->count];
        call_done(&w, DB_UNAVAILABLE, NULL, false);
    }
}

void answer_batch_free(struct answer_batch *b)
{
    if (b == NULL)
        return;
    free(b->queue);
    free(b);
}

bool answer_batch_add(struct answer_batch *b, const struct db_answer *a, answer_batch_fn *done,
                      void *arg, bool *slot)
{
    *slot = false;
    if (b->stopping || a->report_len > ANSWER_BYTES_MAX ||
        (b->paused_until != 0 && now_s() < b->paused_until))
        return false;
    if (b->out < b->slots && b->count == 0) {
        b->out++;
        *slot = true;
        return false;
    }
    if (b->count == b->capacity) {
        /* Bounded by the requests in progress (max_connections). */
        size_t capacity = b->capacity ? 2 * b->capacity : BATCH_MAX;
        struct waiting *grown = realloc(b->queue, capacity * sizeof(*grown));
        if (grown == NULL)
            log_fatal("out of memory");
        b->queue = grown;
        b->capacity = capacity;
    }
    struct waiting *w = &b->queue[b->count++];
    w->answer = *a;
    w->done = done;
    w->arg = arg;
    snprintf(w->request_id, sizeof(w->request_id), "%s", log_get0_request_id());
    return true;
}

void answer_batch_release(struct answer_batch *b)
{
    if (b->out == 0) {
        log_error("answer_batch_release without a slot out");
        return;
    }
    b->out--;
    flush(b);
}

void answer_batch_render_metrics(const struct answer_batch *b, struct evbuffer *out)
{
    evbuffer_add_printf(out,
                        "# HELP vouch_answers_batched_total Devices' answers to commands "
                        "recorded several in one statement.\n"
                        "# TYPE vouch_answers_batched_total counter\n"
                        "vouch_answers_batched_total %" PRIu64 "\n"
                        "# HELP vouch_answer_batches_total Statements that recorded several "
                        "devices' answers at once.\n"
                        "# TYPE vouch_answer_batches_total counter\n"
                        "vouch_answer_batches_total %" PRIu64 "\n"
                        "# HELP vouch_answers_waiting Devices' answers waiting for a batch.\n"
                        "# TYPE vouch_answers_waiting gauge\n"
                        "vouch_answers_waiting %zu\n",
                        b->batched, b->batches, b->count);
}
