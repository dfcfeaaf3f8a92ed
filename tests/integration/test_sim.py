"""The project's own tools end to end: vouch-sim enrolls a fleet and drains its queues, vouchctl
lists it and queues commands."""

import json
import os
import plistlib
import tempfile

from harness import VouchTestCase, command_plist, suite, vouch_sim, vouchctl

FLEET = 20


class SimulatorTest(VouchTestCase):

    @classmethod
    def extra_identity_ca_pems(cls):
        cls.sim_dir = tempfile.mkdtemp(prefix="sim-", dir=suite().run_dir)
        p = vouch_sim("init-ca", "--dir", cls.sim_dir)
        if p.returncode != 0:
            raise AssertionError(f"vouch-sim init-ca: exit {p.returncode}\n{p.stdout}{p.stderr}")
        with open(os.path.join(cls.sim_dir, "ca.pem"), "rb") as f:
            return [f.read()]

    def sim(self, *args, expect=0):
        p = vouch_sim(*args, "--url", self.vouchd.url, "--dir", self.sim_dir, "--quiet")
        self.assertEqual(p.returncode, expect,
                         f"vouch-sim {' '.join(args)}: exit {p.returncode}\nstdout: "
                         f"{p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
        return p

    def ctl(self, *args):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, 0, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                                          f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
        return p

    def fleet_udids(self):
        p = vouch_sim("list", "--dir", self.sim_dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        udids = [line.split("\t")[1] for line in p.stdout.splitlines() if line.strip()]
        return udids

    def assert_all_acknowledged(self, udids, command_uuid):
        for udid in udids:
            st = self.command_status(udid, command_uuid)
            self.assertEqual(len(st), 1, f"{udid}: {st}")
            self.assertEqual(st[0]["status"], "Acknowledged", f"{udid}: {st}")

    def test_1_run_enrolls_the_fleet(self):
        self.sim("run", "--devices", str(FLEET), "--key-type", "ec")
        udids = self.fleet_udids()
        self.assertEqual(len(udids), FLEET, "vouch-sim list")
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
        self.sim("connect")
        self.assert_all_acknowledged(udids, cmd["CommandUUID"])

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
        self.sim("connect")
        self.assert_all_acknowledged(udids, cmd["CommandUUID"])
        shown = json.loads(self.ctl("--json", "commands", udids[0]).stdout)
        self.assertIn(cmd["CommandUUID"], json.dumps(shown))

    def test_4_swapped_identities_are_refused(self):
        udids = self.fleet_udids()
        if len(udids) < 2:
            self.sim("enroll", "--devices", str(FLEET), "--key-type", "ec")
        self.sim("connect", "--swap-identities", "--expect-status", "403")
        self.sim("connect", "--no-signature", "--expect-status", "403")
        self.assertAlive("simulator negative runs")
