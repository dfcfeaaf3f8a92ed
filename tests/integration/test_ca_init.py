"""`vouchctl ca init`: the ACME CA made offline, read back with the openssl command line (not with
vouch's own code), and never overwritten. Needs no vouchd and no PostgreSQL."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import VOUCHCTL, require_executable, run_tool, unavailable


def openssl(*args, input_text=None):
    return subprocess.run(["openssl"] + list(args), input=input_text, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60, check=True).stdout


class CaInitTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        require_executable(VOUCHCTL, "vouchctl")
        if shutil.which("openssl") is None:
            unavailable("the openssl command (apt-get install openssl)")

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="vouch-ca-init-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cert = os.path.join(self.dir, "acme-ca.pem")
        self.key = os.path.join(self.dir, "acme-ca.key")

    def ca_init(self, *extra):
        # No --url or --token, and nothing listens: ca init must not need a server.
        return run_tool([VOUCHCTL, "ca", "init", "--cert", self.cert, "--key", self.key]
                        + list(extra), timeout=60)

    def test_makes_a_ca(self):
        r = self.ca_init()
        self.assertEqual(r.returncode, 0, r.stderr)

        text = openssl("x509", "-in", self.cert, "-noout", "-text")
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0")
        self.assertRegex(text, r"X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign")
        self.assertIn("X509v3 Subject Key Identifier", text)
        self.assertIn("Subject: CN = Vouch Device Identity CA", text)
        self.assertIn("Issuer: CN = Vouch Device Identity CA", text)
        self.assertIn("Signature Algorithm: ecdsa-with-SHA384", text)
        self.assertIn("NIST CURVE: P-384", text)
        # Self-signed, and the key file holds its key.
        openssl("verify", "-CAfile", self.cert, "-x509_strict", self.cert)
        cert_pub = openssl("x509", "-in", self.cert, "-noout", "-pubkey")
        key_pub = openssl("pkey", "-in", self.key, "-pubout")
        self.assertEqual(cert_pub, key_pub)

        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.cert).st_mode), 0o644)

        # The lines for vouchd's configuration, with absolute paths.
        self.assertIn(f"acme_ca_cert = {os.path.realpath(self.cert)}\n", r.stdout)
        self.assertIn(f"acme_ca_key = {os.path.realpath(self.key)}\n", r.stdout)
        fingerprint = openssl("x509", "-in", self.cert, "-noout", "-fingerprint", "-sha256")
        hex_digits = re.sub(r"[^0-9a-f]", "", fingerprint.split("=", 1)[1].lower())
        self.assertIn(hex_digits, r.stdout)

    def test_name_and_days(self):
        r = self.ca_init("--cn", "Example Devices", "--days", "30")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Subject: CN = Example Devices",
                      openssl("x509", "-in", self.cert, "-noout", "-text"))
        # Valid now and for 29 days; not for 31.
        openssl("x509", "-in", self.cert, "-noout", "-checkend", str(29 * 86400))
        with self.assertRaises(subprocess.CalledProcessError):
            openssl("x509", "-in", self.cert, "-noout", "-checkend", str(31 * 86400))

    def test_refuses_to_overwrite(self):
        r = self.ca_init()
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.cert, "rb") as f:
            cert_before = f.read()
        with open(self.key, "rb") as f:
            key_before = f.read()

        again = self.ca_init()
        self.assertEqual(again.returncode, 1, again.stdout + again.stderr)
        self.assertIn("already exists", again.stderr)
        self.assertIn("not overwriting", again.stderr)
        self.assertEqual(again.stdout, "")
        with open(self.cert, "rb") as f:
            self.assertEqual(f.read(), cert_before)
        with open(self.key, "rb") as f:
            self.assertEqual(f.read(), key_before)

        # Only the certificate exists: the key is not written either.
        os.unlink(self.key)
        partial = self.ca_init()
        self.assertEqual(partial.returncode, 1)
        self.assertIn(self.cert, partial.stderr)
        self.assertFalse(os.path.exists(self.key))

    def test_usage_errors(self):
        c, k = self.cert, self.key
        for args in (["ca", "init", "--key", k],
                     ["ca", "init", "--cert", c],
                     ["ca", "init", "--cert", c, "--key", c],
                     ["ca", "init", "--cert", c, "--key", k, "--days", "0"],
                     ["ca", "init", "--cert", c, "--key", k, "--days", "ten"],
                     ["ca", "init", "--cert", c, "--key", k, "--cn", "x" * 65],
                     ["ca", "renew", "--cert", c, "--key", k],
                     ["ca"]):
            with self.subTest(args=args):
                r = run_tool([VOUCHCTL] + args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn("vouchctl ca --help", r.stderr)
        self.assertEqual(os.listdir(self.dir), [])


if __name__ == "__main__":
    unittest.main()
