"""The trust API without nginx (issue 19, docs/trust.md): POST /v1/trust/{policy} and
GET /v1/trust/{policy}/nginx against a real vouchd and PostgreSQL, with devices whose verdicts come
from the stand-in Apple PKI and a database clock the tests move.

What must hold:
  * every subject form (certificate PEM, certificate_sha256, udid, serial_number) names the same
    device and gets the same decision; the answer's shape is docs/trust.md's;
  * every reachable reason code, in the documented order, and allow exactly when there is none;
  * valid_until is the earliest of the verdict's expiry, generated_at + max_attestation_age and
    the certificate's notAfter (null for a deny), and Cache-Control follows it (an allow at most
    60 s and never past valid_until; a deny no-store);
  * 400 for a body naming no subject, two, or a bad one; 404 for an unknown policy; 405;
  * a denial is one trust.denied event per subject and policy however often it is repeated;
  * /metrics counts decisions by policy and decision, denials by reason, and their latency;
  * SIGHUP reloads the policies (a broken file keeps the old ones, vouchd keeps running); a bad
    policy line stops vouchd at start naming the file, the line and the key;
  * a trust token may ask trust questions and nothing else; a read token may not ask them.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import unittest

from cryptography.hazmat.primitives import serialization

from device import Device
import pg
from harness import VOUCHD, Vouchd, clean_env, suite, wait_for
from test_cert_header import nginx_escaped
from test_metrics import parse_metrics
from test_scheduler import DEADLINE_S, SchedulerCase, db_clock, set_clock
from test_webhook import Receiver

ANSWER_KEYS = {"decision", "policy", "reasons", "subject", "device", "evaluated_at",
               "valid_until"}
DEVICE_KEYS = {"udid", "serial_number", "model", "product_name", "platform", "os_version",
               "enrolled", "attestation", "identity"}
ATTESTATION_KEYS = {"status", "freshness", "verified_at", "generated_at", "expires_at"}
IDENTITY_KEYS = {"kind", "hardware_bound", "revoked", "current", "not_after"}
# docs/trust.md, in the order reasons are given.
REASON_ORDER = ["not_enrolled", "identity_unknown", "identity_superseded", "identity_revoked",
                "identity_expired", "attestation_missing", "attestation_failed",
                "attestation_expired", "attestation_unsupported", "attestation_not_fresh",
                "attestation_too_old", "os_too_old", "os_unknown", "not_hardware_bound",
                "serial_denied", "serial_not_allowed"]
STRICT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CACHE_MAX_S = 60
EVENT_WAIT_S = 20.0


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def rfc3339(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pem_of(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sha256_of(cert):
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def max_age(response):
    """The max-age of Cache-Control, or None."""
    m = re.search(r"(?:^|[,\s])max-age=(\d+)", response.header("Cache-Control") or "")
    return int(m.group(1)) if m else None


def counter(case, key):
    r = case.vouchd.metrics()
    case.assertStatus(r, 200, "GET /metrics")
    samples, _types = parse_metrics(r.text())
    return samples.get(key, 0)


class TrustCase(SchedulerCase):
    """Asking the trust API, and checking what it answers."""

    token = None  # None: the admin token

    def ask(self, policy, body, token=None, raw=None):
        """POST /v1/trust/{policy}; returns the Response."""
        data = raw if raw is not None else json.dumps(body).encode()
        return self.vouchd.admin("POST", f"/v1/trust/{policy}", body=data,
                                 token=token or self.token or self.vouchd.admin_token,
                                 content_type="application/json")

    def decide(self, policy, what, **subject):
        """The 200 answer to one subject, its shape checked; returns (answer, response)."""
        r = self.ask(policy, subject)
        self.assertStatus(r, 200, f"{what}: POST /v1/trust/{policy}")
        self.assertEqual(r.media_type(), "application/json", f"{what}: {r!r}")
        a = r.json()
        self.assertAnswer(a, policy, subject, what)
        self.assertCacheControl(r, a, what)
        return a, r

    def assertAnswer(self, a, policy, subject, what):
        self.assertEqual(set(a), ANSWER_KEYS, f"{what}: answer keys: {a}")
        self.assertIn(a["decision"], ("allow", "deny"), f"{what}: {a}")
        self.assertEqual(a["policy"], policy, f"{what}: {a}")
        self.assertEqual(a["decision"] == "allow", a["reasons"] == [],
                         f"{what}: allow exactly when there is no reason: {a}")
        self.assertEqual(a["reasons"], sorted(a["reasons"], key=REASON_ORDER.index),
                         f"{what}: reasons out of the documented order: {a['reasons']}")
        self.assertEqual(len(set(a["reasons"])), len(a["reasons"]), f"{what}: {a}")
        [(kind, value)] = subject.items()
        if kind == "certificate":
            kind, value = "certificate_sha256", None
        self.assertEqual(list(a["subject"]), [kind], f"{what}: subject {a['subject']}")
        if value is not None:
            self.assertEqual(a["subject"][kind].lower(), value.lower(), f"{what}: {a}")
        self.assertRegex(a["evaluated_at"], STRICT_TIME, f"{what}: evaluated_at")
        if a["decision"] == "deny":
            self.assertIsNone(a["valid_until"], f"{what}: a deny has no valid_until: {a}")
        elif a["valid_until"] is not None:
            self.assertRegex(a["valid_until"], STRICT_TIME, f"{what}: valid_until")
            self.assertGreater(parse_time(a["valid_until"]), parse_time(a["evaluated_at"]),
                               f"{what}: {a}")
        d = a["device"]
        if d is not None:
            self.assertEqual(set(d), DEVICE_KEYS, f"{what}: device keys: {d}")
            self.assertEqual(set(d["attestation"]), ATTESTATION_KEYS, f"{what}: {d}")
            self.assertEqual(set(d["identity"]), IDENTITY_KEYS, f"{what}: {d}")
            for k in ATTESTATION_KEYS - {"status", "freshness"}:
                if d["attestation"][k] is not None:
                    self.assertRegex(d["attestation"][k], STRICT_TIME, f"{what}: {k}")

    def assertCacheControl(self, r, a, what):
        cc = r.header("Cache-Control")
        if a["decision"] == "deny":
            self.assertEqual(cc, "no-store", f"{what}: Cache-Control of a deny")
            return
        age = max_age(r)
        self.assertIsNotNone(age, f"{what}: an allow's Cache-Control names a max-age: {cc!r}")
        self.assertLessEqual(age, CACHE_MAX_S, f"{what}: {cc!r}")
        if a["valid_until"] is not None:
            left = (parse_time(a["valid_until"]) - parse_time(a["evaluated_at"])).total_seconds()
            self.assertLessEqual(age, max(left, 0), f"{what}: max-age past valid_until: {cc!r}, "
                                                    f"{a}")
            self.assertEqual(age, min(CACHE_MAX_S, int(left)), f"{what}: {cc!r}, {a}")

    def assertDecision(self, policy, subject, decision, reasons, what):
        a, _r = self.decide(policy, what, **subject)
        self.assertEqual((a["decision"], a["reasons"]), (decision, reasons), f"{what}: {a}")
        return a

    def assertDenied(self, policy, dev, reasons, what, by=("certificate_sha256", "udid")):
        """Denied with exactly these reasons, asked by certificate and by UDID."""
        values = {"certificate_sha256": sha256_of(dev.cert), "udid": dev.udid,
                  "serial_number": dev.serial}
        for kind in by:
            self.assertDecision(policy, {kind: values[kind]}, "deny", reasons,
                                f"{what} ({kind})")

    def assertAllowed(self, policy, dev, what):
        return self.assertDecision(policy, {"certificate_sha256": sha256_of(dev.cert)},
                                   "allow", [], what)

    # -- devices ----------------------------------------------------------------------------
    def verified(self, what="verified", **kw):
        dev = self.iphone(**kw)
        self.attest_at_clock(dev, what)
        return dev


# ---------------------------------------------------------------------------------------------
class TrustApiTest(TrustCase):
    """The decisions, their reasons, the answer's shape and the events, at a still clock."""

    @classmethod
    def setUpClass(cls):
        cls.deny_serial = "DENY" + secrets.token_hex(4).upper()
        cls.allow_serial = "ALLW" + secrets.token_hex(4).upper()
        lists = os.path.join(suite().run_dir, f"serials-{secrets.token_hex(4)}")
        os.makedirs(lists)
        deny = os.path.join(lists, "deny.txt")
        allow = os.path.join(lists, "allow.txt")
        with open(deny, "w") as f:
            f.write(f"# lost devices\n{cls.deny_serial}\n\nC02LOSTLOST1\n")
        with open(allow, "w") as f:
            f.write(f"{cls.allow_serial}  \n# nothing else\n")
        cls.receiver = Receiver().start()
        cls.vouchd_config = {
            "attestation_mean_interval": "365d", "attestation_max_age": "30d",
            "webhook_url": cls.receiver.url, "webhook_secret": secrets.token_hex(16),
            "webhook_topics": "trust.denied", "webhook_timeout": "2s",
            "policy.web.require": "verified fresh",
            "policy.web.min_os_version.ios": "17.4",
            "policy.web.min_os_version.ipados": "17.4",
            "policy.web.max_attestation_age": "14d",
            "policy.enrolled.require": "enrolled",
            "policy.lenient.allow_unsupported": "true",
            "policy.young.max_attestation_age": "2m",
            "policy.hw.require": "enrolled",
            "policy.hw.require_hardware_bound_identity": "true",
            "policy.blocklist.deny_serials": deny,
            "policy.allowlist.allow_serials": allow,
            "policy.metered.require": "verified",
            "policy.events.require": "verified",
        }
        try:
            super().setUpClass()
        except BaseException:
            cls.receiver.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.receiver.stop()

    # -- subjects -------------------------------------------------------------------------------
    def test_every_subject_form_names_the_device(self):
        dev = self.verified()
        att = self.attestation(dev.udid)
        forms = {"certificate": pem_of(dev.cert),
                 "certificate_sha256": sha256_of(dev.cert),
                 "certificate_sha256 (upper case)": sha256_of(dev.cert).upper(),
                 "udid": dev.udid, "serial_number": dev.serial}
        answers = {}
        for label, value in forms.items():
            kind = label.split(" ")[0]
            a, r = self.decide("default", label, **{kind: value})
            self.assertEqual((a["decision"], a["reasons"]), ("allow", []), f"{label}: {a}")
            answers[label] = a
            if kind in ("certificate", "certificate_sha256"):
                self.assertEqual(a["subject"], {"certificate_sha256": sha256_of(dev.cert)},
                                 f"{label}: the subject is the certificate's SHA-256, lower case")
        devices = {json.dumps(a["device"], sort_keys=True) for a in answers.values()}
        self.assertEqual(len(devices), 1, f"the forms name different devices: {devices}")
        d = answers["udid"]["device"]
        self.assertEqual((d["udid"], d["serial_number"], d["model"], d["product_name"],
                          d["platform"], d["os_version"], d["enrolled"]),
                         (dev.udid, dev.serial, dev.model, dev.product_name, "iOS",
                          dev.os_version, True), d)
        self.assertEqual(d["attestation"], {
            "status": "verified", "freshness": "fresh", "verified_at": att["verified_at"],
            "generated_at": att["generated_at"], "expires_at": att["expires_at"]}, d)
        self.assertEqual(d["identity"], {
            "kind": "scep", "hardware_bound": False, "revoked": False, "current": True,
            "not_after": rfc3339(dev.cert.not_valid_after.replace(
                tzinfo=datetime.timezone.utc))}, d)
        # valid_until: the verdict's expiry (the certificate lasts a year, the verdict 30 days).
        for label, a in answers.items():
            self.assertEqual(a["valid_until"], att["expires_at"], f"{label}: {a}")
        # The answer is at the database's clock.
        evaluated = parse_time(answers["udid"]["evaluated_at"])
        self.assertLess(abs((evaluated - db_clock(self)).total_seconds()), 10)

    def test_serial_names_the_device_seen_last(self):
        serial = "SHRD" + secrets.token_hex(4).upper()
        first = self.verified("first", serial=serial)
        second = self.iphone(serial=serial)  # enrolled later, no verdict
        a = self.assertDecision("default", {"serial_number": serial}, "deny",
                                ["attestation_missing"], "the newer device of the serial")
        self.assertEqual(a["device"]["udid"], second.udid, a)
        self.assertStatus(first.idle(), 200, "the first device checks in again")
        a = self.assertDecision("default", {"serial_number": serial}, "allow", [],
                                "the device seen last")
        self.assertEqual(a["device"]["udid"], first.udid, a)

    def test_nobody(self):
        stranger = Device(self.vouchd, self.ca)  # a certificate of the device CA, never used
        for subject, reasons in (
                ({"certificate": pem_of(stranger.cert)}, ["identity_unknown"]),
                ({"certificate_sha256": sha256_of(stranger.cert)}, ["identity_unknown"]),
                ({"udid": stranger.udid}, ["not_enrolled"]),
                ({"serial_number": stranger.serial}, ["not_enrolled"])):
            a = self.assertDecision("default", subject, "deny", reasons, f"unknown {subject}")
            self.assertIsNone(a["device"], a)

    # -- reasons -------------------------------------------------------------------------------
    def test_enrollment_reasons(self):
        dev = self.verified()
        # Authenticated, no TokenUpdate yet: known, not enrolled.
        half = self.iphone(enroll=False)
        self.assertEmpty200(half.authenticate(), "Authenticate")
        self.assertDenied("enrolled", half, ["not_enrolled"], "before TokenUpdate")
        self.assertDenied("default", half, ["not_enrolled", "attestation_missing"],
                          "before TokenUpdate")
        # A re-enrolled device: its old certificate is superseded, the new one is fine as far as
        # identity goes (its new enrollment has no verdict yet).
        _old_key, old_cert = dev.new_identity()
        dev.enroll()
        self.assertDecision("enrolled", {"certificate_sha256": sha256_of(old_cert)}, "deny",
                            ["identity_superseded"], "the previous certificate")
        self.assertDecision("enrolled", {"certificate_sha256": sha256_of(dev.cert)}, "allow",
                            [], "the new certificate")
        self.assertDecision("default", {"certificate_sha256": sha256_of(dev.cert)}, "deny",
                            ["attestation_missing"], "the new enrollment, no verdict yet")
        # Checked out: not enrolled, by certificate and by UDID.
        self.assertEmpty200(dev.checkout(), "CheckOut")
        self.assertDenied("enrolled", dev, ["not_enrolled"], "checked out")

    def test_attestation_reasons(self):
        missing = self.iphone()
        self.assertDenied("default", missing, ["attestation_missing"], "no verdict yet")
        self.assertDecision("enrolled", {"udid": missing.udid}, "allow", [],
                            "require = enrolled needs no verdict")

        failed = self.iphone()
        cu, nonce = self.take_request(failed, "failed")
        self.answer(failed, cu, self.chain_for(failed, nonce, serial="C02ZZZZZZZZZ"),
                    what="another serial")
        self.assertVerdict(failed, cu, "failed", "serial_mismatch", "fresh", "failed")
        self.assertDenied("default", failed, ["attestation_failed"], "failed verdict")

        # An iPhone 7 (A10) cannot attest: Apple's list starts at the A11.
        unsupported = self.iphone(model="iPhone9,3", product_name="iPhone9,3",
                                  os_version="15.8")
        cu, _nonce = self.take_request(unsupported, "an iPhone 7")
        self.answer(unsupported, cu, omit_attestation=True, what="no attestation key")
        self.assertVerdict(unsupported, cu, "unsupported", None, None, "unsupported")
        self.assertDenied("default", unsupported, ["attestation_unsupported"], "unsupported")
        self.assertAllowed("lenient", unsupported, "allow_unsupported = true")

        cached = self.iphone()
        generated = db_clock(self).replace(microsecond=0) - datetime.timedelta(minutes=5)
        _cu, _nonce, chain = self.attest_fresh(cached, "fresh", not_before=generated)
        self.assertAllowed("web", cached, "fresh")
        self.post_attest(cached.udid)
        cu, _nonce = self.take_request(cached, "re-check")
        self.answer(cached, cu, chain, what="the cached chain")
        self.assertVerdict(cached, cu, "verified", None, "cached", "cached")
        self.assertDenied("web", cached, ["attestation_not_fresh"], "verified fresh required")
        self.assertAllowed("default", cached, "verified is enough")

        # Apple made the attestation 5 minutes ago; policy young takes 2 minutes at most.
        self.assertDenied("young", self.verified("5 minutes old"), ["attestation_too_old"],
                          "max_attestation_age = 2m")

    def test_os_reasons(self):
        self.assertDenied("web", self.verified("iOS 17.3", os_version="17.3"), ["os_too_old"],
                          "iOS 17.3 under 17.4")
        for version in ("17.4", "17.4.1", "17.10", "18.0"):
            self.assertAllowed("web", self.verified(f"iOS {version}", os_version=version),
                               f"iOS {version}")
        ipad = self.verified("an iPad on 17.2", os_version="17.2", model="iPad13,4",
                             product_name="iPad13,4")
        a = self.assertDecision("web", {"udid": ipad.udid}, "deny", ["os_too_old"], "iPadOS")
        self.assertEqual(a["device"]["platform"], "iPadOS", a)
        # A platform the policy cannot place: os_unknown.
        mac = self.enrolled_device()  # Mac14,2
        a = self.assertDecision("web", {"udid": mac.udid}, "deny",
                                ["attestation_missing", "os_unknown"], "a Mac under web")
        self.assertIsNone(a["device"]["platform"], a)
        # Several reasons at once, in order.
        self.assertDenied("web", self.iphone(os_version="17.0"),
                          ["attestation_missing", "os_too_old"], "no verdict and iOS 17.0")

    def test_identity_and_serial_reasons(self):
        dev = self.verified()
        self.assertDenied("hw", dev, ["not_hardware_bound"], "an identity of the SCEP CA")
        denied = self.verified("denied serial", serial=self.deny_serial)
        self.assertDenied("blocklist", denied, ["serial_denied"], "in deny_serials",
                          by=("certificate_sha256", "udid", "serial_number"))
        self.assertAllowed("blocklist", dev, "not in deny_serials")
        allowed = self.verified("allowed serial", serial=self.allow_serial)
        self.assertAllowed("allowlist", allowed, "in allow_serials")
        self.assertDenied("allowlist", dev, ["serial_not_allowed"], "not in allow_serials")

    def test_valid_until(self):
        dev = self.verified()
        att = self.attestation(dev.udid)
        a = self.assertAllowed("default", dev, "default")
        self.assertEqual(a["valid_until"], att["expires_at"], "the verdict's expiry")
        # web: Apple's generation time + 14 days comes before the verdict's 30-day expiry.
        a = self.assertAllowed("web", dev, "web")
        self.assertEqual(a["valid_until"],
                         rfc3339(parse_time(att["generated_at"]) + datetime.timedelta(days=14)),
                         f"generated_at + max_attestation_age: {a}")
        # require = enrolled: only the certificate's notAfter bounds it.
        a = self.assertAllowed("enrolled", dev, "enrolled")
        self.assertEqual(a["valid_until"], a["device"]["identity"]["not_after"], a)

    # -- the nginx form -----------------------------------------------------------------------
    def nginx(self, policy, cert_value=None, headers=None):
        h = {"Authorization": f"Bearer {self.vouchd.admin_token}"}
        if cert_value is not None:
            h["Vouch-Client-Cert"] = cert_value
        h.update(headers or {})
        return self.vouchd.request("GET", f"/v1/trust/{policy}/nginx", headers=h)

    def test_nginx_form(self):
        dev = self.verified()
        der = dev.cert.public_bytes(serialization.Encoding.DER)
        for label, value in (("nginx escaped PEM", nginx_escaped(dev.cert)),
                             ("RFC 9440", ":" + base64.b64encode(der).decode() + ":")):
            r = self.nginx("default", value)
            self.assertStatus(r, 204, label)
            self.assertEqual(r.body, b"", label)
            self.assertEqual((r.header("Vouch-Decision"), r.header("Vouch-Policy"),
                              r.header("Vouch-Device-Serial"), r.header("Vouch-Device-UDID"),
                              r.header("Vouch-Reasons")),
                             ("allow", "default", dev.serial, dev.udid, None),
                             f"{label}: {r.headers}")
            self.assertEqual(max_age(r), CACHE_MAX_S, f"{label}: {r.headers}")
        r = self.nginx("web", nginx_escaped(self.verified("17.3", os_version="17.3").cert))
        self.assertStatus(r, 403, "os too old")
        self.assertEqual((r.header("Vouch-Decision"), r.header("Vouch-Reasons"),
                          r.header("Cache-Control")), ("deny", "os_too_old", "no-store"),
                         r.headers)
        r = self.nginx("default", nginx_escaped(self.iphone(os_version="17.0").cert))
        self.assertEqual(r.header("Vouch-Reasons"), "attestation_missing", r.headers)
        # No certificate, or one that does not parse: nobody vouchd knows.
        for label, value in (("no Vouch-Client-Cert", None), ("garbage", "not%20a%20cert"),
                             ("empty", "")):
            r = self.nginx("default", value)
            self.assertStatus(r, 403, label)
            self.assertEqual(r.header("Vouch-Reasons"), "identity_unknown", f"{label}: {r.headers}")
            self.assertIsNone(r.header("Vouch-Device-Serial"), label)
        # The wrong methods, an unknown policy.
        self.assertStatus(self.vouchd.admin("POST", "/v1/trust/default/nginx", body=b"{}"), 405,
                          "POST .../nginx")
        self.assertStatus(self.nginx("nosuchpolicy", nginx_escaped(dev.cert)), 404,
                          "unknown policy, nginx form")

    def test_nginx_form_refuses_two_certificates(self):
        dev = self.verified()
        import http.client
        conn = http.client.HTTPConnection(self.vouchd.host, self.vouchd.port, timeout=30)
        try:
            conn.putrequest("GET", "/v1/trust/default/nginx")
            conn.putheader("Authorization", f"Bearer {self.vouchd.admin_token}")
            conn.putheader("Vouch-Client-Cert", nginx_escaped(dev.cert))
            conn.putheader("Vouch-Client-Cert", nginx_escaped(self.iphone().cert))
            conn.endheaders()
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 400, "two Vouch-Client-Cert headers")
        finally:
            conn.close()

    # -- refusals ------------------------------------------------------------------------------
    def test_bad_questions(self):
        dev = self.verified()
        h = sha256_of(dev.cert)
        cases = [
            ("no subject", b"{}"),
            ("two subjects", json.dumps({"udid": dev.udid, "serial_number": dev.serial})),
            ("certificate and its sha256", json.dumps({"certificate": pem_of(dev.cert),
                                                        "certificate_sha256": h})),
            ("bad hex", json.dumps({"certificate_sha256": "zz" + h[2:]})),
            ("63 hex digits", json.dumps({"certificate_sha256": h[:-1]})),
            ("65 hex digits", json.dumps({"certificate_sha256": h + "0"})),
            ("not PEM", json.dumps({"certificate": "MIIB...not a certificate"})),
            ("a number", json.dumps({"udid": 42})),
            ("null", json.dumps({"udid": None})),
            ("empty udid", json.dumps({"udid": ""})),
            ("a 129-character serial", json.dumps({"serial_number": "S" * 129})),
            ("a UDID with a space", json.dumps({"udid": "A B"})),
            ("not JSON", b"udid=1"),
            ("a JSON array", json.dumps([{"udid": dev.udid}])),
            ("no body", b""),
        ]
        for what, body in cases:
            with self.subTest(what):
                r = self.ask("default", None, raw=body.encode() if isinstance(body, str)
                             else body)
                self.assertStatus(r, 400, what)
                self.assertEqual(r.media_type(), "application/json", f"{what}: {r!r}")
                self.assertIn("error", r.json(), f"{what}: {r!r}")
        # Unknown policies and paths.
        for path in ("/v1/trust/nosuchpolicy", "/v1/trust/default/other",
                     "/v1/trust/default/nginx/more"):
            r = self.vouchd.admin("POST", path, body=json.dumps({"udid": dev.udid}),
                                  content_type="application/json")
            self.assertStatus(r, 404, f"POST {path}")
        for method in ("GET", "PUT", "DELETE"):
            r = self.vouchd.admin(method, "/v1/trust/default")
            self.assertStatus(r, 405, f"{method} /v1/trust/default")
        # Without a token, or with a wrong one.
        self.assertStatus(self.ask("default", {"udid": dev.udid}, token="x" * 48), 401,
                          "a wrong token")
        r = self.vouchd.request("POST", "/v1/trust/default", body=json.dumps({"udid": dev.udid}),
                                headers={"Content-Type": "application/json"})
        self.assertStatus(r, 401, "no token")
        self.assertAlive("after the bad questions")

    # -- events --------------------------------------------------------------------------------
    def denied_events(self, **fields):
        out = []
        with self.receiver.lock:
            records = list(self.receiver.records)
        for _headers, body, status in records:
            event = json.loads(body)
            if event.get("topic") == "trust.denied" and \
                    all(event.get(k) == v for k, v in fields.items()):
                out.append(event)
        return out

    def test_denials_are_events_once_per_subject_and_policy(self):
        dev = self.iphone()  # no verdict: denied
        for _ in range(3):
            self.assertDenied("events", dev, ["attestation_missing"], "denied again",
                              by=("udid",))
        [event] = wait_for(lambda: self.denied_events(udid=dev.udid), EVENT_WAIT_S,
                           what="a trust.denied event")
        self.assertEqual((event["policy"], event["reasons"], event["subject"],
                          event["serial_number"]),
                         ("events", ["attestation_missing"], {"udid": dev.udid}, dev.serial),
                         event)
        # By certificate it is another subject; under another policy another question.
        self.assertDenied("events", dev, ["attestation_missing"], "by certificate",
                          by=("certificate_sha256",))
        self.assertDenied("events", dev, ["attestation_missing"], "by certificate again",
                          by=("certificate_sha256",))
        self.assertDenied("metered", dev, ["attestation_missing"], "another policy",
                          by=("udid",))
        wait_for(lambda: len(self.denied_events(udid=dev.udid)) == 3, EVENT_WAIT_S,
                 what="three trust.denied events in all")
        time.sleep(1.0)  # and no more arrive
        events = self.denied_events(udid=dev.udid)
        self.assertEqual(sorted((e["policy"], list(e["subject"])[0]) for e in events),
                         [("events", "certificate_sha256"), ("events", "udid"),
                          ("metered", "udid")], events)
        # GET /v1/events lists them, delivered.
        def listed():
            r = self.vouchd.admin("GET", "/v1/events?limit=500")
            self.assertStatus(r, 200, "GET /v1/events")
            return [x for x in r.json() if x["topic"] == "trust.denied" and
                    x["udid"] == dev.udid and x["status"] == "delivered"]
        wait_for(lambda: len(listed()) == 3, EVENT_WAIT_S, what="GET /v1/events: 3 delivered")
        # A certificate nobody knows: an event without a device.
        stranger = Device(self.vouchd, self.ca)
        self.assertDecision("events", {"certificate_sha256": sha256_of(stranger.cert)},
                            "deny", ["identity_unknown"], "unknown certificate")
        [event] = wait_for(lambda: self.denied_events(
            subject={"certificate_sha256": sha256_of(stranger.cert)}), EVENT_WAIT_S,
            what="the unknown certificate's trust.denied event")
        self.assertEqual((event["udid"], event["serial_number"], event["reasons"]),
                         (None, None, ["identity_unknown"]), event)

    # -- metrics --------------------------------------------------------------------------------
    def test_metrics(self):
        allowed = self.verified()
        missing = self.iphone(os_version="17.0")
        def key(name, **labels):
            return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        allow = key("vouch_trust_decisions_total", policy="metered", decision="allow")
        deny = key("vouch_trust_decisions_total", policy="metered", decision="deny")
        reason = key("vouch_trust_denials_total", policy="metered", reason="attestation_missing")
        before = {k: counter(self, k) for k in (allow, deny, reason,
                                                 "vouch_trust_decision_seconds_count")}
        for _ in range(3):
            self.assertAllowed("metered", allowed, "allowed")
        for _ in range(2):
            self.assertDenied("metered", missing, ["attestation_missing"], "denied",
                              by=("udid",))
        r = self.vouchd.metrics()
        samples, types = parse_metrics(r.text())
        self.assertEqual(types.get("vouch_trust_decisions_total"), "counter", types)
        self.assertEqual(types.get("vouch_trust_denials_total"), "counter", types)
        self.assertEqual(types.get("vouch_trust_decision_seconds"), "histogram", types)
        self.assertEqual(samples.get(allow, 0) - before[allow], 3, allow)
        self.assertEqual(samples.get(deny, 0) - before[deny], 2, deny)
        self.assertEqual(samples.get(reason, 0) - before[reason], 2, reason)
        self.assertGreaterEqual(samples["vouch_trust_decision_seconds_count"]
                                - before["vouch_trust_decision_seconds_count"], 5)
        bucket_re = re.compile(r'^vouch_trust_decision_seconds_bucket\{le="([^"]+)"\}$')
        buckets = sorted((float(m.group(1)), v) for k, v in samples.items()
                         for m in [bucket_re.match(k)] if m)
        self.assertGreater(len(buckets), 2, samples)
        counts = [v for _le, v in buckets]
        self.assertEqual(counts, sorted(counts), f"buckets are cumulative: {buckets}")
        self.assertEqual(buckets[-1], (float("inf"), samples["vouch_trust_decision_seconds_count"]))
        self.assertGreater(samples["vouch_trust_decision_seconds_sum"], 0)


# ---------------------------------------------------------------------------------------------
class TrustClockTest(TrustCase):
    """valid_until and Cache-Control as the database's clock runs on, to the verdict's expiry."""

    vouchd_config = {"attestation_mean_interval": "365d", "attestation_max_age": "30d",
                     "policy.fortnight.max_attestation_age": "14d"}

    def tick_marked_expired(self, udid):
        """The scheduler's tick wrote 'expired' into the device's row (the device object reads
        expired from the time alone, before that)."""
        return self.psql(f"SELECT attestation_status FROM devices WHERE udid = '{udid}'").strip() \
            == "expired"

    def test_verdict_runs_out(self):
        dev = self.verified()
        att = self.attestation(dev.udid)
        expires = parse_time(att["expires_at"])
        fortnight = parse_time(att["generated_at"]) + datetime.timedelta(days=14)
        a = self.assertAllowed("fortnight", dev, "fortnight")
        self.assertEqual(a["valid_until"], rfc3339(fortnight), a)
        # 30 s before the age limit: an allow for 30 s at most.
        set_clock(self, fortnight - datetime.timedelta(seconds=30))
        a, r = self.decide("fortnight", "30 s before", certificate_sha256=sha256_of(dev.cert))
        self.assertEqual(a["decision"], "allow", a)
        self.assertLessEqual(max_age(r), 30, r.headers)
        self.assertGreaterEqual(max_age(r), 20, r.headers)
        set_clock(self, fortnight + datetime.timedelta(seconds=1))
        self.assertDenied("fortnight", dev, ["attestation_too_old"], "past 14 days")
        a = self.assertAllowed("default", dev, "the verdict still holds")
        self.assertEqual(a["valid_until"], att["expires_at"], a)
        # Past the verdict's expiry, before and after a tick marks it expired.
        # The answer's device says expired at once, as its reason does, tick or no tick.
        set_clock(self, expires + datetime.timedelta(seconds=1))
        self.assertDenied("default", dev, ["attestation_expired"], "past expires_at")
        a = self.assertDecision("default", {"udid": dev.udid}, "deny", ["attestation_expired"],
                                "past expires_at, maybe before the tick")
        self.assertEqual(a["device"]["attestation"]["status"], "expired", a)
        wait_for(lambda: self.tick_marked_expired(dev.udid), DEADLINE_S,
                 what="the tick marked the verdict expired")
        a = self.assertDecision("default", {"udid": dev.udid}, "deny", ["attestation_expired"],
                                "marked expired")
        self.assertEqual(a["device"]["attestation"]["status"], "expired", a)


class TrustIdentityExpiryTest(TrustCase):
    """A certificate whose notAfter comes before the verdict's expiry bounds valid_until, and
    once past it the identity is expired."""

    vouchd_config = {"attestation_mean_interval": "365d", "attestation_max_age": "30d"}

    def test_certificate_runs_out(self):
        dev = self.new_device(os_version="17.4", model="iPhone15,2", product_name="iPhone15,2",
                              build_version="21E219")
        dev.key, dev.cert = self.ca.issue(f"short-lived {dev.udid}", days=2)
        dev.enroll()
        self.attest_at_clock(dev, "verified")
        not_after = dev.cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        a = self.assertAllowed("default", dev, "a certificate of two days")
        self.assertEqual(a["valid_until"], rfc3339(not_after), a)
        set_clock(self, not_after + datetime.timedelta(seconds=1))
        a = self.assertDecision("default", {"udid": dev.udid}, "deny", ["identity_expired"],
                                "past the certificate's notAfter")


# ---------------------------------------------------------------------------------------------
class TrustReloadTest(TrustCase):
    """SIGHUP rereads the policies; a broken file keeps the ones in force."""

    vouchd_config = {"policy.alpha.require": "enrolled"}

    def hup(self, policies, what):
        """Rewrites the configuration file with these policy lines (and the class's other
        keys), sends SIGHUP, and returns what vouchd logged about it."""
        mark = self.vouchd.log_size()
        base = {k: v for k, v in type(self).vouchd_config.items() if not k.startswith("policy.")}
        self.vouchd.extra = dict(base, **policies)
        self.vouchd.write_config()
        self.vouchd.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP" in self.vouchd.log_tail(50, since=mark), DEADLINE_S,
                 what=f"{what}: vouchd's log line about the reload")
        return self.vouchd.log_tail(50, since=mark)

    def test_sighup(self):
        dev = self.iphone()  # enrolled, no verdict
        self.assertAllowed("alpha", dev, "alpha: require enrolled")
        self.assertStatus(self.ask("beta", {"udid": dev.udid}), 404, "beta before the reload")
        good = {"policy.alpha.require": "enrolled",
                "policy.alpha.require_hardware_bound_identity": "true",
                "policy.beta.require": "verified"}
        try:
            log = self.hup(good, "new policies")
            self.assertNotIn("keeping the current", log, log)
            self.assertDenied("beta", dev, ["attestation_missing"], "beta after the reload")
            self.assertDenied("alpha", dev, ["not_hardware_bound"], "alpha changed")

            for label, bad, key in (
                    ("a bad value", {"policy.beta.require": "sometimes"}, "policy.beta.require"),
                    ("an unknown key", {"policy.beta.colour": "blue"}, "policy.beta.colour"),
                    ("a missing serial list", {"policy.beta.deny_serials": "/nonexistent/list"},
                     "/nonexistent/list")):
                log = self.hup(dict(good, **bad), label)
                self.assertIn("keeping the current trust policies", log, f"{label}: {log}")
                self.assertIn(key, log, f"{label}: the log names it: {log}")
                self.assertTrue(self.vouchd.alive(), f"{label}: vouchd stopped")
                self.assertDenied("beta", dev, ["attestation_missing"], f"{label}: beta still")
                self.assertDenied("alpha", dev, ["not_hardware_bound"], f"{label}: alpha still")
            # A policy taken out is gone; the default always exists.
            log = self.hup({"policy.alpha.require": "enrolled"}, "beta removed")
            self.assertNotIn("keeping the current", log, log)
            self.assertStatus(self.ask("beta", {"udid": dev.udid}), 404, "beta after its removal")
            self.assertAllowed("alpha", dev, "alpha as it was")
            self.assertDenied("default", dev, ["attestation_missing"], "default")
            self.assertAlive("after the reloads")
        finally:
            self.vouchd.extra = dict(type(self).vouchd_config)
            self.vouchd.write_config()


class TrustConfigRefusalTest(unittest.TestCase):
    """A bad policy line stops vouchd at start, naming the file, the line and the key."""

    def test_bad_policy_lines(self):
        cluster = suite().postgres()
        dbname = suite().new_database("trust_refusals", cluster)
        serials = os.path.join(suite().run_dir, f"serials-{secrets.token_hex(4)}.txt")
        with open(serials, "w") as f:
            f.write("C02OK0000001\n" + "bad serial with spaces " * 5 + "\n")
        cases = [
            ("require = sometimes", {"policy.web.require": "sometimes"}, "policy.web.require"),
            ("unknown key", {"policy.web.colour": "blue"}, "policy.web.colour"),
            ("bad duration", {"policy.web.max_attestation_age": "soon"},
             "policy.web.max_attestation_age"),
            ("bad version", {"policy.web.min_os_version.ios": "seventeen"},
             "policy.web.min_os_version.ios"),
            ("unknown platform", {"policy.web.min_os_version.watchos": "10"},
             "policy.web.min_os_version.watchos"),
            ("bad boolean", {"policy.web.require_hardware_bound_identity": "maybe"},
             "policy.web.require_hardware_bound_identity"),
            ("bad name", {"policy.we!b.require": "verified"}, "policy.we!b.require"),
            ("name too long", {f"policy.{'n' * 33}.require": "verified"},
             f"policy.{'n' * 33}.require"),
            ("no key", {"policy.web": "verified"}, "policy.web"),
        ]
        # A serial list that cannot be read, or has a bad line: the list file is named (and the
        # line of a bad serial in it).
        lists = [
            ("missing serial list", {"policy.web.deny_serials": "/nonexistent/serials.txt"},
             "/nonexistent/serials.txt", None),
            ("a bad serial in the list", {"policy.web.allow_serials": serials}, serials, 2),
        ]
        problems = []
        for i, (what, extra, key, line) in enumerate([c + (0,) for c in cases] + lists):
            v = Vouchd(cluster.conninfo(dbname), suite().identity_ca_path(),
                       name=f"trust-refuse-{i}", extra=dict(extra, test_clock="true"))
            v.port = pg.free_port()
            v.write_config()
            with open(v.config_path) as f:
                lines = f.read().splitlines()
            if line == 0:  # the line of the configuration file
                line = next(n for n, text in enumerate(lines, 1) if text.startswith(
                    list(extra)[0] + " "))
                file = v.config_path
            else:
                file = key
            p = subprocess.run([VOUCHD, "--config", v.config_path], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30, env=clean_env())
            message = p.stderr
            try:
                self.assertEqual(p.returncode, 1, f"{what}: exit status\n{message}")
                self.assertIn(key, message, f"{what}: the key\n{message}")
                self.assertIn(file, message, f"{what}: the file\n{message}")
                if line is not None:
                    self.assertRegex(message, rf"\bline {line}\b",
                                     f"{what}: line {line}\n{message}")
            except AssertionError as exc:
                problems.append(str(exc))
        if problems:
            self.fail(f"{len(problems)} of {len(cases)} bad policy lines were not refused "
                      "properly:\n\n" + "\n\n".join(problems))


# ---------------------------------------------------------------------------------------------
class TrustScopeTest(TrustCase):
    """Tokens and scopes: trust may ask trust questions only; read may not ask them."""

    def new_token(self, name, scope):
        r = self.vouchd.admin("POST", "/v1/tokens", body=json.dumps({"name": name,
                                                                     "scope": scope}),
                              content_type="application/json")
        self.assertStatus(r, (200, 201), f"POST /v1/tokens {name} {scope}")
        return r.json()["token"]

    def test_scopes(self):
        dev = self.iphone()
        trust = self.new_token("gate-" + secrets.token_hex(3), "trust")
        read = self.new_token("reader-" + secrets.token_hex(3), "read")
        admin = self.new_token("ops-" + secrets.token_hex(3), "admin")
        for token, label in ((trust, "trust"), (admin, "admin"),
                             (self.vouchd.admin_token, "admin_token")):
            r = self.ask("default", {"udid": dev.udid}, token=token)
            self.assertStatus(r, 200, f"{label} token: POST /v1/trust/default")
            r = self.vouchd.request("GET", "/v1/trust/default/nginx", headers={
                "Authorization": f"Bearer {token}", "Vouch-Client-Cert": nginx_escaped(dev.cert)})
            self.assertStatus(r, 403, f"{label} token: GET .../nginx (a deny, not a refusal)")
            self.assertEqual(r.header("Vouch-Decision"), "deny", f"{label}: {r.headers}")
        r = self.ask("default", {"udid": dev.udid}, token=read)
        self.assertStatus(r, 403, "read token: POST /v1/trust/default")
        self.assertIsNone(r.header("Vouch-Decision"), "a refusal is not a decision")
        r = self.vouchd.request("GET", "/v1/trust/default/nginx", headers={
            "Authorization": f"Bearer {read}", "Vouch-Client-Cert": nginx_escaped(dev.cert)})
        self.assertStatus(r, 403, "read token: GET .../nginx")
        self.assertIsNone(r.header("Vouch-Decision"), "a refusal is not a decision")
        # The trust token can do nothing else.
        for method, path, body in (("GET", "/v1/devices", None),
                                   ("GET", f"/v1/devices/{dev.udid}", None),
                                   ("GET", "/v1/events", None),
                                   ("GET", "/v1/tokens", None),
                                   ("POST", f"/v1/devices/{dev.udid}/attest", b""),
                                   ("PUT", f"/v1/enqueue/{dev.udid}",
                                    b'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0">'
                                    b"<dict><key>Command</key><dict><key>RequestType</key>"
                                    b"<string>DeviceInformation</string></dict></dict></plist>"),
                                   ("POST", "/v1/tokens",
                                    json.dumps({"name": "escalate", "scope": "admin"}).encode())):
            r = self.vouchd.admin(method, path, body=body, token=trust)
            self.assertStatus(r, 403, f"trust token: {method} {path}")
        self.assertStatus(self.vouchd.admin("GET", "/v1/devices", token=read), 200,
                          "read token: GET /v1/devices")
