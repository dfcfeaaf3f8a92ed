#include "answer_batch.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Answers in one statement at most: the arrays' size, and how long the first one waits. */
#define BATCH_MAX 64

struct waiting {
    struct db_answer answer;
    answer_batch_fn *done;
    void *arg;
};

struct answer_batch {
    struct db_pool *pool;
    unsigned slots, out; /* answer statements allowed out at once, and out now */
    struct waiting *queue; /* oldest first */
    size_t count, capacity;
    uint64_t batched, batches; /* answers a batch took; batch statements sent */
};

/* A batch statement out: its answers, in the order of the arrays it sent. */
struct sent {
    struct answer_batch *b;
    size_t count;
    struct waiting items[];
};

static void flush(struct answer_batch *b);

static void batch_done(void *arg, enum db_outcome outcome, const PGresult *res)
{
    struct sent *s = arg;
    struct answer_batch *b = s->b;
    bool taken[BATCH_MAX] = {false};
    b->out--;
    if (outcome == DB_OK) {
        for (int row = 0; row < PQntuples(res); row++) {
            struct db_report_outcome result;
            size_t i;
            if (!db_decode_answer_row(res, row, &i, &result) || i >= s->count || taken[i]) {
                log_error("unexpected row from vouch_report_answers");
                continue;
            }
            taken[i] = true;
            b->batched++;
            s->items[i].done(s->items[i].arg, DB_OK, &result, false);
        }
    }
    for (size_t i = 0; i < s->count; i++) {
        if (!taken[i])
            s->items[i].done(s->items[i].arg, outcome, NULL, false);
    }
    free(s);
    flush(b);
}

/* Sends what waits while slots are free: one answer alone back to its caller (on the slot), two
 * or more in one statement. */
static void flush(struct answer_batch *b)
{
    while (b->out < b->slots && b->count > 0) {
        b->out++;
        if (b->count == 1) {
            struct waiting w = b->queue[0];
            b->count = 0;
            w.done(w.arg, DB_OK, NULL, true);
            continue;
        }
        size_t n = b->count < BATCH_MAX ? b->count : BATCH_MAX;
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
        db_report_answers(b->pool, answers, n, batch_done, s); /* copies the arrays */
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
    for (size_t i = 0; i < b->count; i++) {
        if (strcmp(b->queue[i].answer.udid, a->udid) == 0)
            return false; /* its device has one waiting: this one goes alone */
    }
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
    b->queue[b->count++] = (struct waiting){*a, done, arg};
    return true;
}

void answer_batch_release(struct answer_batch *b)
{
    if (b->out > 0)
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
                        "vouch_answer_batches_total %" PRIu64 "\n",
                        b->batched, b->batches);
}
