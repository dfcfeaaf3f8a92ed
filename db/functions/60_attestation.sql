-- Managed Device Attestation: requests, verdicts, the posture, and the plan of the next request.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- When a verified verdict stops counting: its leaf's notAfter, or max_age after Apple made it.
CREATE OR REPLACE FUNCTION vouch_verdict_expiry(p_generated_at timestamptz, p_expires_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT least(p_expires_at, p_generated_at + (SELECT max_age FROM scheduler_policy))
$$;

-- Every attestation request of a device: those attestation_requests holds (the pending one,
-- and those canceled, which no answer ended) and those an attestations row ended (source 'mdm':
-- a verdict, an error answer or a time-out). Since 0014 a request's row leaves when its
-- attestations row is written, which keeps its command UUID, nonce, reason, time asked and
-- generation: a request is in one table or the other, never both. A SQL function of one SELECT:
-- inlined into its callers, whose conditions reach each table's index (attestation_requests'
-- key, attestations_device).
CREATE OR REPLACE FUNCTION vouch_device_requests(p_udid text)
RETURNS TABLE (command_uuid text, nonce bytea, reason text, requested_at timestamptz,
               generation integer, pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.command_uuid, r.nonce, r.reason, r.requested_at, r.generation,
           r.answered_at IS NULL
    FROM attestation_requests r WHERE r.udid = p_udid
    UNION ALL
    SELECT a.command_uuid, a.nonce, a.request_reason, a.requested_at, a.generation, false
    FROM attestations a WHERE a.udid = p_udid AND a.source = 'mdm'
$$;

-- How many of the scheduler's own requests (os_change, random, max_age, retry, migration) were
-- made after p_since, answered or not: the fleet-wide rate limit's count. An answered one is
-- its attestations row, received after it was asked: attestations_received bounds that scan to
-- the answers received since p_since. (PL/pgSQL: planned once per session, where a SQL
-- function of sub-selects, which cannot be inlined, is planned at every call.)
CREATE OR REPLACE FUNCTION vouch_scheduled_requests(p_since timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM attestation_requests r
            WHERE r.requested_at > p_since
              AND r.reason IN ('os_change', 'random', 'max_age', 'retry', 'migration'))
         + (SELECT count(*) FROM attestations a
            WHERE a.received_at > p_since AND a.requested_at > p_since AND a.source = 'mdm'
              AND a.request_reason IN ('os_change', 'random', 'max_age', 'retry', 'migration'));
END
$$;

-- A verified chain of Apple's shape is kept as its leaf in the row and its Sub CA once in
-- attestation_cas (vouch_attestation_chain, db/functions/30_devices.sql). Stores the CA
-- certificates p_cas (a chain without its leaf) and returns their SHA-256s in order. (PL/pgSQL: planned once per
-- session.)
CREATE OR REPLACE FUNCTION vouch_keep_cas(p_cas bytea[]) RETURNS bytea[]
LANGUAGE plpgsql AS $$
DECLARE
    hashes bytea[] := '{}';
    h bytea;
BEGIN
    -- One look-up a certificate (simple expressions otherwise): every answer but the first of
    -- each Sub CA finds it, and a read writes no WAL.
    FOR i IN 1 .. coalesce(cardinality(p_cas), 0) LOOP
        h := sha256(p_cas[i]);
        hashes := hashes || h;
        PERFORM FROM attestation_cas a WHERE a.sha256 = h;
        IF NOT FOUND THEN
            INSERT INTO attestation_cas (sha256, der) VALUES (h, p_cas[i])
            ON CONFLICT (sha256) DO NOTHING;
        END IF;
    END LOOP;
    RETURN hashes;
END
$$;

-- A new verdict for the device: the attestation row it rests on becomes the posture. (PL/pgSQL:
-- a SQL function that cannot be inlined, as an UPDATE cannot, is planned again at every call.)
CREATE OR REPLACE FUNCTION vouch_set_verdict(p_udid text, p_attestation_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE devices d SET
        attestation_status = a.status,
        attestation_id = a.id,
        attestation_expires_at = CASE WHEN a.status = 'verified'
                                      THEN vouch_verdict_expiry(a.generated_at, a.expires_at) END,
        updated_at = vouch_now()
    FROM attestations a WHERE a.id = p_attestation_id AND d.udid = p_udid;
END
$$;

-- Asks a device for an attestation: queues the DeviceInformation request vouchd made (its
-- command UUID and nonce: its request row is its queue entry) unless a request is already
-- pending. outcome is 'queued',
-- 'pending' (command_uuid is then the pending one) or 'unknown_device'. The device keeps its
-- last verdict meanwhile: the request is shown beside it.
CREATE OR REPLACE FUNCTION vouch_request_attestation(
    p_udid text, p_command_uuid text, p_nonce bytea, p_reason text,
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
    -- The pending row is the request's queue entry, and there is no body: vouchd builds it from
    -- the command UUID and the nonce when the device fetches it (vouch_report's next_nonce;
    -- command_attestation_body).
    -- The answer also tells the OS version: no separate query is needed until it comes.
    UPDATE devices SET attestation_due_at = NULL, attestation_due_reason = NULL, info_due_at = NULL
    WHERE udid = p_udid;
    outcome := 'queued';
    command_uuid := p_command_uuid;
END
$$;

-- The same for many devices, one request each (vouchd makes them; p_command_uuids[i] and
-- p_nonces[i] are p_udids[i]'s): one row per device, in the order given, under the device's own
-- UDID when the operator typed it in another case (vouch_udid_resolve). Set-based: one INSERT
-- of the requests, one UPDATE of the devices asked, one SELECT of the answers, whatever the
-- count; the outcomes are those of vouch_request_attestation called for each in turn. A device
-- named twice (in two cases: vouchd drops exact repeats) is asked by its first mention; the
-- later ones answer 'pending' with that request.
CREATE OR REPLACE FUNCTION vouch_request_attestations(
    p_udids text[], p_command_uuids text[], p_nonces bytea[], p_reason text)
RETURNS TABLE (udid text, outcome text, command_uuid text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    resolved text[];
    queued text[];
    queued_uuids text[];
BEGIN
    -- The arrays are read by unnest, side by side, never by subscript: an element of a text[]
    -- or bytea[] is found by walking the ones before it.
    -- A UDID as given is looked up by one join (vouch_udid_resolve's first probe); only the
    -- others are resolved one by one.
    SELECT array_agg(coalesce(d.udid, vouch_udid_resolve(x.u)) ORDER BY x.i) INTO resolved
    FROM unnest(p_udids) WITH ORDINALITY AS x(u, i) LEFT JOIN devices d ON d.udid = x.u;
    -- The devices first, in one order, as a device's request takes them (its enrollment, then
    -- its device row): the INSERT below locks no row, so without these locks it would hold a
    -- list's uncommitted pending entries with no row locked, and the scheduler's tick (which
    -- skips locked rows) or a TokenUpdate could take one of those devices and then wait for
    -- this statement while its UPDATE of the devices waits for them.
    PERFORM FROM enrollments e JOIN devices d ON d.udid = e.udid
    WHERE e.udid = ANY (resolved) ORDER BY e.udid FOR KEY SHARE OF e, d;
    WITH firsts AS (
        SELECT DISTINCT ON (x.udid) x.udid, x.command_uuid, x.nonce
        FROM unnest(resolved, p_command_uuids, p_nonces) WITH ORDINALITY
             AS x(udid, command_uuid, nonce, i)
        ORDER BY x.udid, x.i),
    requested AS (
        INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, generation)
        SELECT f.command_uuid, f.udid, f.nonce, p_reason, e.generation
        FROM firsts f JOIN enrollments e ON e.udid = f.udid
        ON CONFLICT (udid) WHERE answered_at IS NULL DO NOTHING
        RETURNING attestation_requests.udid, attestation_requests.command_uuid)
    SELECT array_agg(r.udid), array_agg(r.command_uuid) INTO queued, queued_uuids
    FROM requested r;
    -- As vouch_request_attestation: the answer also tells the OS version.
    UPDATE devices d SET attestation_due_at = NULL, attestation_due_reason = NULL,
        info_due_at = NULL
    FROM unnest(queued) AS q(udid) WHERE d.udid = q.udid;
    -- Each mention: queued (its own request went in), else, for an enrolled device, the request
    -- pending (read by a later statement: it sees the ones just queued for a first mention).
    RETURN QUERY
        SELECT x.udid,
               CASE WHEN q.uuid IS NOT NULL THEN 'queued'
                    WHEN e.udid IS NULL THEN 'unknown_device'
                    ELSE 'pending' END,
               CASE WHEN q.uuid IS NOT NULL THEN q.uuid
                    WHEN e.udid IS NOT NULL THEN r.command_uuid END
        FROM unnest(resolved, p_command_uuids) WITH ORDINALITY AS x(udid, command_uuid, i)
        LEFT JOIN unnest(queued_uuids) AS q(uuid) ON q.uuid = x.command_uuid
        LEFT JOIN enrollments e ON e.udid = x.udid
        LEFT JOIN attestation_requests r ON r.udid = x.udid AND r.answered_at IS NULL
        ORDER BY x.i;
END
$$;

-- Ends a pending request without a verdict: an error answer (p_outcome 'error', p_error the
-- device's Status), no answer within answer_timeout ('error', 'NoAnswer': the command leaves the
-- queue with its pending row, a retry asks again), or a re-enrollment or an operator's cancel
-- ('canceled'). Errors are retried; past retry_limit the device's verdict becomes failed
-- (no_answer): silence never keeps an older one. An error writes an attestations row, which
-- keeps the request: its row leaves; a canceled request keeps its row (answered_at, outcome).
CREATE OR REPLACE FUNCTION vouch_end_attestation_request(p_udid text, p_command_uuid text,
                                                         p_outcome text, p_error text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    req attestation_requests;
    new_id bigint;
    give_up boolean;
BEGIN
    IF p_outcome = 'error' THEN
        -- Its attestations row (below) keeps the request: the pending row leaves.
        DELETE FROM attestation_requests
        WHERE attestation_requests.command_uuid = p_command_uuid AND udid = p_udid
          AND answered_at IS NULL
        RETURNING * INTO req;
    ELSE
        -- Canceled: no attestations row, so the row stays to keep its nonce and time.
        UPDATE attestation_requests SET answered_at = vouch_now(), outcome = p_outcome
        WHERE attestation_requests.command_uuid = p_command_uuid AND udid = p_udid
          AND answered_at IS NULL
        RETURNING * INTO req;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_outcome <> 'error' THEN
        PERFORM vouch_plan_attestation(p_udid, NULL);
        IF EXISTS (SELECT 1 FROM enrollments e
                   WHERE e.udid = p_udid AND e.identity_provisional AND e.enabled) THEN
            -- A provisional identity is not left waiting for a random re-check: asked again.
            UPDATE devices SET attestation_due_at = vouch_now(),
                attestation_due_reason = 'migration'
            WHERE udid = p_udid;
            PERFORM pg_notify('vouch_scheduler', '');
        END IF;
        RETURN;
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
    IF EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = p_udid AND e.identity_provisional) THEN
        -- A provisional identity gets no retry: an error or silence does not prove it.
        PERFORM vouch_migration_settle(p_udid, 'error', p_error, NULL);
        RETURN;
    END IF;
    IF give_up THEN
        PERFORM vouch_set_verdict(p_udid, new_id);
        IF vouch_wants('attestation.failed') THEN
            PERFORM vouch_emit_device('attestation.failed', p_udid, NULL);
        END IF;
    END IF;
    PERFORM vouch_plan_attestation(p_udid, 'error');
END
$$;

-- Stores the verdict vouchd computed for the answer to a pending request, and says whether it did:
-- false when no such request is pending any more; true when the row also keeps the answer itself,
-- as its shape p_answer (vouch_report); NULL when it stored the verdict only. The row keeps the
-- answer when it gives it back whole: the answer's time is its received_at, and the request (its
-- own queue entry) was never put off (NotNow); otherwise command_results keeps it. A verified
-- answer binds the serial when the enrollment did not state one; one of Apple's shape keeps its
-- leaf and its Sub CA's SHA-256.
--
-- The verdict is parsed once (each -> of a json value parses the whole text again, chain
-- included), and the device row is written once: the verdict, what the answer says of the OS,
-- and the next plan in one UPDATE (each UPDATE of a devices row is a new row version with new
-- entries in its indexes). An answer that changes the OS takes the longer way, so that the
-- device.os_changed it raises shows the new verdict.
CREATE OR REPLACE FUNCTION vouch_record_attestation(p_udid text, p_command_uuid text,
                                                    p_verdict json, p_answer text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    chain bytea[];
    cas bytea[];
    req attestation_requests;
    v record;
    p scheduler_policy;
    d devices;
    new_id bigint;
    covered boolean;
    os text;
    build text;
    plan record;
    clock timestamptz := vouch_now();
    answer text;
    properties_packed text;
    checked_packed text;
BEGIN
    -- The attestations row written below keeps what the request was (command UUID, nonce,
    -- reason, time, generation): the pending row leaves (vouch_device_requests).
    DELETE FROM attestation_requests
    WHERE command_uuid = p_command_uuid AND udid = p_udid AND answered_at IS NULL
    RETURNING * INTO req;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF req.not_now_count IS NULL THEN
        answer := p_answer;
    END IF;
    SELECT * INTO v FROM json_to_record(p_verdict) AS x(
        status text, freshness text, reason text, chain text[], leaf_sha256 text,
        generated_at timestamptz, expires_at timestamptz, properties json, cached_nonce text,
        checked json, reported json, properties_packed text, checked_packed text);
    chain := ARRAY(SELECT decode(c, 'base64') FROM unnest(v.chain) c);
    IF v.status = 'verified' AND cardinality(chain) = 2 THEN
        cas := vouch_keep_cas(chain[2:]);
        chain := chain[1:1];
    END IF;
    -- Kept as their values when they have vouchd's shape: packed by vouchd, which wrote them
    -- (server/attestation/attest_json.c), or else here (vouch_json_pack).
    properties_packed := coalesce(v.properties_packed,
                                  vouch_json_pack(v.properties, vouch_properties_keys(), p_udid));
    checked_packed := coalesce(v.checked_packed,
                               vouch_json_pack(v.checked, vouch_checked_keys(), p_udid));
    INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at, status,
                              freshness, reason, chain, ca_sha256, leaf_sha256, generated_at,
                              expires_at, properties, generation, cached_nonce, checked,
                              answer, properties_packed, checked_packed)
    VALUES (p_udid, p_command_uuid, req.nonce, req.reason, req.requested_at,
            v.status, v.freshness, v.reason, chain, cas,
            decode(v.leaf_sha256, 'hex'), v.generated_at, v.expires_at,
            CASE WHEN properties_packed IS NULL THEN v.properties END,
            req.generation, decode(v.cached_nonce, 'hex'),
            CASE WHEN checked_packed IS NULL THEN v.checked END, answer, properties_packed,
            checked_packed)
    RETURNING id INTO new_id;
    -- An OS change is covered only by an attestation made on the new OS (a fresh one), or by a
    -- device that cannot attest. A cached answer may predate the change: it covers nothing.
    covered := (v.status = 'verified' AND v.freshness = 'fresh') OR v.status = 'unsupported';
    os := v.reported->>'os_version';
    build := v.reported->>'build_version';
    SELECT * INTO d FROM devices WHERE udid = p_udid;
    IF (d.os_version IS NOT NULL AND os IS DISTINCT FROM d.os_version AND os IS NOT NULL)
       OR (d.build_version IS NOT NULL AND build IS DISTINCT FROM d.build_version
           AND build IS NOT NULL) THEN
        -- The verdict first: the device.os_changed raised by this answer shows it.
        PERFORM vouch_set_verdict(p_udid, new_id);
        PERFORM vouch_observe_os(p_udid, os, build, covered);
        UPDATE devices SET
            serial_number = CASE WHEN v.status = 'verified' AND serial_number IS NULL
                                 THEN v.properties->>'serial_number'
                                 ELSE serial_number END,
            os_change_pending = os_change_pending AND NOT covered,
            info_due_at = clock + (SELECT info_interval FROM scheduler_policy),
            last_seen_at = clock  -- the device answered: vouch_report need not write it again
        WHERE udid = p_udid;
        PERFORM vouch_plan_attestation(p_udid, v.status);
    ELSIF FOUND THEN
        SELECT * INTO p FROM scheduler_policy;
        -- An assignment, not SELECT ... FROM: PL/pgSQL evaluates it as a simple expression
        -- (no executor start-up nor function scan for one row).
        plan := vouch_plan_next(p, p_udid, d.attestation_retries,
                                d.os_change_pending AND NOT covered, v.status);
        UPDATE devices SET
            attestation_status = v.status,
            attestation_id = new_id,
            attestation_expires_at = CASE WHEN v.status = 'verified'
                                          THEN least(v.expires_at, v.generated_at + p.max_age)
                                     END,
            updated_at = clock,
            -- The same OS as known, or the first sighting of it.
            os_version = coalesce(os, os_version),
            build_version = coalesce(build, build_version),
            serial_number = CASE WHEN v.status = 'verified' AND serial_number IS NULL
                                 THEN v.properties->>'serial_number'
                                 ELSE serial_number END,
            info_due_at = clock + p.info_interval,
            last_seen_at = clock,  -- the device answered: vouch_report need not write it again
            attestation_due_at = plan.due,
            attestation_due_reason = plan.why,
            attestation_retries = plan.retries,
            os_change_pending = plan.os_change_pending
        WHERE udid = p_udid;
        IF plan.due <= clock THEN
            PERFORM pg_notify('vouch_scheduler', '');
        END IF;
    END IF;
    IF v.status IN ('verified', 'failed') THEN
        -- The attestations table is their history: an event only for a receiver that wants it.
        IF vouch_wants('attestation.' || v.status) THEN
            PERFORM vouch_emit_device('attestation.' || v.status, p_udid, NULL);
        END IF;
    END IF;
    -- A provisional (migrated) identity: proven, kept provisional or released (45_migration.sql).
    -- Looked at here first: nearly every enrollment is not, and the call costs a row lock.
    IF EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = p_udid AND e.identity_provisional) THEN
        PERFORM vouch_migration_settle(p_udid, v.status, v.reason, v.generated_at);
    END IF;
    RETURN CASE WHEN answer IS NOT NULL THEN true END;
END
$$;

-- What a device says about its OS (Authenticate, any DeviceInformation answer). A change of
-- version or build from what was known is stored, emits device.os_changed and, unless p_covered
-- (the same answer carries a fresh attestation made on the new OS), leaves an OS change for the
-- scheduler to attest. Returns whether it changed; the caller plans.
CREATE OR REPLACE FUNCTION vouch_observe_os(p_udid text, p_os_version text, p_build_version text,
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
-- The plan itself, written by nobody: when the device is due next (NULL: not planned) and why,
-- and the retry count and pending OS change that go with it, from the device's retry count and
-- pending OS change as they stand before p_outcome.
CREATE OR REPLACE FUNCTION vouch_plan_next(
    p scheduler_policy, p_udid text, p_retries integer, p_os_change_pending boolean,
    p_outcome text,
    OUT due timestamptz, OUT why text, OUT retries integer, OUT os_change_pending boolean)
LANGUAGE plpgsql AS $$
DECLARE
    gen integer;
    clock timestamptz := vouch_now();
    generated timestamptz;
    earliest timestamptz;
    deadline timestamptz;
    random_at timestamptz;
BEGIN
    retries := p_retries;
    os_change_pending := p_os_change_pending;
    IF p_outcome IN ('failed', 'error') THEN
        retries := retries + 1;
    ELSIF p_outcome IS NOT NULL THEN
        retries := 0;
    END IF;
    SELECT e.generation INTO gen FROM enrollments e WHERE e.udid = p_udid AND e.enabled;
    IF gen IS NULL
       OR EXISTS (SELECT 1 FROM attestation_requests r
                  WHERE r.udid = p_udid AND r.answered_at IS NULL) THEN
        due := NULL;
    ELSIF p_outcome IN ('failed', 'error') AND retries <= p.retry_limit THEN
        due := clock + p.retry_delay * (2 ^ (retries - 1));
        why := 'retry';
    ELSE
        IF retries > p.retry_limit THEN
            retries := 0;  -- given up: back to the normal plan
            os_change_pending := false;
        END IF;
        SELECT max(a.generated_at) INTO generated FROM attestations a
        WHERE a.udid = p_udid AND a.status = 'verified' AND a.generation = gen
          AND a.source = 'mdm';  -- the ACME route's attestation is not DeviceInformation's
        earliest := greatest(clock, coalesce(generated + p.min_interval, clock));
        IF os_change_pending THEN
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
END
$$;

CREATE OR REPLACE FUNCTION vouch_plan_attestation(p_udid text, p_outcome text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p scheduler_policy;
    d devices;
    plan record;
BEGIN
    SELECT * INTO p FROM scheduler_policy;
    SELECT * INTO d FROM devices WHERE udid = p_udid;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO plan
    FROM vouch_plan_next(p, p_udid, d.attestation_retries, d.os_change_pending, p_outcome);
    UPDATE devices SET attestation_due_at = plan.due, attestation_due_reason = plan.why,
        attestation_retries = plan.retries, os_change_pending = plan.os_change_pending
    WHERE udid = p_udid;
    IF plan.due <= vouch_now() THEN
        PERFORM pg_notify('vouch_scheduler', '');
    END IF;
END
$$;
