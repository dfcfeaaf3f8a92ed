-- ---- The attestation scheduler ----

-- vouchd's configuration becomes the policy (the last instance to start wins).
CREATE FUNCTION vouch_set_policy(p_max_age interval, p_min_interval interval,
                                 p_mean_interval interval, p_info_interval interval,
                                 p_rate_limit integer, p_retry_limit integer,
                                 p_retry_delay interval)
RETURNS void LANGUAGE sql AS $$
    UPDATE scheduler_policy SET max_age = p_max_age, min_interval = p_min_interval,
        mean_interval = p_mean_interval, info_interval = p_info_interval,
        rate_limit = p_rate_limit, retry_limit = p_retry_limit, retry_delay = p_retry_delay
$$;

-- Plans a device's next attestation request after whatever changed it; p_outcome is the verdict
-- of an answer just recorded ('verified', 'failed', 'unsupported', 'error') or NULL. The rules:
--  * nothing is planned while a request is out or the device is not enrolled;
--  * a failed or error answer is retried after retry_delay, doubling, retry_limit times;
--  * an OS change not yet covered is asked about at the earliest moment Apple's rule allows:
--    min_interval after the newest attestation Apple generated (its leaf's notBefore);
--  * otherwise at a random moment: min_interval after that attestation plus an exponential
--    (memoryless) delay, so the mean interval is mean_interval and a device cannot tell when it
--    will be checked; but no later than max_age after the attestation.
-- Only verified attestations give the generation time: a chain that failed proves nothing about
-- when it was made. A device that never produced one is planned from now.
CREATE FUNCTION vouch_plan_attestation(p_udid text, p_outcome text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p scheduler_policy;
    d devices;
    clock timestamptz := vouch_now();
    generated timestamptz;
    earliest timestamptz;
    deadline timestamptz;
    random_at timestamptz;
    due timestamptz;
    why text;
BEGIN
    SELECT * INTO p FROM scheduler_policy;
    SELECT * INTO d FROM devices WHERE udid = p_udid;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome IN ('failed', 'error') THEN
        d.attestation_retries := d.attestation_retries + 1;
    ELSIF p_outcome IS NOT NULL THEN
        d.attestation_retries := 0;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = p_udid AND e.enabled)
       OR EXISTS (SELECT 1 FROM attestation_requests r
                  WHERE r.udid = p_udid AND r.answered_at IS NULL) THEN
        due := NULL;
    ELSIF p_outcome IN ('failed', 'error') AND d.attestation_retries <= p.retry_limit THEN
        due := clock + p.retry_delay * (2 ^ (d.attestation_retries - 1));
        why := 'retry';
    ELSE
        IF d.attestation_retries > p.retry_limit THEN
            d.attestation_retries := 0;  -- given up: back to the normal plan
            d.os_change_pending := false;
        END IF;
        SELECT max(a.generated_at) INTO generated FROM attestations a
        WHERE a.udid = p_udid AND a.status = 'verified';
        earliest := greatest(clock, coalesce(generated + p.min_interval, clock));
        IF d.os_change_pending THEN
            due := earliest;
            why := 'os_change';
        ELSE
            earliest := greatest(earliest, coalesce(generated, clock) + p.min_interval);
            deadline := greatest(coalesce(generated, clock) + p.max_age, earliest);
            random_at := earliest + (p.mean_interval - p.min_interval) * -ln(1.0 - random());
            IF random_at < deadline THEN
                due := random_at;
                why := 'random';
            ELSE
                due := deadline;
                why := 'max_age';
            END IF;
        END IF;
    END IF;
    UPDATE devices SET attestation_due_at = due, attestation_due_reason = why,
        attestation_retries = d.attestation_retries, os_change_pending = d.os_change_pending
    WHERE udid = p_udid;
    IF due <= clock THEN
        PERFORM pg_notify('vouch_scheduler', '');
    END IF;
END
$$;

-- What a device says about its OS (Authenticate, any DeviceInformation answer). A change of
-- version or build from what was known is stored, emits device.os_changed and, unless p_covered
-- (the same answer carries a fresh attestation made on the new OS), leaves an OS change for the
-- scheduler to attest. Returns whether it changed; the caller plans.
CREATE FUNCTION vouch_observe_os(p_udid text, p_os_version text, p_build_version text,
                                 p_covered boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    d devices;
    changed boolean;
BEGIN
    IF p_os_version IS NULL AND p_build_version IS NULL THEN
        RETURN false;
    END IF;
    SELECT * INTO d FROM devices WHERE udid = p_udid;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    changed := (d.os_version IS NOT NULL AND p_os_version IS DISTINCT FROM d.os_version
                AND p_os_version IS NOT NULL)
            OR (d.build_version IS NOT NULL AND p_build_version IS DISTINCT FROM d.build_version
                AND p_build_version IS NOT NULL);
    -- Written only when it differs: most answers say what is known, and each UPDATE of a
    -- devices row is a new row version with new index entries.
    IF (p_os_version IS NOT NULL AND p_os_version IS DISTINCT FROM d.os_version)
       OR (p_build_version IS NOT NULL AND p_build_version IS DISTINCT FROM d.build_version) THEN
        UPDATE devices SET os_version = coalesce(p_os_version, os_version),
            build_version = coalesce(p_build_version, build_version), updated_at = vouch_now()
        WHERE udid = p_udid;
    END IF;
    IF NOT changed THEN
        RETURN false;  -- the same, or the first sighting
    END IF;
    UPDATE devices SET os_changed_at = vouch_now(), os_change_pending = NOT p_covered
    WHERE udid = p_udid;
    PERFORM vouch_emit_device('device.os_changed', p_udid, jsonb_build_object(
        'previous', jsonb_build_object('os_version', d.os_version,
                                       'build_version', d.build_version)));
    RETURN true;
END
$$;

-- One scheduler tick of one instance: claims the devices whose attestation is due (oldest first,
-- at most as many as vouchd built requests for and the fleet-wide budget of the last minute
-- allows) and those due for a light DeviceInformation query (at most p_info_limit), and queues
-- their commands. Rows locked elsewhere (a device in the middle of a request, another
-- instance's tick) are skipped, never waited for, so instances never claim a device twice; a
-- tick that dies rolls back and leaves its devices due. Returns the devices to push.
CREATE FUNCTION vouch_scheduler_tick(p_command_uuids text[], p_bodies bytea[], p_nonces bytea[],
                                     p_info_command_uuid text, p_info_body bytea,
                                     p_info_limit integer)
RETURNS TABLE (udid text, kind text, reason text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p scheduler_policy;
    clock timestamptz := vouch_now();
    budget integer;
    claimed text[];
    reasons text[];
    queued text[];
    info text[];
BEGIN
    -- The policy row is the fleet-wide budget: ticks take turns on it for their few milliseconds.
    SELECT * INTO p FROM scheduler_policy FOR UPDATE;
    SELECT least(coalesce(array_length(p_command_uuids, 1), 0), p.rate_limit - count(*))
    INTO budget FROM attestation_requests r
    WHERE r.requested_at > clock - interval '1 minute'
      AND r.reason IN ('os_change', 'random', 'max_age', 'retry');

    SELECT array_agg(c.udid ORDER BY c.attestation_due_at),
           array_agg(c.attestation_due_reason ORDER BY c.attestation_due_at)
    INTO claimed, reasons
    FROM (SELECT d.udid, d.attestation_due_at, d.attestation_due_reason FROM devices d
          WHERE d.attestation_due_at <= clock
          ORDER BY d.attestation_due_at LIMIT greatest(budget, 0)
          FOR UPDATE SKIP LOCKED) AS c;
    IF claimed IS NOT NULL THEN
        WITH pairs AS (
            SELECT c.udid, c.reason, p_command_uuids[c.i] AS command_uuid,
                   p_nonces[c.i] AS nonce, p_bodies[c.i] AS body
            FROM unnest(claimed, reasons) WITH ORDINALITY AS c(udid, reason, i)
            JOIN enrollments e ON e.udid = c.udid AND e.enabled),
        requested AS (
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at)
            SELECT x.command_uuid, x.udid, x.nonce, x.reason, clock FROM pairs x
            ON CONFLICT (udid) WHERE answered_at IS NULL DO NOTHING
            RETURNING attestation_requests.command_uuid, attestation_requests.udid),
        stored AS (
            INSERT INTO commands (command_uuid, request_type, body)
            SELECT x.command_uuid, 'DeviceInformation', x.body
            FROM pairs x JOIN requested q ON q.command_uuid = x.command_uuid),
        enqueued AS (
            INSERT INTO command_queue (udid, command_uuid, priority)
            SELECT q.udid, q.command_uuid, 1 FROM requested q
            RETURNING command_queue.udid)
        SELECT array_agg(x.udid) INTO queued FROM enqueued x;
        -- Claimed and asked: pending. Claimed but not asked (not enrolled any more, or a request
        -- already out): nothing planned until that changes.
        UPDATE devices d SET
            attestation_status = CASE WHEN q.udid IS NULL THEN d.attestation_status
                                      ELSE 'pending' END,
            attestation_due_at = NULL, attestation_due_reason = NULL,
            info_due_at = CASE WHEN q.udid IS NULL THEN d.info_due_at END
        FROM unnest(claimed) AS c(udid) LEFT JOIN unnest(queued) AS q(udid) ON q.udid = c.udid
        WHERE d.udid = c.udid;
        RETURN QUERY
            SELECT c.udid, 'attestation'::text, c.reason
            FROM unnest(claimed, reasons) AS c(udid, reason)
            JOIN unnest(queued) AS q(udid) ON q.udid = c.udid;
    END IF;

    WITH due AS (
        SELECT d.udid FROM devices d WHERE d.info_due_at <= clock
        ORDER BY d.info_due_at LIMIT greatest(p_info_limit, 0)
        FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE devices d SET info_due_at = NULL FROM due
        WHERE d.udid = due.udid RETURNING d.udid)
    SELECT array_agg(t.udid) INTO info FROM taken t
    WHERE EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = t.udid AND e.enabled);
    IF info IS NOT NULL AND p_info_command_uuid IS NOT NULL THEN
        INSERT INTO commands (command_uuid, request_type, body)
        VALUES (p_info_command_uuid, 'DeviceInformation', p_info_body);
        INSERT INTO command_queue (udid, command_uuid) SELECT i, p_info_command_uuid
        FROM unnest(info) AS i;
        RETURN QUERY SELECT i, 'info'::text, NULL::text FROM unnest(info) AS i;
    END IF;
END
$$;

-- What the scheduler has to do: how many attestation requests are due now (at most p_limit),
-- whether light queries are due now, when the next work falls due (seconds from now by the
-- database's clock; NULL: nothing planned), and how many requests the fleet-wide budget still
-- allows this minute.
CREATE FUNCTION vouch_scheduler_next(p_limit integer, OUT attest_due integer,
                                     OUT info_due boolean, OUT due_in double precision,
                                     OUT budget integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    clock timestamptz := vouch_now();  -- once: the due queries are index range scans
BEGIN
    SELECT count(*) INTO attest_due FROM (SELECT 1 FROM devices
                                           WHERE attestation_due_at <= clock LIMIT p_limit) x;
    info_due := EXISTS (SELECT 1 FROM devices WHERE info_due_at <= clock);
    due_in := extract(epoch FROM least((SELECT min(attestation_due_at) FROM devices),
                                       (SELECT min(info_due_at) FROM devices)) - clock);
    SELECT p.rate_limit - (SELECT count(*) FROM attestation_requests r
                           WHERE r.requested_at > clock - interval '1 minute'
                             AND r.reason IN ('os_change', 'random', 'max_age', 'retry'))
    INTO budget FROM scheduler_policy p;
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

-- The status the device falls back to when a request ends without a verdict.
CREATE FUNCTION vouch_posture_after(p_udid text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((SELECT a.status FROM devices d JOIN attestations a ON a.id = d.attestation_id
                     WHERE d.udid = p_udid), 'none');
END
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
    -- The answer also tells the OS version: no separate query is needed until it comes.
    UPDATE devices SET attestation_status = 'pending', attestation_due_at = NULL,
        attestation_due_reason = NULL, info_due_at = NULL
    WHERE udid = p_udid;
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
    UPDATE attestation_requests SET answered_at = vouch_now(), outcome = p_outcome
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
    PERFORM vouch_plan_attestation(p_udid, CASE WHEN p_outcome = 'error' THEN 'error' END);
END
$$;

