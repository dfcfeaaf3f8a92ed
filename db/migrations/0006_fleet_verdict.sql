-- 0006: the dashboard's verdicts say what they count (issue 21).
--
--  * A device with no verdict and its first request out is 'awaiting_first', no longer
--    'never_asked': vouch_fleet_verdict takes whether a request is out, so its four-argument
--    form goes (the function itself is code, in db/functions/97_dashboard.sql). A new
--    database has none yet: the functions are made after the migrations.

DROP FUNCTION IF EXISTS vouch_fleet_verdict(text, timestamptz, text, timestamptz);
