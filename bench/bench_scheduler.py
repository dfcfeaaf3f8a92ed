#!/usr/bin/python3
"""Scheduler ticks against fleets of 100,000 and 1,000,000 enrolled devices, 1% of them due.

Starts a private PostgreSQL, applies vouchd's migrations (`vouchd migrate`), inserts the fleet
(devices and enrollments; every device has a planned attestation: 1% due now, the rest spread
over the next 30 days, and a light query planned within a day), then runs, in one session:
  figure     vouch_scheduler_tick, the function every instance calls, with a batch of requests
             (scheduler_batch, default 200), until every due device is claimed: the time of
             each tick (median and worst), and the rows the claim reads (EXPLAIN ANALYZE of
             the claim query, on the index of planned work);
  reference  the same question answered without that index (a scan of the devices table):
             what a tick would cost if finding due work read the fleet.
Prints a table per fleet size, how the tick time changes from the smaller fleet to the larger,
and a JSON line per size. Usage: bench_scheduler.py BUILD_DIR [--sizes 100000,1000000]
[--batch 500]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import benchlib
from benchlib import row

TARGET_MS = 100.0


def migrate(build, cluster, tmp):
    conf = os.path.join(tmp, "vouch.conf")
    with open(conf, "w") as f:
        f.write(f"database_url = {cluster.conninfo('vouch')}\nlog_level = warn\n")
    subprocess.run([os.path.join(build, "server", "vouchd"), "migrate", "--config", conf],
                   check=True, stdout=subprocess.DEVNULL)


def make_fleet(cluster, size):
    """size enrolled devices; 1% due now, the rest planned within 30 days."""
    cluster.psql(f"""
        TRUNCATE devices, enrollments, identity_certs, commands, command_queue,
                 command_results, attestation_requests, attestations, events CASCADE;
        SELECT vouch_set_policy(interval '30 days', interval '7 days', interval '14 days',
                                interval '1 day', 100000000, 3, interval '1 hour');
        INSERT INTO devices (udid, os_version, build_version, attestation_status,
                             attestation_due_at, attestation_due_reason, info_due_at)
          SELECT 'DEV-' || lpad(i::text, 8, '0'), '17.4', '21E219', 'verified',
                 CASE WHEN i % 100 = 0 THEN vouch_now() - random() * interval '1 hour'
                      ELSE vouch_now() + interval '1 hour' + random() * interval '30 days'
                 END,
                 'random', vouch_now() + interval '1 minute' + random() * interval '1 day'
          FROM generate_series(1, {size}) i;
        INSERT INTO enrollments (udid, topic, push_token, push_magic, enabled,
                                 identity_cert_sha256, authenticated_at, token_updated_at)
          SELECT udid, 'com.apple.mgmt.External.bench', sha256(udid::bytea), 'magic', true,
                 sha256(udid::bytea), vouch_now(), vouch_now() FROM devices;
        VACUUM ANALYZE;""", "vouch", timeout=1800)


def run_ticks(cluster, batch):
    """Ticks until nothing is due; returns (tick milliseconds, devices claimed per tick)."""
    out = cluster.psql(f"""
        CREATE TEMP TABLE ticks (ms float8, claimed integer);
        DO $$
        DECLARE
            uuids text[];
            nonces bytea[];
            started timestamptz;
            claimed integer;
        BEGIN
            LOOP
                SELECT array_agg(gen_random_uuid()::text),
                       array_agg(sha256(gen_random_uuid()::text::bytea))
                INTO uuids, nonces FROM generate_series(1, {batch});
                started := clock_timestamp();
                SELECT count(*) INTO claimed
                FROM vouch_scheduler_tick(uuids, nonces, NULL, NULL, 0)
                WHERE kind = 'attestation';
                COMMIT;  -- each tick is its own transaction, as in vouchd: timed with it
                INSERT INTO ticks VALUES (
                    extract(epoch FROM clock_timestamp() - started) * 1000, claimed);
                EXIT WHEN claimed < {batch};
            END LOOP;
        END $$;
        SELECT ms, claimed FROM ticks;""", "vouch", timeout=1800)
    rows = [line.split("|") for line in out.split()]
    return [float(ms) for ms, _ in rows], [int(c) for _, c in rows]


def explain_claim(cluster, batch, scan):
    """(rows read, milliseconds) of the claim query, with its index or (scan) without."""
    settings = ("SET enable_indexscan = off; SET enable_bitmapscan = off; "
                "SET enable_indexonlyscan = off;") if scan else ""
    out = cluster.psql(f"""
        {settings}
        UPDATE devices SET attestation_due_at = vouch_now() - interval '1 minute',
               attestation_due_reason = 'random'
          WHERE udid IN (SELECT udid FROM devices WHERE attestation_due_at IS NULL LIMIT {batch});
        EXPLAIN (ANALYZE, FORMAT JSON)
        SELECT d.udid FROM devices d WHERE d.attestation_due_at <= vouch_now()
          ORDER BY d.attestation_due_at LIMIT {batch} FOR UPDATE SKIP LOCKED;""", "vouch")
    plan = json.loads(out[out.index("["):])[0]
    read = 0

    def walk(node):
        nonlocal read
        if node.get("Node Type") in ("Seq Scan", "Index Scan", "Index Only Scan",
                                     "Bitmap Heap Scan"):
            read += int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
        for child in node.get("Plans", []):
            walk(child)
    walk(plan["Plan"])
    return read, plan["Execution Time"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = tempfile.mkdtemp(prefix="vouch-bench-scheduler-")
    cluster = benchlib.tuned_cluster()
    results = []
    try:
        cluster.createdb("vouch")
        migrate(args.build, cluster, tmp)
        print(f"{'figure':<44} {'value':>12} {'reference':>12} {'ratio':>7} {'target':>7}")
        for size in sizes:
            make_fleet(cluster, size)
            due = size // 100
            ms, claimed = run_ticks(cluster, args.batch)
            if sum(claimed) != due:
                sys.exit(f"{size} devices: the ticks claimed {sum(claimed)}, {due} were due")
            full = [m for m, c in zip(ms, claimed) if c == args.batch] or ms
            median, worst = statistics.median(full), max(full)
            read, claim_ms = explain_claim(cluster, args.batch, scan=False)
            scan_read, scan_ms = explain_claim(cluster, args.batch, scan=True)
            label = f"{size:,} devices, {due:,} due"
            print(f"{'tick of ' + str(args.batch) + ' (median), ' + label:<44} "
                  f"{median:>9.1f} ms {'':>12} {median / TARGET_MS:>7.2f} {'<1.00':>7}")
            print(f"{'tick, worst of ' + str(len(ms)):<44} {worst:>9.1f} ms")
            print(f"{'tick time per device claimed':<44} {median / args.batch:>9.3f} ms")
            print(f"{'claim query: rows read (index vs scan)':<44} {read:>12,} {scan_read:>12,} "
                  f"{read / max(scan_read, 1):>7.4f}")
            print(f"{'claim query: time (index vs scan)':<44} {claim_ms:>9.1f} ms "
                  f"{scan_ms:>9.1f} ms {claim_ms / max(scan_ms, 1e-9):>7.3f}")
            results.append({"devices": size, "due": due, "ticks": len(ms),
                            "median_ms": median, "worst_ms": worst, "claim_ms": claim_ms,
                            "rows_read": read, "rows_read_scan": scan_read,
                            "claim_ms_scan": scan_ms})
        if len(results) >= 2:
            a, b = results[0], results[-1]
            print(f"tick time from {a['devices']:,} to {b['devices']:,} devices "
                  f"({b['devices'] // a['devices']}x the fleet, {b['due'] // max(a['due'], 1)}x "
                  f"the due devices, same batch): {a['median_ms']:.1f} ms -> "
                  f"{b['median_ms']:.1f} ms ({b['median_ms'] / a['median_ms']:.2f}x); "
                  f"ticks {a['ticks']} -> {b['ticks']}")
        print("reference: the claim without the index of planned work (a scan of devices), "
              "same batch, same session")
        for r in results:
            size = f"{r['devices']:,}"
            row("scheduler", f"scheduler tick of {args.batch} (median), {size} devices",
                r["median_ms"], "ms", None, f"<{TARGET_MS:.0f} ms", devices=r["devices"],
                due=r["due"], batch=args.batch, ticks=r["ticks"],
                worst_ms=round(r["worst_ms"], 2))
            row("scheduler", f"claim of {args.batch}, {size} devices: index vs scan",
                r["claim_ms"], "ms", r["claim_ms_scan"], None, rows_read=r["rows_read"],
                rows_read_scan=r["rows_read_scan"])
    finally:
        cluster.cleanup()


if __name__ == "__main__":
    main()
