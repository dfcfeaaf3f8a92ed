-- What the admin API reads: the device object, lists, commands and attestation history;
-- figures for /metrics; pruning history.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- An attestation row's properties and checked objects, packed (docs/attestation.md,
-- "Storage"): vouchd writes both in one fixed shape (server/attestation/attest_json.c), so a row
-- keeps only their values: each value's JSON text, in the keys' order, separated by U+001F
-- (JSON text cannot hold it unescaped), the device's own UDID as U+001E. NULL when the text has
-- another shape: the row keeps it whole (properties, checked).
CREATE OR REPLACE FUNCTION vouch_json_unpack(p_packed text, p_keys text[], p_udid text)
RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT ('{' || string_agg('"' || p_keys[v.n] || '":'
                              || CASE WHEN v.t = E'\x1e' THEN '"' || p_udid || '"' ELSE v.t END,
                              ',' ORDER BY v.n) || '}')::json
    FROM unnest(string_to_array(p_packed, E'\x1f')) WITH ORDINALITY AS v(t, n)
    HAVING count(*) = cardinality(p_keys)
$$;

-- (PL/pgSQL: it runs at every answer, and an SQL function whose query cannot be inlined is
-- planned again at every call.)
CREATE OR REPLACE FUNCTION vouch_json_pack(p_json json, p_keys text[], p_udid text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    packed text;
    keys text[];
    written text;
BEGIN
    IF json_typeof(p_json) IS DISTINCT FROM 'object' THEN
        RETURN NULL;
    END IF;
    -- written is what vouch_json_unpack would give back: packed only when it is the very text.
    SELECT string_agg(CASE WHEN e.value::text = '"' || p_udid || '"' THEN E'\x1e'
                           ELSE e.value::text END, E'\x1f' ORDER BY e.n),
           array_agg(e.key ORDER BY e.n),
           '{' || string_agg('"' || e.key || '":' || e.value::text, ',' ORDER BY e.n) || '}'
    INTO packed, keys, written
    FROM json_each(p_json) WITH ORDINALITY AS e(key, value, n);
    IF keys IS DISTINCT FROM p_keys OR written IS DISTINCT FROM p_json::text THEN
        RETURN NULL;
    END IF;
    RETURN packed;
END
$$;

CREATE OR REPLACE FUNCTION vouch_properties_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['serial_number', 'udid', 'os_version', 'sepos_version', 'llb_version',
                 'software_update_device_id', 'sip_enabled', 'secure_boot',
                 'third_party_kexts_allowed']
$$;

CREATE OR REPLACE FUNCTION vouch_checked_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['udid', 'serial', 'os_version', 'at', 'require_fresh', 'cached_requested_at']
$$;

-- The identity hash of an enrollment no certificate is bound to (0011_migration.sql): no
-- certificate hashes to it, so an identity check compares it with the caller's and refuses.
CREATE OR REPLACE FUNCTION vouch_unbound_cert() RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
$$;

-- What an Authenticate (or /migration's copy of one) says of a device: a new device, or the
-- facts present replace the stored ones and absent ones keep them. Nothing is planned for it
-- until its TokenUpdate (or, migrated, until its identity is bound). p_seen: the device itself
-- spoke (last_seen_at).
CREATE OR REPLACE FUNCTION vouch_store_device_facts(
    p_udid text, p_serial_number text, p_model text, p_model_name text, p_product_name text,
    p_os_version text, p_build_version text, p_device_name text, p_imei text, p_meid text,
    p_seen boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO devices AS d (udid, serial_number, model, model_name, product_name, os_version,
                              build_version, device_name, imei, meid, last_seen_at)
    VALUES (p_udid, p_serial_number, p_model, p_model_name, p_product_name, p_os_version,
            p_build_version, p_device_name, p_imei, p_meid,
            CASE WHEN p_seen THEN vouch_now() END)
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
        last_seen_at  = CASE WHEN p_seen THEN vouch_now() ELSE d.last_seen_at END,
        attestation_due_at = NULL,
        attestation_due_reason = NULL,
        info_due_at   = NULL;
END
$$;

-- ---- Push certificates' topics (push_topics, 0011_migration.sql; written by 45_migration.sql's
-- vouch_set_push_topics) ----

-- How long an instance's row in push_topics counts without being written again: vouchd writes
-- it at start, at SIGHUP, at PUT /v1/pushcert and every 10 minutes (with its pruning), so a
-- stopped or renamed instance stops counting after three missed refreshes.
CREATE OR REPLACE FUNCTION vouch_push_topic_life() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '30 minutes' $$;

-- Whether some instance has a push certificate for the topic.
CREATE OR REPLACE FUNCTION vouch_topic_installed(p_topic text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM push_topics t
                   WHERE t.topic = p_topic AND t.updated_at > now() - vouch_push_topic_life())
$$;

-- Whether any instance has a push certificate at all (without one, no device is marked).
CREATE OR REPLACE FUNCTION vouch_push_topics_known() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM push_topics t WHERE t.updated_at > now() - vouch_push_topic_life())
$$;

-- The device object (docs/api.md). identity is the certificate the enrollment is bound to:
-- acme-attested (issued by vouchd's ACME server for an attested key) or scep (any other).
-- attestation is the last verdict, whatever is pending:
-- status (a verified verdict past its expiry reads 'expired' even before a tick marks it),
-- freshness, reason, verified_at, expires_at (when the verdict stops counting), the leaf's
-- times and properties, the plan, and request: the pending re-check, or null.
-- PL/pgSQL, not SQL: an event's body (vouch_emit_device) calls it once per statement, and a SQL
-- function's query (five joins) is planned at each such call where PL/pgSQL keeps its plan.
CREATE OR REPLACE FUNCTION vouch_device_object(d devices) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT json_build_object(
        'udid', d.udid,
        'serial_number', d.serial_number,
        'model', d.model,
        'product_name', d.product_name,
        'os_version', d.os_version,
        'build_version', d.build_version,
        'enrolled', coalesce(e.enabled, false),
        'generation', e.generation,
        'last_seen_at', vouch_time(d.last_seen_at),
        'identity', CASE WHEN e.migrated_at IS NOT NULL THEN json_build_object(
            -- Moved in through /migration (db/functions/45_migration.sql): bound once its first
            -- signed request bound a certificate, provisional until an attestation proves it.
            'kind', 'migrated',
            'bound', e.identity_cert_sha256 <> vouch_unbound_cert(),
            'provisional', e.identity_provisional,
            'provisional_until', vouch_time(e.provisional_until),
            'reason', e.identity_reason,
            'hardware_bound', ac.sha256 IS NOT NULL,
            'certificate_sha256', CASE WHEN e.identity_cert_sha256 <> vouch_unbound_cert()
                                       THEN encode(e.identity_cert_sha256, 'hex') END,
            'certificate_serial', ac.serial,
            'not_after', vouch_time(coalesce(ac.not_after, ic.not_after)),
            'revoked', ac.revoked_at IS NOT NULL)
            WHEN e.udid IS NOT NULL THEN json_build_object(
            'kind', CASE WHEN ac.sha256 IS NOT NULL THEN 'acme-attested' ELSE 'scep' END,
            'hardware_bound', ac.sha256 IS NOT NULL,
            -- None yet: a migrated device the operator let re-enroll (vouch_allow_reenroll).
            'certificate_sha256', CASE WHEN e.identity_cert_sha256 <> vouch_unbound_cert()
                                       THEN encode(e.identity_cert_sha256, 'hex') END,
            'certificate_serial', ac.serial,
            'not_after', vouch_time(coalesce(ac.not_after, ic.not_after)),
            'revoked', ac.revoked_at IS NOT NULL) END,
        'push', json_build_object(
            'token_state', CASE WHEN e.push_token IS NULL OR NOT e.enabled THEN 'none'
                                -- Some instance pushes, but none for this topic (push_topics,
                                -- 0011_migration.sql); with no push certificate anywhere
                                -- vouchd pushes nothing and says so at start.
                                WHEN vouch_push_topics_known()
                                     AND NOT vouch_topic_installed(e.topic)
                                THEN 'no_certificate'
                                WHEN e.token_dead_at IS NOT NULL THEN 'dead'
                                ELSE 'active' END,
            -- The newest answer in push_log (its result a code, migration 0013); without one,
            -- what the enrollment keeps (answers from before migration 0010, or folded there
            -- when the log's were pruned).
            'last_push_at', vouch_time(coalesce(
                (SELECT p.at FROM push_log p WHERE p.udid = d.udid ORDER BY p.seq DESC LIMIT 1),
                e.last_push_at)),
            'last_push_result', coalesce(
                (SELECT vouch_push_result_name(p.result) FROM push_log p WHERE p.udid = d.udid
                 ORDER BY p.seq DESC LIMIT 1),
                e.last_push_result)),
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
            'properties', coalesce(a.properties, vouch_json_unpack(a.properties_packed,
                                                                   vouch_properties_keys(),
                                                                   a.udid))))
    FROM (SELECT 1) AS one
    LEFT JOIN enrollments e ON e.udid = d.udid
    LEFT JOIN identity_certs ic ON ic.sha256 = e.identity_cert_sha256
    LEFT JOIN acme_certificates ac ON ac.sha256 = e.identity_cert_sha256
    LEFT JOIN attestations a ON a.id = d.attestation_id
    LEFT JOIN attestation_requests r ON r.udid = d.udid AND r.answered_at IS NULL);
END
$$;

-- The device a UDID from an operator names: the UDID itself when a device has it exactly (the
-- primary key: the usual case stays one index probe), else the one device whose UDID is its
-- upper-case or its lower-case form (UDIDs are written in one case: two more probes), else p_udid
-- unchanged (no device, or two that differ only in case: the caller then finds none and says
-- "unknown device").
CREATE OR REPLACE FUNCTION vouch_udid_resolve(p_udid text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT d.udid FROM devices d WHERE d.udid = p_udid),
        (SELECT min(d.udid) FROM devices d WHERE d.udid IN (upper(p_udid), lower(p_udid))
         HAVING count(*) = 1),
        p_udid)
$$;

-- A page of devices, ordered by udid, after the cursor, optionally only those whose serial
-- number is p_serial, and only those whose last verdict is p_attestation (verified: and not
-- expired; expired: marked or past its expiry), or, for 'pending', those with a request out.
-- (A SQL function of one SELECT: inlined into its callers.)
CREATE OR REPLACE FUNCTION vouch_device_page(p_after text, p_limit integer, p_attestation text,
                                             p_serial text)
RETURNS SETOF devices LANGUAGE sql STABLE AS $$
    SELECT * FROM devices x
    WHERE x.udid > coalesce(p_after, '')
      AND (p_serial IS NULL OR x.serial_number = p_serial)
      AND (p_attestation IS NULL OR CASE p_attestation
          WHEN 'pending' THEN EXISTS (SELECT 1 FROM attestation_requests r
                                      WHERE r.udid = x.udid AND r.answered_at IS NULL)
          WHEN 'verified' THEN x.attestation_status = 'verified'
                               AND x.attestation_expires_at > vouch_now()
          WHEN 'expired' THEN x.attestation_status = 'expired'
                              OR (x.attestation_status = 'verified'
                                  AND x.attestation_expires_at <= vouch_now())
          ELSE x.attestation_status = p_attestation END)
    ORDER BY x.udid LIMIT p_limit
$$;

-- That page as a JSON array of device objects.
CREATE OR REPLACE FUNCTION vouch_device_list(p_after text, p_limit integer, p_attestation text,
                                             p_serial text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(vouch_device_object(d) ORDER BY d.udid), '[]')::text
    FROM vouch_device_page(p_after, p_limit, p_attestation, p_serial) AS d
$$;

-- The same page as [{"udid": ...}, ...] (GET /v1/devices?fields=udid): what `vouchctl attest
-- --all` needs of each device, without building the device objects (about 0.25 ms each).
CREATE OR REPLACE FUNCTION vouch_device_udids(p_after text, p_limit integer, p_attestation text,
                                              p_serial text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object('udid', d.udid) ORDER BY d.udid), '[]')::text
    FROM vouch_device_page(p_after, p_limit, p_attestation, p_serial) AS d
$$;

CREATE OR REPLACE FUNCTION vouch_device_get(p_udid text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT vouch_device_object(d)::text FROM devices d WHERE d.udid = p_udid
$$;

-- Pending commands and recent results of a device, newest first, as a JSON array; NULL for an
-- unknown device.
CREATE OR REPLACE FUNCTION vouch_device_commands(p_udid text, p_limit integer) RETURNS text
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
            -- The pending attestation request, its own queue entry (vouch_report).
            (SELECT r.command_uuid, 'DeviceInformation',
                    CASE WHEN r.not_now_at IS NULL THEN 'queued' ELSE 'NotNow' END,
                    r.requested_at, NULL::timestamptz, coalesce(r.not_now_count, 0)
             FROM attestation_requests r WHERE r.udid = p_udid AND r.answered_at IS NULL)
            UNION ALL
            (SELECT r.command_uuid, r.request_type, r.status, r.queued_at, r.result_at,
                    r.not_now_count
             FROM command_results r WHERE r.udid = p_udid ORDER BY r.result_at DESC
             LIMIT p_limit)
            UNION ALL
            -- Answers kept in their attestation row (vouch_kept_answers, 65_command_answers.sql).
            (SELECT a.command_uuid, 'DeviceInformation', a.device_status, a.requested_at,
                    a.received_at, 0
             FROM attestations a WHERE a.udid = p_udid AND a.answer IS NOT NULL
             ORDER BY a.id DESC LIMIT p_limit)) AS x), '[]')::text END
$$;

-- Where a verified chain's certificates are kept (docs/attestation.md, "Storage"): for Apple's
-- shape (the leaf and the Sub CA that signed it), the leaf in the attestation row
-- (attestations.chain holds it alone) and the Sub CA once in attestation_cas, named by SHA-256
-- in attestations.ca_sha256 (vouch_keep_cas): it is the same in every answer. Any other chain
-- (one that did not verify, or one with certificates its path did not need) is kept whole in
-- its row, so that what a device makes up never enters the shared table.
--
-- A stored chain as the device sent it: the row's certificates, then those it names by SHA-256.
CREATE OR REPLACE FUNCTION vouch_attestation_chain(p_chain bytea[], p_ca_sha256 bytea[])
RETURNS bytea[] LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_ca_sha256 IS NULL THEN p_chain
           ELSE coalesce(p_chain, '{}') || ARRAY(
               SELECT c.der FROM unnest(p_ca_sha256) WITH ORDINALITY AS x(sha256, n)
               JOIN attestation_cas c ON c.sha256 = x.sha256 ORDER BY x.n) END
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
                   'source', a.source,
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
                   'checked', coalesce(a.checked, vouch_json_unpack(a.checked_packed,
                                                                    vouch_checked_keys(),
                                                                    a.udid)),
                   'generated_at', vouch_time(a.generated_at),
                   'expires_at', vouch_time(a.expires_at),
                   'properties', coalesce(a.properties, vouch_json_unpack(
                       a.properties_packed, vouch_properties_keys(), a.udid)),
                   'leaf_sha256', encode(a.leaf_sha256, 'hex'),
                   'chain', (SELECT json_agg(translate(encode(c, 'base64'), E'\n', ''))
                             FROM unnest(vouch_attestation_chain(a.chain, a.ca_sha256)) c))
               ORDER BY a.id DESC)
        FROM (SELECT * FROM attestations WHERE udid = p_udid ORDER BY id DESC LIMIT p_limit) a
    ), '[]')::text END
$$;

CREATE OR REPLACE FUNCTION vouch_stats(OUT queue_depth bigint, OUT devices bigint, OUT enrolled bigint,
                            OUT clock_skew double precision)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM command_queue)
           + (SELECT count(*) FROM attestation_requests WHERE answered_at IS NULL),
           (SELECT count(*) FROM devices),
           (SELECT count(*) FROM enrollments WHERE enabled),
           extract(epoch FROM vouch_now() - now())::double precision
$$;

-- Removes up to p_batch rows of each kind of history older than its retention: finished command
-- results, commands nobody waits for and events nobody still has to receive (p_retention);
-- attestations and canceled attestation requests (p_attestation_retention; an ended request
-- is its attestations row since 0014), except what the device object and the scheduler stand
-- on: each device's current attestation and its newest verified one; expired ACME nonces and
-- unfinished orders (vouch_acme_prune).
CREATE OR REPLACE FUNCTION vouch_prune(p_retention interval, p_batch integer,
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
          -- The stored answer that carried it has its certificates here (vouch_report).
          AND NOT EXISTS (SELECT 1 FROM command_results r
                          WHERE r.udid = a2.udid AND r.command_uuid = a2.command_uuid)
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
           + attestations_deleted + vouch_acme_prune(p_batch);
END
$$;

-- Devices by attestation status, for /metrics (vouch_devices{attestation}): every status the
-- device object shows (a verified verdict past its expiry counts as expired), zeros included,
-- each device once; then 'pending': devices with a request out, whatever their verdict.
CREATE OR REPLACE FUNCTION vouch_devices_by_attestation(OUT status text, OUT devices bigint)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
    WITH counted AS (
        SELECT CASE WHEN d.attestation_status = 'verified'
                         AND d.attestation_expires_at <= vouch_now() THEN 'expired'
                    ELSE d.attestation_status END AS status,
               count(*) AS devices
        FROM devices d GROUP BY 1)
    SELECT s.status, coalesce(c.devices, 0)
    FROM unnest(ARRAY['none', 'verified', 'failed', 'unsupported', 'expired']) AS s(status)
    LEFT JOIN counted c ON c.status = s.status
    UNION ALL
    SELECT 'pending', count(*) FROM attestation_requests r WHERE r.answered_at IS NULL
$$;
