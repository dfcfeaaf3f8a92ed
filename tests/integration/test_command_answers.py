"""Command answers and cancelling (issue 20, docs/api.md "Command answers"): what each device
answered to a command, read through the admin API with the report as JSON, and commands taken
off the queue before a device fetches them.

What must hold:
  * GET /v1/devices/{udid}/commands/{uuid} shows a queued command (status queued, report null,
    NotNow counted) and an answered one: its status, times, and the device's plist as JSON
    (data as base64, dates as RFC 3339, integers, reals, booleans, nested dicts and arrays);
    ErrorChain apart when the device answered Error;
  * GET /v1/commands/{uuid} shows every device's answer, by UDID;
  * DELETE takes a queued command off the queue (the device never gets it), is 409 once the
    device answered and 404 for what is unknown; DELETE /v1/commands/{uuid} cancels it on every
    device still waiting;
  * cancelling an attestation request settles it (outcome canceled): the device can be asked
    again at once, and the device object no longer shows a request out;
  * a read token may GET but not DELETE;
  * command.canceled is written for a receiver that takes it, naming the token that canceled.
"""

import base64
import datetime
import json
import secrets
import uuid

from harness import VouchTestCase, command_plist

ANSWER_KEYS = {"udid", "command_uuid", "request_type", "status", "queued_at", "result_at",
               "not_now_count", "report", "error_chain"}


class CommandAnswersCase(VouchTestCase):

    def settled_device(self):
        """An enrolled device whose first attestation request is answered: its queue is empty."""
        dev = self.enrolled_device()
        self.assertEmpty200(dev.settle_attestation(), "settle the attestation request")
        return dev

    def queue(self, devices, request_type="DeviceInformation", **keys):
        cmd = command_plist(request_type, **keys)
        self.enqueue_ok([d.udid for d in devices], cmd)
        return cmd["CommandUUID"]

    def answer(self, dev, command_uuid, status="Acknowledged", **keys):
        self.assertCommand(dev.idle(), command_uuid, "Idle hands out the command")
        r = dev.report(status, command_uuid, **keys)
        self.assertStatus(r, 200, f"report {status}")

    def get_answer(self, dev, command_uuid, expect=200, token=None):
        kw = {} if token is None else {"token": token}
        r = self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands/{command_uuid}", **kw)
        self.assertStatus(r, expect, f"GET the answer of {dev.udid} to {command_uuid}")
        self.assertEqual(r.media_type(), "application/json", repr(r))
        return r.json()

    def cancel(self, dev, command_uuid, expect=200, token=None):
        kw = {} if token is None else {"token": token}
        r = self.vouchd.admin("DELETE", f"/v1/devices/{dev.udid}/commands/{command_uuid}", **kw)
        self.assertStatus(r, expect, f"DELETE {command_uuid} of {dev.udid}")
        return r.json()

    def assertAnswerShape(self, a, dev, command_uuid, request_type, status):
        self.assertEqual(set(a), ANSWER_KEYS, a)
        self.assertEqual((a["udid"], a["command_uuid"], a["request_type"], a["status"]),
                         (dev.udid, command_uuid, request_type, status), a)
        self.assertRFC3339(a["queued_at"], "queued_at")
        self.assertIsInstance(a["not_now_count"], int, a)


class CommandAnswersTest(CommandAnswersCase):

    def test_acknowledged_report_as_json(self):
        dev = self.settled_device()
        cu = self.queue([dev], Queries=["OSVersion", "SerialNumber"])
        when = datetime.datetime(2024, 5, 1, 12, 30, 15)
        blob = secrets.token_bytes(40)
        responses = {"OSVersion": "14.4.1", "SerialNumber": dev.serial, "BatteryLevel": 0.75,
                     "IsSupervised": True, "IsMDMLostModeEnabled": False,
                     "AvailableDeviceCapacity": 120, "Negative": -3,
                     "PushToken": blob, "LastBackup": when,
                     "Nested": {"List": [1, "two", {"three": [True]}], "Empty": {}},
                     "Unicode": "caf\u00e9 \u2603"}
        self.answer(dev, cu, QueryResponses=responses)
        a = self.get_answer(dev, cu)
        self.assertAnswerShape(a, dev, cu, "DeviceInformation", "Acknowledged")
        self.assertRFC3339(a["result_at"], "result_at")
        self.assertIsNone(a["error_chain"], a)
        report = a["report"]
        self.assertEqual((report["UDID"], report["Status"], report["CommandUUID"]),
                         (dev.udid, "Acknowledged", cu))
        qr = report["QueryResponses"]
        expected = dict(responses, PushToken=base64.b64encode(blob).decode(),
                        LastBackup="2024-05-01T12:30:15Z")
        self.assertEqual(qr, expected)
        self.assertIsInstance(qr["AvailableDeviceCapacity"], int)
        self.assertIsInstance(qr["BatteryLevel"], float)

    def test_error_answer_has_its_error_chain(self):
        dev = self.settled_device()
        cu = self.queue([dev], "ProfileList")
        chain = [{"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain",
                  "LocalizedDescription": "Nope.", "USEnglishDescription": "Nope."},
                 {"ErrorCode": 4001, "ErrorDomain": "MCInstallationErrorDomain",
                  "LocalizedDescription": "Deeper.", "USEnglishDescription": "Deeper."}]
        self.answer(dev, cu, "Error", ErrorChain=chain)
        a = self.get_answer(dev, cu)
        self.assertAnswerShape(a, dev, cu, "ProfileList", "Error")
        self.assertEqual(a["error_chain"], chain)
        self.assertEqual(a["report"]["ErrorChain"], chain)
        # A CommandFormatError is shown too, without an error chain.
        cu2 = self.queue([dev], "SecurityInfo")
        self.answer(dev, cu2, "CommandFormatError")
        a2 = self.get_answer(dev, cu2)
        self.assertAnswerShape(a2, dev, cu2, "SecurityInfo", "CommandFormatError")
        self.assertIsNone(a2["error_chain"])

    def test_still_queued_then_not_now(self):
        dev = self.settled_device()
        cu = self.queue([dev], "InstalledApplicationList")
        a = self.get_answer(dev, cu)
        self.assertAnswerShape(a, dev, cu, "InstalledApplicationList", "queued")
        self.assertEqual((a["result_at"], a["report"], a["error_chain"], a["not_now_count"]),
                         (None, None, None, 0), a)
        self.assertCommand(dev.idle(), cu)
        self.assertStatus(dev.report("NotNow", cu), 200, "NotNow")
        a = self.get_answer(dev, cu)
        self.assertEqual((a["status"], a["not_now_count"], a["report"]), ("queued", 1, None), a)

    def test_cancel_a_queued_command(self):
        dev = self.settled_device()
        cu = self.queue([dev], "RestartDevice")
        body = self.cancel(dev, cu)
        self.assertEqual(body, {"udid": dev.udid, "command_uuid": cu, "canceled": True})
        self.assertEmpty200(dev.idle(), "the canceled command is not handed out")
        self.assertEqual(self.get_answer(dev, cu, expect=404).keys(), {"error"})
        self.assertIn("error", self.cancel(dev, cu, expect=404))
        self.assertEqual(self.command_status(dev.udid, cu), [])

    def test_cancel_after_the_answer_is_409(self):
        dev = self.settled_device()
        cu = self.queue([dev], "ProfileList")
        self.answer(dev, cu, ProfileList=[])
        body = self.cancel(dev, cu, expect=409)
        self.assertIsInstance(body.get("error"), str, body)
        self.assertEqual(self.get_answer(dev, cu)["status"], "Acknowledged")

    def test_unknown_is_404(self):
        dev = self.settled_device()
        cu = self.queue([dev], "ProfileList")
        other = self.settled_device()
        unknown = str(uuid.uuid4()).upper()
        for method, path in [("GET", f"/v1/devices/{dev.udid}/commands/{unknown}"),
                             ("DELETE", f"/v1/devices/{dev.udid}/commands/{unknown}"),
                             ("GET", f"/v1/devices/{other.udid}/commands/{cu}"),
                             ("DELETE", f"/v1/devices/{other.udid}/commands/{cu}"),
                             ("GET", f"/v1/devices/NO-SUCH-DEVICE/commands/{cu}"),
                             ("GET", f"/v1/commands/{unknown}"),
                             ("DELETE", f"/v1/commands/{unknown}")]:
            r = self.vouchd.admin(method, path)
            self.assertStatus(r, 404, f"{method} {path}")
            self.assertIsInstance(r.json().get("error"), str, f"{method} {path}: {r!r}")
        r = self.vouchd.admin("PUT", f"/v1/commands/{cu}")
        self.assertStatus(r, 405, "PUT /v1/commands/{uuid}")
        # The device's list of commands is where it was.
        self.assertEqual(self.vouchd.admin("GET", f"/v1/devices/{dev.udid}/commands").status, 200)

    def test_every_device_and_cancel_everywhere(self):
        devs = [self.settled_device() for _ in range(3)]
        cu = self.queue(devs, "SecurityInfo")
        self.answer(devs[1], cu, SecurityInfo={"PasscodePresent": True})
        r = self.vouchd.admin("GET", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "GET /v1/commands/{uuid}")
        body = r.json()
        self.assertEqual(set(body), {"command_uuid", "request_type", "created_at", "devices",
                                     "truncated"}, body)
        self.assertEqual((body["command_uuid"], body["request_type"], body["truncated"]),
                         (cu, "SecurityInfo", False))
        self.assertRFC3339(body["created_at"], "created_at")
        by_udid = sorted(devs, key=lambda d: d.udid)
        self.assertEqual([a["udid"] for a in body["devices"]], [d.udid for d in by_udid])
        for a in body["devices"]:
            self.assertEqual(set(a), ANSWER_KEYS, a)
            if a["udid"] == devs[1].udid:
                self.assertEqual(a["status"], "Acknowledged")
                self.assertEqual(a["report"]["SecurityInfo"], {"PasscodePresent": True})
            else:
                self.assertEqual((a["status"], a["report"]), ("queued", None))
        r = self.vouchd.admin("DELETE", f"/v1/commands/{cu}")
        self.assertStatus(r, 200, "DELETE /v1/commands/{uuid}")
        self.assertEqual(r.json(), {"command_uuid": cu, "canceled": 2})
        for d in (devs[0], devs[2]):
            self.assertEmpty200(d.idle(), "canceled everywhere")
        r = self.vouchd.admin("DELETE", f"/v1/commands/{cu}")
        self.assertEqual((r.status, r.json()), (200, {"command_uuid": cu, "canceled": 0}))
        left = self.vouchd.admin("GET", f"/v1/commands/{cu}").json()["devices"]
        self.assertEqual([(a["udid"], a["status"]) for a in left],
                         [(devs[1].udid, "Acknowledged")])

    def test_cancel_an_attestation_request_settles_it(self):
        dev = self.enrolled_device()
        cu = self.queued_attestation_request(dev.udid, "after enrollment")
        self.assertEqual(self.attestation_of(dev.udid)["request"]["command_uuid"], cu)
        self.assertEqual(self.cancel(dev, cu)["canceled"], True)
        rows = self.psql("SELECT outcome, answered_at IS NOT NULL FROM attestation_requests "
                         f"WHERE command_uuid = '{cu}'")
        self.assertEqual(rows.split(), ["canceled|t"], rows)
        self.assertIsNone(self.attestation_of(dev.udid).get("request"),
                          "no request out after the cancel")
        # The light DeviceInformation query, which the request's answer stood for, is planned again.
        self.assertEqual(self.psql("SELECT info_due_at IS NOT NULL FROM devices "
                                   f"WHERE udid = '{dev.udid}'").strip(), "t")
        # Asking again is not refused as pending: a new request is queued at once.
        r = self.vouchd.admin("POST", f"/v1/devices/{dev.udid}/attest")
        self.assertStatus(r, 200, "POST attest after the cancel")
        fresh = self.queued_attestation_request(dev.udid, "after asking again")
        self.assertNotEqual(fresh, cu)

    def test_read_token_may_look_but_not_cancel(self):
        dev = self.settled_device()
        cu = self.queue([dev], "ProfileList")
        name = f"answers-read-{secrets.token_hex(4)}"
        r = self.vouchd.admin("POST", "/v1/tokens", content_type="application/json",
                              body=json.dumps({"name": name, "scope": "read"}).encode())
        self.assertStatus(r, 201, "create a read token")
        read = r.json()["token"]
        self.assertEqual(self.get_answer(dev, cu, token=read)["status"], "queued")
        r = self.vouchd.admin("GET", f"/v1/commands/{cu}", token=read)
        self.assertStatus(r, 200, "GET /v1/commands/{uuid} with a read token")
        for path in (f"/v1/devices/{dev.udid}/commands/{cu}", f"/v1/commands/{cu}"):
            r = self.vouchd.admin("DELETE", path, token=read)
            self.assertStatus(r, 403, f"DELETE {path} with a read token")
        self.assertEqual(self.get_answer(dev, cu)["status"], "queued", "still queued")


class CommandCanceledEventTest(CommandAnswersCase):
    # A receiver nobody listens on: the events stay in the outbox, where the test reads them.
    vouchd_config = {"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": "s3cret",
                     "webhook_topics": "command.canceled"}

    def test_cancel_writes_command_canceled(self):
        dev = self.settled_device()
        cu = self.queue([dev], "DeviceLock", PIN="123456")
        self.cancel(dev, cu)
        rows = self.psql("SELECT body FROM events WHERE topic = 'command.canceled'")
        bodies = [json.loads(line) for line in rows.splitlines() if line.strip()]
        self.assertEqual(len(bodies), 1, rows)
        e = bodies[0]
        self.assertEqual((e["udid"], e["command_uuid"], e["request_type"], e["canceled_by"],
                          e["not_now_count"]),
                         (dev.udid, cu, "DeviceLock", "admin_token", 0), e)
        self.assertRFC3339(e["queued_at"], "queued_at")
        self.assertEqual(self.vouchd.admin("GET", "/v1/events").json()[0]["topic"],
                         "command.canceled")
