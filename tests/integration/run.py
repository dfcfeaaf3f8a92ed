#!/usr/bin/python3
"""Run the integration tests.

    /usr/bin/python3 tests/integration/run.py [--list] [FILTER...]

FILTER selects tests whose id (module.Class.test_name) contains it, e.g. `test_abuse`,
`NotNowTest`, `test_protocol.ProtocolCycleTest.test_full_cycle`. Needs the built programs (see
harness.py: VOUCH_BUILD_DIR, default <repo>/build), PostgreSQL 15 in /usr/lib/postgresql/15/bin
and python3-cryptography (Debian's /usr/bin/python3). With CI=true a test that cannot reach what it
needs fails instead of being skipped.

Prints one line per test and ends with exactly one line `integration: N passed, N failed`;
exit status 0 when nothing failed, 1 otherwise.
"""

import os
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


def main(argv):
    args = [a for a in argv[1:]]
    list_only = "--list" in args
    filters = [a for a in args if not a.startswith("--")]
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
    selected = [t for t in all_tests if not filters or any(f in t.id() for f in filters)]
    if list_only:
        for t in selected:
            print(t.id())
        return 0

    class_sizes = {}
    for t in selected:
        key = f"{type(t).__module__}.{type(t).__qualname__}"
        class_sizes[key] = class_sizes.get(key, 0) + 1

    print(f"running {len(selected)} integration tests: vouchd {harness.VOUCHD}, "
          f"CI={harness.IN_CI}", flush=True)
    result = Result(class_sizes)
    for modname, text in load_errors:
        result.failed += 1
        result.failed_names.append(f"{modname} (import error)")
        print(f"ERROR {modname}: cannot import\n      " + text.replace("\n", "\n      "),
              flush=True)
    started = time.monotonic()
    try:
        unittest.TestSuite(selected).run(result)
    finally:
        cleanup._run_all()  # PostgreSQL and any vouchd left behind
    elapsed = time.monotonic() - started
    if result.failed_names:
        print("failed:", flush=True)
        for name in result.failed_names:
            print(f"  {name}", flush=True)
    if result.n_skipped:
        print(f"skipped: {result.n_skipped}", flush=True)
    print(f"time: {elapsed:.1f}s; logs in {harness.suite().run_dir if harness._suite else '-'}",
          flush=True)
    if not selected and not load_errors:
        print(f"no test matches {' '.join(filters)}", flush=True)
        return _final(0, 0, ran_something=False)
    return _final(result.passed, result.failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
