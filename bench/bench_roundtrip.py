#!/usr/bin/python3
"""Command round trips per second: simulated devices against vouchd, beside pgbench -N.

Starts a private PostgreSQL and vouchd (no pushes: the devices connect by themselves), enrolls N
simulated devices (P-256 identities, every request signed with Mdm-Signature), lets them answer
the attestation request of their enrollment, queues C commands for each, then:
  figure     `vouch-sim connect` with K concurrent connections: every device Idles, takes each
             command, answers Acknowledged, until the empty body; one round trip is one signed
             report answered with the next command (each a durable transaction in PostgreSQL),
             with p50/p99 latency from the simulator;
  reference  `pgbench -N` (simple updates, 8 clients) on the same PostgreSQL in the same run: the
             ceiling of one durable write per transaction on this machine.
Prints a table row and a JSON line. Usage: bench_roundtrip.py BUILD_DIR [--devices N]
[--commands C] [--concurrency K] [--seconds S]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import pg  # noqa: E402

COMMAND = b"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Command</key><dict>
<key>RequestType</key><string>ProfileList</string></dict></dict></plist>
"""


def http(url, token, method="GET", body=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, r.read()


def sim(build, *args):
    r = subprocess.run([os.path.join(build, "tests", "sim", "vouch-sim"), *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"vouch-sim {args[0]} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--commands", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vouch-bench-rt-")
    cluster = pg.PostgresCluster()
    cluster.start()
    vouchd = None
    try:
        cluster.createdb("vouch")
        cluster.createdb("pgbench")
        simdir = os.path.join(tmp, "sim")
        sim(args.build, "init-ca", "--dir", simdir)
        port = pg.free_port()
        token = "bench-token"
        conf = os.path.join(tmp, "vouch.conf")
        with open(conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{port}\ndatabase_url = {cluster.conninfo('vouch')}\n"
                    f"identity_ca = {simdir}/ca.pem\nattestation_roots = {simdir}/apple-root.pem\n"
                    f"admin_token = {token}\nlog_level = warn\ndb_pool_size = 16\n"
                    "scheduler_batch = 0\n")
        vouchd = subprocess.Popen([os.path.join(args.build, "server", "vouchd"), "--config",
                                   conf], stderr=open(os.path.join(tmp, "vouchd.log"), "w"))
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if http(url + "/healthz", token)[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        n = args.devices
        sim(args.build, "enroll", "--url", url, "--dir", simdir, "--devices", str(n),
            "--key-type", "ec", "--concurrency", str(args.concurrency))
        sim(args.build, "connect", "--url", url, "--dir", simdir, "--devices", str(n),
            "--concurrency", str(args.concurrency))  # the enrollments' attestation requests
        udids = [line.split("\t")[1] for line in subprocess.run(
            [os.path.join(args.build, "tests", "sim", "vouch-sim"), "list", "--dir", simdir],
            capture_output=True, text=True, check=True).stdout.splitlines()]
        for _ in range(args.commands):
            for i in range(0, len(udids), 1000):
                http(f"{url}/v1/enqueue/" + ",".join(udids[i:i + 1000]), token, "PUT", COMMAND)
        out = sim(args.build, "connect", "--url", url, "--dir", simdir, "--devices", str(n),
                  "--concurrency", str(args.concurrency))
        requests, seconds = out["requests"], out["elapsed_s"]
        rate = requests / seconds
        lat = out.get("latency_ms") or {}

        pgbench = "/usr/lib/postgresql/15/bin/pgbench"
        subprocess.run([pgbench, "-q", "-i", "-s", "1", "-d", cluster.conninfo("pgbench")],
                       check=True, capture_output=True)
        r = subprocess.run([pgbench, "-N", "-c", "8", "-j", "2", "-T", str(args.seconds),
                            "-d", cluster.conninfo("pgbench")], capture_output=True, text=True,
                           check=True)
        m = re.search(r"tps = ([\d.]+)", r.stdout)
        tps = float(m.group(1))
        ratio = rate / tps
        print(f"{'figure':<44} {'value':>12} {'reference':>12} {'ratio':>7} {'target':>7}")
        print(f"{'command round trips (signed report + next)':<44} {rate:>10.0f}/s "
              f"{tps:>10.0f}/s {ratio:>7.2f} {'>=0.50':>7}")
        if lat:
            print(f"latency: p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms")
        print(f"reference: pgbench -N -c 8 on the same PostgreSQL; {n} devices x "
              f"{args.commands} commands, {args.concurrency} connections, {requests} requests")
        print(json.dumps({"bench": "roundtrip", "devices": n, "commands": args.commands,
                          "value": round(rate, 1), "reference": round(tps, 1),
                          "ratio": round(ratio, 3), "target": 0.5, "unit": "round trips/s",
                          "latency_ms": lat}))
    finally:
        if vouchd is not None:
            vouchd.terminate()
            vouchd.wait(timeout=30)
        cluster.cleanup()


if __name__ == "__main__":
    main()
