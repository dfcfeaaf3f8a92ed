-- 0009: an attestation campaign's answers in less space (issue 22), continued.
--
--  * The answer to an attestation request is kept in its attestation row (attestations.answer)
--    instead of a command_results row, when the row can give it back whole: the answer held
--    nothing but UDID, CommandUUID, Status (the row's udid, command_uuid, device_status),
--    QueryResponses strings and the certificates the row keeps, and it was neither put off
--    (NotNow) nor queued apart from its request. answer is its shape: the root's key order, then
--    QueryResponses' keys and strings (docs/attestation.md, "Storage"). Answers stored before
--    stay in command_results and read as before.
--
-- The functions are code (db/functions/); this drops those whose arguments or results changed
-- (a new database has none yet: the functions are made after the migrations).

ALTER TABLE attestations ADD COLUMN answer text[];

DROP FUNCTION IF EXISTS vouch_report(text, bytea, text, text, bytea, json, text, text, bytea);
DROP FUNCTION IF EXISTS vouch_record_attestation(text, text, json);

