"""`vouchctl migrate` (issue 25, point 5) against a real vouchd with `migration = on`.

The check-in plists are made here, in the shapes of NanoMDM's own captures
(tests/testdata/peer-plists/nanomdm/mdm__testdata__{Authenticate,TokenUpdate}.1.plist: the same
keys, new UDIDs, serials and tokens), and laid out as NanoMDM's file storage keeps them: one folder
per enrollment holding Authenticate.plist and TokenUpdate.plist. What is checked:
  * a folder of N devices: "2N accepted, 0 refused", exit 0, every device known to vouchd as a
    migrated enrollment (identity kind "migrated", unbound) with the plists' serial, model, OS and
    build version; a second run says the same and changes no device object;
  * a TokenUpdate whose device has no Authenticate is refused by the server (409
    no_authenticate): exit 1, the file named with its status and reason, the others accepted; a
    file that is no plist and one over 1 MiB are refused without being sent;
  * a TokenUpdate named before its Authenticate on the command line is still sent after it;
  * a binary plist is refused without being sent (and never parsed: a 1 KiB one can become a
    gigabyte in libplist 2.2);
  * a plist of another message type is skipped (exit 0 when nothing was refused);
  * a real NanoMDM file storage (storage/file: Queue, QueueDone, QueueNotNow, QueueInactive
    command files and *.result.plist results, a user channel's enrollment folder "UDID:UserID",
    push certificate files, SubEnrollments, tallies): its devices are all accepted, the command
    files are not read, the user channels' TokenUpdates and plists without a MessageType are
    skipped, exit 0, and the device keeps its own token and PushMagic;
  * `--dry-run` exits 1 when a file would be refused, 0 otherwise;
  * a wrong token: every file refused with HTTP 401 and the hint about the token;
  * `migrate status` and `--json` print GET /v1/migration's figures; `--watch` off a terminal
    prints a line per look and, interrupted (SIGINT), the figures and exit 1;
  * `--dry-run` lists the order and sends nothing.
SimMigratedFleetTest: `vouch-sim enroll --migrate` moves a fleet in, and its first check-ins and
answers make it attested, while `migrate status --watch` on a terminal draws attested/migrated
and ends by itself with the figures."""

import base64
import json
import os
import plistlib
import pty
import re
import select
import signal
import subprocess
import tempfile
import time
import uuid

from harness import VOUCHCTL, VouchTestCase, clean_env, suite, vouch_sim, vouchctl, wait_for

TOPIC = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9"
FLEET = 12
USER_ID = "5DF1182E-C70B-4A3A-BADC-DD3E775040FB"


def authenticate(udid, serial, product="iPad8,1", os_version="17.4"):
    """An Authenticate as NanoMDM's capture has it (mdm__testdata__Authenticate.1.plist)."""
    return {"BuildVersion": "21E219", "MessageType": "Authenticate", "OSVersion": os_version,
            "ProductName": product, "SerialNumber": serial, "Topic": TOPIC, "UDID": udid}


def token_update(udid, token):
    """A TokenUpdate as NanoMDM's capture has it (mdm__testdata__TokenUpdate.1.plist)."""
    return {"AwaitingConfiguration": False, "MessageType": "TokenUpdate",
            "PushMagic": "CEFDF0BD-E342-4A27-8742-" + udid[-12:].upper(), "Token": token,
            "Topic": TOPIC, "UDID": udid, "UnlockToken": os.urandom(256)}


def new_udid():
    return os.urandom(20).hex()


class VouchctlMigrateTest(VouchTestCase):
    vouchd_config = {"migration": "on"}

    def tmpdir(self):
        return tempfile.mkdtemp(prefix="migrate-", dir=suite().run_dir)

    def write_plist(self, path, value, fmt=plistlib.FMT_XML):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            plistlib.dump(value, f, fmt=fmt)
        return path

    def write_fleet(self, n):
        """A NanoMDM file-storage folder of n devices: {udid: (serial, token)}, folder."""
        root = self.tmpdir()
        fleet = {}
        for i in range(n):
            udid, serial, token = new_udid(), f"MIG{os.urandom(4).hex().upper()}", os.urandom(32)
            self.write_plist(os.path.join(root, udid, "Authenticate.plist"),
                             authenticate(udid, serial))
            self.write_plist(os.path.join(root, udid, "TokenUpdate.plist"),
                             token_update(udid, token))
            fleet[udid] = (serial, token)
        return fleet, root

    def migrate(self, *args, expect=0, token=None):
        if token is None:
            p = vouchctl(self.vouchd, "migrate", *args, timeout=120)
        else:
            p = subprocess.run([VOUCHCTL, "--url", self.vouchd.url, "--token", token, "migrate"]
                               + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=120, env=clean_env())
        self.assertEqual(p.returncode, expect,
                         f"vouchctl migrate {' '.join(args)}: exit {p.returncode}\n"
                         f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}\n"
                         + self.vouchd_log_since_test())
        return p

    def summary(self, p):
        m = re.search(r"^(\d+) accepted, (\d+) refused(?:, (\d+) skipped)?$", p.stdout, re.M)
        self.assertIsNotNone(m, f"no summary line in: {p.stdout!r}")
        return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)

    def device_json(self, udid):
        r = self.vouchd.device(udid)
        self.assertEqual(r.status, 200, f"GET /v1/devices/{udid}: {r!r}")
        return r.json()

    def migration_figures(self):
        r = self.vouchd.admin("GET", "/v1/migration")
        self.assertEqual(r.status, 200, f"GET /v1/migration: {r!r}")
        return r.json()

    # -- the tests ------------------------------------------------------------------------
    def test_1_a_folder_twice(self):
        before = self.migration_figures()["devices"]["migrated"]
        fleet, root = self.write_fleet(FLEET)
        p = self.migrate(root)
        self.assertEqual(self.summary(p), (2 * FLEET, 0, 0), p.stdout)
        self.assertNotIn("refused ", p.stdout)

        objects = {}
        for udid, (serial, token) in fleet.items():
            d = self.device_json(udid)
            self.assertEqual(d["identity"]["kind"], "migrated", d)
            self.assertIs(d["identity"]["bound"], False, d)
            self.assertEqual(d["serial_number"], serial, d)
            self.assertEqual(d["product_name"], "iPad8,1", d)
            self.assertEqual(d["os_version"], "17.4", d)
            self.assertEqual(d["build_version"], "21E219", d)
            objects[udid] = d
        self.assertEqual(self.migration_figures()["devices"]["migrated"], before + FLEET)
        p = vouchctl(self.vouchd, "device", next(iter(fleet)))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^identity: +migrated, unbound$")

        # Again: the same summary, nothing changed.
        p = self.migrate(root, "--parallel", "1")
        self.assertEqual(self.summary(p), (2 * FLEET, 0, 0), p.stdout)
        for udid in fleet:
            self.assertEqual(self.device_json(udid), objects[udid], udid)
        self.assertEqual(self.migration_figures()["devices"]["migrated"], before + FLEET)

        # --json: one entry per file, each accepted with status 200.
        p = self.migrate(root, "--json")
        doc = json.loads(p.stdout)
        self.assertEqual((doc["accepted"], doc["refused"], doc["skipped"]), (2 * FLEET, 0, 0))
        self.assertEqual(len(doc["files"]), 2 * FLEET)
        for f in doc["files"]:
            self.assertEqual((f["result"], f["status"], f["reason"]), ("accepted", 200, None), f)
            self.assertIn(f["udid"], fleet)
            self.assertTrue(f["file"].endswith(f["message_type"] + ".plist"), f)

    def test_2_refusals_name_their_file(self):
        root = self.tmpdir()
        good = new_udid()
        orphan = new_udid()
        self.write_plist(os.path.join(root, good, "Authenticate.plist"),
                         authenticate(good, "MIGGOOD1"))
        self.write_plist(os.path.join(root, good, "TokenUpdate.plist"),
                         token_update(good, os.urandom(32)))
        orphan_path = self.write_plist(os.path.join(root, orphan, "TokenUpdate.plist"),
                                       token_update(orphan, os.urandom(32)))
        junk = os.path.join(root, "junk.plist")
        with open(junk, "w") as f:
            f.write("this is no plist\n")
        big = os.path.join(root, "big.plist")
        self.write_plist(big, dict(authenticate(new_udid(), "MIGBIG"),
                                   Padding=b"x" * (1024 * 1024)))
        p = self.migrate(root, expect=1)
        self.assertEqual(self.summary(p), (2, 3, 0), p.stdout)
        self.assertRegex(p.stdout, rf"(?m)^refused {re.escape(orphan_path)}: HTTP 409 "
                                   r"no_authenticate$")
        self.assertRegex(p.stdout, rf"(?m)^refused {re.escape(junk)}: not a plist")
        self.assertRegex(p.stdout, rf"(?m)^refused {re.escape(big)}: larger than 1048576")
        self.assertEqual(self.vouchd.device(orphan).status, 404)
        self.assertEqual(self.device_json(good)["identity"]["kind"], "migrated")

    def test_3_authenticate_goes_first(self):
        d = self.tmpdir()
        udid = new_udid()
        tu = self.write_plist(os.path.join(d, "a-token.plist"),
                              token_update(udid, os.urandom(32)))
        auth = self.write_plist(os.path.join(d, "b-auth.plist"),
                                authenticate(udid, "MIGORDER"))
        p = self.migrate("--dry-run", tu, auth)
        lines = [line for line in p.stdout.splitlines() if line.startswith("would send")]
        self.assertEqual(len(lines), 2, p.stdout)
        self.assertIn("Authenticate", lines[0])
        self.assertIn("TokenUpdate", lines[1])
        self.assertEqual(self.vouchd.device(udid).status, 404, "--dry-run sent something")
        p = self.migrate(tu, auth)
        self.assertEqual(self.summary(p), (2, 0, 0), p.stdout)
        self.assertEqual(self.device_json(udid)["serial_number"], "MIGORDER")

    def test_4_other_message_types_are_skipped(self):
        d = self.tmpdir()
        path = self.write_plist(os.path.join(d, "UserAuthenticate.plist"),
                                {"MessageType": "UserAuthenticate", "UDID": new_udid(),
                                 "UserID": "A1B2"})
        p = self.migrate(d)
        self.assertEqual(self.summary(p), (0, 0, 1), p.stdout)
        self.assertRegex(p.stdout, rf"(?m)^skipped {re.escape(path)}: ")

    def test_4a_binary_refused_unparsed(self):
        d = self.tmpdir()
        udid = new_udid()
        path = self.write_plist(os.path.join(d, udid, "Authenticate.plist"),
                                authenticate(udid, "MIGBIN"), plistlib.FMT_BINARY)
        # libplist 2.2 would copy the 1 KiB string once per path to it: 16^5 times.
        node = "x" * 1024
        for _ in range(5):
            node = [node] * 16
        bomb = self.write_plist(os.path.join(d, "bomb.plist"),
                                dict(authenticate(new_udid(), "MIGBOMB"), Padding=node),
                                plistlib.FMT_BINARY)
        self.assertLess(os.path.getsize(bomb), 2048)
        started = time.monotonic()
        p = self.migrate(d, expect=1)
        self.assertLess(time.monotonic() - started, 30, "a binary plist was parsed")
        self.assertEqual(self.summary(p), (0, 2, 0), p.stdout)
        for f in (path, bomb):
            self.assertRegex(p.stdout, rf"(?m)^refused {re.escape(f)}: binary plist: convert it "
                                       r"with plutil -convert xml1$")
        self.assertEqual(self.vouchd.device(udid).status, 404, "a binary plist was sent")

    def write_nanomdm_storage(self, n):
        """A folder as NanoMDM's file storage keeps it (storage/file/file.go, queue.go): per
        device UDID/ with Authenticate.plist, TokenUpdate.plist, their tally, serial, identity
        and unlock token, its command queues (Queue, QueueDone, QueueNotNow, QueueInactive: a
        command UUID.plist each, UUID.result.plist the device's answer) and SubEnrollments/; per
        user channel UDID:UserID/ with its TokenUpdate.plist and UserAuthenticate.plist; the
        push certificate as TOPIC.pem / TOPIC.key at the top. {udid: token}, folder."""
        root = self.tmpdir()
        fleet = {}

        def write(path, data):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

        for i in range(n):
            udid, token = new_udid(), os.urandom(32)
            dev = os.path.join(root, udid)
            self.write_plist(os.path.join(dev, "Authenticate.plist"),
                             authenticate(udid, f"MIGFS{i:03d}"))
            self.write_plist(os.path.join(dev, "TokenUpdate.plist"), token_update(udid, token))
            write(os.path.join(dev, "TokenUpdate.tally.txt"), b"3")
            write(os.path.join(dev, "SerialNumber.txt"), f"MIGFS{i:03d}".encode())
            write(os.path.join(dev, "Identity.pem"), b"-----BEGIN CERTIFICATE-----\n")
            write(os.path.join(dev, "UnlockToken.dat"), os.urandom(64))
            for queue in ("Queue", "QueueDone", "QueueNotNow", "QueueInactive"):
                cu = str(uuid.uuid4()).upper()
                self.write_plist(os.path.join(dev, queue, cu + ".plist"),
                                 {"CommandUUID": cu,
                                  "Command": {"RequestType": "DeviceInformation",
                                              "Queries": ["OSVersion"]}})
                if queue in ("QueueDone", "QueueNotNow"):
                    status = "Acknowledged" if queue == "QueueDone" else "NotNow"
                    self.write_plist(os.path.join(dev, queue, cu + ".result.plist"),
                                     {"CommandUUID": cu, "Status": status, "UDID": udid})
            user = f"{udid}:{USER_ID}"
            write(os.path.join(dev, "SubEnrollments", user), b"")
            self.write_plist(os.path.join(root, user, "TokenUpdate.plist"),
                             dict(token_update(udid, os.urandom(32)), UserID=USER_ID,
                                  UserShortName="user", UserLongName="A User",
                                  PushMagic="AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"))
            write(os.path.join(root, user, "TokenUpdate.tally.txt"), b"1")
            fleet[udid] = token
        self.write_plist(os.path.join(root, udid + ":" + USER_ID, "UserAuthenticate.plist"),
                         {"MessageType": "UserAuthenticate", "UDID": udid, "UserID": USER_ID,
                          "UserShortName": "user", "UserLongName": "A User"})
        write(os.path.join(root, TOPIC + ".pem"), b"-----BEGIN CERTIFICATE-----\n")
        write(os.path.join(root, TOPIC + ".key"), b"-----BEGIN RSA PRIVATE KEY-----\n")
        return fleet, root

    def test_4b_a_nanomdm_file_storage(self):
        n = 3
        fleet, root = self.write_nanomdm_storage(n)
        stray = self.write_plist(os.path.join(root, "Info.plist"), {"CFBundleName": "x"})
        p = self.migrate("--dry-run", root)
        self.assertNotIn("Queue", p.stdout)
        self.assertNotIn(".result.plist", p.stdout)
        self.assertEqual(len(re.findall(r"(?m)^would send ", p.stdout)), 2 * n, p.stdout)

        p = self.migrate(root)
        # Skipped: each user channel's TokenUpdate, the UserAuthenticate, the plist without a
        # MessageType; the command files and results are not even listed.
        self.assertEqual(self.summary(p), (2 * n, 0, n + 2), p.stdout)
        self.assertNotIn("Queue", p.stdout)
        self.assertNotIn("result", p.stdout)
        self.assertEqual(len(re.findall(r"(?m)^skipped .*:[0-9A-F-]+/TokenUpdate\.plist: a user "
                                        r"channel's TokenUpdate \(UserID\): Vouch has no user "
                                        r"channel$", p.stdout)), n, p.stdout)
        self.assertRegex(p.stdout, rf"(?m)^skipped {re.escape(stray)}: no MessageType")
        for udid, token in fleet.items():
            self.assertEqual(self.device_json(udid)["identity"]["kind"], "migrated")
            # The device channel's push credentials, not the user channel's.
            self.assertEqual(self.psql(f"SELECT encode(push_token, 'hex'), push_magic FROM "
                                       f"enrollments WHERE udid = '{udid}'").strip(),
                             f"{token.hex()}|CEFDF0BD-E342-4A27-8742-{udid[-12:].upper()}")

    def test_4c_dry_run_exits_1_when_a_file_would_be_refused(self):
        fleet, root = self.write_fleet(1)
        p = self.migrate("--dry-run", root)
        self.assertIn("2 to send", p.stdout)
        with open(os.path.join(root, "junk.plist"), "w") as f:
            f.write("this is no plist\n")
        p = self.migrate("--dry-run", root, expect=1)
        self.assertIn("2 to send", p.stdout)
        self.assertRegex(p.stdout, r"(?m)^would not send .*junk\.plist: not a plist")
        for udid in fleet:
            self.assertEqual(self.vouchd.device(udid).status, 404, "--dry-run sent something")

    def test_5_wrong_token(self):
        fleet, root = self.write_fleet(1)
        p = self.migrate(root, expect=1, token="not-the-token-" + "0" * 32)
        self.assertEqual(self.summary(p), (0, 2, 0), p.stdout)
        self.assertEqual(len(re.findall(r"(?m)^refused .*: HTTP 401", p.stdout)), 2, p.stdout)
        self.assertIn("refused the admin token", p.stderr)
        for udid in fleet:
            self.assertEqual(self.vouchd.device(udid).status, 404)

    def test_6_basic_auth_on_the_wire(self):
        # What vouchctl sends is what nano2nano sends: a PUT with Basic nanomdm:KEY. The server
        # side's answer to that exact request, for a fresh Authenticate, is an empty 200.
        udid = new_udid()
        key = base64.b64encode(f"nanomdm:{self.vouchd.admin_token}".encode()).decode()
        r = self.vouchd.request("PUT", "/migration",
                                body=plistlib.dumps(authenticate(udid, "MIGWIRE")),
                                headers={"Authorization": f"Basic {key}"})
        self.assertEqual((r.status, r.body), (200, b""), r)
        d = self.tmpdir()
        self.write_plist(os.path.join(d, udid, "Authenticate.plist"),
                         authenticate(udid, "MIGWIRE"))
        p = self.migrate(d)
        self.assertEqual(self.summary(p), (1, 0, 0), p.stdout)

    def test_7_status(self):
        fleet, root = self.write_fleet(3)
        self.migrate(root)
        figures = self.migration_figures()
        self.assertEqual(figures["migration"], "on")
        p = vouchctl(self.vouchd, "migrate", "status", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), figures)

        p = vouchctl(self.vouchd, "migrate", "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        shown = dict(re.findall(r"(?m)^(\w+) +(\d+)$", p.stdout))
        for key, value in figures["devices"].items():
            self.assertEqual(int(shown[key]), value, f"{key} in {p.stdout!r}")
        self.assertRegex(p.stdout, rf"(?m)^topics without a certificate +"
                                   rf"{len(figures['topics_without_certificate'])}$")
        for t in figures["topics_without_certificate"]:
            self.assertIn(f"  {t['topic']}  {t['devices']} devices", p.stdout)
        # No instance has a push certificate: pushes are off, no topic is singled out.
        self.assertEqual(figures["topics_without_certificate"], [])
        # Another instance's certificate, for another topic, counts: the migrated topic is listed.
        self.psql("INSERT INTO push_topics (instance, topic) "
                  "VALUES ('elsewhere 127.0.0.1:1', 'com.apple.mgmt.External.other')")
        try:
            figures = self.migration_figures()
            self.assertIn(TOPIC, [t["topic"] for t in figures["topics_without_certificate"]])
            p = vouchctl(self.vouchd, "migrate", "status")
            self.assertIn(f"  {TOPIC}  ", p.stdout)
        finally:
            self.psql("DELETE FROM push_topics WHERE instance = 'elsewhere 127.0.0.1:1'")

    def test_8_watch_until_interrupted(self):
        fleet, root = self.write_fleet(2)
        self.migrate(root)
        # The migrated devices never check in here: --watch would wait for ever; off a
        # terminal it prints a line per look, and Ctrl-C ends it with the figures.
        proc = subprocess.Popen([VOUCHCTL, "--url", self.vouchd.url, "--token",
                                 self.vouchd.admin_token, "migrate", "status", "--watch"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=clean_env())
        try:
            first = proc.stdout.readline()
            self.assertRegex(first, r"^attested \d+/\d+, provisional \d+, waiting \d+, "
                                    r"refused \d+$")
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(proc.returncode, 1, err)
        self.assertRegex(out, r"(?m)^migrated +\d+$")

    def test_9_help_and_usage(self):
        p = vouchctl(self.vouchd, "migrate", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("nanomdm:TOKEN", p.stdout)
        for line in p.stdout.splitlines():
            self.assertLessEqual(len(line), 80, line)
        p = vouchctl(self.vouchd, "migrate")
        self.assertEqual(p.returncode, 2)
        p = vouchctl(self.vouchd, "migrate", "--watch", self.tmpdir())
        self.assertEqual(p.returncode, 2)
        for bad in ("0", "17", "x"):
            p = vouchctl(self.vouchd, "migrate", "--parallel", bad, self.tmpdir())
            self.assertEqual(p.returncode, 2, bad)
        p = vouchctl(self.vouchd, "migrate", self.tmpdir())
        self.assertEqual(p.returncode, 1)
        self.assertIn("no *.plist file", p.stderr)


class SimMigratedFleetTest(VouchTestCase):
    """vouch-sim --migrate: a fleet whose identities the old server's CA (the simulator's) issued
    moves in through /migration, then proves them: the first signed check-in binds provisionally
    and plans an attestation, which the scheduler queues; answered, the binding is permanent and
    the device attested (GET /v1/migration counts it), as bench/bench_migration.py measures at
    scale."""

    DEVICES = 8

    @classmethod
    def setUpClass(cls):
        cls.sim_dir = tempfile.mkdtemp(prefix="sim-migrate-", dir=suite().run_dir)
        p = vouch_sim("init-ca", "--dir", cls.sim_dir)
        if p.returncode != 0:
            raise AssertionError(f"vouch-sim init-ca: exit {p.returncode}\n{p.stdout}{p.stderr}")
        cls.vouchd_config = {"migration": "on",
                             "attestation_roots": os.path.join(cls.sim_dir, "apple-root.pem")}
        super().setUpClass()

    @classmethod
    def extra_identity_ca_pems(cls):
        with open(os.path.join(cls.sim_dir, "ca.pem"), "rb") as f:
            return [f.read()]

    def sim(self, *args):
        p = vouch_sim(*args, "--url", self.vouchd.url, "--dir", self.sim_dir, "--quiet")
        self.assertEqual(p.returncode, 0, f"vouch-sim {' '.join(args)}: exit {p.returncode}\n"
                                          f"stdout: {p.stdout[-3000:]}\nstderr: "
                                          f"{p.stderr[-3000:]}\n" + self.vouchd_log_since_test())
        return json.loads(p.stdout.strip().splitlines()[-1])

    def fleet(self):
        p = vouch_sim("list", "--dir", self.sim_dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        return {f[1]: f[-1] == "attest" for f in
                (line.split("\t") for line in p.stdout.splitlines() if line.strip())}

    def figures(self):
        r = self.vouchd.admin("GET", "/v1/migration")
        self.assertEqual(r.status, 200, r)
        return r.json()["devices"]

    def test_1_migrated_then_attested(self):
        out = self.sim("enroll", "--migrate", self.vouchd.admin_token, "--devices",
                       str(self.DEVICES), "--key-type", "ec")
        self.assertEqual((out["enrolled"], out["failed_devices"]), (self.DEVICES, 0), out)
        self.assertEqual(out["statuses"], {"200": 2 * self.DEVICES}, out)
        fleet = self.fleet()
        self.assertEqual(len(fleet), self.DEVICES)
        for udid in fleet:
            d = self.vouchd.device(udid).json()
            self.assertEqual((d["identity"]["kind"], d["identity"]["bound"]), ("migrated", False),
                             d)
        self.assertEqual(self.figures()["waiting"], self.DEVICES)

        # The first check-in: each identity is bound provisionally, an attestation planned.
        self.sim("connect")
        for udid in fleet:
            d = self.vouchd.device(udid).json()
            self.assertIs(d["identity"]["bound"], True, d)
        # The scheduler queues the requests; the next session answers them.
        wait_for(lambda: all(self.vouchd.device(u).json()["attestation"]["request"] is not None
                             or self.vouchd.device(u).json()["attestation"]["status"] != "none"
                             for u in fleet), timeout=60, what="attestation requests queued")
        # --watch on a terminal: a progress bar of attested/migrated until the end.
        master, slave = pty.openpty()
        watch = subprocess.Popen([VOUCHCTL, "--url", self.vouchd.url, "--token",
                                  self.vouchd.admin_token, "migrate", "status", "--watch"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                 text=True, env=clean_env())
        os.close(slave)
        try:
            self.sim("connect")
            out, _ = watch.communicate(timeout=60)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.communicate()
            shown = b""
            while select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            os.close(master)
        can = sum(fleet.values())
        self.assertEqual(watch.returncode, 0, out)
        self.assertRegex(shown.decode(errors="replace"),
                         rf"attested  \[[#.]+\]  \d+/{self.DEVICES} devices")
        self.assertRegex(out, rf"(?m)^attested +{can}$")
        wait_for(lambda: self.figures()["attested"] == can, timeout=30,
                 what=f"{can} migrated devices attested")
        for udid, attests in fleet.items():
            d = self.vouchd.device(udid).json()
            shown = vouchctl(self.vouchd, "device", udid).stdout
            if attests:
                self.assertEqual(d["attestation"]["status"], "verified", d)
                self.assertEqual((d["identity"]["bound"], d["identity"]["provisional"]),
                                 (True, False), d)
                self.assertRegex(shown, r"(?m)^identity: +migrated, bound$")
            else:
                # A model that cannot attest cannot prove the identity: released.
                self.assertEqual((d["identity"]["bound"], d["identity"]["reason"]),
                                 (False, "identity_unproven"), d)
                self.assertRegex(shown, r"(?m)^identity: +migrated, unbound: identity_unproven$")
        p = vouchctl(self.vouchd, "migrate", "status", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["devices"]["attested"], can)
        # Every migrated device attested or refused: --watch has nothing to wait for.
        figures = self.figures()
        self.assertEqual(figures["attested"] + figures["refused"], figures["migrated"], figures)
        p = vouchctl(self.vouchd, "migrate", "status", "--watch", timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, rf"(?m)^attested +{can}$")
