-- 0010: push answers appended to a log instead of written onto the enrollment (issue 23).
--
-- Recording an answer used to update its enrollment (last_push_at, last_push_result,
-- last_push_apns_id, last_push_reason): a non-HOT update of a wide row with its indexes, about
-- 12 µs of PostgreSQL's time a push, the largest single cost of pushing a fleet. Each batch of
-- answers is now appended to push_log in one statement (vouch_push_results): a heap insert and
-- one index entry an answer. The device object and the retry sweep read a device's newest entry
-- (highest seq: a sequence without a cache, so it orders answers as they were inserted even
-- between sessions, and within one batch, where vouch_now() is the same for every row; a
-- vouchd has one batch in flight at a time, so for one instance that is the order of commits).
--
-- The enrollment's columns stay: they hold what was recorded before this migration, and what
-- vouch_push_prune folds there when a device's newest entry grows older than the retention, so
-- a device pushed once a year still shows its last push. A 410 still marks the token dead on the
-- enrollment at once (token_dead_at), in the statement that records it.
--
-- No foreign key to enrollments: it would cost a trigger and a lookup an answer; entries of a
-- device that goes away are pruned with the others.

CREATE TABLE push_log (
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    udid    text NOT NULL,
    at      timestamptz NOT NULL,
    result  text NOT NULL,  -- delivered, unregistered, rejected, forbidden, transient
    apns_id text,
    reason  text
);
-- A device's newest answer: the device object, the retry sweep, the pruning's fold.
CREATE INDEX push_log_udid ON push_log (udid, seq);
-- The pruning reads the oldest entries: BRIN costs nearly nothing on an append-only table.
CREATE INDEX push_log_at ON push_log USING brin (at);
-- The retry sweep: transient failures only, a small part of the log.
CREATE INDEX push_log_transient ON push_log (at) WHERE result = 'transient';
