-- Trust decisions (docs/trust.md): the facts are read by plain statements (db/queries_trust.c);
-- here is what a decision writes.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- A device was turned away (vouchd rate-limits these per device and policy): a trust.denied
-- event for the SOC, with the policy, the reasons and who asked about whom.
CREATE OR REPLACE FUNCTION vouch_trust_denied(p_udid text, p_fields jsonb) RETURNS void
LANGUAGE sql AS $$
    SELECT vouch_emit('trust.denied',
                      CASE WHEN EXISTS (SELECT 1 FROM devices WHERE udid = p_udid)
                           THEN p_udid END,
                      p_fields);
$$;
