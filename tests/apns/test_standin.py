#!/usr/bin/env python3
"""End-to-end test of apns-standin with curl as the HTTP/2 client.

Usage: test_standin.py APNS_STANDIN MAKE_CERTS_SH

Makes certificates with make-certs.sh, starts the stand-in, and checks over real TLS with client
certificates: the 200 answer, every check APNs makes (each with its status and reason), the
handshake refusals (no client certificate, an untrusted one, no h2), each scripted answer (500
twice then 200, 410 with its timestamp, 400, 403, 429, 503, GOAWAY, delay), many streams on one
connection, the control API (/script, /pushes with since, limit and wait, /stats, /reset,
/goaway), the notification file, the no-client-auth front, --topic, and a clean SIGTERM.
Needs curl built with HTTP/2 (Debian's is). Fails, never skips, when something is missing.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

FAILURES = []
STARTED = []  # every apns-standin this test started, killed on the way out


def check(cond, what):
    if cond:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}")
        FAILURES.append(what)


class Standin:
    def __init__(self, binary, certs, workdir, extra=()):
        self.certs = certs
        self.log = os.path.join(workdir, "requests.log")
        self.stderr = open(os.path.join(workdir, "stderr.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--listen-noauth", "127.0.0.1:0",
             "--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key",
             "--client-ca", f"{certs}/push-ca.pem", "--control", "127.0.0.1:0",
             "--notify-dir", workdir, "--log", self.log, *extra],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        STARTED.append(self.proc)
        line = self.proc.stdout.readline()
        m = re.match(r"apns-standin ready listen=(\S+) control=(\S+) noauth=(\S+)", line)
        if not m:
            raise RuntimeError(f"no ready line from apns-standin: {line!r}")
        self.listen, self.control, self.noauth = m.groups()

    def ctl(self, method, path, body=None):
        req = urllib.request.Request(f"http://{self.control}{path}", method=method,
                                     data=body.encode() if body is not None else None)
        try:
            with urllib.request.urlopen(req, timeout=70) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def pushes(self, since=0):
        _, _, text = self.ctl("GET", f"/pushes?since={since}")
        return [json.loads(line) for line in text.splitlines()]

    def stats(self):
        return json.loads(self.ctl("GET", "/stats")[2])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.stderr.close()


def curl(url, headers, body, cert=True, certs=None, extra=()):
    """One request; returns (curl exit code, HTTP status, response headers, body)."""
    args = ["curl", "-sS", "--http2", "--cacert", f"{certs}/ca.pem", "-D", "-",
            "-w", "\n%{http_code}", "--max-time", "20"]
    if cert == "rogue":
        args += ["--cert", f"{certs}/rogue.pem", "--key", f"{certs}/rogue.key"]
    elif cert:
        args += ["--cert", f"{certs}/push.pem", "--key", f"{certs}/push.key"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if body is not None:
        args += ["--data-binary", body]
    elif "-X" not in extra:
        args += ["-X", "POST"]
    args += [*extra, url]
    p = subprocess.run(args, capture_output=True, text=True)
    out = p.stdout.replace("\r\n", "\n")
    head, _, rest = out.partition("\n\n")
    resp_body, _, code = rest.rpartition("\n")
    hdrs = {}
    for line in head.split("\n")[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    status = int(code) if code.strip().isdigit() else 0
    return p.returncode, status, hdrs, resp_body


def main():
    try:
        return run_tests()
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_tests():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, make_certs = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if shutil.which("curl") is None:
        print("FAIL curl is not installed (apt-get install curl)")
        return 1
    if "HTTP2" not in subprocess.run(["curl", "-V"], capture_output=True, text=True).stdout:
        print("FAIL curl has no HTTP/2 support")
        return 1

    work = tempfile.mkdtemp(prefix="apns-standin-test-")
    certs = os.path.join(work, "certs")
    subprocess.run(["bash", make_certs, certs], check=True, stdout=subprocess.DEVNULL)
    topic = open(f"{certs}/topic").read()
    s = Standin(binary, certs, work)
    base = f"https://127.0.0.1:{s.listen.rsplit(':', 1)[1]}"
    tok = "ab" * 32
    tok_up = "AB" * 40
    good = {"apns-topic": topic, "apns-push-type": "mdm", "apns-expiration": "1999999999",
            "apns-priority": "10"}

    def push(token=tok, headers=None, body='{"mdm":"magic-1"}', drop=(), **kw):
        h = dict(good, **(headers or {}))
        for d in drop:
            h.pop(d)
        return curl(f"{base}/3/device/{token}", h, body, certs=certs, **kw)

    # --- the 200 answer
    rc, st, h, b = push()
    check(rc == 0 and st == 200 and b == "", "valid push: 200, empty body")
    check(re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", h.get("apns-id", "")),
          "valid push: apns-id is a UUID")
    rc, st, h, b = push(headers={"apns-id": "123e4567-e89b-12d3-a456-426614174000"})
    check(st == 200 and h.get("apns-id") == "123e4567-e89b-12d3-a456-426614174000",
          "apns-id from the request is echoed")
    rc, st, h, b = push(token=tok_up, body=' { "mdm" : "magic-\\u00e9" } ')
    check(st == 200, "uppercase 160-digit token and JSON whitespace/escapes accepted")

    # --- every check
    cases = [
        ("bad path", dict(url=f"{base}/3/devices/{tok}"), 404, "BadPath"),
        ("GET", dict(extra=("-X", "GET")), 405, "MethodNotAllowed"),
        ("missing token", dict(token=""), 400, "MissingDeviceToken"),
        ("short token", dict(token="ab" * 31), 400, "BadDeviceToken"),
        ("non-hex token", dict(token="zz" * 32), 400, "BadDeviceToken"),
        ("odd-length token", dict(token="a" * 65), 400, "BadDeviceToken"),
        ("201-digit token", dict(token="a" * 202), 400, "BadDeviceToken"),
        ("no apns-topic", dict(drop=("apns-topic",)), 400, "MissingTopic"),
        ("wrong apns-topic", dict(headers={"apns-topic": "com.example.other"}), 400,
         "TopicDisallowed"),
        ("no apns-push-type", dict(drop=("apns-push-type",)), 400, "InvalidPushType"),
        ("apns-push-type alert", dict(headers={"apns-push-type": "alert"}), 400,
         "InvalidPushType"),
        ("no apns-expiration", dict(drop=("apns-expiration",)), 400, "BadExpirationDate"),
        ("apns-expiration 0", dict(headers={"apns-expiration": "0"}), 400, "BadExpirationDate"),
        ("apns-expiration past", dict(headers={"apns-expiration": "1000000000"}), 400,
         "BadExpirationDate"),
        ("apns-expiration in ms", dict(headers={"apns-expiration": "1999999999000"}), 400,
         "BadExpirationDate"),
        ("apns-expiration text", dict(headers={"apns-expiration": "soon"}), 400,
         "BadExpirationDate"),
        ("no apns-priority", dict(drop=("apns-priority",)), 400, "BadPriority"),
        ("apns-priority 1", dict(headers={"apns-priority": "1"}), 400, "BadPriority"),
        ("bad apns-id", dict(headers={"apns-id": "not-a-uuid"}), 400, "BadMessageId"),
        ("empty body", dict(body=None), 400, "PayloadEmpty"),
        ("extra key", dict(body='{"mdm":"x","aps":{}}'), 400, "BadPayload"),
        ("not JSON", dict(body="mdm=x"), 400, "BadPayload"),
        ("mdm not a string", dict(body='{"mdm":1}'), 400, "BadPayload"),
        ("empty magic", dict(body='{"mdm":""}'), 400, "BadPayload"),
        ("trailing garbage", dict(body='{"mdm":"x"}x'), 400, "BadPayload"),
        ("4097-byte body", dict(body='{"mdm":"' + "a" * 4087 + '"}'), 413, "PayloadTooLarge"),
    ]
    for name, kw, want_status, want_reason in cases:
        url = kw.pop("url", None)
        if url:
            rc, st, h, b = curl(url, good, '{"mdm":"x"}', certs=certs)
        else:
            rc, st, h, b = push(**kw)
        try:
            reason = json.loads(b).get("reason")
        except ValueError:
            reason = None
        check(st == want_status and reason == want_reason and "apns-id" in h,
              f"{name}: {want_status} {want_reason} (got {st} {b!r})")
    rc, st, h, b = push(body='{"mdm":"' + "a" * 4086 + '"}')
    check(st == 200, "4096-byte body accepted")

    # --- the handshake
    before = s.stats()["tls_failures"]
    rc, st, _, _ = push(cert=False)
    check(rc != 0 and st == 0, f"no client certificate: handshake fails (curl exit {rc})")
    rc, st, _, _ = push(cert="rogue")
    check(rc != 0 and st == 0, f"untrusted client certificate: handshake fails (curl exit {rc})")
    rc, st, _, _ = push(extra=("--http1.1",))
    check(rc != 0 and st == 0, f"no h2 in ALPN: handshake fails (curl exit {rc})")
    rc, st, _, _ = push(extra=("--tls-max", "1.1"))
    check(rc != 0 and st == 0, f"TLS 1.1: handshake fails (curl exit {rc})")
    check(s.stats()["tls_failures"] - before == 4, "four TLS failures counted")

    # --- scripted answers
    t = {k: k * 64 for k in "0123456789"}
    script = "\n".join([
        "# comments and blank lines are ignored", "",
        f"{t['1']} 500 2",
        f"{t['2']} 410",
        f"{t['3']} 410 Unregistered ts=1700000000000 1",
        f"{t['4']} 400 DeviceTokenNotForTopic 1",
        f"{t['5']} 403",
        f"{t['6']} 429 1",
        f"{t['7']} 503 1",
        f"{t['8']} goaway 1",
        f"{t['9']} delay 300 1",
    ]) + "\n"
    code, _, text = s.ctl("POST", "/script", script)
    check(code == 200 and text == "9 rules\n", f"POST /script: {text.strip()}")
    code, _, text = s.ctl("POST", "/script", f"{t['1']} 500 2\nnot-hex 500\n")
    check(code == 400 and text.startswith("line 2:"), "bad script line refused with its number")
    check(len(s.ctl("GET", "/script")[2].splitlines()) == 9, "bad script added nothing")

    got = [push(t["1"])[1] for _ in range(3)]
    check(got == [500, 500, 200], f"500 twice, then 200 (got {got})")
    for _ in range(2):
        rc, st, h, b = push(t["2"])
        j = json.loads(b)
        check(st == 410 and j.get("reason") == "Unregistered" and
              abs(j.get("timestamp", 0) - time.time() * 1000) < 60000,
              "410 Unregistered with a timestamp of now, every time")
    rc, st, h, b = push(t["3"])
    check(st == 410 and json.loads(b) == {"reason": "Unregistered", "timestamp": 1700000000000},
          "410 with a scripted timestamp")
    check(push(t["3"])[1] == 200, "then 200")
    rc, st, h, b = push(t["4"])
    check(st == 400 and json.loads(b)["reason"] == "DeviceTokenNotForTopic",
          "400 DeviceTokenNotForTopic")
    rc, st, h, b = push(t["5"])
    check(st == 403 and json.loads(b)["reason"] == "BadCertificate", "403 BadCertificate")
    rc, st, h, b = push(t["6"])
    check(st == 429 and json.loads(b)["reason"] == "TooManyRequests", "429 TooManyRequests")
    rc, st, h, b = push(t["7"])
    check(st == 503 and json.loads(b)["reason"] == "ServiceUnavailable", "503 ServiceUnavailable")
    goaways = s.stats()["goaways"]
    rc, st, h, b = push(t["8"])
    check(st == 0 and rc != 0, f"goaway: no answer (curl exit {rc})")
    check(s.stats()["goaways"] == goaways + 1, "goaway counted")
    check(push(t["8"])[1] == 200, "after the goaway: 200 on a new connection")
    t0 = time.monotonic()
    rc, st, h, b = push(t["9"])
    check(st == 200 and time.monotonic() - t0 >= 0.3, "delay 300: 200 after >= 300 ms")
    check(s.ctl("GET", "/script")[2] == f"{t['2']} 410 Unregistered\n{t['5']} 403 BadCertificate\n"
          or set(s.ctl("GET", "/script")[2].splitlines()) ==
          {f"{t['2']} 410 Unregistered", f"{t['5']} 403 BadCertificate"},
          "GET /script: the spent rules are gone")
    recs = [r for r in s.pushes() if r["token"] == t["8"]]
    check(len(recs) == 2 and recs[0]["status"] == 0 and recs[0]["reason"] == "GOAWAY" and
          recs[0]["apns_id"] is None, "goaway recorded with status 0")
    code, _, _ = s.ctl("POST", "/script?replace=1", "* 500 1\n")
    rc, st, _, _ = push(t["2"])
    check(st == 500, "replace=1 dropped the old rules; * applies to every token")
    check(push(t["2"])[1] == 200, "* 500 1 spent")

    # --- many streams on one connection
    s.ctl("POST", "/script?replace=1", "* delay 500\n")
    conns = s.stats()["connections_accepted"]
    n = 100
    urls = [f"{base}/3/device/{i:064x}" for i in range(n)]
    args = ["curl", "-sS", "--http2", "-Z", "--parallel-max", str(n),
            "--cacert", f"{certs}/ca.pem", "--cert", f"{certs}/push.pem",
            "--key", f"{certs}/push.key", "-o", "/dev/null", "-w", "%{http_code}\n"]
    for k, v in good.items():
        args += ["-H", f"{k}: {v}"]
    args += ["-d", '{"mdm":"par"}']
    t0 = time.monotonic()
    out = subprocess.run(args + urls, capture_output=True, text=True).stdout.split()
    took = time.monotonic() - t0
    used = s.stats()["connections_accepted"] - conns
    check(out.count("200") == n and took < 5 and used <= 2,
          f"{n} pushes delayed 500 ms, multiplexed: {took:.2f}s on {used} connection(s)")
    s.ctl("POST", "/script?replace=1", "")

    # --- /pushes, /stats, notify file
    last = s.stats()["last_seq"]
    code, h, text = s.ctl("GET", f"/pushes?since={last - 3}&limit=2")
    lines = text.splitlines()
    check(code == 200 and len(lines) == 2 and json.loads(lines[0])["seq"] == last - 2 and
          h.get("X-Next-Since") == str(last - 1), "GET /pushes?since&limit and X-Next-Since")
    rec = json.loads(lines[0])
    check(set(rec) >= {"token", "topic", "push_magic", "expiration", "priority", "apns_id",
                       "status", "time_ms", "seq"}, "record fields")
    result = {}

    def poll():
        result["r"] = s.ctl("GET", f"/pushes?since={last}&wait=5000")

    th = threading.Thread(target=poll)
    t0 = time.monotonic()
    th.start()
    time.sleep(0.3)
    push(body='{"mdm":"long-poll"}')
    th.join()
    recs = [json.loads(x) for x in result["r"][2].splitlines()]
    check(len(recs) == 1 and recs[0]["push_magic"] == "long-poll" and
          time.monotonic() - t0 < 3, "GET /pushes?wait returns when a push arrives")
    t0 = time.monotonic()
    code, h, text = s.ctl("GET", f"/pushes?since={last + 1}&wait=400")
    check(text == "" and 0.35 < time.monotonic() - t0 < 3, "GET /pushes?wait times out empty")
    notes = open(os.path.join(work, "pushes.log")).read().splitlines()
    check(f"{tok} magic-1" in notes and f"{tok} long-poll" in notes and
          all(len(x.split(" ")) == 2 for x in notes), "pushes.log: '<token> <magic>' per 200")
    check(not any(x.startswith(t["4"]) for x in notes), "pushes.log: refused pushes not there")
    st_ = s.stats()
    check(st_["status"].get("200", 0) >= n and st_["status"].get("410") == 3 and
          st_["requests"] >= st_["answered"], f"GET /stats: {json.dumps(st_['status'])}")

    # --- the front without client authentication (for h2load)
    noauth = f"https://127.0.0.1:{s.noauth.rsplit(':', 1)[1]}"
    rc, st, _, _ = curl(f"{noauth}/3/device/{tok}", good, '{"mdm":"x"}', cert=False, certs=certs)
    check(st == 200, "noauth front: push without a client certificate")

    # --- /goaway, /reset
    code, _, text = s.ctl("POST", "/goaway")
    check(code == 200 and text.endswith("connections\n"), f"POST /goaway: {text.strip()}")
    code, _, _ = s.ctl("POST", "/reset")
    st_ = s.stats()
    check(code == 200 and st_["requests"] == 0 and st_["records"] == 0 and
          st_["last_seq"] > 0 and s.pushes() == [], "POST /reset: records and counters gone")
    check(s.ctl("GET", "/nothing")[0] == 404 and s.ctl("POST", "/stats")[0] == 405,
          "control API: 404 and 405")

    code = s.stop()
    check(code == 0, f"SIGTERM: exit 0 (got {code})")
    lines = open(s.log).read().splitlines()
    check(len(lines) > 50 and "status=200" in lines[0], "request log: one line per request")

    # --- --topic
    s2 = Standin(binary, certs, work, extra=("--topic", "com.example.forced"))
    base = f"https://127.0.0.1:{s2.listen.rsplit(':', 1)[1]}"
    rc, st, h, b = push()
    check(st == 400 and json.loads(b)["reason"] == "TopicDisallowed",
          "--topic: the certificate's topic is no longer allowed")
    rc, st, h, b = push(headers={"apns-topic": "com.example.forced"})
    check(st == 200, "--topic: the forced topic is")
    check(s2.stop() == 0, "second instance: SIGTERM, exit 0")

    if FAILURES:
        print(f"\n{len(FAILURES)} failed; files kept in {work}")
        return 1
    shutil.rmtree(work)
    print("\nall passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
