"""The MDM push certificate from scratch (issue 20, point 3; deploy/RUNBOOK.md): `vouchctl
pushcert csr`, `sign` (the MDM vendor's step) and `install`, and vouchd's `PUT /v1/pushcert`
(NanoMDM's upload), which replaces the certificate a running vouchd pushes with.

Every certificate is made here at test time by the openssl command: a stand-in Apple root, WWDR
intermediate and MDM vendor certificate for `sign`; for `install` and the upload, push
certificates issued from the customer's request by the stand-in APNs' push CA (h2_apns.py), so
that the stand-in takes pushes made with them, as Apple's portal issues them from the request
`sign` wrapped (subject UID = the topic, CN = APSP:<uuid>).
"""

import base64
import datetime
import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
import tempfile
import unittest
import uuid

from cryptography.hazmat.primitives import serialization

import harness
from harness import VOUCHCTL, command_plist, require_executable, run_tool, suite
from test_push import DEADLINE_S, PushTestCase

TOPIC_PREFIX = "com.apple.mgmt.External."


def openssl(*args, stdin=None):
    """Runs the openssl command; its standard output (bytes)."""
    exe = shutil.which("openssl")
    if exe is None:
        harness.unavailable("the openssl command (package openssl)")
    r = subprocess.run([exe] + list(args), input=stdin, capture_output=True)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def ctl_offline(*args):
    require_executable(VOUCHCTL, "vouchctl")
    return run_tool([VOUCHCTL] + list(args))


def pems(text):
    """The PEM certificate blocks of a text, in order."""
    return re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", text,
                      re.S)


class Pki:
    """Files in a fresh folder, made with openssl."""

    def __init__(self, folder):
        self.dir = folder

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name):
        openssl("genpkey", "-quiet", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.path(name))
        return self.path(name)

    def ca(self, name, subject, issuer=None):
        """A CA certificate name.pem with name.key: self-signed, or issued by issuer (a name)."""
        key = self.key(name + ".key")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign\n")
        if issuer is None:
            openssl("req", "-new", "-x509", "-key", key, "-subj", subject, "-days", "30",
                    "-sha256", "-addext", "basicConstraints = critical, CA:TRUE",
                    "-addext", "keyUsage = critical, keyCertSign", "-out", self.path(name + ".pem"))
        else:
            self.issue(name + ".pem", self.csr(key, subject), issuer, 30, subject, ext)
        return self.path(name + ".pem")

    def csr(self, key, subject):
        out = key + ".csr"
        openssl("req", "-new", "-key", key, "-subj", subject, "-sha256", "-out", out)
        return out

    def issue(self, out, csr, issuer, days, subject=None, extfile=None):
        """Issues csr by the CA issuer (a name) for days (-1: it expired yesterday), with the
        subject given (else the request's)."""
        args = ["x509", "-req", "-in", csr, "-CA", self.path(issuer + ".pem"), "-CAkey",
                self.path(issuer + ".key"), "-days", str(days), "-sha256",
                "-set_serial", "0x" + os.urandom(8).hex(), "-out", self.path(out)]
        if subject is not None:
            args += ["-subj", subject]
        if extfile is not None:
            args += ["-extfile", extfile]
        openssl(*args)
        return self.path(out)

    def serial(self, cert):
        text = openssl("x509", "-in", cert, "-noout", "-serial").decode()
        return int(text.strip().split("=", 1)[1], 16)


def push_subject(topic):
    return f"/UID={topic}/CN=APSP:{topic.rsplit('.', 1)[-1]}/C=US"


class PushcertToolTest(unittest.TestCase):
    """csr, sign and install, offline."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pushcert-", dir=suite().run_dir)
        self.pki = Pki(self.dir)

    def p(self, name):
        return self.pki.path(name)

    def ctl(self, *args, rc=0):
        r = ctl_offline("pushcert", *args)
        self.assertEqual(r.returncode, rc, f"vouchctl pushcert {' '.join(args)}:\n"
                                           f"{r.stdout}{r.stderr}")
        return r

    def make_csr(self, name="push"):
        self.ctl("csr", "--key", self.p(name + ".key"), "--out", self.p(name + ".csr"))
        return self.p(name + ".key"), self.p(name + ".csr")

    # -- csr ----------------------------------------------------------------------------------
    def test_csr_makes_a_private_key_and_its_request(self):
        r = self.ctl("csr", "--key", self.p("k.pem"), "--out", self.p("r.csr"),
                     "--cn", "Example Corp MDM push")
        self.assertIn("0600", r.stdout)
        mode = stat.S_IMODE(os.stat(self.p("k.pem")).st_mode)
        self.assertEqual(mode, 0o600, "the private key's mode")
        key_text = openssl("pkey", "-in", self.p("k.pem"), "-noout", "-text").decode()
        self.assertIn("Private-Key: (2048 bit", key_text, "an RSA 2048 key")
        self.assertIn("publicExponent", key_text)
        # A request signed by that key (openssl checks its signature), for that key.
        openssl("req", "-in", self.p("r.csr"), "-noout", "-verify")
        self.assertEqual(openssl("req", "-in", self.p("r.csr"), "-noout", "-pubkey"),
                         openssl("pkey", "-in", self.p("k.pem"), "-pubout"))
        subject = openssl("req", "-in", self.p("r.csr"), "-noout", "-subject").decode()
        self.assertIn("CN = Example Corp MDM push", subject)
        sig = openssl("req", "-in", self.p("r.csr"), "-noout", "-text").decode()
        self.assertIn("sha256WithRSAEncryption", sig)

    def test_csr_never_replaces_a_key(self):
        key, csr = self.make_csr()
        with open(key, "rb") as f:
            before = f.read()
        r = self.ctl("csr", "--key", key, "--out", self.p("other.csr"), rc=1)
        self.assertIn("exists", r.stderr)
        with open(key, "rb") as f:
            self.assertEqual(f.read(), before)
        self.assertFalse(os.path.exists(self.p("other.csr")))
        # Defaults: push.key and push.csr in the working directory.
        r = subprocess.run([VOUCHCTL, "pushcert", "csr"], cwd=self.dir, capture_output=True,
                           text=True, env=harness.clean_env())
        self.assertEqual(r.returncode, 1, "push.key exists in the folder: refused")
        sub = os.path.join(self.dir, "defaults")
        os.mkdir(sub)
        r = subprocess.run([VOUCHCTL, "pushcert", "csr"], cwd=sub, capture_output=True,
                           text=True, env=harness.clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(sub)), ["push.csr", "push.key"])

    # -- sign ---------------------------------------------------------------------------------
    def vendor_pki(self):
        """Stand-ins for Apple Root CA, the WWDR intermediate and an MDM vendor certificate
        (DER, as Apple's developer portal hands it out)."""
        root = self.pki.ca("root", "/CN=Stand-in Apple Root CA/O=Apple Inc./C=US")
        wwdr = self.pki.ca("wwdr", "/CN=Stand-in Apple WWDR Certification Authority/OU=G3"
                                   "/O=Apple Inc./C=US", issuer="root")
        vendor_key = self.pki.key("vendor.key")
        vendor_pem = self.pki.issue("vendor.pem",
                                    self.pki.csr(vendor_key, "/CN=MDM Vendor: Example Corp"),
                                    "wwdr", 30)
        openssl("x509", "-in", vendor_pem, "-outform", "DER", "-out", self.p("vendor.cer"))
        return root, wwdr, vendor_pem, vendor_key

    def test_sign_makes_the_request_apples_portal_takes(self):
        root, wwdr, vendor_pem, vendor_key = self.vendor_pki()
        push_key, push_csr = self.make_csr()
        self.ctl("sign", "--vendor-cert", self.p("vendor.cer"), "--vendor-key", vendor_key,
                 "--csr", push_csr, "--wwdr", wwdr, "--apple-root", root,
                 "--out", self.p("request.b64"))
        with open(self.p("request.b64"), "rb") as f:
            encoded = f.read()
        self.assertRegex(encoded, rb"^[A-Za-z0-9+/]+=*$", "one line of base64")
        xml = base64.b64decode(encoded, validate=True)
        self.assertTrue(xml.startswith(b"<?xml"), xml[:80])
        request = plistlib.loads(xml, fmt=plistlib.FMT_XML)
        self.assertEqual(set(request), {"PushCertRequestCSR", "PushCertCertificateChain",
                                        "PushCertSignature"})
        csr_der = openssl("req", "-in", push_csr, "-outform", "DER")
        self.assertEqual(base64.b64decode(request["PushCertRequestCSR"], validate=True), csr_der)
        chain = pems(request["PushCertCertificateChain"])
        expected = [openssl("x509", "-in", c).decode() for c in (vendor_pem, wwdr, root)]
        self.assertEqual(chain, expected, "vendor certificate, WWDR intermediate, Apple root")
        # The vendor key's SHA-256 RSA signature over the request's DER.
        with open(self.p("sig.bin"), "wb") as f:
            f.write(base64.b64decode(request["PushCertSignature"], validate=True))
        with open(self.p("csr.der"), "wb") as f:
            f.write(csr_der)
        with open(self.p("vendor.pub"), "wb") as f:
            f.write(openssl("x509", "-in", vendor_pem, "-noout", "-pubkey"))
        out = openssl("dgst", "-sha256", "-verify", self.p("vendor.pub"), "-signature",
                      self.p("sig.bin"), self.p("csr.der"))
        self.assertIn(b"Verified OK", out)
        # To standard output without --out: the same request (PKCS#1 v1.5 is deterministic).
        r = self.ctl("sign", "--vendor-cert", vendor_pem, "--vendor-key", vendor_key,
                     "--csr", push_csr, "--wwdr", wwdr, "--apple-root", root)
        self.assertEqual(r.stdout.strip().encode(), encoded)

    def test_sign_refuses_what_apple_would_refuse(self):
        root, wwdr, vendor_pem, vendor_key = self.vendor_pki()
        _push_key, push_csr = self.make_csr()
        base = ["sign", "--vendor-cert", vendor_pem, "--csr", push_csr]
        r = self.ctl(*base, "--vendor-key", vendor_key, rc=1)
        self.assertIn("not complete", r.stderr, "no WWDR intermediate, no root")
        r = self.ctl(*base, "--vendor-key", vendor_key, "--wwdr", root, "--apple-root", wwdr,
                     rc=1)
        self.assertIn("issued by", r.stderr, "the chain out of order")
        other_key = self.pki.key("other.key")
        r = self.ctl(*base, "--vendor-key", other_key, "--wwdr", wwdr, "--apple-root", root,
                     rc=1)
        self.assertIn("not the key of the vendor certificate", r.stderr)
        with open(self.p("bad.csr"), "w") as f:
            f.write("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                    "-----END CERTIFICATE REQUEST-----\n")
        r = self.ctl("sign", "--vendor-cert", vendor_pem, "--vendor-key", vendor_key,
                     "--csr", self.p("bad.csr"), "--wwdr", wwdr, "--apple-root", root, rc=1)
        self.assertIn("not a certificate request", r.stderr)
        r = self.ctl("sign", "--vendor-cert", vendor_pem, "--csr", push_csr, rc=2)
        self.assertIn("--vendor-key", r.stderr)

    # -- install ------------------------------------------------------------------------------
    def apple(self):
        """The stand-in portal's CA: it issues push certificates from requests."""
        self.pki.ca("portal", "/CN=Stand-in Apple Application Integration 2 CA/C=US")
        return "portal"

    def test_install_checks_the_pair_and_writes_it(self):
        issuer = self.apple()
        key, csr = self.make_csr()
        topic = TOPIC_PREFIX + str(uuid.uuid4()).upper()
        good = self.pki.issue("good.pem", csr, issuer, 365, push_subject(topic))
        soon = self.pki.issue("soon.pem", csr, issuer, 10, push_subject(topic))
        expired = self.pki.issue("expired.pem", csr, issuer, -1, push_subject(topic))
        no_topic = self.pki.issue("no-topic.pem", csr, issuer, 365, "/CN=APSP:1234/C=US")
        wrong_topic = self.pki.issue("wrong-topic.pem", csr, issuer, 365,
                                     push_subject("com.example.app"))
        other_key = self.pki.key("other.key")

        r = self.ctl("install", "--cert", good, "--key", other_key, rc=1)
        self.assertIn("the key does not belong to the push certificate", r.stderr)
        r = self.ctl("install", "--cert", expired, "--key", key, rc=1)
        self.assertIn("expired", r.stderr)
        r = self.ctl("install", "--cert", no_topic, "--key", key, rc=1)
        self.assertIn("no UID (topic)", r.stderr)
        r = self.ctl("install", "--cert", wrong_topic, "--key", key, rc=1)
        self.assertIn("not an MDM push topic", r.stderr)
        r = self.ctl("install", "--cert", soon, "--key", key)
        self.assertRegex(r.stderr, r"warning: it expires in (9|10) day")
        self.assertIn("Checked only", r.stdout)

        # Apple's portal offers the certificate as PEM; a DER one is taken too.
        openssl("x509", "-in", good, "-outform", "DER", "-out", self.p("good.cer"))
        target = os.path.join(self.dir, "etc")
        os.mkdir(target)
        r = self.ctl("install", "--cert", self.p("good.cer"), "--key", key, "--to", target)
        self.assertIn(topic, r.stdout)
        self.assertEqual(r.stderr, "", "no warning for a year's validity")
        cert_path, key_path = os.path.join(target, "push.pem"), os.path.join(target, "push.key")
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)
        self.assertIn(f"apns_cert = {cert_path}", r.stdout)
        self.assertEqual(openssl("x509", "-in", cert_path), openssl("x509", "-in", good))
        self.assertEqual(openssl("pkey", "-in", key_path, "-pubout"),
                         openssl("pkey", "-in", key, "-pubout"))
        self.assertEqual([n for n in os.listdir(target) if ".tmp" in n], [],
                         "no temporary file left")

        # Where vouchd's configuration points: apns_cert and apns_key, replaced in place.
        conf = self.p("vouch.conf")
        with open(conf, "w") as f:
            f.write(f"apns_cert = {self.p('conf-push.pem')}\napns_key = {self.p('conf-push.key')}\n")
        for name in ("conf-push.pem", "conf-push.key"):
            with open(self.p(name), "w") as f:
                f.write("the old one\n")
        self.ctl("install", "--cert", good, "--key", key, "--vouchd-config", conf)
        self.assertEqual(openssl("x509", "-in", self.p("conf-push.pem")),
                         openssl("x509", "-in", good))
        self.assertEqual(stat.S_IMODE(os.stat(self.p("conf-push.key")).st_mode), 0o600)
        self.ctl("install", "--cert", good, "--key", key, "--to", target, "--server", rc=2)


class PushcertUploadTest(PushTestCase):
    """PUT /v1/pushcert on a running vouchd pushing to the stand-in APNs."""

    def setUp(self):
        super().setUp()
        self.portal = Pki(tempfile.mkdtemp(prefix="pushcert-", dir=suite().run_dir))
        # The stand-in APNs takes client certificates from its push CA: that CA plays Apple's
        # portal here, issuing with openssl.
        with open(self.portal.path("portal.pem"), "wb") as f:
            f.write(self.pki.push_ca.public_bytes(serialization.Encoding.PEM))
        with open(self.portal.path("portal.key"), "wb") as f:
            f.write(self.pki.push_ca_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        os.chmod(self.portal.path("portal.key"), 0o600)

    def new_pair(self, name, days=100, topic=None, subject=None):
        """A key from `vouchctl pushcert csr`, and the certificate the portal issues for it."""
        key, csr = self.portal.path(name + ".key"), self.portal.path(name + ".csr")
        r = ctl_offline("pushcert", "csr", "--key", key, "--out", csr)
        self.assertEqual(r.returncode, 0, r.stderr)
        cert = self.portal.issue(name + ".pem", csr, "portal", days,
                              subject or push_subject(topic or self.topic))
        return cert, key

    def put(self, body, token=harness._DEFAULT):
        return self.vouchd.admin("PUT", "/v1/pushcert", body=body, token=token,
                                 content_type="application/x-pem-file")

    def body(self, cert, key):
        with open(cert, "rb") as c, open(key, "rb") as k:
            return c.read() + k.read()

    def not_after(self, cert):
        text = openssl("x509", "-in", cert, "-noout", "-enddate").decode().strip()
        when = datetime.datetime.strptime(text.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def current(self):
        r = self.vouchd.admin("GET", "/v1/pushcert")
        self.assertStatus(r, 200, "GET /v1/pushcert")
        return r.json()

    def test_put_replaces_the_certificate_vouchd_pushes_with(self):
        old = type(self).identity
        a = self.enroll()
        self.assertWellFormedPush(self.pushes(a)[0], a, "before the upload", serial=old.serial)

        cert, key = self.new_pair("renewed", days=100)
        serial = self.portal.serial(cert)
        self.assertNotEqual(serial, old.serial)
        offset = self.vouchd.log_size()
        r = self.put(self.body(cert, key))
        self.assertStatus(r, 200, "PUT /v1/pushcert")
        self.assertEqual(r.json(), {"topic": self.topic, "not_after": self.not_after(cert)})
        self.assertEqual(self.current(), r.json(), "GET /v1/pushcert after the upload")
        self.assertIn("push certificate replaced", self.vouchd.log_tail(100, since=offset))

        # Written where vouchd reads it (a restart keeps it), the key 0600.
        self.assertEqual(openssl("x509", "-in", self.cert_path), openssl("x509", "-in", cert))
        self.assertEqual(openssl("pkey", "-in", self.key_path, "-pubout"),
                         openssl("pkey", "-in", key, "-pubout"))
        self.assertEqual(stat.S_IMODE(os.stat(self.key_path).st_mode), 0o600)

        # Pushes go out with it, without a restart.
        n = len(self.pushes(a))
        self.enqueue_ok([a.udid], command_plist("ProfileList"))
        recs = self.apns.wait_for_requests(a.token, n + 1, DEADLINE_S)
        self.assertWellFormedPush(recs[-1], a, "after the upload", serial=serial)
        d = self.enroll()
        self.assertWellFormedPush(self.pushes(d)[0], d, "enrollment after the upload",
                                  serial=serial)

        # Audited, as every admin call.
        audit = self.vouchd.admin("GET", "/v1/audit?limit=1000")
        self.assertStatus(audit, 200, "GET /v1/audit")
        self.assertTrue(any(e.get("method") == "PUT" and e.get("path") == "/v1/pushcert"
                            for e in audit.json()), audit.json())

        # The same through vouchctl, and a restart reads the files the upload wrote.
        cert2, key2 = self.new_pair("again", days=200)
        r = harness.vouchctl(self.vouchd, "pushcert", "install", "--cert", cert2, "--key", key2,
                             "--server")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"topic {self.topic}", r.stdout)
        self.assertEqual(self.current()["not_after"], self.not_after(cert2))
        self.vouchd.restart()
        self.assertEqual(self.current()["not_after"], self.not_after(cert2),
                         "after a restart: the uploaded certificate")
        serial2 = self.portal.serial(cert2)
        e = self.enroll()
        self.assertWellFormedPush(self.pushes(e)[0], e, "after the restart", serial=serial2)

    def test_put_refuses_what_is_not_a_good_pair(self):
        before = self.current()
        with open(self.cert_path, "rb") as f:
            cert_file = f.read()
        good_cert, good_key = self.new_pair("good")
        _other_cert, other_key = self.new_pair("other")
        expired_cert, expired_key = self.new_pair("expired", days=-1)
        no_topic_cert, no_topic_key = self.new_pair("notopic", subject="/CN=APSP:1/C=US")
        app_cert, app_key = self.new_pair("app", subject=push_subject("com.example.app"))
        cases = {
            "a key that is not the certificate's": (self.body(good_cert, other_key),
                                                    "does not belong"),
            "an expired certificate": (self.body(expired_cert, expired_key), "expired"),
            "no topic": (self.body(no_topic_cert, no_topic_key), "no UID"),
            "not an MDM topic": (self.body(app_cert, app_key), "not an MDM push topic"),
            "the certificate alone": (self.body(good_cert, os.devnull), "private key"),
            "garbage": (b"hello", "certificate"),
            "nothing": (b"", "PEM certificate"),
        }
        for what, (body, reason) in cases.items():
            r = self.put(body)
            self.assertStatus(r, 400, what)
            self.assertEqual(set(r.json()), {"error"}, what)
            self.assertIn(reason, r.json()["error"], what)
        r = self.put(b"x" * (70 * 1024))
        self.assertStatus(r, 413, "a body over 64 KiB")
        self.assertEqual(self.current(), before, "nothing replaced")
        with open(self.cert_path, "rb") as f:
            self.assertEqual(f.read(), cert_file, "the file untouched")
        r = self.vouchd.admin("POST", "/v1/pushcert", body=self.body(good_cert, good_key))
        self.assertStatus(r, 405, "POST")
        dev = self.enroll()
        self.assertEqual(self.pushes(dev)[0].client_serial, self.portal.serial(self.cert_path),
                         "pushes still go with the certificate in apns_cert")

    def test_put_needs_an_acting_token(self):
        good_cert, good_key = self.new_pair("scoped")
        body = self.body(good_cert, good_key)
        r = self.vouchd.admin("POST", "/v1/tokens", body=json.dumps(
            {"name": "reader-" + uuid.uuid4().hex[:8], "scope": "read"}).encode(),
            content_type="application/json")
        self.assertStatus(r, 201, "POST /v1/tokens")
        reader = r.json()["token"]
        before = self.current()
        self.assertStatus(self.put(body, token=None), 401, "no token")
        self.assertStatus(self.put(body, token=reader), 403, "a read token")
        self.assertStatus(self.vouchd.admin("GET", "/v1/pushcert", token=reader), 200,
                          "a read token reads it")
        self.assertEqual(self.current(), before)


class PushcertWithoutApnsTest(harness.VouchTestCase):
    """Without apns_cert there is no file to write: the upload says how to start."""

    def test_put_without_apns_cert_is_409(self):
        r = self.vouchd.admin("PUT", "/v1/pushcert", body=b"-----BEGIN CERTIFICATE-----\n")
        self.assertStatus(r, 409, "PUT /v1/pushcert without apns_cert")
        self.assertIn("apns_cert", r.json()["error"])
        self.assertStatus(self.vouchd.admin("GET", "/v1/pushcert"), 404, "GET")


if __name__ == "__main__":
    unittest.main()
