-- The clock every time in the database comes from, and how times are written.
--
-- Code, not history: applied with CREATE OR REPLACE after the migrations, in one transaction,
-- at every start and `vouchd migrate` (db/migrate.c). A change to a function is a diff here; a
-- change of its arguments or result also needs a migration that drops the old one.

-- The test clock's skew (vouch_now).
CREATE OR REPLACE FUNCTION vouch_clock_skew() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT skew FROM vouch_clock), interval '0')
$$;

-- One clock. Verdicts are taken at the database's real time; vouch_clock.skew, how the tests
-- live through weeks and years in seconds, counts only in a session that says it lives by the
-- test clock (vouch.test_clock = on). vouchd's sessions always say it, on only with test_clock =
-- true in its configuration, which it refuses unless the database's owner set it for the
-- database too (ALTER DATABASE ... SET vouch.test_clock = on): moving vouch_clock alone, or the
-- setting alone, changes nothing vouchd does.
--
-- SQL, one expression, no subquery: PostgreSQL inlines it into every statement and PL/pgSQL
-- expression that calls it, where a PL/pgSQL function was a call of its own (three or more an
-- answer). The skew is read only in a session that lives by the test clock.
CREATE OR REPLACE FUNCTION vouch_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN current_setting('vouch.test_clock', true) = 'on'
                THEN now() + vouch_clock_skew() ELSE now() END
$$;

-- STABLE, as to_char is: a SQL function more volatile than it is declared is not inlined.
CREATE OR REPLACE FUNCTION vouch_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
