-- 0001: devices, enrollments (with their push state), identity bindings, commands, the per-device
-- queue and results, and Managed Device Attestation: the nonces asked, every answer with its
-- verdict, and each device's posture.
--
-- The MDM state changes of one device request happen in one server-side function call, so each
-- request is one round trip and one transaction: a report answered 200 is committed with the
-- command handed back in the same reply.

CREATE TABLE devices (
    udid          text PRIMARY KEY,
    serial_number text,
    model         text,
    model_name    text,
    product_name  text,
    os_version    text,
    build_version text,
    device_name   text,
    imei          text,
    meid          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz,
    -- The posture: the newest verdict (errors excluded), or pending while a request is out.
    attestation_status text NOT NULL DEFAULT 'none'
        CHECK (attestation_status IN ('none', 'pending', 'verified', 'failed', 'unsupported')),
    attestation_id bigint  -- REFERENCES attestations, added below
);

-- One enrollment (the device channel) per device.
CREATE TABLE enrollments (
    udid                 text PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    topic                text NOT NULL,
    push_token           bytea,
    push_magic           text,
    unlock_token         bytea,
    awaiting_configuration boolean NOT NULL DEFAULT false,
    enabled              boolean NOT NULL DEFAULT false,
    identity_cert_sha256 bytea NOT NULL CHECK (length(identity_cert_sha256) = 32),
    authenticated_at     timestamptz NOT NULL,
    token_updated_at     timestamptz,
    checked_out_at       timestamptz,
    -- When the device's current session began (its last Idle): a command it answered NotNow
    -- after this instant is not handed back until the next session.
    session_started_at   timestamptz,
    last_push_at         timestamptz,
    last_push_result     text,  -- delivered, unregistered, rejected, forbidden, transient
    last_push_apns_id    text,
    last_push_reason     text,
    -- APNs said 410 Unregistered as of this time: no pushes until a newer TokenUpdate.
    token_dead_at        timestamptz
);
CREATE INDEX enrollments_push_retry ON enrollments (last_push_at)
    WHERE last_push_result = 'transient';

-- Every identity certificate ever bound, so that a certificate bound to one device can never
-- speak for another, even after its device re-enrolled with a new one.
CREATE TABLE identity_certs (
    sha256    bytea PRIMARY KEY CHECK (length(sha256) = 32),
    udid      text NOT NULL REFERENCES devices ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    subject   text,
    not_after timestamptz,
    bound_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identity_certs_udid ON identity_certs (udid);

-- A command is stored once, however many devices it targets.
CREATE TABLE commands (
    command_uuid text PRIMARY KEY,
    request_type text NOT NULL,
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Pending work only: an entry leaves the queue when its result arrives, so the queue stays as
-- large as the work still to do.
CREATE TABLE command_queue (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    udid          text NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    command_uuid  text NOT NULL REFERENCES commands ON DELETE CASCADE,
    priority      smallint NOT NULL DEFAULT 0,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    not_now_at    timestamptz,
    not_now_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (udid, command_uuid)
);
CREATE INDEX command_queue_next ON command_queue (udid, priority DESC, id);
CREATE INDEX command_queue_command ON command_queue (command_uuid);

-- Finished commands, one row per device and command; pruned after result_retention.
CREATE TABLE command_results (
    udid          text NOT NULL REFERENCES devices ON DELETE CASCADE,
    command_uuid  text NOT NULL,
    request_type  text,
    status        text NOT NULL
                  CHECK (status IN ('Acknowledged', 'Error', 'CommandFormatError')),
    report        bytea NOT NULL,
    queued_at     timestamptz,
    result_at     timestamptz NOT NULL DEFAULT now(),
    not_now_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (udid, command_uuid)
);
CREATE INDEX command_results_age ON command_results (result_at);

-- One row per DeviceInformation command that asked for an attestation. The nonce is kept so a
-- later answer can be classified fresh (this request's nonce) or cached (an older one).
CREATE TABLE attestation_requests (
    command_uuid text PRIMARY KEY,
    udid         text NOT NULL REFERENCES devices ON DELETE CASCADE,
    nonce        bytea NOT NULL UNIQUE CHECK (length(nonce) BETWEEN 1 AND 32),
    reason       text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    answered_at  timestamptz,
    outcome      text CHECK (outcome IN ('answered', 'error', 'canceled'))
);
-- At most one pending request per device.
CREATE UNIQUE INDEX attestation_requests_pending ON attestation_requests (udid)
    WHERE answered_at IS NULL;
CREATE INDEX attestation_requests_device ON attestation_requests (udid, requested_at);

-- Every answer, kept as history.
CREATE TABLE attestations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    udid           text NOT NULL REFERENCES devices ON DELETE CASCADE,
    command_uuid   text NOT NULL,
    nonce          bytea,
    request_reason text,
    requested_at   timestamptz,
    received_at    timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL CHECK (status IN ('verified', 'failed', 'unsupported', 'error')),
    freshness      text CHECK (freshness IN ('fresh', 'cached', 'unknown')),
    reason         text,
    device_status  text NOT NULL DEFAULT 'Acknowledged',  -- the answer's Status
    chain          bytea[],
    leaf_sha256    bytea,
    generated_at   timestamptz,
    expires_at     timestamptz,
    properties     json
);
CREATE INDEX attestations_device ON attestations (udid, id DESC);

ALTER TABLE devices
    ADD FOREIGN KEY (attestation_id) REFERENCES attestations ON DELETE SET NULL;
CREATE INDEX devices_attestation_status ON devices (attestation_status, udid);

CREATE FUNCTION vouch_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- The identity check every later request of a device passes: returns 'ok', 'unknown_device' or
-- 'identity_mismatch', and locks the enrollment row for the rest of the transaction.
CREATE FUNCTION vouch_check_identity(p_udid text, p_cert bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    bound bytea;
BEGIN
    SELECT identity_cert_sha256 INTO bound FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'unknown_device';
    END IF;
    IF bound <> p_cert THEN
        RETURN 'identity_mismatch';
    END IF;
    RETURN 'ok';
END
$$;

-- The status the device falls back to when a request ends without a verdict.
CREATE FUNCTION vouch_posture_after(p_udid text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT a.status FROM devices d JOIN attestations a ON a.id = d.attestation_id
                     WHERE d.udid = p_udid), 'none')
$$;

-- Asks a device for an attestation: queues the DeviceInformation command the server built
-- (p_body, carrying p_nonce) unless a request is already pending. outcome is 'queued',
-- 'pending' (command_uuid is then the pending one) or 'unknown_device'.
CREATE FUNCTION vouch_request_attestation(
    p_udid text, p_command_uuid text, p_body bytea, p_nonce bytea, p_reason text,
    OUT outcome text, OUT command_uuid text)
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = p_udid) THEN
        outcome := 'unknown_device';
        RETURN;
    END IF;
    INSERT INTO attestation_requests (command_uuid, udid, nonce, reason)
    VALUES (p_command_uuid, p_udid, p_nonce, p_reason)
    ON CONFLICT (udid) WHERE answered_at IS NULL DO NOTHING;
    IF NOT FOUND THEN
        outcome := 'pending';
        SELECT r.command_uuid INTO command_uuid FROM attestation_requests r
        WHERE r.udid = p_udid AND r.answered_at IS NULL;
        RETURN;
    END IF;
    INSERT INTO commands (command_uuid, request_type, body)
    VALUES (p_command_uuid, 'DeviceInformation', p_body);
    INSERT INTO command_queue (udid, command_uuid, priority) VALUES (p_udid, p_command_uuid, 1);
    UPDATE devices SET attestation_status = 'pending' WHERE udid = p_udid;
    outcome := 'queued';
    command_uuid := p_command_uuid;
END
$$;

-- The same for many devices, one request each (vouchd builds them): one row per device.
CREATE FUNCTION vouch_request_attestations(
    p_udids text[], p_command_uuids text[], p_bodies bytea[], p_nonces bytea[], p_reason text)
RETURNS TABLE (udid text, outcome text, command_uuid text) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_udids, 1), 0) LOOP
        udid := p_udids[i];
        SELECT r.outcome, r.command_uuid INTO outcome, command_uuid
        FROM vouch_request_attestation(p_udids[i], p_command_uuids[i], p_bodies[i], p_nonces[i],
                                       p_reason) r;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Ends a pending request without a verdict (error answer, or re-enrollment).
CREATE FUNCTION vouch_end_attestation_request(p_udid text, p_command_uuid text, p_outcome text,
                                              p_error text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
BEGIN
    UPDATE attestation_requests SET answered_at = now(), outcome = p_outcome
    WHERE attestation_requests.command_uuid = p_command_uuid AND udid = p_udid
      AND answered_at IS NULL
    RETURNING * INTO req;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome = 'error' THEN
        INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at, status,
                                  device_status)
        VALUES (p_udid, p_command_uuid, req.nonce, req.reason, req.requested_at, 'error', p_error);
    END IF;
    UPDATE devices SET attestation_status = vouch_posture_after(p_udid) WHERE udid = p_udid;
END
$$;

-- Authenticate: the start of a (re-)enrollment. Returns 'ok', or 'cert_bound_elsewhere' when the
-- certificate already speaks for another device (nothing is written then). The queue starts
-- empty again, so a pending attestation request could never be answered: it is cancelled.
CREATE FUNCTION vouch_authenticate(
    p_udid text, p_cert bytea, p_cert_subject text, p_cert_not_after timestamptz,
    p_topic text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    bound_udid text;
    pending text;
BEGIN
    INSERT INTO identity_certs AS c (sha256, udid, subject, not_after)
    VALUES (p_cert, p_udid, p_cert_subject, p_cert_not_after)
    ON CONFLICT (sha256) DO UPDATE SET bound_at = now() WHERE c.udid = EXCLUDED.udid
    RETURNING udid INTO bound_udid;
    IF bound_udid IS NULL THEN
        RETURN 'cert_bound_elsewhere';
    END IF;

    INSERT INTO devices AS d (udid, serial_number, model, model_name, product_name, os_version,
                              build_version, device_name, imei, meid, last_seen_at)
    VALUES (p_udid, p_serial_number, p_model, p_model_name, p_product_name, p_os_version,
            p_build_version, p_device_name, p_imei, p_meid, now())
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
        updated_at    = now(),
        last_seen_at  = now();

    INSERT INTO enrollments AS e (udid, topic, enabled, identity_cert_sha256, authenticated_at)
    VALUES (p_udid, p_topic, false, p_cert, now())
    ON CONFLICT (udid) DO UPDATE SET
        topic = EXCLUDED.topic,
        enabled = false,
        identity_cert_sha256 = EXCLUDED.identity_cert_sha256,
        authenticated_at = now(),
        session_started_at = NULL;

    DELETE FROM command_queue WHERE udid = p_udid;
    SELECT r.command_uuid INTO pending FROM attestation_requests r
    WHERE r.udid = p_udid AND r.answered_at IS NULL;
    IF FOUND THEN
        PERFORM vouch_end_attestation_request(p_udid, pending, 'canceled', NULL);
    END IF;
    RETURN 'ok';
END
$$;

-- TokenUpdate: stores the push token, PushMagic and topic, enables the enrollment and revives a
-- token APNs had declared dead. The first one of an enrollment also asks for an attestation with
-- the request vouchd prepared (p_attest_*): then the answer is 'ok_queued', and vouchd pushes.
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

-- CheckOut: the MDM profile was removed.
CREATE FUNCTION vouch_checkout(p_udid text, p_cert bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
BEGIN
    IF verdict <> 'ok' THEN
        RETURN verdict;
    END IF;
    UPDATE enrollments SET enabled = false, checked_out_at = now() WHERE udid = p_udid;
    UPDATE devices SET last_seen_at = now() WHERE udid = p_udid;
    RETURN 'ok';
END
$$;

-- Stores the verdict vouchd computed for the answer to a pending request.
CREATE FUNCTION vouch_record_attestation(p_udid text, p_command_uuid text, p_verdict json)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
    new_id bigint;
BEGIN
    UPDATE attestation_requests SET answered_at = now(), outcome = 'answered'
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
    UPDATE devices SET
        attestation_status = p_verdict->>'status',
        attestation_id = new_id,
        os_version = coalesce(p_verdict->'reported'->>'os_version', os_version),
        build_version = coalesce(p_verdict->'reported'->>'build_version', build_version),
        updated_at = now()
    WHERE udid = p_udid;
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
    p_verdict json,
    OUT outcome text, OUT result_stored boolean, OUT next_command_uuid text, OUT next_body bytea,
    OUT request_nonce bytea, OUT older_nonces bytea, OUT enrolled_serial text,
    OUT enrolled_os_version text)
LANGUAGE plpgsql AS $$
DECLARE
    is_enabled boolean;
    session_start timestamptz;
    pending_request boolean;
BEGIN
    result_stored := false;
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

    IF p_status = 'Acknowledged' AND p_verdict IS NULL THEN
        SELECT r.nonce INTO request_nonce FROM attestation_requests r
        WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid AND r.answered_at IS NULL;
        IF FOUND THEN
            outcome := 'attestation_context';
            SELECT string_agg(r.nonce, ''::bytea ORDER BY r.requested_at DESC) INTO older_nonces
            FROM attestation_requests r
            WHERE r.udid = p_udid AND r.command_uuid <> p_command_uuid
              AND length(r.nonce) = 32;
            SELECT d.serial_number, d.os_version INTO enrolled_serial, enrolled_os_version
            FROM devices d WHERE d.udid = p_udid;
            RETURN;
        END IF;
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
        ON CONFLICT (udid, command_uuid) DO NOTHING;
        result_stored := FOUND;
        DELETE FROM command_queue WHERE udid = p_udid AND command_uuid = p_command_uuid;
        IF result_stored THEN
            IF p_status = 'Acknowledged' AND p_verdict IS NOT NULL THEN
                PERFORM vouch_record_attestation(p_udid, p_command_uuid, p_verdict);
            ELSIF p_status <> 'Acknowledged' THEN
                PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error', p_status);
            END IF;
        END IF;
    END IF;

    UPDATE devices SET last_seen_at = now() WHERE udid = p_udid;

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
            'next_due_at', NULL,
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

-- Deletes results older than the retention, commands nobody needs any more, and nonces that can no
-- longer come back (an answer is at most as old as the leaf's validity, about 91 days in the field:
-- keep twice that), in bounded batches so that pruning never holds long locks. Returns the rows
-- deleted.
CREATE FUNCTION vouch_prune(p_retention interval, p_batch integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    results_deleted bigint;
    commands_deleted bigint;
    requests_deleted bigint;
BEGIN
    DELETE FROM command_results WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM command_results WHERE result_at < now() - p_retention LIMIT p_batch));
    GET DIAGNOSTICS results_deleted = ROW_COUNT;
    DELETE FROM commands c WHERE c.command_uuid = ANY (ARRAY(
        SELECT c2.command_uuid FROM commands c2
        WHERE c2.created_at < now() - p_retention
          AND NOT EXISTS (SELECT 1 FROM command_queue q WHERE q.command_uuid = c2.command_uuid)
        LIMIT p_batch));
    GET DIAGNOSTICS commands_deleted = ROW_COUNT;
    DELETE FROM attestation_requests WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM attestation_requests
        WHERE answered_at IS NOT NULL AND requested_at < now() - interval '180 days'
        LIMIT p_batch));
    GET DIAGNOSTICS requests_deleted = ROW_COUNT;
    RETURN results_deleted + commands_deleted + requests_deleted;
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
