-- 0002: a verdict that cannot be borrowed, outlived or opted out of.
--
--  * Enrollment generations: each binding of an identity certificate to a UDID is a generation.
--    Requests, nonces and verdicts belong to theirs; a new binding starts from no verdict and
--    emits device.reenrolled. With reenroll = refuse, a new certificate for an enrolled device
--    that has not checked out is refused until an operator allows one re-enrollment.
--  * Cached answers count only for a nonce of the same generation, and vouchd bounds their age
--    (server/attest.c); a cached answer never covers an OS change.
--  * The verdict and the request are two things: a pending request no longer hides the last
--    verdict (devices.attestation_status has no 'pending' any more).
--  * Silence fails: error answers and requests left unanswered for answer_timeout are retried,
--    then end in failed (no_answer), never in an older verdict.
--  * Verdicts expire: a verified verdict becomes 'expired' at the earlier of its leaf's notAfter
--    and max_age after Apple generated it (attestation.expired).
--  * The serial is bound: unknown at Authenticate, it is taken from the generation's first
--    verified attestation.

ALTER TABLE enrollments
    ADD COLUMN generation integer NOT NULL DEFAULT 1,
    -- An operator allowed the next new certificate in (reenroll = refuse).
    ADD COLUMN reenroll_allowed boolean NOT NULL DEFAULT false;
ALTER TABLE attestation_requests ADD COLUMN generation integer NOT NULL DEFAULT 1;
ALTER TABLE attestations
    ADD COLUMN generation integer NOT NULL DEFAULT 1,
    -- The older nonce a cached answer carried (the request's own is in nonce).
    ADD COLUMN cached_nonce bytea,
    -- What the verdict was checked against, beside the nonces: expected UDID and serial, the OS
    -- version compared, the time, whether a new attestation was required, and when a cached
    -- answer's nonce was asked (vouchctl verify --server checks it again).
    ADD COLUMN checked json;
ALTER TABLE scheduler_policy
    ADD COLUMN answer_timeout interval NOT NULL DEFAULT interval '24 hours'
        CHECK (answer_timeout > interval '0');

-- The posture is the last verdict; a pending request is shown beside it.
ALTER TABLE devices ADD COLUMN attestation_expires_at timestamptz;  -- of a verified verdict
UPDATE devices d SET attestation_status = coalesce(
    (SELECT a.status FROM attestations a WHERE a.id = d.attestation_id), 'none')
WHERE d.attestation_status = 'pending';
UPDATE devices d SET attestation_expires_at = least(a.expires_at, a.generated_at + p.max_age)
FROM attestations a, scheduler_policy p
WHERE a.id = d.attestation_id AND d.attestation_status = 'verified';
ALTER TABLE devices DROP CONSTRAINT devices_attestation_status_check;
ALTER TABLE devices ADD CONSTRAINT devices_attestation_status_check
    CHECK (attestation_status IN ('none', 'verified', 'failed', 'unsupported', 'expired'));
CREATE INDEX devices_verdict_expiry ON devices (attestation_expires_at)
    WHERE attestation_status = 'verified';
-- Requests left unanswered, oldest first, for the scheduler's time-outs.
CREATE INDEX attestation_requests_unanswered ON attestation_requests (requested_at)
    WHERE answered_at IS NULL;

DROP FUNCTION vouch_posture_after(text);

-- When a verified verdict stops counting: its leaf's notAfter, or max_age after Apple made it.
CREATE FUNCTION vouch_verdict_expiry(p_generated_at timestamptz, p_expires_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT least(p_expires_at, p_generated_at + (SELECT max_age FROM scheduler_policy))
$$;

-- A new verdict for the device: the attestation row it rests on becomes the posture.
CREATE FUNCTION vouch_set_verdict(p_udid text, p_attestation_id bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE devices d SET
        attestation_status = a.status,
        attestation_id = a.id,
        attestation_expires_at = CASE WHEN a.status = 'verified'
                                      THEN vouch_verdict_expiry(a.generated_at, a.expires_at) END,
        updated_at = vouch_now()
    FROM attestations a WHERE a.id = p_attestation_id AND d.udid = p_udid
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
-- Only verified attestations of the current generation give the generation time: a chain that
-- failed proves nothing about when it was made, and another enrollment's says nothing of this
-- one. A device that never produced one is planned from now.
CREATE OR REPLACE FUNCTION vouch_plan_attestation(p_udid text, p_outcome text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p scheduler_policy;
    d devices;
    gen integer;
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
    SELECT e.generation INTO gen FROM enrollments e WHERE e.udid = p_udid AND e.enabled;
    IF gen IS NULL
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
        WHERE a.udid = p_udid AND a.status = 'verified' AND a.generation = gen;
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

-- Asks a device for an attestation: queues the DeviceInformation command the server built
-- (p_body, carrying p_nonce) unless a request is already pending. outcome is 'queued',
-- 'pending' (command_uuid is then the pending one) or 'unknown_device'. The device keeps its
-- last verdict meanwhile: the request is shown beside it.
CREATE OR REPLACE FUNCTION vouch_request_attestation(
    p_udid text, p_command_uuid text, p_body bytea, p_nonce bytea, p_reason text,
    OUT outcome text, OUT command_uuid text)
LANGUAGE plpgsql AS $$
DECLARE
    gen integer;
BEGIN
    SELECT e.generation INTO gen FROM enrollments e WHERE e.udid = p_udid;
    IF NOT FOUND THEN
        outcome := 'unknown_device';
        RETURN;
    END IF;
    INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, generation)
    VALUES (p_command_uuid, p_udid, p_nonce, p_reason, gen)
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
    UPDATE devices SET attestation_due_at = NULL, attestation_due_reason = NULL, info_due_at = NULL
    WHERE udid = p_udid;
    outcome := 'queued';
    command_uuid := p_command_uuid;
END
$$;

-- Ends a pending request without a verdict: an error answer (p_outcome 'error', p_error the
-- device's Status), no answer within answer_timeout ('error', 'NoAnswer': the command leaves the
-- queue, a retry asks again), or a re-enrollment ('canceled'). Errors are retried; past
-- retry_limit the device's verdict becomes failed (no_answer): silence never keeps an older one.
CREATE OR REPLACE FUNCTION vouch_end_attestation_request(p_udid text, p_command_uuid text,
                                                         p_outcome text, p_error text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
    new_id bigint;
    give_up boolean;
BEGIN
    UPDATE attestation_requests SET answered_at = vouch_now(), outcome = p_outcome
    WHERE attestation_requests.command_uuid = p_command_uuid AND udid = p_udid
      AND answered_at IS NULL
    RETURNING * INTO req;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome <> 'error' THEN
        PERFORM vouch_plan_attestation(p_udid, NULL);
        RETURN;
    END IF;
    IF p_error = 'NoAnswer' THEN
        DELETE FROM command_queue WHERE udid = p_udid AND command_uuid = p_command_uuid;
    END IF;
    -- The last error the retries allow is the verdict: failed (no_answer).
    give_up := (SELECT d.attestation_retries FROM devices d WHERE d.udid = p_udid)
               >= (SELECT retry_limit FROM scheduler_policy);
    INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at, status,
                              reason, device_status, generation)
    VALUES (p_udid, p_command_uuid, req.nonce, req.reason, req.requested_at,
            CASE WHEN give_up THEN 'failed' ELSE 'error' END,
            CASE WHEN give_up THEN 'no_answer' END, p_error, req.generation)
    RETURNING id INTO new_id;
    IF give_up THEN
        PERFORM vouch_set_verdict(p_udid, new_id);
        IF vouch_wants('attestation.failed') THEN
            PERFORM vouch_emit_device('attestation.failed', p_udid, NULL);
        END IF;
    END IF;
    PERFORM vouch_plan_attestation(p_udid, 'error');
END
$$;

-- Stores the verdict vouchd computed for the answer to a pending request. A verified answer
-- binds the serial when the enrollment did not state one.
CREATE OR REPLACE FUNCTION vouch_record_attestation(p_udid text, p_command_uuid text,
                                                    p_verdict json)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
    new_id bigint;
    covered boolean;
    verdict text := p_verdict->>'status';
BEGIN
    UPDATE attestation_requests SET answered_at = vouch_now(), outcome = 'answered'
    WHERE command_uuid = p_command_uuid AND udid = p_udid AND answered_at IS NULL
    RETURNING * INTO req;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at, status,
                              freshness, reason, chain, leaf_sha256, generated_at, expires_at,
                              properties, generation, cached_nonce, checked)
    VALUES (p_udid, p_command_uuid, req.nonce, req.reason, req.requested_at,
            verdict, p_verdict->>'freshness', p_verdict->>'reason',
            ARRAY(SELECT decode(c, 'base64') FROM json_array_elements_text(p_verdict->'chain') c),
            decode(p_verdict->>'leaf_sha256', 'hex'),
            (p_verdict->>'generated_at')::timestamptz, (p_verdict->>'expires_at')::timestamptz,
            p_verdict->'properties', req.generation, decode(p_verdict->>'cached_nonce', 'hex'),
            p_verdict->'checked')
    RETURNING id INTO new_id;
    -- An OS change is covered only by an attestation made on the new OS (a fresh one), or by a
    -- device that cannot attest. A cached answer may predate the change: it covers nothing.
    covered := (verdict = 'verified' AND p_verdict->>'freshness' = 'fresh')
               OR verdict = 'unsupported';
    -- The verdict first: a device.os_changed raised by this answer shows it.
    PERFORM vouch_set_verdict(p_udid, new_id);
    PERFORM vouch_observe_os(p_udid, p_verdict->'reported'->>'os_version',
                             p_verdict->'reported'->>'build_version', covered);
    UPDATE devices SET
        serial_number = CASE WHEN verdict = 'verified' AND serial_number IS NULL
                             THEN p_verdict->'properties'->>'serial_number'
                             ELSE serial_number END,
        os_change_pending = os_change_pending AND NOT covered,
        info_due_at = vouch_now() + (SELECT info_interval FROM scheduler_policy),
        last_seen_at = vouch_now()  -- the device answered: vouch_report need not write it again
    WHERE udid = p_udid;
    PERFORM vouch_plan_attestation(p_udid, verdict);
    IF verdict IN ('verified', 'failed') THEN
        -- The attestations table is their history: an event only for a receiver that wants it.
        IF vouch_wants('attestation.' || verdict) THEN
            PERFORM vouch_emit_device('attestation.' || verdict, p_udid, NULL);
        END IF;
    END IF;
END
$$;

-- Authenticate: the start of a (re-)enrollment. Returns 'ok', 'cert_bound_elsewhere' when the
-- certificate already speaks for another device, or 'reenroll_refused' (p_reenroll_refuse, a new
-- certificate for an enrolled device that has not checked out, no operator's allowance); nothing
-- is written then. A new certificate for a known UDID starts a new generation: no verdict, the
-- serial as this Authenticate states it, device.reenrolled. The queue starts empty again, so a
-- pending attestation request could never be answered: it is cancelled.
DROP FUNCTION vouch_authenticate(text, bytea, text, timestamptz, text, text, text, text, text,
                                 text, text, text, text, text, bytea);
CREATE FUNCTION vouch_authenticate(
    p_udid text, p_cert bytea, p_cert_subject text, p_cert_not_after timestamptz,
    p_topic text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text,
    p_raw bytea, p_reenroll_refuse boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    bound_udid text;
    pending text;
    e enrollments;
    new_binding boolean;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    new_binding := FOUND AND e.identity_cert_sha256 <> p_cert;
    IF new_binding AND p_reenroll_refuse AND e.enabled AND NOT e.reenroll_allowed THEN
        RETURN 'reenroll_refused';
    END IF;
    INSERT INTO identity_certs AS c (sha256, udid, subject, not_after)
    VALUES (p_cert, p_udid, p_cert_subject, p_cert_not_after)
    ON CONFLICT (sha256) DO UPDATE SET bound_at = vouch_now() WHERE c.udid = EXCLUDED.udid
    RETURNING udid INTO bound_udid;
    IF bound_udid IS NULL THEN
        RETURN 'cert_bound_elsewhere';
    END IF;
    IF new_binding THEN
        -- Nothing of the earlier generation speaks for this one: no verdict, no plan, no
        -- retries, no OS change to cover; the serial is what this Authenticate says.
        UPDATE devices SET attestation_status = 'none', attestation_id = NULL,
            attestation_expires_at = NULL, attestation_retries = 0, os_change_pending = false,
            serial_number = p_serial_number
        WHERE udid = p_udid;
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

    INSERT INTO enrollments AS x (udid, topic, enabled, identity_cert_sha256, authenticated_at)
    VALUES (p_udid, p_topic, false, p_cert, vouch_now())
    ON CONFLICT (udid) DO UPDATE SET
        topic = EXCLUDED.topic,
        enabled = false,
        identity_cert_sha256 = EXCLUDED.identity_cert_sha256,
        generation = x.generation + CASE WHEN new_binding THEN 1 ELSE 0 END,
        reenroll_allowed = x.reenroll_allowed AND NOT new_binding,
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
    IF new_binding THEN
        PERFORM vouch_emit_device('device.reenrolled', p_udid, jsonb_build_object(
            'previous_cert_sha256', encode(e.identity_cert_sha256, 'hex'),
            'cert_sha256', encode(p_cert, 'hex'),
            'generation', e.generation + 1));
    END IF;
    PERFORM vouch_emit_mdm('mdm.Authenticate', p_udid, p_raw, NULL, NULL, NULL);
    RETURN 'ok';
END
$$;

-- An operator lets the next new certificate of an enrolled device in (reenroll = refuse): the
-- admin API's answer, or NULL for an unknown device.
CREATE FUNCTION vouch_allow_reenroll(p_udid text) RETURNS text
LANGUAGE sql AS $$
    UPDATE enrollments SET reenroll_allowed = true WHERE udid = p_udid
    RETURNING '{"reenroll_allowed": true}'
$$;

-- A command report: records the result (idempotent by CommandUUID), then picks the next command
-- (a NotNow'd one waits for the device's next Idle). outcome is 'ok', 'unknown_device',
-- 'identity_mismatch' or 'not_enrolled'. When the report answers a pending attestation request
-- and no verdict is given, nothing is written: the outcome is 'attestation_context' with what
-- vouchd needs to verify the answer: this request's nonce; the older nonces of the same
-- generation as 32-byte slices, newest first, with the times they were asked (8-byte big-endian
-- Unix seconds each); the enrolled serial, OS version and product name; whether this generation
-- already had a verified answer; the server's clock; and why the request was asked (an
-- os_change request must be answered with a new attestation). vouchd calls again with p_verdict.
DROP FUNCTION vouch_report(text, bytea, text, text, bytea, json, text, text);
CREATE FUNCTION vouch_report(
    p_udid text, p_cert bytea, p_status text, p_command_uuid text, p_report bytea,
    p_verdict json, p_os_version text, p_build_version text,
    OUT outcome text, OUT result_stored boolean, OUT next_command_uuid text, OUT next_body bytea,
    OUT request_nonce bytea, OUT older_nonces bytea, OUT enrolled_serial text,
    OUT enrolled_os_version text, OUT clock double precision, OUT older_requested_at bytea,
    OUT generation_verified boolean, OUT product_name text, OUT request_reason text)
LANGUAGE plpgsql AS $$
DECLARE
    is_enabled boolean;
    session_start timestamptz;
    answered_type text;
    gen integer;
BEGIN
    result_stored := false;
    -- The answer to a pending attestation request, before its verdict: vouchd only needs what
    -- to verify it against. Read without locking anything, so this transaction writes nothing
    -- (no WAL flush at commit); the call with the verdict checks everything again under lock.
    IF p_status = 'Acknowledged' AND p_verdict IS NULL THEN
        SELECT r.nonce, r.generation, r.reason INTO request_nonce, gen, request_reason
        FROM attestation_requests r
        JOIN enrollments e ON e.udid = r.udid
        WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid AND r.answered_at IS NULL
          AND e.identity_cert_sha256 = p_cert AND e.enabled;
        IF FOUND THEN
            outcome := 'attestation_context';
            SELECT string_agg(r.nonce, ''::bytea ORDER BY r.requested_at DESC),
                   string_agg(int8send(floor(extract(epoch FROM r.requested_at))::bigint),
                              ''::bytea ORDER BY r.requested_at DESC)
            INTO older_nonces, older_requested_at
            FROM attestation_requests r
            WHERE r.udid = p_udid AND r.command_uuid <> p_command_uuid
              AND r.generation = gen AND length(r.nonce) = 32;
            SELECT d.serial_number, d.os_version, d.product_name
            INTO enrolled_serial, enrolled_os_version, product_name
            FROM devices d WHERE d.udid = p_udid;
            generation_verified := EXISTS (
                SELECT 1 FROM attestations a
                WHERE a.udid = p_udid AND a.generation = gen AND a.status = 'verified');
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

-- The housekeeping of a tick: requests unanswered for answer_timeout end as errors (retried,
-- then failed: no_answer), and verified verdicts past their expiry become 'expired'. Rows locked
-- elsewhere are skipped; the next tick takes them.
CREATE FUNCTION vouch_scheduler_housekeeping(p_limit integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    clock timestamptz := vouch_now();
    late record;
    expired text;
BEGIN
    FOR late IN
        SELECT r.udid, r.command_uuid FROM attestation_requests r
        JOIN devices d ON d.udid = r.udid
        WHERE r.answered_at IS NULL
          AND r.requested_at < clock - (SELECT answer_timeout FROM scheduler_policy)
        ORDER BY r.requested_at LIMIT p_limit
        FOR UPDATE OF d SKIP LOCKED
    LOOP
        PERFORM vouch_end_attestation_request(late.udid, late.command_uuid, 'error', 'NoAnswer');
    END LOOP;
    FOR expired IN
        WITH due AS (
            SELECT d.udid FROM devices d
            WHERE d.attestation_status = 'verified' AND d.attestation_expires_at <= clock
            ORDER BY d.attestation_expires_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED)
        UPDATE devices d SET attestation_status = 'expired', updated_at = clock
        FROM due WHERE d.udid = due.udid RETURNING d.udid
    LOOP
        IF vouch_wants('attestation.expired') THEN
            PERFORM vouch_emit_device('attestation.expired', expired, NULL);
        END IF;
    END LOOP;
END
$$;

-- One scheduler tick of one instance: its housekeeping, then claims the devices whose
-- attestation is due (oldest first, at most as many as vouchd built requests for and the
-- fleet-wide budget of the last minute allows) and those due for a light DeviceInformation query
-- (at most p_info_limit), and queues their commands. Rows locked elsewhere (a device in the
-- middle of a request, another instance's tick) are skipped, never waited for, so instances
-- never claim a device twice; a tick that dies rolls back and leaves its devices due. Returns
-- the devices to push.
CREATE OR REPLACE FUNCTION vouch_scheduler_tick(p_command_uuids text[], p_bodies bytea[],
                                                p_nonces bytea[], p_info_command_uuid text,
                                                p_info_body bytea, p_info_limit integer)
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
    PERFORM vouch_scheduler_housekeeping(greatest(p_info_limit, 1));
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
                   p_nonces[c.i] AS nonce, p_bodies[c.i] AS body, e.generation
            FROM unnest(claimed, reasons) WITH ORDINALITY AS c(udid, reason, i)
            JOIN enrollments e ON e.udid = c.udid AND e.enabled),
        requested AS (
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at,
                                              generation)
            SELECT x.command_uuid, x.udid, x.nonce, x.reason, clock, x.generation FROM pairs x
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
        -- Claimed but not asked (not enrolled any more, or a request already out): nothing
        -- planned until that changes. Asked: the light query waits for the answer.
        UPDATE devices d SET
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
-- whether other work is due now (light queries, requests past answer_timeout, verdicts past
-- their expiry), when the next work falls due (seconds from now by the database's clock; NULL:
-- nothing planned), and how many requests the fleet-wide budget still allows this minute.
DROP FUNCTION vouch_scheduler_next(integer);
CREATE FUNCTION vouch_scheduler_next(p_limit integer, OUT attest_due integer,
                                     OUT other_due boolean, OUT due_in double precision,
                                     OUT budget integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    clock timestamptz := vouch_now();  -- once: the due queries are index range scans
    other_at timestamptz;
BEGIN
    SELECT count(*) INTO attest_due FROM (SELECT 1 FROM devices
                                           WHERE attestation_due_at <= clock LIMIT p_limit) x;
    other_at := least(
        (SELECT min(info_due_at) FROM devices),
        (SELECT min(requested_at) FROM attestation_requests WHERE answered_at IS NULL)
            + (SELECT answer_timeout FROM scheduler_policy),
        (SELECT min(attestation_expires_at) FROM devices WHERE attestation_status = 'verified'));
    other_due := coalesce(other_at <= clock, false);
    due_in := extract(epoch FROM least((SELECT min(attestation_due_at) FROM devices), other_at)
                                 - clock);
    SELECT p.rate_limit - (SELECT count(*) FROM attestation_requests r
                           WHERE r.requested_at > clock - interval '1 minute'
                             AND r.reason IN ('os_change', 'random', 'max_age', 'retry'))
    INTO budget FROM scheduler_policy p;
END
$$;

-- The device object (docs/api.md). attestation is the last verdict, whatever is pending:
-- status (a verified verdict past its expiry reads 'expired' even before a tick marks it),
-- freshness, reason, verified_at, expires_at (when the verdict stops counting), the leaf's
-- times and properties, the plan, and request: the pending re-check, or null.
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
        'generation', e.generation,
        'last_seen_at', vouch_time(d.last_seen_at),
        'push', json_build_object(
            'token_state', CASE WHEN e.push_token IS NULL OR NOT e.enabled THEN 'none'
                                WHEN e.token_dead_at IS NOT NULL THEN 'dead'
                                ELSE 'active' END,
            'last_push_at', vouch_time(e.last_push_at),
            'last_push_result', e.last_push_result),
        'attestation', json_build_object(
            'status', CASE WHEN d.attestation_status = 'verified'
                                AND d.attestation_expires_at <= vouch_now() THEN 'expired'
                           ELSE d.attestation_status END,
            'freshness', CASE WHEN d.attestation_status IN ('verified', 'failed', 'expired')
                              THEN a.freshness END,
            'reason', CASE WHEN d.attestation_status = 'failed' THEN a.reason END,
            'verified_at', CASE WHEN d.attestation_status IN ('verified', 'expired')
                                THEN vouch_time(a.received_at) END,
            'expires_at', vouch_time(d.attestation_expires_at),
            'requested_at', vouch_time(a.requested_at),
            'received_at', vouch_time(a.received_at),
            'generated_at', vouch_time(a.generated_at),
            'leaf_expires_at', vouch_time(a.expires_at),
            'next_due_at', vouch_time(d.attestation_due_at),
            'next_due_reason', d.attestation_due_reason,
            'request', CASE WHEN r.command_uuid IS NOT NULL THEN json_build_object(
                'state', 'pending',
                'reason', r.reason,
                'requested_at', vouch_time(r.requested_at),
                'command_uuid', r.command_uuid) END,
            'properties', a.properties))
    FROM (SELECT 1) AS one
    LEFT JOIN enrollments e ON e.udid = d.udid
    LEFT JOIN attestations a ON a.id = d.attestation_id
    LEFT JOIN attestation_requests r ON r.udid = d.udid AND r.answered_at IS NULL
$$;

-- A page of device objects as a JSON array, ordered by udid, after the cursor, optionally only
-- those whose last verdict is p_attestation (verified: and not expired; expired: marked or past
-- its expiry), or, for 'pending', those with a request out.
CREATE OR REPLACE FUNCTION vouch_device_list(p_after text, p_limit integer, p_attestation text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_device_object(d) ORDER BY d.udid), '[]')::text
    FROM (SELECT * FROM devices x
          WHERE x.udid > coalesce(p_after, '')
            AND (p_attestation IS NULL OR CASE p_attestation
                WHEN 'pending' THEN EXISTS (SELECT 1 FROM attestation_requests r
                                            WHERE r.udid = x.udid AND r.answered_at IS NULL)
                WHEN 'verified' THEN x.attestation_status = 'verified'
                                     AND x.attestation_expires_at > vouch_now()
                WHEN 'expired' THEN x.attestation_status = 'expired'
                                    OR (x.attestation_status = 'verified'
                                        AND x.attestation_expires_at <= vouch_now())
                ELSE x.attestation_status = p_attestation END)
          ORDER BY x.udid LIMIT p_limit) AS d
$$;

-- The attestation history of a device, newest first; NULL for an unknown device. Each answer
-- names its generation and the nonces it was checked against (hex), so that anyone can verify
-- it again (vouchctl verify --server).
CREATE OR REPLACE FUNCTION vouch_device_attestations(p_udid text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM devices WHERE udid = p_udid) THEN NULL
           ELSE coalesce((
        SELECT json_agg(json_build_object(
                   'id', a.id,
                   'generation', a.generation,
                   'command_uuid', a.command_uuid,
                   'request_reason', a.request_reason,
                   'requested_at', vouch_time(a.requested_at),
                   'received_at', vouch_time(a.received_at),
                   'status', a.status,
                   'freshness', a.freshness,
                   'reason', a.reason,
                   'device_status', a.device_status,
                   'nonce', encode(a.nonce, 'hex'),
                   'cached_nonce', encode(a.cached_nonce, 'hex'),
                   'checked', a.checked,
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

-- One clock. Verdicts are taken at the database's real time; vouch_clock.skew, how the tests
-- live through weeks and years in seconds, counts only in a session that says it lives by the
-- test clock (vouch.test_clock = on). vouchd's sessions always say it, on only with test_clock =
-- true in its configuration, which it refuses unless the database's owner set it for the
-- database too (ALTER DATABASE ... SET vouch.test_clock = on): moving vouch_clock alone, or the
-- setting alone, changes nothing vouchd does.
CREATE OR REPLACE FUNCTION vouch_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF current_setting('vouch.test_clock', true) = 'on' THEN
        RETURN now() + coalesce((SELECT skew FROM vouch_clock), interval '0');
    END IF;
    RETURN now();
END
$$;

-- Figures for /metrics and /healthz. Estimates where exact counts would scan big tables.
-- clock_skew: seconds this session's clock is moved by (0 unless it lives by the test clock).
DROP FUNCTION vouch_stats();
CREATE FUNCTION vouch_stats(OUT queue_depth bigint, OUT devices bigint, OUT enrolled bigint,
                            OUT clock_skew double precision)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM command_queue),
           (SELECT count(*) FROM devices),
           (SELECT count(*) FROM enrollments WHERE enabled),
           extract(epoch FROM vouch_now() - now())::double precision
$$;
