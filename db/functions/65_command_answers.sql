-- Command answers for operators: each device's answer to a command, and cancelling what is
-- still queued (server/operator/command_answers.c; docs/api.md, "Command answers").
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.
--
-- Reports leave as bytes (the XML plist the device sent): vouchd turns them into JSON. An
-- attestation answer is stored without its certificates, as a binary plist whose
-- DevicePropertiesAttestation is an empty array (vouch_report): they come beside it (chain)
-- and vouchd puts them back.

-- Text as XML character data.
CREATE OR REPLACE FUNCTION vouch_xml_text(p text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(p, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')
$$;

-- An answer kept in its attestation row as its shape (vouch_report; made by
-- command_answer_shape and command_answer_shape_pack in server/device/command.c), written back
-- as the XML plist it stands for. The shape's items are separated by U+001F: first the root's
-- keys in order (U: UDID, C: CommandUUID, S: Status, Q: QueryResponses), then QueryResponses'
-- keys and strings in pairs. A key of one character below U+0020 is the attestation request's
-- query of that position (1: DevicePropertiesAttestation, 2: UDID, ...: the Queries of
-- command_attestation_body), a value U+001E the device's UDID. DevicePropertiesAttestation is
-- an empty array, where vouchd puts the row's chain as for any answer stored without it. The
-- shape holds no control characters of its own: escaping &, < and > is all XML needs.
CREATE OR REPLACE FUNCTION vouch_answer_xml(p_answer text, p_udid text, p_command_uuid text,
                                            p_status text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    WITH items AS (SELECT string_to_array(p_answer, E'\x1f') AS a),
    pairs AS (
        SELECT i, CASE WHEN a[i] <> '' AND ascii(a[i]) < 32
                       THEN (ARRAY['DevicePropertiesAttestation', 'UDID', 'SerialNumber',
                                   'OSVersion', 'BuildVersion', 'ProductName', 'Model',
                                   'SoftwareUpdateDeviceID'])[ascii(a[i])]
                       ELSE a[i] END AS k,
               CASE WHEN a[i + 1] = E'\x1e' THEN p_udid ELSE a[i + 1] END AS v
        FROM items, generate_series(2, cardinality(a) - 1, 2) AS i),
    query_responses AS (
        SELECT '<key>QueryResponses</key><dict>'
               || coalesce(string_agg('<key>' || vouch_xml_text(k) || '</key>'
                                      || CASE WHEN k = 'DevicePropertiesAttestation'
                                              THEN '<array/>'
                                              ELSE '<string>' || vouch_xml_text(v)
                                                   || '</string>' END, '' ORDER BY i), '')
               || '</dict>' AS xml
        FROM pairs)
    SELECT convert_to(
        '<?xml version="1.0" encoding="UTF-8"?>' || E'\n' || '<plist version="1.0"><dict>'
        || string_agg(CASE o.c
               WHEN 'U' THEN '<key>UDID</key><string>' || vouch_xml_text(p_udid) || '</string>'
               WHEN 'C' THEN '<key>CommandUUID</key><string>' || vouch_xml_text(p_command_uuid)
                             || '</string>'
               WHEN 'S' THEN '<key>Status</key><string>' || vouch_xml_text(p_status)
                             || '</string>'
               ELSE (SELECT xml FROM query_responses) END, '' ORDER BY o.n)
        || '</dict></plist>' || E'\n', 'UTF8')
    FROM items, regexp_split_to_table(a[1], '') WITH ORDINALITY AS o(c, n)
$$;

-- Every answer to commands as command_results shows them: its rows, and the answers kept in
-- attestation rows (vouch_answer_xml), whose answer came when the row was received, to the
-- command queued with its request, never put off.
CREATE OR REPLACE FUNCTION vouch_kept_answers(p_udid text, p_command_uuid text)
RETURNS SETOF command_results LANGUAGE sql STABLE AS $$
    SELECT r.* FROM command_results r
    WHERE (p_udid IS NULL OR r.udid = p_udid) AND r.command_uuid = p_command_uuid
    UNION ALL
    SELECT a.udid, a.command_uuid, 'DeviceInformation', a.device_status,
           vouch_answer_xml(a.answer, a.udid, a.command_uuid, a.device_status),
           a.requested_at, a.received_at, 0
    FROM attestations a
    WHERE (p_udid IS NULL OR a.udid = p_udid) AND a.command_uuid = p_command_uuid
      AND a.answer IS NOT NULL
      -- By UUID alone, an operator's command names only itself: an attestation request of
      -- another device with the same UUID is not its answer (vouch_enqueue refuses a UUID only
      -- for the devices it goes to).
      AND (p_udid IS NOT NULL
           OR NOT EXISTS (SELECT 1 FROM commands c WHERE c.command_uuid = p_command_uuid))
$$;

-- The certificates of the attestation a device's answer to a command carried, as the device
-- sent them, each as a 4-byte big-endian length and its DER; NULL when there is none.
CREATE OR REPLACE FUNCTION vouch_answer_chain(p_udid text, p_command_uuid text) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT string_agg(int4send(length(u.c)) || u.c, ''::bytea ORDER BY u.n)
    FROM (SELECT vouch_attestation_chain(a.chain, a.ca_sha256) AS certs FROM attestations a
          WHERE a.udid = p_udid AND a.command_uuid = p_command_uuid AND a.source = 'mdm'
            AND a.chain IS NOT NULL
          ORDER BY a.id DESC LIMIT 1) x,
         unnest(x.certs) WITH ORDINALITY AS u(c, n)
$$;

-- One device's command: a row while it is queued (status 'queued', report NULL: in the queue,
-- or a pending attestation request, its own queue entry) or once it was answered; no row when
-- the device has no such command.
CREATE OR REPLACE FUNCTION vouch_command_answer(p_udid text, p_command_uuid text)
RETURNS TABLE (udid text, command_uuid text, request_type text, status text, queued_at text,
               result_at text, not_now_count integer, report bytea, chain bytea)
LANGUAGE sql STABLE AS $$
    SELECT r.udid, r.command_uuid, r.request_type, r.status, vouch_time(r.queued_at),
           vouch_time(r.result_at), r.not_now_count, r.report,
           vouch_answer_chain(r.udid, r.command_uuid)
    FROM vouch_kept_answers(p_udid, p_command_uuid) r
    UNION ALL
    SELECT q.udid, q.command_uuid, c.request_type, 'queued', vouch_time(q.queued_at), NULL,
           q.not_now_count, NULL, NULL
    FROM command_queue q JOIN commands c ON c.command_uuid = q.command_uuid
    WHERE q.udid = p_udid AND q.command_uuid = p_command_uuid
    UNION ALL
    SELECT r.udid, r.command_uuid, 'DeviceInformation', 'queued', vouch_time(r.requested_at),
           NULL, coalesce(r.not_now_count, 0), NULL, NULL
    FROM attestation_requests r
    WHERE r.udid = p_udid AND r.command_uuid = p_command_uuid AND r.answered_at IS NULL
    LIMIT 1
$$;

-- The pending attestation requests of a command UUID as the queue entries they are (an
-- attestation request has no commands row; vouch_report). No index serves a look-up by the
-- UUID alone: the command answers read the attestations the same way.
CREATE OR REPLACE FUNCTION vouch_pending_requests(p_command_uuid text)
RETURNS TABLE (udid text, queued_at timestamptz, not_now_count integer)
LANGUAGE sql STABLE AS $$
    SELECT r.udid, r.requested_at, coalesce(r.not_now_count, 0) FROM attestation_requests r
    WHERE r.command_uuid = p_command_uuid AND r.answered_at IS NULL
      -- an operator's command of this UUID names only itself (vouch_kept_answers)
      AND NOT EXISTS (SELECT 1 FROM commands c WHERE c.command_uuid = p_command_uuid)
$$;

-- A command on every device it went to. The first row describes the command (udid NULL:
-- request_type, created_at, and whether the device rows are truncated); then the devices by
-- UDID, at most p_limit of them and, past the first, only while their reports total at most
-- p_max_bytes (octet_length of a stored bytea reads its header, not its compressed bytes). No
-- row at all for an unknown command. NULL created_at: the command itself was pruned, or it was
-- never queued here (a device answered a CommandUUID vouchd did not send). An attestation
-- request, which has no commands row, is a DeviceInformation made when it was requested.
CREATE OR REPLACE FUNCTION vouch_command_answers(p_command_uuid text, p_limit integer,
                                                 p_max_bytes bigint)
RETURNS TABLE (udid text, request_type text, status text, queued_at text, result_at text,
               not_now_count integer, report bytea, created_at text, truncated boolean,
               chain bytea)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    cmd commands;
    any_type text;
    total bigint;
BEGIN
    SELECT * INTO cmd FROM commands c WHERE c.command_uuid = p_command_uuid;
    IF NOT FOUND THEN
        -- An attestation request: pending or canceled in attestation_requests, ended in its
        -- attestations row (vouch_device_requests).
        SELECT p_command_uuid, 'DeviceInformation', NULL, min(r.requested_at) INTO cmd
        FROM (SELECT q.requested_at FROM attestation_requests q
              WHERE q.command_uuid = p_command_uuid
              UNION ALL
              SELECT a.requested_at FROM attestations a
              WHERE a.command_uuid = p_command_uuid AND a.source = 'mdm') r
        HAVING count(*) > 0;
    END IF;
    SELECT count(*) INTO total FROM (
        SELECT 1 FROM vouch_kept_answers(NULL, p_command_uuid) r
        UNION ALL
        SELECT 1 FROM command_queue q WHERE q.command_uuid = p_command_uuid
        UNION ALL
        SELECT 1 FROM vouch_pending_requests(p_command_uuid)) x;
    IF cmd.command_uuid IS NULL AND total = 0 THEN
        RETURN;
    END IF;
    IF cmd.command_uuid IS NULL THEN
        SELECT r.request_type INTO any_type FROM vouch_kept_answers(NULL, p_command_uuid) r
        WHERE r.request_type IS NOT NULL LIMIT 1;
    END IF;
    RETURN QUERY
    WITH every AS (
        SELECT r.udid, r.request_type, r.status, r.queued_at, r.result_at, r.not_now_count,
               r.report, octet_length(r.report)::bigint AS size
        FROM vouch_kept_answers(NULL, p_command_uuid) r
        UNION ALL
        SELECT q.udid, cmd.request_type, 'queued', q.queued_at, NULL, q.not_now_count, NULL,
               0::bigint
        FROM command_queue q WHERE q.command_uuid = p_command_uuid
        UNION ALL
        SELECT q.udid, 'DeviceInformation', 'queued', q.queued_at, NULL, q.not_now_count, NULL,
               0::bigint
        FROM vouch_pending_requests(p_command_uuid) q),
    ordered AS (
        SELECT e.*, row_number() OVER (ORDER BY e.udid) AS n,
               sum(e.size) OVER (ORDER BY e.udid ROWS UNBOUNDED PRECEDING) AS upto
        FROM (SELECT * FROM every ORDER BY every.udid LIMIT p_limit) e),
    kept AS (SELECT * FROM ordered o WHERE o.n = 1 OR o.upto <= p_max_bytes)
    SELECT NULL::text, coalesce(cmd.request_type, any_type), NULL::text, NULL::text, NULL::text,
           NULL::integer, NULL::bytea, vouch_time(cmd.created_at),
           (SELECT count(*) FROM kept) < total, NULL::bytea
    UNION ALL
    SELECT k.udid, k.request_type, k.status, vouch_time(k.queued_at), vouch_time(k.result_at),
           k.not_now_count, k.report, NULL::text, NULL::boolean,
           CASE WHEN k.report IS NOT NULL THEN vouch_answer_chain(k.udid, p_command_uuid) END
    FROM kept k
    ORDER BY 1 NULLS FIRST;
END
$$;

-- Takes a queued command off one device's queue: 'canceled', or 'answered' (too late: the device
-- has answered it) or 'unknown' (no such command for the device). A canceled attestation request
-- (its pending row is its queue entry) is settled ('canceled') and the device's next one planned,
-- so the scheduler does not wait for an answer that will not come; a canceled DeviceInformation (an
-- attestation request or the scheduler's light query) puts the light query back in the plan.
-- command.canceled is written when a receiver takes it (the audit keeps who asked: p_actor, the
-- token's name, is in the event too).
CREATE OR REPLACE FUNCTION vouch_command_cancel(p_udid text, p_command_uuid text, p_actor text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    was_queued_at timestamptz;
    was_not_nows integer;
    kind text;
BEGIN
    SELECT r.requested_at, coalesce(r.not_now_count, 0), 'DeviceInformation'
    INTO was_queued_at, was_not_nows, kind
    FROM attestation_requests r
    WHERE r.command_uuid = p_command_uuid AND r.udid = p_udid AND r.answered_at IS NULL
    FOR UPDATE;
    IF FOUND THEN
        PERFORM vouch_end_attestation_request(p_udid, p_command_uuid, 'canceled', NULL);
    ELSE
        DELETE FROM command_queue q WHERE q.udid = p_udid AND q.command_uuid = p_command_uuid
        RETURNING q.queued_at, q.not_now_count INTO was_queued_at, was_not_nows;
        IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM vouch_kept_answers(p_udid, p_command_uuid)) THEN
                RETURN 'answered';
            END IF;
            RETURN 'unknown';
        END IF;
        SELECT c.request_type INTO kind FROM commands c WHERE c.command_uuid = p_command_uuid;
    END IF;
    IF kind = 'DeviceInformation' THEN
        -- Its answer was to tell the OS version (vouch_request_attestation and the scheduler's
        -- tick leave info_due_at NULL until it comes): the light query comes back to the plan.
        UPDATE devices d SET info_due_at = vouch_now()
            + (SELECT info_interval FROM scheduler_policy)
        WHERE d.udid = p_udid AND d.info_due_at IS NULL
          AND EXISTS (SELECT 1 FROM enrollments e WHERE e.udid = p_udid AND e.enabled)
          AND NOT EXISTS (SELECT 1 FROM attestation_requests r
                          WHERE r.udid = p_udid AND r.answered_at IS NULL);
    END IF;
    IF vouch_wants('command.canceled') THEN
        PERFORM vouch_emit('command.canceled', p_udid, jsonb_build_object(
            'udid', p_udid, 'command_uuid', p_command_uuid, 'request_type', kind,
            'queued_at', vouch_time(was_queued_at), 'not_now_count', was_not_nows,
            'canceled_by', p_actor));
    END IF;
    RETURN 'canceled';
END
$$;

-- Takes a command off every queue it is in: the number of devices, or NULL for an unknown
-- command. Each device's entry is canceled as vouch_command_cancel does.
CREATE OR REPLACE FUNCTION vouch_command_cancel_all(p_command_uuid text, p_actor text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    target text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM commands c WHERE c.command_uuid = p_command_uuid)
       AND NOT EXISTS (SELECT 1 FROM attestation_requests r
                       WHERE r.command_uuid = p_command_uuid)
       -- an ended attestation request is its attestations row (vouch_device_requests)
       AND NOT EXISTS (SELECT 1 FROM attestations a
                       WHERE a.command_uuid = p_command_uuid AND a.source = 'mdm')
       AND NOT EXISTS (SELECT 1 FROM vouch_kept_answers(NULL, p_command_uuid)) THEN
        RETURN NULL;
    END IF;
    FOR target IN
        SELECT x.udid FROM (
            SELECT q.udid FROM command_queue q WHERE q.command_uuid = p_command_uuid
            UNION
            SELECT r.udid FROM vouch_pending_requests(p_command_uuid) r) x
        ORDER BY x.udid
    LOOP
        IF vouch_command_cancel(target, p_command_uuid, p_actor) = 'canceled' THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
