-- Command reports and the queue.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- A device's next command in the session that started at p_session_start: its pending
-- attestation request (the request is its own queue entry, and it goes first), else the head of
-- its queue; either waits for the next session once put off (NotNow). p_answered, when given, is
-- a queue entry the calling statement takes off, which its snapshot still shows. One row, NULLs
-- when there is nothing to do; body NULL and the request's nonce for an attestation request
-- (vouchd builds its body). SQL, one SELECT: PostgreSQL inlines it into the statement that
-- calls it, with an index probe for each part (command_queue_next, attestation_requests_pending).
CREATE OR REPLACE FUNCTION vouch_next_command(p_udid text, p_session_start timestamptz,
                                              p_answered text)
RETURNS TABLE (command_uuid text, body bytea, nonce bytea)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(r.command_uuid, n.command_uuid),
           CASE WHEN r.command_uuid IS NULL THEN n.body END, r.nonce
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (
        SELECT r.command_uuid, r.nonce FROM attestation_requests r
        WHERE r.udid = p_udid AND r.answered_at IS NULL
          AND (r.not_now_at IS NULL OR p_session_start IS NULL OR r.not_now_at < p_session_start)
        LIMIT 1) r ON true
    LEFT JOIN LATERAL (
        SELECT q.command_uuid, c.body
        FROM command_queue q JOIN commands c ON c.command_uuid = q.command_uuid
        WHERE q.udid = p_udid AND q.command_uuid IS DISTINCT FROM p_answered
          AND (q.not_now_at IS NULL OR p_session_start IS NULL OR q.not_now_at < p_session_start)
        ORDER BY q.priority DESC, q.id
        LIMIT 1) n ON true
$$;

-- p_report is the body the device sent (web-hooks get it byte for byte); p_stored_report, when
-- given, is what command_results keeps instead once the verdict is recorded: the same answer
-- without its attestation certificates, which the attestation row holds (docs/attestation.md,
-- "Storage"). p_answer, when given, is the answer's shape (command_answer_shape in
-- server/device/command.c): the first answer to a pending request never put off (NotNow) then
-- leaves no command_results row at all: the attestation row keeps the shape and gives the answer
-- back (vouch_answer_xml). The next command comes back as its body, or, for an attestation request
-- (whose body is not stored), as next_body NULL and the request's nonce: vouchd builds the body
-- again.
CREATE OR REPLACE FUNCTION vouch_report(
    p_udid text, p_cert bytea, p_status text, p_command_uuid text, p_report bytea,
    p_verdict json, p_os_version text, p_build_version text, p_stored_report bytea DEFAULT NULL,
    p_answer text DEFAULT NULL, p_url_params jsonb DEFAULT NULL, OUT outcome text, OUT result_stored boolean, OUT next_command_uuid text, OUT next_body bytea,
    OUT request_nonce bytea, OUT older_nonces bytea, OUT enrolled_serial text,
    OUT enrolled_os_version text, OUT clock double precision, OUT older_requested_at bytea,
    OUT generation_verified boolean, OUT product_name text, OUT request_reason text,
    OUT next_nonce bytea)
LANGUAGE plpgsql AS $$
DECLARE
    is_enabled boolean;
    session_start timestamptz;
    answered_type text;
    bound bytea;
    revoked boolean;
    seen timestamptz;
    queued timestamptz;
    not_nows integer;
    recorded boolean;
    attestation_type text;  -- 'DeviceInformation' when the answered command is an attestation
    pending boolean;        -- ... request, and whether it is pending
    seen_written boolean := false;
BEGIN
    result_stored := false;
    -- The answer to an operator's command, the round trip every command makes: one statement
    -- does what the general way below does for it, when nothing about it needs more. That is a
    -- result (no verdict, no NotNow) for this device's queue entry of a command that is not a
    -- DeviceInformation (whose answer is the device's OS) nor an attestation request, from the
    -- bound identity of an enabled enrollment that no revocation names, with no mdm.Connect
    -- web-hook to emit. The enrollment is read, not locked: the queue entry's DELETE is what a
    -- second answer (or a new Authenticate, which empties the queue) waits for, and an answer
    -- that meets its device's own CheckOut is kept, as if it had come first. The next command
    -- is read in the same snapshot, so this entry, which the DELETE takes off, is left out by
    -- name. When any condition fails nothing is written, and the general way decides. An answer
    -- that reports an OS version answers a DeviceInformation, which this way does not take: the
    -- attestation requests' answers (one a device in a campaign) do not run it for nothing.
    IF p_verdict IS NULL AND p_os_version IS NULL
       AND p_status IN ('Acknowledged', 'Error', 'CommandFormatError') THEN
        WITH e AS (
            SELECT e.session_started_at, d.last_seen_at
            FROM enrollments e JOIN devices d ON d.udid = e.udid
            WHERE e.udid = p_udid AND e.identity_cert_sha256 = p_cert AND e.enabled
              AND NOT EXISTS (SELECT 1 FROM acme_certificates a
                              WHERE a.sha256 = p_cert AND a.revoked_at IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM attestation_requests r
                              WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid)
              AND NOT EXISTS (SELECT 1 FROM webhook_receivers w
                              WHERE w.topics IS NULL OR 'mdm.Connect' = ANY (w.topics))),
        q AS (
            DELETE FROM command_queue q USING e, commands c
            WHERE q.udid = p_udid AND q.command_uuid = p_command_uuid
              AND c.command_uuid = q.command_uuid AND c.request_type <> 'DeviceInformation'
            RETURNING q.queued_at, q.not_now_count, c.request_type, e.session_started_at,
                      e.last_seen_at),
        stored AS (
            INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                         queued_at, not_now_count)
            SELECT p_udid, p_command_uuid, q.request_type, p_status, p_report, q.queued_at,
                   q.not_now_count
            FROM q
            ON CONFLICT (udid, command_uuid) DO NOTHING
            RETURNING 1)
        SELECT EXISTS (SELECT 1 FROM stored), n.command_uuid, n.body, n.nonce, q.last_seen_at
        INTO result_stored, next_command_uuid, next_body, next_nonce, seen
        FROM q, vouch_next_command(p_udid, q.session_started_at, p_command_uuid) n;
        IF FOUND THEN
            outcome := 'ok';
            -- An answer less than a minute after the time last_seen_at holds (the session's
            -- Idle, or an earlier answer) leaves the row alone: a session's answers follow each
            -- other in seconds, and the devices row's update (its five indexes opened, a row
            -- version, WAL) is 7 % of what an answer costs PostgreSQL. A time ahead of the
            -- clock (the test clock set back) is replaced. The row is taken only if free: this
            -- transaction holds the queue entry, and an Authenticate (or a migrated identity's
            -- release) holds the devices row before it deletes the queue; a write skipped is a
            -- time a minute old, and whoever holds the row writes its own.
            IF seen IS NULL OR seen <= vouch_now() - interval '1 minute' OR seen > vouch_now() THEN
                UPDATE devices SET last_seen_at = vouch_now()
                WHERE udid = (SELECT d.udid FROM devices d WHERE d.udid = p_udid
                              FOR NO KEY UPDATE SKIP LOCKED)
                  AND last_seen_at IS DISTINCT FROM vouch_now();
            END IF;
            RETURN;
        END IF;
    ELSIF p_status = 'Idle' AND p_verdict IS NULL THEN
        -- An Idle, which opens every session, in one statement too, on the same conditions:
        -- it starts the session (the enrollment's UPDATE locks its row first, as the general
        -- way does, though FOR NO KEY UPDATE, which the scheduler's FOR KEY SHARE does not
        -- wait for), marks the device seen (always: the trust API's "seen last" of a serial
        -- number is the device whose session began last) and reads its next command. It
        -- writes two timestamps and no result: its commit need not wait for the WAL flush.
        WITH e AS (
            UPDATE enrollments e SET session_started_at = clock_timestamp()
            WHERE e.udid = p_udid AND e.identity_cert_sha256 = p_cert AND e.enabled
              AND NOT EXISTS (SELECT 1 FROM acme_certificates a
                              WHERE a.sha256 = p_cert AND a.revoked_at IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM webhook_receivers w
                              WHERE w.topics IS NULL OR 'mdm.Connect' = ANY (w.topics))
            RETURNING e.session_started_at),
        marked AS (
            UPDATE devices d SET last_seen_at = vouch_now()
            WHERE d.udid = p_udid AND EXISTS (SELECT 1 FROM e)
              AND d.last_seen_at IS DISTINCT FROM vouch_now())
        SELECT n.command_uuid, n.body, n.nonce INTO next_command_uuid, next_body, next_nonce
        FROM e, vouch_next_command(p_udid, e.session_started_at, NULL) n;
        IF FOUND THEN
            outcome := 'ok';
            PERFORM set_config('synchronous_commit', 'off', true);
            RETURN;
        END IF;
    END IF;
    result_stored := false;  -- a fast way's SELECT ... INTO that found no row left it NULL
    -- The answer to a pending attestation request, before its verdict: vouchd only needs what
    -- to verify it against. Read without locking anything, so this transaction writes nothing
    -- (no WAL flush at commit); the call with the verdict checks everything again under lock.
    -- One statement: the request, the device's other requests of its generation (pending,
    -- canceled or ended: an ended one is its attestations row, vouch_device_requests), what the
    -- device is known as, whether this generation was ever verified, and the server's clock,
    -- to verify at.
    IF p_status = 'Acknowledged' AND p_verdict IS NULL THEN
        SELECT r.nonce, r.reason, o.nonces, o.requested_at, d.serial_number, d.os_version,
               d.product_name,
               EXISTS (SELECT 1 FROM attestations a
                       WHERE a.udid = p_udid AND a.generation = r.generation
                         AND a.status = 'verified'),
               extract(epoch FROM vouch_now())
        INTO request_nonce, request_reason, older_nonces, older_requested_at, enrolled_serial,
             enrolled_os_version, product_name, generation_verified, clock
        FROM attestation_requests r
        JOIN enrollments e ON e.udid = r.udid
        LEFT JOIN devices d ON d.udid = r.udid
        CROSS JOIN LATERAL (
            SELECT string_agg(x.nonce, ''::bytea ORDER BY x.requested_at DESC) AS nonces,
                   string_agg(int8send(floor(extract(epoch FROM x.requested_at))::bigint),
                              ''::bytea ORDER BY x.requested_at DESC) AS requested_at
            FROM vouch_device_requests(p_udid) x
            WHERE x.command_uuid <> p_command_uuid
              AND x.generation = r.generation AND length(x.nonce) = 32
              AND x.requested_at IS NOT NULL) o  -- the two lists stay the same length
        WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid AND r.answered_at IS NULL
          AND e.identity_cert_sha256 = p_cert AND e.enabled;
        IF FOUND THEN
            outcome := 'attestation_context';
            RETURN;
        END IF;
    END IF;

    -- The identity check (as vouch_check_identity, which the check-in messages use) and the
    -- enrollment in one read, which locks the enrollment row for the rest of the transaction.
    SELECT e.identity_cert_sha256, e.enabled, e.session_started_at,
           EXISTS (SELECT 1 FROM acme_certificates a
                   WHERE a.sha256 = p_cert AND a.revoked_at IS NOT NULL)
    INTO bound, is_enabled, session_start, revoked
    FROM enrollments e WHERE e.udid = p_udid FOR UPDATE OF e;
    IF NOT FOUND THEN
        outcome := 'unknown_device';
        RETURN;
    ELSIF bound <> p_cert
          -- a migrated enrollment's first request binds it (45_migration.sql)
          AND (bound <> vouch_unbound_cert() OR NOT vouch_migration_claim(p_udid, p_cert)) THEN
        outcome := 'identity_mismatch';
        RETURN;
    ELSIF revoked THEN
        outcome := 'identity_revoked';
        RETURN;
    END IF;
    outcome := 'ok';
    IF NOT is_enabled THEN
        outcome := 'not_enrolled';
        RETURN;
    END IF;

    IF p_status = 'Idle' THEN
        session_start := clock_timestamp();
        UPDATE enrollments SET session_started_at = session_start WHERE udid = p_udid;
    ELSIF p_status = 'NotNow' THEN
        -- A pending attestation request is its own queue entry.
        UPDATE attestation_requests r SET not_now_at = clock_timestamp(),
            not_now_count = coalesce(r.not_now_count, 0) + 1
        WHERE r.udid = p_udid AND r.command_uuid = p_command_uuid AND r.answered_at IS NULL;
        IF NOT FOUND THEN
            UPDATE command_queue SET not_now_at = clock_timestamp(),
                not_now_count = not_now_count + 1
            WHERE udid = p_udid AND command_uuid = p_command_uuid;
        END IF;
    ELSE
        -- An attestation request (pending or canceled: a key probe; ended: its attestations
        -- row) is a DeviceInformation command; the pending one is its own queue entry, which
        -- the answer takes off (it is answered then).
        SELECT 'DeviceInformation', r.answered_at IS NULL, r.requested_at,
               coalesce(r.not_now_count, 0)
        INTO attestation_type, pending, queued, not_nows
        FROM attestation_requests r
        WHERE r.udid = p_udid AND r.command_uuid = p_command_uuid;
        IF NOT FOUND
           -- An operator's command of this UUID names only itself (vouch_kept_answers): the
           -- answer to every ordinary command is one more key probe, not a walk through the
           -- device's attestation history (no index has attestations' command_uuid).
           AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.command_uuid = p_command_uuid) THEN
            -- A late or repeated answer to a request that ended (vouch_device_requests).
            SELECT 'DeviceInformation', false, a.requested_at, 0
            INTO attestation_type, pending, queued, not_nows
            FROM attestations a
            WHERE a.udid = p_udid AND a.command_uuid = p_command_uuid AND a.source = 'mdm'
            LIMIT 1;
        END IF;
        IF pending AND p_answer IS NOT NULL AND p_verdict IS NOT NULL
              AND p_status = 'Acknowledged' THEN
            -- The first answer to a pending request, which its attestation row may keep
            -- (while the request is pending nothing of its answer is stored anywhere, so there
            -- is no need to look through the device's attestation history). A repeat or a
            -- late answer takes the general way below.
            IF NOT EXISTS (SELECT 1 FROM command_results r
                           WHERE r.udid = p_udid AND r.command_uuid = p_command_uuid) THEN
                recorded := vouch_record_attestation(p_udid, p_command_uuid, p_verdict,
                                                     p_answer);
                -- Recorded (true or NULL): its devices row's update wrote last_seen_at.
                seen_written := recorded IS DISTINCT FROM false;
                IF recorded IS NOT TRUE THEN
                    -- Not kept in the row (no request pending any more: the answer whole; or
                    -- put off: without its certificates when a row keeps them).
                    INSERT INTO command_results (udid, command_uuid, request_type, status,
                                                 report, queued_at, not_now_count)
                    VALUES (p_udid, p_command_uuid, attestation_type, p_status,
                            CASE WHEN recorded IS NULL THEN coalesce(p_stored_report, p_report)
                                 ELSE p_report END,
                            queued, not_nows);
                END IF;
                result_stored := true;
            ELSE
                -- A pending request that already has a result: an answer without a verdict
                -- stored it before migration 0012 (the request then waited for its time-out,
                -- off the queue). This answer cannot be kept either: it ends as the time-out
                -- would end it, or the device would be handed it again at once.
                PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error',
                                                      'NoAnswer');
            END IF;
        ELSE
            -- Any other command's entry leaves the queue whether or not this answer is the
            -- first (one statement: the DELETE runs in full and hands its row to the INSERT).
            -- A pending attestation request leaves it as it ends below.
            WITH q AS (
                DELETE FROM command_queue q
                WHERE q.udid = p_udid AND q.command_uuid = p_command_uuid
                  AND attestation_type IS NULL
                RETURNING q.queued_at, q.not_now_count)
            INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                         queued_at, not_now_count)
            SELECT p_udid, p_command_uuid, coalesce(attestation_type, c.request_type), p_status,
                   CASE WHEN p_verdict IS NOT NULL THEN coalesce(p_stored_report, p_report)
                        ELSE p_report END,
                   CASE WHEN pending THEN queued ELSE q.queued_at END,
                   CASE WHEN pending THEN not_nows ELSE coalesce(q.not_now_count, 0) END
            FROM (SELECT 1) AS one
            LEFT JOIN q ON true
            LEFT JOIN commands c ON attestation_type IS NULL AND c.command_uuid = p_command_uuid
            -- A repeat of an answer its attestation row keeps is a repeat too. Only attestation
            -- requests can have one: another command never looks.
            WHERE attestation_type IS NULL
               OR NOT EXISTS (SELECT 1 FROM attestations a
                              WHERE a.udid = p_udid AND a.command_uuid = p_command_uuid
                                AND a.answer IS NOT NULL)
            ON CONFLICT (udid, command_uuid) DO NOTHING
            RETURNING request_type INTO answered_type;
            result_stored := FOUND;
            IF NOT result_stored AND pending THEN
                -- The same state as above, reached without an answer's shape.
                PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error',
                                                      'NoAnswer');
            END IF;
            IF result_stored THEN
                IF p_status = 'Acknowledged' AND p_verdict IS NOT NULL THEN
                    IF NOT vouch_record_attestation(p_udid, p_command_uuid, p_verdict, NULL)
                       AND p_stored_report IS NOT NULL THEN
                        -- No attestation row keeps the certificates (the request ended
                        -- meanwhile): the answer is kept whole.
                        UPDATE command_results r SET report = p_report
                        WHERE r.udid = p_udid AND r.command_uuid = p_command_uuid;
                    END IF;
                ELSIF p_status <> 'Acknowledged' THEN
                    PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error',
                                                          p_status);
                ELSIF pending THEN
                    -- An answer without a verdict (vouchd checks the answers of pending requests
                    -- of bound identities: only a migrated enrollment's first request, which binds
                    -- it, can bring one) took the request off the queue, and nothing will answer
                    -- it now: it ends as its time-out would have ended it.
                    PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'error',
                                                          'NoAnswer');
                END IF;
                IF answered_type = 'DeviceInformation' AND p_verdict IS NULL THEN
                    -- A light query's answer (or any other DeviceInformation): what the OS is
                    -- now, and the next query a day later, unless an attestation request is out.
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
    END IF;

    IF NOT seen_written THEN
        seen := vouch_now();
        UPDATE devices SET last_seen_at = seen
        WHERE udid = p_udid AND last_seen_at IS DISTINCT FROM seen;  -- once per transaction
    END IF;
    IF p_report IS NOT NULL AND EXISTS (SELECT 1 FROM webhook_receivers r
                                        WHERE r.topics IS NULL OR 'mdm.Connect' = ANY (r.topics))
    THEN
        PERFORM vouch_emit_mdm('mdm.Connect', p_udid, p_report, p_status, p_command_uuid, NULL,
                               p_url_params);
    ELSIF p_status = 'Idle' THEN
        -- An Idle with no web-hook wrote two timestamps (last seen, session start) and reads the
        -- next command: its commit need not wait for the WAL flush. A crash can lose them, never
        -- a result or an event; the next durable commit flushes them too.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;

    SELECT n.command_uuid, n.body, n.nonce INTO next_command_uuid, next_body, next_nonce
    FROM vouch_next_command(p_udid, session_start, NULL) n;
END
$$;

-- The answers of several devices to operator commands, in one statement: vouch_report's first
-- fast way (above) for each of them, on the same conditions, so that the devices answering at
-- once share one plan's start, one transaction and one commit instead of paying each their own
-- (vouchd gathers the answers that arrive while its earlier batches are out:
-- server/device/answer_batch.c). Entry n of the arrays is one device's answer: its UDID, the
-- SHA-256 of its identity certificate, its status and CommandUUID, and the report it sent. An
-- answer the fast way takes gets a row (n, whether its result was stored, the device's next
-- command as vouch_report gives it); one it does not take gets none and nothing of it is
-- written: vouchd sends it to vouch_report, whose general way decides. A batch holds one
-- answer a device at most (vouchd sends a second one alone): the next command is read in the
-- statement's snapshot, which still shows the entries the statement takes off, and only the
-- device's own is left out by name. While a web-hook receiver wants mdm.Connect (each answer
-- is then an event, which vouch_report emits) the one row is n = 0: none taken, and vouchd
-- stops gathering answers for a while. An answer that would wait more than a second for a row
-- lock (its queue entry taken by the device's new Authenticate, say) fails the batch instead
-- of holding every answer in it: each goes on to vouch_report alone.
CREATE OR REPLACE FUNCTION vouch_report_answers(p_udids text[], p_certs bytea[],
                                                p_statuses text[], p_command_uuids text[],
                                                p_reports bytea[])
RETURNS TABLE (n integer, result_stored boolean, next_command_uuid text, next_body bytea,
               next_nonce bytea)
LANGUAGE plpgsql
-- Planned once: with the arrays' sizes unknown, the generic plan looks dearer than one made
-- for each call's arrays, and PostgreSQL would plan the statement again at every call (most of
-- its cost for a few answers). The generic plan probes an index for each answer all the same.
SET plan_cache_mode = force_generic_plan
SET lock_timeout = '1s' AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhook_receivers w
               WHERE w.topics IS NULL OR 'mdm.Connect' = ANY (w.topics)) THEN
        RETURN QUERY SELECT 0, false, NULL::text, NULL::bytea, NULL::bytea;
        RETURN;
    END IF;
    RETURN QUERY
    WITH a AS (
        SELECT x.udid, x.cert, x.status, x.command_uuid, x.report, x.n
        FROM unnest(p_udids, p_certs, p_statuses, p_command_uuids, p_reports) WITH ORDINALITY
                 AS x(udid, cert, status, command_uuid, report, n)
        WHERE x.status IN ('Acknowledged', 'Error', 'CommandFormatError')),
    e AS (
        SELECT a.udid, a.status, a.command_uuid, a.report, a.n, en.session_started_at,
               d.last_seen_at
        FROM a JOIN enrollments en ON en.udid = a.udid JOIN devices d ON d.udid = a.udid
        WHERE en.identity_cert_sha256 = a.cert AND en.enabled
          AND NOT EXISTS (SELECT 1 FROM acme_certificates c
                          WHERE c.sha256 = a.cert AND c.revoked_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM attestation_requests r
                          WHERE r.command_uuid = a.command_uuid AND r.udid = a.udid)),
    q AS (
        DELETE FROM command_queue q USING e, commands c
        WHERE q.udid = e.udid AND q.command_uuid = e.command_uuid
          AND c.command_uuid = q.command_uuid AND c.request_type <> 'DeviceInformation'
        RETURNING e.n, e.udid, e.command_uuid, e.status, e.report, q.queued_at,
                  q.not_now_count, c.request_type, e.session_started_at, e.last_seen_at),
    stored AS (
        INSERT INTO command_results (udid, command_uuid, request_type, status, report,
                                     queued_at, not_now_count)
        SELECT q.udid, q.command_uuid, q.request_type, q.status::vouch_result_status, q.report,
               q.queued_at, q.not_now_count
        FROM q
        ON CONFLICT (udid, command_uuid) DO NOTHING
        RETURNING udid),
    -- last_seen_at as vouch_report's fast way moves it: only when a minute old (or ahead of
    -- the clock), and only on a devices row that is free.
    seen AS (
        UPDATE devices d SET last_seen_at = vouch_now()
        WHERE d.udid IN (SELECT s.udid FROM devices s JOIN q ON q.udid = s.udid
                         WHERE q.last_seen_at IS NULL
                            OR q.last_seen_at <= vouch_now() - interval '1 minute'
                            OR q.last_seen_at > vouch_now()
                         FOR NO KEY UPDATE OF s SKIP LOCKED)
          AND d.last_seen_at IS DISTINCT FROM vouch_now())
    SELECT q.n::integer, EXISTS (SELECT 1 FROM stored s WHERE s.udid = q.udid),
           x.command_uuid, x.body, x.nonce
    FROM q CROSS JOIN LATERAL vouch_next_command(q.udid, q.session_started_at,
                                                 q.command_uuid) x;
END
$$;

-- Queues one command for many devices. Returns one row per requested id: whether it was queued
-- (false: no enrollment). The command is stored only if at least one device takes it. A
-- CommandUUID is a device's one command: one that commands holds, or one of an attestation
-- request of a device it goes to (a request is its own queue entry, not in commands), is
-- refused as a duplicate (unique_violation).
CREATE OR REPLACE FUNCTION vouch_enqueue(p_command_uuid text, p_request_type text, p_body bytea,
                              p_udids text[])
RETURNS TABLE (udid text, queued boolean) LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_udids) AS u(udid), vouch_device_requests(u.udid) r
               WHERE r.command_uuid = p_command_uuid) THEN
        RAISE unique_violation USING MESSAGE = 'a command with this CommandUUID exists',
            DETAIL = 'an attestation request of one of its devices has it';
    END IF;
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
