#!/usr/bin/python3
"""Trust decisions per second (docs/trust.md): certificate SHA-256 in, decision out, beside
pgbench -S on the same PostgreSQL.

Starts the tuned private PostgreSQL (bench/benchlib.py) and vouchd with a policy, seeds N enrolled
devices straight into the tables (devices, identity_certs, enrollments, attestations: a verified,
fresh verdict each, as an import would), makes a token of scope trust, then:
  figure     h2load (HTTP/1.1, keep-alive, K clients) POSTs {"certificate_sha256": ...} of a
             seeded device to /v1/trust/bench for S seconds: each request is one indexed
             statement and a decision (an allow, checked first); also vouchd's CPU per decision
             (/proc/PID/stat before and after) and the PostgreSQL cluster's;
  reference  `pgbench -S -M prepared` (a primary-key SELECT per transaction, prepared) with the
             same K clients on the same PostgreSQL in the same run: the ceiling of one indexed
             read per round trip here.
Target: at least 0.5 of the reference. Prints a table and JSON rows.
Usage: bench_trust.py BUILD_DIR [--devices N] [--concurrency K] [--seconds S]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile

import benchlib
from benchlib import row

POLICY = "bench"


def seed(cluster, dbname, n):
    """n enrolled iPhones on 17.4, each with its identity certificate (SHA-256 = sha256(udid))
    and a verified, fresh verdict that Apple made 5 minutes ago and that lasts 30 days."""
    cluster.psql(f"""
        INSERT INTO devices (udid, serial_number, model, product_name, os_version, build_version,
                             last_seen_at)
          SELECT 'BENCH-' || lpad(i::text, 7, '0'), 'B' || lpad(i::text, 11, '0'), 'MTUV3LL/A',
                 'iPhone15,2', '17.4', '21E219', vouch_now()
          FROM generate_series(1, {n}) i;
        INSERT INTO identity_certs (sha256, udid, not_after)
          SELECT sha256(udid::bytea), udid, vouch_now() + interval '365 days'
          FROM devices WHERE udid LIKE 'BENCH-%';
        INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                 identity_cert_sha256, authenticated_at, token_updated_at)
          SELECT udid, 'com.apple.mgmt.External.bench', sha256(('t' || udid)::bytea),
                 'magic-' || udid, true, sha256(udid::bytea), vouch_now(), vouch_now()
          FROM devices WHERE udid LIKE 'BENCH-%';
        WITH a AS (
          INSERT INTO attestations (udid, command_uuid, request_reason, requested_at,
                                    received_at, status, freshness, generated_at, expires_at)
            SELECT udid, gen_random_uuid()::text, 'enrollment', vouch_now(), vouch_now(),
                   'verified', 'fresh', vouch_now() - interval '5 minutes',
                   vouch_now() + interval '365 days'
            FROM devices WHERE udid LIKE 'BENCH-%'
            RETURNING id, udid, generated_at)
        UPDATE devices d SET attestation_id = a.id, attestation_status = 'verified',
                             attestation_expires_at = a.generated_at + interval '30 days'
          FROM a WHERE a.udid = d.udid;
        VACUUM ANALYZE devices, identity_certs, enrollments, attestations;""", dbname)


def decisions(vouchd):
    """vouch_trust_decisions_total of the bench policy, allow + deny."""
    status, text = benchlib.http(vouchd.url + "/metrics")
    if status != 200:
        raise SystemExit(f"GET /metrics answered {status}")
    total = 0.0
    for m in re.finditer(rf'^vouch_trust_decisions_total\{{policy="{POLICY}",decision="\w+"\}} '
                         r"([\d.e+]+)$", text.decode(), re.M):
        total += float(m.group(1))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    h2load = shutil.which("h2load")
    if h2load is None:
        raise SystemExit("h2load missing (apt-get install nghttp2-client)")
    build, n, k = args.build, args.devices, args.concurrency
    tmp = tempfile.mkdtemp(prefix="vouch-bench-trust-")
    cluster = benchlib.tuned_cluster()
    vouchd = None
    try:
        cluster.createdb("vouch")
        cluster.createdb("pgbench")
        simdir = os.path.join(tmp, "sim")
        benchlib.run_sim(build, "init-ca", "--dir", simdir)
        vouchd = benchlib.Vouchd(build, tmp, {
            "database_url": cluster.conninfo("vouch"), "identity_ca": f"{simdir}/ca.pem",
            "db_pool_size": str(k), "scheduler_batch": "0",
            f"policy.{POLICY}.require": "verified",
            f"policy.{POLICY}.min_os_version.ios": "17.0"})
        seed(cluster, "vouch", n)
        status, text = vouchd.admin("POST", "/v1/tokens",
                                    json.dumps({"name": "bench", "scope": "trust"}).encode(),
                                    content_type="application/json")
        if status not in (200, 201):
            raise SystemExit(f"POST /v1/tokens answered {status}: {text[:300]!r}")
        token = json.loads(text)["token"]

        # One seeded device from the middle of the fleet; its answer must be an allow.
        udid = f"BENCH-{n // 2:07d}"
        sha = cluster.psql(f"SELECT encode(sha256('{udid}'::bytea), 'hex')", "vouch").strip()
        body = os.path.join(tmp, "question.json")
        with open(body, "w") as f:
            json.dump({"certificate_sha256": sha}, f)
        url = f"{vouchd.url}/v1/trust/{POLICY}"
        status, answer = benchlib.http(url, token, "POST", open(body, "rb").read(),
                                       content_type="application/json")
        answer = json.loads(answer) if status == 200 else answer
        if status != 200 or answer.get("decision") != "allow":
            raise SystemExit(f"the seeded device is not allowed: {status} {answer!r}")

        before = decisions(vouchd)
        cpu0 = vouchd.cpu_seconds()
        pg0 = benchlib.postgres_cpu_seconds(cluster)
        r = subprocess.run([h2load, "--h1", "-c", str(k), "-t", "2", "-D", str(args.seconds),
                            "--warm-up-time", "1", "-d", body,
                            "-H", f"Authorization: Bearer {token}",
                            "-H", "Content-Type: application/json", url],
                           capture_output=True, text=True)
        cpu = vouchd.cpu_seconds() - cpu0
        pg_cpu = benchlib.postgres_cpu_seconds(cluster) - pg0
        made = decisions(vouchd) - before
        if r.returncode != 0:
            raise SystemExit(f"h2load failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", r.stdout)
        done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored", r.stdout)
        codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
        if not (m and done and codes):
            raise SystemExit(f"cannot read h2load's output:\n{r.stdout}")
        rate = float(m.group(1))
        if int(done.group(2)) or int(done.group(3)) or sum(int(x) for x in codes.groups()[1:]):
            raise SystemExit(f"h2load saw failures or non-2xx answers:\n{r.stdout}")
        lat = re.search(r"time for request:\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)",
                        r.stdout)

        pgbench = os.path.join(benchlib.pg.PG_BIN, "pgbench")
        subprocess.run([pgbench, "-q", "-i", "-s", "10", "-d", cluster.conninfo("pgbench")],
                       check=True, capture_output=True)
        p = subprocess.run([pgbench, "-S", "-M", "prepared", "-c", str(k), "-j", "2",
                            "-T", str(args.seconds),
                            "-d", cluster.conninfo("pgbench")], capture_output=True, text=True,
                           check=True)
        tps = float(re.search(r"tps = ([\d.]+)", p.stdout).group(1))

        per_decision_us = cpu / made * 1e6 if made else 0.0
        pg_per_decision_us = pg_cpu / made * 1e6 if made else 0.0
        rows = [
            row("trust", "trust decisions (certificate SHA-256 in, decision out)", rate, "/s",
                tps, ">=0.50", devices=n, connections=k, seconds=args.seconds,
                decisions=int(made),
                reference_is=f"pgbench -S -M prepared -c {k}, same PostgreSQL"),
            row("trust", "vouchd CPU per trust decision", per_decision_us, "us"),
            row("trust", "PostgreSQL CPU per trust decision", pg_per_decision_us, "us"),
        ]
        benchlib.print_table(rows)
        if lat:
            print(f"h2load time for request: min {lat.group(1)}{lat.group(2)}, "
                  f"max {lat.group(3)}{lat.group(4)}, mean {lat.group(5)}{lat.group(6)}")
        print(f"reference: pgbench -S -M prepared -c {k} -j 2 on the same PostgreSQL; "
              f"{n} seeded devices, h2load --h1 -c {k} for {args.seconds} s asking about one "
              f"of them; "
              f"{int(made)} decisions, vouchd {cpu:.2f} CPU s, PostgreSQL {pg_cpu:.2f} CPU s")
    finally:
        if vouchd is not None:
            vouchd.stop()
        cluster.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
