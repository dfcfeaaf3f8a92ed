#!/usr/bin/python3
"""Run the integration tests.

    /usr/bin/python3 tests/integration/run.py [--list] [--jobs N] [FILTER...]

FILTER selects tests whose id (module.Class.test_name) contains it, e.g. `test_abuse`,
`NotNowTest`, `test_protocol.ProtocolCycleTest.test_full_cycle`. Needs the built programs (see
harness.py: VOUCH_BUILD_DIR, default <repo>/build), PostgreSQL 15 in /usr/lib/postgresql/15/bin
and python3-cryptography (Debian's /usr/bin/python3). With CI=true a test that cannot reach what it
needs fails instead of being skipped.

--jobs N (or VOUCH_TEST_JOBS=N) runs the test classes in N worker processes, each with its own
PostgreSQL and a disjoint set of TCP ports (VOUCH_TEST_PORT_SLOT); a class's lines are printed
together when it ends. Most tests wait on something (timers, retries, a sweep), so two workers
on two cores take little more than half the time.

Prints one line per test and ends with exactly one line `integration: N passed, N failed`;
exit status 0 when nothing failed, 1 otherwise.
"""

import json
import os
import selectors
import subprocess
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def _final(passed, failed, ran_something=True):
    print(f"integration: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and ran_something else 1


try:
    import cryptography.hazmat.primitives.serialization.pkcs7  # noqa: F401
except ImportError:
    print(f"{sys.executable} has no 'cryptography' module: run the tests with Debian's "
          "/usr/bin/python3 (apt-get install python3-cryptography)", file=sys.stderr)
    sys.exit(_final(0, 1))

sys.path.insert(0, HERE)
import harness  # noqa: E402

sys.path.insert(0, os.path.join(harness.REPO, "tests", "lib"))
import cleanup  # noqa: E402


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class Result(unittest.TestResult):
    """Prints each test as it ends; counts a class whose setUpClass failed as all its tests."""

    def __init__(self, class_sizes):
        super().__init__()
        self.class_sizes = class_sizes
        self.passed = 0
        self.failed = 0
        self.n_skipped = 0
        self.failed_names = []
        self._start = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._start = time.monotonic()

    def _elapsed(self):
        return f"{time.monotonic() - self._start:.1f}s"

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        print(f"PASS  {test.id()} ({self._elapsed()})", flush=True)

    def _holder_size(self, test):
        """Tests of the class behind a setUpClass/tearDownClass error holder."""
        desc = getattr(test, "description", "")
        if desc.startswith("setUpClass (") and desc.endswith(")"):
            return self.class_sizes.get(desc[len("setUpClass ("):-1], 1)
        return 1

    def _report_failure(self, test, err, kind):
        holder = not isinstance(test, unittest.TestCase)
        n = self._holder_size(test) if holder else 1
        self.failed += n
        name = test.description if holder else test.id()
        self.failed_names.append(name + (f" ({n} tests)" if n > 1 else ""))
        print(f"{kind}  {name}" + ("" if holder else f" ({self._elapsed()})"), flush=True)
        text = "".join(traceback.format_exception(*err))
        print("      " + text.rstrip().replace("\n", "\n      "), flush=True)
        vouchd = getattr(test, "vouchd", None)
        if vouchd is not None and not holder and hasattr(test, "vouchd_log_since_test"):
            print("      " + test.vouchd_log_since_test(30).replace("\n", "\n      "),
                  flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report_failure(test, err, "FAIL")

    def addError(self, test, err):
        super().addError(test, err)
        self._report_failure(test, err, "ERROR")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        n = 1 if isinstance(test, unittest.TestCase) else self._holder_size(test)
        name = test.id() if isinstance(test, unittest.TestCase) else test.description
        if harness.IN_CI:
            # CI must not skip: count it as failed.
            self.failed += n
            self.failed_names.append(f"{name} (skipped under CI: {reason})")
            print(f"FAIL  {name}: skipped under CI=true: {reason}", flush=True)
        else:
            self.n_skipped += n
            print(f"SKIP  {name}: {reason}", flush=True)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed += 1
        self.failed_names.append(test.id() + " (unexpected success)")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._report_failure(subtest, err, "FAIL")


def class_key(test):
    return f"{type(test).__module__}.{type(test).__qualname__}"


def load_all():
    """(every test, [(module, import error text)])."""
    loader = unittest.TestLoader()
    all_tests = []
    load_errors = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        modname = fname[:-3]
        try:
            module = __import__(modname)
        except Exception:
            load_errors.append((modname, traceback.format_exc()))
            continue
        all_tests.extend(iter_tests(loader.loadTestsFromModule(module)))
    return all_tests, load_errors


def class_sizes_of(tests):
    sizes = {}
    for t in tests:
        sizes[class_key(t)] = sizes.get(class_key(t), 0) + 1
    return sizes


def sanitizer_leftovers(result):
    """Sanitizer reports no class claimed (programs run outside a test class) are failures."""
    if harness._suite is None:
        return
    for text in harness._suite.new_sanitizer_reports():
        result.failed += 1
        result.failed_names.append("sanitizer report outside any test class")
        print("FAIL  sanitizer report outside any test class\n      "
              + text.replace("\n", "\n      "), flush=True)


# -- parallel runs: a parent hands out test classes to worker processes ---------------------------
DONE = "@@class-done "


def worker_main():
    """Reads lines of test ids (one class each) from stdin, runs them, and after each prints
    DONE + JSON {passed, failed, skipped, failed_names}; at the end of stdin cleans up."""
    all_tests, _errors = load_all()
    by_id = {t.id(): t for t in all_tests}
    for line in sys.stdin:
        tests = [by_id[i] for i in line.split()]
        result = Result(class_sizes_of(tests))
        unittest.TestSuite(tests).run(result)
        print(DONE + json.dumps({"passed": result.passed, "failed": result.failed,
                                 "skipped": result.n_skipped,
                                 "failed_names": result.failed_names}), flush=True)
    result = Result({})
    try:
        sanitizer_leftovers(result)
    finally:
        cleanup._run_all()
    print(DONE + json.dumps({"passed": 0, "failed": result.failed, "skipped": 0,
                             "failed_names": result.failed_names}), flush=True)
    return 0


class Worker:
    def __init__(self, slot, slots):
        env = dict(os.environ, VOUCH_TEST_PORT_SLOT=f"{slot}/{slots}")
        self.slot = slot
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        self.fd = self.proc.stdout.fileno()
        self.partial = b""  # read, not yet a whole line
        self.group = None  # the test ids it runs now
        self.lines = []
        self.closing = False

    def read_lines(self):
        """The whole lines that arrived ([] for none yet), or None once the worker is gone."""
        data = os.read(self.fd, 65536)
        if not data:
            return None
        self.partial += data
        *lines, self.partial = self.partial.split(b"\n")
        return [line.decode(errors="replace") + "\n" for line in lines]

    def give(self, group):
        self.group = group
        self.lines = []
        try:
            self.proc.stdin.write(" ".join(group) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the worker died: its end of output says so, and group counts as failed

    def finish(self):
        self.closing = True
        self.group = None
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass


def parallel_main(groups, jobs, totals):
    """Runs groups (lists of test ids, one per class) on jobs workers; adds to totals."""
    pending = list(groups)
    sel = selectors.DefaultSelector()
    workers = [Worker(i, jobs) for i in range(min(jobs, len(groups)))]
    for w in workers:
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        if pending:
            w.give(pending.pop(0))
        else:
            w.finish()
    live = len(workers)
    while live:
        for key, _ in sel.select():
            w = key.data
            lines = w.read_lines()
            if lines is None:  # the worker is gone
                sel.unregister(w.proc.stdout)
                w.proc.wait()
                live -= 1
                if w.group is not None:
                    print("".join(w.lines), end="")
                    print(f"ERROR worker {w.slot} died (exit {w.proc.returncode}) while running "
                          f"{' '.join(w.group)}", flush=True)
                    totals["failed"] += len(w.group)
                    totals["failed_names"].append(f"{w.group[0]} and its class (worker died)")
                continue
            for line in lines:
                if not line.startswith(DONE):
                    w.lines.append(line)
                    continue
                done = json.loads(line[len(DONE):])
                print("".join(w.lines), end="", flush=True)
                w.lines = []
                for k in ("passed", "failed", "skipped"):
                    totals[k] += done[k]
                totals["failed_names"].extend(done["failed_names"])
                if w.closing:
                    continue
                if pending:
                    w.give(pending.pop(0))
                else:
                    w.finish()


def main(argv):
    args = [a for a in argv[1:]]
    if "--worker" in args:
        return worker_main()
    list_only = "--list" in args
    jobs = int(os.environ.get("VOUCH_TEST_JOBS", "1") or 1)
    if "--jobs" in args:
        i = args.index("--jobs")
        jobs = int(args[i + 1])
        del args[i:i + 2]
    filters = [a for a in args if not a.startswith("--")]
    all_tests, load_errors = load_all()
    selected = [t for t in all_tests if not filters or any(f in t.id() for f in filters)]
    if list_only:
        for t in selected:
            print(t.id())
        return 0

    class_sizes = class_sizes_of(selected)

    groups = {}
    for t in selected:
        groups.setdefault(class_key(t), []).append(t.id())
    jobs = max(1, min(jobs, len(groups)))
    print(f"running {len(selected)} integration tests: vouchd {harness.VOUCHD}, "
          f"CI={harness.IN_CI}" + (f", {jobs} workers" if jobs > 1 else ""), flush=True)
    result = Result(class_sizes)
    for modname, text in load_errors:
        result.failed += 1
        result.failed_names.append(f"{modname} (import error)")
        print(f"ERROR {modname}: cannot import\n      " + text.replace("\n", "\n      "),
              flush=True)
    started = time.monotonic()
    if jobs > 1:
        totals = {"passed": 0, "failed": 0, "skipped": 0, "failed_names": []}
        parallel_main(list(groups.values()), jobs, totals)
        result.passed += totals["passed"]
        result.failed += totals["failed"]
        result.n_skipped += totals["skipped"]
        result.failed_names.extend(totals["failed_names"])
    else:
        try:
            unittest.TestSuite(selected).run(result)
            sanitizer_leftovers(result)
        finally:
            cleanup._run_all()  # PostgreSQL and any vouchd left behind
    elapsed = time.monotonic() - started
    if result.failed_names:
        print("failed:", flush=True)
        for name in result.failed_names:
            print(f"  {name}", flush=True)
    if result.n_skipped:
        print(f"skipped: {result.n_skipped}", flush=True)
    logs = harness.suite().run_dir if harness._suite else harness.RUN_DIR
    print(f"time: {elapsed:.1f}s; logs in {logs}", flush=True)
    if not selected and not load_errors:
        print(f"no test matches {' '.join(filters)}", flush=True)
        return _final(0, 0, ran_something=False)
    return _final(result.passed, result.failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
