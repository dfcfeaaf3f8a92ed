#!/usr/bin/python3
"""Pushes per second from vouchd to the stand-in APNs, beside h2load against the same stand-in.

Starts a private PostgreSQL, apns-standin and vouchd (with the push certificate from
tests/apns/make-certs.sh), inserts N enrolled devices with push tokens, then three rounds of:
  reference  h2load (nghttp2-client) sending N pushes over one HTTP/2 connection with up to 1000
             streams to the stand-in's listener without client authentication (h2load cannot
             present a certificate): the most that server takes on this machine;
  figure     vouchd pushing all N devices (GET /v1/push in batches of 1000, 8 at a time, from
             h2load over HTTP/1.1): the token lookup in PostgreSQL, the HTTP/2 pushes over its
             TLS connections (apns_connections, default 2) with the push certificate, and the
             recording of every answer (the run waits until every answer is in the database).
The two of a round run seconds apart, on the same machine's speed; the round whose ratio is the
median is the figure, and every round is printed. Then vouchd's APNs client alone
(bench/bench_apns.c: the same client, no database, no HTTP front) pushing N devices to the same
stand-in, beside the same h2load figure.
Beside the rate: CPU per push of vouchd, of PostgreSQL and of the stand-in over the rounds (from
/proc/PID/stat before and after), so that a change is judged by its cost, and the stand-in's CPU
during h2load's run, which shows when the stand-in, not the client, is the limit.
Prints one table row per figure and a JSON line. Usage: bench_push.py BUILD_DIR [--devices N]
"""
import argparse
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request

import benchlib
from benchlib import REPO, row

ROUNDS = 3   # reference and figure, back to back
CALLERS = 8  # GET /v1/push batches at a time


def start_standin(build, certs, tmp):
    proc = subprocess.Popen(
        [os.path.join(build, "tests", "apns", "apns-standin"), "--listen", "127.0.0.1:0",
         "--listen-noauth", "127.0.0.1:0", "--control", "127.0.0.1:0",
         "--cert", f"{certs}/server.pem", "--key", f"{certs}/server.key",
         "--client-ca", f"{certs}/push-ca.pem", "--max-records", "1000"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "standin.log"), "w"), text=True)
    line = proc.stdout.readline()
    m = re.search(r"listen=(\S+) control=(\S+) noauth=(\S+)", line)
    if not m:
        sys.exit(f"apns-standin did not start: {line!r}")
    return proc, m.group(1), m.group(2), m.group(3)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, token=None, timeout=600):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(port, token, name):
    """A counter of vouchd's /metrics (name with its labels, as printed)."""
    status, text = http(f"http://127.0.0.1:{port}/metrics", token)
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\d+)", text, re.M)
    if status != 200 or not m:
        sys.exit(f"vouchd's /metrics has no {name} (status {status})")
    return int(m.group(1))


def h2load_reference(standin, noauth, topic, body, n):
    """h2load sending n pushes over one HTTP/2 connection, up to 1000 streams, to the
    stand-in's listener without client authentication (h2load cannot present a certificate):
    the most that server takes on this machine. Its rate, and how busy the stand-in was."""
    standin_cpu0 = benchlib.cpu_seconds(standin.pid)
    start = time.monotonic()
    h2 = subprocess.run(
        ["h2load", "-n", str(n), "-c", "1", "-m", "1000", "-d", body,
         "-H", f"apns-topic: {topic}", "-H", "apns-push-type: mdm",
         "-H", "apns-expiration: 1999999999", "-H", "apns-priority: 10",
         f"https://{noauth}/3/device/" + "ab" * 32],
        capture_output=True, text=True, check=True)
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", h2.stdout)
    ok = re.search(r"status codes: (\d+) 2xx", h2.stdout)
    if not m or not ok or int(ok.group(1)) != n:
        sys.exit("h2load did not succeed:\n" + h2.stdout[-2000:])
    elapsed = time.monotonic() - start
    return {"h2load_rate": float(m.group(3)),
            "standin_busy": (benchlib.cpu_seconds(standin.pid) - standin_cpu0) / elapsed}


def push_round(cluster, vouchd, standin, port, token, shares, n):
    """vouchd pushing every device: the GET /v1/push batches in shares, one h2load (HTTP/1.1)
    each, all at once; then the wait until vouchd has written every answer to the database
    (the database work is part of a push). Wall times and the CPU of each process."""
    delivered0 = metric(port, token, 'vouch_pushes_total{outcome="delivered"}')
    recorded0 = metric(port, token, "vouch_push_answers_recorded_total")
    benchlib.reset_postgres_profile(cluster, "vouch")
    cpu0 = benchlib.cpu_seconds(vouchd.pid)
    pg0 = benchlib.postgres_cpu_seconds(cluster)
    standin_cpu0 = benchlib.cpu_seconds(standin.pid)
    machine0 = benchlib.machine_cpu_seconds()
    start = time.monotonic()
    callers = [(subprocess.Popen(["h2load", "--h1", "-c", "1", "-n", str(count), "-i", path,
                                  "-H", f"Authorization: Bearer {token}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
                count) for path, count in shares]
    for proc, count in callers:
        out = proc.communicate()[0]
        ok = re.search(r"status codes: (\d+) 2xx", out)
        if proc.returncode != 0 or not ok or int(ok.group(1)) != count:
            sys.exit("GET /v1/push did not answer 200 to every batch:\n" + out[-2000:])
    elapsed = time.monotonic() - start
    # vouchd counts what it wrote (a query here would cost PostgreSQL more than the writes it
    # waits for).
    for _ in range(3000):
        if metric(port, token, "vouch_push_answers_recorded_total") - recorded0 >= n:
            break
        time.sleep(0.02)
    else:
        sys.exit("vouchd did not record every answer within a minute")
    recorded = time.monotonic() - start
    got = {"rate": n / elapsed, "elapsed": elapsed, "recorded": recorded,
           "cpu": benchlib.cpu_seconds(vouchd.pid) - cpu0,
           "pg": benchlib.postgres_cpu_seconds(cluster) - pg0,
           "standin_cpu": benchlib.cpu_seconds(standin.pid) - standin_cpu0,
           "machine": benchlib.machine_cpu_seconds() - machine0}
    delivered = metric(port, token, 'vouch_pushes_total{outcome="delivered"}') - delivered0
    if delivered != n:
        sys.exit(f"only {delivered} of {n} pushes were delivered")
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=100000)
    args = ap.parse_args()
    n = args.devices
    tmp = tempfile.mkdtemp(prefix="vouch-bench-push-")
    certs = os.path.join(tmp, "certs")
    subprocess.run([os.path.join(REPO, "tests", "apns", "make-certs.sh"), certs], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    topic = open(f"{certs}/topic").read().strip()

    cluster = benchlib.tuned_cluster()
    cluster.createdb("vouch")
    standin, listen, control, noauth = start_standin(args.build, certs, tmp)
    port = free_port()
    token = secrets.token_hex(24)
    conf = os.path.join(tmp, "vouch.conf")
    with open(conf, "w") as f:
        f.write(f"listen = 127.0.0.1:{port}\ndatabase_url = {cluster.conninfo('vouch')}\n"
                f"identity_ca = {certs}/ca.pem\nadmin_token = {token}\nlog_level = warn\n"
                f"apns_cert = {certs}/push.pem\napns_key = {certs}/push.key\n"
                f"apns_url = https://{listen}\napns_ca = {certs}/ca.pem\n")
    # vouchd refuses VOUCH_* variables it does not know (VOUCH_BENCH_PROFILE is the bench's).
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOUCH_")}
    vouchd = subprocess.Popen([os.path.join(args.build, "server", "vouchd"), "--config", conf],
                              stderr=open(os.path.join(tmp, "vouchd.log"), "w"), env=env)
    try:
        for _ in range(200):
            try:
                if http(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        # N enrolled devices with 32-byte tokens, straight into the tables vouchd reads.
        cluster.psql(f"""
            INSERT INTO devices (udid) SELECT 'BENCH-' || lpad(i::text, 7, '0')
              FROM generate_series(1, {n}) i;
            INSERT INTO identity_certs (sha256, udid)
              SELECT sha256(('c' || i)::bytea), 'BENCH-' || lpad(i::text, 7, '0')
              FROM generate_series(1, {n}) i;
            INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                     identity_cert_sha256, authenticated_at, token_updated_at)
              SELECT 'BENCH-' || lpad(i::text, 7, '0'), '{topic}',
                     sha256(('t' || i)::bytea), 'magic-' || i, true,
                     sha256(('c' || i)::bytea), now(), now()
              FROM generate_series(1, {n}) i;
            ANALYZE;""", "vouch")
        udids = [f"BENCH-{i:07d}" for i in range(1, n + 1)]

        body = os.path.join(tmp, "body.json")
        with open(body, "w") as f:
            f.write('{"mdm":"magic"}')
        # The GET /v1/push load: 100 batches of 1,000 devices, 8 at a time, each of 8 h2load
        # processes (HTTP/1.1, one connection) with its own share of the batches (h2load's
        # clients all start at the top of one URI list).
        batches = [udids[i:i + 1000] for i in range(0, n, 1000)]
        shares = []
        for k in range(CALLERS):
            mine = batches[k::CALLERS]
            if not mine:
                continue
            path = os.path.join(tmp, f"batches-{k}.txt")
            with open(path, "w") as f:
                for b in mine:
                    f.write(f"http://127.0.0.1:{port}/v1/push/" + ",".join(b) + "\n")
            shares.append((path, len(mine)))

        # Rounds, each h2load's reference then vouchd's pushes of every device back to back:
        # the machine's speed moves by tens of per cent from one minute to the next, and a
        # pair measured seconds apart sees the same machine. The round whose ratio is the
        # median is the figure; every round is printed.
        rounds = []
        for r in range(ROUNDS):
            ref = h2load_reference(standin, noauth, topic, body, n)
            got = push_round(cluster, vouchd, standin, port, token, shares, n)
            got.update(ref)
            got["ratio"] = got["rate"] / got["h2load_rate"]
            rounds.append(got)
            print(f"round {r + 1}: vouchd {got['rate']:,.0f}/s, h2load {got['h2load_rate']:,.0f}/s "
                  f"(ratio {got['ratio']:.2f}); CPU a push: vouchd {got['cpu'] / n * 1e6:.1f}, "
                  f"PostgreSQL {got['pg'] / n * 1e6:.1f}, "
                  f"stand-in {got['standin_cpu'] / n * 1e6:.1f} us", flush=True)
        median = sorted(rounds, key=lambda g: g["ratio"])[len(rounds) // 2]
        h2load_rate = median["h2load_rate"]

        # vouchd's APNs client alone (bench_apns: no database, no HTTP front), same stand-in,
        # with the client certificate.
        # (A build from before issue 23 has no bench_apns: the rows are left out.)
        bench_apns = os.path.join(args.build, "bench", "bench_apns")
        alone_rows = []
        if os.path.exists(bench_apns):
            standin_cpu0 = benchlib.cpu_seconds(standin.pid)
            alone = subprocess.run(
                [bench_apns, f"https://{listen}", f"{certs}/push.pem", f"{certs}/push.key",
                 f"{certs}/ca.pem", str(n)], capture_output=True, text=True)
            m = re.search(r"pushes=(\d+) delivered=(\d+) seconds=([\d.]+) "
                          r"cpu_seconds=([\d.]+)", alone.stdout)
            if alone.returncode != 0 or not m or int(m.group(2)) != n:
                sys.exit(f"bench_apns did not succeed: {alone.stdout} {alone.stderr[-2000:]}")
            alone_standin = (benchlib.cpu_seconds(standin.pid) - standin_cpu0) / n * 1e6
            alone_rows = [
                ("pushes from the APNs client alone (bench_apns)", n / float(m.group(3)), "/s",
                 h2load_rate, ">=0.50"),
                ("APNs client CPU per push, alone", float(m.group(4)) / n * 1e6, "us"),
                ("stand-in CPU per push, client alone", alone_standin, "us"),
            ]

        # CPU per push over every round (the CPUs move less than the rates).
        pushes = n * len(rounds)
        cpu = sum(g["cpu"] for g in rounds) / pushes
        pg = sum(g["pg"] for g in rounds) / pushes
        standin_cpu = sum(g["standin_cpu"] for g in rounds) / pushes
        standin_busy_h2 = median["standin_busy"]
        # What the machine's cores allow if the three of them had the cores to themselves: the
        # figure to hold against h2load when other work shares the machine (the table's
        # "machine busy" beside "benchmark busy" says how much did).
        cores = os.cpu_count() or 1
        per_push = cpu + pg + standin_cpu
        rss = benchlib.peak_rss_mb(vouchd.pid)
        rows = [
            row("push", "pushes from vouchd", median["rate"], "/s", h2load_rate,
                ">=0.50", devices=n, rounds=len(rounds),
                round_ratios=[round(g["ratio"], 3) for g in rounds],
                reference_is="h2load -c 1 -m 1000, same stand-in, in the same round"),
            *[row("push", *r) for r in alone_rows],
            row("push", f"time to push {n:,} devices", median["elapsed"], "s"),
            row("push", f"time until all {n:,} answers are recorded", median["recorded"], "s"),
            row("push", "vouchd CPU per push", cpu * 1e6, "us"),
            row("push", "PostgreSQL CPU per push (lookup + record)", pg * 1e6, "us"),
            row("push", "stand-in CPU per push, vouchd's run", standin_cpu * 1e6, "us"),
            row("push", "vouchd + PostgreSQL + stand-in CPU per push", per_push * 1e6, "us"),
            # h2load's rate is the stand-in's one core (it is busy most of h2load's run): had
            # that core been the stand-in's alone, h2load would have sent this many.
            row("push", "h2load's rate the stand-in's CPU allows on one core",
                h2load_rate / standin_busy_h2, "/s"),
            # A derived figure, to read through a busy machine; the target is the measured
            # rate against h2load's in the same round (the first row).
            row("push", f"pushes/s their CPU allows on {cores} cores", cores / per_push, "/s",
                h2load_rate / standin_busy_h2,
                reference_is="h2load's rate the stand-in's CPU allows"),
            row("push", "benchmark busy (vouchd, PostgreSQL, stand-in), vouchd's run",
                (median["cpu"] + median["pg"] + median["standin_cpu"]) / median["recorded"]
                / cores * 100, "%"),
            row("push", "machine busy (every process), vouchd's run",
                median["machine"] / median["recorded"] / cores * 100, "%"),
            row("push", "stand-in busy during h2load's run", standin_busy_h2 * 100, "%"),
            row("push", "vouchd peak RSS, pushes", rss, "MiB"),
        ]
        benchlib.print_table(rows)
        benchlib.print_postgres_profile(cluster, "vouch")  # the last round's
        print("reference: h2load -c 1 -m 1000 against the same stand-in (no client certificate)")
    finally:
        vouchd.terminate()
        vouchd.wait(timeout=30)
        standin.terminate()
        standin.wait(timeout=30)
        cluster.cleanup()


if __name__ == "__main__":
    main()
