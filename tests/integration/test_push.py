"""APNs pushes, end to end over real TLS with client-certificate authentication, against an
independent HTTP/2 server (h2_apns.py: Python's ssl + the h2 package, not the project's stand-in).

vouchd is configured with a push certificate (UID=com.apple.mgmt.External.<uuid>) from the
stand-in's "Apple" CA, apns_url pointing at the stand-in and apns_ca at its server CA. What must
hold (docs/protocol.md, Push; issue 4):
  * every push is `POST /3/device/<hex token>` with apns-topic = the certificate's UID,
    apns-push-type mdm, apns-expiration about now + 7 days, apns-priority 10, body exactly
    {"mdm":"<PushMagic>"};
  * one push per device per enqueue / attestation request / enrollment, coalesced: however many
    callers, one push per device at a time; many devices multiplexed on one connection;
  * 200 records the apns-id; 410 kills the token until a newer TokenUpdate; 400 is permanent;
    403 makes /healthz degraded until a push is delivered; 429, 5xx, GOAWAY and dropped
    connections are retried (5 attempts in all), then recorded as transient; transient failures
    with commands waiting are pushed again by a periodic sweep;
  * SIGHUP takes a renewed push certificate from the same files without a restart, losing no push.

Simulated devices (device.py) connect only when the stand-in tells them they were pushed
(PushResponder), as real devices do.

Timing: no assertion on how fast anything happens, only generous deadlines; "no further push"
is checked after a settle time and after a later push to another device proves vouchd moved on.
"""

import datetime
import json
import math
import os
import queue
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
import uuid

import harness
from harness import VouchTestCase, command_plist, suite, wait_for
from test_metrics import parse_metrics

try:
    import h2_apns
    from h2_apns import (drop, forbidden, goaway, now_ms, ok, rejected, server_error,
                         too_many_requests, unavailable, unregistered)
    H2_MISSING = None
except ImportError as exc:  # python3-h2 missing: a skip here, a failure under CI=true
    h2_apns = None
    H2_MISSING = f"python3-h2 (the stand-in APNs needs it: apt-get install python3-h2): {exc}"

SEVEN_DAYS = 7 * 86400
SETTLE_S = 2.0  # how long "no further push" is watched for, after vouchd has visibly moved on
DEADLINE_S = 30.0  # for anything that should happen at once
ALL_FAILED_DEADLINE_S = 90.0  # 5 attempts with backoff (at most 0.25-30 s each)


def metric(text, name, **labels):
    """The value of one sample of a /metrics text, or None."""
    samples, _types = parse_metrics(text)
    key = name
    if labels:
        key += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return samples.get(key)


class PushResponder:
    """Simulated devices that connect when the stand-in delivers a push for their token, and only
    then: Idle, then every command handed out is answered (the attestation request as a device
    that cannot attest, DeviceInformation with its facts, anything else Acknowledged) until the
    server answers with an empty body."""

    def __init__(self, server):
        self.server = server
        self.devices = {}
        self.connects = {}  # udid -> number of Idle sessions
        self.handled = {}  # udid -> [CommandUUID, ...] answered
        self.errors = []
        self._queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="push-responder", daemon=True)
        self._thread.start()
        server.add_listener(self._on_push)

    def add(self, dev):
        with self._lock:
            self.devices[dev.token.hex()] = dev
            self.connects.setdefault(dev.udid, 0)
            self.handled.setdefault(dev.udid, [])
        return dev

    def close(self):
        self.server.remove_listener(self._on_push)
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _on_push(self, rec):
        if rec.answer == "200":
            with self._lock:
                dev = self.devices.get(rec.token)
            if dev is not None:
                self._queue.put(dev)

    def _work(self):
        while True:
            dev = self._queue.get()
            if dev is None:
                return
            try:
                self._session(dev)
            except Exception:
                self.errors.append(traceback.format_exc())

    def _session(self, dev):
        with self._lock:
            self.connects[dev.udid] += 1
        r = dev.idle()
        for _ in range(100):
            if r.status != 200:
                raise AssertionError(f"{dev.udid}: vouchd answered {r!r}")
            if not r.body:
                return
            cmd = r.plist()
            cu = cmd["CommandUUID"]
            c = cmd["Command"]
            if c.get("RequestType") == "DeviceInformation" and \
                    dev.ATTESTATION_QUERY in c.get("Queries", []):
                r = dev.answer_attestation(cmd, "unsupported")
            elif c.get("RequestType") == "DeviceInformation":
                r = dev.report("Acknowledged", cu,
                               QueryResponses=dev.attestation_query_responses(cmd))
            else:
                r = dev.report("Acknowledged", cu)
            with self._lock:
                self.handled[dev.udid].append(cu)
        raise AssertionError(f"{dev.udid}: more than 100 commands in one session")


class PushTestCase(VouchTestCase):
    """vouchd pushing to a fresh stand-in APNs (one per class)."""

    push_cert_days = 365
    push_cert_age_days = 0  # how long ago the push certificate became valid
    pkcs12_password = None  # set: apns_cert is a PKCS#12 file with this password
    pkcs12_legacy = False  # True: made by `openssl pkcs12 -export -legacy` (RC2-40, 3DES)
    extra_config = {}  # more vouchd configuration keys

    @classmethod
    def setUpClass(cls):
        if H2_MISSING:
            harness.unavailable(H2_MISSING)
        cls.files = tempfile.mkdtemp(prefix="apns-", dir=suite().run_dir)
        cls.pki = h2_apns.ApnsPKI()
        cls.identity = cls.pki.issue_push_cert(
            days=cls.push_cert_days,
            not_before=(datetime.datetime.now(datetime.timezone.utc)
                        - datetime.timedelta(days=cls.push_cert_age_days, hours=1)))
        cls.topic = cls.identity.topic
        cls.ca_path = cls.pki.write_server_ca(os.path.join(cls.files, "apns-server-ca.pem"))
        cls.cert_path = os.path.join(cls.files, "push.pem")
        cls.key_path = os.path.join(cls.files, "push.key")
        config = {"apns_url": None, "apns_ca": cls.ca_path, "apns_cert": cls.cert_path}
        if cls.pkcs12_password is not None:
            cls.cert_path = os.path.join(cls.files, "push.p12")
            if cls.pkcs12_legacy:
                cls.write_legacy_pkcs12()
            else:
                cls.identity.write_pkcs12(cls.cert_path, cls.pkcs12_password)
            config.update(apns_cert=cls.cert_path, apns_cert_password=cls.pkcs12_password)
        else:
            cls.identity.write_pem(cls.cert_path, cls.key_path)
            config["apns_key"] = cls.key_path
        cls.apns = h2_apns.H2ApnsServer(cls.pki).start()
        config["apns_url"] = cls.apns.url
        cls.vouchd_config = dict(config, **cls.extra_config)
        try:
            super().setUpClass()
        except BaseException:
            cls.apns.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.apns.stop()

    @classmethod
    def write_legacy_pkcs12(cls):
        """The PKCS#12 that Keychain Access and `openssl pkcs12 -export -legacy` write:
        certificate bag under pbeWithSHA1And40BitRC2-CBC, key under 3DES, SHA-1 MAC."""
        openssl = shutil.which("openssl")
        if openssl is None:
            harness.unavailable("the openssl command (package openssl)")
        crt, key = cls.identity.write_pem(os.path.join(cls.files, "legacy.crt"),
                                          os.path.join(cls.files, "legacy.key"))
        r = subprocess.run([openssl, "pkcs12", "-export", "-legacy", "-in", crt, "-inkey", key,
                            "-name", "MDM push", "-passout", "pass:" + cls.pkcs12_password,
                            "-out", cls.cert_path], capture_output=True, text=True)
        if r.returncode != 0:
            harness.unavailable(f"openssl pkcs12 -export -legacy: {r.stderr.strip()}")

    # -- devices -----------------------------------------------------------------------------
    def new_device(self, **kw):
        kw.setdefault("topic", self.topic)
        return super().new_device(**kw)

    def enroll(self, dev=None, expect=1, **kw):
        """Enrolls dev (or a new device) and waits for the push its enrollment brings (vouchd
        queues an attestation request on the first TokenUpdate and pushes the device): expect
        requests for its token in all (0: do not wait)."""
        dev = dev or self.new_device(**kw)
        dev.enroll()
        if expect:
            self.apns.wait_for_requests(dev.token, expect, DEADLINE_S)
            # vouchd has taken the answer (a push still in flight inside vouchd would serve the
            # test's next push request too: coalesced, as it should be).
            wait_for(lambda: self.push_block(dev)["last_push_at"] is not None, DEADLINE_S,
                     what="the enrollment push's answer to be recorded")
        return dev

    def pushes(self, dev, answered_only=True):
        return self.apns.requests_for(dev.token, answered_only)

    def push_block(self, dev):
        r = self.vouchd.device(dev.udid)
        self.assertStatus(r, 200, f"GET /v1/devices/{dev.udid}")
        return r.json()["push"]

    def wait_push_block(self, dev, what="", **expected):
        """Polls the device object until its push block has these values (answers are written
        to the database in batches, a moment after they come)."""
        last = {}

        def check():
            last.clear()
            last.update(self.push_block(dev))
            return all(last.get(k) == v for k, v in expected.items())

        try:
            wait_for(check, DEADLINE_S, what=f"push block {expected}")
        except AssertionError:
            self.fail(f"{what}: push block of {dev.udid} is {last}, expected {expected}\n"
                      + self.vouchd_log_since_test())
        return dict(last)

    def push_now(self, *devs_or_udids):
        """GET /v1/push/<udids>: (HTTP status, parsed body)."""
        ids = [d if isinstance(d, str) else d.udid for d in devs_or_udids]
        r = self.vouchd.admin("GET", "/v1/push/" + ",".join(ids))
        try:
            body = r.json()
        except ValueError:
            self.fail(f"GET /v1/push: not JSON: {r!r}")
        return r.status, body

    def certificate_days_left(self):
        """Whole days until the push certificate expires (negative: expired), from
        vouch_push_certificate_expiry_seconds (its notAfter); None when it is absent."""
        expiry = metric(self.metrics_text(), "vouch_push_certificate_expiry_seconds")
        return None if expiry is None else math.floor((expiry - time.time()) / 86400)

    def metrics_text(self):
        r = self.vouchd.metrics()
        self.assertStatus(r, 200, "GET /metrics")
        return r.text()

    def pushes_total(self, outcome):
        return metric(self.metrics_text(), "vouch_pushes_total", outcome=outcome) or 0

    def retries_total(self):
        return metric(self.metrics_text(), "vouch_apns_retries_total") or 0

    def settle(self, dev, count, what):
        """After SETTLE_S, dev's token still has exactly count requests."""
        time.sleep(SETTLE_S)
        got = self.pushes(dev, answered_only=False)
        self.assertEqual(len(got), count, f"{what}: pushes for {dev.udid}: {got}")

    def healthz(self):
        h = self.vouchd.healthz()
        self.assertStatus(h, 200, "GET /healthz")
        return h.json()

    # -- assertions ---------------------------------------------------------------------------
    def assertWellFormedPush(self, rec, dev, what="", serial=None):
        """One push as APNs expects it, for this device."""
        what = f"{what}: {rec!r}"
        self.assertEqual(rec.problems, [], f"{what}: the stand-in refused it as APNs would")
        self.assertEqual(rec.method, "POST", what)
        self.assertEqual(rec.path.lower(), "/3/device/" + dev.token.hex(), what)
        self.assertRegex(rec.path, r"^/3/device/[0-9a-fA-F]{64}$", what)
        self.assertEqual(rec.headers.get(":scheme"), "https", what)
        self.assertEqual(rec.headers.get("apns-topic"), self.topic, f"{what}: apns-topic")
        self.assertEqual(rec.client_uid, self.topic,
                         f"{what}: the client certificate's subject UID")
        self.assertEqual(rec.headers.get("apns-push-type"), "mdm", f"{what}: apns-push-type")
        self.assertEqual(rec.headers.get("apns-priority"), "10", f"{what}: apns-priority")
        exp = rec.headers.get("apns-expiration")
        self.assertRegex(exp or "", r"^[0-9]+$", f"{what}: apns-expiration is not an integer")
        self.assertNotEqual(int(exp), 0, f"{what}: apns-expiration 0: APNs would try once only")
        self.assertLess(abs(int(exp) - (rec.time + SEVEN_DAYS)), 600,
                        f"{what}: apns-expiration {exp} is not about now + 7 days "
                        f"({int(rec.time + SEVEN_DAYS)})")
        for name in ("apns-topic", "apns-push-type", "apns-expiration", "apns-priority"):
            self.assertEqual(rec.header_count(name), 1, f"{what}: {name} sent more than once")
        self.assertNotIn("authorization", rec.headers,
                         f"{what}: certificate-based pushes carry no provider token")
        self.assertEqual(rec.body, b'{"mdm":"' + dev.push_magic.encode() + b'"}',
                         f"{what}: body")
        if serial is not None:
            self.assertEqual(rec.client_serial, serial, f"{what}: push certificate used")


# ---------------------------------------------------------------------------------------------
class PushDeliveryTest(PushTestCase):
    """Well-formed pushes, exactly one per device per batch, coalesced callers, GET /v1/push,
    attestation requests, devices that connect when pushed."""

    def test_enrollment_push_is_well_formed(self):
        dev = self.new_device()
        dev.enroll()
        recs = self.apns.wait_for_requests(dev.token, 1, DEADLINE_S)
        self.assertWellFormedPush(recs[0], dev, "the push after enrollment",
                                  serial=self.identity.serial)
        self.assertEqual(recs[0].answer, "200")
        self.settle(dev, 1, "one enrollment, one push")
        block = self.wait_push_block(dev, "after the enrollment push", token_state="active",
                                     last_push_result="delivered")
        self.assertRFC3339(block["last_push_at"], "last_push_at")
        conn = [c for c in self.apns.connections if c["conn_id"] == recs[0].conn_id][0]
        self.assertEqual(conn["alpn"], "h2")
        self.assertEqual(conn["client_serial"], self.identity.serial)

    def test_device_without_token_has_push_block_none(self):
        dev = self.new_device()
        self.assertEmpty200(dev.authenticate(), "Authenticate")
        block = self.push_block(dev)
        self.assertEqual(block["token_state"], "none", block)
        self.assertIsNone(block["last_push_at"], block)
        self.assertIsNone(block["last_push_result"], block)
        status, body = self.push_now(dev)
        self.assertEqual(status, 404, body)
        self.assertEqual(body["status"][dev.udid].get("push_error"), "no_token", body)
        time.sleep(1)
        self.assertEqual(self.pushes(dev, answered_only=False), [],
                         "a device without a token was pushed")

    def test_enqueue_pushes_each_device_once(self):
        devs = [self.enroll() for _ in range(5)]
        time.sleep(SETTLE_S)
        for d in devs:
            self.assertEqual(len(self.pushes(d, False)), 1, "one push per enrollment")
        before_conns = len(self.apns.connections)
        batch_conns = []
        for n in range(3):
            counts = {d.udid: len(self.pushes(d)) for d in devs}
            cmd = command_plist("ProfileList")
            out = self.enqueue_ok([d.udid for d in devs], cmd)
            self.assertEqual(out["status"], {d.udid: {"queued": True} for d in devs}, out)
            new = []
            for d in devs:
                recs = self.apns.wait_for_requests(d.token, counts[d.udid] + 1, DEADLINE_S)
                new.append(recs[-1])
            time.sleep(SETTLE_S)
            for d, rec in zip(devs, new):
                got = self.pushes(d, answered_only=False)
                self.assertEqual(len(got), counts[d.udid] + 1,
                                 f"enqueue #{n + 1}: exactly one push per device: {got}")
                self.assertWellFormedPush(rec, d, f"enqueue #{n + 1}")
                self.assertEqual(rec.answer, "200")
            batch_conns.append({r.conn_id for r in new})
            self.assertEqual(len({(r.conn_id, r.stream_id) for r in new}), len(new))
        for n, conns in enumerate(batch_conns):
            self.assertEqual(len(conns), 1,
                             f"enqueue #{n + 1}: the 5 pushes came on {len(conns)} connections, "
                             "not multiplexed on one")
        self.assertEqual(len(self.apns.connections), before_conns,
                         f"new TLS connections for later batches: the connection is not kept "
                         f"({self.apns.connections[before_conns:]})")

        # 3 commands to the 5 devices back to back: at least one push per device, never more
        # than one per device per enqueue (a push in flight serves later enqueues too).
        counts = {d.udid: len(self.pushes(d)) for d in devs}
        for _ in range(3):
            self.enqueue_ok([d.udid for d in devs], command_plist("CertificateList"))
        for d in devs:
            self.apns.wait_for_requests(d.token, counts[d.udid] + 1, DEADLINE_S)
        time.sleep(SETTLE_S)
        for d in devs:
            got = len(self.pushes(d, answered_only=False)) - counts[d.udid]
            self.assertGreaterEqual(got, 1, f"{d.udid}: no push after three enqueues")
            self.assertLessEqual(got, 3, f"{d.udid}: {got} pushes for three enqueues")

        # One udid named twice in one call: one push.
        d = devs[0]
        c0, c1 = len(self.pushes(d)), len(self.pushes(devs[1]))
        r = self.vouchd.enqueue([d.udid, d.udid, devs[1].udid], command_plist("SecurityInfo"))
        self.assertStatus(r, 200, "enqueue naming a device twice")
        self.apns.wait_for_requests(d.token, c0 + 1, DEADLINE_S)
        self.apns.wait_for_requests(devs[1].token, c1 + 1, DEADLINE_S)
        self.settle(d, c0 + 1, "a device named twice in one enqueue")

        # The devices find every command when they connect.
        for d in devs:
            queued = [c for c in self.vouchd.commands(d.udid) if c["status"] == "queued"]
            self.assertEqual(len(queued), 1 + 3 + 3 + (1 if d in devs[:2] else 0), queued)

    def test_enqueue_to_unknown_device_pushes_nothing(self):
        before = len(self.apns.requests())
        r = self.vouchd.enqueue([str(uuid.uuid4()).upper()], command_plist("ProfileList"))
        self.assertStatus(r, 404, "enqueue to an unknown device")
        time.sleep(1)
        self.assertEqual(len(self.apns.requests()), before)

    def test_push_endpoint(self):
        a, b = self.enroll(), self.enroll()
        unknown = str(uuid.uuid4()).upper()
        status, body = self.push_now(a, b, unknown)
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body["status"]), {a.udid, b.udid, unknown}, body)
        for d in (a, b):
            recs = self.pushes(d)
            self.assertEqual(len(recs), 2, f"{d.udid}: enrollment push + one from GET: {recs}")
            self.assertWellFormedPush(recs[-1], d, "GET /v1/push")
            self.assertEqual(body["status"][d.udid], {"push_result": recs[-1].apns_id},
                             f"push_result must be the apns-id APNs answered: {body}")
            block = self.wait_push_block(d, "after GET /v1/push", last_push_result="delivered",
                                         token_state="active")
            self.assertRFC3339(block["last_push_at"])
        self.assertIn("push_error", body["status"][unknown], body)
        status, body = self.push_now(unknown)
        self.assertEqual(status, 404, f"no device delivered: {body}")
        self.assertIn("push_error", body["status"][unknown], body)
        r = self.vouchd.admin("GET", f"/v1/push/{a.udid}", token=None)
        self.assertStatus(r, 401, "GET /v1/push without the admin token")
        self.settle(a, 2, "after GET /v1/push")

    def test_attestation_requests_push(self):
        a, b, c = self.enroll(), self.enroll(), self.enroll()
        for d in (a, b, c):
            self.assertEmpty200(d.settle_attestation(), "enrollment attestation answered")
        r = self.vouchd.admin("POST", f"/v1/devices/{a.udid}/attest")
        self.assertStatus(r, 200, "POST /v1/devices/{udid}/attest")
        recs = self.apns.wait_for_requests(a.token, 2, DEADLINE_S)
        self.assertWellFormedPush(recs[-1], a, "after POST .../attest")
        r = self.vouchd.admin("POST", "/v1/attest", body=json.dumps({"udids": [b.udid, c.udid]}),
                              content_type="application/json")
        self.assertStatus(r, 200, "POST /v1/attest")
        for d in (b, c):
            recs = self.apns.wait_for_requests(d.token, 2, DEADLINE_S)
            self.assertWellFormedPush(recs[-1], d, "after POST /v1/attest")
        self.settle(a, 2, "one attestation request, one push")
        self.settle(b, 2, "one attestation request, one push")
        self.assertEqual(len(self.pushes(c)), 2)

    def test_attest_while_pending_pushes_again(self):
        # The enrollment's request is still unanswered: asking again queues nothing new but wakes
        # the device once more (it owes that answer), and the device gets the same command.
        d = self.enroll()
        self.apns.wait_for_requests(d.token, 1, DEADLINE_S)
        r = self.vouchd.admin("POST", f"/v1/devices/{d.udid}/attest")
        self.assertStatus(r, 200, "POST /v1/devices/{udid}/attest while one is pending")
        body = r.json()
        self.assertIs(body["queued"], False, body)
        recs = self.apns.wait_for_requests(d.token, 2, DEADLINE_S)
        self.assertWellFormedPush(recs[-1], d, "after POST .../attest while pending")
        self.settle(d, 2, "one push per ask")
        cmd = d.idle().plist()
        self.assertEqual(cmd["CommandUUID"], body["command_uuid"], "the pending request")

    def test_concurrent_callers_share_one_push(self):
        dev = self.enroll()
        n0 = len(self.pushes(dev))
        release = threading.Event()
        self.apns.script(dev.token, ok().held(release))
        results = []

        def get():
            results.append(self.push_now(dev))

        threads = [threading.Thread(target=get)]
        threads[0].start()
        try:
            self.apns.wait_for_requests(dev.token, n0 + 1, DEADLINE_S, answered_only=False)
            coalesced0 = metric(self.metrics_text(), "vouch_push_coalesced_total")
            for _ in range(2):
                t = threading.Thread(target=get)
                t.start()
                threads.append(t)
            self.enqueue_ok(dev.udid, command_plist("ProfileList"))
            if coalesced0 is not None:
                wait_for(lambda: metric(self.metrics_text(), "vouch_push_coalesced_total")
                         >= coalesced0 + 3, DEADLINE_S,
                         what="the two GETs and the enqueue to join the push in flight")
            else:
                time.sleep(1.0)
            self.assertEqual(len(self.pushes(dev, answered_only=False)), n0 + 1,
                             "a second push to a device with one in flight")
        finally:
            release.set()
            for t in threads:
                t.join(timeout=60)
        recs = self.pushes(dev)
        self.assertEqual(len(results), 3, results)
        for status, body in results:
            self.assertEqual(status, 200, body)
            self.assertEqual(body["status"][dev.udid], {"push_result": recs[n0].apns_id}, body)
        self.settle(dev, n0 + 1, "three GETs and an enqueue during one push in flight")

    def test_new_token_is_used(self):
        dev = self.enroll()
        old = dev.token
        dev.token = secrets.token_bytes(32)
        dev.push_magic = str(uuid.uuid4()).upper()
        self.assertEmpty200(dev.token_update(), "TokenUpdate with a new token")
        self.enqueue_ok(dev.udid, command_plist("ProfileList"))
        recs = self.apns.wait_for_requests(dev.token, 1, DEADLINE_S)
        self.assertWellFormedPush(recs[0], dev, "push after a new token and PushMagic")
        time.sleep(SETTLE_S)
        self.assertEqual(len(self.apns.requests_for(old, False)), 1,
                         "the old token was pushed after the TokenUpdate replaced it")

    def test_devices_connect_when_pushed(self):
        """enqueue -> push -> the device connects -> the result is stored; nothing but the push
        makes the simulated device connect."""
        responder = PushResponder(self.apns)
        try:
            dev = responder.add(self.new_device())
            dev.enroll()
            wait_for(lambda: self.attestation_of(dev.udid)["status"] == "unsupported",
                     DEADLINE_S, what="the pushed device to answer its attestation request")
            cmd = command_plist("DeviceInformation", Queries=["DeviceName", "OSVersion"])
            self.enqueue_ok(dev.udid, cmd)
            wait_for(lambda: [c["status"] for c in self.command_status(
                dev.udid, cmd["CommandUUID"])] == ["Acknowledged"], DEADLINE_S,
                what="the pushed device to acknowledge the command")
            self.assertEqual(responder.errors, [], "\n".join(responder.errors))
            self.assertEqual(responder.connects[dev.udid], len(self.pushes(dev)),
                             "the device connected once per push")
        finally:
            responder.close()

    def test_metrics(self):
        text = self.metrics_text()
        samples, types = parse_metrics(text)
        for outcome in ("delivered", "unregistered", "rejected", "forbidden", "transient"):
            self.assertIn(f'vouch_pushes_total{{outcome="{outcome}"}}', samples)
        self.assertEqual(types.get("vouch_pushes_total"), "counter")
        self.assertIn("vouch_apns_retries_total", samples)
        days = self.certificate_days_left()
        self.assertIsNotNone(days, "vouch_push_certificate_expiry_seconds")
        self.assertIn(days, (self.push_cert_days - 1, self.push_cert_days), text)
        d0 = samples['vouch_pushes_total{outcome="delivered"}']
        self.enroll()
        wait_for(lambda: self.pushes_total("delivered") >= d0 + 1, DEADLINE_S,
                 what="vouch_pushes_total{outcome=delivered} to count the push")
        self.assertEqual(self.healthz().get("push"), "ok")


# ---------------------------------------------------------------------------------------------
class PushAnswersTest(PushTestCase):
    """Every APNs answer: 410, 400, 403, 429, 5xx, GOAWAY, a dropped connection."""

    def test_410_kills_the_token_until_a_newer_token_update(self):
        dev = self.enroll()
        control = self.enroll()
        u0 = self.pushes_total("unregistered")
        time.sleep(1.2)  # APNs' timestamp must be newer than the TokenUpdate, in whole seconds
        self.apns.script(dev.token, unregistered())
        status, body = self.push_now(dev)
        self.assertEqual(status, 404, body)
        self.assertEqual(body["status"][dev.udid].get("push_error"), "unregistered", body)
        self.wait_push_block(dev, "after 410", token_state="dead",
                             last_push_result="unregistered")
        wait_for(lambda: self.pushes_total("unregistered") >= u0 + 1, DEADLINE_S,
                 what="vouch_pushes_total{outcome=unregistered}")
        n = len(self.pushes(dev))

        # No push to a dead token: an enqueue pushes the control device only.
        c0 = len(self.pushes(control))
        out = self.enqueue_ok([dev.udid, control.udid], command_plist("ProfileList"))
        self.assertTrue(out["status"][dev.udid]["queued"], out)
        self.apns.wait_for_requests(control.token, c0 + 1, DEADLINE_S)
        self.settle(dev, n, "enqueue to a device whose token is dead")
        status, body = self.push_now(dev)
        self.assertEqual(status, 404, body)
        self.assertIn("push_error", body["status"][dev.udid], body)
        self.assertNotEqual(body["status"][dev.udid]["push_error"], "delivered")
        self.assertEqual(len(self.pushes(dev, False)), n, "GET /v1/push pushed a dead token")
        self.assertEqual(self.push_block(dev)["token_state"], "dead")

        # A TokenUpdate (newer than APNs' timestamp) revives it, same token.
        self.assertEmpty200(dev.token_update(), "TokenUpdate after 410")
        self.wait_push_block(dev, "after the new TokenUpdate", token_state="active")
        self.enqueue_ok(dev.udid, command_plist("CertificateList"))
        recs = self.apns.wait_for_requests(dev.token, n + 1, DEADLINE_S)
        self.assertWellFormedPush(recs[-1], dev, "push after the token is revived")
        self.assertEqual(recs[-1].answer, "200")
        self.wait_push_block(dev, "after the revived token's push", token_state="active",
                             last_push_result="delivered")
        self.settle(dev, n + 1, "one enqueue after revival")

    def test_410_older_than_the_token_update_leaves_the_token_alive(self):
        dev = self.enroll()
        self.apns.script(dev.token, unregistered(timestamp_ms=now_ms() - 3600 * 1000))
        status, body = self.push_now(dev)
        self.assertEqual(body["status"][dev.udid].get("push_error"), "unregistered", body)
        self.wait_push_block(dev, "410 stamped before the last TokenUpdate",
                             last_push_result="unregistered")
        self.assertEqual(self.push_block(dev)["token_state"], "active",
                         "a 410 older than the device's last TokenUpdate must not kill the "
                         "token it sent since")
        n = len(self.pushes(dev))
        self.enqueue_ok(dev.udid, command_plist("ProfileList"))
        self.apns.wait_for_requests(dev.token, n + 1, DEADLINE_S)

    def test_410_right_after_a_token_update_kills_the_token(self):
        """APNs answers 410 for the push that follows the enrollment at once (its timestamp is
        a few milliseconds after the TokenUpdate, within the same second): the token is dead as
        of then, since no TokenUpdate came after it."""
        dev = self.new_device()
        # Start just after a second boundary, so that the TokenUpdate and APNs' timestamp fall
        # in the same second (the case that a comparison in whole seconds gets wrong).
        frac = time.time() % 1
        time.sleep((1.05 - frac) if frac > 0.05 else 0)
        self.apns.script(dev.token, unregistered())
        self.assertEmpty200(dev.authenticate(), "Authenticate")
        t0 = time.time()
        self.assertEmpty200(dev.token_update(), "TokenUpdate")
        recs = self.apns.wait_for_requests(dev.token, 1, DEADLINE_S)
        self.assertEqual(recs[0].answer, "410")
        ts = recs[0].error_body["timestamp"]
        self.assertGreater(ts, int(t0 * 1000), "APNs' timestamp is after the TokenUpdate")
        same_second = int(t0) == ts // 1000
        self.wait_push_block(dev, "410 with a timestamp after the TokenUpdate"
                             + (" (same second)" if same_second else ""),
                             token_state="dead", last_push_result="unregistered")

    def test_410_for_a_replaced_token_spares_the_new_one(self):
        """A push to the old token is in flight when the device sends a TokenUpdate with a new
        token; APNs then answers 410 for the old one. The new token is not dead."""
        dev = self.enroll()
        old = dev.token
        answer = threading.Event()
        self.apns.script(old, unregistered().held(answer))
        result = []
        t = threading.Thread(target=lambda: result.append(self.push_now(dev)))
        t.start()
        try:
            self.apns.wait_for_requests(old, 2, DEADLINE_S, answered_only=False)
            dev.token = secrets.token_bytes(32)
            self.assertEmpty200(dev.token_update(), "TokenUpdate with a new token")
            time.sleep(1.2)  # APNs' timestamp comes clearly after the TokenUpdate
        finally:
            answer.set()
            t.join(timeout=60)
        self.assertEqual(result[0][1]["status"][dev.udid].get("push_error"), "unregistered",
                         result)
        self.wait_push_block(dev, "410 for the old token", last_push_result="unregistered")
        self.assertEqual(self.push_block(dev)["token_state"], "active",
                         "the 410 was for the token the device replaced: its new token is "
                         "alive")
        self.enqueue_ok(dev.udid, command_plist("ProfileList"))
        recs = self.apns.wait_for_requests(dev.token, 1, DEADLINE_S)
        self.assertWellFormedPush(recs[0], dev, "push to the new token")

    def test_400_is_permanent(self):
        r0 = self.pushes_total("rejected")
        for reason in ("BadDeviceToken", "DeviceTokenNotForTopic", "TopicDisallowed"):
            with self.subTest(reason=reason):
                dev = self.enroll()
                self.apns.script(dev.token, then=rejected(reason))
                retries0 = self.retries_total()
                status, body = self.push_now(dev)
                self.assertEqual(status, 404, body)
                self.assertEqual(body["status"][dev.udid],
                                 {"push_error": "rejected", "reason": reason}, body)
                self.assertEqual(len(self.pushes(dev)), 2, "enrollment push + one, no retry")
                self.wait_push_block(dev, f"400 {reason}", last_push_result="rejected",
                                     token_state="active")
                self.settle(dev, 2, f"400 {reason} is not retried")
                self.assertEqual(self.retries_total(), retries0, "a 400 was retried")
        self.assertGreaterEqual(self.pushes_total("rejected"), r0 + 3)

    def _retried_then_delivered(self, answers, what, min_attempts=None):
        dev = self.enroll()
        n0 = len(self.pushes(dev))
        retries0 = self.retries_total()
        self.apns.script(dev.token, *answers)
        status, body = self.push_now(dev)
        recs = self.pushes(dev)[n0:]
        self.assertEqual(status, 200, f"{what}: {body}; requests: {recs}")
        self.assertEqual(body["status"][dev.udid], {"push_result": recs[-1].apns_id},
                         f"{what}: the apns-id of the delivering answer: {recs}")
        self.assertEqual([r.answer for r in recs[:-1]], [a.label() for a in answers],
                         f"{what}: the attempts")
        self.assertEqual(recs[-1].answer, "200", what)
        for r in recs:
            self.assertWellFormedPush(r, dev, what)
        for a, b in zip(recs, recs[1:]):
            self.assertGreaterEqual(b.monotonic - a.monotonic, 0.2,
                                    f"{what}: retried without backing off: {recs}")
        self.wait_push_block(dev, what, last_push_result="delivered", token_state="active")
        self.settle(dev, n0 + len(recs), f"{what}: nothing more once delivered")
        if min_attempts is not None:
            self.assertGreaterEqual(self.retries_total(), retries0 + min_attempts - 1,
                                    f"{what}: vouch_apns_retries_total")
        return recs

    def test_429_then_200_is_retried(self):
        recs = self._retried_then_delivered([too_many_requests()], "429 then 200",
                                            min_attempts=2)
        self.assertEqual(len(recs), 2)

    def test_500_twice_then_200_is_retried(self):
        recs = self._retried_then_delivered([server_error(), server_error()],
                                            "500 twice then 200", min_attempts=3)
        self.assertEqual(len(recs), 3)

    def test_503_then_200_is_retried(self):
        self._retried_then_delivered([unavailable()], "503 then 200", min_attempts=2)

    def test_goaway_is_recovered(self):
        dev = self.enroll()
        n0 = len(self.pushes(dev))
        conns0 = len(self.apns.connections)
        self.apns.script(dev.token, goaway())
        status, body = self.push_now(dev)
        recs = self.pushes(dev)[n0:]
        self.assertEqual(status, 200, f"GOAWAY then 200: {body}; requests {recs}")
        self.assertEqual(recs[0].answer, "goaway", recs)
        self.assertEqual(recs[-1].answer, "200", recs)
        self.assertEqual(body["status"][dev.udid], {"push_result": recs[-1].apns_id})
        self.assertNotEqual(recs[-1].conn_id, recs[0].conn_id,
                            "the push after a GOAWAY must go on a new connection")
        self.assertGreater(len(self.apns.connections), conns0)
        self.wait_push_block(dev, "after GOAWAY", last_push_result="delivered")
        # The new connection serves the next pushes too.
        other = self.enroll()
        self.assertEqual(self.pushes(other)[0].answer, "200")

    def test_dropped_connection_is_recovered(self):
        self._retried_then_delivered([drop()], "connection closed without an answer")

    def test_5xx_always_is_transient_after_5_attempts(self):
        dev = self.enroll()
        n0 = len(self.pushes(dev))
        t0, retries0 = self.pushes_total("transient"), self.retries_total()
        self.apns.script(dev.token, then=server_error())
        status, body = self.push_now(dev)
        self.assertEqual(status, 404, body)
        self.assertEqual(body["status"][dev.udid].get("push_error"), "transient", body)
        recs = self.pushes(dev)[n0:]
        self.assertEqual(len(recs), 5, f"5 attempts in all: {recs}")
        for a, b in zip(recs, recs[1:]):
            self.assertGreaterEqual(b.monotonic - a.monotonic, 0.2, f"no backoff: {recs}")
        self.wait_push_block(dev, "after 5 failed attempts", last_push_result="transient",
                             token_state="active")
        self.assertGreaterEqual(self.pushes_total("transient"), t0 + 1)
        self.assertGreaterEqual(self.retries_total(), retries0 + 4)
        self.apns.script(dev.token)  # back to 200 for whatever sweeps it later

    def test_403_degrades_health_until_a_push_is_delivered(self):
        dev = self.enroll()
        h = self.healthz()
        self.assertEqual((h.get("status"), h.get("push")), ("ok", "ok"), h)
        f0 = self.pushes_total("forbidden")
        self.apns.script(dev.token, forbidden())
        status, body = self.push_now(dev)
        self.assertEqual(status, 404, body)
        self.assertEqual(body["status"][dev.udid].get("push_error"), "forbidden", body)
        h = self.healthz()
        self.assertEqual(h.get("status"), "degraded", h)
        self.assertEqual(h.get("push"), "certificate_refused", h)
        self.assertGreaterEqual(self.pushes_total("forbidden"), f0 + 1)
        self.wait_push_block(dev, "after 403", last_push_result="forbidden")
        self.assertEqual(len(self.pushes(dev)), 2, "a 403 is not retried at once")
        self.assertIn("push certificate", self.vouchd_log_since_test(200))
        status, body = self.push_now(dev)
        self.assertEqual(status, 200, body)
        h = self.healthz()
        self.assertEqual(h.get("status"), "ok", h)
        self.assertEqual(h.get("push"), "ok", h)


# ---------------------------------------------------------------------------------------------
class PushSweepTest(PushTestCase):
    """A device whose pushes keep failing transiently, with commands waiting, is pushed again
    later by the periodic sweep; one with nothing waiting is not."""

    def test_transient_failures_are_pushed_again(self):
        # Nothing waiting: its attestation request is answered, then its push fails.
        idle = self.enroll()
        self.assertEmpty200(idle.settle_attestation(), "attestation answered")
        self.apns.script(idle.token, then=server_error())
        status, body = self.push_now(idle)
        self.assertEqual(body["status"][idle.udid].get("push_error"), "transient", body)
        n_idle = len(self.pushes(idle))
        # Commands waiting (its attestation request): every push fails.
        busy = self.new_device()
        self.apns.script(busy.token, then=server_error())
        busy.enroll()
        self.apns.wait_for_requests(busy.token, 5, ALL_FAILED_DEADLINE_S)
        self.wait_push_block(busy, "after the first failure cycle", last_push_result="transient")
        first_cycle = self.pushes(busy)
        self.assertEqual(len(first_cycle), 5, first_cycle)
        # The next push of the sweep is delivered.
        self.apns.script(busy.token)
        recs = self.apns.wait_for_requests(busy.token, 6, 150)
        self.assertEqual(recs[5].answer, "200", recs)
        self.assertWellFormedPush(recs[5], busy, "the sweep's push")
        self.wait_push_block(busy, "after the sweep's push", last_push_result="delivered")
        time.sleep(SETTLE_S)
        self.assertEqual(len(self.pushes(idle, False)), n_idle,
                         "a device with nothing waiting was pushed again by the sweep")
        self.assertEqual(len(self.pushes(busy, False)), 6, "pushed again once delivered")


# ---------------------------------------------------------------------------------------------
class PushCertificateReloadTest(PushTestCase):
    """SIGHUP reloads the push certificate from the same files without a restart."""

    push_cert_days = 365

    def reload(self, what, expect):
        offset = self.vouchd.log_size()
        self.vouchd.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: expect in self.vouchd.log_tail(400, since=offset), DEADLINE_S,
                 what=f"vouchd to log {expect!r} after SIGHUP ({what})")

    def test_sighup_with_a_new_certificate(self):
        old = type(self).identity
        a = self.enroll()
        self.assertWellFormedPush(self.pushes(a)[0], a, "before SIGHUP", serial=old.serial)

        # A push in flight across the reload, and one waiting for its retry.
        held, fail_later = threading.Event(), threading.Event()
        b, c = self.enroll(), self.enroll()
        self.apns.script(b.token, ok().held(held))
        self.apns.script(c.token, server_error().held(fail_later))
        results = {}

        def get(dev):
            results[dev.udid] = self.push_now(dev)

        threads = [threading.Thread(target=get, args=(d,)) for d in (b, c)]
        for t in threads:
            t.start()
        try:
            self.apns.wait_for_requests(b.token, 2, DEADLINE_S, answered_only=False)
            self.apns.wait_for_requests(c.token, 2, DEADLINE_S, answered_only=False)
            new = self.pki.issue_push_cert(topic=self.topic, days=100)
            self.assertNotEqual(new.serial, old.serial)
            new.write_pem(self.cert_path, self.key_path)
            type(self).identity = new
            self.reload("new certificate", "push certificate reloaded")
        finally:
            held.set()
            fail_later.set()
            for t in threads:
                t.join(timeout=60)
        for d in (b, c):
            status, body = results[d.udid]
            self.assertEqual(status, 200, f"{d.udid}: push across the reload: {body}")
        self.assertEqual(self.pushes(b)[1].client_serial, old.serial,
                         "the push in flight went with the old certificate")
        c_recs = self.pushes(c)
        self.assertEqual([r.answer for r in c_recs[1:]], ["500", "200"], c_recs)
        self.assertEqual(c_recs[2].client_serial, new.serial,
                         "the retry after the reload must use the new certificate")

        # Everything from now on goes with the new certificate, same topic.
        d = self.enroll()
        self.assertWellFormedPush(self.pushes(d)[0], d, "enrollment after SIGHUP",
                                  serial=new.serial)
        n = len(self.pushes(a))
        self.enqueue_ok([a.udid, d.udid], command_plist("ProfileList"))
        recs = self.apns.wait_for_requests(a.token, n + 1, DEADLINE_S)
        self.assertWellFormedPush(recs[-1], a, "enqueue after SIGHUP", serial=new.serial)
        self.assertTrue(any(c["client_serial"] == new.serial for c in self.apns.connections))
        days = self.certificate_days_left()
        self.assertIn(days, (99, 100), "vouch_push_certificate_expiry_seconds after the reload")

    def test_sighup_with_a_broken_file_keeps_the_certificate(self):
        current = type(self).identity
        try:
            with open(self.cert_path, "wb") as f:
                f.write(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                        b"-----END CERTIFICATE-----\n")
            self.reload("garbage certificate", "keeping the current push certificate")
            # A certificate that does not go with the key.
            other = self.pki.issue_push_cert(topic=self.topic)
            with open(self.cert_path, "wb") as f:
                f.write(other.cert_pem())
            self.reload("certificate without its key", "keeping the current push certificate")
            self.assertTrue(self.vouchd.alive())
            dev = self.enroll()
            self.assertWellFormedPush(self.pushes(dev)[0], dev, "after failed reloads",
                                      serial=current.serial)
            self.assertEqual(self.healthz().get("push"), "ok")
        finally:
            current.write_pem(self.cert_path, self.key_path)


# ---------------------------------------------------------------------------------------------
class PushPkcs12Test(PushTestCase):
    """The push certificate as PKCS#12 with a password, expiring in 20 days."""

    pkcs12_password = "correct horse battery staple"
    push_cert_days = 20

    def test_push_with_pkcs12_certificate(self):
        dev = self.enroll()
        self.assertWellFormedPush(self.pushes(dev)[0], dev, "PKCS#12 push certificate",
                                  serial=self.identity.serial)
        days = self.certificate_days_left()
        self.assertIn(days, (19, 20), "vouch_push_certificate_expiry_seconds")
        self.assertRegex(self.vouchd.log_tail(400), r"(?i)expires in 1?[0-9] day",
                         "a push certificate expiring within 30 days is logged")
        self.assertEqual(self.healthz().get("push"), "ok")


class PushLegacyPkcs12Test(PushTestCase):
    """A PKCS#12 as Keychain Access exports an MDM push certificate (and as `openssl pkcs12
    -legacy` writes it): RC2-40 for the certificate, 3DES for the key. OpenSSL 3 reads RC2 only
    with its legacy provider loaded."""

    pkcs12_password = "keychain export"
    pkcs12_legacy = True

    def test_push_with_legacy_pkcs12_certificate(self):
        dev = self.enroll()
        self.assertWellFormedPush(self.pushes(dev)[0], dev, "legacy PKCS#12 push certificate",
                                  serial=self.identity.serial)


# ---------------------------------------------------------------------------------------------
class PushExpiredCertificateTest(PushTestCase):
    """A push certificate that expired 35 days ago: vouchd serves, says so in the log, in
    /metrics and in /healthz (degraded)."""

    push_cert_days = 365
    push_cert_age_days = 400

    def test_expired_certificate_is_reported(self):
        h = self.healthz()
        self.assertEqual(h.get("status"), "degraded", h)
        self.assertEqual(h.get("push"), "certificate_expired", h)
        days = self.certificate_days_left()
        self.assertIsNotNone(days, "vouch_push_certificate_expiry_seconds")
        self.assertLess(days, 0, "vouch_push_certificate_expiry_seconds of an expired certificate")
        self.assertRegex(self.vouchd.log_tail(400), r"(?i)expired",
                         "an expired push certificate is logged")


# ---------------------------------------------------------------------------------------------
class NoPushConfiguredTest(VouchTestCase):
    """Without apns_cert vouchd sends no pushes and says so."""

    def test_push_endpoint_503_without_apns_cert(self):
        dev = self.enrolled_device()
        r = self.vouchd.admin("GET", f"/v1/push/{dev.udid}")
        self.assertStatus(r, 503, "GET /v1/push without apns_cert")
        self.assertStatus(self.vouchd.enqueue(dev.udid, command_plist("ProfileList")), 200,
                          "enqueue still works without pushes")
        h = self.vouchd.healthz()
        self.assertStatus(h, 200, "healthz")
        self.assertEqual(h.json().get("status"), "ok", h)
