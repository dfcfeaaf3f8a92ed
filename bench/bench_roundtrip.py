#!/usr/bin/python3
"""Command round trips per second: simulated devices against vouchd, beside pgbench -N.

Starts the tuned private PostgreSQL (bench/benchlib.py) and vouchd (no pushes: the devices
connect by themselves), enrolls N simulated devices (P-256 identities, every request signed with Mdm-Signature), lets them answer
the attestation request of their enrollment, queues C commands for each, then:
  figure     `vouch-sim connect` with K concurrent connections: every device Idles, takes each
             command, answers Acknowledged, until the empty body; one round trip is one signed
             report answered with the next command (each a durable transaction in PostgreSQL),
             with p50/p99 latency from the simulator;
  reference  `pgbench -N` (simple updates, 8 clients) on the same PostgreSQL in the same run: the
             ceiling of one durable write per transaction on this machine.
Prints a table and JSON rows (vouchd's peak RSS too). Usage: bench_roundtrip.py BUILD_DIR
[--devices N] [--commands C] [--concurrency K] [--seconds S]
"""
import argparse
import os
import re
import subprocess
import tempfile

import benchlib
from benchlib import row

COMMAND = b"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Command</key><dict>
<key>RequestType</key><string>ProfileList</string></dict></dict></plist>
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--commands", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    build, n, k = args.build, args.devices, str(args.concurrency)
    tmp = tempfile.mkdtemp(prefix="vouch-bench-rt-")
    cluster = benchlib.tuned_cluster()
    vouchd = None
    try:
        cluster.createdb("vouch")
        cluster.createdb("pgbench")
        simdir = os.path.join(tmp, "sim")
        benchlib.run_sim(build, "init-ca", "--dir", simdir)
        vouchd = benchlib.Vouchd(build, tmp, {
            "database_url": cluster.conninfo("vouch"), "identity_ca": f"{simdir}/ca.pem",
            "attestation_roots": f"{simdir}/apple-root.pem", "db_pool_size": "16",
            "scheduler_batch": "0"})
        benchlib.run_sim(build, "enroll", "--url", vouchd.url, "--dir", simdir, "--devices",
                         str(n), "--key-type", "ec", "--concurrency", k)
        # The enrollments' attestation requests, answered: the queues are empty.
        benchlib.run_sim(build, "connect", "--url", vouchd.url, "--dir", simdir, "--devices",
                         str(n), "--concurrency", k)
        udids = benchlib.sim_udids(build, simdir)
        for _ in range(args.commands):
            for i in range(0, len(udids), 1000):
                status, text = vouchd.admin("PUT", "/v1/enqueue/" + ",".join(udids[i:i + 1000]),
                                            COMMAND)
                if status != 200:
                    raise SystemExit(f"PUT /v1/enqueue answered {status}: {text[:300]!r}")
        with open(f"/proc/{vouchd.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # peak RSS from here
        out, _ = benchlib.run_sim(build, "connect", "--url", vouchd.url, "--dir", simdir,
                                  "--devices", str(n), "--concurrency", k)
        requests, seconds = out["requests"], out["elapsed_s"] - out.get("prepare_s", 0)
        rate = requests / seconds
        lat = out.get("latency_ms") or {}
        rss = vouchd.peak_rss_mb()

        pgbench = os.path.join(benchlib.pg.PG_BIN, "pgbench")
        subprocess.run([pgbench, "-q", "-i", "-s", "1", "-d", cluster.conninfo("pgbench")],
                       check=True, capture_output=True)
        r = subprocess.run([pgbench, "-N", "-c", "8", "-j", "2", "-T", str(args.seconds),
                            "-d", cluster.conninfo("pgbench")], capture_output=True, text=True,
                           check=True)
        tps = float(re.search(r"tps = ([\d.]+)", r.stdout).group(1))
        rows = [
            row("roundtrip", "command round trips (signed report + next command)", rate, "/s",
                tps, ">=0.50", devices=n, commands=args.commands, requests=requests,
                connections=args.concurrency, latency_ms=lat,
                reference_is="pgbench -N -c 8, same PostgreSQL"),
            row("roundtrip", "round trip latency p50", lat.get("p50", 0), "ms"),
            row("roundtrip", "round trip latency p99", lat.get("p99", 0), "ms"),
            row("roundtrip", "vouchd peak RSS, round trips", rss, "MiB"),
        ]
        benchlib.print_table(rows)
        print(f"reference: pgbench -N -c 8 on the same PostgreSQL; {n} devices x "
              f"{args.commands} commands, {args.concurrency} connections, {requests} requests")
    finally:
        if vouchd is not None:
            vouchd.stop()
        cluster.cleanup()


if __name__ == "__main__":
    main()
