"""Pushes end to end with the project's own peers: vouchd pushes through apns-standin (HTTP/2
over TLS, client certificate required) and vouch-sim's devices connect only when pushed, as real
devices do. Enqueue -> push -> the device connects -> the result is in the database."""

import json
import os
import plistlib
import subprocess
import tempfile
import time
import urllib.request

from harness import (BUILD_DIR, REPO, VouchTestCase, command_plist, require_executable, suite,
                     vouch_sim)

STANDIN = os.path.join(BUILD_DIR, "tests", "apns", "apns-standin")
MAKE_CERTS = os.path.join(REPO, "tests", "apns", "make-certs.sh")
FLEET = 6


class PushEndToEndTest(VouchTestCase):

    @classmethod
    def setUpClass(cls):
        require_executable(STANDIN, "apns-standin")
        cls.tmp = tempfile.mkdtemp(prefix="push-e2e-", dir=suite().run_dir)
        certs = os.path.join(cls.tmp, "certs")
        subprocess.run([MAKE_CERTS, certs], check=True, capture_output=True)
        with open(os.path.join(certs, "topic")) as f:
            cls.topic = f.read().strip()
        cls.notify = os.path.join(cls.tmp, "notify")
        os.makedirs(cls.notify)
        cls.standin = subprocess.Popen(
            [STANDIN, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
             "--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key",
             "--client-ca", f"{certs}/push-ca.pem", "--notify-dir", cls.notify],
            stdout=subprocess.PIPE, stderr=open(os.path.join(cls.tmp, "standin.log"), "w"),
            text=True)
        ready = cls.standin.stdout.readline().split()
        fields = dict(f.split("=", 1) for f in ready if "=" in f)
        if "listen" not in fields:
            cls.standin.kill()
            raise AssertionError(f"apns-standin did not start: {ready}")
        cls.control = fields["control"]
        cls.sim_dir = os.path.join(cls.tmp, "sim")
        p = vouch_sim("init-ca", "--dir", cls.sim_dir)
        assert p.returncode == 0, p.stderr
        cls.vouchd_config = dict(cls.vouchd_config,
                                 apns_cert=f"{certs}/push.pem", apns_key=f"{certs}/push.key",
                                 apns_ca=f"{certs}/ca.pem", apns_url=f"https://{fields['listen']}",
                                 attestation_roots=os.path.join(cls.sim_dir, "apple-root.pem"))
        try:
            super().setUpClass()
        except BaseException:
            cls.standin.kill()
            raise

    @classmethod
    def extra_identity_ca_pems(cls):
        with open(os.path.join(cls.sim_dir, "ca.pem"), "rb") as f:
            return [f.read()]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.standin.terminate()
        cls.standin.wait(timeout=30)

    def pushes(self):
        with urllib.request.urlopen(f"http://{self.control}/pushes", timeout=30) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]

    def sim(self, *args):
        p = vouch_sim(*args, "--url", self.vouchd.url, "--dir", self.sim_dir, "--quiet",
                      timeout=120)
        self.assertEqual(p.returncode, 0, f"vouch-sim {args[0]}: {p.stdout}{p.stderr}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def test_enqueue_push_connect_result(self):
        self.sim("enroll", "--devices", str(FLEET), "--key-type", "ec", "--topic", self.topic)
        tokens = {}
        p = vouch_sim("tokens", "--dir", self.sim_dir)
        for line in p.stdout.splitlines():
            udid, token, magic = line.split("\t")
            tokens[udid] = (token.lower(), magic)
        self.assertEqual(len(tokens), FLEET)

        # Each enrollment's attestation request woke its device: one push per token, well formed.
        def enrollment_pushes():
            return [p for p in self.pushes() if p["token"].lower() in
                    {t for t, _ in tokens.values()}]
        deadline = time.time() + 30
        while len(enrollment_pushes()) < FLEET and time.time() < deadline:
            time.sleep(0.2)
        first = enrollment_pushes()
        self.assertEqual(sorted(p["token"].lower() for p in first),
                         sorted(t for t, _ in tokens.values()))
        for p in first:
            self.assertEqual(p["topic"], self.topic)
            self.assertEqual(p["status"], 200)
            self.assertEqual(p["priority"], 10)
            self.assertGreater(int(p["expiration"]), time.time() + 6 * 86400)
            magic = {t: m for t, m in tokens.values()}[p["token"].lower()]
            self.assertEqual(p["push_magic"], magic)

        # The devices are asleep until pushed: serve follows the pushes from here on.
        serve = subprocess.Popen(
            [os.path.join(BUILD_DIR, "tests", "sim", "vouch-sim"), "serve", "--url",
             self.vouchd.url, "--dir", self.sim_dir, "--pushes",
             os.path.join(self.notify, "pushes.log"), "--expect-pushes", str(FLEET),
             "--max-seconds", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        line = ""
        while "ready" not in line and time.time() < deadline:
            line = serve.stderr.readline()
        self.assertIn("ready", line)

        before = len(self.pushes())
        r = self.vouchd.admin("PUT", "/v1/enqueue/" + ",".join(tokens),
                       plistlib.dumps(command_plist("DeviceInformation",
                                                    Queries=["UDID", "OSVersion"])))
        self.assertEqual(r.status, 200, r)
        uuid = r.json()["command_uuid"]
        out, err = serve.communicate(timeout=120)
        self.assertEqual(serve.returncode, 0, f"vouch-sim serve: {out}{err[-3000:]}")
        summary = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(summary["pushes_handled"], FLEET)

        # Exactly one push per device for the enqueue.
        new = self.pushes()[before:]
        self.assertEqual(sorted(p["token"].lower() for p in new),
                         sorted(t for t, _ in tokens.values()))
        # Every device connected and its result is stored.
        for udid in tokens:
            cmds = self.vouchd.admin("GET", f"/v1/devices/{udid}/commands").json()
            status = {c["command_uuid"]: c["status"] for c in cmds}
            self.assertEqual(status.get(uuid), "Acknowledged", f"{udid}: {cmds}")
            dev = self.vouchd.admin("GET", f"/v1/devices/{udid}").json()
            self.assertEqual(dev["push"]["token_state"], "active")
            self.assertEqual(dev["push"]["last_push_result"], "delivered")
            self.assertIsNotNone(dev["push"]["last_push_at"])
            self.assertIn(dev["attestation"]["status"], ("verified", "unsupported"))
