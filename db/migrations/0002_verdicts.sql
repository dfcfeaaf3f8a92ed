-- 0002: a verdict that cannot be borrowed, outlived or opted out of: the tables' part.
--
--  * Enrollment generations: each binding of an identity certificate to a UDID is a generation.
--    Requests, nonces and verdicts belong to theirs; with reenroll = refuse, an operator allows
--    one re-enrollment at a time.
--  * Cached answers are bounded by what vouchd checked them against (attestations.checked).
--  * The verdict and the request are two things: devices.attestation_status is the last
--    verdict, with no 'pending' any more; 'expired' is new.
--  * Silence fails: requests left unanswered for answer_timeout end as errors.
--
-- The functions are code, in db/functions/ (applied after the migrations at every start); this
-- migration drops those whose arguments or results changed, and the one that is gone.

ALTER TABLE enrollments
    ADD COLUMN generation integer NOT NULL DEFAULT 1,
    -- An operator allowed the next new certificate in (reenroll = refuse).
    ADD COLUMN reenroll_allowed boolean NOT NULL DEFAULT false;

ALTER TABLE attestation_requests ADD COLUMN generation integer NOT NULL DEFAULT 1;

ALTER TABLE attestations
    ADD COLUMN generation integer NOT NULL DEFAULT 1,
    -- The older nonce a cached answer carried (the request's own is in nonce).
    ADD COLUMN cached_nonce bytea,
    -- What the verdict was checked against, beside the nonces: expected UDID and serial, the OS
    -- version compared, the time, whether a new attestation was required, and when a cached
    -- answer's nonce was asked (vouchctl verify --server checks it again).
    ADD COLUMN checked json;

ALTER TABLE scheduler_policy
    ADD COLUMN answer_timeout interval NOT NULL DEFAULT interval '24 hours'
        CHECK (answer_timeout > interval '0');

-- The posture is the last verdict; a pending request is shown beside it.
ALTER TABLE devices ADD COLUMN attestation_expires_at timestamptz;  -- of a verified verdict

UPDATE devices d SET attestation_status = coalesce(
    (SELECT a.status FROM attestations a WHERE a.id = d.attestation_id), 'none')
WHERE d.attestation_status = 'pending';

UPDATE devices d SET attestation_expires_at = least(a.expires_at, a.generated_at + p.max_age)
FROM attestations a, scheduler_policy p
WHERE a.id = d.attestation_id AND d.attestation_status = 'verified';

ALTER TABLE devices DROP CONSTRAINT devices_attestation_status_check;

ALTER TABLE devices ADD CONSTRAINT devices_attestation_status_check
    CHECK (attestation_status IN ('none', 'verified', 'failed', 'unsupported', 'expired'));

CREATE INDEX devices_verdict_expiry ON devices (attestation_expires_at)
    WHERE attestation_status = 'verified';

-- Requests left unanswered, oldest first, for the scheduler's time-outs.
CREATE INDEX attestation_requests_unanswered ON attestation_requests (requested_at)
    WHERE answered_at IS NULL;

-- Functions whose arguments or results changed (db/functions/ creates them anew), and one that
-- is gone: a pending request no longer replaces the verdict, so nothing falls back to one.
DROP FUNCTION vouch_posture_after(text);
DROP FUNCTION vouch_authenticate(text, bytea, text, timestamptz, text, text, text, text, text,
                                 text, text, text, text, text, bytea);
DROP FUNCTION vouch_report(text, bytea, text, text, bytea, json, text, text);
DROP FUNCTION vouch_scheduler_next(integer);
DROP FUNCTION vouch_stats();
