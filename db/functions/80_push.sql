-- Pushes: where to push, the answers recorded in batches, and what to push again.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- push_log's codes (migration 0013): stored data, their meaning never changes. The result of an
-- answer, and its apns-id as APNs gave it (an upper-case UUID in apns_id, anything else as it
-- came in apns_id_text).
CREATE OR REPLACE FUNCTION vouch_push_result_name(p_code smallint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ARRAY['delivered', 'unregistered', 'rejected', 'forbidden', 'transient'])[p_code + 1]
$$;

CREATE OR REPLACE FUNCTION vouch_push_result_code(p_name text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (array_position(ARRAY['delivered', 'unregistered', 'rejected', 'forbidden', 'transient'],
                           p_name) - 1)::smallint
$$;

CREATE OR REPLACE FUNCTION vouch_push_apns_id(p_uuid uuid, p_text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(upper(p_uuid::text), p_text)
$$;

-- Where to push: enabled enrollments with a live token, among p_udids.
CREATE OR REPLACE FUNCTION vouch_push_targets(p_udids text[])
RETURNS TABLE (udid text, token bytea, push_magic text, topic text)
LANGUAGE sql STABLE AS $$
    SELECT e.udid, e.push_token, e.push_magic, e.topic
    FROM enrollments e
    WHERE e.udid = ANY (p_udids) AND e.enabled AND e.push_token IS NOT NULL
      AND e.push_magic IS NOT NULL AND e.token_dead_at IS NULL
$$;

-- Records a batch of push answers, oldest first: each appended to push_log (one insert for the
-- batch: the answers of a fleet cost a heap tuple and an index entry each, not an update of
-- each enrollment), in seq order: one number from push_log_batch for the batch, then each
-- answer's place in it (migration 0019). p_results are the stored codes
-- (vouch_push_result_name(), migration 0013); an apns-id in APNs' form (an upper-case UUID)
-- comes in p_apns_ids, any other in p_apns_other.
-- A 410 (code 1) marks the token dead on the enrollment in the same statement, unless it is no
-- longer the device's token or a TokenUpdate came after the time APNs gave. An array may be
-- shorter than p_udids (vouchd leaves off its trailing NULLs): unnest pads it with NULLs.
CREATE OR REPLACE FUNCTION vouch_push_results(p_udids text[], p_tokens text[], p_results smallint[],
                                   p_apns_ids uuid[], p_apns_other text[], p_reasons text[],
                                   p_dead_at timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t timestamptz := vouch_now(); -- once a batch, not once a row
    batch bigint;
BEGIN
    IF cardinality(p_udids) >= 1048576 THEN
        RAISE EXCEPTION 'a batch of % push answers: at most 1048575', cardinality(p_udids);
    END IF;
    batch := nextval('push_log_batch') * 1048576;
    INSERT INTO push_log (seq, at, apns_id, result, udid, reason, apns_id_text)
    SELECT batch + r.n, t, r.apns_id, r.result, r.udid, r.reason, r.apns_other
    FROM unnest(p_udids, p_results, p_apns_ids, p_apns_other, p_reasons) WITH ORDINALITY
             AS r(udid, result, apns_id, apns_other, reason, n);
    -- Most batches have no 410: no join to plan or run. vouchd sends the token (and the time)
    -- with a 410 only.
    IF array_position(p_results, 1::smallint) IS NULL THEN
        RETURN;
    END IF;
    UPDATE enrollments e SET token_dead_at = coalesce(r.dead_at, t)
    FROM unnest(p_udids, p_tokens, p_results, p_dead_at) AS r(udid, token, result, dead_at)
    WHERE r.result = 1 AND r.token IS NOT NULL AND e.udid = r.udid
      AND e.push_token = decode(r.token, 'hex')
      AND (e.token_updated_at IS NULL OR e.token_updated_at < coalesce(r.dead_at, t));
END
$$;

-- Devices to push again: those whose last push failed transiently in the last day and that
-- still have work waiting (their newest push_log entry; before it, the enrollment's columns:
-- answers recorded before migration 0010 or folded there by vouch_push_prune), and those with
-- commands queued more than a minute ago and not pushed since (the instance that queued them
-- died before its push went out). The second look is bounded to the last ten minutes of the
-- queue, so it costs what was queued lately, not the whole queue; the first to a day of the
-- log, so answers a later one superseded are not read again at every sweep for a month.
CREATE OR REPLACE FUNCTION vouch_push_retry_due(p_limit integer) RETURNS TABLE (udid text)
LANGUAGE sql STABLE AS $$
    (SELECT l.udid FROM push_log l JOIN enrollments e ON e.udid = l.udid
     WHERE l.result = 4 /* transient */ AND l.at < vouch_now() - interval '30 seconds'
       AND l.at >= vouch_now() - interval '1 day'
       AND NOT EXISTS (SELECT 1 FROM push_log n WHERE n.udid = l.udid AND n.seq > l.seq)
       AND e.enabled AND e.token_dead_at IS NULL
       AND (EXISTS (SELECT 1 FROM command_queue q WHERE q.udid = e.udid)
            OR EXISTS (SELECT 1 FROM attestation_requests r
                       WHERE r.udid = e.udid AND r.answered_at IS NULL))
     ORDER BY l.at LIMIT p_limit)
    UNION
    (SELECT e.udid FROM enrollments e
     WHERE e.last_push_result = 'transient' AND e.last_push_at < vouch_now() - interval '30 seconds'
       AND e.enabled AND e.token_dead_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM push_log n WHERE n.udid = e.udid)
       AND (EXISTS (SELECT 1 FROM command_queue q WHERE q.udid = e.udid)
            OR EXISTS (SELECT 1 FROM attestation_requests r
                       WHERE r.udid = e.udid AND r.answered_at IS NULL))
     ORDER BY e.last_push_at LIMIT p_limit)
    UNION
    (SELECT DISTINCT q.udid FROM (
         SELECT q.udid, q.queued_at FROM command_queue q
         WHERE q.queued_at >= vouch_now() - interval '10 minutes'
           AND q.queued_at < vouch_now() - interval '1 minute'
         UNION ALL
         -- a pending attestation request is its own queue entry (50_commands.sql)
         SELECT r.udid, r.requested_at FROM attestation_requests r
         WHERE r.answered_at IS NULL
           AND r.requested_at >= vouch_now() - interval '10 minutes'
           AND r.requested_at < vouch_now() - interval '1 minute') q
     JOIN enrollments e ON e.udid = q.udid
     WHERE e.enabled AND e.token_dead_at IS NULL AND e.push_token IS NOT NULL
       AND (e.last_push_at IS NULL OR e.last_push_at < q.queued_at)
       AND NOT EXISTS (SELECT 1 FROM push_log n WHERE n.udid = q.udid AND n.at >= q.queued_at)
     LIMIT p_limit)
$$;

-- Drops up to p_batch push_log entries older than p_retention, oldest first. A device whose
-- newest entry goes keeps it on its enrollment (last_push_*), so the device object still shows
-- its last push; a device pushed again since costs no update. Entries of devices without an
-- enrollment just go.
CREATE OR REPLACE FUNCTION vouch_push_prune(p_retention interval, p_batch integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    deleted bigint;
BEGIN
    WITH old AS MATERIALIZED (
        SELECT l.ctid AS id, l.seq, l.udid, l.at, l.result, l.apns_id, l.apns_id_text, l.reason
        FROM push_log l
        WHERE l.at < vouch_now() - p_retention ORDER BY l.at, l.seq LIMIT p_batch),
    newest AS (
        SELECT b.* FROM (SELECT DISTINCT ON (o.udid) o.* FROM old o ORDER BY o.udid, o.seq DESC) b
        WHERE NOT EXISTS (SELECT 1 FROM push_log n WHERE n.udid = b.udid AND n.seq > b.seq)),
    folded AS (
        UPDATE enrollments e SET last_push_at = b.at,
               last_push_result = vouch_push_result_name(b.result),
               last_push_apns_id = vouch_push_apns_id(b.apns_id, b.apns_id_text),
               last_push_reason = b.reason
        FROM newest b WHERE e.udid = b.udid)
    DELETE FROM push_log WHERE ctid = ANY (ARRAY(SELECT id FROM old));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
