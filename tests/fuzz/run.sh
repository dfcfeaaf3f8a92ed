#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c: one per parser of untrusted input) with
# AddressSanitizer and UndefinedBehaviorSanitizer, each from its seed corpus, and prints per
# target the executions, the coverage reached and the verdict. A crash, a leak, a sanitizer
# report or a timeout fails the target; its input is kept in ARTIFACTS/<target>/.
#
# Usage: tests/fuzz/run.sh [--seconds S | --minutes N] [--jobs J] [--keep-corpus] [TARGET...]
#   --seconds S     time per target (default 30: what tests/run.sh gives each in CI)
#   --minutes N     the same in minutes, for long runs in a session
#   --jobs J        targets run at once (default: the number of cores)
#   --keep-corpus   add what the run found to tests/fuzz/corpus/<target> (merged, minimal);
#                   without it the seeds are copied and the repository is left untouched
#   TARGET          json, mdm_message, command, config, identity, attest, jws, attobj, policy,
#                   profile, plist_json, pushcert, apns, p384 (default all)
# Ends with one line "fuzz: N passed, N failed". Builds into build-fuzz/ (clang) when needed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${VOUCH_FUZZ_BUILD_DIR:-$repo/build-fuzz}
seconds=30
jobs=$(nproc)
keep=false
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --minutes) seconds=$(($2 * 60)); shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --keep-corpus) keep=true; shift ;;
        -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "tests/fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(json mdm_message command config identity attest jws attobj policy profile plist_json pushcert apns p384)

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        >/dev/null
fi
ninja -C "$build" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") >/dev/null

work=$(mktemp -d /tmp/vouch-fuzz-XXXXXX)
artifacts=${VOUCH_FUZZ_ARTIFACTS:-$repo/tests/.run/fuzz}
# fuzz_identity's trust store, whatever directory this script is run from.
export VOUCH_FUZZ_CA=${VOUCH_FUZZ_CA:-$repo/server/attestation/certs/apple-enterprise-attestation-root-ca.pem}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One target: fuzz a copy of its seeds for $seconds; the last status line says what it reached.
fuzz_one() {
    local name=$1 corpus=$work/$1 log=$work/$1.log
    mkdir -p "$corpus" "$artifacts/$name"
    cp -r "$repo/tests/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
    local rc=0
    "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/$name/" \
        "$corpus" >"$log" 2>&1 || rc=$?
    local execs cov ft
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        printf 'fuzz_%-12s ok    %10s execs  cov %5s  ft %6s  corpus %5s\n' "$name" "${execs:-?}" \
            "${cov:-?}" "${ft:-?}" "$(ls "$corpus" | wc -l)"
        if $keep; then
            "$build/tests/fuzz/fuzz_$name" -merge=1 "$repo/tests/fuzz/corpus/$name" "$corpus" \
                >/dev/null 2>&1
        fi
    else
        printf 'fuzz_%-12s FAIL  (exit %d) after %s execs; input in %s\n' "$name" "$rc" \
            "${execs:-?}" "$artifacts/$name/"
        grep -E 'ERROR|SUMMARY|runtime error|deadly signal|Timeout|out-of-memory' "$log" |
            head -10 | sed 's/^/    /'
        cp "$log" "$artifacts/$name/fuzz.log"
        return 1
    fi
}

passed=0
failed=0
running=0
for name in "${targets[@]}"; do
    { rc=0; fuzz_one "$name" >"$work/$name.result" || rc=$?; echo "$rc" >"$work/$name.status"; } &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
for name in "${targets[@]}"; do
    cat "$work/$name.result"
    if [ "$(cat "$work/$name.status" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
rm -rf "$work"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
