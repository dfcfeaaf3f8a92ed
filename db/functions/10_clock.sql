-- The clock every time in the database comes from, and how times are written.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- One clock. Verdicts are taken at the database's real time; vouch_clock.skew, how the tests
-- live through weeks and years in seconds, counts only in a session that says it lives by the
-- test clock (vouch.test_clock = on). vouchd's sessions always say it, on only with test_clock =
-- true in its configuration, which it refuses unless the database's owner set it for the
-- database too (ALTER DATABASE ... SET vouch.test_clock = on): moving vouch_clock alone, or the
-- setting alone, changes nothing vouchd does.
CREATE OR REPLACE FUNCTION vouch_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF current_setting('vouch.test_clock', true) = 'on' THEN
        RETURN now() + coalesce((SELECT skew FROM vouch_clock), interval '0');
    END IF;
    RETURN now();
END
$$;

-- STABLE, as to_char is: a SQL function more volatile than it is declared is not inlined.
CREATE OR REPLACE FUNCTION vouch_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
