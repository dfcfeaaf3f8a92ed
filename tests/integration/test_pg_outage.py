"""PostgreSQL goes away under vouchd and comes back: 503 (never 401) while it is away, automatic
reconnection, and nothing answered with 200 before is lost (attestation verdicts included)."""

import plistlib
import secrets

from harness import VouchTestCase, command_plist, wait_for

RECOVERY_DEADLINE = 30.0


class PostgresOutageTest(VouchTestCase):
    own_postgres = True

    def ack(self, dev, marker, request_type="DeviceInformation"):
        """Queue a command, hand it to dev, acknowledge it; returns (CommandUUID, raw report)."""
        c = command_plist(request_type, Queries=["DeviceName"])
        self.enqueue_ok(dev.udid, c)
        self.assertCommand(dev.idle(), c["CommandUUID"])
        body = plistlib.dumps(dev.report_message("Acknowledged", c["CommandUUID"],
                                                 QueryResponses={"DeviceName": marker}))
        self.assertEmpty200(dev.connect_bytes(body), "Acknowledged before the outage")
        return c["CommandUUID"], body

    def assert_503_while_down(self, dev, stranger):
        wait_for(lambda: self.vouchd.healthz().status == 503, RECOVERY_DEADLINE,
                 what="GET /healthz to answer 503 while PostgreSQL is down")
        self.assertTrue(self.vouchd.alive(), "vouchd died when PostgreSQL went away\n"
                        + self.vouchd.log_tail())
        for what, r in [
            ("Idle", dev.idle()),
            ("Acknowledged", dev.report("Acknowledged", "6B0C0F9E-2E0A-4E44-9D53-0A0B0C0D0E0F")),
            ("Authenticate", dev.authenticate()),
            ("TokenUpdate", dev.token_update()),
            ("Authenticate of a new device", stranger.authenticate()),
        ]:
            self.assertNotEqual(r.status, 401, f"{what} while PostgreSQL is down: {r!r}")
            self.assertEqual(r.status, 503, f"{what} while PostgreSQL is down: {r!r}")
        r = self.vouchd.admin("GET", "/v1/devices")
        self.assertEqual(r.status, 503, f"admin GET /v1/devices while PostgreSQL is down: {r!r}")
        r = self.vouchd.healthz()
        self.assertEqual(r.status, 503, r)

    def wait_recovered(self):
        wait_for(lambda: self.vouchd.healthz().status == 200, RECOVERY_DEADLINE,
                 what="vouchd to reconnect to PostgreSQL by itself (GET /healthz 200)")

    def test_outage_and_recovery(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        stranger = self.new_device()
        m1 = "outage-" + secrets.token_hex(8)
        cu1, body1 = self.ack(dev, m1)
        pending = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, pending)
        waiting = self.enrolled_device()
        request = waiting.take_attestation_request()

        self.pg.stop("fast")
        try:
            self.assert_503_while_down(dev, stranger)
            r = waiting.answer_attestation(request)
            self.assertEqual(r.status, 503,
                             f"answer to an attestation request while PostgreSQL is down: {r!r}")
        finally:
            self.pg.start()
        self.wait_recovered()

        # the answer refused with 503 left nothing behind: the same request is still pending
        self.assertIsNotNone(self.attestation_of(waiting.udid)["request"],
                         "an attestation answer refused with 503 was recorded")
        again = waiting.take_attestation_request()
        self.assertEqual(again["CommandUUID"], request["CommandUUID"])
        self.assertEmpty200(waiting.answer_attestation(again), "the answer sent again")
        self.assertEqual(self.attestation_of(waiting.udid)["status"], "unsupported")

        # normal service, and what was acknowledged before is still there
        self.assertEqual(self.command_status(dev.udid, cu1)[0]["status"], "Acknowledged")
        self.assertTrue(self.db_find(body1), "a report answered 200 before the outage is lost")
        self.assertCommand(dev.idle(), pending["CommandUUID"],
                           "the command queued before the outage")
        self.assertEmpty200(dev.report("Acknowledged", pending["CommandUUID"], ProfileList=[]))
        self.assertEmpty200(stranger.authenticate(), "a new device enrolls after recovery")
        self.assertEmpty200(stranger.token_update())
        self.assertIsNotNone(self.attestation_of(stranger.udid)["request"],
                         "the first TokenUpdate after recovery asks for an attestation")
        self.assertEmpty200(stranger.settle_attestation(), "the new device's attestation request")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported",
                         "the verdict recorded before the outage")

        # a second outage in the same vouchd: reconnection is not a one-off
        m2 = "outage2-" + secrets.token_hex(8)
        cu2, body2 = self.ack(dev, m2)
        self.pg.stop("fast")
        try:
            wait_for(lambda: self.vouchd.healthz().status == 503, RECOVERY_DEADLINE,
                     what="GET /healthz 503 in the second outage")
            r = dev.idle()
            self.assertEqual(r.status, 503, f"Idle in the second outage: {r!r}")
        finally:
            self.pg.start()
        self.wait_recovered()
        self.assertEqual(self.command_status(dev.udid, cu2)[0]["status"], "Acknowledged")
        self.assertTrue(self.db_find(body2))
        self.assertEmpty200(dev.idle())

    def test_crash_keeps_acknowledged_results(self):
        """PostgreSQL killed (-m immediate) right after a 200: the result survives (fsync on,
        the 200 must come after the commit)."""
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        acked = [self.ack(dev, "crash-" + secrets.token_hex(8)) for _ in range(3)]
        # an enrollment whose attestation request is queued (and handed out) but not answered
        # when PostgreSQL is killed, and one whose unsupported answer got its 200 just before
        pending = self.enrolled_device()
        pending_request = pending.take_attestation_request()["CommandUUID"]
        answered = self.enrolled_device()
        self.assertEmpty200(answered.settle_attestation(), "answered just before the crash")
        self.pg.stop("immediate")
        try:
            r = dev.idle()
            self.assertEqual(r.status, 503, f"Idle while PostgreSQL is down: {r!r}")
        finally:
            self.pg.start()
        self.wait_recovered()
        for cu, body in acked:
            self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], "Acknowledged")
            self.assertTrue(self.db_find(body), f"result of {cu} lost in the crash")
        self.assertEmpty200(dev.idle())
        self.assertEqual(self.attestation_of(answered.udid)["status"], "unsupported",
                         "an attestation answer acknowledged with 200 was lost in the crash")
        self.assertIsNotNone(self.attestation_of(pending.udid)["request"])
        self.assertEqual(pending.take_attestation_request()["CommandUUID"], pending_request,
                         "the request queued before the crash")
        self.assertEmpty200(pending.answer_attestation(pending.last_attestation_request))
        self.assertEqual(self.attestation_of(pending.udid)["status"], "unsupported")
        self.assertTrue(self.vouchd.alive())
