-- 0001: devices, enrollments, identity bindings, commands, the per-device queue and results.
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
    last_seen_at  timestamptz
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
    session_started_at   timestamptz
);

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

CREATE FUNCTION vouch_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Authenticate: the start of a (re-)enrollment. Returns 'ok', or 'cert_bound_elsewhere' when the
-- certificate already speaks for another device (nothing is written then).
CREATE FUNCTION vouch_authenticate(
    p_udid text, p_cert bytea, p_cert_subject text, p_cert_not_after timestamptz,
    p_topic text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    bound_udid text;
BEGIN
    -- The certificate first: the unique key decides between concurrent claims, and the
    -- deferred foreign key lets the device row follow.
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

    -- A new enrollment starts with an empty queue.
    DELETE FROM command_queue WHERE udid = p_udid;
    RETURN 'ok';
END
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

CREATE FUNCTION vouch_token_update(
    p_udid text, p_cert bytea, p_topic text, p_token bytea, p_push_magic text,
    p_unlock_token bytea, p_awaiting_configuration boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
BEGIN
    IF verdict <> 'ok' THEN
        RETURN verdict;
    END IF;
    UPDATE enrollments SET
        topic = p_topic,
        push_token = p_token,
        push_magic = p_push_magic,
        unlock_token = coalesce(p_unlock_token, unlock_token),
        awaiting_configuration = coalesce(p_awaiting_configuration, false),
        enabled = true,
        token_updated_at = now(),
        checked_out_at = NULL
    WHERE udid = p_udid;
    UPDATE devices SET last_seen_at = now() WHERE udid = p_udid;
    RETURN 'ok';
END
$$;

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

-- A command report: records the result (idempotent by CommandUUID), then picks the next command.
-- outcome is 'ok', 'unknown_device', 'identity_mismatch' or 'not_enrolled'; when 'ok' and a
-- command is due, command_uuid and body are set.
CREATE FUNCTION vouch_report(
    p_udid text, p_cert bytea, p_status text, p_command_uuid text, p_report bytea,
    OUT outcome text, OUT result_stored boolean, OUT next_command_uuid text, OUT next_body bytea)
LANGUAGE plpgsql AS $$
DECLARE
    is_enabled boolean;
    session_start timestamptz;
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

    IF p_status = 'Idle' THEN
        session_start := clock_timestamp();
        UPDATE enrollments SET session_started_at = session_start WHERE udid = p_udid;
    ELSIF p_status = 'NotNow' THEN
        UPDATE command_queue SET not_now_at = clock_timestamp(), not_now_count = not_now_count + 1
        WHERE udid = p_udid AND command_uuid = p_command_uuid;
    ELSE
        -- Acknowledged, Error, CommandFormatError: final. A repeated report finds the result
        -- already there and changes nothing.
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

-- The device object of interfaces.md. Attestation and push history arrive with later migrations,
-- which replace this function.
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
            'token_state', CASE WHEN e.enabled AND e.push_token IS NOT NULL THEN 'active'
                                ELSE 'none' END,
            'last_push_at', NULL,
            'last_push_result', NULL),
        'attestation', json_build_object(
            'status', 'none',
            'freshness', NULL,
            'reason', NULL,
            'requested_at', NULL,
            'received_at', NULL,
            'generated_at', NULL,
            'expires_at', NULL,
            'next_due_at', NULL,
            'properties', NULL))
    FROM (SELECT 1) AS one LEFT JOIN enrollments e ON e.udid = d.udid
$$;

-- A page of device objects as a JSON array, ordered by udid, after the cursor.
CREATE FUNCTION vouch_device_list(p_after text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_device_object(d) ORDER BY d.udid), '[]')::text
    FROM (SELECT * FROM devices WHERE udid > coalesce(p_after, '') ORDER BY udid
          LIMIT p_limit) AS d
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

-- Figures for /metrics and /healthz. Estimates where exact counts would scan big tables.
CREATE FUNCTION vouch_stats(OUT queue_depth bigint, OUT devices bigint, OUT enrolled bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM command_queue),
           (SELECT count(*) FROM devices),
           (SELECT count(*) FROM enrollments WHERE enabled)
$$;

-- Deletes results older than the retention and commands nobody needs any more, in bounded
-- batches so that pruning never holds long locks. Returns the rows deleted.
CREATE FUNCTION vouch_prune(p_retention interval, p_batch integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    results_deleted bigint;
    commands_deleted bigint;
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
    RETURN results_deleted + commands_deleted;
END
$$;
