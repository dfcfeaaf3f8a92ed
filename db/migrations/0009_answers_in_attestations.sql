-- 0009: an attestation campaign's answers in less space (issue 22), continued.
--
--  * The answer to an attestation request is kept in its attestation row (attestations.answer)
--    instead of a command_results row, when the row can give it back whole: the answer held
--    nothing but UDID, CommandUUID, Status (the row's udid, command_uuid, device_status),
--    QueryResponses strings and the certificates the row keeps, and it was neither put off
--    (NotNow) nor queued apart from its request. answer is its shape: the root's key order, then
--    QueryResponses' keys and strings, packed (docs/attestation.md, "Storage"). Answers stored
--    before stay in command_results and read as before.
--
-- The functions are code (db/functions/); this drops those whose arguments or results changed
-- (a new database has none yet: the functions are made after the migrations).

ALTER TABLE attestations ADD COLUMN answer text;

-- A verdict's properties and checked objects as vouchd writes them (one fixed shape each) are
-- kept as their values alone (vouch_json_pack): the keys, the nulls' names and the device's UDID
-- were most of their bytes. Either column is NULL when the object is kept whole as before
-- (another shape; rows from before this migration).
ALTER TABLE attestations ADD COLUMN properties_packed text, ADD COLUMN checked_packed text;

DROP FUNCTION IF EXISTS vouch_report(text, bytea, text, text, bytea, json, text, text, bytea);
DROP FUNCTION IF EXISTS vouch_record_attestation(text, text, json);

-- Indexes that cost an entry at every request, answer or Authenticate and serve little:
--  * attestation_requests' key becomes (udid, command_uuid): every look-up names the device,
--    and a device's requests (its older nonces) are found through it; attestation_requests_device
--    goes. Command UUIDs stay unique through commands' key.
--  * the fleet-wide rate limit counts only the scheduler's own requests of the last minute: its
--    index holds only those (an enrollment's or an operator's request is not in it).
--  * identity_certs_udid served only a cascading delete of a device, which nothing does.
ALTER TABLE attestation_requests DROP CONSTRAINT attestation_requests_pkey,
    ADD PRIMARY KEY (udid, command_uuid);
DROP INDEX attestation_requests_device;
DROP INDEX attestation_requests_recent;
CREATE INDEX attestation_requests_scheduled ON attestation_requests (requested_at)
    WHERE reason IN ('os_change', 'random', 'max_age', 'retry');
-- The pruning finds old requests by requested_at: a BRIN costs nearly nothing on a table
-- appended in time order (the btree it replaces took an entry at every request).
CREATE INDEX attestation_requests_age ON attestation_requests USING brin (requested_at);
DROP INDEX identity_certs_udid;
