"""GET /mdm/enroll (issue 7): the enrollment profile a device installs.

vouchd has a push certificate (its topic goes into the profile), public_url, and either a SCEP
server or an ACME directory for the device's identity. What must hold
(docs/protocol.md, Enrollment profile):
  * the answer is application/x-apple-aspen-config and parses as a plist whose MDM payload has
    ServerURL, CheckInURL, Topic, SignMessage, AccessRights, CheckOutWhenRemoved,
    ServerCapabilities and an IdentityCertificateUUID naming the identity payload it carries;
  * the ACME form asks for a hardware-bound, attested ECSECPrimeRandom P-384 key, with a fresh
    ClientIdentifier per download;
  * signed when profile_signing_cert is set: `openssl cms -verify` accepts it and gives back the
    profile;
  * behind enroll_token when one is set: 403 without it or with another.
"""

import os
import plistlib
import shutil
import subprocess
import tempfile

import harness
from test_push import PushTestCase

PROFILE_TYPE = "application/x-apple-aspen-config"
BASE = {"public_url": "https://mdm.example.com", "scep_url": "https://scep.example.com/scep",
        "scep_challenge": "c-h-a-l"}


def openssl(*args, input=None):
    exe = shutil.which("openssl")
    if exe is None:
        harness.unavailable("the openssl command (package openssl)")
    return subprocess.run([exe, *args], input=input, capture_output=True)


class EnrollCase(PushTestCase):
    def fetch(self, query=""):
        return self.vouchd.request("GET", "/mdm/enroll" + query)

    def profile(self, r):
        self.assertStatus(r, 200, "GET /mdm/enroll")
        self.assertEqual(r.media_type(), PROFILE_TYPE)
        return plistlib.loads(r.body)

    def assertEnrollmentProfile(self, profile, identity_type):
        self.assertEqual(profile["PayloadType"], "Configuration")
        by_type = {p["PayloadType"]: p for p in profile["PayloadContent"]}
        mdm = by_type["com.apple.mdm"]
        self.assertEqual(mdm["ServerURL"], "https://mdm.example.com/mdm/connect")
        self.assertEqual(mdm["CheckInURL"], "https://mdm.example.com/mdm/checkin")
        self.assertEqual(mdm["Topic"], self.topic)
        self.assertIs(mdm["SignMessage"], True)
        self.assertEqual(mdm["AccessRights"], 8191)
        self.assertIs(mdm["CheckOutWhenRemoved"], True)
        self.assertIsInstance(mdm["ServerCapabilities"], list)
        identity = by_type[identity_type]
        self.assertEqual(mdm["IdentityCertificateUUID"], identity["PayloadUUID"])
        uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]] + [profile["PayloadUUID"]]
        self.assertEqual(len(set(uuids)), len(uuids), "payload UUIDs must differ")
        return identity


class ScepProfileTest(EnrollCase):
    extra_config = dict(BASE, enroll_token="let-me-in", organization="Example Org")

    def test_token_required(self):
        for query in ("", "?token=nope", "?token="):
            r = self.fetch(query)
            self.assertStatus(r, 403, f"GET /mdm/enroll{query}")
        r = self.vouchd.request("POST", "/mdm/enroll?token=let-me-in", body=b"")
        self.assertStatus(r, 405, "POST /mdm/enroll")

    def test_scep_profile(self):
        r = self.fetch("?token=let-me-in")
        profile = self.profile(r)
        self.assertIn("vouch.mobileconfig", r.header("Content-Disposition", ""))
        self.assertEqual(profile["PayloadOrganization"], "Example Org")
        scep = self.assertEnrollmentProfile(profile, "com.apple.security.scep")
        self.assertEqual(scep["PayloadContent"]["URL"], "https://scep.example.com/scep")
        self.assertEqual(scep["PayloadContent"]["Challenge"], "c-h-a-l")
        out = os.path.join(harness.suite().run_dir, "profile.mobileconfig")
        r2 = harness.vouchctl(self.vouchd, "profile", "--enroll-token", "let-me-in", "--out", out)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        with open(out, "rb") as f:
            written = plistlib.load(f)
        self.assertEnrollmentProfile(written, "com.apple.security.scep")
        r3 = harness.vouchctl(self.vouchd, "profile")
        self.assertEqual(r3.returncode, 1, "vouchctl profile without the token")
        again = self.profile(self.fetch("?token=let-me-in"))
        self.assertNotEqual(again["PayloadUUID"], profile["PayloadUUID"],
                            "a fresh PayloadUUID for each profile")
        self.assertEqual(again["PayloadIdentifier"], profile["PayloadIdentifier"],
                         "a stable PayloadIdentifier")


class AcmeSignedProfileTest(EnrollCase):
    @classmethod
    def setUpClass(cls):
        d = tempfile.mkdtemp(prefix="enroll-", dir=harness.suite().run_dir)
        cls.signer = os.path.join(d, "signer.pem")
        key = os.path.join(d, "signer.key")
        cls.tls_ca = os.path.join(d, "tls-ca.pem")
        for cert, k, cn in ((cls.signer, key, "Vouch profile signer"),
                            (cls.tls_ca, os.path.join(d, "ca.key"), "Example TLS CA")):
            r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-subj", f"/CN={cn}", "-days", "2", "-keyout", k, "-out",
                        cert)
            if r.returncode != 0:
                raise AssertionError(r.stderr.decode())
        cls.extra_config = dict(BASE, enroll_identity="acme",
                                acme_directory_url="https://acme.example.com/directory",
                                profile_signing_cert=cls.signer, profile_signing_key=key,
                                profile_ca=cls.tls_ca)
        super().setUpClass()

    def test_signed_acme_profile(self):
        r = self.fetch()
        self.assertStatus(r, 200, "GET /mdm/enroll")
        self.assertEqual(r.media_type(), PROFILE_TYPE)
        v = openssl("cms", "-verify", "-inform", "DER", "-CAfile", self.signer, input=r.body)
        self.assertEqual(v.returncode, 0, f"openssl cms -verify: {v.stderr.decode()}")
        profile = plistlib.loads(v.stdout)
        acme = self.assertEnrollmentProfile(profile, "com.apple.security.acme")
        self.assertEqual(acme["DirectoryURL"], "https://acme.example.com/directory")
        self.assertEqual((acme["KeyType"], acme["KeySize"]), ("ECSECPrimeRandom", 384))
        self.assertIs(acme["HardwareBound"], True)
        self.assertIs(acme["Attest"], True)
        ca = {p["PayloadType"]: p for p in profile["PayloadContent"]}["com.apple.security.root"]
        der = openssl("x509", "-in", self.tls_ca, "-outform", "DER").stdout
        self.assertEqual(ca["PayloadContent"], der)
        other = openssl("cms", "-verify", "-inform", "DER", "-CAfile", self.signer,
                        input=self.fetch().body)
        second = plistlib.loads(other.stdout)
        second_acme = {p["PayloadType"]: p for p in second["PayloadContent"]}[
            "com.apple.security.acme"]
        self.assertNotEqual(second_acme["ClientIdentifier"], acme["ClientIdentifier"],
                            "one ClientIdentifier per download")


class NotReadyTest(EnrollCase):
    """Without public_url vouchd cannot say where devices go: 503, not a broken profile."""

    extra_config = {"scep_url": "https://scep.example.com/scep"}

    def test_503_without_public_url(self):
        r = self.fetch()
        self.assertStatus(r, 503, "GET /mdm/enroll without public_url")
        self.assertIn("public_url", r.text())
