-- 0014: an ended attestation request leaves attestation_requests (issue 22, continued).
--
-- Every answered request was stored twice: its attestations row (a verdict, an error answer or
-- a time-out) carries the request's command UUID, nonce, reason, time asked and generation, and
-- its attestation_requests row kept them too, with the time and outcome of its end. With years
-- of retention the request history grew like the attestation history (44 MiB of 380 at 100,000
-- devices after one campaign, bench_fleet.py: heap, key and partial indexes), for nothing new;
-- and each answer cost an UPDATE of the request row that could not be HOT (answered_at is in
-- partial-index predicates): a new heap tuple and a new key entry.
--
-- Now a request row lives while it is pending. The statement that ends it with an attestations
-- row deletes it (vouch_record_attestation, and vouch_end_attestation_request for an error or a
-- time-out). A request ended without an attestations row (canceled: an operator's cancel, a
-- re-enrollment, a migration) keeps its row as before (answered_at, outcome 'canceled'), so its
-- nonce is still known. Whatever reads ended requests reads both tables (vouch_device_requests in
-- db/functions/60_attestation.sql: a cached answer's older nonce, the type of a late answer, the
-- UUIDs vouch_enqueue refuses; vouch_scheduled_requests: the fleet-wide rate limit; the command
-- answers by UUID), and the API shows what it showed.
--
-- The indexes stay: each now holds only pending and canceled requests (the key serves the
-- look-ups of a device's request by UUID, the partial ones the pending request and the time-outs,
-- attestation_requests_scheduled the rate limit's requests still pending, the BRIN the pruning of
-- canceled ones), so their size follows the most requests pending at once (one a device at
-- most), not the history: after a campaign of the whole fleet their pages are empty, and the
-- next campaign uses them again. (Replacing the key by an index on udid alone would save about
-- 6 MiB at 100,000 devices at that peak, but leave the table without a primary key.)
--
-- The requests ended before are deleted here when their attestations row (source 'mdm', the same
-- device and command UUID) is there; the others (canceled, or whose attestations row was pruned
-- first) stay. No function's arguments or results changed.
DELETE FROM attestation_requests r
WHERE r.answered_at IS NOT NULL
  AND EXISTS (SELECT 1 FROM attestations a
              WHERE a.udid = r.udid AND a.command_uuid = r.command_uuid AND a.source = 'mdm');
