"""The project's own tools end to end: vouch-sim enrolls a fleet and drains its queues, vouchctl
lists it and queues commands.

Each enrollment's first TokenUpdate queues an attestation request (DeviceInformation asking for
DevicePropertiesAttestation) ahead of everything else; `vouch-sim connect` drains it like any other
command: models that can attest answer with a chain from the simulator's stand-in Apple hierarchy
(which this vouchd trusts: attestation_roots = the state directory's apple-root.pem), the others
answer Acknowledged without the key. The summary's `commands` counts include these requests."""

import collections
import json
import os
import plistlib
import re
import tempfile

from harness import VouchTestCase, command_plist, suite, vouch_sim, vouchctl

FLEET = 20
ATTESTATION_ROOTS = "apple-root.pem"  # written by `vouch-sim init-ca` beside ca.pem

# Managed Device Attestation needs iOS/iPadOS/tvOS 16 or later on an A11 iPhone (iPhone10,x), an
# iPad with an A12 or later (iPad8,x and up; iPad7,x are A10/A10X) or an Apple TV with an A12 or
# later (AppleTV11,1 and up). Written from Apple's list, independently of the simulator's table.
ATTEST_MIN_MAJOR = {"iPhone": 10, "iPad": 8, "AppleTV": 11}


def can_attest(product_name, os_version):
    m = re.fullmatch(r"(iPhone|iPad|AppleTV)(\d+),\d+", product_name)
    if m is None:
        raise AssertionError(f"test_sim does not know whether {product_name} can attest: add it "
                             "to ATTEST_MIN_MAJOR")
    return int(m.group(2)) >= ATTEST_MIN_MAJOR[m.group(1)] and int(os_version.split(".")[0]) >= 16


class SimulatorTest(VouchTestCase):

    @classmethod
    def setUpClass(cls):
        cls.sim_dir = tempfile.mkdtemp(prefix="sim-", dir=suite().run_dir)
        p = vouch_sim("init-ca", "--dir", cls.sim_dir)
        if p.returncode != 0:
            raise AssertionError(f"vouch-sim init-ca: exit {p.returncode}\n{p.stdout}{p.stderr}")
        roots = os.path.join(cls.sim_dir, ATTESTATION_ROOTS)
        # Without the file (a simulator that predates attestation) vouchd keeps Apple's root and
        # test_1 fails on it by name.
        if os.path.exists(roots):
            cls.vouchd_config = dict(cls.vouchd_config, attestation_roots=roots)
        super().setUpClass()

    @classmethod
    def extra_identity_ca_pems(cls):
        with open(os.path.join(cls.sim_dir, "ca.pem"), "rb") as f:
            return [f.read()]

    def sim(self, *args, expect=0):
        p = vouch_sim(*args, "--url", self.vouchd.url, "--dir", self.sim_dir, "--quiet")
        self.assertEqual(p.returncode, expect,
                         f"vouch-sim {' '.join(args)}: exit {p.returncode}\nstdout: "
                         f"{p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
        return p

    @staticmethod
    def summary(p):
        """The JSON summary line vouch-sim prints on stdout."""
        lines = [line for line in p.stdout.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"vouch-sim printed no summary; stderr: {p.stderr[-2000:]}")
        return json.loads(lines[-1])

    def queued_by_type(self, udids):
        """{request_type: number of queued commands} over the fleet."""
        counts = collections.Counter()
        for udid in udids:
            for c in self.vouchd.commands(udid):
                if c["status"] == "queued":
                    counts[c["request_type"]] += 1
        return dict(counts)

    def connect_and_drain(self, udids):
        """vouch-sim connect; its summary must count exactly the commands that were queued (the
        attestation requests among them), all answered Acknowledged."""
        queued = self.queued_by_type(udids)
        total = sum(queued.values())
        out = self.summary(self.sim("connect"))
        self.assertEqual(out.get("commands"), queued,
                         f"commands vouch-sim was handed vs. those queued: {out}")
        answers = out.get("answers", {})
        self.assertEqual(answers.get("Acknowledged"), total, f"answers: {out}")
        self.assertEqual(sum(answers.values()), total, f"answers other than Acknowledged: {out}")
        for k in ("failed_devices", "protocol_errors", "http_errors", "transport_errors"):
            self.assertEqual(out.get(k), 0, f"{k}: {out}")
        self.assertEqual(self.queued_by_type(udids), {}, "commands left queued after connect")
        return out

    def fleet(self):
        """{udid: (ProductName, OSVersion, the simulator's own attest column or None)}."""
        p = vouch_sim("list", "--dir", self.sim_dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = {}
        for line in p.stdout.splitlines():
            if not line.strip():
                continue
            f = line.split("\t")
            out[f[1]] = (f[3], f[6], f[10] if len(f) > 10 else None)
        return out

    def assert_fleet_attested(self, udids, freshness=("fresh", "cached")):
        """Every device answered its attestation request: verified if its model can attest,
        unsupported if not; none left pending."""
        facts = self.fleet()
        expected = {u: ("verified" if can_attest(*facts[u][:2]) else "unsupported")
                    for u in udids}
        self.assertIn("verified", expected.values(), "the fleet has no device that can attest")
        self.assertIn("unsupported", expected.values(), "the fleet has no device too old to "
                                                        "attest")
        for udid in udids:
            product, osv, sim_says = facts[udid]
            if sim_says is not None:
                self.assertEqual(sim_says == "attest", expected[udid] == "verified",
                                 f"{udid} ({product} on {osv}): vouch-sim list says {sim_says}")
            requests = [c for c in self.vouchd.commands(udid)
                        if c["request_type"] == "DeviceInformation"]
            self.assertTrue(requests, f"{udid}: no attestation request in its commands")
            self.assertNotIn("queued", [c["status"] for c in requests], f"{udid}: {requests}")
            att = self.vouchd.device(udid).json()["attestation"]
            what = f"{udid} ({product} on {osv}): attestation {att}"
            self.assertEqual(att["status"], expected[udid], what)
            if expected[udid] == "verified":
                self.assertIn(att["freshness"], freshness, what)
                self.assertEqual((att["properties"] or {}).get("udid"), udid, what)
            else:
                self.assertIsNone(att["freshness"], what)
            self.assertIsNone(att["reason"], what)

    def ctl(self, *args):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, 0, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                                          f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
        return p

    def fleet_udids(self):
        p = vouch_sim("list", "--dir", self.sim_dir)
        if p.returncode != 0 and "holds no devices" in p.stderr:
            return []  # nothing enrolled yet (a test run on its own)
        self.assertEqual(p.returncode, 0, p.stderr)
        udids = [line.split("\t")[1] for line in p.stdout.splitlines() if line.strip()]
        return udids

    def assert_all_acknowledged(self, udids, command_uuid):
        for udid in udids:
            st = self.command_status(udid, command_uuid)
            self.assertEqual(len(st), 1, f"{udid}: {st}")
            self.assertEqual(st[0]["status"], "Acknowledged", f"{udid}: {st}")

    def test_1_run_enrolls_the_fleet(self):
        self.assertTrue(os.path.exists(os.path.join(self.sim_dir, ATTESTATION_ROOTS)),
                        f"vouch-sim init-ca wrote no {ATTESTATION_ROOTS} (stand-in Apple "
                        "attestation root) in its state directory: does it answer attestation "
                        "requests yet?")
        out = self.summary(self.sim("run", "--devices", str(FLEET), "--key-type", "ec"))
        # the only commands of a fresh fleet: one attestation request per enrollment
        self.assertEqual(out.get("commands"), {"DeviceInformation": FLEET}, f"summary: {out}")
        self.assertEqual(out.get("answers", {}).get("Acknowledged"), FLEET, f"summary: {out}")
        self.assertEqual(out.get("failed_devices"), 0, f"summary: {out}")
        udids = self.fleet_udids()
        self.assertEqual(len(udids), FLEET, "vouch-sim list")
        self.assert_fleet_attested(udids, freshness=("fresh",))
        listed = json.loads(self.ctl("--json", "devices").stdout)
        self.assertIsInstance(listed, list)
        by_udid = {d["udid"]: d for d in listed}
        for udid in udids:
            self.assertIn(udid, by_udid, "vouchctl --json devices misses a simulated device")
            self.assertIs(by_udid[udid]["enrolled"], True, by_udid[udid])
        self.assertEqual(len([u for u in by_udid if u in set(udids)]), FLEET)

    def test_2_enqueue_to_all_and_drain(self):
        udids = self.fleet_udids()
        if len(udids) < FLEET:
            self.sim("enroll", "--devices", str(FLEET), "--key-type", "ec")
            udids = self.fleet_udids()
        cmd = command_plist("DeviceInformation", Queries=["DeviceName", "OSVersion"])
        out = self.enqueue_ok(udids, cmd)
        self.assertEqual(out["status"], {u: {"queued": True} for u in udids})
        self.connect_and_drain(udids)
        self.assert_all_acknowledged(udids, cmd["CommandUUID"])
        self.assert_fleet_attested(udids)

    def test_3_vouchctl_enqueue_and_commands(self):
        udids = self.fleet_udids()
        if len(udids) < FLEET:
            self.sim("enroll", "--devices", str(FLEET), "--key-type", "ec")
            udids = self.fleet_udids()
        cmd = command_plist("ProfileList")
        path = os.path.join(self.sim_dir, "cmd.plist")
        with open(path, "wb") as f:
            f.write(plistlib.dumps(cmd))
        self.ctl("enqueue", *udids, "--file", path)
        for udid in udids:
            st = self.command_status(udid, cmd["CommandUUID"])
            self.assertEqual([c["status"] for c in st], ["queued"], f"{udid}: {st}")
        self.connect_and_drain(udids)
        self.assert_all_acknowledged(udids, cmd["CommandUUID"])
        self.assert_fleet_attested(udids)
        shown = json.loads(self.ctl("--json", "commands", udids[0]).stdout)
        self.assertIn(cmd["CommandUUID"], json.dumps(shown))

    def test_4_swapped_identities_are_refused(self):
        udids = self.fleet_udids()
        if len(udids) < 2:
            self.sim("enroll", "--devices", str(FLEET), "--key-type", "ec")
        self.sim("connect", "--swap-identities", "--expect-status", "403")
        self.sim("connect", "--no-signature", "--expect-status", "403")
        self.assertAlive("simulator negative runs")
