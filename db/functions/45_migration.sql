-- Enrollments moved in from NanoMDM or MicroMDM (/migration, issue 25) and how a migrated
-- identity is proven: a provisional binding by the device's first signed request, made
-- permanent by an attestation that names the migrated device, released by anything else.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- One check-in plist sent to /migration, in one transaction: an Authenticate creates or updates
-- the device and its migrated enrollment (no certificate, not enabled); a TokenUpdate stores the
-- push token, PushMagic, topic and unlock token of a migrated enrollment and enables it (it can
-- be pushed; it is not asked anything until its first signed request). Returns
--   'ok'               something was written (and an mdm.Authenticate or mdm.TokenUpdate event,
--                      as NanoMDM's migration handler, which is its check-in handler, emits)
--   'unchanged'        the same plist again, or a migrated enrollment whose identity is bound
--                      since (the device itself speaks for it now): nothing written
--   'no_authenticate'  a TokenUpdate for a UDID without an enrollment
--   'already_enrolled' a UDID with an enrollment of its own (not migrated): left alone, unless
--                      it checked out (then an Authenticate migrates it afresh)
-- p_kind is 'Authenticate' or 'TokenUpdate'; p_raw the plist as sent, for the event.
CREATE OR REPLACE FUNCTION vouch_migrate(
    p_kind text, p_udid text, p_topic text, p_serial_number text, p_model text,
    p_model_name text, p_product_name text, p_os_version text, p_build_version text,
    p_device_name text, p_imei text, p_meid text, p_token bytea, p_push_magic text,
    p_unlock_token bytea, p_raw bytea)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    e enrollments;
    d devices;
    tally integer;
    converted boolean := false;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF FOUND AND e.migrated_at IS NULL THEN
        IF p_kind <> 'Authenticate' OR e.enabled OR e.checked_out_at IS NULL THEN
            RETURN 'already_enrolled';
        END IF;
        -- It checked out of Vouch and enrolled elsewhere since: migrated afresh, a new
        -- generation without a certificate (its old one may claim it, and must then attest).
        UPDATE enrollments SET identity_cert_sha256 = vouch_unbound_cert(),
            migrated_at = vouch_now(), identity_provisional = false, identity_reason = NULL,
            generation = generation + 1, push_token = NULL, push_magic = NULL,
            migrated_push_token = NULL, migrated_push_magic = NULL, migrated_unlock_token = NULL,
            token_updated_at = NULL, session_started_at = NULL, token_update_tally = 0,
            authenticated_at = vouch_now()
        WHERE udid = p_udid
        RETURNING * INTO e;
        converted := true;
        DELETE FROM command_queue WHERE udid = p_udid;
        UPDATE attestation_requests SET answered_at = vouch_now(), outcome = 'canceled'
        WHERE udid = p_udid AND answered_at IS NULL;
        UPDATE devices SET attestation_status = 'none', attestation_id = NULL,
            attestation_expires_at = NULL, attestation_retries = 0, os_change_pending = false
        WHERE udid = p_udid;
    END IF;
    IF FOUND AND e.identity_cert_sha256 <> vouch_unbound_cert() THEN
        RETURN 'unchanged';  -- bound (provisionally or for good): the device's own word counts
    END IF;

    IF p_kind = 'TokenUpdate' THEN
        IF NOT FOUND THEN
            RETURN 'no_authenticate';
        END IF;
        IF e.enabled AND e.topic = p_topic AND e.push_token = p_token
           AND e.push_magic = p_push_magic
           AND e.unlock_token IS NOT DISTINCT FROM coalesce(p_unlock_token, e.unlock_token) THEN
            RETURN 'unchanged';
        END IF;
        UPDATE enrollments SET
            topic = p_topic,
            push_token = p_token,
            push_magic = p_push_magic,
            unlock_token = coalesce(p_unlock_token, unlock_token),
            migrated_topic = p_topic,
            migrated_push_token = p_token,
            migrated_push_magic = p_push_magic,
            migrated_unlock_token = coalesce(p_unlock_token, unlock_token),
            enabled = true,
            token_updated_at = vouch_now(),
            token_dead_at = NULL,
            checked_out_at = NULL,
            token_update_tally = token_update_tally + 1
        WHERE udid = p_udid
        RETURNING token_update_tally INTO tally;
        PERFORM vouch_emit_mdm('mdm.TokenUpdate', p_udid, p_raw, NULL, NULL, tally);
        RETURN 'ok';
    END IF;

    -- Authenticate. A device row may exist without an enrollment (its enrollment went away).
    SELECT * INTO d FROM devices WHERE udid = p_udid FOR UPDATE;
    IF FOUND AND NOT converted AND e.udid IS NOT NULL AND e.topic = p_topic
       AND d.serial_number IS NOT DISTINCT FROM coalesce(p_serial_number, d.serial_number)
       AND d.model IS NOT DISTINCT FROM coalesce(p_model, d.model)
       AND d.model_name IS NOT DISTINCT FROM coalesce(p_model_name, d.model_name)
       AND d.product_name IS NOT DISTINCT FROM coalesce(p_product_name, d.product_name)
       AND d.os_version IS NOT DISTINCT FROM coalesce(p_os_version, d.os_version)
       AND d.build_version IS NOT DISTINCT FROM coalesce(p_build_version, d.build_version)
       AND d.device_name IS NOT DISTINCT FROM coalesce(p_device_name, d.device_name)
       AND d.imei IS NOT DISTINCT FROM coalesce(p_imei, d.imei)
       AND d.meid IS NOT DISTINCT FROM coalesce(p_meid, d.meid) THEN
        RETURN 'unchanged';
    END IF;
    PERFORM vouch_store_device_facts(p_udid, p_serial_number, p_model, p_model_name,
                                     p_product_name, p_os_version, p_build_version,
                                     p_device_name, p_imei, p_meid, false);
    INSERT INTO enrollments AS x (udid, topic, enabled, identity_cert_sha256, authenticated_at,
                                  migrated_at, migrated_topic)
    VALUES (p_udid, p_topic, false, vouch_unbound_cert(), vouch_now(), vouch_now(), p_topic)
    ON CONFLICT (udid) DO UPDATE SET topic = EXCLUDED.topic, migrated_topic = EXCLUDED.topic;
    PERFORM vouch_emit_mdm('mdm.Authenticate', p_udid, p_raw, NULL, NULL, NULL);
    RETURN 'ok';
END
$$;

-- A signed request of p_cert for p_udid, before its identity check: when p_udid is a migrated
-- enrollment no certificate is bound to, p_cert binds it provisionally (a new generation) and an
-- attestation is planned at once (reason 'migration': the scheduler asks within its rate limit
-- and pushes). Not when p_cert was released from this UDID before (migration_refusals), is bound
-- to another device, or is an ACME certificate of another device or revoked: then nothing
-- changes and the identity check refuses it as before. Returns whether it bound. Locks the
-- enrollment row, as the identity check that follows does.
CREATE OR REPLACE FUNCTION vouch_migration_claim(p_udid text, p_cert bytea) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    e enrollments;
    owner text;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF NOT FOUND OR e.migrated_at IS NULL OR e.identity_cert_sha256 <> vouch_unbound_cert()
       OR p_cert = vouch_unbound_cert() THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM migration_refusals r
               WHERE r.udid = p_udid AND r.cert_sha256 = p_cert)
       OR EXISTS (SELECT 1 FROM acme_certificates a
                  WHERE a.sha256 = p_cert
                    AND (a.revoked_at IS NOT NULL OR a.udid IS DISTINCT FROM p_udid)) THEN
        RETURN false;
    END IF;
    INSERT INTO identity_certs AS c (sha256, udid) VALUES (p_cert, p_udid)
    ON CONFLICT (sha256) DO UPDATE SET bound_at = vouch_now() WHERE c.udid = EXCLUDED.udid
    RETURNING udid INTO owner;
    IF owner IS NULL THEN
        RETURN false;  -- bound to another device
    END IF;
    UPDATE enrollments SET identity_cert_sha256 = p_cert, identity_provisional = true,
        identity_reason = NULL, generation = generation + 1, session_started_at = NULL,
        provisional_until = vouch_now() + (SELECT answer_timeout FROM scheduler_policy)
    WHERE udid = p_udid;
    UPDATE devices SET attestation_status = 'none', attestation_id = NULL,
        attestation_expires_at = NULL, attestation_retries = 0, os_change_pending = false,
        attestation_due_at = vouch_now(), attestation_due_reason = 'migration',
        last_seen_at = vouch_now()
    WHERE udid = p_udid;
    PERFORM pg_notify('vouch_scheduler', '');
    RETURN true;
END
$$;

-- After an attestation request of a device ended (an answer's verdict, an error answer, no
-- answer in time, a cancel): what it says of a provisional binding (docs/protocol.md, "Migrated
-- identities").
--   verified                        permanent: vouchd checked the attested UDID and serial
--                                   against the migrated device's
--   failed, nonce_mismatch or       still provisional: a cached attestation (Apple makes one a
--   stale_attestation, with a leaf  week, attestation_min_interval) answers an earlier nonce;
--                                   asked again once Apple makes a new one, and the binding's
--                                   deadline moves past that request
--   failed, udid_mismatch or        released, and the certificate never binds this UDID again:
--   serial_mismatch; unsupported    it attested another device, or cannot attest at all (a
--                                   device that cannot attest cannot prove a migrated identity;
--                                   the answer's OS is the device's word, so an impostor could
--                                   claim an old OS)
--   anything else (another failed   released (vouch_migration_release), not banned
--   verdict, an error answer,
--   silence past answer_timeout)
CREATE OR REPLACE FUNCTION vouch_migration_settle(p_udid text, p_status text, p_reason text,
                                                  p_generated_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e enrollments;
    due timestamptz;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF NOT FOUND OR NOT e.identity_provisional THEN
        RETURN;
    END IF;
    IF p_status = 'verified' THEN
        UPDATE enrollments SET identity_provisional = false, identity_reason = NULL,
            provisional_until = NULL
        WHERE udid = p_udid;
        RETURN;
    END IF;
    IF p_status = 'failed' AND p_reason IN ('nonce_mismatch', 'stale_attestation')
       AND p_generated_at IS NOT NULL THEN
        due := greatest(vouch_now(), p_generated_at + (SELECT min_interval FROM scheduler_policy));
        UPDATE devices SET attestation_due_reason = 'migration', attestation_due_at = due
        WHERE udid = p_udid;
        UPDATE enrollments
        SET provisional_until = due + (SELECT answer_timeout FROM scheduler_policy)
        WHERE udid = p_udid;
        RETURN;
    END IF;
    PERFORM vouch_migration_release(p_udid,
        p_status = 'unsupported'
            OR (p_status = 'failed' AND p_reason IN ('udid_mismatch', 'serial_mismatch')),
        p_status, p_reason);
END
$$;

-- Releases the provisional binding of p_udid (its enrollment row locked by the caller): the
-- enrollment is unbound again and says identity_unproven, the push credentials /migration
-- brought are put back (a claimant's TokenUpdate leaves nothing of its own), nothing of the
-- unproven generation stays queued or planned, and identity.unproven is emitted. p_ban: the
-- certificate never binds this UDID again (migration_refusals); without it, the next signed
-- request of a trusted certificate may claim the UDID, as a device back from a week in a drawer
-- must.
CREATE OR REPLACE FUNCTION vouch_migration_release(p_udid text, p_ban boolean, p_status text,
                                                   p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    e enrollments;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid AND identity_provisional FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE enrollments SET identity_cert_sha256 = vouch_unbound_cert(),
        identity_provisional = false, identity_reason = 'identity_unproven',
        provisional_until = NULL, session_started_at = NULL,
        topic = coalesce(migrated_topic, topic),
        push_token = migrated_push_token,
        push_magic = migrated_push_magic,
        unlock_token = migrated_unlock_token,
        enabled = migrated_push_token IS NOT NULL,
        checked_out_at = NULL,
        token_dead_at = CASE WHEN push_token IS NOT DISTINCT FROM migrated_push_token
                             THEN token_dead_at END
    WHERE udid = p_udid;
    DELETE FROM identity_certs WHERE sha256 = e.identity_cert_sha256 AND udid = p_udid;
    IF p_ban THEN
        INSERT INTO migration_refusals (udid, cert_sha256)
        VALUES (p_udid, e.identity_cert_sha256)
        ON CONFLICT DO NOTHING;
    END IF;
    DELETE FROM command_queue WHERE udid = p_udid;
    UPDATE attestation_requests SET answered_at = vouch_now(), outcome = 'canceled'
    WHERE udid = p_udid AND answered_at IS NULL;
    -- What the unproven certificate answered says nothing of the migrated device.
    UPDATE devices SET attestation_status = 'none', attestation_id = NULL,
        attestation_expires_at = NULL, attestation_retries = 0, os_change_pending = false,
        attestation_due_at = NULL, attestation_due_reason = NULL, info_due_at = NULL,
        updated_at = vouch_now()
    WHERE udid = p_udid;
    PERFORM vouch_emit_device('identity.unproven', p_udid, jsonb_build_object(
        'reason', 'identity_unproven',
        'certificate_sha256', encode(e.identity_cert_sha256, 'hex'),
        'attestation_status', p_status,
        'attestation_reason', p_reason,
        'banned', p_ban));
END
$$;

-- The scheduler's housekeeping: provisional bindings past their deadline (provisional_until:
-- answer_timeout after the claim, or after the request a cached answer put off) are released,
-- however their requests ended (an Authenticate or a CheckOut plans none; a cancel could keep
-- one going). Enrollment rows first, skipped when locked, as a device's request takes them.
CREATE OR REPLACE FUNCTION vouch_migration_expire(p_limit integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    late text;
BEGIN
    FOR late IN
        SELECT e.udid FROM enrollments e
        WHERE e.identity_provisional AND e.provisional_until < vouch_now()
        ORDER BY e.provisional_until LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM vouch_migration_release(late, false, 'none', 'provisional_expired');
    END LOOP;
END
$$;

-- The topics of the push certificates vouchd instance p_instance has (none: NULL or empty).
CREATE OR REPLACE FUNCTION vouch_set_push_topics(p_instance text, p_topics text[])
RETURNS void LANGUAGE sql AS $$
    DELETE FROM push_topics WHERE instance = p_instance
        AND topic <> ALL (coalesce(p_topics, '{}'));
    INSERT INTO push_topics (instance, topic)
    SELECT p_instance, t FROM unnest(coalesce(p_topics, '{}')) AS t
    ON CONFLICT (instance, topic) DO UPDATE SET updated_at = now();
$$;

-- GET /v1/migration (docs/api.md): the migrated enrollments by the state of their identity,
-- and the topics of enrollments no installed push certificate serves. p_on: migration = on.
CREATE OR REPLACE FUNCTION vouch_migration_status(p_on boolean) RETURNS text
LANGUAGE sql STABLE AS $$
    WITH clock AS MATERIALIZED (SELECT vouch_now() AS now, vouch_unbound_cert() AS unbound),
    m AS (
        SELECT e.identity_cert_sha256 <> c.unbound AS bound, e.identity_provisional,
               e.identity_reason,
               d.attestation_status = 'verified' AND d.attestation_expires_at > c.now
                   AS attested
        FROM clock c, enrollments e JOIN devices d ON d.udid = e.udid
        WHERE e.migrated_at IS NOT NULL),
    counts AS (
        SELECT count(*) AS migrated,
               count(*) FILTER (WHERE NOT bound AND identity_reason IS NULL) AS waiting,
               count(*) FILTER (WHERE bound AND identity_provisional) AS provisional,
               count(*) FILTER (WHERE bound AND NOT identity_provisional) AS bound,
               count(*) FILTER (WHERE bound AND NOT identity_provisional AND attested)
                   AS attested,
               count(*) FILTER (WHERE NOT bound AND identity_reason IS NOT NULL) AS refused
        FROM m),
    -- Each topic asked once, not each enrollment (a HAVING without an aggregate would be
    -- evaluated per row: the planner moves it into the WHERE).
    counted AS MATERIALIZED (
        SELECT e.topic, count(*) AS devices FROM enrollments e
        WHERE e.enabled
        GROUP BY e.topic),
    topics AS (
        SELECT c.topic, c.devices FROM counted c
        WHERE vouch_push_topics_known() AND NOT vouch_topic_installed(c.topic))
    SELECT json_build_object(
        'migration', CASE WHEN p_on THEN 'on' ELSE 'off' END,
        'devices', (SELECT row_to_json(c) FROM counts c),
        'topics_without_certificate', coalesce(
            (SELECT json_agg(json_build_object('topic', t.topic, 'devices', t.devices)
                             ORDER BY t.topic) FROM topics t), '[]'))::text
$$;
