-- PostgreSQL for Vouch (15 or later). Run as a superuser, e.g.:
--   sudo -u postgres psql -v password="'$(openssl rand -hex 24)'" -f deploy/postgres-setup.sql
-- then put the same password in vouch.conf's database_url, e.g.
--   database_url = host=127.0.0.1 dbname=vouch user=vouch password=... sslmode=prefer
-- and create the schema (vouchd also does this at start, safely when several start together):
--   vouchd migrate --config /etc/vouch/vouch.conf
CREATE ROLE vouch LOGIN PASSWORD :password;
CREATE DATABASE vouch OWNER vouch ENCODING 'UTF8';
\connect vouch
-- The role owns what it creates; nobody else needs access.
REVOKE ALL ON DATABASE vouch FROM PUBLIC;
ALTER ROLE vouch SET statement_timeout = '30s';
ALTER ROLE vouch SET idle_in_transaction_session_timeout = '60s';
