#!/usr/bin/python3
"""Command round trips per second: simulated devices against vouchd, beside pgbench -N.

Starts the tuned private PostgreSQL (bench/benchlib.py) and vouchd (no pushes: the devices
connect by themselves), enrolls N simulated devices (P-256 identities, every request signed with
Mdm-Signature), lets them answer the attestation request of their enrollment, queues C commands
for each, then:
  figure     `vouch-sim connect` with K concurrent devices: every device Idles, takes each
             command, answers Acknowledged, until the empty body. One round trip is one signed
             report that carries a command's result (Acknowledged, Error, NotNow...) answered
             with the next command, each a durable transaction in PostgreSQL: N x C of them. The
             Idle that opens each session is sent and timed but not counted (the old count of
             every request, N x (C + 1), is kept in the row as requests_per_s);
  reference  `pgbench -N` (simple updates) with K clients too, on the same PostgreSQL in the
             same run: the ceiling of one durable write per transaction on this machine. At most
             100 clients (PostgreSQL's default max_connections): pgbench opens a backend per
             client, and a thousand of them on one core measure forking and connecting.
Also vouchd's CPU and PostgreSQL's (the postmaster and every backend) per round trip, from
/proc/<pid>/stat before and after the measured run.

--pinned is how peers are compared (issue 22): vouchd and its PostgreSQL on CPU 0 (the postmaster
pinned before it forks, so every backend inherits it), vouch-sim and pgbench on CPU 1.

VOUCH_BENCH_ATTACH='COMMAND' runs COMMAND ({pid} is vouchd's) over the measured run and stops
it with SIGINT: 'perf record -g -o FILE -p {pid}', 'strace -c -o FILE -p {pid}'.

Prints a table and JSON rows (vouchd's peak RSS too). Usage: bench_roundtrip.py BUILD_DIR
[--devices N] [--commands C] [--concurrency K] [--seconds S] [--pinned]
"""
import argparse
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time

import benchlib
from benchlib import row

COMMAND = b"""<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Command</key><dict>
<key>RequestType</key><string>ProfileList</string></dict></dict></plist>
"""

SERVER_CPUS = {0}
LOAD_CPUS = {1}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--commands", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--pinned", action="store_true",
                    help="vouchd and PostgreSQL on CPU 0, the devices and pgbench on CPU 1")
    args = ap.parse_args()
    build, n, k = args.build, args.devices, str(args.concurrency)
    if args.pinned and not (SERVER_CPUS | LOAD_CPUS) <= os.sched_getaffinity(0):
        raise SystemExit("--pinned needs CPUs 0 and 1")
    server_cpus = SERVER_CPUS if args.pinned else None
    load_cpus = LOAD_CPUS if args.pinned else None
    how = "pinned: server CPU 0, load CPU 1" if args.pinned else "unpinned"
    tmp = tempfile.mkdtemp(prefix="vouch-bench-rt-")
    # pgbench gets as many clients as there are devices at once, up to 100 (PostgreSQL's default
    # max_connections): beyond that a backend per client measures forking and connecting (1,000
    # clients on one core spent 12 s connecting), not the durable write vouchd's 16 make.
    clients = min(args.concurrency, 100)
    cluster = benchlib.tuned_cluster(cpus=server_cpus)
    vouchd = None
    try:
        cluster.createdb("vouch")
        cluster.createdb("pgbench")
        simdir = os.path.join(tmp, "sim")
        benchlib.run_sim(build, "init-ca", "--dir", simdir)
        # vouchd as configured by default (db_pool_size 4): this bench set 16 connections, one
        # a device at once, until the pinned runs showed what that costs PostgreSQL on one
        # core (0.36 ms a round trip against 0.23-0.26 with 4; bench/README, the ninth session).
        vouchd = benchlib.Vouchd(build, tmp, {
            "database_url": cluster.conninfo("vouch"), "identity_ca": f"{simdir}/ca.pem",
            "attestation_roots": f"{simdir}/apple-root.pem",
            "scheduler_batch": "0"}, cpus=server_cpus)
        benchlib.run_sim(build, "enroll", "--url", vouchd.url, "--dir", simdir, "--devices",
                         str(n), "--key-type", "ec", "--concurrency", k, cpus=load_cpus)
        # The enrollments' attestation requests, answered: the queues are empty.
        benchlib.run_sim(build, "connect", "--url", vouchd.url, "--dir", simdir, "--devices",
                         str(n), "--concurrency", k, cpus=load_cpus)
        udids = benchlib.sim_udids(build, simdir)
        for _ in range(args.commands):
            for i in range(0, len(udids), 1000):
                status, text = vouchd.admin("PUT", "/v1/enqueue/" + ",".join(udids[i:i + 1000]),
                                            COMMAND)
                if status != 200:
                    raise SystemExit(f"PUT /v1/enqueue answered {status}: {text[:300]!r}")
        with open(f"/proc/{vouchd.proc.pid}/clear_refs", "w") as f:
            f.write("5")  # peak RSS from here
        benchlib.reset_postgres_profile(cluster, "vouch")
        perf = None
        if os.environ.get("VOUCH_BENCH_ATTACH"):
            # A profiler attached to vouchd over the measured run, stopped with SIGINT.
            perf = subprocess.Popen(shlex.split(os.environ["VOUCH_BENCH_ATTACH"].format(
                pid=vouchd.proc.pid)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        vouchd_cpu0, pg_cpu0 = vouchd.cpu_seconds(), benchlib.postgres_cpu_seconds(cluster)
        out, _ = benchlib.run_sim(build, "connect", "--url", vouchd.url, "--dir", simdir,
                                  "--devices", str(n), "--concurrency", k, cpus=load_cpus)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        vouchd_cpu = vouchd.cpu_seconds() - vouchd_cpu0
        pg_cpu = benchlib.postgres_cpu_seconds(cluster) - pg_cpu0
        benchlib.print_postgres_profile(cluster, "vouch")
        requests, seconds = out["requests"], out["elapsed_s"] - out.get("prepare_s", 0)
        round_trips = sum(out["answers"].values())
        if round_trips != n * args.commands or out["failed_devices"]:
            raise SystemExit(f"expected {n * args.commands} answered commands, saw "
                             f"{out['answers']} ({out['failed_devices']} devices failed)")
        rate = round_trips / seconds
        lat = out.get("latency_ms") or {}
        rss = vouchd.peak_rss_mb()

        pgbench = os.path.join(benchlib.pg.PG_BIN, "pgbench")
        # The connection string is the last argument: pgbench's -d is --debug, not the database.
        subprocess.run([pgbench, "-q", "-i", "-s", "1", cluster.conninfo("pgbench")],
                       check=True, capture_output=True)
        r = subprocess.run([pgbench, "-N", "-c", str(clients), "-j", str(min(clients, 2)),
                            "-T", str(args.seconds), cluster.conninfo("pgbench")],
                           capture_output=True, text=True, check=True,
                           preexec_fn=benchlib.pinned(load_cpus))
        m = re.search(r"tps = ([\d.]+)", r.stdout)
        if m is None:
            raise SystemExit(f"pgbench printed no tps: {r.stdout[-1500:]}{r.stderr[:1500]}")
        tps = float(m.group(1))
        tag = f"{k} at once" + (", pinned" if args.pinned else "")
        reference_is = f"pgbench -N -c {clients} -j {min(clients, 2)}, same PostgreSQL, {how}"
        rows = [
            row("roundtrip", f"command round trips, {tag}",
                rate, "/s", tps, ">=0.50", devices=n, commands=args.commands,
                round_trips=round_trips, requests=requests, requests_per_s=requests / seconds,
                connections=args.concurrency, pinned=args.pinned, latency_ms=lat,
                reference_is=reference_is),
            row("roundtrip", f"vouchd CPU per signed round trip, {tag}",
                vouchd_cpu * 1000 / round_trips, "ms", target="<=0.2 ms",
                cpu_s=round(vouchd_cpu, 3), us=round(vouchd_cpu * 1e6 / round_trips, 1),
                round_trips=round_trips),
            row("roundtrip", f"PostgreSQL CPU per round trip, {tag}",
                pg_cpu * 1000 / round_trips, "ms", cpu_s=round(pg_cpu, 3),
                us=round(pg_cpu * 1e6 / round_trips, 1), round_trips=round_trips),
            row("roundtrip", f"request latency p50, {tag}", lat.get("p50", 0), "ms"),
            row("roundtrip", f"request latency p99, {tag}", lat.get("p99", 0), "ms"),
            row("roundtrip", f"vouchd peak RSS, round trips, {tag}", rss, "MiB"),
        ]
        benchlib.print_table(rows)
        print(f"reference: {reference_is}; {n} devices x {args.commands} commands = "
              f"{round_trips} round trips ({requests} requests with the opening Idles: "
              f"{requests / seconds:,.0f}/s), {k} concurrent devices; CPU in {seconds:.1f} s: "
              f"vouchd {vouchd_cpu:.2f} s, PostgreSQL {pg_cpu:.2f} s")
    finally:
        if vouchd is not None:
            vouchd.stop()
        cluster.cleanup()


if __name__ == "__main__":
    main()
