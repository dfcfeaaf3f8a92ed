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

