-- 0005: looking a device up the way an operator types it (issue 20).
--
--  * The device list filters by serial number: vouch_device_list takes p_serial, so its
--    three-argument form goes (the function itself is code, in db/functions/30_devices.sql).
--  * A UDID given in another case than the device's is found by vouch_udid_resolve(): an exact
--    match first (the primary key), else a case-insensitive one, which this index serves.

DROP FUNCTION vouch_device_list(text, integer, text);

CREATE INDEX devices_udid_lower ON devices (lower(udid));
