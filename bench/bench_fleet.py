#!/usr/bin/python3
"""A fleet, end to end: N devices enroll, then a fleet-wide attestation campaign.

Starts the tuned private PostgreSQL, the stand-in APNs (client certificate required, every push
it answers written to a log the simulator follows) and vouchd, then:
  enrollment  `vouch-sim enroll`: every device sends Authenticate and TokenUpdate, each signed
              (Mdm-Signature, P-256 identity), each verified and stored, and vouchd queues the
              enrollment's attestation request and pushes the device. Devices per second (the
              identities are made before the clock starts), beside OpenSSL's CMS_verify of the
              same kind of signature per second on one core (bench_signature, same run): a device
              costs two such verifications;
  campaign    the devices sleep until pushed (`vouch-sim serve` follows the push log), then
              `vouchctl attest --all`: the wall time until every device has answered, end to
              end (push -> connect -> DeviceInformation with a fresh nonce -> a fresh attestation
              minted by the device -> verify -> store), and every device that can attest is
              verified, checked in the database. The CPU seconds of vouchd, the simulator, the
              stand-in APNs and PostgreSQL say where the time went;
  cost        vouchd's peak RSS in each phase and the database size per 100,000 devices after
              the campaign (and per table).
Prints a table and JSON rows (bench/benchlib.py). Usage: bench_fleet.py BUILD_DIR [--devices N]
[--concurrency K]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import benchlib
from benchlib import row

SERVER_MS_PER_DEVICE = 2.5  # the server's CPU budget per device and phase (issue 22)


def start_standin(build, certs, tmp):
    proc = subprocess.Popen(
        [os.path.join(build, "tests", "apns", "apns-standin"), "--listen", "127.0.0.1:0",
         "--control", "127.0.0.1:0", "--cert", f"{certs}/server.pem",
         "--key", f"{certs}/server.key", "--client-ca", f"{certs}/push-ca.pem",
         "--notify-dir", os.path.join(tmp, "apns"), "--max-records", "1000"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "standin.log"), "w"), text=True)
    m = re.search(r"listen=(\S+)", proc.stdout.readline())
    if not m:
        sys.exit("apns-standin did not start")
    return proc, m.group(1)


def signature_reference(build):
    out = subprocess.run([os.path.join(build, "bench", "bench_signature"), "--seconds", "1"],
                         capture_output=True, text=True, check=True).stdout
    rec = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return rec["reference"]


def attestation_verdicts(vouchd):
    """vouch_attestations_total summed over verdicts, from vouchd's /metrics."""
    _, text = benchlib.http(vouchd.url + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith("vouch_attestations_total"))


def identity_cache(vouchd):
    """vouch_identity_cache_total by outcome (hit, miss, expired, evicted), from /metrics."""
    _, text = benchlib.http(vouchd.url + "/metrics")
    counts = {}
    for line in text.decode().splitlines():
        m = re.match(r'vouch_identity_cache_total\{outcome="(\w+)"\} (\S+)', line)
        if m:
            counts[m.group(1)] = int(float(m.group(2)))
    return counts


class PushWatch(threading.Thread):
    """Follows the push log from its current end: when the first push of the campaign came and
    when n had come (the campaign's pace of pushes, beside its pace of answers)."""

    def __init__(self, path, n):
        super().__init__(daemon=True)
        self.path, self.n, self.t0 = path, n, time.monotonic()
        self.offset = os.path.getsize(path) if os.path.exists(path) else 0
        self.count, self.first, self.all = 0, None, None
        self.stopping = False

    def run(self):
        while not self.stopping and self.all is None:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            self.offset += len(data)
            self.count += data.count(b"\n")
            now = time.monotonic() - self.t0
            if self.count > 0 and self.first is None:
                self.first = now
            if self.count >= self.n:
                self.all = now
            time.sleep(0.05)


def cpu_rows(rows, phase, n, cpu, verified=None):
    """CPU per device of each process in a phase, then the server's (vouchd + PostgreSQL)
    beside its budget (issue 22: at most 2.5 ms a device in each phase). Per device of the
    fleet, as issue 22 counts; in the campaign the devices that cannot attest answer too, and
    the row also says the server's CPU per verified device."""
    for name, sec in cpu.items():
        rows.append(row(phase, f"{phase}: CPU per device, {name}", sec * 1000 / n, "ms"))
    server = (cpu["vouchd"] + cpu["postgres"]) * 1000 / n
    extra = {"per_verified_ms": round(server * n / verified, 2)} if verified else {}
    rows.append(row(phase, f"{phase}: server CPU per device (vouchd + PostgreSQL)", server,
                    "ms", SERVER_MS_PER_DEVICE, f"<={SERVER_MS_PER_DEVICE} ms",
                    reference_is="the budget per device", **extra))


def reset_peak_rss(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    n, k, build = args.devices, str(args.concurrency), args.build
    tmp = tempfile.mkdtemp(prefix="vouch-bench-fleet-")
    certs = os.path.join(tmp, "certs")
    # The simulator's state (identities, one attestation cache file per device) on tmpfs when
    # there is one: on ext4 next to a busy disk, allocating 100,000 new inodes cost the
    # simulator more CPU than the attestations it signs, and that is not the server's cost.
    simdir = tempfile.mkdtemp(prefix="vouch-bench-fleet-sim-",
                              dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp)
    os.makedirs(os.path.join(tmp, "apns"))
    subprocess.run([os.path.join(benchlib.REPO, "tests", "apns", "make-certs.sh"), certs],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cms_per_s = signature_reference(build)
    cluster = benchlib.tuned_cluster()
    standin = vouchd = serve = None
    rows = []
    try:
        cluster.createdb("vouch")
        standin, listen = start_standin(build, certs, tmp)
        benchlib.run_sim(build, "init-ca", "--dir", simdir)
        vouchd = benchlib.Vouchd(build, tmp, {
            "database_url": cluster.conninfo("vouch"),
            "identity_ca": f"{simdir}/ca.pem",
            "attestation_roots": f"{simdir}/apple-root.pem",
            "apns_cert": f"{certs}/push.pem", "apns_key": f"{certs}/push.key",
            "apns_url": f"https://{listen}", "apns_ca": f"{certs}/ca.pem",
            # Sized to the fleet, as docs/api.md advises when memory allows: every device's
            # first request of the campaign is then one signature check, not a certificate
            # parse and a chain verification (the RSS rows show the memory it takes). The pool
            # is vouchd's default (4 connections; this bench set 16 until the ninth session:
            # bench/README).
            "identity_cache_size": str(max(4096, n))})

        # -- enrollment ---------------------------------------------------------------------
        reset_peak_rss(vouchd.proc.pid)
        benchlib.reset_postgres_profile(cluster, "vouch")
        cpu_v, cpu_pg = vouchd.cpu_seconds(), benchlib.postgres_cpu_seconds(cluster)
        machine0 = benchlib.machine_cpu_seconds()
        # The devices' topic is the push certificate's: vouchd sends no push for a topic no
        # instance serves (push.token_state "no_certificate").
        with open(os.path.join(certs, "topic")) as f:
            topic = f.read().strip()
        enroll, cpu_sim = benchlib.run_sim(build, "enroll", "--url", vouchd.url, "--dir", simdir,
                                           "--devices", str(n), "--key-type", "ec",
                                           "--topic", topic, "--concurrency", k)
        if enroll["enrolled"] != n:
            sys.exit(f"only {enroll['enrolled']} of {n} devices enrolled")
        seconds = enroll["elapsed_s"] - enroll["prepare_s"]
        rate = n / seconds
        cpu = {"vouchd": vouchd.cpu_seconds() - cpu_v,
               "postgres": benchlib.postgres_cpu_seconds(cluster) - cpu_pg,
               "simulator": cpu_sim}
        rows.append(row("enroll", f"enrollments ({n:,} devices, signed check-ins)", rate, "/s",
                        cms_per_s, None, devices=n, seconds=round(seconds, 2),
                        reference_is="OpenSSL CMS_verify/s on one core",
                        latency_ms=enroll.get("latency_ms"),
                        cpu_s={k2: round(v, 1) for k2, v in cpu.items()}))
        rows.append(row("enroll", f"time to enroll {n:,} devices", seconds, "s"))
        cpu_rows(rows, "enrollment", n, cpu)
        # The identities are made before the clock starts: the simulator's CPU beside the server
        # is that of its requests.
        sim_requests = enroll["cpu_s"] - enroll["prepare_cpu_s"]
        rows.append(row("enrollment", "enrollment: CPU per device, simulator's requests",
                        sim_requests * 1000 / n, "ms"))
        # Over the whole enroll run (the identities' issue included), the machine's beside it.
        enroll_cores = ((cpu["vouchd"] + cpu["postgres"] + cpu_sim) / enroll["elapsed_s"],
                        (benchlib.machine_cpu_seconds() - machine0) / enroll["elapsed_s"])
        rows.append(row("enroll", "vouchd peak RSS, enrollment", vouchd.peak_rss_mb(), "MiB"))
        pending = int(cluster.psql("SELECT count(*) FROM attestation_requests "
                                   "WHERE answered_at IS NULL", "vouch"))
        if pending != n:
            sys.exit(f"{pending} attestation requests pending after enrollment, not {n}")

        # -- campaign -----------------------------------------------------------------------
        # The enrollments' pushes are behind us: the log has been quiet for a second.
        log = os.path.join(tmp, "apns", "pushes.log")
        last = (-1, 0)
        while last[1] < 4:
            time.sleep(0.25)
            size = os.path.getsize(log) if os.path.exists(log) else 0
            last = (size, last[1] + 1 if size == last[0] else 0)
        reset_peak_rss(vouchd.proc.pid)
        if os.environ.get("VOUCH_BENCH_PROFILE"):
            print("== PostgreSQL in the enrollment")
            benchlib.print_postgres_profile(cluster, "vouch")
            print("== PostgreSQL in the campaign")
        benchlib.reset_postgres_profile(cluster, "vouch")
        serve = benchlib.Sim(build, "serve", "--url", vouchd.url, "--dir", simdir,
                             "--pushes", os.path.join(tmp, "apns", "pushes.log"),
                             "--concurrency", k, "--attest-reuse-key", "--quiet",
                             "--idle-exit", "0", "--max-seconds", "3600")
        deadline = time.monotonic() + 120
        while "serve: ready" not in serve.stderr_text():
            if time.monotonic() > deadline or serve.proc.poll() is not None:
                sys.exit(f"vouch-sim serve did not start: {serve.stderr_text()[-2000:]}")
            time.sleep(0.05)
        cpu_v, cpu_pg = vouchd.cpu_seconds(), benchlib.postgres_cpu_seconds(cluster)
        cpu_apns = benchlib.cpu_seconds(standin.pid)
        verdicts_before = attestation_verdicts(vouchd)
        cache_before = identity_cache(vouchd)
        watch = PushWatch(log, n)
        watch.start()
        machine0 = benchlib.machine_cpu_seconds()
        start = time.monotonic()
        ctl = subprocess.run([os.path.join(build, "cli", "vouchctl"), "--url", vouchd.url,
                              "--json", "attest", "--all", "--yes"], capture_output=True, text=True,
                             env=dict(os.environ, VOUCH_ADMIN_TOKEN=vouchd.token))
        if ctl.returncode != 0:
            sys.exit(f"vouchctl attest --all failed: {ctl.stderr[-2000:]}")
        asked = time.monotonic() - start
        # Done when no request is left unanswered (every answer verified and stored by then):
        # vouchd's verdict counter says when to ask the database (cheap to poll, unlike psql).
        while attestation_verdicts(vouchd) - verdicts_before < n or int(cluster.psql(
                "SELECT count(*) FROM attestation_requests WHERE answered_at IS NULL",
                "vouch")) > 0:
            if serve.proc.poll() is not None:
                sys.exit(f"vouch-sim serve stopped: {serve.stderr_text()[-2000:]}")
            time.sleep(0.1)
        wall = time.monotonic() - start
        machine = benchlib.machine_cpu_seconds() - machine0
        watch.stopping = True
        serve.proc.terminate()
        summary, cpu_sim = serve.finish()
        cpu = {"vouchd": vouchd.cpu_seconds() - cpu_v,
               "postgres": benchlib.postgres_cpu_seconds(cluster) - cpu_pg,
               "simulator": cpu_sim, "apns stand-in": benchlib.cpu_seconds(standin.pid) - cpu_apns}
        # (read after the wall clock stopped: the simulator's share is its whole run)
        counts = dict(line.split("|") for line in cluster.psql(
            "SELECT attestation_status, count(*) FROM devices GROUP BY 1", "vouch").split())
        can_attest = sum(1 for line in subprocess.run(
            [os.path.join(build, "tests", "sim", "vouch-sim"), "list", "--dir", simdir],
            capture_output=True, text=True, check=True).stdout.splitlines()
            if line.endswith("\tattest"))
        verified = int(counts.get("verified", 0))
        if verified != can_attest or int(counts.get("unsupported", 0)) != n - can_attest:
            sys.exit(f"after the campaign: {counts}; {can_attest} devices can attest")
        rows.append(row("campaign", f"attestation campaign, {n:,} devices (wall)", wall, "s",
                        None, "<300 s" if n >= 100000 else None, devices=n, verified=verified,
                        unsupported=n - can_attest, attest_all_s=round(asked, 2),
                        sessions=summary["sessions"], requests=summary["requests"],
                        latency_ms=summary.get("latency_ms"),
                        cpu_s={k2: round(v, 1) for k2, v in cpu.items()}))
        rows.append(row("campaign", "campaign: devices verified per second", verified / wall,
                        "/s"))
        if watch.first is not None:
            rows.append(row("campaign", "campaign: until the first push", watch.first, "s"))
        if watch.all is not None:
            rows.append(row("campaign", f"campaign: until {n:,} pushes", watch.all, "s"))
        cpu_rows(rows, "campaign", n, cpu, verified)
        rows.append(row("campaign", "vouchd peak RSS, campaign", vouchd.peak_rss_mb(), "MiB"))
        # A miss is a certificate parse and a chain verification (identity_cache_size).
        cache = {k2: v - cache_before.get(k2, 0) for k2, v in identity_cache(vouchd).items()}
        looked_up = cache.get("hit", 0) + cache.get("miss", 0)
        rows.append(row("campaign", "campaign: identity cache misses", 100 * cache.get("miss", 0)
                        / max(looked_up, 1), "%", **cache))

        benchlib.print_postgres_profile(cluster, "vouch")

        # -- cost ---------------------------------------------------------------------------
        cluster.psql("VACUUM ANALYZE", "vouch", timeout=1800)
        size = int(cluster.psql("SELECT pg_database_size(current_database())", "vouch"))
        tables = [line.split("|") for line in cluster.psql("""
            SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
            JOIN pg_namespace s ON s.oid = c.relnamespace
            WHERE s.nspname = 'public' AND c.relkind = 'r'
            ORDER BY 2 DESC LIMIT 6""", "vouch").split()]
        per = 100000 / n
        rows.append(row("cost", "database size per 100,000 devices, after the campaign",
                        size * per / 2**20, "MiB", None, "<=300 MiB", devices=n,
                        tables_mib={t: round(int(b) * per / 2**20, 1) for t, b in tables}))

        if os.environ.get("VOUCH_BENCH_PROFILE"):
            # Where the size is: each relation (heap, TOAST, every index) with its live and dead
            # rows after the campaign's VACUUM, and the widest columns of each table.
            print("-- relations per 100,000 devices: relation|kind|table|MiB|live|dead")
            print(cluster.psql(f"""
                SELECT c.relname, c.relkind, coalesce(t.relname, ''),
                       round((pg_relation_size(c.oid) * {per} / 2^20)::numeric, 1),
                       coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_index i ON i.indexrelid = c.oid
                LEFT JOIN pg_class t ON t.oid = coalesce(i.indrelid, (
                    SELECT x.oid FROM pg_class x WHERE x.reltoastrelid = c.oid))
                LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't')
                  AND pg_relation_size(c.oid) * {per} >= 2^20
                ORDER BY pg_relation_size(c.oid) DESC""", "vouch"))
            if os.environ.get("VOUCH_BENCH_PROFILE") == "rows":
                print(cluster.psql("SELECT * FROM attestations WHERE status = 'verified' LIMIT 1; "
                                   "SELECT * FROM command_results LIMIT 1", "vouch"))
            print("-- widest columns: table|column|avg bytes")
            print(cluster.psql("""
                SELECT tablename, attname, avg_width FROM pg_stats
                WHERE schemaname = 'public' AND avg_width >= 16
                ORDER BY tablename, avg_width DESC""", "vouch"))

        print()
        benchlib.print_table(rows)
        total = sum(cpu.values())
        # The simulator's CPU in the campaign is its whole run; only what it spent on requests
        # counts towards the cores busy.
        ours = total - summary["prepare_cpu_s"]
        print("campaign CPU: " + ", ".join(f"{name} {sec:.1f} s ({sec / total:.0%})"
                                           for name, sec in cpu.items())
              + f"; {ours / wall:.2f} cores busy of {os.cpu_count()} "
              f"(the machine: {machine / wall:.2f}, other processes included)")
        print(f"enrollment: {enroll_cores[0]:.2f} cores busy of {os.cpu_count()} over the whole "
              f"enroll run (the machine: {enroll_cores[1]:.2f})")
        print(f"enrollment: reference = OpenSSL CMS_verify of an Mdm-Signature on one core "
              f"(each device sends two signed messages); {args.concurrency} connections")
        print("database per 100,000 devices: " + ", ".join(
            f"{t} {int(b) * per / 2**20:.0f} MiB" for t, b in tables))
    finally:
        # A run that failed half-way must not leave serve following a log nobody writes.
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


if __name__ == "__main__":
    main()
