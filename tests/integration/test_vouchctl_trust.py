"""`vouchctl trust POLICY SUBJECT` (issue 19): the trust API's question from the command line,
against a real vouchd and PostgreSQL, with devices that enroll and attest with the stand-in
Apple PKI.

What must hold:
  * the decision is the exit status: 0 allow, 3 deny (with --json too), 1 for an unknown policy
    or a refused token, 2 for usage errors (no subject or several, an unreadable or
    certificate-less --cert file, bad hex, a bad policy name), and no request is needed to
    refuse those;
  * the device can be named by UDID, --serial, --cert FILE (PEM, the first certificate of the
    file, or DER) and --cert-sha256 (either case, with colons), and each names the same device;
  * the readable answer names the decision, the policy, the reasons, the device, its
    attestation and identity; --json is the server's answer;
  * a token of scope trust may ask.
"""

import json
import os
import re
import secrets

from cryptography.hazmat.primitives import serialization

import test_attestation  # AttestationCase; a module import, so that its own tests do not run
from device import cert_sha256
from harness import suite, vouchctl

EXIT_DENIED = 3


class VouchctlTrustTest(test_attestation.AttestationCase):

    vouchd_config = {"policy.web.require": "verified",
                     "policy.web.min_os_version.ios": "17.4",
                     "policy.open.require": "enrolled"}

    # -- helpers ---------------------------------------------------------------------------
    def ctl(self, *args, rc=0):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, rc, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                         f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def ctl_json(self, *args, rc=0):
        return json.loads(self.ctl("--json", *args, rc=rc).stdout)

    def write_file(self, data, suffix=".pem"):
        path = os.path.join(suite().run_dir, f"trust-{secrets.token_hex(6)}{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def pem_of(self, dev):
        return dev.cert.public_bytes(serialization.Encoding.PEM)

    @staticmethod
    def listing(text):
        """The "key: value" lines of the readable answer, as a dict (after the first line)."""
        out = {}
        for line in text.splitlines()[1:]:
            m = re.match(r"^  ([a-z ]+):\s+(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    def new_token(self, scope):
        name = f"trust-cli-{scope}-{secrets.token_hex(4)}"
        r = self.vouchd.admin("POST", "/v1/tokens",
                              body=json.dumps({"name": name, "scope": scope}),
                              content_type="application/json")
        self.assertStatus(r, (200, 201), f"POST /v1/tokens (scope {scope})")
        return r.json()["token"]

    # -- deny ------------------------------------------------------------------------------
    def test_enrolled_without_verdict_is_denied(self):
        dev = self.iphone(os_version="17.4")
        p = self.ctl("trust", "web", dev.udid, rc=EXIT_DENIED)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], "deny (policy web)", p.stdout)
        fields = self.listing(p.stdout)
        self.assertIn("attestation_missing", fields["reasons"].split(", "), p.stdout)
        self.assertEqual(fields["subject"], f"udid {dev.udid}")
        self.assertEqual(fields["device"],
                         f"{dev.udid} serial {dev.serial}, {dev.product_name} (iOS 17.4), "
                         "enrolled")
        self.assertTrue(fields["attestation"].startswith("none"), p.stdout)
        self.assertEqual(fields["identity"].split(", ")[:2], ["scep", "current"], p.stdout)
        self.assertRegex(fields["evaluated at"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, valid until: -$")
        self.assertEqual(p.stderr, "")

        answer = self.ctl_json("trust", "web", dev.udid, rc=EXIT_DENIED)
        self.assertEqual(answer["decision"], "deny")
        self.assertEqual(answer["policy"], "web")
        self.assertIn("attestation_missing", answer["reasons"])
        self.assertEqual(answer["device"]["udid"], dev.udid)
        self.assertIsNone(answer["valid_until"])

    def test_os_too_old_reason_is_listed(self):
        dev = self.iphone(os_version="17.3")
        p = self.ctl("trust", "web", dev.udid, rc=EXIT_DENIED)
        reasons = self.listing(p.stdout)["reasons"].split(", ")
        self.assertIn("attestation_missing", reasons)
        self.assertIn("os_too_old", reasons)

    def test_unknown_device(self):
        p = self.ctl("trust", "web", "NO-SUCH-DEVICE", rc=EXIT_DENIED)
        fields = self.listing(p.stdout)
        self.assertEqual(fields["device"], "none known", p.stdout)
        self.assertIn("not_enrolled", fields["reasons"], p.stdout)
        self.assertNotIn("attestation", fields)
        answer = self.ctl_json("trust", "web", "--serial", "NOSUCHSERIAL", rc=EXIT_DENIED)
        self.assertIsNone(answer["device"])

    # -- the subject -----------------------------------------------------------------------
    def test_every_subject_names_the_same_device(self):
        dev = self.new_device().enroll()
        sha = cert_sha256(dev.cert).hex()
        pem = self.pem_of(dev)
        der = dev.cert.public_bytes(serialization.Encoding.DER)
        other = self.new_device()  # a certificate after the first in the file is ignored
        chain = self.write_file(b"a note before the block\n" + pem + self.pem_of(other))
        colons = ":".join(sha[i:i + 2] for i in range(0, len(sha), 2)).upper()

        subjects = {
            "udid": [dev.udid],
            "serial": ["--serial", dev.serial],
            "pem": ["--cert", self.write_file(pem)],
            "pem with text and a second certificate": ["--cert", chain],
            "der": ["--cert", self.write_file(der, ".der")],
            "sha256": ["--cert-sha256", sha],
            "sha256 with colons": ["--cert-sha256", colons],
        }
        for what, args in subjects.items():
            with self.subTest(what):
                answer = self.ctl_json("trust", "web", *args, rc=EXIT_DENIED)
                self.assertEqual(answer["decision"], "deny")
                self.assertIsNotNone(answer["device"], f"{what}: {answer}")
                self.assertEqual(answer["device"]["udid"], dev.udid, what)
                self.assertEqual(answer["device"]["serial_number"], dev.serial, what)
                self.assertIn("attestation_missing", answer["reasons"], what)
                if args[0].startswith("--cert"):
                    self.assertEqual(answer["subject"], {"certificate_sha256": sha}, what)
        p = self.ctl("trust", "web", "--cert", self.write_file(pem), rc=EXIT_DENIED)
        self.assertEqual(self.listing(p.stdout)["subject"], f"certificate_sha256 {sha}")

    def test_certificate_vouchd_never_saw(self):
        stranger = self.new_device()  # issued by the test CA, never enrolled
        answer = self.ctl_json("trust", "open", "--cert", self.write_file(self.pem_of(stranger)),
                               rc=EXIT_DENIED)
        self.assertIn("identity_unknown", answer["reasons"])

    # -- allow -----------------------------------------------------------------------------
    def test_enrolled_policy_allows_an_enrolled_device(self):
        dev = self.iphone()
        p = self.ctl("trust", "open", dev.udid)
        self.assertEqual(p.stdout.splitlines()[0], "allow (policy open)", p.stdout)
        self.assertNotIn("reasons", self.listing(p.stdout))
        answer = self.ctl_json("trust", "open", "--serial", dev.serial)
        self.assertEqual(answer["decision"], "allow")
        self.assertEqual(answer["reasons"], [])

    def test_verified_device_is_allowed_by_default(self):
        dev = self.iphone(os_version="17.4")
        self.ctl("trust", "default", dev.udid, rc=EXIT_DENIED)
        self.attest_fresh(dev, "verified fresh")
        p = self.ctl("trust", "default", dev.udid)
        self.assertEqual(p.stdout.splitlines()[0], "allow (policy default)", p.stdout)
        fields = self.listing(p.stdout)
        self.assertRegex(fields["attestation"],
                         r"^verified \(fresh\), verified \S+Z, expires \S+Z$")
        self.assertNotRegex(fields["evaluated at"], r"valid until: -$")
        self.ctl("trust", "web", dev.udid)  # verified, 17.4: the web policy lets it in too
        answer = self.ctl_json("trust", "default", "--cert-sha256", cert_sha256(dev.cert).hex())
        self.assertEqual(answer["decision"], "allow")
        self.assertEqual(answer["device"]["attestation"]["status"], "verified")
        self.assertIsNotNone(answer["valid_until"])

    # -- tokens ----------------------------------------------------------------------------
    def test_trust_token_may_ask_and_read_token_may_not(self):
        dev = self.iphone()
        trust = self.new_token("trust")
        self.ctl("--token", trust, "trust", "open", dev.udid)
        read = self.new_token("read")
        p = self.ctl("--token", read, "trust", "open", dev.udid, rc=1)
        self.assertIn("HTTP 403", p.stderr)
        self.assertEqual(p.stdout, "")

    # -- errors ----------------------------------------------------------------------------
    def test_unknown_policy(self):
        dev = self.iphone()
        p = self.ctl("trust", "nosuch", dev.udid, rc=1)
        self.assertIn("no trust policy 'nosuch'", p.stderr)
        self.assertEqual(p.stdout, "")
        self.ctl("--json", "trust", "nosuch", dev.udid, rc=1)

    def test_usage_errors(self):
        dev = self.iphone()
        missing = os.path.join(suite().run_dir, "no-such-file.pem")
        not_a_cert = self.write_file(b"-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                     b"-----END CERTIFICATE-----\n")
        too_big = self.write_file(self.pem_of(dev) + b"#" * (64 * 1024))
        cases = {
            "no policy": ["trust"],
            "no subject": ["trust", "web"],
            "UDID and --serial": ["trust", "web", dev.udid, "--serial", dev.serial],
            "--cert and --cert-sha256": ["trust", "web", "--cert", self.write_file(b"x"),
                                         "--cert-sha256", "00" * 32],
            "unreadable --cert": ["trust", "web", "--cert", missing],
            "--cert without a certificate": ["trust", "web", "--cert", not_a_cert],
            "empty --cert": ["trust", "web", "--cert", self.write_file(b"")],
            "--cert over 64 KiB": ["trust", "web", "--cert", too_big],
            "short hex": ["trust", "web", "--cert-sha256", "abcd"],
            "not hex": ["trust", "web", "--cert-sha256", "zz" * 32],
            "bad policy name": ["trust", "we/b", dev.udid],
            "UDID with a space": ["trust", "web", "a b"],
            "three arguments": ["trust", "web", dev.udid, "extra"],
        }
        for what, args in cases.items():
            with self.subTest(what):
                p = self.ctl(*args, rc=2)
                self.assertEqual(p.stdout, "", what)
                self.assertIn("vouchctl trust --help", p.stderr, what)

    def test_help(self):
        p = self.ctl("trust", "--help")
        self.assertIn("Usage: vouchctl trust POLICY", p.stdout)
        self.assertIn("3 deny", p.stdout)
        main = self.ctl("--help").stdout
        self.assertIn("trust POLICY", main)
        self.assertIn("3  for trust", main)
        for text in (p.stdout, main):
            for line in text.splitlines():
                self.assertLessEqual(len(line), 80, line)
