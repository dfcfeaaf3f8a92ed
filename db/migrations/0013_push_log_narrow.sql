-- 0013: a narrower push_log (issue 22): about 60 bytes less an answer, heap and index.
--
--  * result is a small code (vouch_push_result_name() reads it; the codes are stored data and
--    never change meaning): 2 bytes instead of a word.
--  * apns_id is a uuid (16 bytes instead of 37): APNs' apns-id is a UUID in upper case, and
--    such an id is stored there (read back with vouch_push_apns_id(), in upper case, as it
--    came). Anything else an APNs or a proxy answered stays readable, as it came, in
--    apns_id_text (NULL otherwise).
--  * The columns are ordered so that no byte is lost to alignment.
--  * A device's newest entry is found through a btree on udid alone instead of (udid, seq): the
--    log keeps a day, so a device has few entries, read and ordered by seq; without seq in the
--    key, a device's entries are one deduplicated index tuple (half the index of (udid, seq)).
--    A hash index on udid was measured too: larger than this one (7.3 MiB against 6.2 for
--    200,000 entries) and dearer an insert.
--
-- The entries from before are copied over with their seq (the sequence goes on from them), and
-- read the same. vouch_push_results takes the codes and the ids in their stored types.

CREATE FUNCTION vouch_push_result_name(p_code smallint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ARRAY['delivered', 'unregistered', 'rejected', 'forbidden', 'transient'])[p_code + 1]
$$;

CREATE FUNCTION vouch_push_result_code(p_name text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (array_position(ARRAY['delivered', 'unregistered', 'rejected', 'forbidden', 'transient'],
                           p_name) - 1)::smallint
$$;

-- An entry's apns-id as APNs gave it.
CREATE FUNCTION vouch_push_apns_id(p_uuid uuid, p_text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(upper(p_uuid::text), p_text)
$$;

CREATE TABLE push_log_narrow (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    at           timestamptz NOT NULL,
    apns_id      uuid,              -- an apns-id in APNs' form (upper-case UUID)
    result       smallint NOT NULL  -- vouch_push_result_name(): delivered 0, unregistered 1,
                 CHECK (result BETWEEN 0 AND 4), -- rejected 2, forbidden 3, transient 4
    udid         text NOT NULL,
    reason       text,
    apns_id_text text               -- any other apns-id, as it came
);

INSERT INTO push_log_narrow (seq, at, apns_id, result, udid, reason, apns_id_text)
OVERRIDING SYSTEM VALUE
SELECT seq, at,
       CASE WHEN apns_id ~ '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$'
            THEN apns_id::uuid END,
       vouch_push_result_code(result), udid, reason,
       CASE WHEN apns_id !~ '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$'
            THEN apns_id END
FROM push_log ORDER BY seq;

SELECT setval(pg_get_serial_sequence('push_log_narrow', 'seq'),
              coalesce((SELECT max(seq) FROM push_log), 0) + 1, false);

DROP TABLE push_log;
ALTER TABLE push_log_narrow RENAME TO push_log;
ALTER SEQUENCE push_log_narrow_seq_seq RENAME TO push_log_seq_seq;

-- A device's newest answer: the device object, the retry sweep, the pruning's fold.
CREATE INDEX push_log_udid ON push_log (udid);
-- The pruning reads the oldest entries: BRIN costs nearly nothing on an append-only table.
CREATE INDEX push_log_at ON push_log USING brin (at);
-- The retry sweep: transient failures only, a small part of the log.
CREATE INDEX push_log_transient ON push_log (at) WHERE result = 4;

DROP FUNCTION IF EXISTS vouch_push_results(text[], text[], text[], text[], text[], timestamptz[]);
