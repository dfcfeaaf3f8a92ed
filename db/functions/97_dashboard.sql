-- What the dashboard reads (GET /v1/fleet, GET /v1/fleet/devices; docs/api.md): the fleet
-- counted by verdict and the other figures of the overview, and a searchable, sortable page of
-- device objects. Everything is counted here, server-side: the page never holds the fleet.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- The dashboard's verdict of a device, from its device object's attestation (30_devices.sql):
-- status 'verified' split by freshness (a verified verdict is fresh or cached; one of unknown
-- freshness counts as cached: it is not this request's nonce), 'expired' (marked, or verified
-- past its expiry at p_now), 'failed', 'unsupported', and for 'none' (no verdict yet in this
-- generation) 'awaiting_first' while a request is out (p_request_out: the device object's
-- attestation.request), else 'never_asked'. The pending count overlaps them all.
CREATE OR REPLACE FUNCTION vouch_fleet_verdict(p_status text, p_expires_at timestamptz,
                                               p_freshness text, p_request_out boolean,
                                               p_now timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_status = 'verified' AND p_expires_at <= p_now THEN 'expired'
                WHEN p_status = 'verified' AND p_freshness = 'fresh' THEN 'verified_fresh'
                WHEN p_status = 'verified' THEN 'verified_cached'
                WHEN p_status = 'none' AND p_request_out THEN 'awaiting_first'
                WHEN p_status = 'none' THEN 'never_asked'
                ELSE p_status END
$$;

-- The overview as one JSON object (docs/api.md, "Fleet"). p_apns ('ok', 'degraded', 'off')
-- and p_certificate_not_after are vouchd's to know (the push service), passed through. The
-- attestation age of a verified device is the age of the attestation its verdict rests on,
-- since Apple made it (generated_at): attestation_max_age counts from there. Each age bucket
-- counts the ages above the previous bound up to its own (le_days null: older than 90 days).
-- os_versions: the p_os_top most common (ties by version text), then the rest as "other".
-- planned: the scheduler's plan for today (UTC) and the six days after, by day and reason; a
-- device already due is counted today.
-- jit is off in both functions: the planner prices the per-device look-ups of the verdict's
-- attestation high enough to compile them, which costs a second to save milliseconds.
CREATE OR REPLACE FUNCTION vouch_fleet_summary(p_apns text, p_certificate_not_after timestamptz,
                                               p_os_top integer)
RETURNS text LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    t timestamptz := vouch_now();
    today timestamptz := date_trunc('day', vouch_now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    fleet json;
BEGIN
    WITH v AS MATERIALIZED (
        SELECT vouch_fleet_verdict(d.attestation_status, d.attestation_expires_at,
                                   CASE WHEN d.attestation_status = 'verified'
                                        THEN (SELECT a.freshness FROM attestations a
                                              WHERE a.id = d.attestation_id) END,
                                   d.attestation_status = 'none'
                                   AND EXISTS (SELECT 1 FROM attestation_requests r
                                               WHERE r.udid = d.udid AND r.answered_at IS NULL),
                                   t) AS verdict,
               CASE WHEN d.attestation_status = 'failed'
                    THEN (SELECT a.reason FROM attestations a WHERE a.id = d.attestation_id)
               END AS reason,
               CASE WHEN d.attestation_status = 'verified' AND d.attestation_expires_at > t
                    THEN (SELECT t - coalesce(a.generated_at, a.received_at) FROM attestations a
                          WHERE a.id = d.attestation_id) END AS age,
               d.os_version
        FROM devices d),
    verdicts AS (
        SELECT count(*) AS devices,
               json_build_object(
                   'verified_fresh', count(*) FILTER (WHERE verdict = 'verified_fresh'),
                   'verified_cached', count(*) FILTER (WHERE verdict = 'verified_cached'),
                   'failed', count(*) FILTER (WHERE verdict = 'failed'),
                   'expired', count(*) FILTER (WHERE verdict = 'expired'),
                   'unsupported', count(*) FILTER (WHERE verdict = 'unsupported'),
                   'never_asked', count(*) FILTER (WHERE verdict = 'never_asked'),
                   'awaiting_first', count(*) FILTER (WHERE verdict = 'awaiting_first'))
                   AS counts
        FROM v),
    reasons AS (
        SELECT coalesce(json_object_agg(r.reason, r.n ORDER BY r.reason), '{}') AS counts
        FROM (SELECT coalesce(reason, 'unknown') AS reason, count(*) AS n
              FROM v WHERE verdict = 'failed' GROUP BY 1) r),
    ages AS (
        SELECT CASE WHEN age <= interval '1 day' THEN 1 WHEN age <= interval '2 days' THEN 2
                    WHEN age <= interval '3 days' THEN 3 WHEN age <= interval '5 days' THEN 5
                    WHEN age <= interval '7 days' THEN 7 WHEN age <= interval '14 days' THEN 14
                    WHEN age <= interval '21 days' THEN 21 WHEN age <= interval '30 days' THEN 30
                    WHEN age <= interval '60 days' THEN 60 WHEN age <= interval '90 days' THEN 90
               END AS le_days, count(*) AS n
        FROM v WHERE verdict IN ('verified_fresh', 'verified_cached') GROUP BY 1),
    buckets AS (
        SELECT json_agg(json_build_object('le_days', b.le_days, 'count', coalesce(ages.n, 0))
                        ORDER BY b.i) AS list
        FROM unnest(ARRAY[1, 2, 3, 5, 7, 14, 21, 30, 60, 90, NULL]) WITH ORDINALITY AS b(le_days, i)
        LEFT JOIN ages ON ages.le_days IS NOT DISTINCT FROM b.le_days),
    os AS (
        SELECT os_version, count(*) AS n,
               row_number() OVER (ORDER BY count(*) DESC, os_version COLLATE "C" NULLS LAST) AS i
        FROM v GROUP BY os_version),
    os_list AS (
        SELECT coalesce(json_agg(json_build_object('os_version', x.os_version, 'count', x.n)
                                 ORDER BY x.i), '[]') AS list
        FROM (SELECT os_version, n, i FROM os WHERE i <= p_os_top
              UNION ALL
              SELECT 'other', sum(n)::bigint, p_os_top + 1 FROM os WHERE i > p_os_top
              HAVING count(*) > 0) x),
    planned AS (
        SELECT coalesce(json_agg(json_build_object('date', p.day, 'reason', p.reason,
                                                   'count', p.n) ORDER BY p.day, p.reason),
                        '[]') AS list
        FROM (SELECT to_char(greatest(d.attestation_due_at, t) AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                         AS day,
                     d.attestation_due_reason AS reason, count(*) AS n
              FROM devices d
              WHERE d.attestation_due_at IS NOT NULL
                AND d.attestation_due_at < today + interval '7 days'
              GROUP BY 1, 2) p)
    SELECT json_build_object(
        'generated_at', vouch_time(t),
        'devices', verdicts.devices,
        'verdicts', verdicts.counts,
        'failed_by_reason', reasons.counts,
        'pending', (SELECT count(*) FROM attestation_requests r WHERE r.answered_at IS NULL),
        'attestation_age', json_build_object(
            'max_age_seconds', (SELECT extract(epoch FROM p.max_age)::bigint
                                FROM scheduler_policy p),
            'buckets', buckets.list),
        'os_versions', os_list.list,
        'planned', planned.list,
        'push', (SELECT json_build_object(
                     'dead_tokens', count(*) FILTER (WHERE e.token_dead_at IS NOT NULL),
                     'active_tokens', count(*) FILTER (WHERE e.token_dead_at IS NULL),
                     'apns', p_apns,
                     'certificate_not_after', vouch_time(p_certificate_not_after))
                 FROM enrollments e WHERE e.enabled AND e.push_token IS NOT NULL),
        'webhooks', (SELECT json_build_object(
                         'pending', count(*) FILTER (WHERE x.status = 'pending'),
                         'dead', count(*) FILTER (WHERE x.status = 'dead'))
                     FROM event_deliveries x WHERE x.status IN ('pending', 'dead')))
    INTO fleet
    FROM verdicts, reasons, buckets, os_list, planned;
    RETURN fleet::text;
END
$$;

-- A page of device objects (docs/api.md, "Fleet"): {"total", "offset", "limit", "devices"}.
-- p_q (NULL: all): a case-insensitive substring of the UDID, serial number, model or product
-- name. p_attestation (NULL: all): a dashboard verdict (vouch_fleet_verdict), 'verified'
-- (fresh or cached), 'none' (no verdict: never_asked or awaiting_first, as GET /v1/devices), or
-- 'pending' (a request out). p_sort: udid, serial, model, os_version (by version numbers when
-- it is one), verdict (worst first: failed, expired, unsupported, never_asked, awaiting_first,
-- verified_cached, verified_fresh), last_seen or next_check; values missing come last in
-- either order, ties go by UDID. Text compares byte by byte.
CREATE OR REPLACE FUNCTION vouch_fleet_devices(p_q text, p_attestation text, p_sort text,
                                               p_desc boolean, p_offset integer,
                                               p_limit integer)
RETURNS text LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    t timestamptz := vouch_now();
    q text := nullif(lower(p_q), '');
    result json;
BEGIN
    -- The verdict needs a look-up of the device's attestation (or, with no verdict, of its
    -- request): made only when a filter or the sort asks for it, and once per device (OFFSET 0
    -- keeps x from being folded into f, which would repeat the look-ups in each condition that
    -- reads the verdict).
    WITH f AS MATERIALIZED (
        SELECT x.*
        FROM (SELECT d.udid, d.serial_number, d.model, d.os_version, d.last_seen_at,
                     d.attestation_due_at,
                     CASE WHEN p_attestation IS NOT NULL OR p_sort = 'verdict' THEN
                         vouch_fleet_verdict(d.attestation_status, d.attestation_expires_at,
                                             CASE WHEN d.attestation_status = 'verified'
                                                  THEN (SELECT a.freshness FROM attestations a
                                                        WHERE a.id = d.attestation_id) END,
                                             d.attestation_status = 'none'
                                             AND EXISTS (SELECT 1 FROM attestation_requests r
                                                         WHERE r.udid = d.udid
                                                           AND r.answered_at IS NULL),
                                             t) END AS verdict
              FROM devices d
              WHERE q IS NULL OR strpos(lower(d.udid), q) > 0
                 OR strpos(lower(d.serial_number), q) > 0 OR strpos(lower(d.model), q) > 0
                 OR strpos(lower(d.product_name), q) > 0
              OFFSET 0) x
        WHERE p_attestation IS NULL
           OR x.verdict = p_attestation
           OR (p_attestation = 'verified' AND x.verdict IN ('verified_fresh', 'verified_cached'))
           OR (p_attestation = 'none' AND x.verdict IN ('never_asked', 'awaiting_first'))
           OR (p_attestation = 'pending'
               AND EXISTS (SELECT 1 FROM attestation_requests r
                           WHERE r.udid = x.udid AND r.answered_at IS NULL))),
    chosen AS (
        SELECT array_agg(s.udid) AS udids
        FROM (SELECT f.udid FROM f
              ORDER BY
                  CASE WHEN NOT p_desc THEN CASE p_sort WHEN 'udid' THEN f.udid
                                                        WHEN 'serial' THEN f.serial_number
                                                        WHEN 'model' THEN f.model END
                  END COLLATE "C" ASC NULLS LAST,
                  CASE WHEN p_desc THEN CASE p_sort WHEN 'udid' THEN f.udid
                                                    WHEN 'serial' THEN f.serial_number
                                                    WHEN 'model' THEN f.model END
                  END COLLATE "C" DESC NULLS LAST,
                  CASE WHEN p_sort = 'os_version' AND NOT p_desc
                            AND f.os_version ~ '^[0-9]{1,9}(\.[0-9]{1,9}){0,7}$'
                       THEN string_to_array(f.os_version, '.')::integer[] END ASC NULLS LAST,
                  CASE WHEN p_sort = 'os_version' AND p_desc
                            AND f.os_version ~ '^[0-9]{1,9}(\.[0-9]{1,9}){0,7}$'
                       THEN string_to_array(f.os_version, '.')::integer[] END DESC NULLS LAST,
                  CASE WHEN p_sort = 'os_version' AND NOT p_desc THEN f.os_version END
                      COLLATE "C" ASC NULLS LAST,
                  CASE WHEN p_sort = 'os_version' AND p_desc THEN f.os_version END
                      COLLATE "C" DESC NULLS LAST,
                  CASE WHEN NOT p_desc THEN CASE p_sort WHEN 'last_seen' THEN f.last_seen_at
                                                        WHEN 'next_check'
                                                        THEN f.attestation_due_at END
                  END ASC NULLS LAST,
                  CASE WHEN p_desc THEN CASE p_sort WHEN 'last_seen' THEN f.last_seen_at
                                                    WHEN 'next_check'
                                                    THEN f.attestation_due_at END
                  END DESC NULLS LAST,
                  CASE WHEN p_sort = 'verdict' THEN
                      CASE f.verdict WHEN 'failed' THEN 1 WHEN 'expired' THEN 2
                                     WHEN 'unsupported' THEN 3 WHEN 'never_asked' THEN 4
                                     WHEN 'awaiting_first' THEN 5 WHEN 'verified_cached' THEN 6
                                     ELSE 7 END
                      * CASE WHEN p_desc THEN -1 ELSE 1 END END ASC,
                  f.udid COLLATE "C" ASC
              OFFSET p_offset LIMIT p_limit) s)
    SELECT json_build_object(
        'total', (SELECT count(*) FROM f),
        'offset', p_offset,
        'limit', p_limit,
        'devices', coalesce((SELECT json_agg(vouch_device_object(d) ORDER BY c.i)
                             FROM chosen, unnest(chosen.udids) WITH ORDINALITY AS c(udid, i)
                             JOIN devices d ON d.udid = c.udid), '[]'))
    INTO result;
    RETURN result::text;
END
$$;
