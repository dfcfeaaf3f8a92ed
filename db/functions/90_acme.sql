-- The ACME server's state (docs/acme.md): nonces, ClientIdentifiers, accounts, orders (with their
-- one authorization and challenge), issued certificates, and the operator's view of them.
--
-- vouchd checks the JWS and the attestation in C; each function here is one step of the flow,
-- one statement and one transaction, and answers a JSON document: {"order": state} for the
-- step's result, {"problem": {type, detail, reason}} when the step is refused (type is RFC
-- 8555's error type without its prefix, reason Vouch's code), {"missing": true} for an object
-- that does not exist. A refusal of the device is kept as an identity.refused event.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- ---- Nonces ----
CREATE OR REPLACE FUNCTION vouch_acme_nonce_add(p_nonce text, p_lifetime interval) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO acme_nonces (nonce, expires_at) VALUES (p_nonce, vouch_now() + p_lifetime);
$$;

-- Every signed request: consumes its nonce (false when unknown, used or expired), stores the
-- next one for the answer, and hands back the kid's account (its key verifies the request).
CREATE OR REPLACE FUNCTION vouch_acme_begin(p_nonce text, p_next text, p_lifetime interval,
                                            p_account text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    nonce_ok boolean;
BEGIN
    DELETE FROM acme_nonces WHERE nonce = p_nonce AND expires_at > vouch_now();
    nonce_ok := FOUND;
    INSERT INTO acme_nonces (nonce, expires_at) VALUES (p_next, vouch_now() + p_lifetime);
    RETURN json_build_object(
        'nonce_ok', nonce_ok,
        'account', (SELECT json_build_object('id', a.id, 'jwk', a.jwk, 'status', a.status,
                                             'contact', a.contact)
                    FROM acme_accounts a WHERE a.id = p_account));
END
$$;

-- ---- Refusals ----
-- Refuses an order (when there is one, it becomes invalid with the problem) and keeps the
-- refusal as an identity.refused event.
CREATE OR REPLACE FUNCTION vouch_acme_refuse(p_order_id text, p_client_id text, p_type text,
                                             p_reason text, p_detail text, p_udid text,
                                             p_serial text) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    problem json := json_build_object('type', p_type, 'detail', p_detail, 'reason', p_reason);
BEGIN
    IF p_order_id IS NOT NULL THEN
        UPDATE acme_orders SET status = 'invalid',
            challenge_status = CASE WHEN challenge_status IN ('pending', 'processing')
                                    THEN 'invalid' ELSE challenge_status END,
            error = json_build_object('type', 'urn:ietf:params:acme:error:' || p_type,
                                      'detail', p_detail)
        WHERE id = p_order_id;
    END IF;
    PERFORM vouch_emit('identity.refused', NULL, jsonb_build_object(
        'reason', p_reason, 'detail', p_detail, 'client_identifier', p_client_id,
        'order', p_order_id, 'udid', p_udid, 'serial_number', p_serial));
    RETURN json_build_object('problem', problem);
END
$$;

-- ---- ClientIdentifiers and expected devices ----
-- Mints a ClientIdentifier for a profile download; p_device_token (the SHA-256 of a device's own
-- enrollment token) ties it to that device's serial. {"expected_serial": s|null}, or
-- {"refused": "unknown_token" | "token_spent"}.
CREATE OR REPLACE FUNCTION vouch_acme_client_id_new(p_value text, p_device_token bytea,
                                                    p_lifetime interval) RETURNS json
LANGUAGE plpgsql AS $$
DECLARE
    x expected_devices;
BEGIN
    IF p_device_token IS NOT NULL THEN
        SELECT * INTO x FROM expected_devices WHERE token_sha256 = p_device_token;
        IF NOT FOUND THEN
            RETURN json_build_object('refused', 'unknown_token');
        END IF;
        IF x.enrolled_at IS NOT NULL THEN
            RETURN json_build_object('refused', 'token_spent');
        END IF;
    END IF;
    INSERT INTO acme_client_ids (value, expected_serial, expires_at)
    VALUES (p_value, x.serial_number, vouch_now() + p_lifetime);
    -- Unused identifiers past their time are of no use to anyone.
    DELETE FROM acme_client_ids WHERE value = ANY (ARRAY(
        SELECT value FROM acme_client_ids
        WHERE used_at IS NULL AND expires_at < vouch_now() - interval '1 day' LIMIT 16));
    RETURN json_build_object('expected_serial', x.serial_number);
END
$$;

-- The operator expects these serials: each gets (or gets anew, while not enrolled) its own
-- enrollment token. Rows {serial_number, state: expected | renewed | enrolled}.
CREATE OR REPLACE FUNCTION vouch_expect_devices(p_serials text[], p_token_sha256s bytea[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result json;
BEGIN
    WITH input AS (
        SELECT s, t FROM unnest(p_serials, p_token_sha256s) AS u(s, t)
    ), before AS (
        SELECT x.serial_number, x.enrolled_at FROM expected_devices x
        WHERE x.serial_number IN (SELECT s FROM input)
    ), written AS (
        INSERT INTO expected_devices AS x (serial_number, token_sha256)
        SELECT s, t FROM input
        ON CONFLICT (serial_number) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256,
            created_at = vouch_now()
        WHERE x.enrolled_at IS NULL
        RETURNING x.serial_number
    )
    SELECT json_agg(json_build_object(
        'serial_number', i.s,
        'state', CASE WHEN b.enrolled_at IS NOT NULL THEN 'enrolled'
                      WHEN b.serial_number IS NOT NULL THEN 'renewed'
                      ELSE 'expected' END) ORDER BY i.s)
    INTO result
    FROM input i LEFT JOIN before b ON b.serial_number = i.s;
    RETURN coalesce(result, '[]')::text;
END
$$;

CREATE OR REPLACE FUNCTION vouch_expected_list() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object(
        'serial_number', x.serial_number,
        'expected_at', vouch_time(x.created_at),
        'enrolled_at', vouch_time(x.enrolled_at)) ORDER BY x.serial_number), '[]')::text
    FROM expected_devices x
$$;

-- ---- Accounts ----
-- newAccount: the account of this key, made unless p_only_existing.
-- {"account": {id, status, contact, created}} or a problem.
CREATE OR REPLACE FUNCTION vouch_acme_new_account(p_id text, p_thumbprint bytea, p_jwk text,
                                                  p_contact json, p_only_existing boolean)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    a acme_accounts;
    created boolean := false;
BEGIN
    SELECT * INTO a FROM acme_accounts WHERE thumbprint = p_thumbprint;
    IF NOT FOUND THEN
        IF p_only_existing THEN
            RETURN json_build_object('problem', json_build_object(
                'type', 'accountDoesNotExist', 'reason', 'no_account',
                'detail', 'no account has this key'));
        END IF;
        INSERT INTO acme_accounts (id, thumbprint, jwk, contact)
        VALUES (p_id, p_thumbprint, p_jwk, p_contact)
        ON CONFLICT (thumbprint) DO NOTHING;
        created := FOUND;
        SELECT * INTO a FROM acme_accounts WHERE thumbprint = p_thumbprint;
    END IF;
    RETURN json_build_object('account', json_build_object(
        'id', a.id, 'status', a.status, 'contact', a.contact, 'created', created));
END
$$;

-- ---- Orders, authorizations, challenges ----
-- What vouchd renders an order, its authorization and its challenge from. status reads
-- 'invalid' for a pending or ready order past its expiry.
CREATE OR REPLACE FUNCTION vouch_acme_order_state(o acme_orders) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', o.id,
        'account', o.account_id,
        'status', CASE WHEN o.status IN ('pending', 'ready') AND o.expires_at <= vouch_now()
                       THEN 'invalid' ELSE o.status END,
        'expires', vouch_time(o.expires_at),
        'client_id', o.client_id,
        'expected_serial', c.expected_serial,
        'challenge_status', CASE WHEN o.challenge_status = 'pending'
                                      AND o.expires_at <= vouch_now()
                                 THEN 'invalid' ELSE o.challenge_status END,
        'token', o.token,
        'validated', vouch_time(o.validated_at),
        'error', o.error,
        'certificate', o.certificate,
        'udid', o.attested_udid,
        'serial_number', o.attested_serial,
        'spki', encode(o.attested_spki, 'hex'),
        'clock', extract(epoch FROM vouch_now())::bigint)  -- verify attestations at this time
    FROM (SELECT 1) AS one
    LEFT JOIN acme_client_ids c ON c.value = o.client_id
$$;

-- newOrder for a ClientIdentifier: it must be one this server minted, unexpired and unused.
CREATE OR REPLACE FUNCTION vouch_acme_new_order(p_account text, p_order_id text, p_token text,
                                                p_client_id text, p_lifetime interval)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    c acme_client_ids;
    o acme_orders;
BEGIN
    SELECT * INTO c FROM acme_client_ids WHERE value = p_client_id;
    IF NOT FOUND THEN
        RETURN vouch_acme_refuse(NULL, p_client_id, 'rejectedIdentifier',
            'unknown_client_identifier', 'this server did not issue that ClientIdentifier',
            NULL, NULL);
    ELSIF c.used_at IS NOT NULL THEN
        RETURN vouch_acme_refuse(NULL, p_client_id, 'rejectedIdentifier',
            'client_identifier_used',
            'that ClientIdentifier has been used: download a new enrollment profile', NULL, NULL);
    ELSIF c.expires_at <= vouch_now() THEN
        RETURN vouch_acme_refuse(NULL, p_client_id, 'rejectedIdentifier',
            'client_identifier_expired',
            'that ClientIdentifier has expired: download a new enrollment profile', NULL, NULL);
    END IF;
    INSERT INTO acme_orders (id, account_id, client_id, expires_at, token)
    VALUES (p_order_id, p_account, p_client_id, least(c.expires_at, vouch_now() + p_lifetime),
            p_token)
    RETURNING * INTO o;
    RETURN json_build_object('order', vouch_acme_order_state(o));
END
$$;

-- The order of p_order_id if p_account owns it (POST-as-GET of an order, authorization or
-- challenge; and what the challenge and finalize steps start from).
CREATE OR REPLACE FUNCTION vouch_acme_order_get(p_account text, p_order_id text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    o acme_orders;
BEGIN
    SELECT * INTO o FROM acme_orders WHERE id = p_order_id;
    IF NOT FOUND THEN
        RETURN json_build_object('missing', true);
    ELSIF o.account_id <> p_account THEN
        RETURN json_build_object('problem', json_build_object(
            'type', 'unauthorized', 'reason', 'not_owner',
            'detail', 'this object belongs to another account'));
    END IF;
    RETURN json_build_object('order', vouch_acme_order_state(o));
END
$$;

-- The device answered the challenge: claims it for verification (pending -> processing), so
-- that one answer is verified however many arrive. {"claimed": true, "order": ...} when this
-- caller verifies; otherwise the order as it is (a settled challenge answers its state).
CREATE OR REPLACE FUNCTION vouch_acme_challenge_claim(p_account text, p_order_id text)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    o acme_orders;
BEGIN
    UPDATE acme_orders SET challenge_status = 'processing'
    WHERE id = p_order_id AND account_id = p_account AND challenge_status = 'pending'
      AND status = 'pending' AND expires_at > vouch_now()
    RETURNING * INTO o;
    IF FOUND THEN
        RETURN json_build_object('claimed', true, 'order', vouch_acme_order_state(o));
    END IF;
    RETURN vouch_acme_order_get(p_account, p_order_id);
END
$$;

-- What vouchd concluded of the attestation (p_reason NULL: verified). A verified attestation
-- must also name the serial the ClientIdentifier was minted for, when it was.
CREATE OR REPLACE FUNCTION vouch_acme_challenge_result(
    p_order_id text, p_reason text, p_detail text, p_udid text, p_serial text, p_spki bytea,
    p_chain bytea[], p_leaf_sha256 bytea, p_generated_at timestamptz,
    p_leaf_expires_at timestamptz, p_properties json)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    o acme_orders;
    expected text;
BEGIN
    SELECT * INTO o FROM acme_orders WHERE id = p_order_id FOR UPDATE;
    IF NOT FOUND OR o.challenge_status <> 'processing' THEN
        RETURN json_build_object('missing', true);
    END IF;
    SELECT c.expected_serial INTO expected FROM acme_client_ids c WHERE c.value = o.client_id;
    -- Kept whatever the outcome: what the device showed.
    UPDATE acme_orders SET attested_udid = p_udid, attested_serial = p_serial,
        attested_spki = p_spki, chain = p_chain, leaf_sha256 = p_leaf_sha256,
        generated_at = p_generated_at, leaf_expires_at = p_leaf_expires_at,
        properties = p_properties
    WHERE id = p_order_id;
    IF p_reason IS NOT NULL THEN
        RETURN vouch_acme_refuse(p_order_id, o.client_id, 'badAttestationStatement', p_reason,
                                 p_detail, p_udid, p_serial);
    ELSIF expected IS NOT NULL AND expected IS DISTINCT FROM p_serial THEN
        RETURN vouch_acme_refuse(p_order_id, o.client_id, 'rejectedIdentifier',
            'serial_mismatch', format('the ClientIdentifier was issued for serial %s, the '
                                      'attestation names %s', expected, p_serial),
            p_udid, p_serial);
    END IF;
    UPDATE acme_orders SET challenge_status = 'valid', status = 'ready',
        validated_at = vouch_now()
    WHERE id = p_order_id RETURNING * INTO o;
    RETURN json_build_object('order', vouch_acme_order_state(o));
END
$$;

-- finalize, after vouchd checked the CSR and signed the certificate: consumes the
-- ClientIdentifier (a certificate is issued once per identifier), keeps the certificate and
-- makes the order valid.
CREATE OR REPLACE FUNCTION vouch_acme_finalize(p_account text, p_order_id text, p_serial text,
                                               p_sha256 bytea, p_der bytea,
                                               p_not_before timestamptz,
                                               p_not_after timestamptz)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    o acme_orders;
    c acme_client_ids;
BEGIN
    SELECT * INTO o FROM acme_orders WHERE id = p_order_id AND account_id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RETURN json_build_object('missing', true);
    ELSIF o.status <> 'ready' OR o.expires_at <= vouch_now() THEN
        RETURN json_build_object('problem', json_build_object(
            'type', 'orderNotReady', 'reason', 'order_not_ready',
            'detail', 'the order is ' || o.status || ', not ready'));
    END IF;
    UPDATE acme_client_ids SET used_at = vouch_now(), used_by_order = o.id
    WHERE value = o.client_id AND used_at IS NULL AND expires_at > vouch_now()
    RETURNING * INTO c;
    IF NOT FOUND THEN
        RETURN vouch_acme_refuse(o.id, o.client_id, 'rejectedIdentifier',
            'client_identifier_used',
            'a certificate has already been issued for that ClientIdentifier', o.attested_udid,
            o.attested_serial);
    END IF;
    INSERT INTO acme_certificates (serial, sha256, order_id, udid, serial_number, der,
                                   not_before, not_after)
    VALUES (p_serial, p_sha256, o.id, o.attested_udid, o.attested_serial, p_der, p_not_before,
            p_not_after);
    UPDATE expected_devices SET enrolled_at = vouch_now()
    WHERE serial_number = c.expected_serial;
    UPDATE acme_orders SET status = 'valid', certificate = p_serial WHERE id = o.id
    RETURNING * INTO o;
    PERFORM vouch_emit('identity.issued', NULL, jsonb_build_object(
        'udid', o.attested_udid, 'serial_number', o.attested_serial,
        'certificate_serial', p_serial, 'certificate_sha256', encode(p_sha256, 'hex'),
        'not_after', vouch_time(p_not_after), 'client_identifier', o.client_id,
        'expected_serial', c.expected_serial, 'order', o.id));
    RETURN json_build_object('order', vouch_acme_order_state(o));
END
$$;

-- The certificate download: {"der": hex, "revoked": bool} if p_account ordered it.
CREATE OR REPLACE FUNCTION vouch_acme_certificate(p_account text, p_serial text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE WHEN o.account_id = p_account
                     THEN json_build_object('der', encode(c.der, 'hex'),
                                            'revoked', c.revoked_at IS NOT NULL)
                     ELSE json_build_object('problem', json_build_object(
                         'type', 'unauthorized', 'reason', 'not_owner',
                         'detail', 'this certificate belongs to another account')) END
         FROM acme_certificates c JOIN acme_orders o ON o.id = c.order_id
         WHERE c.serial = p_serial),
        json_build_object('missing', true))
$$;

-- ---- Revocation ----
CREATE OR REPLACE FUNCTION vouch_cert_revoke_row(c acme_certificates, p_reason text, p_by text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE acme_certificates SET revoked_at = vouch_now(), revoked_reason = p_reason
    WHERE serial = c.serial;
    PERFORM vouch_emit('identity.revoked',
        CASE WHEN EXISTS (SELECT 1 FROM devices d WHERE d.udid = c.udid) THEN c.udid END,
        jsonb_build_object('udid', c.udid, 'serial_number', c.serial_number,
                           'certificate_serial', c.serial,
                           'certificate_sha256', encode(c.sha256, 'hex'),
                           'reason', p_reason, 'by', p_by));
END
$$;

-- revokeCert over ACME: by the account that ordered it (p_account), or with the certificate's
-- own key (p_account NULL: vouchd compared the keys).
CREATE OR REPLACE FUNCTION vouch_acme_revoke(p_account text, p_sha256 bytea, p_reason text)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    c acme_certificates;
BEGIN
    SELECT * INTO c FROM acme_certificates WHERE sha256 = p_sha256 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN json_build_object('problem', json_build_object(
            'type', 'malformed', 'reason', 'unknown_certificate',
            'detail', 'this server did not issue that certificate'));
    ELSIF p_account IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM acme_orders o WHERE o.id = c.order_id AND o.account_id = p_account) THEN
        RETURN json_build_object('problem', json_build_object(
            'type', 'unauthorized', 'reason', 'not_owner',
            'detail', 'this certificate belongs to another account'));
    ELSIF c.revoked_at IS NOT NULL THEN
        RETURN json_build_object('problem', json_build_object(
            'type', 'alreadyRevoked', 'reason', 'already_revoked',
            'detail', 'the certificate is already revoked'));
    END IF;
    PERFORM vouch_cert_revoke_row(c, p_reason, 'acme');
    RETURN json_build_object('revoked', true);
END
$$;

-- The operator revokes (vouchctl certs revoke): the certificate object, or NULL when unknown.
CREATE OR REPLACE FUNCTION vouch_cert_revoke(p_serial text, p_reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c acme_certificates;
BEGIN
    SELECT * INTO c FROM acme_certificates WHERE serial = lower(p_serial) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF c.revoked_at IS NULL THEN
        PERFORM vouch_cert_revoke_row(c, p_reason, 'operator');
    END IF;
    RETURN (SELECT vouch_cert_object(x)::text FROM acme_certificates x WHERE x.serial = c.serial);
END
$$;

-- ---- The operator's view ----
CREATE OR REPLACE FUNCTION vouch_cert_object(c acme_certificates) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'serial', c.serial,
        'sha256', encode(c.sha256, 'hex'),
        'udid', c.udid,
        'serial_number', c.serial_number,
        'not_before', vouch_time(c.not_before),
        'not_after', vouch_time(c.not_after),
        'issued_at', vouch_time(c.issued_at),
        'revoked_at', vouch_time(c.revoked_at),
        'revoked_reason', c.revoked_reason,
        'bound', EXISTS (SELECT 1 FROM enrollments e
                         WHERE e.udid = c.udid AND e.identity_cert_sha256 = c.sha256),
        'order', c.order_id,
        'client_identifier', o.client_id,
        'expected_serial', ci.expected_serial,
        'attestation', json_build_object(
            'leaf_sha256', encode(o.leaf_sha256, 'hex'),
            'generated_at', vouch_time(o.generated_at),
            'validated_at', vouch_time(o.validated_at)))
    FROM acme_orders o LEFT JOIN acme_client_ids ci ON ci.value = o.client_id
    WHERE o.id = c.order_id
$$;

-- Issued certificates, newest first, of one device or all (p_udid NULL).
CREATE OR REPLACE FUNCTION vouch_cert_list(p_udid text, p_limit integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_cert_object(c) ORDER BY c.issued_at DESC, c.serial), '[]')::text
    FROM (SELECT * FROM acme_certificates
          WHERE p_udid IS NULL OR udid = p_udid
          ORDER BY issued_at DESC, serial LIMIT p_limit) c
$$;

-- ---- Housekeeping ----
-- Expired nonces and orders nobody finished (called by vouch_prune).
CREATE OR REPLACE FUNCTION vouch_acme_prune(p_batch integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    nonces bigint;
    orders bigint;
BEGIN
    DELETE FROM acme_nonces WHERE nonce = ANY (ARRAY(
        SELECT nonce FROM acme_nonces WHERE expires_at < vouch_now() LIMIT p_batch));
    GET DIAGNOSTICS nonces = ROW_COUNT;
    DELETE FROM acme_orders o WHERE o.id = ANY (ARRAY(
        SELECT o2.id FROM acme_orders o2
        WHERE o2.expires_at < vouch_now() - interval '30 days' AND o2.certificate IS NULL
        LIMIT p_batch));
    GET DIAGNOSTICS orders = ROW_COUNT;
    RETURN nonces + orders;
END
$$;
