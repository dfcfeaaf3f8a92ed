-- 0001: devices, enrollments (with their push state), identity bindings, commands, the per-device
-- queue and results, and Managed Device Attestation: the nonces asked, every answer with its
-- verdict, and each device's posture.
--
-- The MDM state changes of one device request happen in one server-side function call, so each
-- request is one round trip and one transaction: a report answered 200 is committed with the
-- command handed back in the same reply.
--
-- Large values (command bodies, reports, chains, event bodies) are TOASTed with lz4, several
-- times cheaper than the default pglz on every report written.
--
-- Every time written or compared here comes from vouch_now(): the database's clock, which tests
-- move forward (vouch_clock.skew) to live through weeks and years in seconds. vouchd verifies
-- attestations at the same clock.

CREATE TABLE vouch_clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    skew     interval NOT NULL DEFAULT interval '0'  -- zero in production
);
INSERT INTO vouch_clock DEFAULT VALUES;

-- PL/pgSQL, not SQL: an SQL function with a sub-select cannot be inlined and is parsed again at
-- every call from PL/pgSQL (21 µs); this one keeps its plan for the session (8 µs).
CREATE FUNCTION vouch_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN now() + coalesce((SELECT skew FROM vouch_clock), interval '0');
END
$$;

-- The attestation policy every instance schedules by (vouchd writes its configuration here at
-- start: see vouch_set_policy). This row is also the fleet-wide request budget: scheduler ticks
-- of all instances take turns on its lock.
CREATE TABLE scheduler_policy (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    max_age       interval NOT NULL DEFAULT interval '30 days',
    min_interval  interval NOT NULL DEFAULT interval '7 days',
    mean_interval interval NOT NULL DEFAULT interval '14 days',
    info_interval interval NOT NULL DEFAULT interval '24 hours',
    rate_limit    integer  NOT NULL DEFAULT 1000,  -- scheduled requests per minute, fleet-wide
    retry_limit   integer  NOT NULL DEFAULT 3,
    retry_delay   interval NOT NULL DEFAULT interval '1 hour',
    CHECK (min_interval > interval '0' AND mean_interval > min_interval
           AND max_age >= min_interval AND info_interval > interval '0' AND rate_limit > 0
           AND retry_limit >= 0 AND retry_delay > interval '0')
);
INSERT INTO scheduler_policy DEFAULT VALUES;

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
    created_at    timestamptz NOT NULL DEFAULT vouch_now(),
    updated_at    timestamptz NOT NULL DEFAULT vouch_now(),
    last_seen_at  timestamptz,
    -- The posture: the newest verdict (errors excluded), or pending while a request is out.
    attestation_status text NOT NULL DEFAULT 'none'
        CHECK (attestation_status IN ('none', 'pending', 'verified', 'failed', 'unsupported')),
    attestation_id bigint,  -- REFERENCES attestations, added below
    -- The scheduler's plan (vouch_plan_attestation): when to ask next and why. NULL while a
    -- request is out or the device is not enrolled.
    attestation_due_at     timestamptz,
    attestation_due_reason text
        CHECK (attestation_due_reason IN ('os_change', 'random', 'max_age', 'retry')),
    attestation_retries    integer NOT NULL DEFAULT 0,  -- failed answers in a row
    -- An OS version or build change not yet covered by an attestation made after it.
    os_changed_at          timestamptz,
    os_change_pending      boolean NOT NULL DEFAULT false,
    -- The next light DeviceInformation query (OS version and build); NULL while one is out.
    info_due_at            timestamptz
);
CREATE INDEX devices_attestation_due ON devices (attestation_due_at)
    WHERE attestation_due_at IS NOT NULL;
CREATE INDEX devices_info_due ON devices (info_due_at) WHERE info_due_at IS NOT NULL;

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
    token_dead_at        timestamptz,
    -- TokenUpdates since the last Authenticate (the web-hooks' token_update_tally).
    token_update_tally   integer NOT NULL DEFAULT 0
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
    bound_at  timestamptz NOT NULL DEFAULT vouch_now()
);
CREATE INDEX identity_certs_udid ON identity_certs (udid);

-- A command is stored once, however many devices it targets.
CREATE TABLE commands (
    command_uuid text PRIMARY KEY,
    request_type text NOT NULL,
    body         bytea COMPRESSION lz4 NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT vouch_now()
);

-- Pending work only: an entry leaves the queue when its result arrives, so the queue stays as
-- large as the work still to do.
CREATE TABLE command_queue (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    udid          text NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    command_uuid  text NOT NULL REFERENCES commands ON DELETE CASCADE,
    priority      smallint NOT NULL DEFAULT 0,
    queued_at     timestamptz NOT NULL DEFAULT vouch_now(),
    not_now_at    timestamptz,
    not_now_count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (udid, command_uuid)
);
CREATE INDEX command_queue_next ON command_queue (udid, priority DESC, id);
CREATE INDEX command_queue_command ON command_queue (command_uuid);
CREATE INDEX command_queue_age ON command_queue (queued_at);

-- Finished commands, one row per device and command; pruned after result_retention.
CREATE TABLE command_results (
    udid          text NOT NULL REFERENCES devices ON DELETE CASCADE,
    command_uuid  text NOT NULL,
    request_type  text,
    status        text NOT NULL
                  CHECK (status IN ('Acknowledged', 'Error', 'CommandFormatError')),
    report        bytea COMPRESSION lz4 NOT NULL,
    queued_at     timestamptz,
    result_at     timestamptz NOT NULL DEFAULT vouch_now(),
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
    reason       text NOT NULL CHECK (reason IN ('enrollment', 'os_change', 'random', 'max_age',
                                                 'operator', 'retry')),
    requested_at timestamptz NOT NULL DEFAULT vouch_now(),
    answered_at  timestamptz,
    outcome      text CHECK (outcome IN ('answered', 'error', 'canceled'))
);
-- At most one pending request per device.
CREATE UNIQUE INDEX attestation_requests_pending ON attestation_requests (udid)
    WHERE answered_at IS NULL;
CREATE INDEX attestation_requests_device ON attestation_requests (udid, requested_at);
-- The fleet-wide rate limit counts the scheduler's requests of the last minute.
CREATE INDEX attestation_requests_recent ON attestation_requests (requested_at);

-- Every answer, kept as history.
CREATE TABLE attestations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    udid           text NOT NULL REFERENCES devices ON DELETE CASCADE,
    command_uuid   text NOT NULL,
    nonce          bytea,
    request_reason text,
    requested_at   timestamptz,
    received_at    timestamptz NOT NULL DEFAULT vouch_now(),
    status         text NOT NULL CHECK (status IN ('verified', 'failed', 'unsupported', 'error')),
    freshness      text CHECK (freshness IN ('fresh', 'cached', 'unknown')),
    reason         text,
    device_status  text NOT NULL DEFAULT 'Acknowledged',  -- the answer's Status
    chain          bytea[] COMPRESSION lz4,
    leaf_sha256    bytea,
    generated_at   timestamptz,
    expires_at     timestamptz,
    properties     json
);
CREATE INDEX attestations_device ON attestations (udid, id DESC);
CREATE INDEX attestations_received ON attestations (received_at);  -- for pruning

ALTER TABLE devices
    ADD FOREIGN KEY (attestation_id) REFERENCES attestations ON DELETE SET NULL;
CREATE INDEX devices_attestation_status ON devices (attestation_status, udid);

-- The outbox. An event is written in the transaction of the state change that causes it, as the
-- exact JSON document receivers get (vouch_emit); each configured receiver that takes its topic
-- gets a delivery row, which the dispatchers of all instances work through (leases, SKIP LOCKED).
CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    topic      text NOT NULL,
    udid       text REFERENCES devices ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    body       text COMPRESSION lz4 NOT NULL  -- the JSON sent, byte for byte (HMAC covers it)
);
CREATE INDEX events_device ON events (udid, id DESC);
CREATE INDEX events_age ON events (created_at);

-- Where events go: vouchd writes its webhook_url list and topics here at start (the last
-- instance to start wins, like the attestation policy).
CREATE TABLE webhook_receivers (
    url    text PRIMARY KEY,
    topics text[]  -- NULL: every topic
);

CREATE TABLE event_deliveries (
    event_id        bigint NOT NULL REFERENCES events ON DELETE CASCADE,
    receiver        text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,  -- an instance is sending it until then
    last_error      text,
    delivered_at    timestamptz,
    PRIMARY KEY (event_id, receiver)
);
CREATE INDEX event_deliveries_due ON event_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX event_deliveries_dead ON event_deliveries (event_id) WHERE status = 'dead';

-- STABLE, as to_char is: a SQL function more volatile than it is declared is not inlined.
CREATE FUNCTION vouch_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- ---- Events (the web-hook outbox) ----

-- The receivers of this deployment (vouchd's webhook_url and webhook_topics).
CREATE FUNCTION vouch_set_webhooks(p_urls text[], p_topics text[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM webhook_receivers WHERE url <> ALL (p_urls);
    INSERT INTO webhook_receivers (url, topics) SELECT u, p_topics FROM unnest(p_urls) u
    ON CONFLICT (url) DO UPDATE SET topics = EXCLUDED.topics;
$$;

-- Whether any receiver takes the topic. MDM events (which carry whole request bodies) are only
-- written then; compliance events are always kept, as the device's history.
CREATE FUNCTION vouch_wants(p_topic text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM webhook_receivers r
                   WHERE r.topics IS NULL OR p_topic = ANY (r.topics));
END
$$;

-- Stores an event: {"topic", "event_id", "created_at"} and the topic's own fields, as the exact
-- text receivers will get, with a delivery for every receiver that takes the topic.
CREATE FUNCTION vouch_emit(p_topic text, p_udid text, p_fields jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    new_id bigint;
    event_uuid uuid := gen_random_uuid();
    at timestamptz := vouch_now();
BEGIN
    INSERT INTO events (event_id, topic, udid, created_at, body)
    VALUES (event_uuid, p_topic, p_udid, at,
            (jsonb_build_object('topic', p_topic, 'event_id', event_uuid::text,
                                'created_at', vouch_time(at)) || p_fields)::text)
    RETURNING id INTO new_id;
    INSERT INTO event_deliveries (event_id, receiver, next_attempt_at)
    SELECT new_id, r.url, at FROM webhook_receivers r
    WHERE r.topics IS NULL OR p_topic = ANY (r.topics);
    IF FOUND THEN
        PERFORM pg_notify('vouch_events', '');
    END IF;
END
$$;

-- The NanoMDM/MicroMDM shape of an MDM message: "checkin_event" or "acknowledge_event", with
-- the report's status and command_uuid, or the TokenUpdate tally (NULL: left out). Nothing is
-- built unless a receiver takes the topic: most requests are not web-hooked.
CREATE FUNCTION vouch_emit_mdm(p_topic text, p_udid text, p_raw bytea, p_status text,
                               p_command_uuid text, p_tally integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_raw IS NULL OR NOT vouch_wants(p_topic) THEN
        RETURN;
    END IF;
    PERFORM vouch_emit(p_topic, p_udid, jsonb_build_object(
        CASE WHEN p_topic = 'mdm.Connect' THEN 'acknowledge_event' ELSE 'checkin_event' END,
        jsonb_build_object('udid', p_udid,
                           'raw_payload', translate(encode(p_raw, 'base64'), E'\n', ''),
                           'ids', jsonb_build_object('id', p_udid, 'type', 'Device'))
        || jsonb_strip_nulls(jsonb_build_object('status', p_status,
                                                'command_uuid', p_command_uuid,
                                                'token_update_tally', p_tally))));
END
$$;

-- A compliance event: the device object as it is now, and the topic's fields.
CREATE FUNCTION vouch_emit_device(p_topic text, p_udid text, p_fields jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vouch_emit(p_topic, p_udid,
                       jsonb_build_object('device', vouch_device_object(d)::jsonb)
                       || coalesce(p_fields, '{}'))
    FROM devices d WHERE d.udid = p_udid;
END
$$;

-- Takes up to p_limit deliveries that are due for this instance to send. Taking one moves its
-- next attempt p_lease_s ahead: if the instance dies before it answers, another sends it then
-- (at least once; receivers drop duplicates by event_id).
CREATE FUNCTION vouch_webhook_claim(p_limit integer, p_lease_s integer)
RETURNS TABLE (id bigint, receiver text, body text, attempts integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    clock timestamptz := vouch_now();
BEGIN
    RETURN QUERY
    WITH due AS (
        SELECT d.event_id, d.receiver FROM event_deliveries d
        WHERE d.status = 'pending' AND d.next_attempt_at <= clock
          AND d.receiver IN (SELECT url FROM webhook_receivers)
        ORDER BY d.next_attempt_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE event_deliveries d SET next_attempt_at = clock + make_interval(secs => p_lease_s)
        FROM due WHERE d.event_id = due.event_id AND d.receiver = due.receiver
        RETURNING d.event_id, d.receiver, d.attempts)
    SELECT t.event_id, t.receiver, e.body, t.attempts
    FROM taken t JOIN events e ON e.id = t.event_id;
END
$$;

-- Records a batch of attempts: delivered, or failed with an error and the delay before the next
-- attempt; a failed event older than p_max_age_s is dead. Returns the status of each.
CREATE FUNCTION vouch_webhook_results(p_ids bigint[], p_receivers text[], p_ok boolean[],
                                      p_errors text[], p_retry_s double precision[],
                                      p_max_age_s integer)
RETURNS TABLE (id bigint, receiver text, status text, age_s double precision)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    clock timestamptz := vouch_now();
BEGIN
    RETURN QUERY
    UPDATE event_deliveries d SET
        attempts = d.attempts + 1,
        status = CASE WHEN r.ok THEN 'delivered'
                      WHEN e.created_at + make_interval(secs => p_max_age_s)
                           < clock + make_interval(secs => r.retry_s) THEN 'dead'
                      ELSE 'pending' END,
        delivered_at = CASE WHEN r.ok THEN clock END,
        last_error = CASE WHEN r.ok THEN d.last_error ELSE r.error END,
        next_attempt_at = CASE WHEN r.ok THEN d.next_attempt_at
                               ELSE clock + make_interval(secs => r.retry_s) END
    FROM unnest(p_ids, p_receivers, p_ok, p_errors, p_retry_s)
             AS r(id, receiver, ok, error, retry_s)
    JOIN events e ON e.id = r.id
    WHERE d.event_id = r.id AND d.receiver = r.receiver AND d.status = 'pending'
    RETURNING d.event_id, d.receiver, d.status,
              extract(epoch FROM clock - e.created_at)::float8;
END
$$;

-- The outbox for operators: deliveries with a status (pending, dead, delivered), newest first,
-- before the cursor, as a JSON array.
CREATE FUNCTION vouch_event_list(p_status text, p_before bigint, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object(
               'id', x.event_id, 'event_id', e.event_id, 'topic', e.topic, 'udid', e.udid,
               'created_at', vouch_time(e.created_at), 'receiver', x.receiver,
               'status', x.status, 'attempts', x.attempts, 'last_error', x.last_error,
               'next_attempt_at', CASE WHEN x.status = 'pending'
                                       THEN vouch_time(x.next_attempt_at) END,
               'delivered_at', vouch_time(x.delivered_at))
           ORDER BY x.event_id DESC, x.receiver), '[]')::text
    FROM (SELECT * FROM event_deliveries d
          WHERE (p_status IS NULL OR d.status = p_status)
            AND (p_before IS NULL OR d.event_id < p_before)
          ORDER BY d.event_id DESC LIMIT p_limit) x
    JOIN events e ON e.id = x.event_id
$$;

-- Sends a dead (or pending) event again, now: the number of deliveries revived.
CREATE FUNCTION vouch_event_retry(p_id bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE event_deliveries SET status = 'pending', next_attempt_at = vouch_now()
    WHERE event_id = p_id AND status IN ('pending', 'dead');
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('vouch_events', '');
    END IF;
    RETURN n;
END
$$;

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
