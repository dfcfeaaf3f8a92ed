#!/usr/bin/python3
"""A fleet moved in from NanoMDM (issue 25): migrations per second, then the campaign that proves
every migrated identity.

Starts the tuned private PostgreSQL (bench/benchlib.py), the stand-in APNs (every push it
answers written to a log the simulator follows) and vouchd with `migration = on`, then:
  migration   `vouch-sim enroll --migrate TOKEN`: for each of N devices its Authenticate and
              TokenUpdate PUT to /migration as nano2nano sends them (unsigned, Basic
              nanomdm:TOKEN), K clients at once; each is one durable transaction. Migrated
              devices per second (two PUTs each; the identities are made before the clock
              starts), beside `pgbench -N` with as many clients (at most 100) on the same
              PostgreSQL in the same run: the ceiling of one durable write per transaction
              here. vouchd's and PostgreSQL's CPU per migrated device. Then `vouchctl migrate`
              over a NanoMDM file-storage folder of M more devices (2M plists written here),
              with --parallel 1 and the default 4: what its concurrency gains;
  campaign    the migrated devices sleep until pushed (`vouch-sim serve`), after one check-in
              each (`vouch-sim connect`: an Idle signed with the identity DIR's CA issued, the
              old server's SCEP CA): that check-in binds the identity provisionally and plans an
              attestation at once; vouchd's scheduler asks and pushes, the pushed devices
              answer. The wall time from the first check-in until every migrated device is
              attested or refused (GET /v1/migration), verified devices per second, and the CPU
              per device of vouchd, PostgreSQL, the simulator and the stand-in APNs. The
              campaign runs at `attestation_rate_limit` = --rate-limit (default 1,000,000 a
              minute: the server's capacity; vouchd's default of 1,000 a minute would spread a
              10,000-device campaign over at least 10 minutes by design).
Prints a table and JSON rows (bench/benchlib.py). Usage: bench_migration.py BUILD_DIR
[--devices N] [--concurrency K] [--files M] [--seconds S] [--rate-limit R]
"""
import argparse
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import row

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fleet import start_standin  # noqa: E402


def migration_figures(vouchd):
    status, body = vouchd.admin("GET", "/v1/migration")
    if status != 200:
        sys.exit(f"GET /v1/migration answered {status}: {body[:300]!r}")
    return json.loads(body)


def write_nanomdm_folder(root, m, topic):
    """M devices as NanoMDM's file storage keeps them: ROOT/<UDID>/{Authenticate,TokenUpdate}
    .plist, in the shapes of NanoMDM's captures (tests/testdata/peer-plists/nanomdm/)."""
    for i in range(m):
        udid = f"{os.urandom(16).hex()}{i:08x}"
        d = os.path.join(root, udid)
        os.makedirs(d)
        with open(os.path.join(d, "Authenticate.plist"), "wb") as f:
            plistlib.dump({"BuildVersion": "21E219", "MessageType": "Authenticate",
                           "OSVersion": "17.4", "ProductName": "iPad8,1",
                           "SerialNumber": f"F{i:011d}", "Topic": topic, "UDID": udid}, f)
        with open(os.path.join(d, "TokenUpdate.plist"), "wb") as f:
            plistlib.dump({"AwaitingConfiguration": False, "MessageType": "TokenUpdate",
                           "PushMagic": f"CEFDF0BD-E342-4A27-8742-{i:012d}",
                           "Token": os.urandom(32), "Topic": topic, "UDID": udid,
                           "UnlockToken": os.urandom(256)}, f)


def vouchctl_migrate(build, vouchd, folder, parallel):
    """Runs vouchctl migrate over folder: (files/s, wall s, the summary line)."""
    start = time.monotonic()
    p = subprocess.run([os.path.join(build, "cli", "vouchctl"), "--url", vouchd.url,
                        "migrate", "--parallel", str(parallel), folder],
                       capture_output=True, text=True,
                       env=dict(os.environ, VOUCH_ADMIN_TOKEN=vouchd.token))
    wall = time.monotonic() - start
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode != 0 or not re.fullmatch(r"\d+ accepted, 0 refused", last):
        sys.exit(f"vouchctl migrate --parallel {parallel}: exit {p.returncode}: "
                 f"{p.stdout[-1500:]}{p.stderr[-1500:]}")
    return int(last.split()[0]) / wall, wall, last


def pgbench_tps(cluster, clients, seconds):
    pgbench = os.path.join(benchlib.pg.PG_BIN, "pgbench")
    # The connection string is the last argument: pgbench's -d is --debug, not the database.
    subprocess.run([pgbench, "-q", "-i", "-s", "1", cluster.conninfo("pgbench")],
                   check=True, capture_output=True)
    r = subprocess.run([pgbench, "-N", "-c", str(clients), "-j", str(min(clients, 2)),
                        "-T", str(seconds), cluster.conninfo("pgbench")],
                       capture_output=True, text=True, check=True)
    m = re.search(r"tps = ([\d.]+)", r.stdout)
    if m is None:
        sys.exit(f"pgbench printed no tps: {r.stdout[-1500:]}{r.stderr[:1500]}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--files", type=int, default=2000,
                    help="devices of the NanoMDM folder vouchctl migrate sends")
    ap.add_argument("--seconds", type=int, default=10, help="pgbench -N's run")
    ap.add_argument("--rate-limit", type=int, default=1000000,
                    help="attestation_rate_limit in the campaign (scheduled requests a minute)")
    ap.add_argument("--timeout", type=int, default=1800, help="the campaign's longest wait")
    args = ap.parse_args()
    n, k, build = args.devices, str(args.concurrency), args.build
    tmp = tempfile.mkdtemp(prefix="vouch-bench-migration-")
    certs = os.path.join(tmp, "certs")
    # The simulator's state on tmpfs when there is one (see bench_fleet.py).
    simdir = tempfile.mkdtemp(prefix="vouch-bench-migration-sim-",
                              dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp)
    os.makedirs(os.path.join(tmp, "apns"))
    subprocess.run([os.path.join(benchlib.REPO, "tests", "apns", "make-certs.sh"), certs],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(certs, "topic")) as f:
        topic = f.read().strip()
    cluster = benchlib.tuned_cluster()
    standin = vouchd = serve = None
    rows = []
    try:
        cluster.createdb("vouch")
        cluster.createdb("pgbench")
        standin, listen = start_standin(build, certs, tmp)
        benchlib.run_sim(build, "init-ca", "--dir", simdir)
        vouchd = benchlib.Vouchd(build, tmp, {
            "database_url": cluster.conninfo("vouch"),
            "identity_ca": f"{simdir}/ca.pem",
            "attestation_roots": f"{simdir}/apple-root.pem",
            "apns_cert": f"{certs}/push.pem", "apns_key": f"{certs}/push.key",
            "apns_url": f"https://{listen}", "apns_ca": f"{certs}/ca.pem",
            "attestation_rate_limit": str(args.rate_limit),
            "migration": "on"})  # the default pool (4), as bench_fleet

        # -- migration ----------------------------------------------------------------------
        cpu_v, cpu_pg = vouchd.cpu_seconds(), benchlib.postgres_cpu_seconds(cluster)
        out, cpu_sim = benchlib.run_sim(build, "enroll", "--migrate", vouchd.token, "--url",
                                        vouchd.url, "--dir", simdir, "--devices", str(n),
                                        "--key-type", "ec", "--topic", topic,
                                        "--concurrency", k, "--quiet")
        if out["enrolled"] != n or out["failed_devices"]:
            sys.exit(f"only {out['enrolled']} of {n} devices migrated: {out}")
        seconds = out["elapsed_s"] - out["prepare_s"]
        cpu = {"vouchd": vouchd.cpu_seconds() - cpu_v,
               "postgres": benchlib.postgres_cpu_seconds(cluster) - cpu_pg,
               "simulator": cpu_sim - out["prepare_cpu_s"]}
        figures = migration_figures(vouchd)
        if figures["devices"]["migrated"] != n or figures["devices"]["waiting"] != n:  # fresh
            sys.exit(f"after the migration: {figures}")
        if figures["topics_without_certificate"]:
            sys.exit(f"the push certificate's topic is not the fleet's: {figures}")
        clients = min(args.concurrency, 100)
        tps = pgbench_tps(cluster, clients, args.seconds)
        reference_is = f"pgbench -N -c {clients} -j {min(clients, 2)}, same PostgreSQL"
        rate = n / seconds
        rows.append(row("migration", f"migrations ({n:,} devices, {k} clients)", rate, "/s",
                        tps, None, devices=n, seconds=round(seconds, 2),
                        requests_per_s=round(2 * n / seconds, 1),
                        requests_ratio=round(2 * n / seconds / tps, 3),
                        reference_is=reference_is, latency_ms=out.get("latency_ms"),
                        cpu_s={name: round(v, 2) for name, v in cpu.items()}))
        for name, sec in cpu.items():
            rows.append(row("migration", f"migration: CPU per device, {name}",
                            sec * 1000 / n, "ms"))

        # vouchctl migrate over files, one request at a time and four (its default).
        folder_rates = {}
        for parallel in (1, 4):
            folder = os.path.join(tmp, f"nanomdm-{parallel}")
            write_nanomdm_folder(folder, args.files, topic)
            folder_rates[parallel] = vouchctl_migrate(build, vouchd, folder, parallel)
            rows.append(row("migration", f"vouchctl migrate, --parallel {parallel}",
                            folder_rates[parallel][0], "/s", None, None,
                            unit_is="plists per second", files=2 * args.files,
                            seconds=round(folder_rates[parallel][1], 2)))
        # The folders' devices never check in: they stay waiting, and the campaign is the
        # simulator's fleet alone.
        folder_devices = 2 * args.files

        # -- campaign -----------------------------------------------------------------------
        log = os.path.join(tmp, "apns", "pushes.log")
        serve = benchlib.Sim(build, "serve", "--url", vouchd.url, "--dir", simdir,
                             "--pushes", log, "--concurrency", k, "--attest-reuse-key",
                             "--quiet", "--idle-exit", "0",
                             "--max-seconds", str(args.timeout + 60))
        deadline = time.monotonic() + 120
        while "serve: ready" not in serve.stderr_text():
            if time.monotonic() > deadline or serve.proc.poll() is not None:
                sys.exit(f"vouch-sim serve did not start: {serve.stderr_text()[-2000:]}")
            time.sleep(0.05)
        benchlib.reset_postgres_profile(cluster, "vouch")
        cpu_v, cpu_pg = vouchd.cpu_seconds(), benchlib.postgres_cpu_seconds(cluster)
        cpu_apns = benchlib.cpu_seconds(standin.pid)
        start = time.monotonic()
        # One check-in each, signed with the identity the old server's CA issued.
        first, cpu_connect = benchlib.run_sim(build, "connect", "--url", vouchd.url, "--dir",
                                              simdir, "--devices", str(n), "--concurrency", k,
                                              "--attest-reuse-key", "--quiet")
        checked_in = time.monotonic() - start
        while True:
            d = migration_figures(vouchd)["devices"]
            if d["waiting"] == folder_devices and d["provisional"] == 0 and \
                    d["attested"] + d["refused"] >= n:
                break
            if serve.proc.poll() is not None:
                serve.out.seek(0)
                sys.exit(f"vouch-sim serve stopped ({serve.proc.returncode}): "
                         f"{serve.out.read()[-2000:]}{serve.stderr_text()[-2000:]}")
            if time.monotonic() - start > args.timeout:
                sys.exit(f"the campaign did not end in {args.timeout} s: {d}")
            time.sleep(0.2)
        wall = time.monotonic() - start
        serve.proc.terminate()
        summary, cpu_serve = serve.finish()
        cpu = {"vouchd": vouchd.cpu_seconds() - cpu_v,
               "postgres": benchlib.postgres_cpu_seconds(cluster) - cpu_pg,
               "simulator": cpu_connect + cpu_serve - summary["prepare_cpu_s"],
               "apns stand-in": benchlib.cpu_seconds(standin.pid) - cpu_apns}
        can_attest = sum(1 for line in subprocess.run(
            [os.path.join(build, "tests", "sim", "vouch-sim"), "list", "--dir", simdir],
            capture_output=True, text=True, check=True).stdout.splitlines()
            if line.endswith("\tattest"))
        attested = d["attested"]
        if attested != can_attest:
            sys.exit(f"after the campaign: {d}; {can_attest} devices can attest")
        rows.append(row("campaign", f"migrated fleet attested, {n:,} devices (wall)", wall,
                        "s", None, None, devices=n, attested=attested, refused=d["refused"],
                        first_checkins_s=round(checked_in, 2),
                        sessions=summary["sessions"] + first["sessions"],
                        rate_limit_per_min=args.rate_limit,
                        cpu_s={name: round(v, 1) for name, v in cpu.items()}))
        rows.append(row("campaign", "migrated fleet: devices verified per second",
                        attested / wall, "/s"))
        for name, sec in cpu.items():
            rows.append(row("campaign", f"migrated fleet campaign: CPU per device, {name}",
                            sec * 1000 / n, "ms"))
        rows.append(row("campaign", "migrated fleet campaign: server CPU per verified device",
                        (cpu["vouchd"] + cpu["postgres"]) * 1000 / attested, "ms"))

        benchlib.print_postgres_profile(cluster, "vouch")
        print()
        benchlib.print_table(rows)
        print(f"migration: {n:,} devices x 2 PUT /migration with {k} clients, "
              f"{2 * n / seconds:,.0f} requests/s; reference: {reference_is}, {tps:,.0f} tps")
        print(f"vouchctl migrate: {2 * args.files:,} plists ({args.files:,} devices) per run: "
              + ", ".join(f"--parallel {p}: {r[0]:,.0f}/s" for p, r in folder_rates.items()))
        print(f"campaign: {attested:,} attested, {d['refused']:,} refused (models that cannot "
              f"attest: {n - can_attest:,}); first check-ins took {checked_in:.1f} s; "
              f"attestation_rate_limit {args.rate_limit:,}/min")
    finally:
        if serve is not None and serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait()
        if vouchd is not None:
            vouchd.stop()
        if standin is not None:
            standin.terminate()
            standin.wait(timeout=30)
        cluster.cleanup()
        shutil.rmtree(simdir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
