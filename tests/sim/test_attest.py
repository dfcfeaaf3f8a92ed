#!/usr/bin/env python3
"""vouch-sim's attestation answers, offline: the stand-in Apple hierarchy, leaves checked byte by
byte and with `openssl verify`, Apple's 7-day rule on a controlled clock, unsupported models, bad
nonces, every --attest-tamper kind, --attest-as-device, and connect against a stub MDM server.

usage: test_attest.py VOUCH_SIM FAKE_APPLE   (meson passes both; openssl must be on PATH)
Standard library only, so it runs wherever the build does.
"""

import base64
import hashlib
import http.server
import json
import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

SIM = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/tests/sim/vouch-sim"
FAKE_APPLE = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "build/tests/lib/fake-apple"
OPENSSL = shutil.which("openssl")

ARC = "1.2.840.113635.100.8."
T0 = 1750000000  # 2025-06-15
DAY = 86400
QUERIES = ["DevicePropertiesAttestation", "UDID", "SerialNumber", "OSVersion", "BuildVersion",
           "ProductName", "Model", "SoftwareUpdateDeviceID"]
FLEET = 20
LEGACY = {6, 9, 16}  # the models of the default fleet 'sim' that cannot attest


# ---- a minimal DER reader: enough to pull the extensions and validity out of a certificate ----

def der_read(data, pos):
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7f
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, data[pos:pos + length], pos + length


def der_items(data):
    pos = 0
    while pos < len(data):
        tag, value, pos = der_read(data, pos)
        yield tag, value


def der_shape(data, depth=0):
    """[(depth, tag, OID text or None)] of every item, constructed ones walked into."""
    shape = []
    for tag, value in der_items(data):
        shape.append((depth, tag, oid_text(value) if tag == 0x06 else None))
        if tag & 0x20:
            shape += der_shape(value, depth + 1)
    return shape


def oid_text(raw):
    first = raw[0]
    parts = [first // 40, first % 40]
    v = 0
    for b in raw[1:]:
        v = (v << 7) | (b & 0x7f)
        if not b & 0x80:
            parts.append(v)
            v = 0
    return ".".join(str(p) for p in parts)


def cert_info(der):
    """{'extensions': [(oid, critical, value)], 'not_before': 'YYMMDDhhmmssZ', 'serial': int}"""
    tag, cert, end = der_read(der, 0)
    assert tag == 0x30 and end == len(der), "not one DER SEQUENCE"
    tbs = list(der_items(next(der_items(cert))[1]))
    idx = 1 if tbs[0][0] == 0xa0 else 0
    serial = int.from_bytes(tbs[idx][1], "big")
    validity = [v.decode() for _, v in der_items(tbs[idx + 3][1])]
    exts = []
    for tag, value in tbs:
        if tag != 0xa3:
            continue
        for _, ext in der_items(next(der_items(value))[1]):
            fields = list(der_items(ext))
            oid = oid_text(fields[0][1])
            critical = len(fields) == 3 and fields[1][1] == b"\xff"
            exts.append((oid, critical, fields[-1][1]))
    return {"extensions": exts, "not_before": validity[0], "not_after": validity[1],
            "serial": serial}


def apple_ext(der, suffix):
    values = [v for oid, _, v in cert_info(der)["extensions"] if oid == ARC + suffix]
    assert len(values) <= 1, f"{suffix} appears {len(values)} times"
    return values[0] if values else None


def read(path):
    with open(path, "rb") as f:
        return f.read()


def utc(t):
    return subprocess.run(["date", "-u", "-d", f"@{t}", "+%y%m%d%H%M%SZ"], check=True,
                          capture_output=True, text=True).stdout.strip()


# ---- helpers ----------------------------------------------------------------------------------

def run(args, input_bytes=None, env=None, expect=0):
    p = subprocess.run(args, input=input_bytes, capture_output=True, timeout=120, env=env)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode} (expected {expect})\n"
                             f"stdout: {p.stdout[-2000:]!r}\nstderr: {p.stderr[-2000:]!r}")
    return p


def command(nonce=..., queries=None, uuid="CMD-1", request_type="DeviceInformation"):
    c = {"RequestType": request_type}
    if queries is not None or request_type == "DeviceInformation":
        c["Queries"] = QUERIES if queries is None else queries
    if nonce is not ...:
        c["DeviceAttestationNonce"] = nonce
    return {"CommandUUID": uuid, "Command": c}


def verify_chain(tmp, items, root, at=None):
    """openssl verify of [leaf, sub...] against root; returns (ok, output)."""
    paths = []
    for i, der in enumerate(items):
        path = os.path.join(tmp, f"item{i}.pem")
        p = run([OPENSSL, "x509", "-inform", "der", "-out", path], input_bytes=der)
        paths.append(path)
    args = [OPENSSL, "verify", "-CAfile", root]
    if at is not None:
        args += ["-attime", str(at)]
    if len(paths) > 1:
        args += ["-untrusted", paths[1]]
    p = run(args + [paths[0]], expect=None)
    return p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


class StubMDM(http.server.ThreadingHTTPServer):
    """Accepts every check-in, hands each device its queued commands, keeps every report."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.lock = threading.Lock()
        self.queues = {}
        self.reports = {}
        self.signed = []  # (body, Mdm-Signature DER) of every request

    def enqueue(self, udid, cmd):
        with self.lock:
            self.queues.setdefault(udid, []).append(plistlib.dumps(cmd))


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = b""
        with self.server.lock:
            self.server.signed.append((body, base64.b64decode(self.headers.get("Mdm-Signature",
                                                                               ""))))
        if self.path == "/mdm/connect":
            msg = plistlib.loads(body)
            udid = msg["UDID"]
            with self.server.lock:
                if msg.get("Status") != "Idle":
                    self.server.reports[(udid, msg["CommandUUID"])] = msg
                queue = self.server.queues.get(udid, [])
                if queue:
                    reply = queue.pop(0)
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class AttestTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vouch-sim-attest-")
        cls.dir = os.path.join(cls.tmp, "state")
        out = json.loads(run([SIM, "init-ca", "--dir", cls.dir]).stdout)
        cls.root = out["attestation_roots"]
        assert out["attestation_roots_created"] is True, out
        cls.stub = StubMDM()
        cls.url = f"http://127.0.0.1:{cls.stub.server_address[1]}"
        threading.Thread(target=cls.stub.serve_forever, daemon=True).start()
        run([SIM, "enroll", "--url", cls.url, "--dir", cls.dir, "--devices", str(FLEET),
             "--key-type", "ec", "--quiet"])
        cls.fleet = [line.split("\t") for line in
                     run([SIM, "list", "--dir", cls.dir]).stdout.decode().splitlines()]

    @classmethod
    def tearDownClass(cls):
        cls.stub.shutdown()
        cls.stub.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def answer(self, device, cmd, *opts, now=T0, state=None):
        p = run([SIM, "answer", "--dir", state or self.dir, "--device", str(device), "--now",
                 str(now), *opts], input_bytes=plistlib.dumps(cmd))
        return plistlib.loads(p.stdout), p.stderr.decode()

    def chain_of(self, report):
        self.assertEqual(report["Status"], "Acknowledged", report)
        return report["QueryResponses"]["DevicePropertiesAttestation"]

    def check_leaf(self, der, dev, nonce, now):
        udid, serial, product, os_version = dev[1], dev[2], dev[3], dev[6]
        info = cert_info(der)
        self.assertEqual(info["not_before"], utc(now))
        self.assertEqual(info["not_after"], utc(now + 91 * DAY))
        self.assertEqual(apple_ext(der, "9.1"), serial.encode())
        self.assertEqual(apple_ext(der, "9.2"), udid.encode())
        self.assertEqual(apple_ext(der, "10.1"), os_version.encode())
        self.assertEqual(apple_ext(der, "10.2"), os_version.encode())
        self.assertEqual(apple_ext(der, "10.3"), os_version.encode())
        self.assertIsNotNone(apple_ext(der, "9.4"), product)
        self.assertEqual(apple_ext(der, "11.1"), nonce)
        for oid, critical, _ in info["extensions"]:
            if oid.startswith(ARC):
                self.assertFalse(critical, oid)
        oids = [oid for oid, _, _ in info["extensions"]]
        self.assertEqual(oids[:2], ["2.5.29.19", "2.5.29.15"])
        self.assertNotIn("2.5.29.14", oids)  # no subject key identifier
        self.assertNotIn("2.5.29.35", oids)  # no authority key identifier

    # ---- honest answers ----

    def test_fresh_answer_matches_the_device_and_verifies(self):
        state = self.fresh_state()
        nonce = os.urandom(32)
        report, _ = self.answer(0, command(nonce), state=state)
        chain = self.chain_of(report)
        self.assertEqual(len(chain), 2)
        dev = self.fleet[0]
        self.check_leaf(chain[0], dev, nonce, T0)
        q = report["QueryResponses"]
        self.assertEqual((q["UDID"], q["SerialNumber"], q["ProductName"], q["OSVersion"]),
                         (dev[1], dev[2], dev[3], dev[6]))
        self.assertEqual(q["SoftwareUpdateDeviceID"].encode(), apple_ext(chain[0], "9.4"))
        ok, out = verify_chain(self.tmp, chain, os.path.join(state, "apple-root.pem"), T0 + 60)
        self.assertTrue(ok, out)
        # 91 days later the leaf has expired.
        ok, out = verify_chain(self.tmp, chain, os.path.join(state, "apple-root.pem"),
                               T0 + 92 * DAY)
        self.assertFalse(ok, out)

    def test_reused_key_leaves_are_the_same_shape_and_verify(self):
        """--attest-reuse-key (load tests) writes one saved key into each leaf a worker mints:
        each leaf must be what a fresh key gives, its CN the SHA-256 of its public key, and
        verify; the devices share the key."""
        state = self.fresh_state()
        devices = [dev for dev in self.fleet[:4] if int(dev[0]) not in LEGACY]
        nonces = {dev[1]: os.urandom(32) for dev in devices}
        for udid, nonce in nonces.items():
            self.stub.enqueue(udid, command(nonce, uuid="NET-RK"))
        p = run([SIM, "connect", "--url", self.url, "--dir", state, "--quiet", "--devices", "4",
                 "--concurrency", "1", "--attest-reuse-key", "--now", str(T0)])
        self.assertEqual(json.loads(p.stdout)["attestations"]["generated"], len(devices))
        keys = set()
        for dev in devices:
            chain = self.chain_of(self.stub.reports[(dev[1], "NET-RK")])
            self.check_leaf(chain[0], dev, nonces[dev[1]], T0)
            ok, out = verify_chain(self.tmp, chain, self.root, T0 + 60)
            self.assertTrue(ok, out)
            spki = run([OPENSSL, "x509", "-inform", "der", "-noout", "-pubkey"],
                       input_bytes=chain[0]).stdout
            der = run([OPENSSL, "pkey", "-pubin", "-outform", "der"], input_bytes=spki).stdout
            text = run([OPENSSL, "pkey", "-pubin", "-noout", "-text"], input_bytes=spki).stdout
            self.assertIn(b"NIST CURVE: P-384", text)
            subject = run([OPENSSL, "x509", "-inform", "der", "-noout", "-subject", "-nameopt",
                           "RFC2253"], input_bytes=chain[0]).stdout.decode()
            self.assertIn("CN=" + hashlib.sha256(der).hexdigest(), subject)
            keys.add(der)
        self.assertEqual(len(keys), 1, "one worker, one reused key")

    def test_every_supported_model_attests(self):
        state = self.fresh_state()
        for dev in self.fleet:
            index = int(dev[0])
            nonce = bytes([index + 1]) * 16
            report, _ = self.answer(index, command(nonce, uuid=f"C{index}"), state=state)
            self.assertEqual(report["Status"], "Acknowledged")
            if index in LEGACY:
                self.assertEqual(dev[10], "no-attest")
                self.assertNotIn("DevicePropertiesAttestation", report["QueryResponses"])
                self.assertEqual(report["QueryResponses"]["UDID"], dev[1])
                continue
            self.assertEqual(dev[10], "attest")
            chain = self.chain_of(report)
            self.check_leaf(chain[0], dev, nonce, T0)
            ok, out = verify_chain(self.tmp, chain, os.path.join(state, "apple-root.pem"), T0)
            self.assertTrue(ok, f"device {index}: {out}")

    def test_seven_day_rule(self):
        state = self.fresh_state()
        n1, n2, n3 = os.urandom(32), os.urandom(32), os.urandom(8)
        first = self.chain_of(self.answer(1, command(n1), now=T0, state=state)[0])
        self.assertEqual(apple_ext(first[0], "11.1"), n1)
        # Same nonce, no nonce, a new nonce within 7 days: the cached chain, byte for byte.
        for nonce, now in ((n1, T0 + DAY), (..., T0 + 2 * DAY), (n2, T0 + 7 * DAY - 1)):
            report, err = self.answer(1, command(nonce), now=now, state=state)
            self.assertEqual(self.chain_of(report), first, f"nonce {nonce!r} at {now}")
            self.assertIn("attestation: cached", err)
        # A new nonce once it is 7 days old: a new attestation minted at the clock.
        report, err = self.answer(1, command(n3), now=T0 + 7 * DAY, state=state)
        second = self.chain_of(report)
        self.assertIn("attestation: generated", err)
        self.assertNotEqual(second[0], first[0])
        self.check_leaf(second[0], self.fleet[1], n3, T0 + 7 * DAY)
        # The cache is per device and persisted: device 2 starts from scratch, device 1 keeps n3.
        report, err = self.answer(2, command(n1), now=T0 + 7 * DAY, state=state)
        self.assertIn("attestation: generated", err)
        report, err = self.answer(1, command(), now=T0 + 30 * DAY, state=state)
        self.assertEqual(self.chain_of(report), second)
        # Older than 7 days but the same nonce: still the cached one.
        report, err = self.answer(1, command(n3), now=T0 + 40 * DAY, state=state)
        self.assertEqual(self.chain_of(report), second)
        # A clock moved backwards does not mint.
        report, err = self.answer(1, command(n1), now=T0, state=state)
        self.assertEqual(self.chain_of(report), second)

    def test_no_nonce_first_time_makes_a_leaf_without_freshness(self):
        state = self.fresh_state()
        chain = self.chain_of(self.answer(3, command(), state=state)[0])
        self.assertIsNone(apple_ext(chain[0], "11.1"))
        # ... and that one is cached: a new nonce within the week gets it back.
        again = self.chain_of(self.answer(3, command(os.urandom(32)), now=T0 + DAY,
                                          state=state)[0])
        self.assertEqual(again, chain)

    def test_clock_from_the_environment(self):
        state = self.fresh_state()
        env = dict(os.environ, VOUCH_SIM_NOW=str(T0 + 12345))
        p = run([SIM, "answer", "--dir", state, "--device", "0"],
                input_bytes=plistlib.dumps(command(b"\x01")), env=env)
        der = plistlib.loads(p.stdout)["QueryResponses"]["DevicePropertiesAttestation"][0]
        self.assertEqual(cert_info(der)["not_before"], utc(T0 + 12345))
        env["VOUCH_SIM_NOW"] = "yesterday"
        run([SIM, "answer", "--dir", state, "--device", "0"],
            input_bytes=plistlib.dumps(command(b"\x01")), env=env, expect=2)

    # ---- what is not an attestation request, and bad nonces ----

    def test_bad_nonce_is_a_command_format_error(self):
        state = self.fresh_state()
        for nonce in (b"", "a string", b"x" * 33, 42):
            report, err = self.answer(0, command(nonce), state=state)
            self.assertEqual(report["Status"], "CommandFormatError", (nonce, report))
            self.assertNotIn("QueryResponses", report)
        self.assertFalse(os.path.exists(os.path.join(state, "attestations")))
        # 1 and 32 bytes are fine.
        for nonce in (b"\x00", b"\xff" * 32):
            chain = self.chain_of(self.answer(4, command(nonce), state=self.fresh_state())[0])
            self.assertEqual(apple_ext(chain[0], "11.1"), nonce)

    def test_unsupported_models_ignore_both_keys(self):
        for index in sorted(LEGACY):
            for nonce in (os.urandom(32), b"", "junk"):
                report, err = self.answer(index, command(nonce))
                self.assertEqual(report["Status"], "Acknowledged", report)
                q = report["QueryResponses"]
                self.assertNotIn("DevicePropertiesAttestation", q)
                self.assertEqual(q["UDID"], self.fleet[index][1])
                self.assertIn("SoftwareUpdateDeviceID", q)
                self.assertIn("attestation: unsupported", err)

    def test_other_query_names_get_no_attestation(self):
        for queries in (["DeviceAttestation", "UDID"], ["UDID"], ["devicepropertiesattestation"]):
            report, _ = self.answer(0, command(os.urandom(32), queries=queries))
            self.assertEqual(report["Status"], "Acknowledged")
            self.assertNotIn("DevicePropertiesAttestation", report["QueryResponses"])
        # Without Queries a device answers everything it knows, but never an attestation.
        report, _ = self.answer(0, {"CommandUUID": "X", "Command": {
            "RequestType": "DeviceInformation", "DeviceAttestationNonce": b"\x01"}})
        self.assertNotIn("DevicePropertiesAttestation", report["QueryResponses"])
        self.assertIn("SoftwareUpdateDeviceID", report["QueryResponses"])

    def test_other_answers_carry_no_attestation(self):
        for answer, status in (("notnow", "NotNow"), ("error", "Error"),
                               ("formaterror", "CommandFormatError")):
            report, _ = self.answer(0, command(os.urandom(32)), "--answer", answer)
            self.assertEqual(report["Status"], status)
            self.assertNotIn("QueryResponses", report)

    # ---- negative tests ----

    def test_tamper_kinds(self):
        state = self.fresh_state()
        root = os.path.join(state, "apple-root.pem")
        dev = self.fleet[0]
        nonce = os.urandom(32)
        honest = self.chain_of(self.answer(0, command(nonce), state=state)[0])
        cache = os.path.join(state, "attestations", dev[1] + ".pem")
        cached = read(cache)
        for kind in ("other-root", "expired", "wrong-os", "no-freshness", "wrong-nonce",
                     "garbage", "empty"):
            n = os.urandom(32)
            report, err = self.answer(0, command(n), "--attest-tamper", kind, state=state,
                                      now=T0 + DAY)
            self.assertIn("attestation: tampered", err)
            chain = self.chain_of(report)
            q = report["QueryResponses"]
            if kind == "empty":
                self.assertEqual(chain, [])
                continue
            if kind == "garbage":
                self.assertEqual(len(chain), 2)
                for item in chain:
                    p = run([OPENSSL, "x509", "-inform", "der", "-noout"], input_bytes=item,
                            expect=None)
                    self.assertNotEqual(p.returncode, 0, item)
                continue
            ok, out = verify_chain(self.tmp, chain, root, T0 + DAY)
            leaf = chain[0]
            self.assertEqual(apple_ext(leaf, "9.2"), dev[1].encode())
            if kind == "other-root":
                self.assertFalse(ok, out)
                self.assertNotEqual(chain[1], honest[1])
                self.assertEqual(apple_ext(leaf, "11.1"), n)
                continue
            if kind == "expired":
                self.assertFalse(ok, out)
                self.assertIn("expired", out)
                self.assertEqual(apple_ext(leaf, "11.1"), n)
                continue
            self.assertTrue(ok, f"{kind}: {out}")
            if kind == "wrong-os":
                self.assertNotEqual(apple_ext(leaf, "10.1"), q["OSVersion"].encode())
                self.assertEqual(apple_ext(leaf, "11.1"), n)
            elif kind == "no-freshness":
                self.assertIsNone(apple_ext(leaf, "11.1"))
            elif kind == "wrong-nonce":
                self.assertNotIn(apple_ext(leaf, "11.1"), (n, nonce))
                self.assertEqual(len(apple_ext(leaf, "11.1")), 32)
        self.assertEqual(read(cache), cached, "a tampered answer changed the cache")

    def test_attest_as_another_device(self):
        state = self.fresh_state()
        nonce = os.urandom(32)
        report, err = self.answer(1, command(nonce), "--attest-as-device", "5", state=state)
        chain = self.chain_of(report)
        self.assertEqual(report["UDID"], self.fleet[1][1])
        self.assertEqual(report["QueryResponses"]["UDID"], self.fleet[1][1])
        self.check_leaf(chain[0], self.fleet[5], nonce, T0)
        ok, out = verify_chain(self.tmp, chain, os.path.join(state, "apple-root.pem"), T0)
        self.assertTrue(ok, out)
        run([SIM, "answer", "--dir", state, "--device", "1", "--attest-as-device", "99"],
            input_bytes=plistlib.dumps(command(nonce)), expect=1)

    def test_legacy_leaf(self):
        state = self.fresh_state()
        # The first 20 devices all run 17.x where they can attest: grow this copy of the fleet
        # until it has a supported device on 16.x.
        run([SIM, "enroll", "--url", self.url, "--dir", state, "--devices", "80", "--key-type",
             "ec", "--quiet"])
        fleet = [line.split("\t") for line in
                 run([SIM, "list", "--dir", state]).stdout.decode().splitlines()]
        old = [int(d[0]) for d in fleet if d[10] == "attest" and d[6].startswith("16.")]
        self.assertTrue(old, "no supported device on 16.x among 80")
        report, _ = self.answer(0, command(b"\x01"), "--attest-legacy-leaf", state=state)
        self.assertEqual(apple_ext(self.chain_of(report)[0], "10.1"), fleet[0][6].encode())
        report, _ = self.answer(old[0], command(b"\x01"), "--attest-legacy-leaf", state=state)
        leaf = self.chain_of(report)[0]
        for suffix in ("9.4", "10.1", "10.3"):
            self.assertIsNone(apple_ext(leaf, suffix))
        self.assertEqual(apple_ext(leaf, "10.2"), fleet[old[0]][6].encode())
        self.assertEqual(apple_ext(leaf, "9.2"), fleet[old[0]][1].encode())
        # Without the option the same device states every property (a week later: new nonce).
        report, _ = self.answer(old[0], command(b"\x02"), state=state, now=T0 + 8 * DAY)
        self.check_leaf(self.chain_of(report)[0], fleet[old[0]], b"\x02", T0 + 8 * DAY)

    def test_option_errors(self):
        cmd = plistlib.dumps(command(b"\x01"))
        for args in (["--attest-tamper", "bogus"], ["--attest-tamper", "none"], ["--now", "-5"],
                     ["--now", "12x"], ["--attest-as-device", "x"]):
            run([SIM, "answer", "--dir", self.dir, "--device", "0", *args], input_bytes=cmd,
                expect=2)
        run([SIM, "answer", "--dir", self.dir], input_bytes=cmd, expect=2)
        run([SIM, "answer", "--dir", self.dir, "--device", str(FLEET)], input_bytes=cmd,
            expect=1)
        run([SIM, "list", "--dir", self.dir, "--attest-tamper", "empty"], expect=2)

    # ---- over the network ----

    def test_connect_answers_attestation_requests(self):
        nonces = {}
        for dev in self.fleet:
            nonces[dev[1]] = os.urandom(32)
            self.stub.enqueue(dev[1], command(nonces[dev[1]], uuid="NET-1"))
        p = run([SIM, "connect", "--url", self.url, "--dir", self.dir, "--quiet", "--now",
                 str(T0 + 100 * DAY)])
        summary = json.loads(p.stdout)
        self.assertEqual(summary["attestations"]["unsupported"], len(LEGACY), summary)
        self.assertEqual(summary["attestations"]["generated"] + summary["attestations"]["cached"],
                         FLEET - len(LEGACY), summary)
        for dev in self.fleet:
            report = self.stub.reports[(dev[1], "NET-1")]
            if int(dev[0]) in LEGACY:
                self.assertNotIn("DevicePropertiesAttestation", report["QueryResponses"])
                continue
            chain = self.chain_of(report)
            ok, out = verify_chain(self.tmp, chain, self.root, T0 + 100 * DAY)
            self.assertTrue(ok, out)
        # Negative runs over the network, several workers each with its own hierarchy copies.
        for opts, uuid in ((["--attest-tamper", "other-root"], "NET-OR"),
                           (["--attest-as-device", "0"], "NET-AS")):
            for dev in self.fleet:
                self.stub.enqueue(dev[1], command(os.urandom(32), uuid=uuid))
            p = run([SIM, "connect", "--url", self.url, "--dir", self.dir, "--quiet",
                     "--concurrency", "4", "--now", str(T0 + 100 * DAY), *opts])
            summary = json.loads(p.stdout)
            self.assertEqual(summary["attestations"]["tampered"], FLEET - len(LEGACY), summary)
            for dev in self.fleet:
                if int(dev[0]) in LEGACY:
                    continue
                report = self.stub.reports[(dev[1], uuid)]
                chain = self.chain_of(report)
                ok, out = verify_chain(self.tmp, chain, self.root, T0 + 100 * DAY)
                self.assertEqual(ok, uuid == "NET-AS", out)
                if uuid == "NET-AS":
                    self.assertEqual(apple_ext(chain[0], "9.2"), self.fleet[0][1].encode())
                    self.assertEqual(report["UDID"], dev[1])
        # A bad nonce over the network: CommandFormatError, counted.
        self.stub.enqueue(self.fleet[0][1], command(b"", uuid="NET-2"))
        p = run([SIM, "connect", "--url", self.url, "--dir", self.dir, "--quiet", "--devices", "1"])
        summary = json.loads(p.stdout)
        self.assertEqual(summary["attestations"]["bad_nonce"], 1, summary)
        self.assertEqual(summary["answers"]["CommandFormatError"], 1, summary)
        self.assertEqual(self.stub.reports[(self.fleet[0][1], "NET-2")]["Status"],
                         "CommandFormatError")

    # ---- Mdm-Signature ----

    def cms_verifies(self, body, sig, ca):
        """openssl cms -verify of a detached signature over body, the signer chained to ca."""
        paths = [os.path.join(self.tmp, n) for n in ("sig.der", "body")]
        for path, data in zip(paths, (sig, body)):
            with open(path, "wb") as f:
                f.write(data)
        return run([OPENSSL, "cms", "-verify", "-binary", "-inform", "DER", "-in", paths[0],
                    "-content", paths[1], "-CAfile", ca, "-purpose", "any", "-out", os.devnull],
                   expect=None).returncode == 0

    def test_signatures_verify_and_have_openssls_shape(self):
        ca = os.path.join(self.dir, "ca.pem")
        with self.stub.lock:
            signed = list(self.stub.signed[:4])  # setUpClass's enroll: P-256 identities
        self.assertEqual(len(signed), 4)
        for body, sig in signed:
            self.assertTrue(self.cms_verifies(body, sig, ca), body)
            self.assertFalse(self.cms_verifies(body + b"\n", sig, ca))
        # The shape of what OpenSSL's CMS layer makes with the same identity and flags.
        pem = read(os.path.join(self.dir, "devices.pem")).decode()
        cert = pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index("-----END PRIVATE KEY-----")
                   + len("-----END PRIVATE KEY-----")] + "\n"
        signer = os.path.join(self.tmp, "signer.pem")
        with open(signer, "w") as f:
            f.write(cert)
        reference = run([OPENSSL, "cms", "-sign", "-binary", "-nosmimecap", "-md", "sha256",
                         "-signer", signer, "-outform", "DER"], input_bytes=signed[0][0]).stdout
        self.assertEqual(der_shape(signed[0][1]), der_shape(reference))
        # The P-256 identity as issued: the key PEM is what OpenSSL writes for that key, the
        # certificate states its public key and chains to the CA.
        key_pem = cert[cert.index("-----BEGIN PRIVATE KEY-----"):]
        self.assertEqual(run([OPENSSL, "pkey"], input_bytes=key_pem.encode()).stdout.decode(),
                         key_pem)
        pubkeys = [run(args, input_bytes=pem.encode()).stdout for args, pem in (
            ([OPENSSL, "x509", "-noout", "-pubkey"], cert),
            ([OPENSSL, "pkey", "-pubout"], key_pem))]
        self.assertEqual(pubkeys[0], pubkeys[1])
        run([OPENSSL, "verify", "-CAfile", ca, signer])
        # --bad-signature signs one byte more than it sends; RSA identities take OpenSSL's CMS.
        rsa = os.path.join(self.tmp, "rsa-state")
        run([SIM, "enroll", "--url", self.url, "--dir", rsa, "--devices", "1", "--quiet"])
        with self.stub.lock:
            body, sig = self.stub.signed[-1]
        self.assertTrue(self.cms_verifies(body, sig, os.path.join(rsa, "ca.pem")))
        for state, ca_of in ((self.dir, ca), (rsa, os.path.join(rsa, "ca.pem"))):
            run([SIM, "connect", "--url", self.url, "--dir", state, "--devices", "1", "--quiet",
                 "--bad-signature"])
            with self.stub.lock:
                body, sig = self.stub.signed[-1]
            self.assertFalse(self.cms_verifies(body, sig, ca_of))
            self.assertTrue(self.cms_verifies(body + b"\n", sig, ca_of))

    # ---- fake-apple, the command line ----

    def test_fake_apple_cli(self):
        d = os.path.join(self.tmp, "cli")
        root = run([FAKE_APPLE, "init", "--dir", d]).stdout.decode().strip()
        self.assertEqual(root, os.path.join(d, "apple-root.pem"))
        nonce = os.urandom(32)
        prefix = os.path.join(self.tmp, "cli-chain")
        out = run([FAKE_APPLE, "leaf", "--dir", d, "--udid", "U-1", "--serial", "S1", "--os",
                   "17.5", "--nonce", nonce.hex(), "--not-before", str(T0), "--sudid", "D73AP",
                   "--blank", "sepos", "--omit", "1.2.840.113635.100.8.10.3",
                   "--duplicate", "9.1", "--extra", "1.2.3.4=0500", "--out-chain",
                   prefix]).stdout.decode().split()
        self.assertEqual(out, [prefix + "-0.der", prefix + "-1.der"])
        chain = [read(p) for p in out]
        exts = cert_info(chain[0])["extensions"]
        self.assertEqual([v for o, _, v in exts if o == ARC + "10.2"], [b""])
        self.assertEqual([v for o, _, v in exts if o == ARC + "10.3"], [])
        self.assertEqual([v for o, _, v in exts if o == ARC + "9.1"], [b"S1", b"S1"])
        self.assertEqual([v for o, _, v in exts if o == "1.2.3.4"], [b"\x05\x00"])
        self.assertEqual(apple_ext(chain[0], "11.1"), nonce)
        self.assertEqual(apple_ext(chain[0], "10.1"), b"17.5")
        self.assertEqual(cert_info(chain[0])["not_before"], utc(T0))
        ok, msg = verify_chain(self.tmp, chain, root, T0)
        self.assertTrue(ok, msg)
        # Signed by the root directly, or by another hierarchy's sub CA: openssl refuses both.
        run([FAKE_APPLE, "leaf", "--dir", d, "--udid", "U", "--sign-with-root", "--not-before",
             str(T0), "--out-chain", prefix + "r"])
        ok, msg = verify_chain(self.tmp, [read(prefix + "r-0.der"),
                                          read(prefix + "r-1.der")], root, T0)
        # OpenSSL accepts a leaf the root signed itself (the path is leaf -> root); a verifier
        # that wants Apple's exact shape must check the path length on its own.
        self.assertTrue(ok, msg)
        d2 = os.path.join(self.tmp, "cli2")
        run([FAKE_APPLE, "init", "--dir", d2])
        run([FAKE_APPLE, "leaf", "--dir", d, "--signer-dir", d2, "--udid", "U", "--not-before",
             str(T0), "--out-chain", prefix + "o"])
        ok, msg = verify_chain(self.tmp, [read(prefix + "o-0.der"),
                                          read(prefix + "o-1.der")], root, T0)
        self.assertFalse(ok, msg)
        # The macOS shape: the real leaf's SIP, secure boot and kexts encodings.
        run([FAKE_APPLE, "leaf", "--dir", d, "--macos", "--os", "15.5", "--out-chain",
             prefix + "m"])
        mac = read(prefix + "m-0.der")
        self.assertEqual(apple_ext(mac, "13.1"), b"\x02\x01\x00")
        self.assertEqual(apple_ext(mac, "13.3"), b"\x02\x01\x00")
        self.assertEqual(apple_ext(mac, "13.2"), b"Full Security")
        for bad in (["--nonce", "abc"], ["--omit", "9.9"], ["--set", "os"], ["--bogus"]):
            run([FAKE_APPLE, "leaf", "--dir", d, "--out-chain", prefix + "x", *bad], expect=2)

    # ---- state directories ----

    counter = 0

    def fresh_state(self):
        """A copy of the fleet with no attestation cache (same devices, same hierarchy)."""
        AttestTest.counter += 1
        state = os.path.join(self.tmp, f"state{AttestTest.counter}")
        shutil.copytree(self.dir, state, ignore=shutil.ignore_patterns("attestations"))
        return state


if __name__ == "__main__":
    if OPENSSL is None:
        sys.exit("test_attest.py: openssl is not on PATH")
    unittest.main(argv=[sys.argv[0], "-v"])
