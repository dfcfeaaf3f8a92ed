"""NanoMDM's API as NanoMDM's clients call it (docs/api.md section 9, shared spec nanomdm-api.md):
HTTP Basic `nanomdm:KEY`, PUT/POST /v1/enqueue/ with an XML or binary command plist, ?nopush,
an empty body to push only, NanoMDM's answer shape (tab-indented) and statuses 200/207/4xx/500,
/v1/push/, GET /v1/pushcert and /version."""

import base64
import plistlib
import uuid

from harness import command_plist
from test_push import PushTestCase


def basic(key, user="nanomdm"):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


class NanoMDMApiTest(PushTestCase):

    def ready(self):
        """An enrolled device that has answered its enrollment's attestation request."""
        dev = self.enroll()
        self.assertEmpty200(dev.settle_attestation(), "attestation request answered")
        return dev

    def nano(self, method, path, body=None, key=None):
        return self.vouchd.request(method, path, body=body,
                                   headers=basic(key or self.vouchd.admin_token))

    def test_version_without_auth(self):
        r = self.vouchd.request("GET", "/version")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.media_type(), "application/json")
        self.assertIsInstance(r.json()["version"], str)

    def test_basic_auth_and_nanomdm_401(self):
        r = self.nano("GET", "/v1/devices")
        self.assertEqual(r.status, 200, r)
        r = self.nano("GET", "/v1/devices", key="wrong")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.header("WWW-Authenticate"), 'Basic realm="nanomdm"')
        self.assertEqual(r.body.strip(), b"Unauthorized")
        r = self.vouchd.request("GET", "/v1/devices",
                                headers=basic(self.vouchd.admin_token, user="admin"))
        self.assertEqual(r.status, 401, "only the user nanomdm")

    def test_enqueue_put_xml_then_push(self):
        dev = self.ready()
        cmd = command_plist("ProfileList")
        body = plistlib.dumps(cmd)
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"\n\t\"", r.body, "tab-indented")
        out = r.json()
        self.assertEqual(set(out), {"status", "command_uuid", "request_type"}, out)
        self.assertEqual(out["command_uuid"], cmd["CommandUUID"])
        self.assertEqual(out["request_type"], "ProfileList")
        self.assertIsInstance(out["status"][dev.udid]["push_result"], str, out)
        self.apns.wait_for_requests(dev.token, 2, 10)
        self.assertEqual(dev.idle().body, body, "the command is stored as sent")

    def test_enqueue_nopush_semantics(self):
        dev = self.ready()
        for query, pushes in (("?nopush=1", False), ("?nopush=0", False), ("?nopush", True),
                              ("?nopush=", True)):
            cmd = command_plist("ProfileList")
            r = self.nano("POST", f"/v1/enqueue/{dev.udid}{query}", body=plistlib.dumps(cmd))
            self.assertEqual(r.status, 200, f"{query}: {r!r}")
            out = r.json()
            if pushes:
                self.assertNotIn("no_push", out, query)
                self.assertIn("push_result", out["status"][dev.udid], query)
            else:
                self.assertEqual(out, {"no_push": True, "command_uuid": cmd["CommandUUID"],
                                       "request_type": "ProfileList"}, query)

    def test_empty_body_pushes_only(self):
        dev = self.ready()
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}", body=b"")
        self.assertEqual(r.status, 200, r)
        out = r.json()
        self.assertEqual(set(out), {"status"}, out)
        self.assertIn("push_result", out["status"][dev.udid])
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}?nopush=1", body=b"")
        self.assertEqual(r.status, 400, r)
        self.assertIn("must enqueue or push", r.json()["command_error"])

    def test_partial_failure_207(self):
        dev = self.ready()
        ghost = str(uuid.uuid4()).upper()
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid},{ghost}",
                      body=plistlib.dumps(command_plist("ProfileList")))
        self.assertEqual(r.status, 207, r)
        out = r.json()
        self.assertIn("push_result", out["status"][dev.udid], out)
        self.assertIsInstance(out["status"][ghost]["command_error"], str, out)
        r = self.nano("GET", f"/v1/push/{dev.udid},{ghost}")
        self.assertEqual(r.status, 207, r)
        out = r.json()
        self.assertIn("push_result", out["status"][dev.udid], out)
        self.assertIsInstance(out["status"][ghost]["push_error"], str, out)
        self.assertNotIn("command_uuid", out)

    def test_binary_plist(self):
        dev = self.ready()
        cmd = command_plist("SecurityInfo")
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}?nopush=1",
                      body=plistlib.dumps(cmd, fmt=plistlib.FMT_BINARY))
        self.assertEqual(r.status, 200, r)
        got = plistlib.loads(dev.idle().body)
        self.assertEqual(got["CommandUUID"], cmd["CommandUUID"])

    def test_bad_plist_command_error(self):
        dev = self.ready()
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}", body=b"not a plist")
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.json()["command_error"].startswith("decoding command: "), r)
        r = self.nano("PUT", f"/v1/enqueue/{dev.udid}",
                      body=plistlib.dumps({"Command": {"RequestType": "ProfileList"}}))
        self.assertEqual(r.status, 400, "NanoMDM refuses a command without CommandUUID")

    def test_pushcert_get(self):
        r = self.nano("GET", f"/v1/pushcert?topic={self.topic}")
        self.assertEqual(r.status, 200, r)
        out = r.json()
        self.assertEqual(out["topic"], self.topic)
        self.assertRegex(out["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.nano("GET", "/v1/pushcert?topic=com.apple.mgmt.other").status, 404)
