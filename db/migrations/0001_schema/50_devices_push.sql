-- The device object of interfaces.md.
CREATE FUNCTION vouch_device_object(d devices) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'udid', d.udid,
        'serial_number', d.serial_number,
        'model', d.model,
        'product_name', d.product_name,
        'os_version', d.os_version,
        'build_version', d.build_version,
        'enrolled', coalesce(e.enabled, false),
        'last_seen_at', vouch_time(d.last_seen_at),
        'push', json_build_object(
            'token_state', CASE WHEN e.push_token IS NULL OR NOT e.enabled THEN 'none'
                                WHEN e.token_dead_at IS NOT NULL THEN 'dead'
                                ELSE 'active' END,
            'last_push_at', vouch_time(e.last_push_at),
            'last_push_result', e.last_push_result),
        'attestation', json_build_object(
            'status', d.attestation_status,
            'freshness', CASE WHEN d.attestation_status IN ('verified', 'failed')
                              THEN a.freshness END,
            'reason', CASE WHEN d.attestation_status = 'failed' THEN a.reason END,
            'requested_at', vouch_time(coalesce(r.requested_at, a.requested_at)),
            'received_at', vouch_time(a.received_at),
            'generated_at', vouch_time(a.generated_at),
            'expires_at', vouch_time(a.expires_at),
            'next_due_at', vouch_time(d.attestation_due_at),
            'next_due_reason', d.attestation_due_reason,
            'properties', a.properties))
    FROM (SELECT 1) AS one
    LEFT JOIN enrollments e ON e.udid = d.udid
    LEFT JOIN attestations a ON a.id = d.attestation_id
    LEFT JOIN attestation_requests r ON r.udid = d.udid AND r.answered_at IS NULL
$$;

-- A page of device objects as a JSON array, ordered by udid, after the cursor, optionally only
-- those with one attestation status.
CREATE FUNCTION vouch_device_list(p_after text, p_limit integer, p_attestation text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_device_object(d) ORDER BY d.udid), '[]')::text
    FROM (SELECT * FROM devices
          WHERE udid > coalesce(p_after, '')
            AND (p_attestation IS NULL OR attestation_status = p_attestation)
          ORDER BY udid LIMIT p_limit) AS d
$$;

CREATE FUNCTION vouch_device_get(p_udid text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT vouch_device_object(d)::text FROM devices d WHERE d.udid = p_udid
$$;

-- Pending commands and recent results of a device, newest first, as a JSON array; NULL for an
-- unknown device.
CREATE FUNCTION vouch_device_commands(p_udid text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM devices WHERE udid = p_udid) THEN NULL
           ELSE coalesce((
        SELECT json_agg(json_build_object(
                   'command_uuid', x.command_uuid,
                   'request_type', x.request_type,
                   'status', x.status,
                   'queued_at', vouch_time(x.queued_at),
                   'result_at', vouch_time(x.result_at),
                   'not_now_count', x.not_now_count)
               ORDER BY coalesce(x.result_at, x.queued_at) DESC, x.command_uuid)
        FROM (
            (SELECT q.command_uuid, c.request_type,
                    CASE WHEN q.not_now_at IS NULL THEN 'queued' ELSE 'NotNow' END AS status,
                    q.queued_at, NULL::timestamptz AS result_at, q.not_now_count
             FROM command_queue q JOIN commands c ON c.command_uuid = q.command_uuid
             WHERE q.udid = p_udid ORDER BY q.id DESC LIMIT p_limit)
            UNION ALL
            (SELECT r.command_uuid, r.request_type, r.status, r.queued_at, r.result_at,
                    r.not_now_count
             FROM command_results r WHERE r.udid = p_udid ORDER BY r.result_at DESC
             LIMIT p_limit)) AS x), '[]')::text END
$$;

-- The attestation history of a device, newest first; NULL for an unknown device.
CREATE FUNCTION vouch_device_attestations(p_udid text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM devices WHERE udid = p_udid) THEN NULL
           ELSE coalesce((
        SELECT json_agg(json_build_object(
                   'command_uuid', a.command_uuid,
                   'request_reason', a.request_reason,
                   'requested_at', vouch_time(a.requested_at),
                   'received_at', vouch_time(a.received_at),
                   'status', a.status,
                   'freshness', a.freshness,
                   'reason', a.reason,
                   'device_status', a.device_status,
                   'generated_at', vouch_time(a.generated_at),
                   'expires_at', vouch_time(a.expires_at),
                   'properties', a.properties,
                   'leaf_sha256', encode(a.leaf_sha256, 'hex'),
                   'chain', (SELECT json_agg(translate(encode(c, 'base64'), E'\n', ''))
                             FROM unnest(a.chain) c))
               ORDER BY a.id DESC)
        FROM (SELECT * FROM attestations WHERE udid = p_udid ORDER BY id DESC LIMIT p_limit) a
    ), '[]')::text END
$$;

-- Figures for /metrics and /healthz. Estimates where exact counts would scan big tables.
CREATE FUNCTION vouch_stats(OUT queue_depth bigint, OUT devices bigint, OUT enrolled bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM command_queue),
           (SELECT count(*) FROM devices),
           (SELECT count(*) FROM enrollments WHERE enabled)
$$;

-- Deletes results older than the retention, commands nobody needs any more, events delivered (or
-- dead) longer ago than the retention, and nonces that can no longer come back (an answer is at most as old as the leaf's validity, about 91 days in the field:
-- keep twice that), in bounded batches so that pruning never holds long locks. Returns the rows
-- deleted.
-- Removes up to p_batch rows of each kind of history older than its retention: finished command
-- results, commands nobody waits for and events nobody still has to receive (p_retention);
-- attestations and answered attestation requests (p_attestation_retention), except what the
-- device object and the scheduler stand on: each device's current attestation and its newest
-- verified one.
CREATE FUNCTION vouch_prune(p_retention interval, p_batch integer,
                            p_attestation_retention interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    results_deleted bigint;
    commands_deleted bigint;
    requests_deleted bigint;
    events_deleted bigint;
    attestations_deleted bigint;
BEGIN
    DELETE FROM command_results WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM command_results WHERE result_at < vouch_now() - p_retention LIMIT p_batch));
    GET DIAGNOSTICS results_deleted = ROW_COUNT;
    DELETE FROM commands c WHERE c.command_uuid = ANY (ARRAY(
        SELECT c2.command_uuid FROM commands c2
        WHERE c2.created_at < vouch_now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM command_queue q WHERE q.command_uuid = c2.command_uuid)
        LIMIT p_batch));
    GET DIAGNOSTICS commands_deleted = ROW_COUNT;
    DELETE FROM attestation_requests WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM attestation_requests
        WHERE answered_at IS NOT NULL AND requested_at < vouch_now() - p_attestation_retention
        LIMIT p_batch));
    GET DIAGNOSTICS requests_deleted = ROW_COUNT;
    DELETE FROM attestations a WHERE a.id = ANY (ARRAY(
        SELECT a2.id FROM attestations a2
        WHERE a2.received_at < vouch_now() - p_attestation_retention
          AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.attestation_id = a2.id)
          AND (a2.status <> 'verified' OR EXISTS (
              SELECT 1 FROM attestations a3
              WHERE a3.udid = a2.udid AND a3.status = 'verified'
                AND (a3.generated_at, a3.id) > (a2.generated_at, a2.id)))
        LIMIT p_batch));
    GET DIAGNOSTICS attestations_deleted = ROW_COUNT;
    -- Events nobody still has to receive (delivered, dead, or no receiver) go after the retention.
    DELETE FROM events WHERE id = ANY (ARRAY(
        SELECT e.id FROM events e
        WHERE e.created_at < vouch_now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM event_deliveries d
                          WHERE d.event_id = e.id AND d.status = 'pending')
        LIMIT p_batch));
    GET DIAGNOSTICS events_deleted = ROW_COUNT;
    RETURN results_deleted + commands_deleted + requests_deleted + events_deleted
           + attestations_deleted;
END
$$;

-- Where to push: enabled enrollments with a live token, among p_udids.
CREATE FUNCTION vouch_push_targets(p_udids text[])
RETURNS TABLE (udid text, token bytea, push_magic text, topic text)
LANGUAGE sql STABLE AS $$
    SELECT e.udid, e.push_token, e.push_magic, e.topic
    FROM enrollments e
    WHERE e.udid = ANY (p_udids) AND e.enabled AND e.push_token IS NOT NULL
      AND e.push_magic IS NOT NULL AND e.token_dead_at IS NULL
$$;

-- Records a batch of push answers. A 410 marks the token dead, unless it is no longer the
-- device's token or a TokenUpdate came after the time APNs gave.
CREATE FUNCTION vouch_push_results(p_udids text[], p_tokens text[], p_results text[],
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
CREATE FUNCTION vouch_push_retry_due(p_limit integer) RETURNS TABLE (udid text)
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
