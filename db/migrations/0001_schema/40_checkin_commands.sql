-- Authenticate: the start of a (re-)enrollment. Returns 'ok', or 'cert_bound_elsewhere' when the
-- certificate already speaks for another device (nothing is written then). The queue starts
-- empty again, so a pending attestation request could never be answered: it is cancelled.
CREATE FUNCTION vouch_authenticate(
    p_udid text, p_cert bytea, p_cert_subject text, p_cert_not_after timestamptz,
    p_topic text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text,
    p_raw bytea)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    bound_udid text;
    pending text;
BEGIN
    INSERT INTO identity_certs AS c (sha256, udid, subject, not_after)
    VALUES (p_cert, p_udid, p_cert_subject, p_cert_not_after)
    ON CONFLICT (sha256) DO UPDATE SET bound_at = vouch_now() WHERE c.udid = EXCLUDED.udid
    RETURNING udid INTO bound_udid;
    IF bound_udid IS NULL THEN
        RETURN 'cert_bound_elsewhere';
    END IF;
    PERFORM vouch_observe_os(p_udid, p_os_version, p_build_version, false);

    INSERT INTO devices AS d (udid, serial_number, model, model_name, product_name, os_version,
                              build_version, device_name, imei, meid, last_seen_at)
    VALUES (p_udid, p_serial_number, p_model, p_model_name, p_product_name, p_os_version,
            p_build_version, p_device_name, p_imei, p_meid, vouch_now())
    ON CONFLICT (udid) DO UPDATE SET
        serial_number = coalesce(EXCLUDED.serial_number, d.serial_number),
        model         = coalesce(EXCLUDED.model, d.model),
        model_name    = coalesce(EXCLUDED.model_name, d.model_name),
        product_name  = coalesce(EXCLUDED.product_name, d.product_name),
        os_version    = coalesce(EXCLUDED.os_version, d.os_version),
        build_version = coalesce(EXCLUDED.build_version, d.build_version),
        device_name   = coalesce(EXCLUDED.device_name, d.device_name),
        imei          = coalesce(EXCLUDED.imei, d.imei),
        meid          = coalesce(EXCLUDED.meid, d.meid),
        updated_at    = vouch_now(),
        last_seen_at  = vouch_now();

    INSERT INTO enrollments AS e (udid, topic, enabled, identity_cert_sha256, authenticated_at)
    VALUES (p_udid, p_topic, false, p_cert, vouch_now())
    ON CONFLICT (udid) DO UPDATE SET
        topic = EXCLUDED.topic,
        enabled = false,
        identity_cert_sha256 = EXCLUDED.identity_cert_sha256,
        authenticated_at = vouch_now(),
        session_started_at = NULL,
        token_update_tally = 0;

    DELETE FROM command_queue WHERE udid = p_udid;
    SELECT r.command_uuid INTO pending FROM attestation_requests r
    WHERE r.udid = p_udid AND r.answered_at IS NULL;
    IF FOUND THEN
        PERFORM vouch_end_attestation_request(p_udid, pending, 'canceled', NULL);
    END IF;
    -- Not enrolled until its TokenUpdate: nothing is planned.
    UPDATE devices SET attestation_due_at = NULL, attestation_due_reason = NULL,
        info_due_at = NULL
    WHERE udid = p_udid;
    PERFORM vouch_emit_mdm('mdm.Authenticate', p_udid, p_raw, NULL, NULL, NULL);
    RETURN 'ok';
END
$$;

-- TokenUpdate: stores the push token, PushMagic and topic, enables the enrollment and revives a
-- token APNs had declared dead. The first one of an enrollment also asks for an attestation with
-- the request vouchd prepared (p_attest_*): then the answer is 'ok_queued', and vouchd pushes.
CREATE FUNCTION vouch_token_update(
    p_udid text, p_cert bytea, p_topic text, p_token bytea, p_push_magic text,
    p_unlock_token bytea, p_awaiting_configuration boolean,
    p_attest_command_uuid text, p_attest_body bytea, p_attest_nonce bytea, p_raw bytea)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
    was_enabled boolean;
    queued text;
    tally integer;
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
        token_updated_at = vouch_now(),
        token_dead_at = NULL,
        checked_out_at = NULL,
        token_update_tally = token_update_tally + 1
    WHERE udid = p_udid
    RETURNING token_update_tally INTO tally;
    UPDATE devices SET last_seen_at = vouch_now() WHERE udid = p_udid;
    PERFORM vouch_emit_mdm('mdm.TokenUpdate', p_udid, p_raw, NULL, NULL, tally);
    IF NOT was_enabled THEN
        UPDATE devices SET info_due_at = vouch_now() + (SELECT info_interval FROM scheduler_policy)
        WHERE udid = p_udid;
        IF p_attest_command_uuid IS NOT NULL THEN
            SELECT r.outcome INTO queued
            FROM vouch_request_attestation(p_udid, p_attest_command_uuid, p_attest_body,
                                           p_attest_nonce, 'enrollment') r;
        END IF;
        IF queued = 'queued' THEN
            RETURN 'ok_queued';
        END IF;
        PERFORM vouch_plan_attestation(p_udid, NULL);
    END IF;
    RETURN 'ok';
END
$$;

-- CheckOut: the MDM profile was removed.
CREATE FUNCTION vouch_checkout(p_udid text, p_cert bytea, p_raw bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
BEGIN
    IF verdict <> 'ok' THEN
        RETURN verdict;
    END IF;
    UPDATE enrollments SET enabled = false, checked_out_at = vouch_now() WHERE udid = p_udid;
    UPDATE devices SET last_seen_at = vouch_now(), attestation_due_at = NULL,
        attestation_due_reason = NULL, info_due_at = NULL
    WHERE udid = p_udid;
    PERFORM vouch_emit_mdm('mdm.CheckOut', p_udid, p_raw, NULL, NULL, NULL);
    RETURN 'ok';
END
$$;

-- Stores the verdict vouchd computed for the answer to a pending request.
CREATE FUNCTION vouch_record_attestation(p_udid text, p_command_uuid text, p_verdict json)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
    new_id bigint;
    covered boolean;
BEGIN
    UPDATE attestation_requests SET answered_at = vouch_now(), outcome = 'answered'
    WHERE command_uuid = p_command_uuid AND udid = p_udid AND answered_at IS NULL
    RETURNING * INTO req;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at, status,
                              freshness, reason, chain, leaf_sha256, generated_at, expires_at,
                              properties)
    VALUES (p_udid, p_command_uuid, req.nonce, req.reason, req.requested_at,
            p_verdict->>'status', p_verdict->>'freshness', p_verdict->>'reason',
            ARRAY(SELECT decode(c, 'base64') FROM json_array_elements_text(p_verdict->'chain') c),
            decode(p_verdict->>'leaf_sha256', 'hex'),
            (p_verdict->>'generated_at')::timestamptz, (p_verdict->>'expires_at')::timestamptz,
            p_verdict->'properties')
    RETURNING id INTO new_id;
    -- An OS change is covered by an attestation made on the new OS (a fresh one), by a device
    -- that cannot attest, or by the answer to the request asked because of it.
    covered := (p_verdict->>'status' = 'verified' AND p_verdict->>'freshness' = 'fresh')
               OR p_verdict->>'status' = 'unsupported'
               OR (req.reason IN ('os_change', 'retry') AND p_verdict->>'status' <> 'failed');
    PERFORM vouch_observe_os(p_udid, p_verdict->'reported'->>'os_version',
                             p_verdict->'reported'->>'build_version', covered);
    UPDATE devices SET
        attestation_status = p_verdict->>'status',
        attestation_id = new_id,
        os_change_pending = os_change_pending AND NOT covered,
        info_due_at = vouch_now() + (SELECT info_interval FROM scheduler_policy),
        updated_at = vouch_now(),
        last_seen_at = vouch_now()  -- the device answered: vouch_report need not write it again
    WHERE udid = p_udid;
    PERFORM vouch_plan_attestation(p_udid, p_verdict->>'status');
    IF p_verdict->>'status' IN ('verified', 'failed') THEN
        -- The attestations table is their history: an event only for a receiver that wants it.
        IF vouch_wants('attestation.' || (p_verdict->>'status')) THEN
            PERFORM vouch_emit_device('attestation.' || (p_verdict->>'status'), p_udid, NULL);
        END IF;
    END IF;
END
$$;

-- A command report: records the result (idempotent by CommandUUID), then picks the next command
-- (a NotNow'd one waits for the device's next Idle). outcome is 'ok', 'unknown_device',
-- 'identity_mismatch' or 'not_enrolled'. When the report answers a pending attestation request
-- and no verdict is given, nothing is written: the outcome is 'attestation_context' with what
-- vouchd needs to verify the answer (this request's nonce, the device's older nonces as 32-byte
-- slices, the enrolled serial and OS version), and vouchd calls again with p_verdict.
CREATE FUNCTION vouch_report(
    p_udid text, p_cert bytea, p_status text, p_command_uuid text, p_report bytea,
    p_verdict json, p_os_version text, p_build_version text,
    OUT outcome text, OUT result_stored boolean, OUT next_command_uuid text, OUT next_body bytea,
    OUT request_nonce bytea, OUT older_nonces bytea, OUT enrolled_serial text,
    OUT enrolled_os_version text, OUT clock double precision)
LANGUAGE plpgsql AS $$
DECLARE
    is_enabled boolean;
    session_start timestamptz;
    answered_type text;
BEGIN
    result_stored := false;
    -- The answer to a pending attestation request, before its verdict: vouchd only needs what
    -- to verify it against. Read without locking anything, so this transaction writes nothing
    -- (no WAL flush at commit); the call with the verdict checks everything again under lock.
    IF p_status = 'Acknowledged' AND p_verdict IS NULL THEN
        SELECT r.nonce INTO request_nonce FROM attestation_requests r
        JOIN enrollments e ON e.udid = r.udid
        WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid AND r.answered_at IS NULL
          AND e.identity_cert_sha256 = p_cert AND e.enabled;
        IF FOUND THEN
            outcome := 'attestation_context';
            SELECT string_agg(r.nonce, ''::bytea ORDER BY r.requested_at DESC) INTO older_nonces
            FROM attestation_requests r
            WHERE r.udid = p_udid AND r.command_uuid <> p_command_uuid
              AND length(r.nonce) = 32;
            SELECT d.serial_number, d.os_version INTO enrolled_serial, enrolled_os_version
            FROM devices d WHERE d.udid = p_udid;
            clock := extract(epoch FROM vouch_now());  -- verify at the server's clock
            RETURN;
        END IF;
    END IF;

    outcome := vouch_check_identity(p_udid, p_cert);
    IF outcome <> 'ok' THEN
        RETURN;
    END IF;
    SELECT enabled, session_started_at INTO is_enabled, session_start
    FROM enrollments WHERE udid = p_udid;
    IF NOT is_enabled THEN
        outcome := 'not_enrolled';
        RETURN;
    END IF;

    IF p_status = 'Idle' THEN
        session_start := clock_timestamp();
        UPDATE enrollments SET session_started_at = session_start WHERE udid = p_udid;
    ELSIF p_status = 'NotNow' THEN
        UPDATE command_queue SET not_now_at = clock_timestamp(), not_now_count = not_now_count + 1
        WHERE udid = p_udid AND command_uuid = p_command_uuid;
    ELSE
        INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                     queued_at, not_now_count)
        SELECT p_udid, p_command_uuid, c.request_type, p_status, p_report, q.queued_at,
               coalesce(q.not_now_count, 0)
        FROM (SELECT 1) AS one
        LEFT JOIN command_queue q ON q.udid = p_udid AND q.command_uuid = p_command_uuid
        LEFT JOIN commands c ON c.command_uuid = p_command_uuid
        ON CONFLICT (udid, command_uuid) DO NOTHING
        RETURNING request_type INTO answered_type;
        result_stored := FOUND;
        DELETE FROM command_queue WHERE udid = p_udid AND command_uuid = p_command_uuid;
        IF result_stored THEN
            IF p_status = 'Acknowledged' AND p_verdict IS NOT NULL THEN
                PERFORM vouch_record_attestation(p_udid, p_command_uuid, p_verdict);
            ELSIF p_status <> 'Acknowledged' THEN
                PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error', p_status);
            END IF;
            IF answered_type = 'DeviceInformation' AND p_verdict IS NULL THEN
                -- A light query's answer (or any other DeviceInformation): what the OS is now,
                -- and the next query a day later, unless an attestation request is out.
                IF vouch_observe_os(p_udid, p_os_version, p_build_version, false) THEN
                    PERFORM vouch_plan_attestation(p_udid, NULL);
                END IF;
                UPDATE devices d SET info_due_at = vouch_now()
                    + (SELECT info_interval FROM scheduler_policy)
                WHERE d.udid = p_udid AND NOT EXISTS (
                    SELECT 1 FROM attestation_requests r
                    WHERE r.udid = p_udid AND r.answered_at IS NULL);
            END IF;
        END IF;
    END IF;

    UPDATE devices SET last_seen_at = vouch_now()
    WHERE udid = p_udid AND last_seen_at IS DISTINCT FROM vouch_now();  -- once per transaction
    PERFORM vouch_emit_mdm('mdm.Connect', p_udid, p_report, p_status, p_command_uuid, NULL);

    SELECT q.command_uuid, c.body INTO next_command_uuid, next_body
    FROM command_queue q JOIN commands c ON c.command_uuid = q.command_uuid
    WHERE q.udid = p_udid
      AND (q.not_now_at IS NULL OR session_start IS NULL OR q.not_now_at < session_start)
    ORDER BY q.priority DESC, q.id
    LIMIT 1;
END
$$;

-- Queues one command for many devices. Returns one row per requested id: whether it was queued
-- (false: no enrollment). The command is stored only if at least one device takes it.
CREATE FUNCTION vouch_enqueue(p_command_uuid text, p_request_type text, p_body bytea,
                              p_udids text[])
RETURNS TABLE (udid text, queued boolean) LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = ANY (p_udids)) THEN
        INSERT INTO commands (command_uuid, request_type, body)
        VALUES (p_command_uuid, p_request_type, p_body);
        INSERT INTO command_queue (udid, command_uuid)
        SELECT DISTINCT e.udid, p_command_uuid FROM enrollments e WHERE e.udid = ANY (p_udids);
    END IF;
    RETURN QUERY
        SELECT u.id, EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = u.id)
        FROM unnest(p_udids) WITH ORDINALITY AS u(id, n) ORDER BY u.n;
END
$$;

