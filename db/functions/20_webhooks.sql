-- The web-hook outbox: receivers, events written in the transaction of their change, and the
-- dispatchers' claims and results.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- ---- Events (the web-hook outbox) ----
-- The signatures that issue 25 replaced (the check-ins and reports take p_url_params; the
-- receivers have topics of their own): dropped here, at every start, rather than in a numbered
-- migration, so that this change needs none (DROP ... IF EXISTS is a no-op once they are gone).
-- The functions of 40_checkin.sql and 50_commands.sql are plpgsql: dropping them before they are
-- created again in this transaction breaks nothing that calls them.
DROP FUNCTION IF EXISTS vouch_authenticate(text, bytea, text, timestamptz, text, text, text, text,
                                           text, text, text, text, text, text, bytea, boolean);
DROP FUNCTION IF EXISTS vouch_token_update(text, bytea, text, bytea, text, bytea, boolean, text,
                                           bytea, bytea, bytea);
DROP FUNCTION IF EXISTS vouch_checkout(text, bytea, bytea);
DROP FUNCTION IF EXISTS vouch_report(text, bytea, text, text, bytea, json, text, text, bytea,
                                     text);
DROP FUNCTION IF EXISTS vouch_emit_mdm(text, text, bytea, text, text, integer);
DROP FUNCTION IF EXISTS vouch_set_webhooks(text[], text[]);

-- The receivers of this deployment (vouchd's webhook_url), each with the topics it takes:
-- p_topic_lists[i] names p_urls[i]'s, separated by commas; NULL: every topic.
CREATE OR REPLACE FUNCTION vouch_set_webhook_receivers(p_urls text[], p_topic_lists text[])
RETURNS void LANGUAGE sql AS $$
    DELETE FROM webhook_receivers WHERE url <> ALL (p_urls);
    INSERT INTO webhook_receivers (url, topics)
    SELECT u, string_to_array(t, ',') FROM unnest(p_urls, p_topic_lists) AS r(u, t)
    ON CONFLICT (url) DO UPDATE SET topics = EXCLUDED.topics;
$$;

-- Whether any receiver takes the topic. MDM events (which carry whole request bodies) are only
-- written then; compliance events are always kept, as the device's history.
CREATE OR REPLACE FUNCTION vouch_wants(p_topic text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM webhook_receivers r
                   WHERE r.topics IS NULL OR p_topic = ANY (r.topics));
END
$$;

-- Stores an event: {"topic", "event_id", "created_at"} and the topic's own fields, as the exact
-- text receivers will get, with a delivery for every receiver that takes the topic.
CREATE OR REPLACE FUNCTION vouch_emit(p_topic text, p_udid text, p_fields jsonb) RETURNS void
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
-- the report's status and command_uuid, the TokenUpdate tally, and the query parameters of the
-- URL the device used (url_params; NULL or empty: left out, as NanoMDM leaves them). Nothing is
-- built unless a receiver takes the topic: most requests are not web-hooked.
CREATE OR REPLACE FUNCTION vouch_emit_mdm(p_topic text, p_udid text, p_raw bytea, p_status text,
                               p_command_uuid text, p_tally integer,
                               p_url_params jsonb DEFAULT NULL)
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
                                                'token_update_tally', p_tally,
                                                'url_params', CASE WHEN p_url_params <> '{}'
                                                                   THEN p_url_params END))));
END
$$;

-- A check-in vouchd does not serve (UserAuthenticate, SetBootstrapToken, GetBootstrapToken,
-- DeclarativeManagement, GetToken; docs/protocol.md): the device's identity is checked as for
-- every check-in, and an enrolled device's message goes to the receivers of mdm.<MessageType>,
-- as NanoMDM sends it (NanoMDM's five; ReturnToService and SetAwaitingConfiguration have no
-- topic). Returns the identity verdict (vouch_check_identity).
CREATE OR REPLACE FUNCTION vouch_unsupported_checkin(p_udid text, p_cert bytea,
                                                     p_message_type text, p_raw bytea,
                                                     p_url_params jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    verdict text := vouch_check_identity(p_udid, p_cert);
BEGIN
    IF verdict = 'ok' AND p_message_type IN ('UserAuthenticate', 'SetBootstrapToken',
                                             'GetBootstrapToken', 'DeclarativeManagement',
                                             'GetToken') THEN
        PERFORM vouch_emit_mdm('mdm.' || p_message_type, p_udid, p_raw, NULL, NULL, NULL,
                               p_url_params);
    END IF;
    RETURN verdict;
END
$$;

-- A compliance event: the device object as it is now, and the topic's fields.
CREATE OR REPLACE FUNCTION vouch_emit_device(p_topic text, p_udid text, p_fields jsonb) RETURNS void
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
CREATE OR REPLACE FUNCTION vouch_webhook_claim(p_limit integer, p_lease_s integer)
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
CREATE OR REPLACE FUNCTION vouch_webhook_results(p_ids bigint[], p_receivers text[], p_ok boolean[],
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
CREATE OR REPLACE FUNCTION vouch_event_list(p_status text, p_before bigint, p_limit integer) RETURNS text
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
CREATE OR REPLACE FUNCTION vouch_event_retry(p_id bigint) RETURNS integer
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
