"""Faults under load, counting what must not be lost.

Devices work through queued commands in threads (Idle, take the command, Acknowledged with a
marker, ...) while the test breaks something: vouchd killed with SIGKILL, or PostgreSQL
restarted. Every report answered 200 is recorded by the device; afterwards each must be in the
database with its marker (lost = 0), every queued command must be either answered or still
queued, and once service is back the devices finish the rest. Each test prints what it counted:
sent, acknowledged, stored, lost, and the 503s meanwhile.
"""

import hashlib
import os
import plistlib
import secrets
import signal
import sys
import threading
import time

from harness import VouchTestCase, command_plist, wait_for

DEVICES = 12
COMMANDS_PER_DEVICE = 30
DEADLINE_S = 90.0


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
