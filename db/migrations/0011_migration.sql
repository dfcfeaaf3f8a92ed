-- 0011: enrollments moved in from NanoMDM or MicroMDM through /migration (issue 25).
--
--  * A migrated enrollment has no device certificate yet: its identity_cert_sha256 is the
--    all-zero hash, which no certificate has (vouch_unbound_cert()), so every identity check
--    written before this migration (hash = the caller's) refuses it as it refuses a stranger.
--    The column stays NOT NULL: nothing can mistake "unbound" for "anybody".
--  * migrated_at marks an enrollment /migration created; identity_provisional an identity bound
--    by a migrated device's first signed request, until an attestation naming the migrated
--    device's UDID and serial verifies (or provisional_until passes); identity_reason why a
--    provisional binding was released; migrated_* the push credentials /migration brought.
--  * migration_refusals remembers each certificate whose provisional binding of a UDID was
--    released because its answer named another device or none: it never binds that UDID
--    provisionally again.
--  * push_topics: the topic of the push certificate each vouchd instance has installed (written
--    at start, at SIGHUP and by PUT /v1/pushcert), so that the database can tell an enrollment
--    whose topic no instance can push ("no_certificate").
--  * 'migration' is a reason of an attestation request (and of the plan), and counts against the
--    scheduler's fleet-wide rate limit like its own requests.

ALTER TABLE enrollments
    ADD COLUMN migrated_at timestamptz,
    ADD COLUMN identity_provisional boolean NOT NULL DEFAULT false,
    ADD COLUMN identity_reason text,
    -- A provisional binding ends by this time, whatever its requests became.
    ADD COLUMN provisional_until timestamptz,
    -- What /migration brought, put back when a provisional binding is released: a claimant's
    -- TokenUpdate must not leave the real device unreachable.
    ADD COLUMN migrated_topic text,
    ADD COLUMN migrated_push_token bytea,
    ADD COLUMN migrated_push_magic text,
    ADD COLUMN migrated_unlock_token bytea;
CREATE INDEX enrollments_provisional ON enrollments (provisional_until)
    WHERE identity_provisional;
-- GET /v1/migration counts migrated enrollments: a few among many, or all of them.
CREATE INDEX enrollments_migrated ON enrollments (udid) WHERE migrated_at IS NOT NULL;

CREATE TABLE migration_refusals (
    udid        text NOT NULL REFERENCES devices ON DELETE CASCADE,
    cert_sha256 vouch_sha256 NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT vouch_now(),
    PRIMARY KEY (udid, cert_sha256)
);

CREATE TABLE push_topics (
    instance   text NOT NULL,  -- host name and listen address of the vouchd that has it
    topic      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance, topic)
);

ALTER DOMAIN vouch_due_reason DROP CONSTRAINT vouch_due_reason_check;
ALTER DOMAIN vouch_due_reason ADD CONSTRAINT vouch_due_reason_check
    CHECK (VALUE IN ('os_change', 'random', 'max_age', 'retry', 'migration'));

ALTER TABLE attestation_requests DROP CONSTRAINT attestation_requests_reason_check,
    ADD CONSTRAINT attestation_requests_reason_check
    CHECK (reason IN ('enrollment', 'os_change', 'random', 'max_age', 'operator', 'retry',
                      'migration'));
DROP INDEX attestation_requests_scheduled;
CREATE INDEX attestation_requests_scheduled ON attestation_requests (requested_at)
    WHERE reason IN ('os_change', 'random', 'max_age', 'retry', 'migration');
