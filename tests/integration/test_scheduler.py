"""The attestation scheduler (issue 5): the policy, OS changes, a simulated year, several
instances on one database, and an instance killed while it ticks.

Time is the database's clock (vouch_now() = now() + vouch_clock.skew): a test moves it forward
with one UPDATE and wakes the instances with NOTIFY vouch_scheduler, as an instance does when it
makes work due; vouchd verifies attestations at that clock too. So weeks pass in a second.

What must hold (docs/attestation.md, caching and the 7-day limit):
  * after enrollment, next_due_at is at least attestation_min_interval after the attestation
    Apple generated (its leaf's notBefore), and no later than attestation_max_age after it;
  * an OS change (here seen in the answer to the light DeviceInformation query) is stored as a
    device.os_changed event with the previous version and moves next_due_at to the earliest
    moment the 7-day rule allows: at once outside the window, at notBefore + 7 days inside it;
    the request then made says why (request_reason os_change);
  * across a simulated year of 1,000 devices, random re-attestation never asks sooner than
    7 days after the last generated attestation and its mean interval is within 3% of
    attestation_mean_interval;
  * two instances serving one fleet never queue two attestation requests for one device, with
    the scheduler and `vouchctl attest --all` at the same time;
  * an instance killed while ticking loses nothing: another takes over the due devices, and
    the devices whose push never went out are pushed by the other's sweep.
"""

import datetime
import hashlib
import json
import math
import subprocess
import time

from harness import VOUCHCTL, Vouchd, VouchTestCase, wait_for
from test_attestation import AttestationCase
from test_push import PushTestCase

DAY = 86400
DEADLINE_S = 30.0


# -- the database's clock and fleets ----------------------------------------------------------
def sql(case, text):
    return case.pg.psql(text, case.dbname)


def db_clock(case):
    """The database's clock (UTC datetime)."""
    epoch = float(sql(case, "SELECT extract(epoch FROM vouch_now())").strip())
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def set_clock(case, when):
    """Moves the database's clock to when (forward only) and wakes the schedulers."""
    sql(case, f"UPDATE vouch_clock SET skew = timestamptz '{when.isoformat()}' - now(); "
              "NOTIFY vouch_scheduler;")


def parse_time(value):
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def insert_fleet(case, prefix, count, topic="com.apple.mgmt.External.test", due=False):
    """count enrolled devices straight into the tables (the way an import would): identity
    binding, push token (hex of sha256('t' || udid)), and, with due=True, an attestation due
    now for a random re-check."""
    sql(case, f"""
        INSERT INTO devices (udid, os_version, build_version)
          SELECT '{prefix}-' || lpad(i::text, 5, '0'), '17.4', '21E219'
          FROM generate_series(1, {count}) i;
        INSERT INTO identity_certs (sha256, udid)
          SELECT sha256(udid::bytea), udid FROM devices WHERE udid LIKE '{prefix}-%';
        INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                 identity_cert_sha256, authenticated_at, token_updated_at)
          SELECT udid, '{topic}', sha256(('t' || udid)::bytea), 'magic-' || udid, true,
                 sha256(udid::bytea), vouch_now(), vouch_now()
          FROM devices WHERE udid LIKE '{prefix}-%';""")
    if due:
        sql(case, f"UPDATE devices SET attestation_due_at = vouch_now(), "
                  f"attestation_due_reason = 'random' WHERE udid LIKE '{prefix}-%'; "
                  "NOTIFY vouch_scheduler;")
    return [f"{prefix}-{i:05d}" for i in range(1, count + 1)]


# Every attestation request: pending or canceled in attestation_requests, ended in its
# attestations row (since 0014; vouch_device_requests).
ALL_REQUESTS = ("(SELECT udid, command_uuid, reason, requested_at FROM attestation_requests "
                "UNION ALL SELECT udid, command_uuid, request_reason, requested_at "
                "FROM attestations WHERE source = 'mdm')")


def requests_per_device(case, prefix):
    """{udid: number of attestation requests} for the fleet."""
    out = sql(case, f"SELECT d.udid, count(r.command_uuid) FROM devices d "
                    f"LEFT JOIN {ALL_REQUESTS} r ON r.udid = d.udid "
                    f"WHERE d.udid LIKE '{prefix}-%' GROUP BY d.udid")
    return {u: int(n) for u, n in (line.split("|") for line in out.split())}


def attestation_commands_per_device(case, prefix):
    """{udid: DeviceInformation commands queued} for the fleet (a pending attestation request
    is its own queue entry)."""
    out = sql(case, f"SELECT d.udid, count(q.command_uuid) FROM devices d "
                    f"LEFT JOIN (SELECT q.udid, q.command_uuid FROM command_queue q "
                    f"  JOIN commands c ON c.command_uuid = q.command_uuid "
                    f"  AND c.request_type = 'DeviceInformation' "
                    f"  UNION ALL SELECT r.udid, r.command_uuid FROM attestation_requests r "
                    f"  WHERE r.answered_at IS NULL) q ON q.udid = d.udid "
                    f"WHERE d.udid LIKE '{prefix}-%' GROUP BY d.udid")
    return {u: int(n) for u, n in (line.split("|") for line in out.split())}


# ---------------------------------------------------------------------------------------------
class SchedulerCase(AttestationCase):
    """One vouchd with its scheduler; devices speak the protocol (device.py) and answer with
    chains of the stand-in Apple PKI; helpers for living through weeks by the database's
    clock."""

    def attest_at_clock(self, dev, what, **leaf):
        """A verified fresh attestation whose leaf Apple 'generated' at the database's clock."""
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        cu, nonce, chain = self.attest_fresh(dev, what, not_before=generated, **leaf)
        return cu, generated

    def take_info_query(self, dev, what):
        """Waits for the light query and takes it: DeviceInformation without a nonce."""
        def queued():
            return [c for c in self.vouchd.commands(dev.udid) if c["status"] == "queued"]
        wait_for(queued, DEADLINE_S, what=f"{what}: a queued command")
        cmd = self.assertCommand(dev.idle(), what=f"{what}: Idle")
        c = cmd["Command"]
        self.assertEqual(c["RequestType"], "DeviceInformation", f"{what}: {cmd}")
        self.assertNotIn("DeviceAttestationNonce", c, f"{what}: the light query asks no "
                                                      f"attestation: {cmd}")
        self.assertIn("OSVersion", c["Queries"], f"{what}: {cmd}")
        self.assertIn("BuildVersion", c["Queries"], f"{what}: {cmd}")
        return cmd

    def answer_info(self, dev, cmd, os_version, build_version):
        r = dev.report("Acknowledged", cmd["CommandUUID"],
                       QueryResponses={"OSVersion": os_version, "BuildVersion": build_version,
                                       "ProductName": dev.product_name, "Model": dev.model})
        self.assertStatus(r, 200, "answer to the light query")
        return r

    def os_events(self, dev):
        out = sql(self, f"SELECT body FROM events WHERE topic = 'device.os_changed' "
                        f"AND udid = '{dev.udid}' ORDER BY id")
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        for e in events:
            self.assertEqual(e["device"]["udid"], dev.udid, e)
        return [{"previous": e["previous"]} for e in events]

    def next_due(self, dev):
        att = self.attestation(dev.udid)
        due = att["next_due_at"]
        return (parse_time(due) if due else None), att.get("next_due_reason")


class SchedulerPolicyTest(SchedulerCase):
    """A long mean interval keeps random re-checks out of the weeks these tests live through,
    so what is planned is what the rules under test say."""

    vouchd_config = {"attestation_mean_interval": "365d", "attestation_max_age": "3650d"}

    def test_after_enrollment_next_due_follows_the_policy(self):
        devs = [self.iphone() for _ in range(5)]
        dues = []
        for dev in devs:
            _cu, generated = self.attest_at_clock(dev, "enrollment attestation")
            due, reason = self.next_due(dev)
            self.assertIsNotNone(due, f"{dev.udid}: nothing planned after a verified answer")
            self.assertIn(reason, ("random", "max_age"), f"{dev.udid}")
            self.assertGreaterEqual(due, generated + datetime.timedelta(days=7),
                                    f"{dev.udid}: planned inside Apple's 7-day window")
            self.assertLessEqual(due, generated + datetime.timedelta(days=3650, minutes=1),
                                 f"{dev.udid}: planned after attestation_max_age")
            dues.append(due)
        self.assertEqual(len(set(dues)), len(dues), f"random plans coincide: {dues}")

    def test_os_change_inside_the_window(self):
        dev = self.iphone(os_version="17.4")
        _cu, generated = self.attest_at_clock(dev, "enrollment attestation")
        # A day later the light query comes; the device has updated meanwhile.
        set_clock(self, db_clock(self) + datetime.timedelta(days=1, minutes=1))
        cmd = self.take_info_query(dev, "a day after enrollment")
        self.answer_info(dev, cmd, "17.5", "21F79")
        events = self.os_events(dev)
        self.assertEqual(events, [{"previous": {"os_version": "17.4",
                                                "build_version": dev.build_version}}])
        obj = self.device_obj(dev.udid)
        self.assertEqual((obj["os_version"], obj["build_version"]), ("17.5", "21F79"))
        due, reason = self.next_due(dev)
        self.assertEqual(reason, "os_change")
        self.assertEqual(due, generated + datetime.timedelta(days=7),
                         "inside the window: the earliest moment Apple's rule allows")
        self.assertEqual(self.pending_requests(dev.udid), [], "asked inside the 7-day window")

        # The window ends: the request comes, and says why.
        set_clock(self, generated + datetime.timedelta(days=7, minutes=1))
        wait_for(lambda: self.pending_requests(dev.udid), DEADLINE_S,
                 what="the os_change request once the window ends")
        dev.os_version = "17.5"
        cu, _generated2 = self.attest_at_clock(dev, "os_change attestation", os_version="17.5")
        entry = [e for e in self.history(dev.udid) if e["command_uuid"] == cu][0]
        self.assertEqual(entry["request_reason"], "os_change", entry)
        due, reason = self.next_due(dev)
        self.assertIn(reason, ("random", "max_age"), "the change is covered: back to the plan")

    def test_os_change_outside_the_window(self):
        dev = self.iphone(os_version="17.4")
        _cu, generated = self.attest_at_clock(dev, "enrollment attestation")
        due, _ = self.next_due(dev)
        when = min(generated + datetime.timedelta(days=10), due - datetime.timedelta(hours=1))
        self.assertGreater(when, generated + datetime.timedelta(days=7, hours=1),
                           f"the random plan {due} leaves no room for this test")
        set_clock(self, when)
        cmd = self.take_info_query(dev, "ten days after enrollment")
        reported = time.monotonic()
        self.answer_info(dev, cmd, "17.5", "21F79")
        self.assertEqual(len(self.os_events(dev)), 1)
        wait_for(lambda: self.pending_requests(dev.udid), DEADLINE_S,
                 what="an attestation request at once after the OS change")
        self.assertLess(time.monotonic() - reported, DEADLINE_S)
        dev.os_version = "17.5"
        cu, _ = self.attest_at_clock(dev, "os_change attestation", os_version="17.5")
        entry = [e for e in self.history(dev.udid) if e["command_uuid"] == cu][0]
        self.assertEqual(entry["request_reason"], "os_change", entry)

    def test_failed_answers_are_retried_then_planned(self):
        dev = self.iphone()
        for attempt in range(4):  # the enrollment's request, then attestation_retry_limit (3)
            what = f"answer {attempt + 1}"
            if attempt > 0:
                set_clock(self, due + datetime.timedelta(minutes=1))
                wait_for(lambda: self.pending_requests(dev.udid), DEADLINE_S,
                         what=f"{what}: the retry")
            cu, nonce = self.take_request(dev, what)
            answered = db_clock(self)
            self.answer(dev, cu, self.chain_for(
                dev, nonce, pki=self.other_pki,
                not_before=answered - datetime.timedelta(minutes=5)), what=what)
            self.assertVerdict(dev, cu, "failed", "untrusted_chain", {None, "unknown"}, what)
            due, reason = self.next_due(dev)
            if attempt < 3:
                self.assertEqual(reason, "retry", what)
                delay = datetime.timedelta(hours=2 ** attempt)  # 1 h, doubling
                self.assertLess(abs(due - (answered + delay)), datetime.timedelta(minutes=1),
                                f"{what}: retry planned at {due}, answered at {answered}")
            else:
                self.assertIn(reason, ("random", "max_age"), f"{what}: retries exhausted")
                self.assertGreaterEqual(due, answered + datetime.timedelta(days=7))
        reasons = [e["request_reason"] for e in reversed(self.history(dev.udid))]
        self.assertEqual(reasons, ["enrollment", "retry", "retry", "retry"])

    def test_authenticate_with_a_new_os(self):
        dev = self.iphone(os_version="17.4")
        self.attest_at_clock(dev, "enrollment attestation")
        old_build = dev.build_version
        dev.os_version, dev.build_version = "17.5", "21F79"
        dev.enroll()  # re-enrollment after the update
        self.assertEqual(self.os_events(dev), [{"previous": {"os_version": "17.4",
                                                             "build_version": old_build}}])
        # Re-enrollment asks at once; that fresh answer is made on the new OS: covered.
        cu, _ = self.attest_at_clock(dev, "re-enrollment attestation", os_version="17.5")
        entry = [e for e in self.history(dev.udid) if e["command_uuid"] == cu][0]
        self.assertEqual(entry["request_reason"], "enrollment")
        self.assertIn(self.next_due(dev)[1], ("random", "max_age"))

    def test_same_os_is_no_change(self):
        dev = self.iphone(os_version="17.4")
        self.attest_at_clock(dev, "enrollment attestation")
        due_before, reason_before = self.next_due(dev)
        set_clock(self, db_clock(self) + datetime.timedelta(days=1, minutes=1))
        cmd = self.take_info_query(dev, "a day after enrollment")
        self.answer_info(dev, cmd, "17.4", dev.build_version)
        self.assertEqual(self.os_events(dev), [])
        self.assertEqual(self.next_due(dev), (due_before, reason_before))

    def test_attestation_history_is_pruned_after_its_retention(self):
        # History older than attestation_retention goes, except what the device object and the
        # plan stand on: the current attestation and the newest verified one, however old.
        udid = "PRUNE-TEST-0001"
        sql(self, f"""
            INSERT INTO devices (udid) VALUES ('{udid}');
            INSERT INTO attestations (udid, command_uuid, received_at, status, generated_at)
            VALUES ('{udid}', 'A-old-verified', vouch_now() - interval '500 days', 'verified',
                    vouch_now() - interval '501 days'),
                   ('{udid}', 'B-newest-verified', vouch_now() - interval '450 days',
                    'verified', vouch_now() - interval '451 days'),
                   ('{udid}', 'C-old-failed', vouch_now() - interval '440 days', 'failed', NULL),
                   ('{udid}', 'D-current', vouch_now() - interval '430 days', 'failed', NULL),
                   ('{udid}', 'E-recent', vouch_now() - interval '10 days', 'failed', NULL);
            UPDATE devices SET attestation_id = (SELECT id FROM attestations
                                                 WHERE command_uuid = 'D-current')
            WHERE udid = '{udid}';
            INSERT INTO attestation_requests (command_uuid, udid, nonce, reason, requested_at,
                                              answered_at, outcome)
            VALUES ('R-old', '{udid}', '\\x01', 'random', vouch_now() - interval '400 days',
                    vouch_now() - interval '400 days', 'canceled'),
                   ('R-recent', '{udid}', '\\x02', 'random', vouch_now() - interval '20 days',
                    vouch_now() - interval '20 days', 'canceled');""")
        deleted = sql(self, "SELECT vouch_prune(interval '30 days', 100000, "
                            "interval '365 days')")
        self.assertGreaterEqual(int(deleted), 3, "rows pruned")
        kept = sql(self, f"SELECT command_uuid FROM attestations WHERE udid = '{udid}' "
                         "ORDER BY command_uuid").split()
        self.assertEqual(kept, ["B-newest-verified", "D-current", "E-recent"])
        kept = sql(self, f"SELECT command_uuid FROM attestation_requests WHERE udid = '{udid}'")
        self.assertEqual(kept.split(), ["R-recent"])
        # A real device's history is younger than the retention: untouched.
        dev = self.iphone(os_version="17.4")
        self.attest_at_clock(dev, "enrollment attestation")
        sql(self, "SELECT vouch_prune(interval '30 days', 100000, interval '365 days')")
        self.assertEqual(len(self.history(dev.udid)), 1)


# ---------------------------------------------------------------------------------------------
class YearSimulationTest(VouchTestCase):
    """A year of 1,000 devices in the database functions every instance calls
    (vouch_scheduler_tick, vouch_report with a verdict), ticking every simulated hour. The
    devices behave as Apple's do: a new attestation only if their last is 7 days old, else the
    cached one. The scheduler of vouchd itself is off here (scheduler_batch = 0): the test
    ticks."""

    vouchd_config = {"scheduler_batch": "0"}
    DEVICES = 1000
    MEAN_DAYS = 14
    MIN_DAYS = 7

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # max_age far away, so that its clip does not bend the mean; no light queries.
        cls.pg.psql(f"""
            SELECT vouch_set_policy(interval '365 days', interval '{cls.MIN_DAYS} days',
                                    interval '{cls.MEAN_DAYS} days', interval '3650 days',
                                    1000000, 3, interval '1 hour');""", cls.dbname)
        insert_fleet(cls, "YEAR", cls.DEVICES)
        cls.pg.psql("""
            INSERT INTO attestations (udid, command_uuid, status, freshness, generated_at,
                                      request_reason)
              SELECT udid, 'initial-' || udid, 'verified', 'fresh', vouch_now(), 'enrollment'
              FROM devices WHERE udid LIKE 'YEAR-%';
            SELECT count(vouch_plan_attestation(udid, 'verified')) FROM devices
              WHERE udid LIKE 'YEAR-%';
            CREATE TABLE sim_devices (udid text PRIMARY KEY, generated timestamptz NOT NULL);
            INSERT INTO sim_devices SELECT udid, vouch_now() FROM devices
              WHERE udid LIKE 'YEAR-%';""", cls.dbname)
        started = time.monotonic()
        cls.pg.psql(r"""
            DO $$
            DECLARE
                start timestamptz := vouch_now();
                step integer;
                due integer;
                clock timestamptz;
                r record;
                generated timestamptz;
                fresh boolean;
                pending text;
                uuids text[];
                nonces bytea[];
            BEGIN
                FOR step IN 1 .. 365 * 24 LOOP
                    -- An hour passes; committed, so that the clock's row does not pile up
                    -- versions (nothing here needs to survive a crash).
                    COMMIT;
                    SET LOCAL synchronous_commit = off;
                    UPDATE vouch_clock SET skew = start + make_interval(hours => step) - now();
                    clock := vouch_now();
                    SELECT attest_due INTO due FROM vouch_scheduler_next(1000);
                    CONTINUE WHEN due = 0;
                    SELECT array_agg(gen_random_uuid()::text),
                           array_agg(sha256(gen_random_uuid()::text::bytea))
                    INTO uuids, nonces FROM generate_series(1, due);
                    FOR r IN SELECT * FROM vouch_scheduler_tick(uuids, nonces, NULL, NULL, 0)
                    LOOP
                        SELECT s.generated INTO generated FROM sim_devices s
                        WHERE s.udid = r.udid;
                        fresh := clock - generated >= interval '7 days';
                        IF fresh THEN
                            generated := clock;
                            UPDATE sim_devices SET generated = clock WHERE udid = r.udid;
                        END IF;
                        SELECT q.command_uuid INTO pending FROM attestation_requests q
                        WHERE q.udid = r.udid AND q.answered_at IS NULL;
                        PERFORM vouch_report(r.udid, sha256(r.udid::bytea), 'Acknowledged',
                            pending, '\x00'::bytea,
                            json_build_object(
                                'status', 'verified',
                                'freshness', CASE WHEN fresh THEN 'fresh' ELSE 'cached' END,
                                'generated_at', generated, 'chain', '[]'::json,
                                'properties', '{}'::json,
                                'reported', json_build_object('os_version', '17.4')),
                            NULL, NULL);
                    END LOOP;
                END LOOP;
            END $$;""", cls.dbname, timeout=600)
        cls.simulated_in = time.monotonic() - started

    def test_max_age_when_the_random_moment_is_later(self):
        # With max_age = min_interval every random moment falls at or after the deadline.
        sql(self, """
            SELECT vouch_set_policy(interval '7 days', interval '7 days', interval '14 days',
                                    interval '3650 days', 1000000, 3, interval '1 hour');""")
        insert_fleet(self, "AGE", 3)
        out = sql(self, """
            INSERT INTO attestations (udid, command_uuid, status, freshness, generated_at)
              SELECT udid, 'age-' || udid, 'verified', 'fresh', vouch_now() - interval '1 day'
              FROM devices WHERE udid LIKE 'AGE-%';
            SELECT count(vouch_plan_attestation(udid, 'verified')) FROM devices
              WHERE udid LIKE 'AGE-%';
            SELECT attestation_due_reason,
                   attestation_due_at = (SELECT max(generated_at) FROM attestations a
                                         WHERE a.udid = d.udid) + interval '7 days'
            FROM devices d WHERE udid LIKE 'AGE-%';""")
        self.assertEqual(out.split()[1:], ["max_age|t"] * 3, out)

    def test_never_inside_the_7_day_window(self):
        early = sql(self, f"""
            SELECT count(*) FROM {ALL_REQUESTS} r
            WHERE r.udid LIKE 'YEAR-%' AND r.reason IN ('random', 'max_age', 'os_change')
              AND r.requested_at < (SELECT max(a.generated_at) FROM attestations a
                                    WHERE a.udid = r.udid AND a.status = 'verified'
                                      AND a.received_at < r.requested_at)
                                   + interval '7 days'""")
        self.assertEqual(int(early), 0, "requests sooner than 7 days after an attestation")
        cached = sql(self, "SELECT count(*) FROM attestations WHERE udid LIKE 'YEAR-%' "
                           "AND freshness = 'cached'")
        self.assertEqual(int(cached), 0, "a device answered with its cached attestation")

    def test_mean_interval_and_memorylessness(self):
        out = sql(self, """
            SELECT extract(epoch FROM generated_at - lag(generated_at)
                                      OVER (PARTITION BY udid ORDER BY generated_at))
            FROM attestations WHERE udid LIKE 'YEAR-%' AND status = 'verified'""")
        gaps = [float(x) / DAY for x in out.split() if x.strip()]
        # about 1,000 x 365 / 14
        self.assertGreater(len(gaps), 20000, f"{len(gaps)} re-attestations in a year")
        mean = sum(gaps) / len(gaps)
        self.assertLess(abs(mean - self.MEAN_DAYS) / self.MEAN_DAYS, 0.03,
                        f"mean interval {mean:.2f} days, configured {self.MEAN_DAYS}")
        self.assertGreaterEqual(min(gaps), self.MIN_DAYS)
        # Memoryless past the window: the delay beyond 7 days is exponential, so about 1/e of
        # them exceed its mean (a fixed or uniform timetable would not).
        beyond = [g - self.MIN_DAYS for g in gaps]
        tail = sum(1 for b in beyond if b > self.MEAN_DAYS - self.MIN_DAYS) / len(beyond)
        self.assertLess(abs(tail - math.exp(-1)), 0.03, f"share beyond the mean delay: {tail}")
        reasons = sql(self, f"SELECT DISTINCT reason FROM {ALL_REQUESTS} r "
                            "WHERE udid LIKE 'YEAR-%' AND command_uuid NOT LIKE 'initial-%'"
                      ).split()  # (the first attestations were written, never asked)
        self.assertEqual(set(reasons), {"random"}, "only random re-checks in a quiet year")
        print(f"\n    simulated year: {len(gaps)} re-attestations of {self.DEVICES} devices, "
              f"mean {mean:.2f} days, in {self.simulated_in:.1f} s", end=" ")


# ---------------------------------------------------------------------------------------------
class TwoInstancesCase(VouchTestCase):
    """Two vouchd instances on one database, small batches so that their ticks interleave."""

    vouchd_config = {"scheduler_batch": "25", "attestation_rate_limit": "100000"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.second = Vouchd(cls.vouchd.database_url, cls.vouchd.identity_ca,
                            name=f"{cls.__module__}.{cls.__name__}.second",
                            admin_token=cls.vouchd.admin_token, extra=cls.vouchd_config)
        cls.second.start()

    @classmethod
    def tearDownClass(cls):
        cls.second.stop()
        super().tearDownClass()

    def scheduled_total(self, server):
        text = server.metrics().text()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("vouch_scheduler_requests_total{"))

    def assertExactlyOne(self, prefix, count, what):
        def settled():
            return sql(self, f"SELECT count(DISTINCT udid) FROM attestation_requests "
                             f"WHERE udid LIKE '{prefix}-%' AND answered_at IS NULL"
                       ).strip() == str(count)
        wait_for(settled, 60, what=f"{what}: all {count} devices pending")
        per = requests_per_device(self, prefix)
        self.assertEqual(len(per), count)
        wrong = {u: n for u, n in per.items() if n != 1}
        self.assertEqual(wrong, {}, f"{what}: devices without exactly one request")
        queued = attestation_commands_per_device(self, prefix)
        wrong = {u: n for u, n in queued.items() if n != 1}
        self.assertEqual(wrong, {}, f"{what}: devices without exactly one DeviceInformation")


class TwoInstancesTest(TwoInstancesCase):
    def test_both_schedulers_one_request_per_device(self):
        before = (self.scheduled_total(self.vouchd), self.scheduled_total(self.second))
        insert_fleet(self, "TWO", 1000, due=True)
        self.assertExactlyOne("TWO", 1000, "two schedulers")
        # Each instance counts what it claimed once its tick's answer is in (a moment later).
        def counted():
            after = (self.scheduled_total(self.vouchd), self.scheduled_total(self.second))
            return after[0] - before[0] + after[1] - before[1]
        wait_for(lambda: counted() >= 1000, DEADLINE_S, what="the instances' counters")
        self.assertEqual(counted(), 1000, f"requests counted by the instances (from {before})")

    def test_attest_all_while_both_schedulers_run(self):
        insert_fleet(self, "OPS", 1000)
        # Everything at once: both schedulers find the fleet due while an operator asks for
        # all of it through the first instance.
        sql(self, "UPDATE devices SET attestation_due_at = vouch_now(), "
                  "attestation_due_reason = 'random' WHERE udid LIKE 'OPS-%'")
        proc = subprocess.Popen(
            ["/bin/sh", "-c", 'sleep 0.2; exec "$0" "$@"', VOUCHCTL,
             "--url", self.vouchd.url, "--token", self.vouchd.admin_token, "attest", "--all",
             "--yes"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sql(self, "NOTIFY vouch_scheduler")
        out, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, f"vouchctl attest --all: {out!r} {err!r}")
        self.assertExactlyOne("OPS", 1000, "schedulers and vouchctl attest --all")
        reasons = sql(self, f"SELECT DISTINCT reason FROM {ALL_REQUESTS} r "
                            "WHERE udid LIKE 'OPS-%'").split()
        self.assertTrue(set(reasons) <= {"operator", "random"}, reasons)


class RateLimitAnsweredTest(VouchTestCase):
    """The fleet-wide rate limit counts the scheduler's requests of the last minute whether or
    not they were answered: an answered request (its attestations row since 0014) still spends
    the minute's budget."""

    vouchd_config = {"scheduler_batch": "25", "attestation_rate_limit": "40"}

    def asked(self):
        return int(sql(self, f"SELECT count(DISTINCT udid) FROM {ALL_REQUESTS} r "
                             "WHERE udid LIKE 'ANS-%'"))

    def test_answered_requests_spend_the_budget(self):
        insert_fleet(self, "ANS", 100, due=True)
        wait_for(lambda: self.asked() == 40, DEADLINE_S, what="the first minute's budget")
        # Every request answered (a verdict: the next check is planned days away).
        sql(self, """
            SELECT count(vouch_record_attestation(r.udid, r.command_uuid, json_build_object(
                       'status', 'verified', 'freshness', 'fresh', 'generated_at', vouch_now(),
                       'chain', '[]'::json, 'properties', '{}'::json,
                       'reported', json_build_object('os_version', '17.4')), NULL))
            FROM attestation_requests r
            WHERE r.udid LIKE 'ANS-%' AND r.answered_at IS NULL""")
        self.assertEqual(sql(self, "SELECT count(*) FROM attestation_requests "
                                   "WHERE udid LIKE 'ANS-%'").strip(), "0",
                         "answered rows left")
        self.assertEqual(sql(self, "SELECT budget FROM vouch_scheduler_next(1)").strip(), "0",
                         "the budget once the minute's requests are answered")
        sql(self, "NOTIFY vouch_scheduler")
        time.sleep(3)  # the scheduler looks again meanwhile
        self.assertEqual(self.asked(), 40, "more than the budget in one minute")
        set_clock(self, db_clock(self) + datetime.timedelta(seconds=61))
        wait_for(lambda: self.asked() == 80, DEADLINE_S, what="the next minute's budget")


# ---------------------------------------------------------------------------------------------
class KilledMidTickTest(PushTestCase):
    """An instance killed (SIGKILL) while it ticks and pushes; another takes over. Pushes go to
    the independent HTTP/2 stand-in APNs (h2_apns.py)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.vouchd.stop()  # this test starts its own instances on the class's database

    def instance(self, name):
        config = dict(self.vouchd_config, scheduler_batch="10")
        return Vouchd(self.vouchd.database_url, self.vouchd.identity_ca,
                      name=f"{type(self).__name__}.{name}", extra=config).start()

    def requested(self):
        return int(sql(self, f"SELECT count(*) FROM {ALL_REQUESTS} r "
                             "WHERE udid LIKE 'KILL-%'"))

    def test_killed_instance_loses_nothing(self):
        requested = self.requested
        first = self.instance("first")
        try:
            udids = insert_fleet(self, "KILL", 1000, topic=self.topic, due=True)
            wait_for(lambda: requested() >= 50, DEADLINE_S, what="the first ticks")
            first.kill()
        finally:
            first.kill()
        at_kill = requested()
        self.assertLess(at_kill, 1000, "the first instance finished before it was killed: "
                                       "nothing was tested")
        second = self.instance("second")
        try:
            wait_for(lambda: requested() == 1000, 60, what="the second instance to take over")
            per = requests_per_device(self, "KILL")
            self.assertEqual({u: n for u, n in per.items() if n != 1}, {})
            # Pushes the first instance never sent are found by the second's sweep once the
            # commands are a minute old (the clock is moved on rather than waited for).
            set_clock(self, db_clock(self) + datetime.timedelta(minutes=2))
            tokens = {u: hashlib.sha256(("t" + u).encode()).hexdigest() for u in udids}

            def unpushed():
                pushed = {r.token for r in self.apns.requests() if r.answer is not None}
                return [u for u, t in tokens.items() if t not in pushed]
            wait_for(lambda: not unpushed(), 90, interval=1.0,
                     what="every device pushed (by either instance)")
        finally:
            second.stop()


class RateLimitTest(TwoInstancesCase):
    """attestation_rate_limit is fleet-wide: two instances together send no more per minute."""

    vouchd_config = {"scheduler_batch": "25", "attestation_rate_limit": "120"}

    def requested(self):
        return int(sql(self, f"SELECT count(*) FROM {ALL_REQUESTS} r "
                             "WHERE udid LIKE 'RATE-%'"))

    def test_fleet_wide_rate_limit(self):
        insert_fleet(self, "RATE", 300, due=True)
        wait_for(lambda: self.requested() == 120, DEADLINE_S, what="the first minute's budget")
        time.sleep(3)  # both instances look again meanwhile (budget spent: every 5 s at most)
        self.assertEqual(self.requested(), 120, "more than the budget in one minute")
        set_clock(self, db_clock(self) + datetime.timedelta(seconds=61))
        wait_for(lambda: self.requested() == 240, DEADLINE_S, what="the next minute's budget")
        time.sleep(3)
        self.assertEqual(self.requested(), 240)
        self.assertEqual({u: n for u, n in requests_per_device(self, "RATE").items()
                          if n > 1}, {})
