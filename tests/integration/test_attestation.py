"""Managed Device Attestation end to end: vouchd asks for an attestation by itself after enrollment
(and on POST .../attest), the independent device client (device.py) answers with a chain from a
stand-in Apple PKI (fake_apple.py, trusted through attestation_roots), and the admin API shows the
verdict, its reason, freshness, properties and history.

Contract: docs/attestation.md (the request, the verdict, the reason codes) and docs/api.md (the
device object, POST /v1/devices/{udid}/attest, POST /v1/attest and
GET /v1/devices/{udid}/attestations).
"""

import datetime
import hashlib
import json
import os
import re
import secrets

import fake_apple
from fake_apple import AttestationPKI, der, not_after, not_before, rfc3339, sha256_hex
from harness import VouchTestCase, suite, wait_for

REQUIRED_QUERIES = {"DevicePropertiesAttestation", "UDID", "SerialNumber", "OSVersion",
                    "BuildVersion", "ProductName", "Model", "SoftwareUpdateDeviceID"}
# The last verdict; a pending request is shown beside it (attestation.request).
STATUSES = {"verified", "failed", "none", "unsupported", "expired"}
FRESHNESS = {"fresh", "cached", "unknown", None}
REASONS = {None, "malformed", "untrusted_chain", "nonce_mismatch", "nonce_missing",
           "udid_mismatch", "serial_mismatch", "os_version_mismatch", "stale_attestation",
           "attestation_withheld", "no_answer"}
ATTESTATION_KEYS = {"status", "freshness", "reason", "verified_at", "expires_at", "requested_at",
                    "received_at", "generated_at", "leaf_expires_at", "next_due_at", "request",
                    "properties"}
PROPERTY_KEYS = {"serial_number", "udid", "os_version", "sepos_version", "llb_version",
                 "software_update_device_id", "sip_enabled", "secure_boot",
                 "third_party_kexts_allowed"}
HISTORY_KEYS = {"id", "generation", "command_uuid", "request_reason", "requested_at",
                "received_at", "status", "freshness", "reason", "nonce", "cached_nonce",
                "generated_at", "expires_at", "properties", "leaf_sha256"}
UUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                     r"[0-9A-Fa-f]{12}$")
STRICT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
VERDICT_TIMEOUT = 15.0

IPHONE = dict(model="iPhone15,2", product_name="iPhone15,2", build_version="21E219")
SUDID = "D73AP"  # SoftwareUpdateDeviceID our iPhones report
LEAF_DEFAULTS = dict(sepos_version="17.4", llb_version="iBoot-10151.101.3",
                     software_update_device_id=SUDID)


def parse_time(value):
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


class AttestationCase(VouchTestCase):
    """vouchd trusting a stand-in Apple root; helpers to take and answer attestation requests."""

    seen_nonces = None

    @classmethod
    def setUpClass(cls):
        cls.pki = AttestationPKI()
        cls.other_pki = AttestationPKI()  # same names, other keys: "another root"
        # Also trusted: a second root (the file may hold several), a root whose sub CA has
        # expired, and a root whose "sub CA" is not a CA.
        cls.second_pki = AttestationPKI()
        now = fake_apple.utcnow()
        cls.expired_sub_pki = AttestationPKI(sub_not_before=now - datetime.timedelta(days=400),
                                             sub_days=300)
        cls.not_ca_pki = AttestationPKI(sub_is_ca=False)
        path = os.path.join(suite().run_dir, f"attestation-roots-{secrets.token_hex(4)}.pem")
        cls.pki.write_roots(path, cls.second_pki, cls.expired_sub_pki, cls.not_ca_pki)
        cls.roots_path = path
        # 1,000-certificate answers are about 1 MB: room for them, so that the count bound of
        # the verifier is what is tested, not the HTTP body limit.
        cls.vouchd_config = dict(cls.vouchd_config, attestation_roots=path,
                                 max_body_bytes=str(16 << 20))
        cls.seen_nonces = {}
        super().setUpClass()

    # -- devices ------------------------------------------------------------------------------
    def iphone(self, os_version="17.4", enroll=True, **kw):
        opts = dict(IPHONE)
        opts.update(kw)
        dev = self.new_device(os_version=os_version, **opts)
        return dev.enroll() if enroll else dev

    # -- admin API ----------------------------------------------------------------------------
    def device_obj(self, udid):
        r = self.vouchd.device(udid)
        self.assertStatus(r, 200, f"GET /v1/devices/{udid}")
        return r.json()

    def attestation(self, udid):
        att = self.device_obj(udid).get("attestation")
        self.assertAttestationBlock(att, f"device {udid}")
        return att

    def history(self, udid):
        r = self.vouchd.admin("GET", f"/v1/devices/{udid}/attestations")
        self.assertStatus(r, 200, f"GET /v1/devices/{udid}/attestations")
        self.assertEqual(r.media_type(), "application/json", repr(r))
        hist = r.json()
        self.assertIsInstance(hist, list, f"attestation history is not a JSON array: {hist!r}")
        for entry in hist:
            self.assertHistoryEntry(entry, f"history of {udid}")
        return hist

    def post_attest(self, udid):
        r = self.vouchd.admin("POST", f"/v1/devices/{udid}/attest", body=b"")
        self.assertStatus(r, 200, f"POST /v1/devices/{udid}/attest")
        self.assertEqual(r.media_type(), "application/json", repr(r))
        body = r.json()
        self.assertEqual(body.get("udid"), udid, f"POST attest: {body}")
        self.assertIsInstance(body.get("command_uuid"), str, f"POST attest: {body}")
        self.assertRegex(body["command_uuid"], UUID_RE, "POST attest: command_uuid")
        self.assertIsInstance(body.get("queued"), bool, f"POST attest: {body}")
        return body

    def pending_requests(self, udid):
        return [c for c in self.vouchd.commands(udid)
                if c.get("request_type") == "DeviceInformation" and c.get("status") == "queued"]

    def listed(self, status):
        """The devices ?attestation=STATUS lists: those whose last verdict is STATUS, or, for
        'pending', those with a request out."""
        r = self.vouchd.admin("GET", f"/v1/devices?attestation={status}&limit=1000")
        self.assertStatus(r, 200, f"GET /v1/devices?attestation={status}")
        items = r.json()
        self.assertIsInstance(items, list, repr(r))
        for obj in items:
            att = obj.get("attestation", {})
            if status == "pending":
                self.assertIsNotNone(att.get("request"),
                                     f"?attestation=pending lists a device with none out: {obj}")
            else:
                self.assertEqual(att.get("status"), status,
                                 f"?attestation={status} lists a device with another status: "
                                 f"{obj}")
        return {obj["udid"] for obj in items}

    def assertPending(self, udid, what=""):
        """A request is out for the device, shown beside its last verdict; returns it."""
        request = self.attestation(udid)["request"]
        self.assertIsInstance(request, dict, f"{what}: no pending request shown")
        self.assertEqual(request["state"], "pending", f"{what}: {request}")
        self.assertRFC3339(request["requested_at"], f"{what}: request.requested_at")
        return request

    # -- the exchange -------------------------------------------------------------------------
    def assertAttestationRequest(self, cmd, what=""):
        """cmd is an attestation request; returns its nonce (and checks it was never seen)."""
        c = cmd["Command"]
        self.assertEqual(c.get("RequestType"), "DeviceInformation", f"{what}: {cmd}")
        queries = c.get("Queries")
        self.assertIsInstance(queries, list, f"{what}: Queries: {cmd}")
        for q in queries:
            self.assertIsInstance(q, str, f"{what}: a query that is not a string: {queries}")
        self.assertEqual(len(queries), len(set(queries)), f"{what}: repeated queries: {queries}")
        self.assertEqual(REQUIRED_QUERIES - set(queries), set(),
                         f"{what}: missing queries in {queries}")
        nonce = c.get("DeviceAttestationNonce")
        self.assertIsInstance(nonce, bytes,
                              f"{what}: DeviceAttestationNonce is not <data>: {nonce!r}")
        self.assertEqual(len(nonce), 32, f"{what}: nonce of {len(nonce)} bytes")
        self.assertNotIn(nonce, type(self).seen_nonces,
                         f"{what}: nonce reused (first sent in "
                         f"{type(self).seen_nonces.get(nonce)})")
        type(self).seen_nonces[nonce] = cmd["CommandUUID"]
        return nonce

    def take_request(self, dev, what="attestation request"):
        """The device's next Idle must hand out an attestation request: (command_uuid, nonce)."""
        cmd = self.assertCommand(dev.idle(), what=f"{what}: Idle")
        nonce = self.assertAttestationRequest(cmd, what)
        return cmd["CommandUUID"], nonce

    def chain_for(self, dev, nonce, pki=None, **leaf):
        """[leaf DER, sub CA DER] that is right in every way for dev and this nonce."""
        opts = dict(LEAF_DEFAULTS, nonce=nonce, serial=dev.serial, udid=dev.udid,
                    os_version=dev.os_version)
        opts.update(leaf)
        return (pki or self.pki).chain(**opts)

    def query_responses(self, dev, attestation=None, omit_attestation=False, **overrides):
        qr = {"UDID": dev.udid, "SerialNumber": dev.serial, "OSVersion": dev.os_version,
              "BuildVersion": dev.build_version, "ProductName": dev.product_name,
              "Model": dev.model, "SoftwareUpdateDeviceID": SUDID}
        qr.update(overrides)
        if not omit_attestation:
            qr["DevicePropertiesAttestation"] = attestation
        return qr

    def answer(self, dev, command_uuid, attestation=None, omit_attestation=False, what="",
               **overrides):
        """Acknowledged with QueryResponses; the reply must be 200 with nothing more to do."""
        qr = self.query_responses(dev, attestation, omit_attestation, **overrides)
        r = dev.report("Acknowledged", command_uuid, QueryResponses=qr)
        self.assertEmpty200(r, f"{what}: reply to the attestation answer")
        return r

    def verdict(self, dev, command_uuid, what=""):
        """(attestation block, history entry) once the answer to command_uuid is recorded."""
        def entries():
            return [e for e in self.history(dev.udid) if e.get("command_uuid") == command_uuid]
        found = wait_for(entries, timeout=VERDICT_TIMEOUT,
                         what=f"{what}: a history entry for {command_uuid}")
        self.assertEqual(len(found), 1, f"{what}: {len(found)} history entries for one answer: "
                                        f"{found}")
        return self.attestation(dev.udid), found[0]

    def assertVerdict(self, dev, command_uuid, status, reason=None, freshness=None, what=""):
        att, entry = self.verdict(dev, command_uuid, what)
        for name, obj in (("device object", att), ("history entry", entry)):
            got = (obj["status"], obj["reason"], obj["freshness"])
            if isinstance(freshness, (set, tuple)):
                ok = obj["freshness"] in freshness
                want_f = f"one of {sorted(map(str, freshness))}"
            else:
                ok = obj["freshness"] == freshness
                want_f = repr(freshness)
            self.assertTrue(obj["status"] == status and obj["reason"] == reason and ok,
                            f"{what}: {name}: expected status {status!r}, reason {reason!r}, "
                            f"freshness {want_f}; got {got}\n{obj}")
        self.assertRFC3339(att["received_at"], f"{what}: received_at")
        self.assertEqual(att["received_at"], entry["received_at"], f"{what}: received_at")
        return att, entry

    def assertAttestationBlock(self, att, what=""):
        self.assertIsInstance(att, dict, f"{what}: attestation block {att!r}")
        self.assertEqual(ATTESTATION_KEYS - set(att), set(), f"{what}: attestation keys {att}")
        self.assertIn(att["status"], STATUSES, f"{what}: {att}")
        self.assertIn(att["freshness"], FRESHNESS, f"{what}: {att}")
        self.assertIn(att["reason"], REASONS, f"{what}: {att}")
        if att["reason"] is not None:
            self.assertEqual(att["status"], "failed", f"{what}: a reason without failed: {att}")
        if att["status"] == "failed":
            self.assertIsNotNone(att["reason"], f"{what}: failed without a reason: {att}")
        if att["status"] == "verified":
            self.assertIn(att["freshness"], ("fresh", "cached"),
                          f"{what}: verified with freshness {att['freshness']!r}: {att}")
        for k in ("verified_at", "expires_at", "requested_at", "received_at", "generated_at",
                  "leaf_expires_at", "next_due_at"):
            if att[k] is not None:
                self.assertRegex(att[k], STRICT_TIME, f"{what}: attestation.{k}")
        if att["status"] in ("verified", "expired"):
            self.assertIsNotNone(att["verified_at"], f"{what}: {att}")
            self.assertIsNotNone(att["expires_at"], f"{what}: {att}")
        if att["request"] is not None:
            self.assertEqual(att["request"]["state"], "pending", f"{what}: {att}")
            self.assertRegex(att["request"]["requested_at"], STRICT_TIME, f"{what}: {att}")
        self.assertPropertiesShape(att["properties"], what)

    def assertPropertiesShape(self, props, what=""):
        if props is None:
            return
        self.assertIsInstance(props, dict, f"{what}: properties {props!r}")
        self.assertEqual(PROPERTY_KEYS - set(props), set(), f"{what}: properties keys {props}")
        for k in ("sip_enabled", "third_party_kexts_allowed"):
            self.assertIn(props[k], (True, False, None), f"{what}: properties.{k}")
        for k in PROPERTY_KEYS - {"sip_enabled", "third_party_kexts_allowed"}:
            self.assertTrue(props[k] is None or isinstance(props[k], str),
                            f"{what}: properties.{k} = {props[k]!r}")
            self.assertNotEqual(props[k], "", f"{what}: properties.{k} blank instead of null")

    def assertHistoryEntry(self, e, what=""):
        self.assertIsInstance(e, dict, f"{what}: {e!r}")
        self.assertEqual(HISTORY_KEYS - set(e), set(), f"{what}: history entry keys {e}")
        self.assertRegex(e["command_uuid"] or "", UUID_RE, f"{what}: command_uuid {e}")
        self.assertIn(e["status"], {"verified", "failed", "unsupported", "error"}, f"{what}: {e}")
        self.assertIn(e["freshness"], FRESHNESS, f"{what}: {e}")
        if e["status"] == "error":
            # The reason of an error entry is not a verdict: null or the MDM Status.
            self.assertIn(e["reason"], (None, "Error", "CommandFormatError"), f"{what}: {e}")
        else:
            self.assertIn(e["reason"], REASONS, f"{what}: {e}")
        self.assertIsInstance(e["request_reason"], str, f"{what}: request_reason {e}")
        for k in ("requested_at", "received_at"):
            self.assertRegex(e[k] or "", STRICT_TIME, f"{what}: history {k} {e}")
        for k in ("generated_at", "expires_at"):
            if e[k] is not None:
                self.assertRegex(e[k], STRICT_TIME, f"{what}: history {k} {e}")
        if e["leaf_sha256"] is not None:
            self.assertRegex(e["leaf_sha256"], HEX64, f"{what}: leaf_sha256 {e}")
        self.assertPropertiesShape(e["properties"], what)

    def props(self, obj):
        return {k: (obj["properties"] or {}).get(k) for k in sorted(PROPERTY_KEYS)}

    def attest_fresh(self, dev, what="a verified fresh attestation", **leaf):
        """Take the pending request and answer it correctly: (command_uuid, nonce, chain)."""
        cu, nonce = self.take_request(dev, what)
        chain = self.chain_for(dev, nonce, **leaf)
        self.answer(dev, cu, chain, what=what)
        self.assertVerdict(dev, cu, "verified", None, "fresh", what)
        return cu, nonce, chain

    def fail_one(self, dev, attestation, reason, freshness=None, what="", **overrides):
        """Take the pending request, answer with attestation, expect failed/reason."""
        cu, _nonce = self.take_request(dev, what)
        self.answer(dev, cu, attestation, what=what, **overrides)
        return self.assertVerdict(dev, cu, "failed", reason, freshness, what)


# ---------------------------------------------------------------------------------------------
class AttestationRequestTest(AttestationCase):
    """What vouchd asks and when: the auto-queued request, its shape, nonces, at most one
    pending, POST .../attest and POST /v1/attest."""

    def test_none_then_pending_then_request_shape(self):
        dev = self.iphone(enroll=False)
        self.assertEmpty200(dev.authenticate(), "Authenticate")
        att = self.attestation(dev.udid)
        self.assertEqual(att["status"], "none", f"before TokenUpdate: {att}")
        for k in ATTESTATION_KEYS - {"status", "properties"}:
            self.assertIsNone(att[k], f"attestation.{k} of a never-asked device: {att}")
        self.assertEqual(self.history(dev.udid), [], "history of a never-asked device")
        self.assertIn(dev.udid, self.listed("none"))

        self.assertEmpty200(dev.token_update(), "TokenUpdate")
        pending = self.pending_requests(dev.udid)
        self.assertEqual(len(pending), 1, f"after the first TokenUpdate: {pending}")
        self.assertPending(dev.udid, "after the first TokenUpdate")
        att = self.attestation(dev.udid)
        self.assertEqual(att["status"], "none", f"no verdict yet, a request out: {att}")
        for k in ("requested_at", "received_at", "generated_at", "expires_at", "verified_at",
                  "freshness", "reason"):
            self.assertIsNone(att[k], f"attestation.{k} while nothing was ever answered: {att}")
        self.assertIn(dev.udid, self.listed("pending"))
        self.assertIn(dev.udid, self.listed("none"), "no verdict yet, whatever is pending")

        # A token refresh is not a new enrollment: no second request.
        dev.token = secrets.token_bytes(32)
        self.assertEmpty200(dev.token_update(), "second TokenUpdate")
        self.assertEqual(len(self.pending_requests(dev.udid)), 1,
                         f"a second TokenUpdate queued another request: "
                         f"{self.vouchd.commands(dev.udid)}")

        cmd = self.assertCommand(dev.idle(), pending[0]["command_uuid"], "Idle")
        c = cmd["Command"]
        self.assertIn("DevicePropertiesAttestation", c["Queries"],
                      "the query key must be exactly DevicePropertiesAttestation")
        nonce = self.assertAttestationRequest(cmd, "auto-queued request")
        extra = set(c["Queries"]) - REQUIRED_QUERIES
        if extra:
            print(f"\n  note: the request also asks for {sorted(extra)}")
        # Handed out, not answered: still pending.
        self.assertPending(dev.udid, "handed out")
        # Raw bytes: the nonce really is <data> in the XML vouchd sent.
        self.assertIsInstance(nonce, bytes)

    def test_nonces_unique_across_devices_and_requests(self):
        devs = [self.iphone() for _ in range(5)]
        nonces = []
        for i, dev in enumerate(devs):
            cu, nonce = self.take_request(dev, f"device {i}: auto request")
            nonces.append(nonce)
            r = dev.report("Error", cu, ErrorChain=[{"ErrorCode": 12021, "ErrorDomain":
                                                     "MCMDMErrorDomain"}])
            self.assertEmpty200(r, f"device {i}: Error")
            self.verdict(dev, cu, f"device {i}: Error recorded")
        for i, dev in enumerate(devs):
            body = self.post_attest(dev.udid)
            self.assertTrue(body["queued"], f"device {i}: POST attest after Error: {body}")
            cu, nonce = self.take_request(dev, f"device {i}: operator request")
            self.assertEqual(cu, body["command_uuid"])
            nonces.append(nonce)
        self.assertEqual(len(set(nonces)), 10, "a nonce was sent twice")
        self.assertTrue(all(len(n) == 32 for n in nonces))

    def test_at_most_one_pending(self):
        dev = self.iphone()
        auto = self.pending_requests(dev.udid)
        self.assertEqual(len(auto), 1, auto)
        auto_uuid = auto[0]["command_uuid"]
        for i in range(3):
            body = self.post_attest(dev.udid)
            self.assertEqual((body["queued"], body["command_uuid"]), (False, auto_uuid),
                             f"POST attest #{i + 1} while the auto request is pending: {body}")
        self.assertEqual([c["command_uuid"] for c in self.pending_requests(dev.udid)],
                         [auto_uuid], "more than one request pending")

        cu, nonce = self.take_request(dev, "the auto request")
        self.assertEqual(cu, auto_uuid)
        body = self.post_attest(dev.udid)
        self.assertEqual((body["queued"], body["command_uuid"]), (False, auto_uuid),
                         f"POST attest while the request is handed out, unanswered: {body}")
        # NotNow: the request stays pending and comes back.
        self.assertEmpty200(dev.report("NotNow", cu), "NotNow")
        self.assertPending(dev.udid, "after NotNow")
        body = self.post_attest(dev.udid)
        self.assertEqual((body["queued"], body["command_uuid"]), (False, auto_uuid),
                         f"POST attest after NotNow: {body}")
        cmd = self.assertCommand(dev.idle(), auto_uuid, "Idle after NotNow")
        self.assertEqual(cmd["Command"]["DeviceAttestationNonce"], nonce,
                         "the same command came back with another nonce")
        self.answer(dev, cu, self.chain_for(dev, nonce), what="answer after NotNow")
        self.assertVerdict(dev, cu, "verified", None, "fresh", "answer after NotNow")
        self.assertEmpty200(dev.idle(), "Idle after the answer: nothing re-queued")

        first = self.post_attest(dev.udid)
        self.assertTrue(first["queued"], f"POST attest with nothing pending: {first}")
        self.assertNotEqual(first["command_uuid"], auto_uuid)
        self.assertPending(dev.udid, "a request newer than the last answer")
        self.assertEqual(self.attestation(dev.udid)["status"], "verified",
                         "the last verdict stays while a re-check is pending")
        self.assertIn(dev.udid, self.listed("verified"))
        second = self.post_attest(dev.udid)
        self.assertEqual((second["queued"], second["command_uuid"]),
                         (False, first["command_uuid"]), f"second POST attest: {second}")
        self.assertEqual([c["command_uuid"] for c in self.pending_requests(dev.udid)],
                         [first["command_uuid"]])
        cu2, nonce2 = self.take_request(dev, "operator request")
        self.assertEqual(cu2, first["command_uuid"])
        self.assertNotEqual(nonce2, nonce)

    def test_post_attest_errors_and_auth(self):
        ghost = "00000000-0000-0000-0000-00000000A77E"
        r = self.vouchd.admin("POST", f"/v1/devices/{ghost}/attest", body=b"")
        self.assertEqual(r.status, 404, f"POST attest for an unknown device: {r!r}")
        self.assertIsInstance(r.json().get("error"), str, repr(r))
        r = self.vouchd.admin("GET", f"/v1/devices/{ghost}/attestations")
        self.assertEqual(r.status, 404, f"history of an unknown device: {r!r}")
        dev = self.iphone()
        for method, path, body in [("POST", f"/v1/devices/{dev.udid}/attest", b""),
                                   ("POST", "/v1/attest", json.dumps({"udids": [dev.udid]})),
                                   ("GET", f"/v1/devices/{dev.udid}/attestations", None)]:
            for token in (None, "wrong-" + self.vouchd.admin_token):
                r = self.vouchd.admin(method, path, body=body, token=token,
                                      content_type="application/json" if body else None)
                self.assertEqual(r.status, 401, f"{method} {path} with token {token!r}: {r!r}")
        # Nothing was queued by the refused calls.
        self.assertEqual(len(self.pending_requests(dev.udid)), 1)

    def test_bulk_attest(self):
        done, waiting = self.iphone(), self.iphone()
        self.attest_fresh(done, "bulk: first device verified")
        waiting_uuid = self.pending_requests(waiting.udid)[0]["command_uuid"]
        ghost = "00000000-0000-0000-0000-00000000B0B0"
        r = self.vouchd.admin("POST", "/v1/attest",
                              body=json.dumps({"udids": [done.udid, ghost, waiting.udid]}),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/attest")
        self.assertEqual(r.media_type(), "application/json", repr(r))
        results = r.json().get("results")
        self.assertIsInstance(results, dict, repr(r))
        self.assertEqual(set(results), {done.udid, ghost, waiting.udid}, results)
        self.assertEqual(results[ghost], {"error": "unknown device"}, results)
        a = results[done.udid]
        self.assertIs(a.get("queued"), True, results)
        self.assertRegex(a.get("command_uuid") or "", UUID_RE, results)
        self.assertNotIn("error", a, results)
        self.assertEqual(results[waiting.udid].get("queued"), False, results)
        self.assertEqual(results[waiting.udid].get("command_uuid"), waiting_uuid, results)

        cu, nonce = self.take_request(done, "bulk request")
        self.assertEqual(cu, a["command_uuid"])
        self.answer(done, cu, self.chain_for(done, nonce), what="bulk request")
        _att, entry = self.assertVerdict(done, cu, "verified", None, "fresh", "bulk request")
        self.assertEqual(entry["request_reason"], "operator", entry)

    def test_bulk_attest_names_a_device_once(self):
        dev = self.iphone()
        self.attest_fresh(dev, "first attestation")
        r = self.vouchd.admin("POST", "/v1/attest",
                              body=json.dumps({"udids": [dev.udid, dev.udid, dev.udid]}),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/attest")
        self.assertEqual(r.body.count(dev.udid.encode()), 1, f"answered more than once: {r!r}")
        self.assertIs(r.json()["results"][dev.udid].get("queued"), True, repr(r))
        self.assertEqual(len(self.pending_requests(dev.udid)), 1, "one request, not three")

    def test_bulk_attest_odd_udids(self):
        """UDIDs with a quote, a backslash, a comma or braces reach the database as themselves
        (the array literal escapes them): each is an unknown device, and a real one beside
        them is asked."""
        dev = self.iphone()
        self.attest_fresh(dev, "first attestation")
        odd = ['QUOTE"D', 'BACK\\SLASH', 'TRAILING\\', 'COMMA,{BRACE}', '"', 'NULL']
        r = self.vouchd.admin("POST", "/v1/attest", body=json.dumps({"udids": odd + [dev.udid]}),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/attest with odd UDIDs")
        results = r.json()["results"]
        self.assertEqual(set(results), set(odd) | {dev.udid}, results)
        for udid in odd:
            self.assertEqual(results[udid], {"error": "unknown device"}, udid)
        self.assertIs(results[dev.udid].get("queued"), True, results)

    def test_bulk_attest_mixed_list(self):
        """One list of every case, answered in the order given: a device asked (queued), one
        with a request out (pending: that request), an unknown id, a UDID in another case (the
        answer under the device's own), a device named twice in two cases (asked, pushed and
        answered once, as one named twice exactly), and a checked-out device (enrolled, not
        enabled: asked, as by POST .../attest)."""
        fresh, waiting, other, twice, out = (self.iphone() for _ in range(5))
        for dev in (fresh, other, twice, out):
            self.attest_fresh(dev, "mixed list: verified first")
        self.assertStatus(out.checkout(), 200, "CheckOut")
        waiting_uuid = self.pending_requests(waiting.udid)[0]["command_uuid"]
        ghost = "00000000-0000-0000-0000-00000000C0C0"
        asked = [fresh.udid, waiting.udid, ghost, other.udid.lower(), twice.udid,
                 twice.udid.lower(), fresh.udid, out.udid]
        r = self.vouchd.admin("POST", "/v1/attest", body=json.dumps({"udids": asked}),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/attest")
        pairs = json.loads(r.body, object_pairs_hook=list)[0][1]
        self.assertEqual([k for k, _ in pairs],
                         [fresh.udid, waiting.udid, ghost, other.udid, twice.udid, out.udid],
                         r.body)
        got = [dict(v) for _, v in pairs]  # twice's second mention is not answered again
        self.assertEqual(got[2], {"error": "unknown device"}, got)
        self.assertEqual(got[1], {"command_uuid": waiting_uuid, "queued": False}, got)
        for i in (0, 3, 4, 5):
            self.assertIs(got[i].get("queued"), True, got)
            self.assertRegex(got[i].get("command_uuid") or "", UUID_RE, got)
        self.assertEqual(len({got[i]["command_uuid"] for i in (0, 1, 3, 4, 5)}), 5, got)
        for i, dev in ((0, fresh), (1, waiting), (3, other), (4, twice), (5, out)):
            pending = self.pending_requests(dev.udid)
            self.assertEqual([c["command_uuid"] for c in pending], [got[i]["command_uuid"]],
                             f"requests of {dev.udid}")
        self.assertEqual(self.attestation(other.udid)["request"]["reason"], "operator")
        cu, nonce = self.take_request(twice, "mixed list")
        self.assertEqual(cu, got[4]["command_uuid"])
        self.answer(twice, cu, self.chain_for(twice, nonce), what="mixed list")
        self.assertVerdict(twice, cu, "verified", None, "fresh", "mixed list")

    def test_request_attestations_rows(self):
        """vouch_request_attestations answers each mention, in order: a later mention of a
        device (in another case) answers 'pending' with the request its first one queued."""
        known, waiting = self.iphone(), self.iphone()
        self.attest_fresh(known, "rows: verified first")
        waiting_uuid = self.pending_requests(waiting.udid)[0]["command_uuid"]
        ghost = "00000000-0000-0000-0000-00000000D0D0"
        asked = [known.udid.lower(), ghost, waiting.udid, known.udid, known.udid.lower()]
        uuids = [f"ROWS-{i}-{secrets.token_hex(4)}" for i in range(len(asked))]
        out = self.psql(
            "SELECT udid || '|' || outcome || '|' || coalesce(command_uuid, '-') "
            "FROM vouch_request_attestations(ARRAY['" + "','".join(asked) + "'], "
            "ARRAY['" + "','".join(uuids) + "'], "
            "ARRAY(SELECT sha256(x::bytea) FROM unnest(ARRAY['" + "','".join(uuids) + "']) x), "
            "'operator')")
        self.assertEqual(out.split(), [
            f"{known.udid}|queued|{uuids[0]}", f"{ghost}|unknown_device|-",
            f"{waiting.udid}|pending|{waiting_uuid}", f"{known.udid}|pending|{uuids[0]}",
            f"{known.udid}|pending|{uuids[0]}"])
        self.assertEqual([c["command_uuid"] for c in self.pending_requests(known.udid)],
                         [uuids[0]])

    def test_bulk_attest_bad_bodies(self):
        dev = self.iphone()
        for name, body in [("not JSON", b"{udids: [}"),
                           ("truncated JSON", json.dumps({"udids": [dev.udid]})[:-3].encode()),
                           ("empty body", b""),
                           ("a JSON array", json.dumps([dev.udid]).encode()),
                           ("udids a string", json.dumps({"udids": dev.udid}).encode()),
                           ("udids with a number", json.dumps({"udids": [1]}).encode()),
                           ("no udids", json.dumps({}).encode()),
                           ("invalid UTF-8", b'{"udids": ["\xff\xfe"]}')]:
            r = self.vouchd.admin("POST", "/v1/attest", body=body,
                                  content_type="application/json")
            self.assertEqual(r.status, 400, f"POST /v1/attest with {name}: {r!r}")
            self.assertIsInstance(r.json().get("error"), str, f"{name}: {r!r}")
        self.assertEqual(len(self.pending_requests(dev.udid)), 1,
                         "a refused bulk request queued something")
        self.assertAlive("bad bulk bodies")


# ---------------------------------------------------------------------------------------------
class AttestationVerdictTest(AttestationCase):
    """Every verdict and reason code, from real answers."""

    def test_verified_fresh(self):
        dev = self.iphone()
        requested = self.assertPending(dev.udid, "enrolled")["requested_at"]
        cu, nonce = self.take_request(dev)
        leaf = self.pki.leaf(nonce=nonce, serial=dev.serial, udid=dev.udid,
                             os_version=dev.os_version, **LEAF_DEFAULTS)
        chain = [der(leaf), der(self.pki.sub)]
        self.answer(dev, cu, chain, what="fresh")
        att, entry = self.assertVerdict(dev, cu, "verified", None, "fresh", "fresh")
        self.assertIsNone(att["request"], f"answered, yet a request is shown: {att}")
        self.assertEqual(att["requested_at"], requested, "requested_at changed with the answer")
        self.assertLessEqual(parse_time(att["requested_at"]), parse_time(att["received_at"]))
        self.assertEqual(att["verified_at"], att["received_at"], "verified_at")
        self.assertEqual(att["generated_at"], rfc3339(not_before(leaf)), "generated_at")
        self.assertEqual(att["leaf_expires_at"], rfc3339(not_after(leaf)), "leaf_expires_at")
        # The verdict counts until the leaf expires or attestation_max_age (30 days) after Apple
        # made it, whichever comes first.
        self.assertEqual(att["expires_at"], rfc3339(min(
            not_after(leaf), not_before(leaf) + datetime.timedelta(days=30))), "expires_at")
        if att["next_due_at"] is not None:
            self.assertGreater(parse_time(att["next_due_at"]), parse_time(att["received_at"]))
        expected = {"serial_number": dev.serial, "udid": dev.udid, "os_version": "17.4",
                    "sepos_version": "17.4", "llb_version": "iBoot-10151.101.3",
                    "software_update_device_id": SUDID, "sip_enabled": None,
                    "secure_boot": None, "third_party_kexts_allowed": None}
        self.assertEqual(self.props(att), expected, "device object properties")
        self.assertEqual(self.props(entry), expected, "history properties")
        self.assertEqual(entry["command_uuid"], cu)
        self.assertEqual(entry["request_reason"], "enrollment", entry)
        self.assertEqual(entry["requested_at"], requested, entry)
        self.assertEqual(entry["generated_at"], att["generated_at"])
        self.assertEqual(entry["expires_at"], att["leaf_expires_at"])
        self.assertEqual(entry["nonce"], nonce.hex(), "the nonce it was checked against")
        self.assertIsNone(entry["cached_nonce"], entry)
        self.assertEqual(entry["generation"], self.device_obj(dev.udid)["generation"], entry)
        self.assertEqual((entry["leaf_sha256"] or "").lower(), sha256_hex(leaf), entry)
        self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], "Acknowledged")
        self.assertEmpty200(dev.idle(), "Idle after a verified answer")
        self.assertIn(dev.udid, self.listed("verified"))

    def test_malformed(self):
        leafdev = self.iphone()
        good_leaf = self.pki.leaf(nonce=secrets.token_bytes(32), serial=leafdev.serial,
                                  udid=leafdev.udid)
        big = self.pki.leaf(nonce=secrets.token_bytes(32), serial=leafdev.serial,
                            udid=leafdev.udid,
                            extra_extensions=[(("1.3.6.1.4.1.99999.1", b"A" * 100_000),
                                               False)])
        sub = der(self.pki.sub)
        cases = [
            ("garbage items", lambda d, n: [b"\x30\x82\x01\x00garbage", secrets.token_bytes(64)]),
            ("empty array", lambda d, n: []),
            ("1,000 certificates", lambda d, n: self.chain_for(d, n)[:1] + [sub] * 999),
            ("non-data items", lambda d, n: ["MIIB" + "A" * 40, 7, {"a": b"b"}, [b"c"]]),
            ("a certificate then a string", lambda d, n: [self.chain_for(d, n)[0], "sub"]),
            ("a string instead of an array",
             lambda d, n: fake_apple.pem(good_leaf).decode()),
            ("a data instead of an array", lambda d, n: self.chain_for(d, n)[0]),
            ("a dict instead of an array", lambda d, n: {"0": self.chain_for(d, n)[0]}),
            ("an empty data item", lambda d, n: [b"", sub]),
            ("trailing bytes after the leaf",
             lambda d, n: [self.chain_for(d, n)[0] + b"\x00", sub]),
            ("PEM instead of DER", lambda d, n: [fake_apple.pem(
                self.pki.leaf(nonce=n, serial=d.serial, udid=d.udid, **LEAF_DEFAULTS)), sub]),
            ("a truncated leaf", lambda d, n: [self.chain_for(d, n)[0][:-10], sub]),
            ("a 100 kB leaf", lambda d, n: [der(big), sub]),
            ("SIP status as ASCII, not a DER INTEGER",
             lambda d, n: self.chain_for(d, n, sip_status=b"0")),
            ("kexts status as a truncated DER INTEGER",
             lambda d, n: self.chain_for(d, n, kexts_status=b"\x02\x01")),
        ]
        for name, make in cases:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, make(dev, nonce), what=name)
                self.assertVerdict(dev, cu, "failed", "malformed", {None, "unknown"}, name)
                self.assertAlive(f"after a malformed answer ({name})")

    def test_untrusted_chain(self):
        other = self.other_pki
        now = fake_apple.utcnow()
        cases = [
            ("a chain from another root (same names)",
             lambda d, n: self.chain_for(d, n, pki=other)),
            ("another root's leaf with our sub CA",
             lambda d, n: [self.chain_for(d, n, pki=other)[0], der(self.pki.sub)]),
            ("an expired leaf",
             lambda d, n: self.chain_for(d, n, not_before=now - datetime.timedelta(days=100),
                                         days=91)),
            ("a leaf valid from tomorrow",
             lambda d, n: self.chain_for(d, n, not_before=now + datetime.timedelta(days=1))),
            ("an expired sub CA (its root is trusted)",
             lambda d, n: self.chain_for(d, n, pki=self.expired_sub_pki)),
            ("a sub CA with CA:FALSE (its root is trusted)",
             lambda d, n: self.chain_for(d, n, pki=self.not_ca_pki)),
        ]
        for name, make in cases:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, make(dev, nonce), what=name)
                self.assertVerdict(dev, cu, "failed", "untrusted_chain", {None, "unknown"}, name)
        self.assertAlive("after untrusted chains")

    def test_verified_by_a_second_configured_root(self):
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "second root")
        self.answer(dev, cu, self.chain_for(dev, nonce, pki=self.second_pki), what="second root")
        self.assertVerdict(dev, cu, "verified", None, "fresh", "a chain to the second root")

    def test_untrusted_chain_uses_only_the_supplied_intermediates(self):
        """attestation.md checklist 2: the path is leaf -> SUPPLIED intermediates -> a configured
        anchor. A leaf without its sub CA, or with a look-alike sub CA, does not verify (even if
        vouchd has seen the real sub CA before: it has, in the other tests of this class)."""
        other = self.other_pki
        dev = self.iphone()
        self.attest_fresh(dev, "the real sub CA seen once")
        cases = [
            ("the leaf alone, no sub CA", lambda d, n: self.chain_for(d, n)[:1]),
            ("our leaf with another root's sub CA",
             lambda d, n: [self.chain_for(d, n)[0], der(other.sub)]),
        ]
        for name, make in cases:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, make(dev, nonce), what=name)
                self.assertVerdict(dev, cu, "failed", "untrusted_chain", {None, "unknown"}, name)

    def test_nonce_mismatch(self):
        a, b = self.iphone(), self.iphone()
        cu_a, nonce_a = self.take_request(a, "device A")
        cu_b, nonce_b = self.take_request(b, "device B")
        # B answers with a chain that is right for B except that its freshness code is the
        # nonce vouchd sent to A.
        self.answer(b, cu_b, self.chain_for(b, nonce_a), what="B with A's nonce")
        self.assertVerdict(b, cu_b, "failed", "nonce_mismatch", "unknown", "B with A's nonce")
        # A's nonce is still A's.
        self.answer(a, cu_a, self.chain_for(a, nonce_a), what="A with its own nonce")
        self.assertVerdict(a, cu_a, "verified", None, "fresh", "A after B used A's nonce")

        for name, make in [("a random nonce", lambda n: secrets.token_bytes(32)),
                           ("the nonce minus its last byte", lambda n: n[:-1]),
                           ("the nonce with one bit flipped",
                            lambda n: n[:-1] + bytes([n[-1] ^ 1])),
                           ("SHA-256 of the nonce (the ACME rule, not this route's)",
                            lambda n: hashlib.sha256(n).digest())]:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, self.chain_for(dev, make(nonce)), what=name)
                self.assertVerdict(dev, cu, "failed", "nonce_mismatch", "unknown", name)

    def test_nonce_mismatch_longer_than_a_nonce(self):
        """A freshness code longer than 32 bytes is still just a code that is none of the nonces
        sent (docs/attestation.md: nonce_mismatch); `malformed` is "not a list of DER certificates",
        and the freshness code has no encoding to get wrong (raw bytes, never DER-decoded)."""
        for name, make in [("the nonce plus a byte", lambda n: n + b"\x00"),
                           ("the nonce, DER-wrapped in an OCTET STRING",
                            lambda n: b"\x04\x20" + n),
                           ("64 random bytes", lambda n: secrets.token_bytes(64))]:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, self.chain_for(dev, make(nonce)), what=name)
                self.assertVerdict(dev, cu, "failed", "nonce_mismatch", "unknown", name)

    def test_nonce_missing(self):
        dev = self.iphone()
        cu, _nonce = self.take_request(dev, "no .11.1")
        self.answer(dev, cu, self.chain_for(dev, None), what="no .11.1")
        att, _ = self.assertVerdict(dev, cu, "failed", "nonce_missing", {None, "unknown"},
                                    "no freshness code")
        # A blank freshness code is no freshness code either (never "good").
        dev = self.iphone()
        cu, _nonce = self.take_request(dev, "blank .11.1")
        self.answer(dev, cu, self.chain_for(dev, b""), what="blank .11.1")
        att, _ = self.verdict(dev, cu, "blank .11.1")
        self.assertEqual(att["status"], "failed", f"blank freshness code: {att}")
        self.assertIn(att["reason"], ("nonce_missing", "nonce_mismatch"), att)
        self.assertNotIn(att["freshness"], ("fresh", "cached"), att)

    def test_udid_mismatch(self):
        a, b = self.iphone(), self.iphone()
        cu_a, nonce_a = self.take_request(a, "device A")
        chain_a = self.chain_for(a, nonce_a)
        self.answer(a, cu_a, chain_a, what="A")
        self.assertVerdict(a, cu_a, "verified", None, "fresh", "A")

        # B's own fresh nonce and serial, A's UDID.
        cu_b, nonce_b = self.take_request(b, "device B")
        self.answer(b, cu_b, self.chain_for(b, nonce_b, udid=a.udid), what="B with A's UDID")
        self.assertVerdict(b, cu_b, "failed", "udid_mismatch", "fresh", "B with A's UDID")

        # A's whole chain, verified for A, replayed by B.
        self.post_attest(b.udid)
        cu_b2, _ = self.take_request(b, "device B again")
        self.answer(b, cu_b2, chain_a, what="B replays A's chain")
        att, _ = self.verdict(b, cu_b2, "B replays A's chain")
        self.assertEqual(att["status"], "failed", f"B replaying A's chain: {att}")
        self.assertIn(att["reason"], ("nonce_mismatch", "udid_mismatch", "serial_mismatch"), att)

        for name, udid in [("no UDID in the leaf", None), ("a blank UDID", "")]:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                self.answer(dev, cu, self.chain_for(dev, nonce, udid=udid), what=name)
                self.assertVerdict(dev, cu, "failed", "udid_mismatch", "fresh", name)

    def test_udid_compared_exactly(self):
        """attestation.md checklist 4: the attested UDID must EQUAL the enrolled one."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "lower-case UDID")
        self.answer(dev, cu, self.chain_for(dev, nonce, udid=dev.udid.lower()),
                    what="lower-case UDID")
        self.assertVerdict(dev, cu, "failed", "udid_mismatch", "fresh", "lower-case UDID")

    def test_serial_mismatch(self):
        for name, serial in [("another serial", "C02ZZZZZZZZZ"), ("no serial", None),
                             ("a blank serial", ""), ("the serial plus a space", "+ ")]:
            with self.subTest(name):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, name)
                value = dev.serial + " " if serial == "+ " else serial
                self.answer(dev, cu, self.chain_for(dev, nonce, serial=value), what=name)
                self.assertVerdict(dev, cu, "failed", "serial_mismatch", "fresh", name)

    def test_os_version_mismatch(self):
        dev = self.iphone(os_version="17.5")
        cu, nonce = self.take_request(dev, "leaf 17.4, device 17.5")
        self.answer(dev, cu, self.chain_for(dev, nonce, os_version="17.4"),
                    what="leaf 17.4, device 17.5")
        att, _ = self.assertVerdict(dev, cu, "failed", "os_version_mismatch", "fresh",
                                    "fresh leaf 17.4, answer 17.5")
        self.assertEqual(att["properties"]["os_version"], "17.4", att)

    def test_cached(self):
        dev = self.iphone()
        cu1, nonce1, chain1 = self.attest_fresh(dev, "first, fresh")
        first = self.attestation(dev.udid)
        body = self.post_attest(dev.udid)
        self.assertTrue(body["queued"], body)
        self.assertPending(dev.udid, "after POST attest on a verified device")
        self.assertEqual(self.attestation(dev.udid)["status"], "verified",
                         "a re-check does not hide the verdict")
        cu2, nonce2 = self.take_request(dev, "second request")
        self.assertEqual(cu2, body["command_uuid"])
        self.assertNotEqual(nonce2, nonce1)
        # Inside Apple's 7-day window the device returns its cached attestation: the old chain,
        # whose freshness code is the old nonce.
        self.answer(dev, cu2, chain1, what="the old chain")
        att, entry = self.assertVerdict(dev, cu2, "verified", None, "cached", "the old chain")
        self.assertEqual(att["generated_at"], first["generated_at"],
                         "generated_at must be the old leaf's notBefore")
        self.assertEqual(entry["request_reason"], "operator", entry)
        hist = self.history(dev.udid)
        self.assertEqual([e["command_uuid"] for e in hist], [cu2, cu1], "history order")
        self.assertEqual([e["freshness"] for e in hist], ["cached", "fresh"])
        self.assertEqual(hist[0]["leaf_sha256"], hist[1]["leaf_sha256"])
        self.assertIn(dev.udid, self.listed("verified"))

    def test_cached_answer_is_not_held_to_the_new_os_version(self):
        """A cached attestation may predate an OS update: only a fresh one must match the
        reported OS version (docs/attestation.md, os_version_mismatch)."""
        dev = self.iphone(os_version="17.4")
        _cu1, _n1, chain1 = self.attest_fresh(dev, "fresh at 17.4")
        self.post_attest(dev.udid)
        cu2, _n2 = self.take_request(dev, "after the update")
        self.answer(dev, cu2, chain1, what="cached 17.4 leaf, device now 17.5",
                    OSVersion="17.5", BuildVersion="21F79")
        att, _ = self.assertVerdict(dev, cu2, "verified", None, "cached",
                                    "cached leaf, OS updated")
        # ... but it says nothing of the new OS: the OS change stays to be attested.
        self.assertEqual(att["next_due_reason"], "os_change", att)

    def test_withheld(self):
        """A device that can attest, or that attested before in this enrollment, does not get
        'unsupported' by leaving the attestation out."""
        dev = self.iphone()
        cu, _ = self.take_request(dev, "an iPhone 14 Pro on 17.4 without an attestation")
        self.answer(dev, cu, omit_attestation=True, what="no attestation key")
        self.assertVerdict(dev, cu, "failed", "attestation_withheld", None, "iPhone15,2, 17.4")
        self.assertIn(dev.udid, self.listed("failed"))

        # A model Apple's list does not name, but it attested before: withheld all the same.
        dev = self.iphone(model="iPhone9,3", product_name="iPhone9,3", os_version="15.8")
        _cu, _n, _chain = self.attest_fresh(dev, "an attestation from a claimed iPhone 7")
        self.post_attest(dev.udid)
        cu, _ = self.take_request(dev, "then none")
        self.assertEmpty200(dev.report("Acknowledged", cu), "bare Acknowledged")
        self.assertVerdict(dev, cu, "failed", "attestation_withheld", None, "after verified")

    def test_unsupported(self):
        # An iPhone 7 (A10): Apple's list starts at the A11.
        old = dict(model="iPhone9,3", product_name="iPhone9,3", os_version="15.8")
        dev = self.iphone(**old)
        cu, _ = self.take_request(dev, "unsupported device")
        self.answer(dev, cu, omit_attestation=True, what="no attestation key")
        att, entry = self.assertVerdict(dev, cu, "unsupported", None, None, "unsupported")
        self.assertEqual(entry["status"], "unsupported")
        self.assertIn(dev.udid, self.listed("unsupported"))
        self.assertEmpty200(dev.idle(), "Idle after unsupported: not asked again at once")

        dev = self.iphone(**old)
        cu, _ = self.take_request(dev, "Acknowledged without QueryResponses")
        self.assertEmpty200(dev.report("Acknowledged", cu), "bare Acknowledged")
        self.assertVerdict(dev, cu, "unsupported", None, None, "bare Acknowledged")

    def test_error_and_command_format_error(self):
        for status, extra in [("Error", {"ErrorChain": [
                                  {"ErrorCode": 12021, "ErrorDomain": "MCMDMErrorDomain",
                                   "LocalizedDescription": "x", "USEnglishDescription": "x"}]}),
                              ("CommandFormatError", {})]:
            with self.subTest(status):
                dev = self.iphone()
                cu, nonce = self.take_request(dev, status)
                self.assertEmpty200(dev.report(status, cu, **extra), status)
                att, entry = self.verdict(dev, cu, status)
                self.assertEqual(entry["status"], "error", entry)
                self.assertIn(entry["reason"], (None, status), entry)
                self.assertEqual(entry["request_reason"], "enrollment", entry)
                self.assertIsNone(entry["leaf_sha256"], entry)
                self.assertIsNone(entry["generated_at"], entry)
                self.assertIsNone(att["request"], f"after {status}: {att}")
                self.assertEqual(att["status"], "none", f"an error is no verdict: {att}")
                self.assertEqual(self.pending_requests(dev.udid), [])
                self.assertEqual(self.command_status(dev.udid, cu)[0]["status"], status)
                self.assertEmpty200(dev.idle(), f"Idle after {status}: nothing resent")

                body = self.post_attest(dev.udid)
                self.assertTrue(body["queued"], f"POST attest after {status}: {body}")
                self.assertNotEqual(body["command_uuid"], cu)
                cu2, nonce2 = self.take_request(dev, f"new request after {status}")
                self.assertEqual(cu2, body["command_uuid"])
                self.assertNotEqual(nonce2, nonce)
                self.answer(dev, cu2, self.chain_for(dev, nonce2), what=f"after {status}")
                self.assertVerdict(dev, cu2, "verified", None, "fresh", f"after {status}")
                self.assertEqual([e["status"] for e in self.history(dev.udid)],
                                 ["verified", "error"])

    def test_late_answer_with_the_old_nonce_after_error(self):
        """The nonce of a request answered with Error is still one this server sent this
        device: a chain carrying it on a later request is cached, not unknown."""
        dev = self.iphone()
        cu, nonce = self.take_request(dev, "Error first")
        self.assertEmpty200(dev.report("Error", cu, ErrorChain=[]), "Error")
        self.verdict(dev, cu, "Error")
        self.post_attest(dev.udid)
        cu2, _nonce2 = self.take_request(dev, "second request")
        self.answer(dev, cu2, self.chain_for(dev, nonce), what="chain with the first nonce")
        self.assertVerdict(dev, cu2, "verified", None, "cached", "first nonce on the second")
