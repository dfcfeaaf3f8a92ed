-- 0007: the rows every request writes no longer pay for their CHECK constraints (issue 22).
--
--  * PostgreSQL evaluates every CHECK constraint of a table at each INSERT and UPDATE, whatever
--    columns change, and first rebuilds it from its stored text once per statement: the
--    last_seen_at UPDATE of each request parsed the two lists of devices (attestation status,
--    due reason), the Idle's UPDATE of enrollments its hash length, the INSERT of each result
--    the status list, each Authenticate's INSERT of its certificate the hash length; about a
--    sixth of PostgreSQL's instructions per round trip.
--  * The same rules as domains: a domain is checked only where a value is written to its column
--    (from the type cache, with no parsing), and reads compare and convert as text (bytea).
--    Values and indexes stay what they were; the tables are rewritten once.

CREATE DOMAIN vouch_sha256 AS bytea CHECK (length(VALUE) = 32);
CREATE DOMAIN vouch_attestation_status AS text
    CHECK (VALUE IN ('none', 'verified', 'failed', 'unsupported', 'expired'));
CREATE DOMAIN vouch_due_reason AS text
    CHECK (VALUE IN ('os_change', 'random', 'max_age', 'retry'));
CREATE DOMAIN vouch_result_status AS text
    CHECK (VALUE IN ('Acknowledged', 'Error', 'CommandFormatError'));

ALTER TABLE devices
    DROP CONSTRAINT devices_attestation_status_check,
    DROP CONSTRAINT devices_attestation_due_reason_check,
    ALTER COLUMN attestation_status TYPE vouch_attestation_status,
    ALTER COLUMN attestation_due_reason TYPE vouch_due_reason;

ALTER TABLE enrollments
    DROP CONSTRAINT enrollments_identity_cert_sha256_check,
    ALTER COLUMN identity_cert_sha256 TYPE vouch_sha256;

ALTER TABLE identity_certs
    DROP CONSTRAINT identity_certs_sha256_check,
    ALTER COLUMN sha256 TYPE vouch_sha256;

ALTER TABLE command_results
    DROP CONSTRAINT command_results_status_check,
    ALTER COLUMN status TYPE vouch_result_status;
