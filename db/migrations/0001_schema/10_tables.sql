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

