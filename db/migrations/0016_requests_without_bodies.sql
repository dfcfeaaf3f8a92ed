-- 0016: attestation requests are asked without a body (issue 22: a campaign's CPU).
--
-- Since 0008 a pending request keeps no DeviceInformation body: vouchd builds it from the
-- request's command UUID and nonce when the device fetches it (vouch_report's next_nonce;
-- command_attestation_body in server/device/command.c). Yet vouchd still built every request's
-- XML plist, hex-encoded it (twice its size) into a bytea[] literal and sent it to functions
-- that ignored it. Now vouchd makes a request's UUID and nonce only (command_new_attestation),
-- and the functions that ask take no body: vouch_request_attestation, vouch_request_attestations,
-- vouch_scheduler_tick (its light query's body, which is stored, stays) and vouch_token_update.
--
-- vouch_request_attestations (POST /v1/attest, vouchctl attest) is also set-based now: one
-- INSERT of the requests, one UPDATE of the devices asked and one SELECT of the answers for the
-- whole list, where it called vouch_udid_resolve and vouch_request_attestation once a device.
-- Its answers are the same, row for row.
--
-- Their old signatures are dropped here; db/functions creates the new ones after the migrations.
-- No table changes.
DROP FUNCTION IF EXISTS vouch_request_attestation(text, text, bytea, bytea, text);
DROP FUNCTION IF EXISTS vouch_request_attestations(text[], text[], bytea[], bytea[], text);
DROP FUNCTION IF EXISTS vouch_scheduler_tick(text[], bytea[], bytea[], text, bytea, integer);
DROP FUNCTION IF EXISTS vouch_token_update(text, bytea, text, bytea, text, bytea, boolean, text,
                                           bytea, bytea, bytea, jsonb);
