"""vouch-sim --identity acme against a real vouchd with its ACME server: each simulated device
downloads the enrollment profile, gets its identity certificate from vouchd's ACME server for a
P-384 key the simulator's stand-in Apple hierarchy attests (device-attest-01), and enrolls with
it; and the simulator's two deliberate misbehaviours (an already used ClientIdentifier, a CSR for
another key than the attested one) are refused for the right reasons.

The expectations are written from the protocol (docs/acme.md, tests/sim/README.md), not from the
simulator's code: which models can attest comes from `vouch-sim list`'s last column, checked
against Apple's list by test_sim.can_attest()."""

import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import VOUCHCTL, suite, vouch_sim
from test_push import PushTestCase
from test_sim import can_attest

PUBLIC_URL = "https://mdm.sim-acme.test"
# What a second state directory shares with the first: the CAs vouchd trusts.
SHARED_FILES = ("ca.pem", "ca.key", "apple-root.pem", "apple-root.key", "apple-sub.pem",
                "apple-sub.key")


def metric_values(text, name):
    """{label value: number} of a one-label Prometheus counter."""
    out = {}
    for m in re.finditer(rf'^{name}{{[a-z_]+="([^"]*)"}} (\d+)$', text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


class SimAcmeTest(PushTestCase):
    """One vouchd with its ACME server on; the fleets share the stand-in Apple hierarchy of the
    first state directory (vouchd's attestation_roots)."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="sim-acme-", dir=suite().run_dir)
        cls.sim_dir = os.path.join(cls.work, "fleet")
        p = vouch_sim("init-ca", "--dir", cls.sim_dir)
        if p.returncode != 0:
            raise AssertionError(f"vouch-sim init-ca: exit {p.returncode}\n{p.stderr}")
        cls.acme_ca_cert = os.path.join(cls.work, "acme-ca.pem")
        cls.acme_ca_key = os.path.join(cls.work, "acme-ca.key")
        subprocess.run([VOUCHCTL, "ca", "init", "--cert", cls.acme_ca_cert, "--key",
                        cls.acme_ca_key], check=True, stdout=subprocess.DEVNULL)
        cls.extra_config = dict(
            attestation_roots=os.path.join(cls.sim_dir, "apple-root.pem"),
            acme_ca_cert=cls.acme_ca_cert, acme_ca_key=cls.acme_ca_key, public_url=PUBLIC_URL)
        super().setUpClass()

    @classmethod
    def extra_identity_ca_pems(cls):
        # Models too old to attest keep the simulator's own identity (a SCEP-like CA).
        with open(os.path.join(cls.sim_dir, "ca.pem"), "rb") as f:
            return [f.read()]

    def sim(self, *args, directory=None, expect=0):
        p = vouch_sim(*args, "--url", self.vouchd.url, "--dir", directory or self.sim_dir)
        self.assertEqual(p.returncode, expect,
                         f"vouch-sim {' '.join(args)}: exit {p.returncode}\nstdout: "
                         f"{p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}\n"
                         f"vouchd: {self.vouchd_log_since_test()}")
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        return json.loads(lines[-1]), p.stderr

    def fleet(self, directory):
        """[(udid, can attest)] in index order, per `vouch-sim list`."""
        p = vouch_sim("list", "--dir", directory)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = []
        for line in p.stdout.splitlines():
            f = line.split("\t")
            self.assertEqual(f[10] == "attest", can_attest(f[3], f[6]), line)
            out.append((f[1], f[10] == "attest"))
        return out

    def refusals(self):
        return metric_values(self.vouchd.metrics().body.decode(), "vouch_acme_refusals_total")

    def test_1_fleet_enrolls_with_attested_identities(self):
        out, _ = self.sim("enroll", "--devices", "8", "--identity", "acme", "--topic", self.topic,
                          "--key-type", "ec", "--quiet")
        fleet = self.fleet(self.sim_dir)
        attesting = sum(1 for _, can in fleet if can)
        self.assertGreater(attesting, 0, "no device of the fleet can attest")
        self.assertEqual(out["enrolled"], 8, out)
        self.assertEqual(out["failed_devices"], 0, out)
        acme = out["acme"]
        self.assertEqual(acme["certificates"], attesting, out)
        self.assertEqual(acme["local_identities"], 8 - attesting, out)
        self.assertEqual(acme["refused"], {"client_identifier_used": 0, "csr_key_mismatch": 0})
        for udid, can in fleet:
            r = self.vouchd.device(udid)
            self.assertStatus(r, 200, f"GET device {udid}")
            identity = r.json()["identity"]
            self.assertEqual(identity["kind"], "acme-attested" if can else "scep",
                             f"{udid}: {identity}")
            self.assertIs(identity["hardware_bound"], can, f"{udid}: {identity}")
            if can:
                hist = self.vouchd.admin("GET", f"/v1/devices/{udid}/attestations").json()
                self.assertIn("acme", [h.get("source") for h in hist], f"{udid}: {hist}")
        # devices.pem keeps the ACME identities (openssl reads its first record): a later
        # process signs with them.
        issuer = subprocess.run(["openssl", "x509", "-noout", "-issuer", "-in",
                                 os.path.join(self.sim_dir, "devices.pem")],
                                capture_output=True, text=True, check=True).stdout
        if fleet[0][1]:
            self.assertNotIn("Vouch Sim Device Identity CA", issuer)
        out, _ = self.sim("connect", "--quiet")
        self.assertEqual(out["failed_devices"], 0, out)
        self.assertEqual(out["sessions"], 8, out)
        self.assertEqual(out["answers"]["Acknowledged"], sum(out["commands"].values()), out)

    def test_2_misbehaving_devices_are_refused(self):
        odd = os.path.join(self.work, "odd")
        os.makedirs(odd)
        for name in SHARED_FILES:
            shutil.copy(os.path.join(self.sim_dir, name), odd)
        before = self.refusals()
        out, err = self.sim("run", "--devices", "5", "--identity", "acme", "--prefix", "odd",
                            "--acme-reuse-client-id", "1", "--acme-wrong-csr-key", "1",
                            "--topic", self.topic, "--key-type", "ec", directory=odd)
        fleet = self.fleet(odd)
        honest = fleet[:3]
        self.assertEqual(out["failed_devices"], 0, out)
        self.assertEqual(out["acme"]["refused"],
                         {"client_identifier_used": 1, "csr_key_mismatch": 1}, out)
        self.assertEqual(out["acme"]["not_refused"], 0, out)
        self.assertEqual(out["enrolled"], 3, out)
        self.assertEqual(out["sessions"], 3, out)  # the refused devices do not connect
        self.assertIn("refused as it should be (CSR for another key", err)
        self.assertIn("refused as it should be (reused ClientIdentifier", err)
        after = self.refusals()
        for reason in ("client_identifier_used", "csr_key_mismatch"):
            self.assertEqual(after.get(reason, 0) - before.get(reason, 0), 1,
                             f"vouch_acme_refusals_total{{reason={reason}}}: {before} -> {after}")
        for udid, can in honest:
            identity = self.vouchd.device(udid).json()["identity"]
            self.assertEqual(identity["kind"], "acme-attested" if can else "scep", identity)
        for udid, _ in fleet[3:]:
            self.assertStatus(self.vouchd.device(udid), 404, f"refused device {udid}")
