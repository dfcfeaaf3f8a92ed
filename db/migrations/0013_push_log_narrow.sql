-- 0013: a narrower push_log (issue 22): about 75 bytes less an answer, table and index (with
-- 37-character UDIDs: 101 + 53 bytes an entry against 135 + 94).
--
--  * result is a small code (vouch_push_result_name() in db/functions/80_push.sql reads it; the
--    codes are stored data and never change meaning): 2 bytes instead of a word.
--  * apns_id is a uuid (16 bytes instead of 37): APNs' apns-id is a UUID in upper case, and
--    such an id is stored there (read back with vouch_push_apns_id(), in upper case, as it
--    came). Anything else an APNs or a proxy answered stays readable, as it came, in
--    apns_id_text (NULL otherwise).
--  * The columns are ordered so that no byte is lost to alignment.
--  * A device's newest entry is found through a btree on udid alone instead of (udid, seq): the
--    log keeps a day, so a device has few entries, read and ordered by seq; without seq in the
--    key, a device's entries are one deduplicated index tuple (half the index of (udid, seq)).
--    A hash index on udid was measured too: smaller with long UDIDs (7.2 MiB against 11 for
--    200,000 entries of 37 characters; larger with 13-character ones, 7.3 against 6.2), but
--    dearer an insert (0.5 to 1 us of PostgreSQL's CPU an answer).
--
-- The entries from before are copied over with their seq (the sequence goes on from them), and
-- read the same. vouch_push_results takes the codes and the ids in their stored types.

-- The entries from before move to a new table (the old one's indexes go first: the new one's take
-- their names).
DROP INDEX push_log_udid, push_log_at, push_log_transient;
ALTER TABLE push_log RENAME TO push_log_wide;
ALTER SEQUENCE push_log_seq_seq RENAME TO push_log_wide_seq_seq;

CREATE TABLE push_log (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    at           timestamptz NOT NULL,
    apns_id      uuid,              -- an apns-id in APNs' form (upper-case UUID)
    result       smallint NOT NULL  -- vouch_push_result_name() (db/functions/80_push.sql):
                 CHECK (result BETWEEN 0 AND 4), -- delivered 0, unregistered 1, rejected 2,
                                                  -- forbidden 3, transient 4
    udid         text NOT NULL,
    reason       text,
    apns_id_text text               -- any other apns-id, as it came
);

INSERT INTO push_log (seq, at, apns_id, result, udid, reason, apns_id_text)
OVERRIDING SYSTEM VALUE
SELECT seq, at,
       CASE WHEN apns_id ~ '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$'
            THEN apns_id::uuid END,
       (array_position(ARRAY['delivered', 'unregistered', 'rejected', 'forbidden', 'transient'],
                       result) - 1)::smallint, udid, reason,
       CASE WHEN apns_id !~ '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$'
            THEN apns_id END
FROM push_log_wide ORDER BY seq;

SELECT setval(pg_get_serial_sequence('push_log', 'seq'),
              coalesce((SELECT max(seq) FROM push_log_wide), 0) + 1, false);

DROP TABLE push_log_wide;

-- A device's newest answer: the device object, the retry sweep, the pruning's fold.
CREATE INDEX push_log_udid ON push_log (udid);
-- The pruning reads the oldest entries: BRIN costs nearly nothing on an append-only table.
CREATE INDEX push_log_at ON push_log USING brin (at);
-- The retry sweep: transient failures only, a small part of the log.
CREATE INDEX push_log_transient ON push_log (at) WHERE result = 4;

DROP FUNCTION IF EXISTS vouch_push_results(text[], text[], text[], text[], text[], timestamptz[]);
