#!/usr/bin/env bash
# Runs Vouch's whole test suite on a Debian 12 machine, from nothing:
#   installs the packages it needs (as root, with apt-get), builds with warnings as errors,
#   runs the cmocka unit tests, every fuzz target for a while (tests/fuzz/run.sh, ASan + UBSan;
#   VOUCH_FUZZ_SECONDS each, default 20), the integration suites (each class starts its own
#   vouchd; VOUCH_TEST_JOBS workers at once, default 4, each with its own PostgreSQL), then the
#   unit and integration tests again from an ASan + UBSan build (every program the tests start
#   is sanitized; a report fails the class that ran it), and some integration suites with vouchd
#   under valgrind; ends with one line "N passed, N failed". Exits non-zero on any failure.
# Usage: tests/run.sh [integration test filters...]   (with filters: only those integration
#        tests after the unit tests: no sanitizer build, fuzzing or valgrind pass)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
build=${VOUCH_BUILD_DIR:-$repo/build}

packages=(meson ninja-build pkg-config gcc libevent-dev libcurl4-openssl-dev libnghttp2-dev
          libssl-dev libplist-dev libpq-dev libjansson-dev libcmocka-dev postgresql
          postgresql-client openssl python3 python3-cryptography python3-h2 python3-jsonschema
          libplist-utils curl nghttp2-client scep clang libclang-rt-14-dev valgrind
          libcbor-dev python3-acme nginx-light python3-yaml prometheus
          build-essential debhelper dpkg-dev help2man lintian man-db systemd chromium
          python3-websocket)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/run.sh: run as root (or install: ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" --werror -Dtests=enabled >/dev/null
fi
ninja -C "$build" >/dev/null

passed=0
failed=0
# The integration tests that run once more with vouchd under valgrind: every device and admin
# path, the hostile input, the connection guard, pushes and web-hooks with every failure, faults,
# the ACME server.
valgrind_tests=(test_protocol test_abuse test_limits test_admin test_identity test_attestation
                test_push test_webhook test_faults test_acme)

# The cmocka binaries of a build directory; a sanitizer report makes the binary exit non-zero.
run_unit_tests() {
    local dir=$1 t out rc p f
    for t in "$dir"/tests/unit/test_*; do
        [ -f "$t" ] && [ -x "$t" ] || continue
        out=$(cd "$repo" && "$t" 2>&1) && rc=0 || rc=$?
        p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
        p=${p:-0}
        f=${f:-0}
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1 # crashed before cmocka could count, or a sanitizer found something
            p=0
        fi
        echo "$(basename "$t"): $p passed, $f failed"
        [ "$f" -eq 0 ] || { printf '%s\n' "$out" |
            grep -E '^\[  (FAILED|  ERROR)|error|Failure|Sanitizer|SUMMARY' | head -20 || true; }
        passed=$((passed + p))
        failed=$((failed + f))
    done
}

echo "== unit tests"
run_unit_tests "$build"

# One house rule: a command that exits 0 when the rule holds (docs/hacking.md).
run_house_rule() {
    local name=$1
    shift
    if "$@"; then
        echo "$name: 1 passed, 0 failed"
        passed=$((passed + 1))
    else
        echo "$name: 0 passed, 1 failed"
        failed=$((failed + 1))
    fi
}

echo "== house rules"
run_house_rule check-banned tests/check-banned.sh
run_house_rule check-self-contained tests/check-self-contained.py
run_house_rule check-self-contained-finds tests/check-self-contained.py --self-test
run_house_rule check-docs tests/check-docs.py "$build/server/vouchd"
run_house_rule check-packed-keys tests/check-packed-keys.py
run_house_rule check-packed-keys-finds tests/check-packed-keys.py --self-test

# The meson suites of the test tools (apns stand-in, simulator, stand-in Apple PKI) in a
# build directory.
run_tool_tests() {
    local dir=$1 meson_out p f t
    meson_out=$(meson test -C "$dir" --suite apns --suite sim --suite lib --print-errorlogs 2>&1) ||
        true
    printf '%s\n' "$meson_out" | grep -E '^ *[0-9]+/[0-9]+ ' || true
    p=$(printf '%s\n' "$meson_out" | sed -n 's/^Ok: *\([0-9]*\).*/\1/p' | tail -1)
    f=$(printf '%s\n' "$meson_out" | sed -n 's/^Fail: *\([0-9]*\).*/\1/p' | tail -1)
    t=$(printf '%s\n' "$meson_out" | sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' | tail -1)
    if [ -z "$p" ]; then
        echo "meson test did not run:"
        printf '%s\n' "$meson_out" | tail -20
        f=1
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${t:-0}))
}

echo "== tool tests (meson suites: apns stand-in, simulator, stand-in Apple PKI)"
run_tool_tests "$build"

# Adds the counts of the last "WHAT: N passed, N failed" line of a runner's output FILE; a runner
# that ended without that line counts as one failure.
add_counts() {
    local what=$1 file=$2 line
    line=$(grep -E "^$what: [0-9]+ passed, [0-9]+ failed" "$file" | tail -1 || true)
    if [ -z "$line" ]; then
        echo "$what: the runner ended without its summary line"
        tail -20 "$file"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(echo "$line" | sed -E 's/^[^:]*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
}
out_file=$(mktemp)
trap 'rm -f "$out_file"' EXIT

if [ $# -eq 0 ]; then
    fuzz_seconds=${VOUCH_FUZZ_SECONDS:-20}
    echo "== fuzzing: every parser of untrusted input, ${fuzz_seconds} s each (ASan + UBSan)"
    tests/fuzz/run.sh --seconds "$fuzz_seconds" >"$out_file" 2>&1 || true
    cat "$out_file"
    add_counts fuzz "$out_file"
fi

jobs=${VOUCH_TEST_JOBS:-4}
echo "== integration tests"
VOUCH_BUILD_DIR=$build /usr/bin/python3 tests/integration/run.py --jobs "$jobs" "$@" 2>&1 |
    tee "$out_file" || true
add_counts integration "$out_file"

if [ $# -eq 0 ]; then
    # The same tests from an ASan + UBSan build: vouchd, vouchctl, the simulator and the
    # stand-ins all sanitized; their reports go to files the harness checks after each class.
    echo "== unit and integration tests, ASan + UBSan build ($build-asan)"
    if [ ! -f "$build-asan/build.ninja" ]; then
        meson setup "$build-asan" --werror -Dtests=enabled -Db_sanitize=address,undefined \
            -Db_lundef=false >/dev/null
    fi
    ninja -C "$build-asan" >/dev/null
    export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run_unit_tests "$build-asan"
    run_tool_tests "$build-asan"
    unset ASAN_OPTIONS UBSAN_OPTIONS
    VOUCH_BUILD_DIR=$build-asan VOUCH_TEST_SANITIZERS=1 \
        /usr/bin/python3 tests/integration/run.py --jobs "$jobs" >"$out_file" 2>&1 || true
    grep -Ev '^PASS ' "$out_file" || true
    add_counts integration "$out_file"

    # One integration run with vouchd under valgrind: no memory error, no definite or indirect
    # leak (a class whose vouchd exits with valgrind's error status fails).
    echo "== integration tests with vouchd under valgrind: ${valgrind_tests[*]}"
    VOUCH_BUILD_DIR=$build VOUCH_TEST_VALGRIND=1 /usr/bin/python3 tests/integration/run.py \
        --jobs "$jobs" "${valgrind_tests[@]}" >"$out_file" 2>&1 || true
    grep -Ev '^PASS ' "$out_file" || true
    add_counts integration "$out_file"
fi
# The Debian package: built from a copy of the tree, installed, checked, purged (tests/package.sh).
if [ $# -eq 0 ]; then
    echo "== the Debian package"
    tests/package.sh 2>&1 | tee "$out_file" || true
    add_counts package "$out_file"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
