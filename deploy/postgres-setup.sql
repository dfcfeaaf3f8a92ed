-- PostgreSQL for Vouch (15 or later). Run as a superuser, e.g.:
--   sudo -u postgres psql -v password="'$(openssl rand -hex 24)'" -f deploy/postgres-setup.sql
-- (the Debian package installs this file as /usr/share/vouch/postgres-setup.sql), then put the
-- same password in vouch.conf's database_url, e.g.
--   database_url = host=127.0.0.1 dbname=vouch user=vouch password=... sslmode=prefer
-- and create the schema (vouchd also does this at start, safely when several start together):
--   vouchd migrate --config /etc/vouch/vouch.conf
--
-- Safe to run again: it creates the role `vouch` and the database `vouch` only when they are
-- absent (an existing role keeps its password: change it with ALTER ROLE vouch PASSWORD ...),
-- then sets what it sets to the same values. It stops at the first error, before anything after
-- it: a database `vouch` that another role owns is an error, not something to take over.
\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vouch') AS vouch_role_missing \gset
\if :vouch_role_missing
  \if :{?password}
    CREATE ROLE vouch LOGIN PASSWORD :password;
  \else
    DO $$ BEGIN RAISE EXCEPTION 'postgres-setup.sql: the role vouch does not exist yet: '
        'give its password, psql -v password="''...''"'; END $$;
  \endif
\endif

SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'vouch') AS vouch_database_missing \gset
\if :vouch_database_missing
  CREATE DATABASE vouch OWNER vouch ENCODING 'UTF8';
\endif
DO $$
BEGIN
    IF (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vouch') <> 'vouch' THEN
        RAISE EXCEPTION 'postgres-setup.sql: the database vouch exists and its owner is not the '
            'role vouch: vouchd must own its database (ALTER DATABASE vouch OWNER TO vouch, if '
            'that is the database meant)';
    END IF;
END $$;

\connect vouch
-- The role owns what it creates; nobody else needs access.
REVOKE ALL ON DATABASE vouch FROM PUBLIC;
ALTER ROLE vouch SET statement_timeout = '30s';
ALTER ROLE vouch SET idle_in_transaction_session_timeout = '60s';
