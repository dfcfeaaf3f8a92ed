"""Device identities from Debian's SCEP CA (package scep: scepserver, scepclient), the CA that
NanoMDM deployments use, the way a real device gets one: it downloads the enrollment profile
from vouchd, takes the SCEP URL and challenge from its identity payload, gets a certificate from
scepserver (here with scepclient, the same protocol), then enrolls with it. vouchd trusts the
SCEP CA as identity_ca."""

import os
import plistlib
import shutil
import subprocess
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

import harness
import pg
from test_push import PushTestCase

CHALLENGE = "scep-challenge-0123"


def scep_tool(name):
    path = shutil.which(name)
    if path is None:
        harness.unavailable(f"{name} (Debian package scep)")
    return path


class ScepIdentityTest(PushTestCase):
    @classmethod
    def setUpClass(cls):
        cls.scep_dir = tempfile.mkdtemp(prefix="scep-", dir=harness.suite().run_dir)
        depot = os.path.join(cls.scep_dir, "depot")
        r = subprocess.run([scep_tool("scepserver"), "ca", "-init", "-depot", depot,
                            "-keySize", "2048", "-organization", "Vouch SCEP test"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"scepserver ca -init: {r.stderr}")
        cls.scep_port = pg.free_port()
        cls.scep_log = open(os.path.join(cls.scep_dir, "scepserver.log"), "w")
        cls.scep = subprocess.Popen([scep_tool("scepserver"), "-depot", depot, "-port",
                                     str(cls.scep_port), "-challenge", CHALLENGE],
                                    stdout=cls.scep_log, stderr=subprocess.STDOUT)
        cls.scep_url = f"http://127.0.0.1:{cls.scep_port}/scep"
        # identity_ca: the SCEP CA (vouchd's suite CA stays trusted too, for the harness).
        cls.extra_config = {"public_url": "https://mdm.example.com", "scep_url": cls.scep_url,
                            "scep_challenge": CHALLENGE}
        cls.scep_ca_pem = open(os.path.join(depot, "ca.pem"), "rb").read()
        try:
            super().setUpClass()
        except BaseException:
            cls.scep.kill()
            raise

    @classmethod
    def extra_identity_ca_pems(cls):
        return [cls.scep_ca_pem]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.scep.kill()
            cls.scep.wait()
            cls.scep_log.close()

    def scep_identity(self, cn, url, challenge):
        d = tempfile.mkdtemp(prefix="device-", dir=self.scep_dir)
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        deadline = time.monotonic() + 30
        while True:  # scepserver may still be starting
            r = subprocess.run([scep_tool("scepclient"), "-server-url", url, "-challenge",
                                challenge, "-private-key", key, "-certificate", cert, "-cn", cn],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(r.returncode, 0, f"scepclient: {r.stderr}")
        with open(key, "rb") as f:
            private = serialization.load_pem_private_key(f.read(), None)
        with open(cert, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
        return private, certificate

    def test_enroll_with_a_scep_identity_from_the_profile(self):
        r = self.vouchd.request("GET", "/mdm/enroll")
        self.assertStatus(r, 200, "GET /mdm/enroll")
        profile = plistlib.loads(r.body)
        scep = {p["PayloadType"]: p for p in profile["PayloadContent"]}[
            "com.apple.security.scep"]["PayloadContent"]
        self.assertEqual(scep["URL"], self.scep_url)

        dev = self.new_device()
        dev.key, dev.cert = self.scep_identity(f"device {dev.udid}", scep["URL"],
                                               scep["Challenge"])
        self.assertIn("Vouch SCEP test", dev.cert.issuer.rfc4514_string())
        self.enroll(dev)
        obj = self.vouchd.device(dev.udid).json()
        self.assertTrue(obj["enrolled"], obj)
        self.assertIsNotNone(obj["attestation"]["request"])

        # A wrong challenge gets no certificate.
        d = tempfile.mkdtemp(prefix="device-", dir=self.scep_dir)
        bad = subprocess.run([scep_tool("scepclient"), "-server-url", scep["URL"], "-challenge",
                              "wrong", "-private-key", os.path.join(d, "k.pem"),
                              "-certificate", os.path.join(d, "c.pem"), "-cn", "intruder"],
                             capture_output=True, text=True, timeout=60)
        self.assertFalse(os.path.exists(os.path.join(d, "c.pem")) and bad.returncode == 0)
