-- 0012: an attestation request is its own queue entry (issue 22, continued).
--
-- Every attestation request used to write three rows: its attestation_requests row, a commands
-- row (request_type DeviceInformation, body NULL since 0008: vouchd builds the body again from
-- the command UUID and the nonce) and a command_queue row (priority 1, four index entries),
-- which its answer deleted again. The pending attestation_requests row (answered_at NULL) is
-- now the queue entry: a device's next command is its pending request, unless put off (NotNow)
-- in this session, before anything in command_queue (db/functions/50_commands.sql). Its
-- queued_at is requested_at; a NotNow is kept in the row:
--
--  * not_now_at, not_now_count: the last NotNow and how many there were (both NULL when the
--    device never put the request off: no bytes in a row that was not).
--
-- Whatever read commands and command_queue reads the pending requests too (the device's
-- command list, command answers, cancel, the queue depth, the push retries), so the API shows
-- them as before. Command UUIDs are no longer all in commands' key: an operator's command may
-- not take the UUID of one of its devices' attestation requests (vouch_enqueue refuses it as a
-- duplicate).
--
-- What was queued moves here: the NotNow state of each queued attestation request goes to its
-- row, and the queue entries of attestation requests and the commands of attestation requests
-- nobody waits for go (command_results keeps an answered one's request_type; the command
-- answers read an attestation request's time from its row).
--
-- The functions are code (db/functions/); this drops those whose arguments or results changed
-- (a new database has none yet: the functions are made after the migrations).
ALTER TABLE attestation_requests ADD COLUMN not_now_at timestamptz,
    ADD COLUMN not_now_count integer CHECK (not_now_count > 0);

UPDATE attestation_requests r SET not_now_at = q.not_now_at,
    not_now_count = nullif(q.not_now_count, 0)
FROM command_queue q
WHERE q.udid = r.udid AND q.command_uuid = r.command_uuid AND r.answered_at IS NULL
  AND (q.not_now_at IS NOT NULL OR q.not_now_count > 0);
DELETE FROM command_queue q USING attestation_requests r
WHERE r.udid = q.udid AND r.command_uuid = q.command_uuid;
DELETE FROM commands c
WHERE (c.body IS NULL
       OR EXISTS (SELECT 1 FROM attestation_requests r WHERE r.command_uuid = c.command_uuid))
  AND NOT EXISTS (SELECT 1 FROM command_queue q WHERE q.command_uuid = c.command_uuid);

DROP FUNCTION IF EXISTS vouch_record_attestation(text, text, json, text, timestamptz, integer);
