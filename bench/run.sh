#!/usr/bin/env bash
# Runs Vouch's benchmarks from an optimised build and prints each figure beside its reference,
# measured in the same run (absolute times on shared machines drift; ratios much less).
# Usage: bench/run.sh [--quick]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$repo/build-bench
seconds=3
[ "${1:-}" = "--quick" ] && seconds=1

[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release -Db_ndebug=true >/dev/null
ninja -C "$build" bench/bench_attest >/dev/null

echo "== attestation verification (issue 3): verdicts/s on one core vs OpenSSL P-384 verify/s"
taskset -c 0 "$build/bench/bench_attest" --seconds "$seconds" | tee "$repo/bench/results-attest.txt"
