-- 0008: an attestation campaign's answers in less space (issue 22).
--
--  * Apple's Sub CA is the same in every verified chain: the Sub CA of a verified chain of
--    Apple's shape (the leaf and the Sub CA that signed it) is kept once in attestation_cas (by
--    SHA-256), the row keeps its leaf in chain and names the Sub CA in ca_sha256
--    (vouch_attestation_chain puts them together). Any other chain (one that did not verify,
--    or carried more certificates than its path needed) stays whole in its row. Existing rows
--    move here.
--  * A command result that carried an attestation is kept without its certificates (its
--    DevicePropertiesAttestation an empty array): the attestation row has them, and the admin
--    API puts them back (db/functions/65_command_answers.sql). Answers stored before this
--    migration stay whole, and read as before.
--  * The DeviceInformation command of an attestation request is no longer stored: vouchd
--    builds it again from its command UUID and nonce (attestation_requests), so commands.body
--    may be NULL. Existing commands keep their bodies.
--  * Two indexes no query uses, each written at every insert (and every non-HOT update) of a hot
--    row: devices_attestation_status (the device list filters the status through a CASE, which
--    no index serves; the scheduler's expiry uses devices_verdict_expiry), and
--    command_queue_next (a device's next command is found through the primary key, which starts
--    with the UDID, among the few commands it has queued).
--  * attestation_requests.nonce loses its UNIQUE index: no query looks a request up by its
--    nonce (answers are matched to their device's own requests), a nonce is 32 bytes from
--    OpenSSL's CSPRNG, and the index cost an entry per request and per answer.
--
-- The functions are code (db/functions/); this drops those whose arguments or results changed
-- (a new database has none yet: the functions are made after the migrations).

CREATE TABLE attestation_cas (
    sha256 vouch_sha256 PRIMARY KEY,
    der    bytea NOT NULL
);

ALTER TABLE attestations ADD COLUMN ca_sha256 bytea[];

INSERT INTO attestation_cas (sha256, der)
SELECT DISTINCT sha256(c), c
FROM attestations a, unnest(a.chain[2:]) AS c
WHERE a.status = 'verified' AND cardinality(a.chain) = 2
ON CONFLICT (sha256) DO NOTHING;

UPDATE attestations a SET
    ca_sha256 = ARRAY(SELECT sha256(c) FROM unnest(a.chain[2:]) WITH ORDINALITY AS x(c, n)
                      ORDER BY n),
    chain = a.chain[1:1]
WHERE a.status = 'verified' AND cardinality(a.chain) = 2;

ALTER TABLE commands ALTER COLUMN body DROP NOT NULL;

DROP INDEX devices_attestation_status;
DROP INDEX command_queue_next;
ALTER TABLE attestation_requests DROP CONSTRAINT attestation_requests_nonce_key;

DROP FUNCTION IF EXISTS vouch_report(text, bytea, text, text, bytea, json, text, text);
DROP FUNCTION IF EXISTS vouch_record_attestation(text, text, json);
DROP FUNCTION IF EXISTS vouch_command_answer(text, text);
DROP FUNCTION IF EXISTS vouch_command_answers(text, integer, bigint);
