"""Test harness: a private PostgreSQL, vouchd processes, and the project's command-line tools.

Environment:
    VOUCH_BUILD_DIR    build directory (default <repo>/build): server/vouchd, cli/vouchctl,
                       tests/sim/vouch-sim
    VOUCH_PEER_PLISTS  captured peer plists (default tests/testdata/peer-plists)
    CI=true            whatever the tests need and cannot reach is a failure, never a skip
    VOUCH_KEEP_TEST_DIRS=1  keep the PostgreSQL directory after the run
    VOUCH_TEST_VALGRIND=1   every vouchd runs under valgrind
    VOUCH_TEST_SANITIZERS=1 the programs are an ASan + UBSan build: their reports go to files
                       in the run's directory, and a class after which a new one is there fails

Logs of every vouchd started go to <repo>/tests/.run/integration/ (ignored by git).

`VouchTestCase` is the base of the test classes: one vouchd per class, on its own database of the
suite's shared PostgreSQL (or on a private cluster with `own_postgres = True`).
"""

import contextlib
import datetime
import hashlib
import os
import plistlib
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
sys.path.insert(0, HERE)

import cleanup  # noqa: E402
import pg  # noqa: E402
from device import Device, TestCA, http_request  # noqa: E402

BUILD_DIR = os.path.abspath(os.environ.get("VOUCH_BUILD_DIR", os.path.join(REPO, "build")))
VOUCHD = os.path.join(BUILD_DIR, "server", "vouchd")
VOUCHCTL = os.path.join(BUILD_DIR, "cli", "vouchctl")
VOUCH_SIM = os.path.join(BUILD_DIR, "tests", "sim", "vouch-sim")
PEER_PLISTS = os.environ.get("VOUCH_PEER_PLISTS",
                             os.path.join(REPO, "tests", "testdata", "peer-plists"))
RUN_DIR = os.path.join(REPO, "tests", ".run", "integration")
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
# VOUCH_TEST_VALGRIND=1: every vouchd runs under valgrind (memcheck, leak check); a class whose
# vouchd ends with errors or definite/indirect leaks fails in its tearDownClass.
VALGRIND = os.environ.get("VOUCH_TEST_VALGRIND", "") == "1"
VALGRIND_ERROR_EXIT = 99
SANITIZERS = os.environ.get("VOUCH_TEST_SANITIZERS", "") == "1"

_DEFAULT = object()
RFC3339_UTC = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00|\+00)$")
# The tests play the TLS-terminating proxy themselves, from loopback.
LOOPBACK_PROXIES = "127.0.0.1, ::1"


def unavailable(what):
    """Something the test needs is missing: a failure in CI, a skip elsewhere."""
    if IN_CI:
        raise AssertionError(f"not available (CI=true, so this fails): {what}")
    raise unittest.SkipTest(f"not available: {what}")


def require_executable(path, what):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        unavailable(f"{what} ({path}); build it: meson setup build && ninja -C build")


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Poll predicate() until it returns a true value; return it, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except (OSError, ConnectionError) as exc:
            last = exc
            ok = False
        else:
            ok = bool(last)
        if ok:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} "
                                 f"(last: {last!r})")
        time.sleep(interval)


def clean_env(extra=None):
    """The environment for the project's programs: no VOUCH_* from the caller's shell (they
    would override the generated configuration)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOUCH_")}
    env.update(extra or {})
    return env


MIGRATIONS_DIR = os.path.join(REPO, "db", "migrations")


def migration_text(entry):
    """The text of one migration in db/migrations/ (bytes): a file NNNN_name.sql, or a folder
    NNNN_name/ of parts joined in the order of their names, as db/embed_migrations.py joins them."""
    path = os.path.join(MIGRATIONS_DIR, entry)
    files = ([os.path.join(path, part) for part in sorted(os.listdir(path))
              if part.endswith(".sql")] if os.path.isdir(path) else [path])
    text = b""
    for name in files:
        with open(name, "rb") as f:
            text += f.read()
    return text


def migration_entries():
    """{version: entry} of db/migrations/: its files and folders of parts."""
    found = {}
    for entry in sorted(os.listdir(MIGRATIONS_DIR)):
        m = re.match(r"^(\d{4})_[a-z0-9_]+(\.sql)?$", entry)
        if m:
            found[int(m.group(1))] = entry
    return found


def migrations_before(name_part):
    """The SQL of the migrations before the first whose name holds name_part, each followed by
    its schema_migrations row as vouchd writes it: a database as an older vouchd left it."""
    sql = ["CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
           " applied_at timestamptz NOT NULL DEFAULT now(), checksum text);"]
    before = [n for n, e in migration_entries().items() if name_part in e][0]
    for number, entry in migration_entries().items():
        if number >= before:
            continue
        text = migration_text(entry)
        sql.append(text.decode())
        sql.append(f"; INSERT INTO schema_migrations (version, name, checksum) VALUES "
                   f"({number}, '{entry[5:].removesuffix('.sql')}', "
                   f"'{hashlib.sha256(text).hexdigest()}');")
    return sql


def peer_plist(relpath):
    """(bytes, dict) of a captured peer plist, e.g. 'nanomdm/mdm__testdata__TokenUpdate.2.plist'."""
    path = os.path.join(PEER_PLISTS, relpath)
    if not os.path.exists(path):
        unavailable(f"peer plist {path}")
    with open(path, "rb") as f:
        data = f.read()
    return data, plistlib.loads(data)


def command_plist(request_type="DeviceInformation", command_uuid=_DEFAULT, **keys):
    """A command envelope; command_uuid=None leaves CommandUUID out."""
    cmd = {"RequestType": request_type}
    cmd.update(keys)
    env = {"Command": cmd}
    if command_uuid is _DEFAULT:
        command_uuid = str(uuid.uuid4()).upper()
    if command_uuid is not None:
        env["CommandUUID"] = command_uuid
    return env


def _prune_old_runs(keep):
    """Keep the logs of the last few runs only."""
    runs = sorted(d for d in os.listdir(RUN_DIR) if os.path.isdir(os.path.join(RUN_DIR, d)))
    for d in runs[:-keep] if keep else runs:
        shutil.rmtree(os.path.join(RUN_DIR, d), ignore_errors=True)


# -- the suite's shared resources ----------------------------------------------------------------
class _Suite:
    def __init__(self):
        self._pg = None
        self._ca = None
        self._untrusted_ca = None
        self._ca_path = None
        self.dbs = 0
        os.makedirs(RUN_DIR, exist_ok=True)
        _prune_old_runs(keep=9)
        self.run_dir = tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=RUN_DIR)
        self.sanitizer_dir = None
        self._reports_seen = set()
        if SANITIZERS:
            # Every program started from now on (vouchd, vouchctl, the simulator, the stand-ins)
            # writes what ASan, LeakSanitizer or UBSan find to <dir>/<tool>.<pid>.
            self.sanitizer_dir = os.path.join(self.run_dir, "sanitizers")
            os.makedirs(self.sanitizer_dir)
            os.environ["ASAN_OPTIONS"] = f"detect_leaks=1:log_path={self.sanitizer_dir}/asan"
            os.environ["UBSAN_OPTIONS"] = ("print_stacktrace=1:halt_on_error=1:"
                                           f"log_path={self.sanitizer_dir}/ubsan")

    def postgres(self):
        if self._pg is None:
            if not os.path.exists(os.path.join(pg.PG_BIN, "pg_ctl")):
                unavailable(f"PostgreSQL 15 binaries in {pg.PG_BIN}")
            cluster = pg.PostgresCluster()
            cluster.start()
            self._pg = cluster
        return self._pg

    def new_database(self, prefix, cluster=None, test_clock=True):
        """A new database; with test_clock its owner lets vouchd live by vouch_clock (the tests
        move it to live through weeks in seconds; vouchd says test_clock = true)."""
        cluster = cluster or self.postgres()
        self.dbs += 1
        name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{self.dbs}"
        cluster.createdb(name)
        if test_clock:
            cluster.psql(f'ALTER DATABASE "{name}" SET vouch.test_clock = on')
        return name

    @property
    def ca(self):
        """The trusted device-identity CA (written to identity_ca)."""
        if self._ca is None:
            self._ca = TestCA("Vouch Integration Device CA")
        return self._ca

    @property
    def untrusted_ca(self):
        """A CA vouchd does not trust, with the same subject name as the trusted one."""
        if self._untrusted_ca is None:
            self._untrusted_ca = TestCA("Vouch Integration Device CA")
        return self._untrusted_ca

    def identity_ca_path(self, extra_pems=()):
        path = os.path.join(self.run_dir, f"identity-ca-{secrets.token_hex(4)}.pem")
        with open(path, "wb") as f:
            f.write(self.ca.pem())
            for pem in extra_pems:
                f.write(pem if pem.endswith(b"\n") else pem + b"\n")
        return path

    def new_sanitizer_reports(self):
        """The text of the sanitizer reports written since the last call ([] without
        VOUCH_TEST_SANITIZERS)."""
        if self.sanitizer_dir is None:
            return []
        out = []
        for name in sorted(os.listdir(self.sanitizer_dir)):
            if name in self._reports_seen:
                continue
            self._reports_seen.add(name)
            with open(os.path.join(self.sanitizer_dir, name), errors="replace") as f:
                out.append(f"{name}:\n{f.read()[-6000:]}")
        return out

    def shutdown(self):
        if self._pg is not None:
            self._pg.cleanup()
            self._pg = None


_suite = None


def suite():
    global _suite
    if _suite is None:
        _suite = _Suite()
        cleanup.register(_suite.shutdown)
    return _suite


# -- vouchd ---------------------------------------------------------------------------------------
class Vouchd:
    """One vouchd process with a generated configuration file: listen, database_url,
    identity_ca, admin_token (default: 48 random hex characters; vouchd wants at least 32) and
    log_level, then `extra` (see config_extra())."""

    def __init__(self, database_url, identity_ca, name="vouchd", admin_token=None, extra=None,
                 run_dir=None):
        self.name = name
        self.database_url = database_url
        self.identity_ca = identity_ca
        self.admin_token = admin_token or secrets.token_hex(24)
        self.extra = dict(extra or {})
        self.run_dir = run_dir or suite().run_dir
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.config_path = os.path.join(self.run_dir, f"{name}.conf")
        self.log_path = os.path.join(self.run_dir, f"{name}.log")
        self._log = None
        self._cleanup_key = None
        self.exit_status = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def config_extra(self):
        """The extra keys as written: what the suite's set-up needs added, unless the class set
        the key itself (a value of None leaves the key out, to test vouchd without it)."""
        extra = dict(self.extra)
        # The suite's databases let vouchd live by their test clock (new_database).
        extra.setdefault("test_clock", "true")
        # vouchd believes cert_header only from trusted_proxies; here the test client, on
        # loopback, is the proxy.
        if extra.get("cert_header") and "trusted_proxies" not in extra:
            extra["trusted_proxies"] = LOOPBACK_PROXIES
        # The suite's web-hook receivers are plain http on loopback, and take every topic
        # (mdm.TokenUpdate, with its UnlockToken, included) unless the class says otherwise.
        urls = re.split(r"[,\s]+", str(extra.get("webhook_url") or ""))
        if "webhook_allow_http" not in extra and any(u.startswith("http://") for u in urls):
            extra["webhook_allow_http"] = "true"
        # "{url}" in a value is this vouchd's own base URL (its port is chosen at start).
        return {k: (v.replace("{url}", self.url) if isinstance(v, str) else v)
                for k, v in extra.items() if v is not None}

    def write_config(self):
        lines = [f"# generated by tests/integration/harness.py for {self.name}",
                 f"listen = {self.host}:{self.port}",
                 f"database_url = {self.database_url}",
                 f"identity_ca = {self.identity_ca}",
                 f"admin_token = {self.admin_token}",
                 "log_level = debug"]
        lines += [f"{k} = {v}" for k, v in self.config_extra().items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout=30.0):
        require_executable(VOUCHD, "vouchd")
        if self.port is None:
            self.port = pg.free_port()
        self.write_config()
        self._log = open(self.log_path, "ab")
        self._log.write(f"=== start {time.strftime('%H:%M:%S')} {VOUCHD} --config "
                        f"{self.config_path}\n".encode())
        self._log.flush()
        argv = [VOUCHD, "--config", self.config_path]
        if VALGRIND:
            self.valgrind_log = os.path.join(self.run_dir, f"{self.name}.valgrind.log")
            argv = ["valgrind", "--quiet", f"--error-exitcode={VALGRIND_ERROR_EXIT}",
                    "--leak-check=full", "--show-leak-kinds=definite,indirect",
                    "--errors-for-leak-kinds=definite,indirect", "--num-callers=30",
                    f"--log-file={self.valgrind_log}"] + argv
            timeout *= 4
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=clean_env())
        self.exit_status = None
        if self._cleanup_key is None:
            self._cleanup_key = cleanup.register(self.kill)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"vouchd exited with {self.proc.returncode} while starting"
                                     f"\n{self.log_tail()}")
            try:
                if self.healthz().status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"vouchd did not answer GET /healthz 200 within "
                                     f"{timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return self.exit_status
        if VALGRIND:
            timeout *= 6  # the leak check at exit takes a while
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._note("did not stop within %.0f s of SIGTERM: killed" % timeout)
        self.exit_status = self.proc.returncode
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._cleanup_key is not None:
            cleanup.unregister(self._cleanup_key)
            self._cleanup_key = None
        return self.exit_status

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _note(self, text):
        if self._log is not None:
            self._log.write(f"=== harness: {text}\n".encode())
            self._log.flush()

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_tail(self, lines=40, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no vouchd log)"
        return (f"--- {self.log_path} (last {min(lines, len(text))} lines) ---\n"
                + "\n".join(text[-lines:]))

    # -- HTTP -------------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=60):
        return http_request(self.host, self.port, method, path, body=body, headers=headers,
                            timeout=timeout)

    def healthz(self):
        return self.request("GET", "/healthz", timeout=10)

    def metrics(self):
        return self.request("GET", "/metrics")

    def admin(self, method, path, body=None, token=_DEFAULT, content_type=None):
        headers = {}
        if token is _DEFAULT:
            token = self.admin_token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.request(method, path, body=body, headers=headers)

    def enqueue(self, udids, command):
        """PUT /v1/enqueue/<udids>; command is a dict (made a plist) or raw bytes."""
        if isinstance(udids, str):
            udids = [udids]
        body = command if isinstance(command, bytes) else plistlib.dumps(command)
        return self.admin("PUT", "/v1/enqueue/" + ",".join(udids), body=body,
                          content_type="application/xml")

    def device(self, udid):
        return self.admin("GET", f"/v1/devices/{udid}")

    def commands(self, udid):
        r = self.admin("GET", f"/v1/devices/{udid}/commands")
        if r.status != 200:
            raise AssertionError(f"GET /v1/devices/{udid}/commands: {r!r}")
        return r.json()


def run_tool(argv, timeout=120, env=None):
    """Run one of the project's programs; returns CompletedProcess (text)."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=clean_env(env))


def vouchctl(vouchd, *args, timeout=60):
    require_executable(VOUCHCTL, "vouchctl")
    return run_tool([VOUCHCTL, "--url", vouchd.url, "--token", vouchd.admin_token] + list(args),
                    timeout=timeout)


def vouch_sim(*args, timeout=180):
    require_executable(VOUCH_SIM, "vouch-sim")
    return run_tool([VOUCH_SIM] + list(args), timeout=timeout)


# -- database inspection ---------------------------------------------------------------------
_TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "xml")


def _ident(name):
    return '"' + name.replace('"', '""') + '"'


def db_find(cluster, dbname, needle):
    """Where does needle (bytes or str) occur in the database? Looks in every bytea and text-like
    column of every user table. Returns {"schema.table.column": number of rows}, only non-zero
    entries. Schema-agnostic on purpose: the tests check that data is stored, not how."""
    if isinstance(needle, str):
        needle = needle.encode()
    cols = cluster.psql(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        " AND table_schema NOT LIKE 'pg_toast%' ORDER BY 1, 2, 3", dbname)
    try:
        needle.decode("utf-8")
        as_text = True
    except UnicodeDecodeError:
        as_text = False
    parts = []
    for line in cols.splitlines():
        if not line:
            continue
        schema, table, column, dtype = line.split("|")
        where = f"{_ident(schema)}.{_ident(table)}"
        label = f"{schema}.{table}.{column}".replace("'", "")
        if dtype == "bytea":
            cond = f"position(needle.b in tbl.{_ident(column)}) > 0"
        elif (dtype in _TEXT_TYPES or dtype == "ARRAY") and as_text:
            cond = f"strpos(tbl.{_ident(column)}::text, needle.t) > 0"
        else:
            continue
        parts.append(f"SELECT '{label}', count(*) FROM {where} AS tbl, needle WHERE {cond}")
    if not parts:
        return {}
    text_expr = "convert_from(b, 'UTF8')" if as_text else "NULL::text"
    sql = (f"WITH needle AS (SELECT b, {text_expr} AS t FROM "
           f"(SELECT decode('{needle.hex()}', 'hex') AS b) AS x) "
           + " UNION ALL ".join(parts) + ";")
    out = cluster.psql(sql, dbname)
    found = {}
    for line in out.splitlines():
        if line:
            label, count = line.rsplit("|", 1)
            if int(count):
                found[label] = int(count)
    return found


# -- the base test class -----------------------------------------------------------------------
class VouchTestCase(unittest.TestCase):
    """One vouchd per test class. Subclasses may set:
        vouchd_config = {...}   extra configuration keys
        own_postgres = True     a private PostgreSQL cluster (for tests that stop it)
    """

    vouchd_config = {}
    own_postgres = False
    vouchd = None
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        require_executable(VOUCHD, "vouchd")
        s = suite()
        if cls.own_postgres:
            if not os.path.exists(os.path.join(pg.PG_BIN, "pg_ctl")):
                unavailable(f"PostgreSQL 15 binaries in {pg.PG_BIN}")
            cls.pg = pg.PostgresCluster()
            cls.pg.start()
        else:
            cls.pg = s.postgres()
        cls.dbname = s.new_database(cls.__name__, cls.pg)
        cls.ca = s.ca
        cls.untrusted_ca = s.untrusted_ca
        cls.vouchd = Vouchd(cls.pg.conninfo(cls.dbname),
                            s.identity_ca_path(cls.extra_identity_ca_pems()),
                            name=f"{cls.__module__}.{cls.__name__}",
                            extra=cls.vouchd_config)
        try:
            cls.vouchd.start()
        except BaseException:
            cls._teardown_servers()
            raise
        cls._canary = None

    @classmethod
    def extra_identity_ca_pems(cls):
        """More CA certificates (PEM bytes) for identity_ca besides the suite's test CA."""
        return []

    @classmethod
    def _teardown_servers(cls):
        problem = None
        if cls.vouchd is not None:
            status = cls.vouchd.stop()
            if VALGRIND and status == VALGRIND_ERROR_EXIT:
                with open(cls.vouchd.valgrind_log, errors="replace") as f:
                    problem = (f"valgrind found errors or leaks in vouchd "
                               f"({cls.vouchd.valgrind_log}):\n{f.read()[-6000:]}")
            elif status not in (0, None):
                print(f"\n[{cls.__name__}] note: vouchd exited with status {status} after "
                      "SIGTERM", file=sys.stderr)
        if cls.own_postgres and getattr(cls, "pg", None) is not None:
            cls.pg.cleanup()
        reports = suite().new_sanitizer_reports()
        if reports:
            problem = (problem + "\n" if problem else "") + \
                "sanitizer reports from the programs this class ran:\n" + "\n".join(reports)
        if problem is not None:
            raise AssertionError(problem)

    @classmethod
    def tearDownClass(cls):
        cls._teardown_servers()

    def setUp(self):
        self._log_offset = self.vouchd.log_size() if self.vouchd else 0

    def tearDown(self):
        # Whatever a test sent, vouchd must have survived it.
        if self.vouchd is not None and self.vouchd.proc is not None and not self.vouchd.alive():
            self.fail(f"vouchd died during this test (exit {self.vouchd.proc.returncode})\n"
                      + self.vouchd_log_since_test())

    def vouchd_log_since_test(self, lines=40):
        return self.vouchd.log_tail(lines, since=self._log_offset)

    # -- devices ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def vouchd_on(self, dbname, name, extra=None):
        """A vouchd of its own on dbname (an upgrade test's database, made by older migrations),
        started (it migrates the database) and stopped on leaving the block."""
        v = Vouchd(self.pg.conninfo(dbname), suite().identity_ca_path(), name=name, extra=extra)
        v.port = pg.free_port()
        try:
            v.start()
            yield v
        finally:
            v.stop()

    def new_device(self, **kw):
        return Device(self.vouchd, kw.pop("ca", self.ca), **kw)

    def enrolled_device(self, **kw):
        return self.new_device(**kw).enroll()

    # -- assertions -------------------------------------------------------------------------
    def assertStatus(self, response, expected, what=""):
        if isinstance(expected, int):
            expected = (expected,)
        if response.status not in expected:
            self.fail(f"{what}: expected HTTP {' or '.join(map(str, expected))}, "
                      f"got {response!r}")

    def assertDeviceRefusal(self, response, what="", allowed=(403,)):
        """A device request refused: one of allowed, and never 401."""
        self.assertNotEqual(response.status, 401, f"{what}: 401 sent to a device: {response!r}")
        self.assertStatus(response, allowed, what)

    def assertEmpty200(self, response, what=""):
        self.assertStatus(response, 200, what)
        self.assertEqual(response.body, b"", f"{what}: expected a zero-byte body, got "
                                             f"{response!r}")

    def assertCommand(self, response, command_uuid=None, what=""):
        """A 200 carrying a command plist (optionally this CommandUUID). Returns the plist."""
        self.assertStatus(response, 200, what)
        self.assertTrue(response.body, f"{what}: expected a command, got a zero-byte body")
        self.assertEqual(response.media_type(), "application/xml",
                         f"{what}: Content-Type of a command: {response!r}")
        cmd = response.plist()
        self.assertIsInstance(cmd, dict, f"{what}: command is not a dict")
        self.assertIn("CommandUUID", cmd, f"{what}: command without CommandUUID: {cmd!r}")
        self.assertIsInstance(cmd.get("Command"), dict, f"{what}: command without Command dict")
        self.assertIn("RequestType", cmd["Command"], f"{what}: Command without RequestType")
        if command_uuid is not None:
            self.assertEqual(cmd["CommandUUID"], command_uuid, f"{what}: wrong command handed out")
        return cmd

    def canary(self):
        """An enrolled device of this class used to check that normal service goes on."""
        cls = type(self)
        if cls._canary is None:
            cls._canary = self.enrolled_device()
        return cls._canary

    def assertAlive(self, what=""):
        """vouchd is still running, healthy, and serves a normal Idle."""
        if not self.vouchd.alive():
            code = self.vouchd.proc.poll() if self.vouchd.proc else None
            self.fail(f"{what}: vouchd is no longer running (exit {code})\n"
                      + self.vouchd.log_tail())
        h = self.vouchd.healthz()
        self.assertEqual(h.status, 200, f"{what}: GET /healthz after it: {h!r}")
        r = self.canary().idle()
        self.assertStatus(r, 200, f"{what}: a normal Idle after it")

    def assertRFC3339(self, value, what=""):
        self.assertIsInstance(value, str, f"{what}: expected an RFC 3339 time, got {value!r}")
        self.assertRegex(value, RFC3339_UTC, f"{what}: not RFC 3339 UTC")
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))

    def enqueue_ok(self, udids, command):
        r = self.vouchd.enqueue(udids, command)
        self.assertStatus(r, 200, f"enqueue {command.get('Command', {}).get('RequestType')}")
        return r.json()

    def command_status(self, udid, command_uuid):
        """The commands-list entries of this device with this CommandUUID."""
        return [c for c in self.vouchd.commands(udid) if c.get("command_uuid") == command_uuid]

    def db_find(self, needle):
        return db_find(self.pg, self.dbname, needle)

    def psql(self, sql):
        return self.pg.psql(sql, self.dbname)

    # -- Managed Device Attestation ----------------------------------------------------------
    def attestation_of(self, udid):
        """The attestation block of the device object."""
        r = self.vouchd.device(udid)
        self.assertStatus(r, 200, f"GET /v1/devices/{udid}")
        return r.json()["attestation"]

    def queued_attestation_request(self, udid, what=""):
        """The CommandUUID of the one attestation request vouchd queued for udid (a queued
        DeviceInformation in the commands list, while the test queued none itself)."""
        queued = [c for c in self.vouchd.commands(udid)
                  if c.get("request_type") == "DeviceInformation" and c.get("status") == "queued"]
        self.assertEqual(len(queued), 1, f"{what}: queued DeviceInformation commands of {udid}: "
                                         f"{queued}")
        return queued[0]["command_uuid"]
