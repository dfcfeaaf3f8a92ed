"""Faults under load, counting what must not be lost.

Devices work through queued commands in threads (Idle, take the command, Acknowledged with a
marker, ...) while the test breaks something: vouchd killed with SIGKILL, or PostgreSQL
restarted. Every report answered 200 is recorded by the device; afterwards each must be in the
database with its marker (lost = 0), every queued command must be either answered or still
queued, and once service is back the devices finish the rest. Each test prints what it counted:
sent, acknowledged, stored, lost, and the 503s meanwhile.

Then what vouchd owes to others across faults:
  * killed with SIGKILL while its pushes wait for APNs, web-hook events wait for a receiver that
    is down and devices are about to fall due: the restarted vouchd pushes the devices again,
    schedules the due ones, and delivers every event;
  * the stand-in APNs (h2_apns.py) answering slowly, sending GOAWAY, dropping connections and
    answering 429/500 while 40 devices are pushed: every device is reached, every command answered;
  * the web-hook receiver flapping (down, 500, up) while events are made: once it is stable,
    every event is delivered.
"""

import collections
import hashlib
import os
import plistlib
import secrets
import signal
import sys
import threading
import time

import h2_apns
from harness import VouchTestCase, command_plist, wait_for
from test_push import PushResponder, PushTestCase, metric
from test_scheduler import insert_fleet
from test_webhook import WebhookCase

DEVICES = 12
COMMANDS_PER_DEVICE = 30
DEADLINE_S = 90.0
RECOVERY_DEADLINE_S = 120.0  # pushes, retries and deliveries after a fault: backoff included


class Ledger:
    """What the devices sent and what vouchd acknowledged, shared by the device threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = 0
        self.acked = []     # (udid, CommandUUID, body) of each report answered 200
        self.refused = {}   # status -> count (503 while PostgreSQL is away)
        self.transport_errors = 0

    def note(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class FaultCase(VouchTestCase):
    own_postgres = True

    def load(self):
        """DEVICES enrolled devices with COMMANDS_PER_DEVICE commands each: {udid: device}."""
        devices = {}
        for _ in range(DEVICES):
            dev = self.enrolled_device()
            self.assertEmpty200(dev.settle_attestation(), "enrollment attestation answered")
            devices[dev.udid] = dev
        self.enqueued = set()
        for _ in range(COMMANDS_PER_DEVICE):
            c = command_plist("ProfileList")
            self.enqueue_ok(list(devices), c)
            self.enqueued.update((udid, c["CommandUUID"]) for udid in devices)
        return devices

    def work(self, dev, ledger, stop, retry_while_down):
        """One device until stop is set: Idle, acknowledge each command, and with an empty queue
        Idle again shortly (the load goes on while the test breaks something). A transport error
        or a refusal ends the device's run unless retry_while_down."""
        while not stop.is_set():
            try:
                r = dev.idle()
                while r.status == 200 and r.body and not stop.is_set():
                    cmd = r.plist()
                    body = plistlib.dumps(dev.report_message(
                        "Acknowledged", cmd["CommandUUID"], ProfileList=[],
                        Marker=secrets.token_hex(8)))
                    ledger.note(sent=1)
                    r = dev.connect_bytes(body)
                    if r.status == 200:
                        with ledger.lock:
                            ledger.acked.append((dev.udid, cmd["CommandUUID"], body))
                if r.status == 200:
                    time.sleep(0.05)
                    continue
                with ledger.lock:
                    ledger.refused[r.status] = ledger.refused.get(r.status, 0) + 1
            except OSError:
                ledger.note(transport_errors=1)
            if not retry_while_down:
                return
            time.sleep(0.2)

    def run_devices(self, devices, ledger, retry_while_down, stop=None):
        stop = stop or threading.Event()
        threads = [threading.Thread(target=self.work, args=(d, ledger, stop, retry_while_down),
                                    daemon=True) for d in devices.values()]
        for t in threads:
            t.start()
        return threads, stop

    def stored_reports(self):
        """{(udid, CommandUUID): MD5 of the stored report} of every Acknowledged result."""
        out = self.psql("SELECT udid || ' ' || command_uuid || ' ' || md5(report) "
                        "FROM command_results WHERE status = 'Acknowledged'")
        rows = [line.split(" ") for line in out.splitlines() if line.strip()]
        return {(udid, cu): digest for udid, cu, digest in rows}

    def stored(self):
        """(udid, CommandUUID) of every Acknowledged result in the database."""
        return set(self.stored_reports())

    def still_queued(self):
        out = self.psql("SELECT udid || ' ' || command_uuid FROM command_queue")
        return {tuple(line.split(" ")) for line in out.splitlines() if line.strip()}

    def check_nothing_lost(self, ledger, what):
        reports = self.stored_reports()
        stored = set(reports)
        lost = [a for a in ledger.acked if (a[0], a[1]) not in stored]
        altered = [cu for udid, cu, body in ledger.acked
                   if (udid, cu) in reports and reports[udid, cu] != hashlib.md5(body).hexdigest()]
        self.assertEqual(altered, [], f"{what}: reports stored otherwise than they were sent")
        queued = self.still_queued()
        missing = self.enqueued - stored - queued
        print(f"\n    {what}: sent {ledger.sent}, acknowledged {len(ledger.acked)}, stored "
              f"{len(stored & self.enqueued)}, lost {len(lost)}, still queued "
              f"{len(queued & self.enqueued)}, commands missing {len(missing)}, refused "
              f"{ledger.refused or 0}, transport errors {ledger.transport_errors}",
              file=sys.stderr, flush=True)
        self.assertEqual(lost, [], f"{what}: reports answered 200 but not in the database")
        self.assertEqual(missing, set(), f"{what}: commands neither answered nor queued")
        return stored

    def all_answered(self):
        return not (self.enqueued - self.stored())

    def stop_devices(self, threads, stop, what):
        stop.set()
        for t in threads:
            t.join(DEADLINE_S)
        self.assertFalse(any(t.is_alive() for t in threads), f"{what}: devices still busy")

    def finish(self, devices, what):
        """After the fault: the devices finish their queues; every command is answered."""
        ledger = Ledger()
        threads, stop = self.run_devices(devices, ledger, retry_while_down=True)
        wait_for(self.all_answered, DEADLINE_S, what=f"{what}: every command answered")
        self.stop_devices(threads, stop, what)
        stored = self.stored()
        self.assertEqual(self.enqueued - stored, set(), f"{what}: commands never answered")
        self.assertEqual(self.still_queued() & self.enqueued, set())
        return ledger


class VouchdKilledUnderLoadTest(FaultCase):
    def test_sigkill_under_load_loses_nothing(self):
        devices = self.load()
        ledger = Ledger()
        threads, stop = self.run_devices(devices, ledger, retry_while_down=False)
        some = DEVICES * COMMANDS_PER_DEVICE // 4
        wait_for(lambda: len(ledger.acked) >= some, DEADLINE_S,
                 what=f"{some} reports acknowledged under load")
        os.kill(self.vouchd.proc.pid, signal.SIGKILL)
        for t in threads:  # each ends at its first transport error
            t.join(DEADLINE_S)
        self.assertFalse(any(t.is_alive() for t in threads), "devices still busy after the kill")
        stop.set()
        self.vouchd.stop()
        self.vouchd.start()
        self.check_nothing_lost(ledger, "vouchd SIGKILLed under load")
        self.assertLess(len(ledger.acked), DEVICES * COMMANDS_PER_DEVICE,
                        "the kill came after everything was done: it tested nothing")
        after = self.finish(devices, "after the restart")
        print(f"    after the restart: {len(after.acked)} more acknowledged, every command "
              "answered", file=sys.stderr, flush=True)
        self.assertAlive("after SIGKILL and restart")


class PostgresRestartedUnderLoadTest(FaultCase):
    def test_postgres_restart_under_load_loses_nothing(self):
        devices = self.load()
        ledger = Ledger()
        threads, stop = self.run_devices(devices, ledger, retry_while_down=True)
        third = DEVICES * COMMANDS_PER_DEVICE // 3
        wait_for(lambda: len(ledger.acked) >= third, DEADLINE_S,
                 what=f"{third} reports acknowledged under load")
        self.pg.stop("fast")
        try:
            wait_for(lambda: ledger.refused.get(503, 0) >= DEVICES, DEADLINE_S,
                     what="503s while PostgreSQL is away")
            self.assertTrue(self.vouchd.alive(), "vouchd died without PostgreSQL")
        finally:
            self.pg.start()
        wait_for(self.all_answered, DEADLINE_S, what="every command answered after the restart")
        self.stop_devices(threads, stop, "after the restart")
        self.assertEqual(set(ledger.refused) - {503}, set(),
                         f"answers other than 503 while PostgreSQL was away: {ledger.refused}")
        stored = self.check_nothing_lost(ledger, "PostgreSQL restarted under load")
        self.assertEqual(self.enqueued - stored, set(), "commands never answered")
        self.assertAlive("after PostgreSQL came back")


def report(what, **counts):
    """Prints what a test counted, as one line under its name."""
    text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
    print(f"\n    {what}: {text}", file=sys.stderr, flush=True)


def move_clock(case, delta_sql):
    """Moves the database's clock forward and wakes the schedulers and web-hook senders."""
    case.psql(f"UPDATE vouch_clock SET skew = skew + interval '{delta_sql}'; "
              "NOTIFY vouch_scheduler; NOTIFY vouch_events;")


class RespondingFleetCase(PushTestCase):
    """Devices that connect when the stand-in APNs delivers a push to them, and only then."""

    def setUp(self):
        super().setUp()
        self.responder = PushResponder(self.apns)
        self.addCleanup(self.responder.close)

    def responding_fleet(self, count):
        """count devices enrolled through pushes; each answered its enrollment's attestation
        request (as a device that cannot attest) when pushed."""
        devs = []
        for _ in range(count):
            dev = self.responder.add(self.new_device())
            devs.append(self.enroll(dev))
        wait_for(lambda: not self.queued_for(devs), DEADLINE_S,
                 what="every enrollment request answered")
        return devs

    def queued_for(self, devs):
        udids = "','".join(d.udid for d in devs)
        # (a pending attestation request is its own queue entry)
        out = self.psql(f"SELECT udid || ' ' || command_uuid FROM command_queue "
                        f"WHERE udid IN ('{udids}') UNION ALL "
                        f"SELECT udid || ' ' || command_uuid FROM attestation_requests "
                        f"WHERE answered_at IS NULL AND udid IN ('{udids}')")
        return {tuple(line.split(" ")) for line in out.splitlines() if line.strip()}

    def answered_for(self, devs, command_uuids):
        """(udid, CommandUUID) of those commands the devices answered (by the database)."""
        udids = "','".join(d.udid for d in devs)
        cus = "','".join(command_uuids)
        out = self.psql(f"SELECT udid || ' ' || command_uuid FROM command_results "
                        f"WHERE udid IN ('{udids}') AND command_uuid IN ('{cus}')")
        return {tuple(line.split(" ")) for line in out.splitlines() if line.strip()}

    def assertResponderClean(self):
        self.assertEqual(self.responder.errors, [], "the simulated devices ran into errors")


class VouchdKilledResumesWorkTest(RespondingFleetCase, WebhookCase):
    """SIGKILL while pushes wait for APNs, web-hook events for a receiver that is down, and a
    fleet is about to fall due: the restarted vouchd resumes all three."""

    def events_not_delivered(self):
        return int(self.psql("SELECT count(*) FROM event_deliveries WHERE status <> 'delivered'"))

    def test_restart_resumes_pushes_scheduling_and_webhooks(self):
        devs = self.responding_fleet(8)
        # The pushes for the next command go out but APNs holds them until vouchd is dead.
        self.receiver.stop()
        never = threading.Event()
        for dev in devs:
            self.apns.script(dev.token, h2_apns.ok().held(never, timeout=600))
        c = command_plist("ProfileList")
        self.enqueue_ok([d.udid for d in devs], c)
        for dev in devs:
            self.apns.wait_for_requests(dev.token, 2, DEADLINE_S, answered_only=False)
        fleet = insert_fleet(self, "RESUME", 60, topic=self.topic)
        # Two more devices enroll: their web-hook events wait for the receiver.
        for _ in range(2):
            self.enroll(expect=0)
        wait_for(lambda: self.events_not_delivered() > 0, DEADLINE_S,
                 what="web-hook events waiting")
        events = int(self.psql("SELECT count(*) FROM events"))
        in_flight = sum(1 for d in devs for r in self.pushes(d, answered_only=False)
                        if r.answer is None)
        self.vouchd.kill()
        self.vouchd.stop()
        pending = self.events_not_delivered()
        self.assertGreater(pending, 0, "no web-hook event was waiting when vouchd was killed")
        # While it is down: the fleet falls due, APNs and the receiver come back, time passes
        # (the commands are now over a minute old and the event retries due).
        self.psql("UPDATE devices SET attestation_due_at = vouch_now(), "
                  "attestation_due_reason = 'random' WHERE udid LIKE 'RESUME-%'")
        for dev in devs:
            self.apns.script(dev.token)
        self.receiver.start()
        move_clock(self, "2 minutes")
        self.vouchd.start()

        wait_for(lambda: (set((d.udid, c["CommandUUID"]) for d in devs)
                          <= self.answered_for(devs, [c["CommandUUID"]])),
                 RECOVERY_DEADLINE_S, what="the devices pushed again and their commands answered")
        tokens = {hashlib.sha256(("t" + u).encode()).hexdigest(): u for u in fleet}

        def fleet_pushed():
            return {tokens[r.token] for r in self.apns.requests()
                    if r.token in tokens and r.answer == "200"}
        wait_for(lambda: len(fleet_pushed()) == len(fleet), RECOVERY_DEADLINE_S,
                 what="every device that fell due requested and pushed")
        requested = int(self.psql("SELECT count(DISTINCT udid) FROM attestation_requests "
                                  "WHERE udid LIKE 'RESUME-%'"))
        wait_for(lambda: self.events_not_delivered() == 0, RECOVERY_DEADLINE_S,
                 what="every web-hook event delivered")
        stored = set(self.psql("SELECT event_id FROM events").split())
        delivered = set(self.receiver.delivered())
        report("vouchd SIGKILLed with work owed", pushes_in_flight_at_kill=in_flight,
               devices_pushed_again_and_answered=len(devs), fleet_fallen_due=len(fleet),
               requested=requested, pushed=len(fleet_pushed()),
               events_at_kill=events, undelivered_at_kill=pending,
               events_stored=len(stored), delivered=len(stored & delivered),
               lost=len(stored - delivered))
        self.assertEqual(in_flight, len(devs), "the pushes were not in flight at the kill")
        self.assertEqual(requested, len(fleet))
        self.assertEqual(stored - delivered, set(), "web-hook events never delivered")
        self.assertResponderClean()
        self.assertAlive("after the restart")


class ApnsTroubleUnderLoadTest(RespondingFleetCase):
    """40 devices pushed for 3 commands while APNs answers slowly, sends GOAWAY, drops
    connections and answers 429 and 500: every device is reached, every command answered."""

    DEVICES = 40

    def trouble(self, i):
        kind = ("slow", "goaway", "drop", "429+500", "none")[i % 5]
        never = threading.Event()
        answers = {"slow": [h2_apns.ok().held(never, timeout=2.0)],
                   "goaway": [h2_apns.goaway()],
                   "drop": [h2_apns.drop()],
                   "429+500": [h2_apns.too_many_requests(), h2_apns.server_error()],
                   "none": []}[kind]
        return kind, answers

    def test_every_device_reached(self):
        devs = self.responding_fleet(self.DEVICES)
        kinds = collections.Counter()
        for i, dev in enumerate(devs):
            kind, answers = self.trouble(i)
            kinds[kind] += 1
            self.apns.script(dev.token, *answers)
        seq0 = max((r.seq for r in self.apns.requests()), default=0)
        conns0 = len(self.apns.connections)
        retries0 = metric(self.metrics_text(), "vouch_apns_retries_total") or 0
        commands = [command_plist("ProfileList") for _ in range(3)]
        udids = [d.udid for d in devs]
        for c in commands:
            self.enqueue_ok(udids, c)
        self.apns.drop_connections()  # and the network fails once, whatever is in flight
        wanted = {(u, c["CommandUUID"]) for u in udids for c in commands}
        cus = [c["CommandUUID"] for c in commands]
        # Each of the 8 dropped connections fails every push in flight on it; a push that has
        # used its attempts waits for the retry sweep (every 30 s, server/delivery/push.c), so in
        # the worst case each drop costs a sweep: 8 x 30 s, more than RECOVERY_DEADLINE_S. An
        # ASan build on a loaded CI machine reached that case once (4 December).
        wait_for(lambda: wanted <= self.answered_for(devs, cus), 8 * 30 + RECOVERY_DEADLINE_S,
                 interval=0.5, what="every command answered")
        recs = [r for r in self.apns.requests() if r.seq > seq0]
        answers = collections.Counter(r.answer or "none" for r in recs)
        reached = {dev.udid for dev in devs
                   if any(r.token == dev.token.hex() and r.answer == "200" for r in recs)}
        answered = self.answered_for(devs, cus)
        lost = wanted - answered - self.queued_for(devs)
        retries = (metric(self.metrics_text(), "vouch_apns_retries_total") or 0) - retries0
        report("APNs in trouble", devices=len(devs), trouble=dict(kinds),
               commands=len(wanted), pushes_sent=len(recs), apns_answers=dict(answers),
               new_connections=len(self.apns.connections) - conns0, retries=int(retries),
               devices_reached=len(reached), commands_answered=len(answered & wanted),
               lost=len(lost))
        self.assertEqual(reached, set(udids), "devices never pushed successfully")
        self.assertEqual(lost, set())
        self.assertGreater(retries, 0, "nothing was retried: the trouble did not happen")
        for kind in ("goaway", "drop"):
            self.assertIn(kind, answers, f"no {kind} happened")
        self.assertResponderClean()
        self.assertAlive("after APNs trouble")


class WebhookFlappingTest(WebhookCase):
    """The receiver flaps (down, 500, up) while devices make events; once it is stable every
    event arrives."""

    def flap(self, stop, phases):
        """Down, failing, up, ... until stop is set; then up for good."""
        r = self.receiver
        while not stop.is_set() or phases["down"] < 8:
            r.stop()
            phases["down"] += 1
            stop.wait(0.6)
            r.script[:] = [500] * 4
            r.start()
            phases["500"] += 1
            stop.wait(0.4)
            r.script[:] = []
            phases["up"] += 1
            stop.wait(0.3)
        if r.server is None:
            r.start()
        r.script[:] = []

    def test_every_event_delivered_once_stable(self):
        phases = collections.Counter()
        stop = threading.Event()
        flapper = threading.Thread(target=self.flap, args=(stop, phases), daemon=True)
        flapper.start()
        try:
            for _ in range(12):
                dev = self.enrolled_device()
                dev.settle_attestation()
                move_clock(self, "1 minute")  # the retries come quickly, into the flapping
            for _ in range(8):
                time.sleep(0.5)
                move_clock(self, "1 minute")
        finally:
            stop.set()
            flapper.join(10)
        self.assertFalse(flapper.is_alive())
        failed_attempts = len([1 for _h, _b, status in self.receiver.records if status >= 300])
        refused = int(self.psql("SELECT count(*) FROM event_deliveries "
                                "WHERE last_error IS NOT NULL AND last_error NOT LIKE 'HTTP%'"))
        # Stable now; the backoff of the unlucky ones is waited out on the database's clock.
        move_clock(self, "1 hour")
        wait_for(lambda: int(self.psql("SELECT count(*) FROM event_deliveries "
                                       "WHERE status <> 'delivered'")) == 0, 60.0,
                 interval=0.5, what="every delivery recorded as delivered")
        stored = set(self.psql("SELECT event_id FROM events").split())
        delivered = self.receiver.delivered()
        duplicates = sum(len(v) - 1 for v in delivered.values())
        attempts = int(self.psql("SELECT coalesce(sum(attempts), 0) FROM event_deliveries"))
        report("web-hook receiver flapping", flaps=dict(phases), events_stored=len(stored),
               attempts=attempts, answered_500=failed_attempts,
               deliveries_last_failed_by_connection=refused,
               delivered=len(stored & set(delivered)), duplicates=duplicates,
               lost=len(stored - set(delivered)))
        self.assertGreaterEqual(phases["down"], 8, "the receiver hardly flapped")
        self.assertGreater(attempts, len(stored), "no delivery failed: nothing was tested")
        self.assertEqual(stored - set(delivered), set(), "events never delivered")
        self.assertEqual(set(delivered) - stored, set(), "events delivered that were not stored")
        self.assertAlive("after the flapping receiver")
