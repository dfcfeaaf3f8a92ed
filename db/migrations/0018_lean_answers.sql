-- 0018: what every command's answer costs PostgreSQL (issue 22: round trips).
--
-- An answer reads the device's next command. Without an index in the queue's order that read
-- was a bitmap scan of the device's entries, a hash join with commands and a sort; with it, an
-- index probe. 0008 dropped this index while every attestation request was a queue entry (the
-- campaign wrote it once a device); since 0012 requests are not queue entries, so the index
-- costs only the operator's commands, whose answers it serves. Measured in a single-user
-- PostgreSQL under callgrind, 3,000 answers: 119,000 instructions fewer an answer (of 738,000).
CREATE INDEX command_queue_next ON command_queue (udid, priority DESC, id);

-- A devices row is never deleted: no function deletes one (a device leaves by CheckOut, and its
-- history stays). The foreign keys to it of the three tables written as devices answer (a
-- command's result, an attestation, an attestation request) checked what cannot fail, and each
-- check was a query of its own that also locked the devices row: about 45,000 instructions an
-- inserted row, a sixteenth of an answer. Every row they hold is written by a function that has
-- just read the device's enrollment (whose own foreign key to devices stays).
ALTER TABLE command_results DROP CONSTRAINT command_results_udid_fkey;
ALTER TABLE attestations DROP CONSTRAINT attestations_udid_fkey;
ALTER TABLE attestation_requests DROP CONSTRAINT attestation_requests_udid_fkey;

-- devices.attestation_id names the attestation a device's verdict rests on, written in the
-- transaction that writes that attestation, and the prune (vouch_prune) never deletes an
-- attestation a device names. Its foreign key checked what cannot fail at every verdict (a
-- query and a lock on the attestations row), and its ON DELETE SET NULL, which never had
-- anything to set, made each pruned attestation a scan of devices (no index has the column).
ALTER TABLE devices DROP CONSTRAINT devices_attestation_id_fkey;
