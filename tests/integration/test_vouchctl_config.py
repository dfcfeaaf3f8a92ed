"""vouchctl that remembers and shows progress (issue 20, point 4), against a real vouchd and
PostgreSQL.

What must hold:
  * a configuration file with named servers ([server NAME]: url, token_file), found through
    XDG_CONFIG_HOME or --config, chosen with --server or its `default =`; the command line wins
    over the environment, which wins over the file's default; the environment variables keep
    working; a token file that group or others may read is refused with a clear message;
    `vouchctl config show` names the sources and never prints the token;
  * `vouchctl device --serial S` and GET /v1/devices?serial=S find a device by serial number;
    an unknown query parameter of the device list is a 400, no longer the first page;
  * a UDID typed in another case names the device on every /v1/devices/{udid} path;
  * an unknown UDID gets one answer from every command: the same message, exit status 1;
  * `attest --all` refuses without a terminal and without --yes; --dry-run sends nothing;
  * a progress line appears on a terminal (a pty) and never when standard error is piped;
  * the bash completion script completes commands, options and actions;
  * `vouchctl profile` says the server's reason, not only "HTTP 503".
"""

import json
import os
import plistlib
import pty
import secrets
import select
import shlex
import subprocess
import tempfile

import test_push  # PushTestCase; a module import, so that its own tests do not run here
from harness import VOUCHCTL, VouchTestCase, clean_env, suite, vouchctl


def run_on_pty(vouchd, *args, answer=None):
    """vouchctl with standard error (and, with answer, standard input) on a pseudo-terminal:
    (exit, stdout, what the terminal showed). answer is written once the terminal shows '?'."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([VOUCHCTL, "--url", vouchd.url, "--token", vouchd.admin_token]
                            + list(args),
                            stdin=slave if answer is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=clean_env())
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if answer is not None and b"?" in seen:
            os.write(master, answer)
            answer = None
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    return proc.returncode, out.decode(), seen.decode(errors="replace")


class VouchctlConfigTest(VouchTestCase):

    # -- helpers ---------------------------------------------------------------------------
    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="vouchctl-conf-", dir=suite().run_dir)
        return d

    def write(self, path, text, mode=0o600):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def bare(self, *args, env=None, stdin=subprocess.DEVNULL):
        """vouchctl without the harness's --url and --token."""
        return subprocess.run([VOUCHCTL] + list(args), stdin=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60,
                              env=clean_env(env))

    def ctl(self, *args, rc=0):
        p = vouchctl(self.vouchd, *args)
        self.assertEqual(p.returncode, rc, f"vouchctl {' '.join(args)}: exit {p.returncode}\n"
                         f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def config_with_lab(self, url=None, default=None):
        d = self.tmpdir()
        self.write(os.path.join(d, "lab.token"), self.vouchd.admin_token + "\n")
        text = (f"# vouchctl's servers\n" + (f"default = {default}\n" if default else "") +
                "\n[server broken]\nurl = http://127.0.0.1:9\n"
                f"\n[server lab]\nurl = {url or self.vouchd.url}\ntoken_file = lab.token\n")
        return d, self.write(os.path.join(d, "vouchctl.conf"), text, 0o644)

    def queued(self, udid):
        return [c for c in self.vouchd.commands(udid) if c.get("status") == "queued"]

    # -- the configuration file -------------------------------------------------------------
    def test_named_server_with_token_file(self):
        dev = self.enrolled_device()
        _, conf = self.config_with_lab()
        p = self.bare("--config", conf, "--server", "lab", "device", dev.udid, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["udid"], dev.udid)
        # The other section is another server: nothing listens there.
        p = self.bare("--config", conf, "--server", "broken", "devices")
        self.assertEqual(p.returncode, 1, p.stderr)
        p = self.bare("--config", conf, "--server", "nosuch", "devices")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("no [server nosuch] section", p.stderr)

    def test_xdg_default_server(self):
        xdg = self.tmpdir()
        os.makedirs(os.path.join(xdg, "vouch"))
        d, conf = self.config_with_lab(default="lab")
        os.rename(conf, os.path.join(xdg, "vouch", "vouchctl.conf"))
        os.rename(os.path.join(d, "lab.token"), os.path.join(xdg, "vouch", "lab.token"))
        p = self.bare("devices", env={"XDG_CONFIG_HOME": xdg})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.bare("config", "show", env={"XDG_CONFIG_HOME": xdg})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(os.path.join(xdg, "vouch", "vouchctl.conf"), p.stdout)
        self.assertIn("lab (default = in the file)", p.stdout)
        self.assertIn("token_file " + os.path.join(xdg, "vouch", "lab.token"), p.stdout)
        self.assertNotIn(self.vouchd.admin_token, p.stdout + p.stderr)
        p = self.bare("config", "servers", env={"XDG_CONFIG_HOME": xdg})
        self.assertEqual(p.stdout.split(), ["broken", "lab"])

    def test_precedence(self):
        # The default server points nowhere: the environment wins over it ...
        _, conf = self.config_with_lab(url="http://127.0.0.1:9", default="lab")
        env = {"VOUCH_URL": self.vouchd.url, "VOUCH_ADMIN_TOKEN": self.vouchd.admin_token}
        p = self.bare("--config", conf, "devices", env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.bare("--config", conf, "config", env=env)
        self.assertIn(f"url:         {self.vouchd.url} (VOUCH_URL)", p.stdout)
        self.assertIn("token:       VOUCH_ADMIN_TOKEN", p.stdout)
        # ... and the command line wins over both.
        p = self.bare("--config", conf, "--url", self.vouchd.url, "config",
                      env={"VOUCH_URL": "http://127.0.0.1:9"})
        self.assertIn(f"url:         {self.vouchd.url} (--url)", p.stdout)
        p = self.bare("--config", conf, "--url", self.vouchd.url, "devices",
                      env={"VOUCH_URL": "http://127.0.0.1:9"})
        self.assertEqual(p.returncode, 0, p.stderr)
        # The environment alone still works, as before.
        p = self.bare("devices", env={**env, "XDG_CONFIG_HOME": self.tmpdir()})
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_token_file_open_to_others_is_refused(self):
        d, conf = self.config_with_lab()
        token = os.path.join(d, "lab.token")
        for mode in (0o644, 0o640):
            os.chmod(token, mode)
            p = self.bare("--config", conf, "--server", "lab", "devices")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(f"the token file {token} is open to", p.stderr)
            self.assertIn(f"chmod 600 {token}", p.stderr)
            self.assertEqual(p.stdout, "")
        p = self.bare("--url", self.vouchd.url, "--token-file", token, "devices")
        self.assertEqual(p.returncode, 1, p.stderr)
        os.chmod(token, 0o600)
        p = self.bare("--url", self.vouchd.url, "--token-file", token, "devices")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_malformed_file_names_its_line(self):
        d = self.tmpdir()
        conf = self.write(os.path.join(d, "c.conf"), "[server a]\nurl = http://x\n[srv b]\n")
        p = self.bare("--config", conf, "devices")
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{conf}: line 3:", p.stderr)

    # -- look-up -----------------------------------------------------------------------------
    def test_device_by_serial(self):
        self.enrolled_device()
        dev = self.enrolled_device()
        r = self.vouchd.admin("GET", f"/v1/devices?serial={dev.serial}")
        self.assertStatus(r, 200)
        self.assertEqual([d["udid"] for d in r.json()], [dev.udid])
        r = self.vouchd.admin("GET", "/v1/devices?serial=NOSUCHSERIAL")
        self.assertEqual(r.json(), [])
        r = self.vouchd.admin("GET", f"/v1/devices?serail={dev.serial}")
        self.assertStatus(r, 400, "a misspelt parameter")
        self.assertIn("unknown query parameter", r.json()["error"])
        p = self.ctl("device", "--serial", dev.serial, "--json")
        self.assertEqual(json.loads(p.stdout)["udid"], dev.udid)
        p = self.ctl("device", "--serial", dev.serial)
        self.assertIn(dev.udid, p.stdout)
        p = self.ctl("device", "--serial", "NOSUCHSERIAL", rc=1)
        self.assertIn("no device with serial number 'NOSUCHSERIAL'", p.stderr)

    def test_udid_in_any_case(self):
        dev = self.enrolled_device()
        other = dev.udid.lower() if dev.udid != dev.udid.lower() else dev.udid.upper()
        for suffix in ("", "/commands", "/attestations"):
            r = self.vouchd.admin("GET", f"/v1/devices/{other}{suffix}")
            self.assertStatus(r, 200, f"GET /v1/devices/<other case>{suffix}")
        self.assertEqual(self.vouchd.admin("GET", f"/v1/devices/{other}").json()["udid"], dev.udid)
        p = self.ctl("device", other, "--json")
        self.assertEqual(json.loads(p.stdout)["udid"], dev.udid)
        self.ctl("commands", other)
        p = self.ctl("attest", other, "--json")
        self.assertEqual(json.loads(p.stdout)["udid"], dev.udid)

    def test_udid_case_forms(self):
        """An older device's lower-case UDID typed in upper case names it; two devices whose
        UDIDs differ only in case: each is found as written, and a mixed-case form names
        neither (issue 22: the look-up probes the primary key, no index on lower(udid))."""
        old_style = self.enrolled_device(udid=secrets.token_hex(20))
        r = self.vouchd.admin("GET", f"/v1/devices/{old_style.udid.upper()}")
        self.assertStatus(r, 200, "GET /v1/devices/<upper-case form of a lower-case UDID>")
        self.assertEqual(r.json()["udid"], old_style.udid)
        # Letters at both ends, so the mixed form below differs from both devices' forms.
        base = "00008030-ab" + secrets.token_hex(6) + "cd"
        upper, lower = self.enrolled_device(udid=base.upper()), self.enrolled_device(udid=base)
        for dev in (upper, lower):
            self.assertEqual(self.vouchd.admin("GET", f"/v1/devices/{dev.udid}").json()["udid"],
                             dev.udid)
        mixed = base[:11].upper() + base[11:]
        self.assertNotIn(mixed, (upper.udid, lower.udid))
        self.assertStatus(self.vouchd.admin("GET", f"/v1/devices/{mixed}"), 404,
                          "GET /v1/devices/<a form two devices share ignoring case>")

    def test_unknown_udid_one_answer(self):
        udid = "00000000-DEAD-BEEF-0000-" + secrets.token_hex(6).upper()
        d = self.tmpdir()
        plist = os.path.join(d, "cmd.plist")
        with open(plist, "wb") as f:
            f.write(plistlib.dumps({"Command": {"RequestType": "DeviceInformation",
                                                "Queries": ["OSVersion"]}}))
        answers = {}
        for args in (["device", udid], ["commands", udid], ["attestations", udid],
                     ["attest", udid], ["enqueue", udid, "--file", plist],
                     ["device", udid, "allow-reenroll"], ["certs", udid]):
            p = vouchctl(self.vouchd, *args)
            answers[" ".join(args[:2] if args[0] != "device" or len(args) == 2 else
                             [args[0], args[2]])] = (p.returncode, p.stderr, p.stdout)
        expected = (1, f"vouchctl: unknown device '{udid}'\n", "")
        for what, answer in answers.items():
            self.assertEqual(answer, expected, f"vouchctl {what}")

    # -- many devices ------------------------------------------------------------------------
    def test_all_refused_without_terminal_or_yes(self):
        dev = self.enrolled_device()
        dev.settle_attestation()
        before = self.queued(dev.udid)
        p = vouchctl(self.vouchd, "attest", "--all")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--yes", p.stderr)
        self.assertEqual(self.queued(dev.udid), before, "nothing asked")
        p = vouchctl(self.vouchd, "attest", "--all", "--yes")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(self.queued(dev.udid)), len(before) + 1)

    def test_dry_run_sends_nothing(self):
        dev = self.enrolled_device()
        dev.settle_attestation()
        d = self.tmpdir()
        plist = os.path.join(d, "cmd.plist")
        with open(plist, "wb") as f:
            f.write(plistlib.dumps({"Command": {"RequestType": "DeviceInformation",
                                                "Queries": ["OSVersion"]}}))
        before = self.vouchd.commands(dev.udid)
        p = self.ctl("attest", "--all", "--dry-run")
        self.assertIn(dev.udid, p.stdout)
        self.assertIn("dry run: nothing sent", p.stdout)
        p = self.ctl("attest", dev.udid, "--dry-run")
        self.assertIn("1 device would be asked", p.stdout)
        p = self.ctl("enqueue", dev.udid, "--file", plist, "--dry-run")
        self.assertIn("dry run: nothing sent", p.stdout)
        p = self.ctl("push", dev.udid, "--dry-run")
        self.assertIn(f"would push {dev.udid}", p.stdout)
        p = self.ctl("device", dev.udid, "allow-reenroll", "--dry-run")
        self.assertIn("dry run: nothing sent", p.stdout)
        p = self.ctl("devices", "expect", "C02DRYRUN01X", "--dry-run")
        self.assertIn("would expect C02DRYRUN01X", p.stdout)
        self.assertNotIn("C02DRYRUN01X", self.ctl("devices", "expected", "--json").stdout)
        self.assertEqual(self.vouchd.commands(dev.udid), before, "the server's state")
        rows = self.psql("SELECT reenroll_allowed FROM enrollments WHERE udid = "
                         f"'{dev.udid}'")
        self.assertNotIn("t", rows.split(), "allow-reenroll was not sent")

    def run_on_pty(self, *args, answer=None):
        return run_on_pty(self.vouchd, *args, answer=answer)

    def test_all_asks_on_a_terminal(self):
        dev = self.enrolled_device()
        dev.settle_attestation()
        before = self.queued(dev.udid)
        rc, out, tty = self.run_on_pty("attest", "--all", answer=b"n\n")
        self.assertEqual(rc, 1, tty)
        self.assertIn("for a new attestation? [y/N]", tty)
        self.assertIn("nothing asked", tty)
        self.assertEqual(self.queued(dev.udid), before, "nothing asked")
        rc, out, tty = self.run_on_pty("attest", "--all", answer=b"y\n")
        self.assertEqual(rc, 0, tty)
        self.assertEqual(len(self.queued(dev.udid)), len(before) + 1)

    def test_enqueue_progress_on_a_terminal(self):
        devs = [self.enrolled_device() for _ in range(2)]
        plist = os.path.join(self.tmpdir(), "cmd.plist")
        with open(plist, "wb") as f:
            f.write(plistlib.dumps({"Command": {"RequestType": "DeviceInformation",
                                                "Queries": ["OSVersion"]}}))
        rc, out, tty = self.run_on_pty("enqueue", *[d.udid for d in devs], "--file", plist)
        self.assertEqual(rc, 0, tty)
        self.assertIn("enqueue  [", tty)
        self.assertIn("2/2 devices", tty)
        self.assertIn("command_uuid:", out)
        p = self.ctl("enqueue", *[d.udid for d in devs], "--file", plist)
        self.assertNotIn("enqueue  [", p.stderr)

    def test_progress_on_a_terminal_only(self):
        devs = [self.enrolled_device() for _ in range(3)]
        for dev in devs:
            dev.settle_attestation()
        rc, out, tty = self.run_on_pty("attest", *[d.udid for d in devs])
        self.assertEqual(rc, 0, tty)
        self.assertIn("attest  [", tty)
        self.assertIn("3/3 devices", tty)
        self.assertIn("\r\x1b[K", tty, "the line is cleared at the end")
        self.assertIn("3 devices: 3 queued", out)
        # Piped, or with --json: no progress line.
        p = self.ctl("attest", *[d.udid for d in devs])
        self.assertNotIn("[", p.stderr)
        self.assertNotIn("\r", p.stderr)
        rc, out, tty = self.run_on_pty("attest", "--json", *[d.udid for d in devs])
        self.assertEqual(rc, 0, tty)
        self.assertNotIn("attest  [", tty)
        self.assertEqual(len(json.loads(out)["results"]), 3)

    # -- completion and errors ---------------------------------------------------------------
    def complete(self, script, *words, env=None):
        """COMPREPLY for the command line words (the last one being completed)."""
        words = ["vouchctl"] + list(words)
        line = " ".join(words)
        quoted = " ".join(shlex.quote(w) for w in words)
        prog = (f"source {shlex.quote(script)}\n"
                f"COMP_WORDS=({quoted})\n"
                f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={shlex.quote(line)}\n"
                "_vouchctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
        p = subprocess.run(["bash", "--norc", "-c", prog], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30,
                           env=clean_env({"PATH": os.path.dirname(VOUCHCTL) + ":" +
                                          os.environ.get("PATH", ""), **(env or {})}))
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(w for w in p.stdout.split("\n") if w)

    def test_bash_completion(self):
        p = self.bare("completion", "bash")
        self.assertEqual(p.returncode, 0, p.stderr)
        script = self.write(os.path.join(self.tmpdir(), "vouchctl.bash"), p.stdout)
        self.assertEqual(self.complete(script, "att"), ["attest", "attestations"])
        self.assertIn("--dry-run", self.complete(script, "attest", "--"))
        self.assertIn("--yes", self.complete(script, "attest", "--"))
        self.assertNotIn("--yes", self.complete(script, "devices", "--"))
        self.assertIn("--url", self.complete(script, "devices", "--"))
        self.assertEqual(self.complete(script, "devices", "ex"), ["expect", "expected"])
        self.assertEqual(self.complete(script, "devices", "--attestation", "f"), ["failed"])
        self.assertEqual(self.complete(script, "help", "pr"), ["profile"])
        self.assertEqual(self.complete(script, "--json", "dev"), ["device", "devices"])
        self.assertEqual(self.complete(script, "--url", "x", "tok"), ["tokens"])
        # --server offers the configuration file's servers.
        xdg = self.tmpdir()
        os.makedirs(os.path.join(xdg, "vouch"))
        self.write(os.path.join(xdg, "vouch", "vouchctl.conf"),
                   "[server lab]\nurl = http://a\n[server prod]\nurl = https://b\n")
        self.assertEqual(self.complete(script, "--server", "", env={"XDG_CONFIG_HOME": xdg}),
                         ["lab", "prod"])
        self.assertEqual(self.complete(script, "--server", "p", env={"XDG_CONFIG_HOME": xdg}),
                         ["prod"])
        # verify's own --server is a flag: what follows is a UDID, not a server name.
        self.assertEqual(self.complete(script, "verify", "--server", "",
                                       env={"XDG_CONFIG_HOME": xdg}), [])
        self.assertEqual(self.complete(script, "verify", "--server", "x", "--ro"), ["--roots"])

    def test_profile_says_the_servers_reason(self):
        r = self.vouchd.admin("GET", "/mdm/enroll")
        self.assertStatus(r, 503, "GET /mdm/enroll without public_url")
        reason = r.text().splitlines()[0]
        p = self.ctl("profile", rc=1)
        self.assertIn(reason, p.stderr)
        self.assertIn("HTTP 503", p.stderr)


class VouchctlPushTest(test_push.PushTestCase):
    """push to many through a stand-in APNs: the progress line on a terminal, one merged answer,
    and the answer every command gives for an unknown UDID."""

    def test_push_progress_and_unknown_device(self):
        devs = [self.new_device() for _ in range(3)]
        for dev in devs:
            dev.enroll()
        udids = [d.udid for d in devs]
        rc, out, tty = run_on_pty(self.vouchd, "push", *udids)
        self.assertEqual(rc, 0, tty + out)
        self.assertIn("push  [", tty)
        self.assertIn("3/3 devices", tty)
        self.assertIn("3 of 3 device(s) pushed", out)
        p = vouchctl(self.vouchd, "--json", "push", *udids)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(json.loads(p.stdout)["status"]), sorted(udids))
        self.assertNotIn("push  [", p.stderr)
        unknown = "00000000-DEAD-BEEF-0000-" + secrets.token_hex(6).upper()
        p = vouchctl(self.vouchd, "push", unknown)
        self.assertEqual((p.returncode, p.stderr, p.stdout),
                         (1, f"vouchctl: unknown device '{unknown}'\n", ""))
        p = vouchctl(self.vouchd, "push", udids[0], unknown)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stderr, f"vouchctl: unknown device '{unknown}'\n")
        self.assertIn("1 of 2 device(s) pushed", p.stdout)
