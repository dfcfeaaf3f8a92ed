"""The MDM protocol cycle: enroll, enqueue, Idle, command, result, empty body; NotNow; repeated
reports; Error and CommandFormatError; CheckOut; re-enrollment clears the queue.

An enrollment's first TokenUpdate makes vouchd queue an attestation request (a DeviceInformation
asking for DevicePropertiesAttestation) ahead of everything else: tests that need an empty queue
answer it first with Device.settle_attestation() (as a device that cannot attest)."""

import os
import plistlib
import re
import secrets
import subprocess
import threading
import uuid

import pg
from device import CONNECT_TYPE
from harness import VouchTestCase, command_plist, wait_for


class ProtocolCycleTest(VouchTestCase):

    def test_enroll_makes_an_enrolled_device(self):
        dev = self.new_device()
        r = dev.authenticate()
        self.assertEmpty200(r, "Authenticate")
        obj = self.vouchd.device(dev.udid)
        self.assertStatus(obj, 200, "GET device after Authenticate")
        self.assertFalse(obj.json()["enrolled"], "enrolled before TokenUpdate")
        self.assertEqual(obj.json()["attestation"]["status"], "none",
                         "attestation before TokenUpdate: nothing is asked yet")
        self.assertEqual(self.vouchd.commands(dev.udid), [], "commands before TokenUpdate")
        r = dev.token_update()
        self.assertEmpty200(r, "TokenUpdate")
        obj = self.vouchd.device(dev.udid).json()
        self.assertTrue(obj["enrolled"], f"not enrolled after TokenUpdate: {obj}")
        self.assertEqual(obj["push"]["token_state"], "active", obj)
        self.assertEqual(obj["serial_number"], dev.serial)
        self.assertIsNotNone(obj["attestation"]["request"],
                         f"the first TokenUpdate asks for an attestation: {obj}")
        cu = self.queued_attestation_request(dev.udid, "after the first TokenUpdate")
        self.assertEmpty200(dev.settle_attestation(), "answer to the attestation request")
        self.assertEqual(dev.last_attestation_request["CommandUUID"], cu)
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported",
                         "answered without DevicePropertiesAttestation")
        self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], "Acknowledged")
        self.assertEmpty200(dev.idle(), "Idle after the attestation request is answered")

    def test_full_cycle(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        marker = "cycle-" + secrets.token_hex(8)
        cmd = command_plist("DeviceInformation", Queries=["DeviceName", "OSVersion"])
        cu = cmd["CommandUUID"]
        out = self.enqueue_ok(dev.udid, cmd)
        self.assertEqual(out["command_uuid"], cu)
        self.assertEqual(out["request_type"], "DeviceInformation")
        self.assertEqual(out["status"], {dev.udid: {"queued": True}})

        queued = self.command_status(dev.udid, cu)
        self.assertEqual(len(queued), 1, queued)
        self.assertEqual(queued[0]["status"], "queued")
        self.assertEqual(queued[0]["request_type"], "DeviceInformation")
        self.assertRFC3339(queued[0]["queued_at"], "queued_at")
        self.assertIsNone(queued[0]["result_at"], "result_at of a queued command")

        got = self.assertCommand(dev.idle(), cu, "Idle with one queued command")
        self.assertEqual(got["Command"]["RequestType"], "DeviceInformation")
        self.assertEqual(got["Command"]["Queries"], ["DeviceName", "OSVersion"])

        body = plistlib.dumps(dev.report_message(
            "Acknowledged", cu, QueryResponses={"DeviceName": marker, "OSVersion": "14.4.1"}))
        r = dev.connect_bytes(body)
        self.assertEmpty200(r, "Acknowledged with nothing else queued")
        self.assertEmpty200(dev.idle(), "Idle after the queue is drained")

        done = self.command_status(dev.udid, cu)
        self.assertEqual(len(done), 1, done)
        self.assertEqual(done[0]["status"], "Acknowledged")
        self.assertRFC3339(done[0]["result_at"], "result_at")

        where = self.db_find(body)
        self.assertTrue(where, "the raw report is not stored byte for byte in any bytea/text "
                               "column of the database")

    def test_routing_by_content_type_on_mdm(self):
        """PUT /mdm carries both check-ins and reports, told apart by Content-Type (with
        charset parameter for reports)."""
        dev = self.new_device()
        r = dev.checkin_bytes(plistlib.dumps(dev.authenticate_message()), path="/mdm")
        self.assertEmpty200(r, "Authenticate on /mdm")
        r = dev.checkin_bytes(plistlib.dumps(dev.token_update_message()), path="/mdm")
        self.assertEmpty200(r, "TokenUpdate on /mdm")
        self.assertEmpty200(dev.settle_attestation(path="/mdm",
                                                   content_type=CONNECT_TYPE + "; charset=UTF-8"),
                            "attestation request taken and answered on /mdm")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported")
        cmd = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, cmd)
        r = dev.connect_bytes(plistlib.dumps(dev.report_message("Idle")), path="/mdm",
                              content_type=CONNECT_TYPE + "; charset=UTF-8")
        self.assertCommand(r, cmd["CommandUUID"], "Idle on /mdm")
        r = dev.connect_bytes(
            plistlib.dumps(dev.report_message("Acknowledged", cmd["CommandUUID"],
                                              ProfileList=[])),
            path="/mdm", content_type=CONNECT_TYPE + "; charset=UTF-8")
        self.assertEmpty200(r, "Acknowledged on /mdm")
        self.assertEqual(self.command_status(dev.udid, cmd["CommandUUID"])[0]["status"],
                         "Acknowledged")

    def test_ack_hands_out_the_next_command(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c1, c2 = command_plist("ProfileList"), command_plist("CertificateList")
        self.enqueue_ok(dev.udid, c1)
        self.enqueue_ok(dev.udid, c2)
        expected = {c1["CommandUUID"], c2["CommandUUID"]}
        first = self.assertCommand(dev.idle(), what="Idle with two queued")
        self.assertIn(first["CommandUUID"], expected)
        second = self.assertCommand(dev.report("Acknowledged", first["CommandUUID"]),
                                    what="reply to the first Acknowledged")
        self.assertEqual({first["CommandUUID"], second["CommandUUID"]}, expected)
        self.assertEmpty200(dev.report("Acknowledged", second["CommandUUID"]),
                            "reply to the last Acknowledged")

    def test_error_and_command_format_error_are_stored(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c1, c2 = command_plist("InstallProfile", Payload=b"x"), command_plist("Bogus")
        self.enqueue_ok(dev.udid, c1)
        self.assertCommand(dev.idle(), c1["CommandUUID"])
        chain = [{"ErrorCode": 4, "ErrorDomain": "MCProfileErrorDomain",
                  "LocalizedDescription": "bad profile", "USEnglishDescription": "bad profile"}]
        self.assertEmpty200(dev.report("Error", c1["CommandUUID"], ErrorChain=chain), "Error")
        self.enqueue_ok(dev.udid, c2)
        self.assertCommand(dev.idle(), c2["CommandUUID"])
        self.assertEmpty200(dev.report("CommandFormatError", c2["CommandUUID"]),
                            "CommandFormatError")
        self.assertEqual(self.command_status(dev.udid, c1["CommandUUID"])[0]["status"], "Error")
        self.assertEqual(self.command_status(dev.udid, c2["CommandUUID"])[0]["status"],
                         "CommandFormatError")
        self.assertEmpty200(dev.idle(), "Idle after Error: the failed commands are not resent")

    def test_commands_list_newest_first(self):
        dev = self.enrolled_device()
        # the attestation request, queued by the TokenUpdate, is the oldest
        uuids = [self.queued_attestation_request(dev.udid, "after enrollment")]
        for rt in ("ProfileList", "CertificateList", "SecurityInfo"):
            c = command_plist(rt)
            self.enqueue_ok(dev.udid, c)
            uuids.append(c["CommandUUID"])
        listed = [c["command_uuid"] for c in self.vouchd.commands(dev.udid)]
        self.assertEqual(listed, list(reversed(uuids)), "commands are not newest first")

    def test_checkout_disables(self):
        dev = self.enrolled_device()
        first = self.queued_attestation_request(dev.udid, "after enrollment")
        self.assertEmpty200(dev.checkout(), "CheckOut")
        self.assertFalse(self.vouchd.device(dev.udid).json()["enrolled"],
                         "still enrolled after CheckOut")
        self.assertDeviceRefusal(dev.idle(), "Idle of a checked-out device")
        dev.enroll()
        self.assertTrue(self.vouchd.device(dev.udid).json()["enrolled"], "re-enrollment")
        self.assertIsNotNone(self.attestation_of(dev.udid)["request"],
                         "re-enrollment asks for an attestation again")
        self.assertEmpty200(dev.settle_attestation(), "Idle after re-enrollment: only the new "
                                                      "attestation request, then nothing")
        self.assertNotEqual(dev.last_attestation_request["CommandUUID"], first,
                            "re-enrollment handed out the request of the old enrollment")
        self.assertEmpty200(dev.idle(), "Idle after re-enrollment")

    def test_reauthenticate_clears_the_queue(self):
        dev = self.enrolled_device()
        first = self.queued_attestation_request(dev.udid, "after enrollment")
        c = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, c)
        self.assertEmpty200(dev.authenticate(), "re-Authenticate")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "none",
                         "re-Authenticate cancels the pending request (nothing was ever "
                         "answered, so the status falls back to none)")
        self.assertEqual([x for x in self.vouchd.commands(dev.udid) if x["status"] == "queued"],
                         [], "queued commands after re-Authenticate")
        self.assertEmpty200(dev.token_update(), "TokenUpdate")
        second = self.queued_attestation_request(dev.udid, "after re-enrollment")
        self.assertNotEqual(second, first, "re-enrollment must ask with a new request")
        self.assertIsNotNone(self.attestation_of(dev.udid)["request"])
        self.assertEmpty200(dev.settle_attestation(),
                            "Idle after re-enrollment: the old queue is cleared, only the new "
                            "attestation request is left")
        self.assertEqual(dev.last_attestation_request["CommandUUID"], second)
        self.assertEmpty200(dev.idle(), "Idle after re-enrollment: the old queue is cleared")

    def test_attestation_request_goes_first(self):
        """The attestation request of the first TokenUpdate goes ahead of a command queued before
        it (between Authenticate and TokenUpdate) and of those queued after it."""
        dev = self.new_device()
        self.assertEmpty200(dev.authenticate(), "Authenticate")
        early = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, early)
        self.assertEmpty200(dev.token_update(), "TokenUpdate")
        att = self.queued_attestation_request(dev.udid, "after the first TokenUpdate")
        late = command_plist("CertificateList")
        self.enqueue_ok(dev.udid, late)
        cmd = dev.take_attestation_request()
        self.assertEqual(cmd["CommandUUID"], att, "Idle with three queued")
        self.assertIsNotNone(self.attestation_of(dev.udid)["request"],
                             "handed out but not answered: the request is shown as pending")
        first = self.assertCommand(dev.answer_attestation(cmd), what="reply to the answer")
        expected = {early["CommandUUID"], late["CommandUUID"]}
        self.assertIn(first["CommandUUID"], expected)
        second = self.assertCommand(dev.report("Acknowledged", first["CommandUUID"]),
                                    what="reply to the first Acknowledged")
        self.assertEqual({first["CommandUUID"], second["CommandUUID"]}, expected)
        self.assertEmpty200(dev.report("Acknowledged", second["CommandUUID"]), "last one")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported")

    def test_attestation_request_error_falls_back(self):
        """Error and CommandFormatError to the attestation request are stored like any other
        result; the request is over, not resent, and the device keeps its last verdict (none for
        a device never attested, unsupported for one that answered so before) until the
        retries run out."""
        for answer, status in (("error", "Error"), ("formaterror", "CommandFormatError")):
            with self.subTest(answer):
                dev = self.enrolled_device()
                self.assertEmpty200(dev.settle_attestation(answer), f"{status} to the request")
                cu = dev.last_attestation_request["CommandUUID"]
                self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], status)
                self.assertEqual(self.attestation_of(dev.udid)["status"], "none",
                                 f"{status} and no verdict before")
                self.assertEmpty200(dev.idle(), f"Idle after {status}: the request is not resent")

                # a verdict, then a re-enrollment whose request draws the same error
                dev.enroll()
                self.assertEmpty200(dev.settle_attestation(), "unsupported")
                self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported")
                dev.enroll()
                self.assertIsNotNone(self.attestation_of(dev.udid)["request"],
                                     "re-enrollment asks again")
                self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported",
                                 "the same certificate: the same enrollment, the same verdict")
                self.assertEmpty200(dev.settle_attestation(answer), f"{status} again")
                self.assertEqual(len({c["CommandUUID"] for c in dev.attestation_requests}), 3)
                self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported",
                                 f"{status} after an unsupported verdict")
                self.assertEmpty200(dev.idle())

    def test_token_update_again_keeps_enrollment(self):
        dev = self.enrolled_device()
        dev.token = secrets.token_bytes(32)
        self.assertEmpty200(dev.token_update(), "second TokenUpdate with a new token")
        obj = self.vouchd.device(dev.udid).json()
        self.assertTrue(obj["enrolled"])
        self.assertEqual(obj["push"]["token_state"], "active")
        # only the first TokenUpdate of an enrollment asks for an attestation
        self.assertIsNotNone(obj["attestation"]["request"], obj)
        self.queued_attestation_request(dev.udid, "after a second TokenUpdate")
        self.assertEmpty200(dev.settle_attestation(), "the one attestation request")
        dev.token = secrets.token_bytes(32)
        self.assertEmpty200(dev.token_update(), "third TokenUpdate")
        self.assertEmpty200(dev.idle(), "a later TokenUpdate queues no new request")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported")


class NotNowTest(VouchTestCase):

    def test_notnow_not_handed_back_in_same_session(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c1, c2 = command_plist("ProfileList"), command_plist("CertificateList")
        self.enqueue_ok(dev.udid, c1)
        self.enqueue_ok(dev.udid, c2)
        first = self.assertCommand(dev.idle(), what="Idle")
        other = ({c1["CommandUUID"], c2["CommandUUID"]} - {first["CommandUUID"]}).pop()
        r = dev.report("NotNow", first["CommandUUID"])
        self.assertCommand(r, other, "reply to NotNow must be the other queued command")
        self.assertEqual(self.command_status(dev.udid, first["CommandUUID"])[0]["status"],
                         "NotNow")
        r = dev.report("Acknowledged", other)
        self.assertEmpty200(r, "after NotNow + Acknowledged, the NotNow'd command must not come "
                               "back in the same session")
        r = dev.idle()
        self.assertCommand(r, first["CommandUUID"], "a new Idle hands back the NotNow'd command")
        self.assertEmpty200(dev.report("Acknowledged", first["CommandUUID"]), "final ack")
        self.assertEqual(self.command_status(dev.udid, first["CommandUUID"])[0]["status"],
                         "Acknowledged")
        self.assertEqual(self.command_status(dev.udid, other)[0]["status"], "Acknowledged")

    def test_notnow_to_the_attestation_request(self):
        """NotNow keeps the request pending and queued; the other commands go on; a new session
        hands the same request back."""
        dev = self.enrolled_device()
        c = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, c)
        cmd = dev.take_attestation_request()
        self.assertCommand(dev.answer_attestation(cmd, "notnow"), c["CommandUUID"],
                           "reply to NotNow of the attestation request")
        self.assertEqual(self.command_status(dev.udid, cmd["CommandUUID"])[0]["status"], "NotNow")
        self.assertIsNotNone(self.attestation_of(dev.udid)["request"], "after NotNow")
        self.assertEmpty200(dev.report("Acknowledged", c["CommandUUID"], ProfileList=[]),
                            "the NotNow'd request must not come back in the same session")
        again = dev.take_attestation_request()
        self.assertEqual(again["CommandUUID"], cmd["CommandUUID"], "a new Idle")
        self.assertEqual(again["Command"]["DeviceAttestationNonce"],
                         cmd["Command"]["DeviceAttestationNonce"], "the same request, same nonce")
        self.assertEmpty200(dev.answer_attestation(again), "answer after NotNow")
        self.assertEqual(self.attestation_of(dev.udid)["status"], "unsupported")

    def test_single_notnow(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c = command_plist("DeviceLock")
        self.enqueue_ok(dev.udid, c)
        self.assertCommand(dev.idle(), c["CommandUUID"])
        self.assertEmpty200(dev.report("NotNow", c["CommandUUID"]),
                            "NotNow of the only command: empty body")
        self.assertCommand(dev.idle(), c["CommandUUID"], "next Idle")
        self.assertCommand(dev.idle(), c["CommandUUID"],
                           "Idle again without a result: still queued")
        self.assertEmpty200(dev.report("Acknowledged", c["CommandUUID"]))
        self.assertEmpty200(dev.idle())


class RepeatedReportTest(VouchTestCase):

    def _run_command(self, dev, marker):
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c = command_plist("DeviceInformation", Queries=["DeviceName"])
        self.enqueue_ok(dev.udid, c)
        self.assertCommand(dev.idle(), c["CommandUUID"])
        body = plistlib.dumps(dev.report_message("Acknowledged", c["CommandUUID"],
                                                 QueryResponses={"DeviceName": marker}))
        self.assertEmpty200(dev.connect_bytes(body), "first Acknowledged")
        return c["CommandUUID"], body

    def test_same_report_twice(self):
        dev = self.enrolled_device()
        marker = "repeat-" + secrets.token_hex(8)
        cu, body = self._run_command(dev, marker)
        before_list = self.command_status(dev.udid, cu)
        before_db = self.db_find(marker)
        self.assertTrue(before_db, "result not stored")

        r = dev.connect_bytes(body)
        self.assertEmpty200(r, "the same report again")
        after_list = self.command_status(dev.udid, cu)
        self.assertEqual(after_list, before_list, "a repeated report changed the command")
        self.assertEqual(len(after_list), 1, after_list)
        self.assertEqual(self.db_find(marker), before_db,
                         "a repeated report changed the rows holding the result")

    def test_repeat_with_other_content_is_not_a_duplicate(self):
        dev = self.enrolled_device()
        marker = "repeat-" + secrets.token_hex(8)
        cu, _body = self._run_command(dev, marker)
        before = self.command_status(dev.udid, cu)
        r = dev.report("Acknowledged", cu, QueryResponses={"DeviceName": marker + "-again"})
        self.assertEmpty200(r, "a second Acknowledged for the same CommandUUID")
        after = self.command_status(dev.udid, cu)
        self.assertEqual(len(after), 1, after)
        self.assertEqual(after[0]["status"], "Acknowledged")
        self.assertEqual(after, before, "a repeated report changed the command")

    def test_result_for_unknown_command_uuid(self):
        """A report for a CommandUUID never queued: refused or ignored, never a crash or 401."""
        dev = self.enrolled_device()
        r = dev.report("Acknowledged", str(uuid.uuid4()).upper())
        self.assertNotEqual(r.status, 401)
        self.assertLess(r.status, 500, r)
        self.assertAlive("report for an unknown CommandUUID")


class LastSeenTest(VouchTestCase):
    """last_seen_at is the time of the device's latest request to the minute within a session
    (issue 22): the Idle always moves it; an answer less than a minute after the time recorded
    leaves it, a later one moves it."""

    def last_seen(self, dev):
        return self.psql(f"SELECT last_seen_at FROM devices WHERE udid = '{dev.udid}'").strip()

    def test_answers_move_it_once_a_minute(self):
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        commands = [command_plist("ProfileList") for _ in range(3)]
        for c in commands:
            self.enqueue_ok(dev.udid, c)
        try:
            first = self.assertCommand(dev.idle(), what="Idle")
            opened = self.last_seen(dev)
            second = self.assertCommand(dev.report("Acknowledged", first["CommandUUID"]),
                                        what="the first answer")
            self.assertEqual(self.last_seen(dev), opened,
                             "an answer within a minute of the Idle leaves last_seen_at")
            self.psql("UPDATE vouch_clock SET skew = skew + interval '2 minutes'")
            third = self.assertCommand(dev.report("Acknowledged", second["CommandUUID"]),
                                       what="the answer two minutes later")
            moved = self.last_seen(dev)
            self.assertTrue(self.psql(f"SELECT timestamptz '{moved}' >= "
                                      f"timestamptz '{opened}' + interval '2 minutes'")
                            .strip() == "t", f"{opened} -> {moved}")
            self.assertEmpty200(dev.report("Acknowledged", third["CommandUUID"]), "last answer")
            self.assertEqual(self.last_seen(dev), moved, "an answer right after it leaves it")
            self.assertEmpty200(dev.idle(), "a new session's Idle")
            self.assertNotEqual(self.last_seen(dev), moved, "an Idle always moves it")
        finally:
            self.psql("UPDATE vouch_clock SET skew = interval '0'")
        for c in commands:
            self.assertEqual(self.command_status(dev.udid, c["CommandUUID"])[0]["status"],
                             "Acknowledged")


class AnswerBatchTest(VouchTestCase):
    """Answers that arrive while the database is busy go in one statement (issue 22:
    server/device/answer_batch.c, vouch_report_answers), and each device gets the same next
    command as alone. One connection (db_pool_size 1: one answer statement out at a time):
    while the first answer waits on a lock of command_results, the others wait in vouchd, then
    go together; an answer the batch cannot take goes on to vouch_report."""

    vouchd_config = {"db_pool_size": "1"}

    def answer_counts(self):
        text = self.vouchd.metrics().body.decode()
        return tuple(int(re.search(rf"^{name} (\d+)$", text, re.M).group(1))
                     for name in ("vouch_answers_batched_total", "vouch_answer_batches_total"))

    def devices_with_two_commands(self, count):
        """count devices, each with two commands queued and the first handed out; the devices,
        and each one's first and second CommandUUID by UDID."""
        devs = [self.enrolled_device() for _ in range(count)]
        first, second = {}, {}
        for dev in devs:
            self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
            c1, c2 = command_plist("ProfileList"), command_plist("CertificateList")
            self.enqueue_ok(dev.udid, c1)
            self.enqueue_ok(dev.udid, c2)
            first[dev.udid] = self.assertCommand(dev.idle(), what="Idle")["CommandUUID"]
            second[dev.udid] = ({c1["CommandUUID"], c2["CommandUUID"]} - {first[dev.udid]}).pop()
        return devs, first, second

    def hold(self, lock_sql, seconds):
        """A psql session that takes lock_sql's locks and keeps them for seconds; returns once
        it holds them (it sleeps)."""
        name = f"holder-{secrets.token_hex(4)}"
        locker = subprocess.Popen(
            [os.path.join(pg.PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-d", self.pg.conninfo(self.dbname), "-f", "-"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, text=True)
        locker.stdin.write(f"SET application_name = '{name}';\nBEGIN;\n{lock_sql};\n"
                           f"SELECT pg_sleep({seconds});\nCOMMIT;\n")
        locker.stdin.close()
        wait_for(lambda: self.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' "
            "AND query LIKE '%pg_sleep%'").strip() == "1", 10, what="the locks held")
        return locker

    def hold_results(self, seconds):
        """Inserts into command_results wait for seconds."""
        return self.hold("LOCK TABLE command_results IN EXCLUSIVE MODE", seconds)

    def answer_at_once(self, answers):
        """Sends (device, CommandUUID) Acknowledged answers all at once; the replies by UDID."""
        replies = {}

        def answer(dev, command_uuid):
            replies[dev.udid] = dev.report("Acknowledged", command_uuid)

        threads = [threading.Thread(target=answer, args=pair) for pair in answers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return replies

    def test_answers_waiting_go_in_one_statement(self):
        devs, first, second = self.devices_with_two_commands(6)
        stranger = self.enrolled_device()
        self.assertEmpty200(stranger.settle_attestation(), "attestation request answered")
        batched0, batches0 = self.answer_counts()

        locker = self.hold_results(2)
        replies = self.answer_at_once([(dev, first[dev.udid]) for dev in devs]
                                      + [(stranger, str(uuid.uuid4()).upper())])
        self.assertEqual(locker.wait(30), 0)

        for dev in devs:
            self.assertCommand(replies[dev.udid], second[dev.udid],
                               what="the next command, from a batch or alone")
        self.assertNotEqual(replies[stranger.udid].status, 401)
        self.assertLess(replies[stranger.udid].status, 500, replies[stranger.udid])
        batched, batches = self.answer_counts()
        # One answer took the slot alone and met the lock; the rest waited and went together
        # (the stranger's too, which the batch did not take: vouch_report answered it).
        self.assertGreaterEqual(batched - batched0, len(devs) - 1, "answers a batch took")
        self.assertLessEqual(batched - batched0, len(devs))
        self.assertGreaterEqual(batches - batches0, 1, "batch statements")
        for dev in devs:
            self.assertEmpty200(dev.report("Acknowledged", second[dev.udid]), "the last answer")
            for command_uuid in (first[dev.udid], second[dev.udid]):
                self.assertEqual(self.command_status(dev.udid, command_uuid)[0]["status"],
                                 "Acknowledged")

    def test_a_batch_that_would_wait_on_a_lock_goes_alone(self):
        """A batch whose answer would wait more than a second for a row lock (here one
        device's queue entry, held by another session) fails as a whole, writes nothing, and
        each of its answers goes on alone: the others at once, the held one when the lock
        goes."""
        (slow, *others), first, second = self.devices_with_two_commands(4)
        opener = self.enrolled_device()
        self.assertEmpty200(opener.settle_attestation(), "attestation request answered")
        c = command_plist("ProfileList")
        self.enqueue_ok(opener.udid, c)
        self.assertCommand(opener.idle(), c["CommandUUID"])
        batched0, batches0 = self.answer_counts()

        entry = self.hold(f"SELECT 1 FROM command_queue WHERE udid = '{slow.udid}' FOR UPDATE", 8)
        results = self.hold_results(2)
        # The opener's answer takes the one slot and waits for command_results; the four
        # that come while it waits go together once it is in.
        opened = []
        opener_thread = threading.Thread(
            target=lambda: opened.append(opener.report("Acknowledged", c["CommandUUID"])))
        opener_thread.start()
        wait_for(lambda: self.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%vouch_report(%'").strip() == "1", 10,
            what="the opener's answer waiting")
        replies = self.answer_at_once([(dev, first[dev.udid]) for dev in [slow, *others]])
        opener_thread.join(30)
        self.assertEqual(results.wait(30), 0)
        self.assertEqual(entry.wait(30), 0)
        self.assertEmpty200(opened[0], "the opener's answer, its only command")
        for dev in [slow, *others]:
            self.assertCommand(replies[dev.udid], second[dev.udid], what="the next command")
            self.assertEqual(self.command_status(dev.udid, first[dev.udid])[0]["status"],
                             "Acknowledged")
        batched, batches = self.answer_counts()
        self.assertEqual(batched - batched0, 0, "the failed batch took none")
        self.assertGreaterEqual(batches - batches0, 1, "a batch statement was sent")

    def test_none_taken_while_a_receiver_wants_mdm_connect(self):
        """With a web-hook receiver for mdm.Connect each answer is an event, which
        vouch_report emits: the batch statement takes none and says so (its one row, n = 0)."""
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        c = command_plist("ProfileList")
        self.enqueue_ok(dev.udid, c)
        self.assertCommand(dev.idle(), c["CommandUUID"])
        call = ("SELECT n, result_stored FROM vouch_report_answers("
                f"ARRAY['{dev.udid}'], ARRAY[(SELECT identity_cert_sha256 FROM enrollments "
                f"WHERE udid = '{dev.udid}')], ARRAY['Acknowledged'], "
                f"ARRAY['{c['CommandUUID']}'], ARRAY['x'::bytea])")
        receiver = f"https://receiver-{secrets.token_hex(4)}.invalid/"
        # One transaction, rolled back: vouchd's own answers never see the receiver.
        self.assertEqual(self.psql(
            f"BEGIN; INSERT INTO webhook_receivers (url, topics) VALUES ('{receiver}', "
            f"ARRAY['mdm.Connect']); {call}; ROLLBACK;").split(), ["0|f"],
            "none taken, and the row that says why")
        self.assertEqual(self.psql(call).split(), ["1|t"], "taken, without the receiver")
        self.assertEqual(self.command_status(dev.udid, c["CommandUUID"])[0]["status"],
                         "Acknowledged")
