/*
 * answer_batch: devices' answers to operator commands, several in one statement
 * (db_report_answers; vouch_report_answers in db/functions/50_commands.sql).
 *
 * mdm.c hands over an answer that vouch_report's first fast way could take (a result with no
 * verdict and no OS version). While fewer than `slots` answer statements are out, it goes at
 * once: answer_batch_add() says so and mdm.c sends it to db_report as before (the batch
 * statement costs more than vouch_report for a single answer). Otherwise it waits here, and when
 * a statement comes back the waiting answers go in one (at most 64, one a device): they share
 * one plan's start, one transaction and one commit. So a lone answer waits for nothing, and
 * answers that arrive while the database is busy cost it less each. The batch answers each
 * answer it takes; each other one (a condition of the fast way failed, or the statement failed
 * as a whole) is handed back to its caller, which sends it to db_report, whose general way
 * decides. Answers over 256 KiB go alone, and all do for a minute after a batch said that a
 * web-hook receiver wants mdm.Connect (vouch_report then emits an event for each). Callbacks
 * run under their own request's id (log.h).
 *
 * Owns: the queue and the batches out. Borrows each answer's strings, certificate and report
 * until its callback has run. Event loop only.
 */
#ifndef VOUCH_ANSWER_BATCH_H
#define VOUCH_ANSWER_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "queries.h"

struct evbuffer;

struct answer_batch;

/* An answer's outcome. result (borrowed for the call): the batch took it; reply. Else, with
 * outcome DB_OK (the batch did not take it, or its statement failed as a whole), the caller
 * sends it to db_report and, when slot is true, calls answer_batch_release() once that has
 * returned. DB_UNAVAILABLE: vouchd is stopping (answer_batch_stop); the caller replies so. */
typedef void answer_batch_fn(void *arg, enum db_outcome outcome,
                             const struct db_report_outcome *result, bool slot);

/* slots: answer statements out at once, the single ones the callers send included (at least
 * 1). */
struct answer_batch *answer_batch_new(struct db_pool *pool, unsigned slots);
/* At shutdown, before the HTTP front and the pool go: the answers waiting are told
 * DB_UNAVAILABLE now, while their requests live, and nothing more is sent. */
void answer_batch_stop(struct answer_batch *b);
/* Frees it; after db_pool_free(), whose last callbacks (the batches out, DB_UNAVAILABLE)
 * still name it. */
void answer_batch_free(struct answer_batch *b);

/* Takes answer a. true: it waits for a batch, and done runs once. false: the caller sends a to
 * db_report now, and calls answer_batch_release() once that has returned when *slot is true (a
 * free slot was taken for it; false when it goes alone outside the slots: too large, batching
 * paused, or stopping). */
bool answer_batch_add(struct answer_batch *b, const struct db_answer *a, answer_batch_fn *done,
                      void *arg, bool *slot);
/* A single answer's statement sent on a slot has returned: the slot is free again, and the
 * answers waiting go. */
void answer_batch_release(struct answer_batch *b);

/* vouch_answers_batched_total, vouch_answer_batches_total and vouch_answers_waiting. */
void answer_batch_render_metrics(const struct answer_batch *b, struct evbuffer *out);

#endif
