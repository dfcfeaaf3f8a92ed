-- Pushes: where to push, the answers recorded in batches, and what to push again.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- Where to push: enabled enrollments with a live token, among p_udids.
CREATE OR REPLACE FUNCTION vouch_push_targets(p_udids text[])
RETURNS TABLE (udid text, token bytea, push_magic text, topic text)
LANGUAGE sql STABLE AS $$
    SELECT e.udid, e.push_token, e.push_magic, e.topic
    FROM enrollments e
    WHERE e.udid = ANY (p_udids) AND e.enabled AND e.push_token IS NOT NULL
      AND e.push_magic IS NOT NULL AND e.token_dead_at IS NULL
$$;

-- Records a batch of push answers. A 410 marks the token dead, unless it is no longer the
-- device's token or a TokenUpdate came after the time APNs gave.
CREATE OR REPLACE FUNCTION vouch_push_results(p_udids text[], p_tokens text[], p_results text[],
                                   p_apns_ids text[], p_reasons text[], p_dead_at timestamptz[])
RETURNS void LANGUAGE sql AS $$
    UPDATE enrollments e SET
        last_push_at = vouch_now(),
        last_push_result = r.result,
        last_push_apns_id = r.apns_id,
        last_push_reason = r.reason,
        token_dead_at = CASE WHEN r.result = 'unregistered'
                              AND e.push_token = decode(r.token, 'hex')
                              AND (e.token_updated_at IS NULL
                                   OR e.token_updated_at < coalesce(r.dead_at, vouch_now()))
                             THEN coalesce(r.dead_at, vouch_now()) ELSE e.token_dead_at END
    FROM unnest(p_udids, p_tokens, p_results, p_apns_ids, p_reasons, p_dead_at)
         AS r(udid, token, result, apns_id, reason, dead_at)
    WHERE e.udid = r.udid
$$;

-- Devices to push again: those whose last push failed transiently and that still have work
-- waiting, and those with commands queued more than a minute ago and not pushed since (the
-- instance that queued them died before its push went out). The second look is bounded to the
-- last ten minutes of the queue, so it costs what was queued lately, not the whole queue.
CREATE OR REPLACE FUNCTION vouch_push_retry_due(p_limit integer) RETURNS TABLE (udid text)
LANGUAGE sql STABLE AS $$
    (SELECT e.udid FROM enrollments e
     WHERE e.last_push_result = 'transient' AND e.last_push_at < vouch_now() - interval '30 seconds'
       AND e.enabled AND e.token_dead_at IS NULL
       AND EXISTS (SELECT 1 FROM command_queue q WHERE q.udid = e.udid)
     ORDER BY e.last_push_at LIMIT p_limit)
    UNION
    (SELECT DISTINCT q.udid FROM command_queue q JOIN enrollments e ON e.udid = q.udid
     WHERE q.queued_at >= vouch_now() - interval '10 minutes'
       AND q.queued_at < vouch_now() - interval '1 minute'
       AND e.enabled AND e.token_dead_at IS NULL AND e.push_token IS NOT NULL
       AND (e.last_push_at IS NULL OR e.last_push_at < q.queued_at)
     LIMIT p_limit)
$$;
