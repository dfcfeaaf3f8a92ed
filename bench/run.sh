#!/usr/bin/env bash
# Runs every Vouch benchmark from an optimised build, each against a private PostgreSQL tuned as
# the README recommends (bench/benchlib.py: postgres_tuning). Every figure is printed beside a
# reference measured in the same run (absolute times on shared machines drift; ratios much less).
# At the end: one table (figure, value, reference, ratio, target, met), also written to
# bench/results.md with each benchmark's own output, and the rows as JSON lines to
# bench/results.json.
#
# Usage: bench/run.sh [--quick]
#   full     100,000 devices to enroll, attest (campaign) and push; scheduler fleets of 100,000
#            and 1,000,000; 2,000 devices x 10 commands of round trips, unpinned and pinned (16
#            and 1,000 devices at once); a migrated fleet of 10,000 (about 17 minutes here)
#   --quick  10,000 devices (campaign 5,000); scheduler fleets of 10,000 and 100,000; 500 x 10
#            round trips (pinned: 16 and 500 at once); a migrated fleet of 2,000; shorter CPU
#            benchmarks (a few minutes)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build-bench
seconds=3
devices=100000
fleet=100000
fleets=100000,1000000
rt_devices=2000
rt_wide=1000
migrated=10000
mode=full
case "${1:-}" in
    --quick)
        seconds=1
        devices=10000
        fleet=5000
        fleets=10000,100000
        rt_devices=500
        rt_wide=500
        migrated=2000
        mode=quick
        ;;
    "") ;;
    -h | --help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: bench/run.sh [--quick]" >&2
        exit 2
        ;;
esac
command -v h2load >/dev/null || { echo "bench: h2load missing (apt-get install nghttp2-client)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "bench: chromium missing (apt-get install chromium python3-websocket)" >&2; exit 1; }

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Db_ndebug=true >/dev/null
ninja -C "$build" >/dev/null

out=$(mktemp)
trap 'rm -f "$out"' EXIT
started=$(date +%s)
failures=()
# One benchmark: its title, then its output; a failing one is named at the end, the rest run.
bench() {
    local title=$1
    shift
    echo "== $title"
    "$@" || { echo "!! failed: $title"; failures+=("$title"); }
    echo
}
{
    bench "attestation verification: verdicts/s on one core vs OpenSSL's P-384 verify/s" \
        taskset -c 0 "$build/bench/bench_attest" --seconds "$seconds"
    bench "Mdm-Signature: vouchd's check on one core vs OpenSSL's CMS_verify" \
        taskset -c 0 "$build/bench/bench_signature" --seconds "$seconds"
    bench "ACME issuances: vouchd's CPU per device-attest-01 enrollment on one core vs OpenSSL's P-384 verify x2 + sign" \
        taskset -c 0 "$build/bench/bench_acme" --seconds "$seconds"
    bench "a fleet: $fleet devices enroll, then vouchctl attest --all (push, connect, verify, store)" \
        /usr/bin/python3 "$repo/bench/bench_fleet.py" "$build" --devices "$fleet"
    bench "APNs pushes: vouchd to the stand-in vs h2load to the same stand-in" \
        /usr/bin/python3 "$repo/bench/bench_push.py" "$build" --devices "$devices"
    bench "command round trips: simulated devices vs pgbench -N on the same PostgreSQL" \
        /usr/bin/python3 "$repo/bench/bench_roundtrip.py" "$build" --devices "$rt_devices" \
        --seconds "$((seconds * 3))"
    bench "command round trips, pinned: vouchd + PostgreSQL on CPU 0, devices + pgbench -N on CPU 1" \
        /usr/bin/python3 "$repo/bench/bench_roundtrip.py" "$build" --devices "$rt_devices" \
        --seconds "$((seconds * 3))" --pinned
    bench "command round trips, pinned, $rt_wide devices at once" \
        /usr/bin/python3 "$repo/bench/bench_roundtrip.py" "$build" --devices "$rt_devices" \
        --seconds "$((seconds * 3))" --pinned --concurrency "$rt_wide"
    bench "trust decisions: certificate SHA-256 in, decision out vs pgbench -S on the same PostgreSQL" \
        /usr/bin/python3 "$repo/bench/bench_trust.py" "$build" --devices "$devices" \
        --seconds "$((seconds * 3))"
    bench "scheduler: one tick (a batch of 200 requests) with 1% of the fleet due" \
        /usr/bin/python3 "$repo/bench/bench_scheduler.py" "$build" --sizes "$fleets"
    bench "dashboard: the overview of $devices devices rendered in headless chromium vs the raw GET /v1/fleet" \
        /usr/bin/python3 "$repo/bench/bench_dashboard.py" "$build" --devices "$devices"
    bench "a migrated fleet: $migrated devices through /migration vs pgbench -N, then attested (check-in, push, answer)" \
        /usr/bin/python3 "$repo/bench/bench_migration.py" "$build" --devices "$migrated" \
        --seconds "$((seconds * 3))"
    [ ${#failures[@]} -eq 0 ] || echo "!! ${#failures[@]} benchmark(s) failed: ${failures[*]}"
} 2>&1 | tee "$out"

grep '^{' "$out" >"$repo/bench/results.json"
echo
echo "== summary ($mode run, $(($(date +%s) - started)) s)"
/usr/bin/python3 "$repo/bench/table.py" "$repo/bench/results.json"
{
    echo "# Vouch benchmark results"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
        "$(date -u +%Y-%m-%dT%H:%MZ); \`bench/run.sh${1:+ $1}\` ($mode run)."
    echo "PostgreSQL: $(/usr/bin/python3 -c "import sys; sys.path.insert(0, '$repo/bench');
import benchlib; print(', '.join(f'{k}={v}' for k, v in benchlib.postgres_tuning().items()))")"
    echo
    /usr/bin/python3 "$repo/bench/table.py" "$repo/bench/results.json" --markdown
    echo
    echo "Each benchmark's own output:"
    echo
    echo '```'
    grep -v '^{' "$out"
    echo '```'
} >"$repo/bench/results.md"
! grep -q '^!! ' "$out"
