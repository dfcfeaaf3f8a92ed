"""Hostile and broken input on the device endpoints. Every request here is correctly signed by an
enrolled device unless the test says otherwise, so what is tested is the parsing and routing, not
the signature check. After each, vouchd must still be running, healthy, and serve a normal Idle.

Every enrollment now starts with an attestation request queued by vouchd: broken answers to it
are refused like any other broken report and leave the request pending."""

import os
import plistlib

from device import CHECKIN_TYPE, CONNECT_TYPE, mdm_signature, raw_exchange
from harness import VouchTestCase

XML_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC '
            b'"-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n')


def xml_plist(inner):
    return XML_HEAD + b'<plist version="1.0">\n' + inner + b"\n</plist>\n"


def dict_xml(udid, extra=b"", message_type=b"Authenticate"):
    return xml_plist(b"<dict><key>MessageType</key><string>" + message_type +
                     b"</string><key>UDID</key><string>" + udid.encode() + b"</string>" +
                     extra + b"</dict>")


class MalformedInputTest(VouchTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dev = None

    def device(self):
        if type(self).dev is None:
            type(self).dev = self.enrolled_device()
        return type(self).dev

    def check(self, what, response, expected):
        self.assertDeviceRefusal(response, what, allowed=(expected,))
        self.assertAlive(what)

    def test_malformed_plist(self):
        d = self.device()
        truncated = plistlib.dumps(d.authenticate_message())[:-40]
        self.check("truncated check-in plist", d.checkin_bytes(truncated), 400)
        truncated = plistlib.dumps(d.report_message("Idle"))[:-30]
        self.check("truncated report plist", d.connect_bytes(truncated), 400)
        self.check("not XML at all", d.connect_bytes(b"hello, world"), 400)
        self.check("empty body", d.connect_bytes(b""), 400)
        self.check("unbalanced tags",
                   d.connect_bytes(xml_plist(b"<dict><key>Status</key><string>Idle</dict>")), 400)

    def test_not_a_dict(self):
        d = self.device()
        self.check("plist array check-in", d.checkin_bytes(plistlib.dumps(["Authenticate"])), 400)
        self.check("plist string report", d.connect_bytes(plistlib.dumps("Idle")), 400)
        self.check("plist integer report", d.connect_bytes(plistlib.dumps(7)), 400)

    def test_missing_required_keys(self):
        d = self.device()
        m = d.authenticate_message()
        del m["MessageType"]
        self.check("check-in without MessageType", d.checkin(m), 400)
        m = d.token_update_message()
        del m["UDID"]
        self.check("TokenUpdate without UDID", d.checkin(m), 400)
        m = d.report_message("Idle")
        del m["UDID"]
        self.check("report without UDID", d.connect_bytes(plistlib.dumps(m)), 400)
        m = d.report_message("Idle")
        del m["Status"]
        self.check("report without Status", d.connect_bytes(plistlib.dumps(m)), 400)
        self.check("Acknowledged without CommandUUID",
                   d.connect_bytes(plistlib.dumps(d.report_message("Acknowledged"))), 400)

    def test_wrong_value_types(self):
        d = self.device()
        m = d.report_message("Idle")
        m["UDID"] = 12345
        self.check("UDID as integer", d.connect_bytes(plistlib.dumps(m)), 400)
        m = d.authenticate_message()
        m["MessageType"] = ["Authenticate"]
        self.check("MessageType as array", d.checkin(m), 400)
        m = d.report_message("Idle")
        m["Status"] = {"Idle": True}
        self.check("Status as dict", d.connect_bytes(plistlib.dumps(m)), 400)

    def test_unknown_message_type(self):
        d = self.device()
        self.check("unknown MessageType",
                   d.checkin({"MessageType": "FrobnicateTheDevice", "UDID": d.udid,
                              "Topic": d.topic}), 400)
        self.check("unknown Status",
                   d.connect_bytes(plistlib.dumps(d.report_message("Frobnicated"))), 400)

    def test_user_authenticate_gone(self):
        d = self.device()
        r = d.checkin({"MessageType": "UserAuthenticate", "UDID": d.udid, "Topic": d.topic,
                       "UserID": "5DF1182E-C70B-4A3A-BADC-DD3E775040FB",
                       "UserShortName": "user", "UserLongName": "A User"})
        self.check("UserAuthenticate", r, 410)

    def test_unimplemented_message_types(self):
        d = self.device()
        for mt in ("SetBootstrapToken", "GetBootstrapToken", "GetToken", "ReturnToService"):
            r = d.checkin({"MessageType": mt, "UDID": d.udid, "Topic": d.topic})
            self.assertNotEqual(r.status, 401, f"{mt}: {r!r}")
            self.assertLess(r.status, 500, f"{mt}: a server fault for a refusal: {r!r}")
            self.assertAlive(mt)

    def test_deep_nesting(self):
        d = self.device()
        n = 10000
        self.check("10,000 nested arrays as the body",
                   d.checkin_bytes(xml_plist(b"<array>" * n + b"</array>" * n)), 400)
        self.check("10,000 nested arrays inside an Authenticate",
                   d.checkin_bytes(dict_xml(d.udid, b"<key>Deep</key>" + b"<array>" * n +
                                            b"</array>" * n)), 400)
        nested_dicts = b"<dict><key>k</key>" * n + b"<true/>" + b"</dict>" * n
        self.check("10,000 nested dicts inside a report",
                   d.connect_bytes(xml_plist(
                       b"<dict><key>UDID</key><string>" + d.udid.encode() +
                       b"</string><key>Status</key><string>Idle</string><key>Deep</key>" +
                       nested_dicts + b"</dict>")), 400)
        self.check("10,000 unclosed arrays",
                   d.connect_bytes(xml_plist(b"<array>" * n)), 400)

    def test_binary_garbage(self):
        d = self.device()
        self.check("random bytes as a report", d.connect_bytes(os.urandom(4096)), 400)
        self.check("random bytes as a check-in", d.checkin_bytes(os.urandom(4096)), 400)
        self.check("bplist00 header + garbage",
                   d.connect_bytes(b"bplist00" + os.urandom(512)), 400)
        self.check("NUL bytes", d.connect_bytes(b"\0" * 1024), 400)

    def test_entity_expansion(self):
        d = self.device()
        lol = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
               + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else
                                                         b"&lol;") * 10) for i in range(1, 10))
               + b']>\n<plist version="1.0"><dict><key>UDID</key><string>&lol9;</string>'
                 b"<key>Status</key><string>Idle</string></dict></plist>\n")
        r = d.connect_bytes(lol)
        self.assertNotEqual(r.status, 401, r)
        self.assertTrue(400 <= r.status < 500, f"billion laughs: expected 4xx, got {r!r}")
        self.assertAlive("billion laughs")

    def test_odd_but_harmless_content(self):
        d = self.device()
        m = d.report_message("Idle")
        body = plistlib.dumps(m).replace(b"</dict>", b"<key>Junk</key><string>\xff\xfe\xc3"
                                                     b"</string></dict>")
        r = d.connect_bytes(body)
        self.assertIn(r.status, (200, 400), f"invalid UTF-8 in an extra key: {r!r}")
        self.assertAlive("invalid UTF-8")
        many = {f"Key{i}": i for i in range(20000)}
        many.update(d.report_message("Idle"))
        r = d.connect_bytes(plistlib.dumps(many))
        self.assertIn(r.status, (200, 400), f"20,000 extra keys: {r!r}")
        self.assertAlive("20,000 extra keys")

    def test_oversized_body(self):
        d = self.device()
        body = plistlib.dumps(d.report_message("Idle", Padding="A" * (1024 * 1024 + 4096)))
        sig = mdm_signature(body, d.key, d.cert)
        head = (f"PUT /mdm/connect HTTP/1.1\r\nHost: {self.vouchd.host}:{self.vouchd.port}\r\n"
                f"Content-Type: {CONNECT_TYPE}\r\nMdm-Signature: {sig}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        status, reply = raw_exchange(self.vouchd.host, self.vouchd.port, head + body)
        self.assertEqual(status, 413, f"body of {len(body)} bytes > max_body_bytes (1 MiB): "
                                      f"{reply[:300]!r}")
        self.assertAlive("oversized body")
        # a report just under the limit is fine
        body = plistlib.dumps(d.report_message("Idle", Padding="A" * (1024 * 1024 - 4096)))
        self.assertLessEqual(len(body), 1048576)
        self.assertStatus(d.connect_bytes(body), 200, "a report just under max_body_bytes")

    def test_oversized_chunked_body(self):
        chunk = b"A" * 65536
        pieces = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 20 + [b"0\r\n\r\n"]
        head = (f"PUT /mdm/connect HTTP/1.1\r\nHost: {self.vouchd.host}:{self.vouchd.port}\r\n"
                f"Content-Type: {CONNECT_TYPE}\r\nMdm-Signature: x\r\n"
                f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        status, reply = raw_exchange(self.vouchd.host, self.vouchd.port, head + b"".join(pieces))
        self.assertIsNotNone(status, "no HTTP answer to an oversized chunked body")
        self.assertNotEqual(status, 401)
        self.assertTrue(status in (400, 411, 413), f"oversized chunked body: {reply[:300]!r}")
        self.assertAlive("oversized chunked body")

    def test_wrong_content_type(self):
        d = self.device()
        auth = plistlib.dumps(d.authenticate_message())
        idle = plistlib.dumps(d.report_message("Idle"))
        self.check("check-in as text/plain",
                   d.checkin_bytes(auth, content_type="text/plain"), 415)
        self.check("report as application/json",
                   d.connect_bytes(idle, content_type="application/json"), 415)
        self.check("check-in without Content-Type", d.checkin_bytes(auth, content_type=None), 415)
        self.check("report without Content-Type", d.connect_bytes(idle, content_type=None), 415)
        # (/mdm takes a generic type, application/xml or none, and reads the body:
        # test_nanomdm_paths.py; any other is refused.)
        self.check("PUT /mdm as application/json",
                   d.connect_bytes(idle, path="/mdm", content_type="application/json"), 415)
        self.check("check-in as application/x-apple-aspen-mdm-checkinX",
                   d.checkin_bytes(auth, content_type=CHECKIN_TYPE + "X"), 415)

    def test_broken_answers_leave_the_attestation_request_pending(self):
        d = self.enrolled_device()
        cmd = d.take_attestation_request()
        cu = cmd["CommandUUID"]
        answer = d.report_message("Acknowledged", cu,
                                  QueryResponses=d.attestation_query_responses(cmd))
        good = plistlib.dumps(answer)
        self.check("truncated answer", d.connect_bytes(good[:-40]), 400)
        self.check("answer as application/json",
                   d.connect_bytes(good, content_type="application/json"), 415)
        m = dict(answer, UDID=12345)
        self.check("answer with UDID as integer", d.connect_bytes(plistlib.dumps(m)), 400)
        m = dict(answer, Status="Frobnicated")
        self.check("answer with an unknown Status", d.connect_bytes(plistlib.dumps(m)), 400)
        m = dict(answer, CommandUUID=["not", "a", "string"])
        self.check("answer with CommandUUID as array", d.connect_bytes(plistlib.dumps(m)), 400)
        big = dict(answer, QueryResponses=dict(
            answer["QueryResponses"],
            DevicePropertiesAttestation=[os.urandom(64 * 1024) for _ in range(24)]))
        body = plistlib.dumps(big)
        self.assertGreater(len(body), 1048576)
        sig = mdm_signature(body, d.key, d.cert)
        head = (f"PUT /mdm/connect HTTP/1.1\r\nHost: {self.vouchd.host}:{self.vouchd.port}\r\n"
                f"Content-Type: {CONNECT_TYPE}\r\nMdm-Signature: {sig}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        status, reply = raw_exchange(self.vouchd.host, self.vouchd.port, head + body)
        self.assertEqual(status, 413, f"answer of {len(body)} bytes > max_body_bytes: "
                                      f"{reply[:300]!r}")
        self.assertAlive("oversized answer")

        obj = self.vouchd.device(d.udid).json()
        self.assertIsNotNone(obj["attestation"]["request"],
                         f"broken answers changed the attestation status: {obj}")
        self.assertEqual(self.command_status(d.udid, cu)[0]["status"], "queued")
        again = d.take_attestation_request()
        self.assertEqual(again["CommandUUID"], cu, "the request after broken answers")
        self.assertEmpty200(d.connect_bytes(good), "the good answer")
        self.assertEqual(self.vouchd.device(d.udid).json()["attestation"]["status"],
                         "unsupported")
        self.assertAlive("broken attestation answers")

    def test_unknown_udid_report(self):
        stranger = self.new_device()  # a cert from the trusted CA, never authenticated
        self.check("Idle of an unknown UDID", stranger.idle(), 403)
        self.check("Acknowledged of an unknown UDID",
                   stranger.report("Acknowledged", "4E4D0C2D-3F56-4C4B-9D2B-6A3E1C1F0B11"), 403)

    def test_other_methods(self):
        for method in ("GET", "POST", "DELETE"):
            r = self.vouchd.request(method, "/mdm/connect", body=b"" if method != "GET" else None,
                                    headers={"Content-Type": CONNECT_TYPE})
            self.assertNotEqual(r.status, 401, f"{method} /mdm/connect: {r!r}")
            self.assertTrue(400 <= r.status < 500, f"{method} /mdm/connect: {r!r}")
        r = self.vouchd.request("GET", "/no/such/path")
        self.assertEqual(r.status, 404, r)
        self.assertAlive("other methods")

    def test_garbage_http(self):
        for raw in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200)
                    + b"\r\n\r\n",
                    b"PUT /mdm/connect HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"PUT /mdm/connect HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    b"PUT /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
                    b"PUT /mdm/connect HTTP/1.1\r\n" + b"X-A: b\r\n" * 10000 + b"\r\n"):
            status, _reply = raw_exchange(self.vouchd.host, self.vouchd.port, raw, timeout=10)
            self.assertNotEqual(status, 401, raw[:60])
            self.assertAlive(f"raw garbage {raw[:30]!r}")
