-- 0019: push_log's seq drawn once a batch instead of once an answer (issue 23).
--
-- seq orders a device's answers as they were inserted (the device object and the retry sweep
-- read its newest; 0010). It was an identity column without a cache, so every answer of a
-- batch took its own nextval(): a lock of the sequence's buffer, and a WAL record every 32
-- values, about 0.25 us of PostgreSQL's time an answer (a tenth of its insert, measured in a
-- PL/pgSQL loop of 150 batches of 2,000). vouch_push_results now draws one number a batch from
-- push_log_batch and gives the batch's answers that number times 2^20 plus their place in the
-- batch (a batch holds far fewer than 2^20 answers; the function refuses one that does not).
-- The order is the same: by batch as the sequence hands them out (no cache, so across sessions
-- too), then within the batch. seq is no longer a count, only an order.
--
-- Anything else that inserts into push_log (an operator's script, a test) gets a number of the
-- same kind from the column's default. The first batch number lies above every seq from
-- before, so the entries kept keep their place before the new ones.
ALTER TABLE push_log ALTER COLUMN seq DROP IDENTITY;

CREATE SEQUENCE push_log_batch OWNED BY push_log.seq;
SELECT setval('push_log_batch', coalesce((SELECT max(seq) FROM push_log), 0) / 1048576 + 1,
              false);
ALTER TABLE push_log ALTER COLUMN seq SET DEFAULT nextval('push_log_batch') * 1048576;
