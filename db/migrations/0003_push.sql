-- 0003: APNs push state per enrollment: the last push and its answer, and dead tokens.

ALTER TABLE enrollments
    ADD COLUMN last_push_at timestamptz,
    ADD COLUMN last_push_result text,  -- delivered, unregistered, rejected, forbidden, transient
    ADD COLUMN last_push_apns_id text,
    ADD COLUMN last_push_reason text,
    -- APNs said 410 Unregistered as of this time: no pushes until a newer TokenUpdate.
    ADD COLUMN token_dead_at timestamptz;
CREATE INDEX enrollments_push_retry ON enrollments (last_push_at)
    WHERE last_push_result = 'transient';

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
        last_push_at = now(),
        last_push_result = r.result,
        last_push_apns_id = r.apns_id,
        last_push_reason = r.reason,
        token_dead_at = CASE WHEN r.result = 'unregistered'
                              AND e.push_token = decode(r.token, 'hex')
                              AND (e.token_updated_at IS NULL
                                   OR e.token_updated_at < coalesce(r.dead_at, now()))
                             THEN coalesce(r.dead_at, now()) ELSE e.token_dead_at END
    FROM unnest(p_udids, p_tokens, p_results, p_apns_ids, p_reasons, p_dead_at)
         AS r(udid, token, result, apns_id, reason, dead_at)
    WHERE e.udid = r.udid
$$;

-- Devices whose last push failed transiently and that still have work waiting.
CREATE FUNCTION vouch_push_retry_due(p_limit integer) RETURNS TABLE (udid text)
LANGUAGE sql STABLE AS $$
    SELECT e.udid FROM enrollments e
    WHERE e.last_push_result = 'transient' AND e.last_push_at < now() - interval '30 seconds'
      AND e.enabled AND e.token_dead_at IS NULL
      AND EXISTS (SELECT 1 FROM command_queue q WHERE q.udid = e.udid)
    ORDER BY e.last_push_at LIMIT p_limit
$$;

-- A TokenUpdate revives a dead token; the answer says whether an attestation was queued, so
-- vouchd pushes the device.
DROP FUNCTION vouch_token_update(text, bytea, text, bytea, text, bytea, boolean, text, bytea, bytea);
CREATE FUNCTION vouch_token_update(
    p_udid text, p_cert bytea, p_topic text, p_token bytea, p_push_magic text,
    p_unlock_token bytea, p_awaiting_configuration boolean,
    p_attest_command_uuid text, p_attest_body bytea, p_attest_nonce bytea)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
    was_enabled boolean;
    queued text;
BEGIN
    IF verdict <> 'ok' THEN
        RETURN verdict;
    END IF;
    SELECT enabled INTO was_enabled FROM enrollments WHERE udid = p_udid;
    UPDATE enrollments SET
        topic = p_topic,
        push_token = p_token,
        push_magic = p_push_magic,
        unlock_token = coalesce(p_unlock_token, unlock_token),
        awaiting_configuration = coalesce(p_awaiting_configuration, false),
        enabled = true,
        token_updated_at = now(),
        token_dead_at = NULL,
        checked_out_at = NULL
    WHERE udid = p_udid;
    UPDATE devices SET last_seen_at = now() WHERE udid = p_udid;
    IF NOT was_enabled AND p_attest_command_uuid IS NOT NULL THEN
        SELECT r.outcome INTO queued
        FROM vouch_request_attestation(p_udid, p_attest_command_uuid, p_attest_body,
                                       p_attest_nonce, 'enrollment') r;
        IF queued = 'queued' THEN
            RETURN 'ok_queued';
        END IF;
    END IF;
    RETURN 'ok';
END
$$;

CREATE OR REPLACE FUNCTION vouch_device_object(d devices) RETURNS json
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
            'next_due_at', NULL,
            'properties', a.properties))
    FROM (SELECT 1) AS one
    LEFT JOIN enrollments e ON e.udid = d.udid
    LEFT JOIN attestations a ON a.id = d.attestation_id
    LEFT JOIN attestation_requests r ON r.udid = d.udid AND r.answered_at IS NULL
$$;
