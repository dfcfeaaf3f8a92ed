-- The attestation scheduler: the policy, ticks, and what is due.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- ---- The attestation scheduler ----
-- vouchd's configuration becomes the policy (the last instance to start wins).
CREATE OR REPLACE FUNCTION vouch_set_policy(p_max_age interval, p_min_interval interval,
                                 p_mean_interval interval, p_info_interval interval,
                                 p_rate_limit integer, p_retry_limit integer,
                                 p_retry_delay interval)
RETURNS void LANGUAGE sql AS $$
    UPDATE scheduler_policy SET max_age = p_max_age, min_interval = p_min_interval,
        mean_interval = p_mean_interval, info_interval = p_info_interval,
        rate_limit = p_rate_limit, retry_limit = p_retry_limit, retry_delay = p_retry_delay
$$;

-- The housekeeping of a tick: requests unanswered for answer_timeout end as errors (retried,
-- then failed: no_answer), provisional bindings past their deadline are released
-- (vouch_migration_expire), and verified verdicts past their expiry become 'expired'. Rows locked
-- elsewhere are skipped; the next tick takes them.
CREATE OR REPLACE FUNCTION vouch_scheduler_housekeeping(p_limit integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    clock timestamptz := vouch_now();
    late record;
    expired text;
BEGIN
    -- The enrollment too: ending a provisional identity's request releases it, and a device's
    -- request holds its enrollment before its device row (an answer to an operator's command
    -- holds neither: it never waits for its devices row). Skipped, never waited for.
    FOR late IN
        SELECT r.udid, r.command_uuid FROM attestation_requests r
        JOIN devices d ON d.udid = r.udid
        JOIN enrollments e ON e.udid = r.udid
        WHERE r.answered_at IS NULL
          AND r.requested_at < clock - (SELECT answer_timeout FROM scheduler_policy)
        ORDER BY r.requested_at LIMIT p_limit
        FOR UPDATE OF e, d SKIP LOCKED
    LOOP
        PERFORM vouch_end_attestation_request(late.udid, late.command_uuid, 'error', 'NoAnswer');
    END LOOP;
    PERFORM vouch_migration_expire(p_limit);
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
-- attestation is due (oldest first, at most as many as vouchd made requests for and the
-- fleet-wide budget of the last minute allows) and those due for a light DeviceInformation query
-- (at most p_info_limit), and queues their commands. Rows locked elsewhere (a device in the
-- middle of a request, another instance's tick) are skipped, never waited for, so instances
-- never claim a device twice; a tick that dies rolls back and leaves its devices due. Returns
-- the devices to push.
CREATE OR REPLACE FUNCTION vouch_scheduler_tick(p_command_uuids text[], p_nonces bytea[],
                                                p_info_command_uuid text, p_info_body bytea,
                                                p_info_limit integer)
RETURNS TABLE (udid text, kind text, reason text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    p scheduler_policy;
    clock timestamptz := vouch_now();
    budget integer;
    claimed text[];
    free_enrollments text[];
    reasons text[];
    queued text[];
    info text[];
BEGIN
    -- The policy row is the fleet-wide budget: ticks take turns on it for their few milliseconds.
    SELECT * INTO p FROM scheduler_policy FOR UPDATE;
    PERFORM vouch_scheduler_housekeeping(greatest(p_info_limit, 1));
    budget := least(coalesce(array_length(p_command_uuids, 1), 0),
                    p.rate_limit - vouch_scheduled_requests(clock - interval '1 minute'));

    -- The enrollments first, never waiting: a device request holds its enrollment row
    -- (vouch_report, vouch_check_identity) and then writes its devices row, so a tick that held
    -- the devices row and then waited for the enrollment would deadlock with it (the answer to
    -- an operator's command locks no enrollment and never waits for its devices row). A device
    -- in the middle of a request is skipped, and stays due.
    SELECT array_agg(x.udid) INTO free_enrollments
    FROM (SELECT e.udid FROM devices d JOIN enrollments e ON e.udid = d.udid
          WHERE d.attestation_due_at <= clock
          ORDER BY d.attestation_due_at LIMIT greatest(budget, 0)
          FOR KEY SHARE OF e SKIP LOCKED) AS x;
    SELECT array_agg(c.udid ORDER BY c.attestation_due_at),
           array_agg(c.attestation_due_reason ORDER BY c.attestation_due_at)
    INTO claimed, reasons
    FROM (SELECT d.udid, d.attestation_due_at, d.attestation_due_reason FROM devices d
          WHERE d.attestation_due_at <= clock
            AND (d.udid = ANY (free_enrollments)
                 OR NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = d.udid))
          ORDER BY d.attestation_due_at LIMIT greatest(budget, 0)
          FOR UPDATE SKIP LOCKED) AS c;
    IF claimed IS NOT NULL THEN
        WITH pairs AS (
            SELECT c.udid, c.reason, p_command_uuids[c.i] AS command_uuid,
                   p_nonces[c.i] AS nonce, e.generation
            FROM unnest(claimed, reasons) WITH ORDINALITY AS c(udid, reason, i)
            JOIN enrollments e ON e.udid = c.udid AND e.enabled),
        requested AS (
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at,
                                              generation)
            SELECT x.command_uuid, x.udid, x.nonce, x.reason, clock, x.generation FROM pairs x
            ON CONFLICT (udid) WHERE answered_at IS NULL DO NOTHING
            RETURNING attestation_requests.udid)
        -- The pending row is the request's queue entry, without a body: vouchd builds it from
        -- the request's command UUID and nonce when the device fetches it (vouch_report).
        SELECT array_agg(x.udid) INTO queued FROM requested x;
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

CREATE OR REPLACE FUNCTION vouch_scheduler_next(p_limit integer, OUT attest_due integer,
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
    SELECT p.rate_limit - vouch_scheduled_requests(clock - interval '1 minute')
    INTO budget FROM scheduler_policy p;
END
$$;
