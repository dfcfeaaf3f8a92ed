#!/usr/bin/env python3
"""vouch-sim's push tokens and `serve`, offline: enroll stores each device's token and PushMagic
(DIR/tokens.tsv, `vouch-sim tokens`), and `serve` follows a push log written here the way
apns-standin --notify-dir writes it ("<token hex> <push magic>" lines), running one session per
pushed device against a stub MDM server: coalescing, unknown tokens, wrong PushMagic, a log that
appears later, --from-start, re-enrollment while serving, HTTP errors and every way to stop.
Also `enroll --migrate`: each device's Authenticate then TokenUpdate PUT to /migration as
nano2nano sends them (Basic nanomdm:KEY, no Content-Type, no Mdm-Signature).

usage: test_serve.py VOUCH_SIM   (meson passes it)
Standard library only, so it runs wherever the build does.
"""

import base64
import http.server
import json
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SIM = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/tests/sim/vouch-sim"
FLEET = 6


def run(args, expect=0, timeout=120):
    p = subprocess.run(args, capture_output=True, timeout=timeout, text=True)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"{' '.join(args)}: exit {p.returncode} (expected {expect})\n"
                             f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
    return p


class StubMDM(http.server.ThreadingHTTPServer):
    """Accepts every check-in (keeping the last TokenUpdate of each device), hands each device its
    queued commands, counts Idle sessions; can hold a device's Idle or answer it 500."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.lock = threading.Lock()
        self.queues = {}
        self.reports = {}
        self.tokens = {}  # UDID -> (token hex, push magic)
        self.sessions = {}  # UDID -> Idle count
        self.hold = {}  # UDID -> (threading.Event set when its Idle arrives, seconds to hold)
        self.fail = set()  # UDIDs whose Idle gets a 500
        self.migrations = []  # (MessageType, UDID, the request's headers) of PUT /migration

    def enqueue(self, udid, cmd):
        with self.lock:
            self.queues.setdefault(udid, []).append(plistlib.dumps(cmd))

    def reset(self):
        with self.lock:
            self.queues.clear()
            self.reports.clear()
            self.sessions.clear()
            self.hold.clear()
            self.fail.clear()


class StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        msg = plistlib.loads(body)
        udid = msg["UDID"]
        reply = b""
        status = 200
        hold = None
        if self.path == "/migration":  # vouch-sim --migrate, as nano2nano sends
            with self.server.lock:
                self.server.migrations.append((msg.get("MessageType"), udid,
                                               dict(self.headers.items())))
                if msg.get("MessageType") == "TokenUpdate":
                    self.server.tokens[udid] = (msg["Token"].hex(), msg["PushMagic"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in ("/mdm/checkin", "/mdm/connect"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.server.lock:
            if self.path == "/mdm/checkin" and msg.get("MessageType") == "TokenUpdate":
                self.server.tokens[udid] = (msg["Token"].hex(), msg["PushMagic"])
            elif self.path == "/mdm/connect":
                if msg.get("Status") == "Idle":
                    self.server.sessions[udid] = self.server.sessions.get(udid, 0) + 1
                    hold = self.server.hold.pop(udid, None)
                    if udid in self.server.fail:
                        status = 500
                else:
                    self.server.reports[(udid, msg["CommandUUID"])] = msg
                queue = self.server.queues.get(udid, [])
                if queue and status == 200:
                    reply = queue.pop(0)
        if hold is not None:
            hold[0].set()
            time.sleep(hold[1])
        if status != 200:
            reply = b"stub says no"
        self.send_response(status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class Serve:
    """A `vouch-sim serve` in the background; waits for its ready line."""

    def __init__(self, args, ready=True):
        self.p = subprocess.Popen([SIM, "serve", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.err = []
        self.out = []
        self.ready = threading.Event()
        self.readers = [threading.Thread(target=self._read_err, daemon=True),
                        threading.Thread(target=lambda: self.out.append(self.p.stdout.read()),
                                         daemon=True)]
        for t in self.readers:
            t.start()
        if ready and not self.ready.wait(30):
            self.p.kill()
            raise AssertionError(f"serve never got ready: {''.join(self.err)}")

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append(line)
            if "serve: ready" in line:
                self.ready.set()

    def finish(self, expect=0, timeout=60):
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            for t in self.readers:
                t.join(5)
            raise AssertionError(f"serve did not stop; stderr: {''.join(self.err)}")
        for t in self.readers:
            t.join(5)
        self.p.stdout.close()
        self.p.stderr.close()
        out = "".join(self.out)
        stderr = "".join(self.err)
        if expect is not None and self.p.returncode != expect:
            raise AssertionError(f"serve: exit {self.p.returncode} (expected {expect})\n"
                                 f"stdout: {out}\nstderr: {stderr}")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if len(lines) != 1:
            raise AssertionError(f"serve printed no summary: {out!r}; stderr: {stderr}")
        return json.loads(lines[0]), stderr


def push(log, *lines):
    """Appends lines as apns-standin does: one write per line, O_APPEND."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for line in lines:
            os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def command(uuid, request_type="ProfileList"):
    return {"CommandUUID": uuid, "Command": {"RequestType": request_type}}


class ServeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vouch-sim-serve-")
        cls.dir = os.path.join(cls.tmp, "state")
        cls.stub = StubMDM()
        cls.url = f"http://127.0.0.1:{cls.stub.server_address[1]}"
        threading.Thread(target=cls.stub.serve_forever, daemon=True).start()
        run([SIM, "enroll", "--url", cls.url, "--dir", cls.dir, "--devices", str(FLEET),
             "--key-type", "ec", "--quiet"])
        cls.udids = [line.split("\t")[1] for line in
                     run([SIM, "list", "--dir", cls.dir]).stdout.splitlines()]
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.stub.shutdown()
        cls.stub.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.stub.reset()
        ServeTest.counter += 1
        self.log = os.path.join(self.tmp, f"notify{self.counter}", "pushes.log")
        os.makedirs(os.path.dirname(self.log))

    def tokens(self, state=None):
        out = run([SIM, "tokens", "--dir", state or self.dir]).stdout
        return {udid: (token, magic) for udid, token, magic in
                (line.split("\t") for line in out.splitlines())}

    def line(self, i, magic=None, tokens=None):
        token, good = (tokens or self.tokens())[self.udids[i]]
        return f"{token} {good if magic is None else magic}"

    def serve(self, *args, ready=True):
        return Serve(["--url", self.url, "--dir", self.dir, "--pushes", self.log, "--quiet",
                      *args], ready=ready)

    # ---- tokens ----

    def test_enroll_stores_the_tokens_the_server_got(self):
        tokens = self.tokens()
        self.assertEqual(len(tokens), FLEET)
        with self.stub.lock:
            self.assertEqual(tokens, self.stub.tokens)
        for token, magic in tokens.values():
            self.assertEqual(len(bytes.fromhex(token)), 32)
            self.assertEqual(len(magic), 36)
        with open(os.path.join(self.dir, "tokens.tsv")) as f:
            self.assertEqual(f.readline(), "# vouch-sim push tokens v1\n")
        self.assertEqual(len(run([SIM, "tokens", "--dir", self.dir, "--devices", "2"])
                             .stdout.splitlines()), 2)

    def test_migrate_sends_what_nano2nano_sends(self):
        state = os.path.join(self.tmp, "migrated")
        # Another prefix: other UDIDs than the class's fleet, whose tokens the stub keeps.
        run([SIM, "enroll", "--url", self.url, "--dir", state, "--devices", "3", "--key-type",
             "ec", "--prefix", "mig", "--quiet", "--migrate", "the:key"])
        udids = [line.split("\t")[1] for line in
                 run([SIM, "list", "--dir", state]).stdout.splitlines()]
        with self.stub.lock:
            seen = list(self.stub.migrations)
            self.stub.migrations.clear()
        self.assertEqual(sorted((t, u) for t, u, _ in seen),
                         sorted([("Authenticate", u) for u in udids]
                                + [("TokenUpdate", u) for u in udids]))
        for udid in udids:
            types = [t for t, u, _ in seen if u == udid]
            self.assertEqual(types, ["Authenticate", "TokenUpdate"], udid)
        basic = "Basic " + base64.b64encode(b"nanomdm:the:key").decode()
        for _, udid, headers in seen:
            names = {k.lower() for k in headers}
            self.assertEqual(headers.get("Authorization"), basic, headers)
            self.assertNotIn("content-type", names, headers)
            self.assertNotIn("mdm-signature", names, headers)
        # The devices keep the tokens the server took, as after an enroll.
        tokens = self.tokens(state)
        with self.stub.lock:
            self.assertEqual(tokens, {u: self.stub.tokens[u] for u in udids})
        for bad in (["--identity", "acme"], ["--migrate", ""]):
            run([SIM, "enroll", "--url", self.url, "--dir", state, "--devices", "3",
                 "--migrate", "k", *bad], expect=2)
        run([SIM, "enroll", "--dir", state, "--devices", "3", "--migrate", "k"], expect=2)

    def test_reenroll_changes_only_the_enrolled_devices_tokens(self):
        state = os.path.join(self.tmp, f"reenroll{self.counter}")
        shutil.copytree(self.dir, state)
        before = self.tokens(state)
        run([SIM, "enroll", "--url", self.url, "--dir", state, "--devices", "2", "--quiet"])
        after = self.tokens(state)
        self.assertEqual(set(after), set(before))
        for i, udid in enumerate(self.udids):
            (self.assertNotEqual if i < 2 else self.assertEqual)(after[udid], before[udid])

    def test_failed_token_update_keeps_no_token(self):
        state = os.path.join(self.tmp, f"failed{self.counter}")
        run([SIM, "enroll", "--url", self.url + "/nowhere", "--dir", state, "--devices", "2",
             "--key-type", "ec", "--quiet", "--expect-status", "404"])
        self.assertEqual(self.tokens(state), {})
        self.assertFalse(os.path.exists(os.path.join(state, "tokens.tsv")))

    def test_fleet_without_tokens_file(self):
        """State directories made before tokens.tsv existed still work; pushes are unknown."""
        state = os.path.join(self.tmp, f"old{self.counter}")
        shutil.copytree(self.dir, state)
        os.unlink(os.path.join(state, "tokens.tsv"))
        p = run([SIM, "tokens", "--dir", state])
        self.assertEqual(p.stdout, "")
        self.assertIn(f"{FLEET} of {FLEET} devices have no push token", p.stderr)
        s = Serve(["--url", self.url, "--dir", state, "--pushes", self.log, "--idle-exit", "1"])
        push(self.log, self.line(0))
        out, err = s.finish()
        self.assertEqual((out["pushes_seen"], out["pushes_unknown_token"], out["sessions"]),
                         (1, 1, 0))
        self.assertIn("has a push token yet", err)

    # ---- serve ----

    def test_pushed_devices_answer_their_commands(self):
        for i in (0, 1, 2):
            self.stub.enqueue(self.udids[i], command(f"A-{i}"))
            self.stub.enqueue(self.udids[i], command(f"B-{i}", "DeviceInformation"))
        self.stub.enqueue(self.udids[3], command("NOT-PUSHED"))
        s = self.serve("--expect-pushes", "3", "--concurrency", "2")
        push(self.log, self.line(0), "ab" * 32 + " some-magic", self.line(1), "garbage",
             self.line(2).upper())
        out, _ = s.finish()
        self.assertEqual(out["mode"], "serve")
        self.assertEqual(out["stopped_by"], "expect-pushes")
        self.assertEqual((out["pushes_seen"], out["pushes_unknown_token"],
                          out["pushes_malformed"], out["pushes_handled"], out["sessions"]),
                         (5, 1, 1, 3, 3))
        self.assertEqual(out["commands"], {"DeviceInformation": 3, "ProfileList": 3})
        self.assertEqual((out["http_errors"], out["protocol_errors"], out["failed_devices"]),
                         (0, 0, 0))
        with self.stub.lock:
            for i in (0, 1, 2):
                self.assertEqual(self.stub.reports[(self.udids[i], f"A-{i}")]["Status"],
                                 "Acknowledged")
            self.assertEqual(self.stub.sessions, {self.udids[i]: 1 for i in (0, 1, 2)})
            self.assertEqual(len(self.stub.queues[self.udids[3]]), 1)

    def test_upper_case_magic_is_another_magic(self):
        token, magic = self.tokens()[self.udids[0]]
        s = self.serve("--expect-pushes", "1")
        push(self.log, f"{token.upper()} {magic.lower()}")
        out, err = s.finish(expect=1)
        self.assertEqual((out["pushes_bad_magic"], out["protocol_errors"], out["sessions"],
                          out["failed_devices"]), (1, 1, 0, 1))
        self.assertIn("PushMagic", err)

    def test_wrong_push_magic_is_a_protocol_error(self):
        self.stub.enqueue(self.udids[1], command("X"))
        s = self.serve("--expect-pushes", "2")
        push(self.log, self.line(0, magic="not-the-magic"), self.line(1))
        out, err = s.finish(expect=1)
        self.assertEqual((out["pushes_bad_magic"], out["protocol_errors"], out["sessions"],
                          out["failed_devices"]), (1, 1, 1, 1))
        self.assertIn(self.udids[0], err)
        with self.stub.lock:
            self.assertNotIn(self.udids[0], self.stub.sessions)

    def test_push_during_a_session_makes_one_more(self):
        started = threading.Event()
        with self.stub.lock:
            self.stub.hold[self.udids[0]] = (started, 1.0)
        self.stub.enqueue(self.udids[0], command("FIRST"))
        s = self.serve("--expect-pushes", "4")
        push(self.log, self.line(0))
        self.assertTrue(started.wait(20), "the first session never started")
        self.stub.enqueue(self.udids[0], command("SECOND"))
        push(self.log, self.line(0), self.line(0), self.line(0))
        out, _ = s.finish()
        self.assertEqual((out["pushes_handled"], out["pushes_coalesced"], out["sessions"]),
                         (4, 2, 2))
        with self.stub.lock:
            self.assertEqual(self.stub.sessions[self.udids[0]], 2)
            self.assertIn((self.udids[0], "FIRST"), self.stub.reports)
            self.assertIn((self.udids[0], "SECOND"), self.stub.reports)

    def test_many_pushes_many_workers(self):
        tokens = self.tokens()
        lines = [self.line(i % FLEET, tokens=tokens) for i in range(60)]
        s = self.serve("--expect-pushes", "60", "--concurrency", "4")
        push(self.log, *lines)
        out, _ = s.finish()
        self.assertEqual(out["pushes_handled"], 60)
        self.assertEqual(out["sessions"] + out["pushes_coalesced"], 60)
        self.assertGreaterEqual(out["sessions"], FLEET)
        self.assertEqual(out["failed_devices"], 0)
        with self.stub.lock:
            self.assertEqual(sum(self.stub.sessions.values()), out["sessions"])

    def test_only_new_lines_unless_from_start(self):
        push(self.log, self.line(0), self.line(1))
        s = self.serve("--idle-exit", "1")
        push(self.log, self.line(2))
        out, _ = s.finish()
        self.assertEqual((out["pushes_seen"], out["sessions"], out["stopped_by"]),
                         (1, 1, "idle-exit"))
        s = self.serve("--from-start", "--expect-pushes", "3")
        out, _ = s.finish()
        self.assertEqual((out["pushes_seen"], out["sessions"]), (3, 3))

    def test_log_that_appears_later_and_partial_lines(self):
        os.rmdir(os.path.dirname(self.log))
        s = self.serve("--expect-pushes", "2")
        self.assertIn("once it exists", "".join(s.err))
        time.sleep(0.3)
        os.makedirs(os.path.dirname(self.log))
        first, second = self.line(0), self.line(1)
        with open(self.log, "a") as f:
            f.write(first[:20])
            f.flush()
            time.sleep(0.3)
            f.write(first[20:] + "\n" + second + "\n")
        out, _ = s.finish()
        self.assertEqual((out["pushes_seen"], out["pushes_malformed"], out["sessions"]),
                         (2, 0, 2))

    def test_replaced_log_is_followed(self):
        push(self.log, self.line(0))
        s = self.serve("--expect-pushes", "2")
        push(self.log, self.line(1))
        time.sleep(0.5)
        os.rename(self.log, self.log + ".1")
        push(self.log, self.line(2))
        out, _ = s.finish()
        self.assertEqual((out["pushes_seen"], out["sessions"]), (2, 2))
        with self.stub.lock:
            self.assertEqual(set(self.stub.sessions), {self.udids[1], self.udids[2]})

    def test_reenrollment_while_serving(self):
        state = os.path.join(self.tmp, f"live{self.counter}")
        shutil.copytree(self.dir, state)
        old = self.tokens(state)
        s = Serve(["--url", self.url, "--dir", state, "--pushes", self.log,
                   "--expect-pushes", "2", "--idle-exit", "20"])
        run([SIM, "enroll", "--url", self.url, "--dir", state, "--devices", "1", "--quiet"])
        new = self.tokens(state)
        self.assertNotEqual(new[self.udids[0]], old[self.udids[0]])
        push(self.log, self.line(1, tokens=old), self.line(0, tokens=old),
             self.line(0, tokens=new))
        out, err = s.finish()
        # device 1's token did not change; device 0's old one is dead; its new one is found
        # after serve reloads tokens.tsv
        self.assertEqual((out["pushes_handled"], out["pushes_unknown_token"], out["sessions"]),
                         (2, 1, 2))
        self.assertIn("reloaded", err)

    def test_devices_limits_the_fleet(self):
        s = self.serve("--devices", "2", "--idle-exit", "1")
        push(self.log, self.line(1), self.line(2))
        out, _ = s.finish()
        self.assertEqual((out["devices"], out["pushes_unknown_token"], out["sessions"]),
                         (2, 1, 1))

    def test_http_error_fails(self):
        with self.stub.lock:
            self.stub.fail.add(self.udids[0])
        s = self.serve("--expect-pushes", "2")
        push(self.log, self.line(0), self.line(1))
        out, err = s.finish(expect=1)
        self.assertEqual((out["http_errors"], out["failed_devices"], out["sessions"]), (1, 1, 2))
        self.assertIn("HTTP 500", err)

    def test_expect_status_per_session(self):
        with self.stub.lock:
            self.stub.fail.add(self.udids[0])
        s = self.serve("--expect-pushes", "1", "--expect-status", "500")
        push(self.log, self.line(0))
        out, _ = s.finish()
        self.assertEqual((out["expected_hits"], out["failed_devices"]), (1, 0))

    def test_stops(self):
        t = time.monotonic()
        out, _ = self.serve("--idle-exit", "1").finish()
        self.assertEqual((out["stopped_by"], out["sessions"]), ("idle-exit", 0))
        self.assertLess(time.monotonic() - t, 10)

        out, err = self.serve("--idle-exit", "1", "--expect-pushes", "2").finish(expect=1)
        self.assertEqual(out["expected_pushes"], 2)
        self.assertIn("expected 2 pushes", err)

        out, _ = self.serve("--idle-exit", "0", "--max-seconds", "1").finish()
        self.assertEqual(out["stopped_by"], "max-seconds")

        s = self.serve("--idle-exit", "0")
        push(self.log, self.line(0))
        time.sleep(1)
        s.p.send_signal(signal.SIGTERM)
        out, _ = s.finish()
        self.assertEqual((out["stopped_by"], out["sessions"]), ("SIGTERM", 1))

    def test_max_seconds_drops_queued_sessions(self):
        started = threading.Event()
        with self.stub.lock:
            self.stub.hold[self.udids[0]] = (started, 2.5)
        s = self.serve("--concurrency", "1", "--max-seconds", "2", "--idle-exit", "0")
        push(self.log, self.line(0))
        self.assertTrue(started.wait(20))
        push(self.log, self.line(1), self.line(0))
        out, _ = s.finish()
        self.assertEqual((out["stopped_by"], out["sessions"], out["sessions_dropped"]),
                         ("max-seconds", 1, 2))

    def test_usage(self):
        for args in (["--url", self.url, "--dir", self.dir],
                     ["--url", self.url, "--dir", self.dir, "--pushes", self.log, "--rounds", "2"],
                     ["--url", self.url, "--dir", self.dir, "--pushes", self.log,
                      "--idle-exit", "x"],
                     ["--dir", self.dir, "--pushes", self.log]):
            run([SIM, "serve", *args], expect=2)
        run([SIM, "tokens"], expect=2)
        self.assertIn("--expect-pushes", run([SIM, "serve", "--help"]).stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
