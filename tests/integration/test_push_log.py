"""The push log (issue 23): APNs answers appended to push_log, one statement a batch, never
written onto the enrollment one by one; the device object shows a device's newest answer; the
pruning keeps each device's newest answer on its enrollment; a database from before push_log
keeps its last pushes. The pushes themselves go to the independent HTTP/2 APNs of test_push."""

import secrets
import uuid

from harness import migrations_before, suite, wait_for
import test_push
from test_push import DEADLINE_S, PushTestCase


class PushLogTest(PushTestCase):
    """Answers are appended to push_log, one statement a batch (issue 23), never written onto
    the enrollment one by one; the device object shows the newest; the pruning keeps each
    device's newest answer on its enrollment."""

    def log_of(self, dev):
        return [tuple(line.split("|")) for line in self.pg.psql(
            "SELECT vouch_push_result_name(result), "
            "coalesce(vouch_push_apns_id(apns_id, apns_id_text), ''), coalesce(reason, '') "
            f"FROM push_log "
            f"WHERE udid = '{dev.udid}' ORDER BY seq", self.dbname).split()]

    def enrollment_columns(self, dev):
        return self.pg.psql(
            "SELECT coalesce(last_push_result, '-'), coalesce(last_push_apns_id, '-'), "
            f"coalesce(vouch_time(last_push_at), '-') FROM enrollments WHERE udid = '{dev.udid}'",
            self.dbname).strip()

    def test_seq_orders_answers_within_and_across_batches(self):
        """seq is one number from push_log_batch a batch, then the answer's place in it
        (migration 0019); an insert without seq takes a number of the same kind."""
        udid = f"SEQ-{secrets.token_hex(4)}"
        self.pg.psql(f"""
            SELECT vouch_push_results(ARRAY['{udid}', '{udid}'], '{{}}',
                                      ARRAY[4, 0]::smallint[], '{{}}', '{{}}', '{{}}', '{{}}');
            INSERT INTO push_log (udid, at, result) VALUES ('{udid}', vouch_now(), 2);
            SELECT vouch_push_results(ARRAY['{udid}'], '{{}}', ARRAY[3]::smallint[], '{{}}',
                                      '{{}}', '{{}}', '{{}}');""", self.dbname)
        rows = [line.split("|") for line in self.pg.psql(
            "SELECT seq, vouch_push_result_name(result) FROM push_log "
            f"WHERE udid = '{udid}' ORDER BY seq", self.dbname).split()]
        self.assertEqual([name for _, name in rows],
                         ["transient", "delivered", "rejected", "forbidden"],
                         "in the order they were written, within a batch and across")
        seqs = [int(seq) for seq, _ in rows]
        self.assertEqual(seqs[1] - seqs[0], 1, "a batch's answers take consecutive numbers")
        self.assertEqual(len({seq >> 20 for seq in seqs}), 3, "one number a batch (or insert)")
        self.pg.psql(f"DELETE FROM push_log WHERE udid = '{udid}'", self.dbname)
        with self.assertRaisesRegex(Exception, "at most 1048575"):
            self.pg.psql("SELECT vouch_push_results(array_fill('X'::text, ARRAY[1048576]), "
                         "'{}', '{}', '{}', '{}', '{}', '{}')", self.dbname)

    def test_answers_are_appended_and_the_newest_shows(self):
        dev = self.enroll()
        for _ in range(2):
            status, body = self.push_now(dev)
            self.assertEqual(status, 200, body)
        recs = self.pushes(dev)
        wait_for(lambda: len(self.log_of(dev)) == 3, DEADLINE_S,
                 what="three answers (enrollment push and two GET /v1/push) in push_log")
        self.assertEqual(self.log_of(dev), [("delivered", r.apns_id, "") for r in recs],
                         "push_log: one entry an answer, in order, with APNs' apns-id")
        self.assertEqual(self.enrollment_columns(dev), "-|-|-",
                         "an answer was written onto the enrollment instead of the log")
        self.apns.script(dev.token, test_push.rejected("BadDeviceToken"))
        status, body = self.push_now(dev)
        self.wait_push_block(dev, "the newest answer", last_push_result="rejected",
                             token_state="active")
        self.assertEqual(self.log_of(dev)[-1], ("rejected", "", "BadDeviceToken"))
        self.apns.script(dev.token)
        self.push_now(dev)
        self.wait_push_block(dev, "delivered again", last_push_result="delivered")

    def test_pruning_keeps_each_devices_newest_answer(self):
        pushed_since, forgotten = self.enroll(), self.enroll()
        wait_for(lambda: len(self.log_of(pushed_since)) == 1 and len(self.log_of(forgotten)) == 1,
                 DEADLINE_S, what="the enrollment pushes' answers")
        # forgotten: its only answers are 40 and 39 days old; pushed_since: an old one before
        # its enrollment push's.
        # One transaction: vouchd prunes too (every 10 minutes, the first 2 s after its start),
        # and must not see these entries before this test's own call has taken them.
        old_id = str(uuid.uuid4()).upper()
        old_at, deleted = self.pg.psql(f"""
            BEGIN;
            DELETE FROM push_log WHERE udid = '{forgotten.udid}';
            INSERT INTO push_log (udid, at, result, reason) VALUES
                ('{forgotten.udid}', vouch_now() - interval '40 days',
                 vouch_push_result_code('transient'), 'Shutdown');
            INSERT INTO push_log (udid, at, result, apns_id) VALUES
                ('{forgotten.udid}', vouch_now() - interval '39 days',
                 vouch_push_result_code('delivered'), '{old_id}');
            WITH moved AS (UPDATE push_log SET at = vouch_now() - interval '41 days'
                           WHERE udid = '{pushed_since.udid}' RETURNING seq)
            INSERT INTO push_log (udid, at, result)
                SELECT '{pushed_since.udid}', vouch_now() - interval '1 hour',
                       vouch_push_result_code('delivered');
            SELECT vouch_time(vouch_now() - interval '39 days');
            SELECT vouch_push_prune(interval '30 days', 1000);
            COMMIT;""", self.dbname).split()
        self.assertEqual(deleted, "3", "the three entries older than 30 days")
        self.assertEqual(self.log_of(forgotten), [])
        self.assertEqual(self.enrollment_columns(forgotten), f"delivered|{old_id}|{old_at}",
                         "a device's newest answer, pruned from the log, stays on its enrollment")
        self.wait_push_block(forgotten, "after pruning", last_push_result="delivered",
                             last_push_at=old_at)
        self.assertEqual(self.log_of(pushed_since), [("delivered", "", "")])
        self.assertEqual(self.enrollment_columns(pushed_since), "-|-|-",
                         "a device pushed since costs no update of its enrollment")
        self.assertEqual(self.pg.psql("SELECT vouch_push_prune(interval '30 days', 1000)",
                                      self.dbname).strip(), "0")


class PushLogUpgradeTest(PushTestCase):
    """A database made by the migrations before push_log, with answers on the enrollments, is
    migrated by a new vouchd: the device object still shows them, and new answers go to the log
    and show instead."""

    def test_an_upgraded_database_keeps_its_last_pushes(self):
        dbname = suite().new_database("push_log_upgrade", self.pg)
        sql = migrations_before("push_log")
        token = secrets.token_bytes(32)
        udid = "UPGRADE-" + secrets.token_hex(8).upper()
        sql.append(f"""
            INSERT INTO devices (udid) VALUES ('{udid}');
            INSERT INTO identity_certs (sha256, udid) VALUES (sha256('{udid}'::bytea), '{udid}');
            INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                     identity_cert_sha256, authenticated_at, token_updated_at,
                                     last_push_at, last_push_result, last_push_apns_id)
            VALUES ('{udid}', '{self.topic}', '\\x{token.hex()}', 'magic', true,
                    sha256('{udid}'::bytea), now(), now(), '2025-03-04T05:06:07Z', 'transient',
                    NULL);""")
        self.pg.psql("\n".join(sql), dbname)
        with self.vouchd_on(dbname, f"{__name__}.push_log_upgrade", dict(self.vouchd_config)) as v:
            r = v.device(udid)
            self.assertStatus(r, 200, "GET the upgraded device")
            self.assertEqual(r.json()["push"], {"token_state": "active",
                                                "last_push_at": "2025-03-04T05:06:07Z",
                                                "last_push_result": "transient"})
            r = v.admin("GET", f"/v1/push/{udid}")
            self.assertStatus(r, 200, "GET /v1/push on the upgraded database")
            wait_for(lambda: v.device(udid).json()["push"]["last_push_result"] == "delivered",
                     DEADLINE_S, what="the new answer to show")
            self.assertEqual(self.pg.psql("SELECT vouch_push_result_name(result) FROM push_log "
                                          f"WHERE udid = '{udid}'", dbname).strip(), "delivered")

    def test_the_narrow_log_reads_as_the_wide_one(self):
        """Migration 0013 (issue 22) stores the result as a code and an apns-id in APNs' form as
        a uuid: the entries from before read the same (any other apns-id as it came), in the
        same order, and the log goes on after them."""
        dbname = suite().new_database("push_log_narrow", self.pg)
        sql = migrations_before("push_log_narrow")
        token = secrets.token_bytes(32)
        udid = "NARROW-" + secrets.token_hex(8).upper()
        upper_id, lower_id = str(uuid.uuid4()).upper(), str(uuid.uuid4())
        # Younger than vouchd's own retention (a day), so that its prune, 2 s after start,
        # leaves them to this test's.
        old = [("transient", None, "Shutdown", "4 hours"),
               ("delivered", upper_id, None, "3 hours"),
               ("rejected", "not-a-uuid", "BadDeviceToken", "2 hours"),
               ("delivered", lower_id, None, "1 hour")]
        values = ", ".join(
            f"('{udid}', now() - interval '{age}', '{result}', "
            + (f"'{apns_id}'" if apns_id else "NULL") + ", "
            + (f"'{reason}'" if reason else "NULL") + ")"
            for result, apns_id, reason, age in old)
        sql.append(f"""
            INSERT INTO devices (udid) VALUES ('{udid}');
            INSERT INTO identity_certs (sha256, udid) VALUES (sha256('{udid}'::bytea), '{udid}');
            INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                     identity_cert_sha256, authenticated_at, token_updated_at)
            VALUES ('{udid}', '{self.topic}', '\\x{token.hex()}', 'magic', true,
                    sha256('{udid}'::bytea), now(), now());
            INSERT INTO push_log (udid, at, result, apns_id, reason) VALUES {values};""")
        self.pg.psql("\n".join(sql), dbname)
        log = ("SELECT vouch_push_result_name(result), "
               "coalesce(vouch_push_apns_id(apns_id, apns_id_text), '-'), coalesce(reason, '-') "
               f"FROM push_log WHERE udid = '{udid}' ORDER BY seq")
        with self.vouchd_on(dbname, f"{__name__}.push_log_narrow", dict(self.vouchd_config)) as v:
            self.assertEqual(
                [tuple(line.split("|")) for line in self.pg.psql(log, dbname).split()],
                [(result, apns_id or "-", reason or "-") for result, apns_id, reason, _ in old],
                "the entries from before migration 0013, as they were")
            self.assertEqual(self.pg.psql("SELECT count(*) FROM push_log WHERE apns_id_text "
                                          "IS NOT NULL", dbname).strip(), "2",
                             "only the ids not in APNs' form (upper-case UUID) kept as text")
            self.assertEqual(v.device(udid).json()["push"]["last_push_result"], "delivered")
            r = v.admin("GET", f"/v1/push/{udid}")
            self.assertStatus(r, 200, "GET /v1/push on the migrated database")
            wait_for(lambda: len(self.pg.psql(log, dbname).split()) == 5, DEADLINE_S,
                     what="the new answer after the migrated ones")
            newest = self.pg.psql(log, dbname).split()[-1].split("|")
            self.assertEqual(newest[0], "delivered")
            self.assertEqual(newest[1], str(uuid.UUID(newest[1])).upper(),
                             "the stand-in's apns-id, in APNs' form, read back as it came")
            # The pruning folds the newest entry onto the enrollment, its apns-id as it came.
            self.assertEqual(self.pg.psql(f"""
                UPDATE push_log SET at = at - interval '37 days' WHERE udid = '{udid}';
                SELECT vouch_push_prune(interval '30 days', 1000);""", dbname).split()[-1], "5")
            self.assertEqual(self.pg.psql(
                "SELECT last_push_result, last_push_apns_id FROM enrollments "
                f"WHERE udid = '{udid}'", dbname).strip(), f"delivered|{newest[1]}")
