-- 0017: identity_certs no longer keeps the certificate's subject (issue 22: database size).
--
-- The subject was stored "for information only" (docs/protocol.md) and nothing read it: no
-- function, no answer of the API, no event. It was the widest column of the table after the
-- UDID (52 bytes on average in bench_fleet.py's fleet: about 5 MiB at 100,000 devices). What is
-- kept of a device's identity is the SHA-256 of its certificate (what the enrollment is bound
-- to) and the certificate's notAfter, which the device object shows.
--
-- vouch_authenticate loses its p_cert_subject argument. Dropping a column does not rewrite the
-- table: the space of existing rows comes back as they are written again (or at a VACUUM FULL).
DROP FUNCTION IF EXISTS vouch_authenticate(text, bytea, text, timestamptz, text, text, text, text,
                                           text, text, text, text, text, text, bytea, boolean,
                                           jsonb);
ALTER TABLE identity_certs DROP COLUMN subject;
