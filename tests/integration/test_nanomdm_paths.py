"""The URLs migrated devices already use (issue 25, item 3): NanoMDM's layout as it is (`/mdm`
for check-ins and reports on one URL, `/checkin` for check-ins), `mdm_path` and `checkin_path`
(extra paths of the device protocol), the MessageType fallback on a URL that takes both, and
what vouchd refuses at start (a path of another route, a query, one path for both).

What must hold (docs/protocol.md, "Paths"; docs/api.md, configuration):
  * a device enrolls and is served at each of them exactly as at /mdm/checkin and /mdm/connect;
  * a check-in-only path refuses a report (415), and a URL that takes both tells them apart by
    Content-Type, or, without one (or with a generic one), by the body: a MessageType is a
    check-in, anything else a report;
  * the enrollment profile keeps Vouch's own paths;
  * each path is counted under its own endpoint label.
"""

import plistlib
import re

import test_edges
import test_startup
from device import CHECKIN_TYPE
from harness import VouchTestCase, suite
from test_enroll import BASE, EnrollCase

MDM_PATH = "/nano/mdm"
CHECKIN_PATH = "/nano/checkin"


class NanoPathCase(VouchTestCase):
    vouchd_config = {"mdm_path": MDM_PATH, "checkin_path": CHECKIN_PATH}

    def enroll_at(self, path, content_type=CHECKIN_TYPE):
        dev = self.new_device()
        for message in (dev.authenticate_message(), dev.token_update_message()):
            r = dev.checkin_bytes(plistlib.dumps(message), path=path, content_type=content_type)
            self.assertEmpty200(r, f"{message['MessageType']} at {path}")
        return dev

    def assertRefused(self, response, status, reason, what):
        """This status, and the reason code as the text/plain body."""
        self.assertEqual(response.status, status, f"{what}: {response!r}")
        self.assertEqual(response.text().strip(), reason, f"{what}: {response!r}")

    def responses(self, endpoint):
        """{code: count} of vouch_http_responses_total for one endpoint label."""
        r = self.vouchd.metrics()
        self.assertStatus(r, 200, "GET /metrics")
        out = {}
        for m in re.finditer(r'^vouch_http_responses_total\{endpoint="([^"]*)",code="(\d+)"\} '
                             r'(\d+)$', r.text(), re.M):
            if m.group(1) == endpoint:
                out[int(m.group(2))] = int(m.group(3))
        return out


class NanoMdmLayoutTest(NanoPathCase):
    """NanoMDM's own paths, always served: /checkin for check-ins, /mdm for both."""

    def test_checkin_and_mdm(self):
        before = self.responses("/checkin").get(200, 0)
        dev = self.enroll_at("/checkin")
        self.assertEqual(self.responses("/checkin").get(200, 0), before + 2,
                         "the two check-ins counted under endpoint=\"/checkin\"")
        # Reports go to /mdm, as NanoMDM's ServerURL has it.
        self.assertEmpty200(dev.settle_attestation(path="/mdm"), "the attestation request at /mdm")
        self.assertEmpty200(dev.idle(path="/mdm"), "Idle at /mdm")
        # /mdm takes check-ins too, by their Content-Type.
        self.assertEmpty200(dev.checkin_bytes(plistlib.dumps(dev.token_update_message()),
                                              path="/mdm"), "TokenUpdate at /mdm")
        # /checkin takes no report.
        r = dev.connect_bytes(plistlib.dumps(dev.report_message("Idle")), path="/checkin")
        self.assertRefused(r, 415, "wrong_content_type", "a report at /checkin")
        r = dev.connect_bytes(plistlib.dumps(dev.report_message("Idle")), path="/checkin",
                              content_type=None)
        self.assertRefused(r, 415, "wrong_content_type", "a report without Content-Type at "
                                                         "/checkin")
        self.assertEqual(self.vouchd.device(dev.udid).json()["enrolled"], True)

    def test_other_methods(self):
        dev = self.new_device()
        r = dev.send("/checkin", plistlib.dumps(dev.authenticate_message()), CHECKIN_TYPE,
                     method="POST")
        self.assertRefused(r, 405, "method_not_allowed", "POST /checkin")


class MessageTypeFallbackTest(NanoPathCase):
    """A URL that takes both, reached without a Content-Type that says which: the body does."""

    def test_fallback_on_combined_urls(self):
        for path in ("/mdm", MDM_PATH):
            for content_type in (None, "application/xml", "text/xml; charset=utf-8",
                                 "application/octet-stream"):
                what = f"{path} with Content-Type {content_type}"
                dev = self.enroll_at(path, content_type=content_type)
                self.assertTrue(self.vouchd.device(dev.udid).json()["enrolled"], what)
                # The first Idle gets the enrollment's attestation request.
                cmd = dev.take_attestation_request(path=path, content_type=content_type)
                self.assertEqual(cmd["Command"]["RequestType"], "DeviceInformation", what)
                self.assertEmpty200(dev.answer_attestation(cmd, path=path,
                                                           content_type=content_type), what)
                self.assertEmpty200(dev.checkout(path=path, content_type=content_type), what)
                self.assertFalse(self.vouchd.device(dev.udid).json()["enrolled"], what)

    def test_what_the_fallback_does_not_take(self):
        dev = self.enrolled_device()
        auth = plistlib.dumps(dev.authenticate_message())
        idle = plistlib.dumps(dev.report_message("Idle"))
        # Neither MessageType nor Status: a report without its Status.
        r = dev.connect_bytes(plistlib.dumps({"UDID": dev.udid}), path="/mdm", content_type=None)
        self.assertRefused(r, 400, "missing_field", "no MessageType, no Status")
        # A Content-Type that is neither generic nor an MDM one is still refused.
        for content_type in ("text/plain", "application/json"):
            r = dev.connect_bytes(idle, path="/mdm", content_type=content_type)
            self.assertRefused(r, 415, "wrong_content_type", f"/mdm as {content_type}")
        # The paths of one channel keep wanting its Content-Type.
        r = dev.checkin_bytes(auth, path="/mdm/checkin", content_type=None)
        self.assertRefused(r, 415, "wrong_content_type", "/mdm/checkin without Content-Type")
        r = dev.connect_bytes(idle, path="/mdm/connect", content_type="application/xml")
        self.assertRefused(r, 415, "wrong_content_type", "/mdm/connect as application/xml")
        r = dev.checkin_bytes(auth, path=CHECKIN_PATH, content_type=None)
        self.assertRefused(r, 415, "wrong_content_type", "checkin_path without Content-Type")
        # An MDM Content-Type wins over the body: a check-in sent as a report is not one.
        r = dev.connect_bytes(auth, path="/mdm")
        self.assertRefused(r, 400, "missing_field", "an Authenticate sent as a report")
        self.assertEmpty200(dev.settle_attestation(path="/mdm", content_type=None),
                            "still served")


class ConfiguredPathsTest(NanoPathCase):
    """mdm_path and checkin_path: served as /mdm and /mdm/checkin are."""

    def test_configured_paths(self):
        dev = self.enroll_at(CHECKIN_PATH)
        self.assertEmpty200(dev.settle_attestation(path=MDM_PATH), "reports at mdm_path")
        self.assertEmpty200(dev.checkin_bytes(plistlib.dumps(dev.token_update_message()),
                                              path=MDM_PATH), "a check-in at mdm_path")
        r = dev.connect_bytes(plistlib.dumps(dev.report_message("Idle")), path=CHECKIN_PATH)
        self.assertRefused(r, 415, "wrong_content_type", "a report at checkin_path")
        # Vouch's own paths are still served beside them.
        self.assertEmpty200(dev.idle(), "Idle at /mdm/connect")
        self.assertEqual(self.responses("checkin_path").get(200), 2)
        self.assertEqual(self.responses("checkin_path").get(415), 1)
        self.assertGreaterEqual(self.responses("mdm_path").get(200, 0), 3)
        # Nothing under them, and nothing else, is routed.
        r = dev.checkin_bytes(plistlib.dumps(dev.token_update_message()),
                              path=CHECKIN_PATH + "/x")
        self.assertStatus(r, 404, "under checkin_path")
        r = dev.checkin_bytes(plistlib.dumps(dev.token_update_message()),
                              path=CHECKIN_PATH + "?a=b")
        self.assertEmpty200(r, "checkin_path with a query")


class ProfileKeepsVouchPathsTest(EnrollCase):
    """The enrollment profile Vouch builds names Vouch's own paths, whatever mdm_path says."""

    extra_config = dict(BASE, mdm_path=MDM_PATH, checkin_path=CHECKIN_PATH)

    def test_profile_paths(self):
        profile = self.profile(self.fetch())
        mdm = {p["PayloadType"]: p for p in profile["PayloadContent"]}["com.apple.mdm"]
        self.assertEqual(mdm["ServerURL"], "https://mdm.example.com/mdm/connect")
        self.assertEqual(mdm["CheckInURL"], "https://mdm.example.com/mdm/checkin")


class DevicePathRefusalTest(test_startup.StartupCase):
    """A path vouchd cannot serve: it exits 1 at start and its message names the key."""

    def test_refused_paths(self):
        self.dbname = suite().new_database("nanomdm_paths_refusals")
        cases = [
            ("mdm_path under /v1", {"mdm_path": "/v1/mdm"}, ("mdm_path", "/v1")),
            ("checkin_path = /migration", {"checkin_path": "/migration"},
             ("checkin_path", "/migration")),
            ("mdm_path = /mdm/enroll", {"mdm_path": "/mdm/enroll"}, ("mdm_path", "/mdm/enroll")),
            ("mdm_path under /ui", {"mdm_path": "/ui/mdm"}, ("mdm_path", "/ui")),
            ("mdm_path under /acme", {"mdm_path": "/acme/x"}, ("mdm_path", "/acme")),
            ("mdm_path with a query", {"mdm_path": "/x?y=z"}, ("mdm_path", "?")),
            ("relative checkin_path", {"checkin_path": "checkin"}, ("checkin_path", "absolute")),
            ("one path for both", {"mdm_path": "/x", "checkin_path": "/x"},
             ("mdm_path", "checkin_path")),
        ]
        problems = []
        for i, (what, extra, key) in enumerate(cases):
            problem = test_edges.StartupRefusalTest.refuses(self, f"paths-refuse{i}", extra, key)
            if problem:
                problems.append(f"{what}: {problem}")
        self.assertEqual(problems, [], "\n\n".join(problems))
        # Vouch's own paths are accepted (the defaults: nothing extra).
        v = self.new_vouchd("paths-own", dbname=self.dbname,
                            extra={"mdm_path": "/mdm/connect", "checkin_path": "/mdm/checkin"})
        test_startup.launch(v)
        self.wait_healthy(v, what="mdm_path and checkin_path as Vouch's own")
        self.assertEqual(v.stop(), 0, v.log_tail())


del NanoPathCase, EnrollCase  # bases, not tests of their own here
