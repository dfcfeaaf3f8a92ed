-- Check-in messages and the identity binding: Authenticate (enrollment generations),
-- TokenUpdate, CheckOut.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- The identity check every later request of a device passes: returns 'ok', 'unknown_device',
-- 'identity_mismatch' or 'identity_revoked' (an ACME certificate the operator or its account
-- revoked), and locks the enrollment row for the rest of the transaction. A migrated enrollment
-- no certificate is bound to is bound provisionally by the first one that may
-- (vouch_migration_claim); until then it has no certificate to match: identity_mismatch.
CREATE OR REPLACE FUNCTION vouch_check_identity(p_udid text, p_cert bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    bound bytea;
BEGIN
    SELECT identity_cert_sha256 INTO bound FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'unknown_device';
    END IF;
    IF bound <> p_cert
       -- A migrated enrollment's first signed request binds its certificate provisionally
       -- (45_migration.sql); any other enrollment is checked as it always was.
       AND (bound <> vouch_unbound_cert() OR NOT vouch_migration_claim(p_udid, p_cert)) THEN
        RETURN 'identity_mismatch';
    END IF;
    IF EXISTS (SELECT 1 FROM acme_certificates
               WHERE sha256 = p_cert AND revoked_at IS NOT NULL) THEN
        RETURN 'identity_revoked';
    END IF;
    RETURN 'ok';
END
$$;

-- An identity certificate Vouch issued over ACME speaks only for the device Apple attested in
-- its order: 'ok' (also for certificates of other CAs), 'identity_revoked', or
-- 'identity_mismatch' (kept as an identity.refused event).
CREATE OR REPLACE FUNCTION vouch_check_acme_identity(p_udid text, p_cert bytea) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c acme_certificates;
BEGIN
    SELECT * INTO c FROM acme_certificates WHERE sha256 = p_cert;
    IF NOT FOUND THEN
        RETURN 'ok';
    ELSIF c.revoked_at IS NOT NULL THEN
        RETURN 'identity_revoked';
    ELSIF c.udid IS DISTINCT FROM p_udid THEN
        PERFORM vouch_emit('identity.refused', NULL, jsonb_build_object(
            'reason', 'identity_mismatch',
            'detail', 'an Authenticate for another UDID than the certificate''s attested one',
            'udid', p_udid, 'attested_udid', c.udid, 'serial_number', c.serial_number,
            'certificate_serial', c.serial));
        RETURN 'identity_mismatch';
    END IF;
    RETURN 'ok';
END
$$;

-- Keeps the attestation of the ACME order that issued p_cert in the device's history, once per
-- generation (source 'acme'): it proved the identity key, in a leaf Apple made for the order's
-- challenge. The posture (devices.attestation_*) stays the DeviceInformation route's.
-- PL/pgSQL, not SQL: every Authenticate calls it, and a SQL function's statement is parsed and
-- planned at each call where PL/pgSQL keeps its plan.
CREATE OR REPLACE FUNCTION vouch_record_acme_attestation(p_udid text, p_cert bytea,
                                                         p_generation integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attestations (udid, command_uuid, nonce, request_reason, requested_at,
                              received_at, status, freshness, chain, ca_sha256, leaf_sha256,
                              generated_at, expires_at, properties, generation, checked, source)
    SELECT p_udid, 'acme:' || o.id, sha256(convert_to(o.token, 'UTF8')), 'acme_enrollment',
           o.created_at, o.validated_at, 'verified', 'fresh',
           -- the leaf here, its CAs once in attestation_cas (60_attestation.sql)
           CASE WHEN cardinality(o.chain) = 2 THEN o.chain[1:1] ELSE o.chain END,
           CASE WHEN cardinality(o.chain) = 2 THEN vouch_keep_cas(o.chain[2:]) END,
           o.leaf_sha256,
           o.generated_at, o.leaf_expires_at, o.properties, p_generation,
           json_build_object('udid', o.attested_udid, 'serial', o.attested_serial,
                             'at', vouch_time(o.validated_at), 'require_fresh', true,
                             'client_identifier', o.client_id,
                             'certificate_serial', c.serial),
           'acme'
    FROM acme_certificates c JOIN acme_orders o ON o.id = c.order_id
    WHERE c.sha256 = p_cert AND o.validated_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM attestations a
                      WHERE a.udid = p_udid AND a.source = 'acme'
                        AND a.command_uuid = 'acme:' || o.id AND a.generation = p_generation);
END
$$;

CREATE OR REPLACE FUNCTION vouch_authenticate(
    p_udid text, p_cert bytea, p_cert_not_after timestamptz,
    p_topic text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text,
    p_raw bytea, p_reenroll_refuse boolean, p_url_params jsonb DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    bound_udid text;
    pending text;
    e enrollments;
    new_binding boolean;
    acme_verdict text;
    gen integer;
    unproven boolean;
    takeover boolean := false;
BEGIN
    acme_verdict := vouch_check_acme_identity(p_udid, p_cert);
    IF acme_verdict <> 'ok' THEN
        RETURN acme_verdict;
    END IF;
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    new_binding := FOUND AND e.identity_cert_sha256 <> p_cert;
    -- A migrated identity not yet proven: an Authenticate binds it provisionally, as any signed
    -- request does (45_migration.sql); while provisional, no other certificate may. It changes
    -- nothing else: what the claimant says of the device (its serial above all, which the
    -- attestation is checked against) does not replace what /migration brought, the enrollment
    -- is not reset, and no web-hook event carries its word, until an attestation proves it.
    unproven := FOUND AND e.migrated_at IS NOT NULL
                AND (e.identity_provisional OR e.identity_cert_sha256 = vouch_unbound_cert());
    IF unproven AND EXISTS (SELECT 1 FROM acme_certificates a
                            WHERE a.sha256 = p_cert AND a.udid = p_udid) THEN
        -- A certificate vouchd's ACME server issued for a key Apple attested as this very UDID
        -- (vouch_check_acme_identity checked it): proof enough. It takes the UDID over from a
        -- provisional claimant (released, not banned) and enrolls as any Authenticate does.
        PERFORM vouch_migration_release(p_udid, false, 'none', 'acme_attested_identity');
        UPDATE enrollments SET identity_reason = NULL WHERE udid = p_udid
        RETURNING * INTO e;
        unproven := false;
        takeover := true;
    END IF;
    IF unproven THEN
        IF NOT new_binding THEN
            RETURN 'ok';  -- the provisional identity itself
        END IF;
        IF e.identity_provisional OR NOT vouch_migration_claim(p_udid, p_cert) THEN
            RETURN 'identity_mismatch';
        END IF;
        UPDATE identity_certs SET not_after = p_cert_not_after
        WHERE sha256 = p_cert;
        RETURN 'ok';
    END IF;
    IF new_binding AND p_reenroll_refuse AND e.enabled AND NOT takeover
       AND NOT e.reenroll_allowed THEN
        RETURN 'reenroll_refused';
    END IF;
    INSERT INTO identity_certs AS c (sha256, udid, not_after)
    VALUES (p_cert, p_udid, p_cert_not_after)
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

    PERFORM vouch_store_device_facts(p_udid, p_serial_number, p_model, p_model_name,
                                     p_product_name, p_os_version, p_build_version,
                                     p_device_name, p_imei, p_meid, true);

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
        token_update_tally = 0
    RETURNING generation INTO gen;
    PERFORM vouch_record_acme_attestation(p_udid, p_cert, gen);

    DELETE FROM command_queue WHERE udid = p_udid;
    SELECT r.command_uuid INTO pending FROM attestation_requests r
    WHERE r.udid = p_udid AND r.answered_at IS NULL;
    IF FOUND THEN
        PERFORM vouch_end_attestation_request(p_udid, pending, 'canceled', NULL);
        -- Ending it may have planned the next request: still nothing until the TokenUpdate.
        UPDATE devices SET attestation_due_at = NULL, attestation_due_reason = NULL,
            info_due_at = NULL
        WHERE udid = p_udid;
    END IF;
    -- (A migrated enrollment's first certificate is a binding, not a re-enrollment.)
    IF new_binding AND e.identity_cert_sha256 <> vouch_unbound_cert() THEN
        PERFORM vouch_emit_device('device.reenrolled', p_udid, jsonb_build_object(
            'previous_cert_sha256', encode(e.identity_cert_sha256, 'hex'),
            'cert_sha256', encode(p_cert, 'hex'),
            'generation', e.generation + 1));
    END IF;
    PERFORM vouch_emit_mdm('mdm.Authenticate', p_udid, p_raw, NULL, NULL, NULL, p_url_params);
    RETURN 'ok';
END
$$;

-- TokenUpdate: stores the push token, PushMagic and topic, enables the enrollment and revives a
-- token APNs had declared dead. The first one of an enrollment also asks for an attestation with
-- the request vouchd made (p_attest_*: its command UUID and nonce): then the answer is
-- 'ok_queued', and vouchd pushes.
CREATE OR REPLACE FUNCTION vouch_token_update(
    p_udid text, p_cert bytea, p_topic text, p_token bytea, p_push_magic text,
    p_unlock_token bytea, p_awaiting_configuration boolean,
    p_attest_command_uuid text, p_attest_nonce bytea, p_raw bytea,
    p_url_params jsonb DEFAULT NULL)
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
    IF (SELECT identity_provisional FROM enrollments WHERE udid = p_udid) THEN
        -- A provisional (migrated) identity: its push credentials are used (a real device's may
        -- have changed), but /migration's are kept to be put back if it is released
        -- (vouch_migration_release); nothing is asked (the claim planned the attestation) and
        -- no web-hook event carries its word.
        UPDATE enrollments SET topic = p_topic, push_token = p_token, push_magic = p_push_magic,
            unlock_token = coalesce(p_unlock_token, unlock_token), enabled = true,
            token_updated_at = vouch_now(), token_dead_at = NULL
        WHERE udid = p_udid;
        RETURN 'ok';
    END IF;
    -- The enrollment row is locked (vouch_check_identity): the old row read beside the update is
    -- the one it replaces.
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
        token_update_tally = enrollments.token_update_tally + 1
    FROM (SELECT x.enabled FROM enrollments x WHERE x.udid = p_udid) AS old
    WHERE enrollments.udid = p_udid
    RETURNING enrollments.token_update_tally, old.enabled INTO tally, was_enabled;
    -- The first TokenUpdate of an enrollment also plans the first light query.
    UPDATE devices SET last_seen_at = vouch_now(),
        info_due_at = CASE WHEN was_enabled THEN info_due_at
                           ELSE vouch_now() + (SELECT info_interval FROM scheduler_policy) END
    WHERE udid = p_udid;
    PERFORM vouch_emit_mdm('mdm.TokenUpdate', p_udid, p_raw, NULL, NULL, tally, p_url_params);
    IF NOT was_enabled THEN
        IF p_attest_command_uuid IS NOT NULL THEN
            SELECT r.outcome INTO queued
            FROM vouch_request_attestation(p_udid, p_attest_command_uuid, p_attest_nonce,
                                           'enrollment') r;
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
CREATE OR REPLACE FUNCTION vouch_checkout(p_udid text, p_cert bytea, p_raw bytea,
                                          p_url_params jsonb DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
BEGIN
    IF verdict <> 'ok' THEN
        RETURN verdict;
    END IF;
    IF (SELECT identity_provisional FROM enrollments WHERE udid = p_udid) THEN
        -- A provisional (migrated) identity leaving: released, not banned, and the enrollment
        -- /migration brought stays as it came (a claimant cannot switch the real device off).
        PERFORM vouch_migration_release(p_udid, false, 'none', 'checked_out');
        RETURN 'ok';
    END IF;
    UPDATE enrollments SET enabled = false, checked_out_at = vouch_now() WHERE udid = p_udid;
    UPDATE devices SET last_seen_at = vouch_now(), attestation_due_at = NULL,
        attestation_due_reason = NULL, info_due_at = NULL
    WHERE udid = p_udid;
    PERFORM vouch_emit_mdm('mdm.CheckOut', p_udid, p_raw, NULL, NULL, NULL, p_url_params);
    RETURN 'ok';
END
$$;

-- An operator lets the next new certificate of an enrolled device in (reenroll = refuse): the
-- admin API's answer, or NULL for an unknown device. A migrated device whose identity is not
-- proven (unbound, or bound provisionally: released, not banned) stops being migrated: the
-- operator re-enrolls it in person (a device that cannot attest can never prove a migrated
-- identity), and its next Authenticate binds as any enrollment's does.
CREATE OR REPLACE FUNCTION vouch_allow_reenroll(p_udid text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    e enrollments;
BEGIN
    SELECT * INTO e FROM enrollments WHERE udid = p_udid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF e.identity_provisional THEN
        PERFORM vouch_migration_release(p_udid, false, 'none', 'reenroll_allowed');
    END IF;
    UPDATE enrollments SET reenroll_allowed = true,
        migrated_at = CASE WHEN identity_cert_sha256 = vouch_unbound_cert() THEN NULL
                           ELSE migrated_at END,
        identity_reason = CASE WHEN identity_cert_sha256 = vouch_unbound_cert() THEN NULL
                               ELSE identity_reason END
    WHERE udid = p_udid;
    RETURN '{"reenroll_allowed": true}';
END
$$;
