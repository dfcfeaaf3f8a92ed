#!/usr/bin/env bash
# Runs Vouch's benchmarks from an optimised build. Every figure is printed beside a reference
# measured in the same run (absolute times on shared machines drift; ratios much less), and the
# table is written to bench/results.md with the JSON lines in bench/results.json.
# Usage: bench/run.sh [--quick]     (--quick: shorter runs, 10,000 devices instead of 100,000
#                                   to push, fleets of 10,000 and 100,000 instead of 100,000 and
#                                   1,000,000 for the scheduler)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build-bench
seconds=3
devices=100000
fleets=100000,1000000
rt_devices=2000
if [ "${1:-}" = "--quick" ]; then
    seconds=1
    devices=10000
    fleets=10000,100000
    rt_devices=500
fi
command -v h2load >/dev/null || { echo "bench: h2load missing (apt-get install nghttp2-client)" >&2; exit 1; }

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Db_ndebug=true >/dev/null
ninja -C "$build" >/dev/null

out=$(mktemp)
{
    echo "== attestation verification: verdicts/s on one core vs OpenSSL's P-384 verify/s"
    taskset -c 0 "$build/bench/bench_attest" --seconds "$seconds"
    echo
    echo "== APNs pushes: vouchd to the stand-in vs h2load to the same stand-in"
    /usr/bin/python3 "$repo/bench/bench_push.py" "$build" --devices "$devices"
    echo
    echo "== command round trips: simulated devices vs pgbench -N on the same PostgreSQL"
    /usr/bin/python3 "$repo/bench/bench_roundtrip.py" "$build" --devices "$rt_devices" \
        --seconds "$((seconds * 3))"
    echo
    echo "== scheduler: one tick (a batch of 200 requests) with 1% of the fleet due"
    /usr/bin/python3 "$repo/bench/bench_scheduler.py" "$build" --sizes "$fleets"
} | tee "$out"
{
    echo "# Vouch benchmark results"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    grep -v '^{' "$out"
    echo '```'
} >"$repo/bench/results.md"
grep '^{' "$out" >"$repo/bench/results.json"
rm -f "$out"
