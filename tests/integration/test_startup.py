"""Starting and stopping vouchd: configuration mistakes stop it before it does anything, the
environment wins over the file, migrations are applied exactly once when several processes start
together (advisory lock), and SIGTERM ends it cleanly.

These tests run their own vouchd processes (one per case), each on a fresh database of the suite's
PostgreSQL; they do not use VouchTestCase's one-server-per-class."""

import hashlib
import os
import re
import signal
import subprocess
import time
import unittest

import cleanup
import pg
from harness import (MIGRATIONS_DIR, REPO, VOUCHD, Vouchd, clean_env, migration_entries,
                     migration_text, require_executable, suite, unavailable)
from device import Device, http_request

# docs/api.md, "Configuration": the keys every operator may rely on.
SPEC_KEYS = ["listen", "database_url", "public_url", "identity_ca", "cert_header",
             "attestation_roots", "apns_cert", "apns_key", "apns_url", "apns_ca", "webhook_url",
             "webhook_secret", "admin_token", "trusted_proxies", "webhook_allow_http", "reenroll"]

EXIT_DEADLINE = 30.0      # a refusing vouchd must exit long before this
HEALTHY_DEADLINE = 60.0   # a starting vouchd must answer /healthz long before this
STOP_DEADLINE = 20.0      # SIGTERM on an idle vouchd: "a few seconds", with a generous margin


def migration_files():
    """{version: (name, tables it creates, tables it drops)} from db/migrations/."""
    if not os.path.isdir(MIGRATIONS_DIR):
        unavailable(f"migrations directory {MIGRATIONS_DIR}")
    found = {}
    for version, entry in migration_entries().items():
        sql = re.sub(r"--[^\n]*", "", migration_text(entry).decode())
        created = {t.lower() for t in re.findall(
            r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)", sql, re.I)}
        dropped = {t.lower() for t in re.findall(
            r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)", sql, re.I)}
        found[version] = (entry, created, dropped)
    if not found:
        unavailable(f"no NNNN_*.sql migration in {MIGRATIONS_DIR}")
    return found


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Spawned:
    """A vouchd process (any arguments, any environment) with stdout and stderr in files."""

    def __init__(self, argv, env=None, name="spawned"):
        require_executable(VOUCHD, "vouchd")
        base = os.path.join(suite().run_dir, f"{name}-{time.monotonic_ns()}")
        self.out_path, self.err_path = base + ".stdout", base + ".stderr"
        self.argv = argv
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=clean_env(env))
        self._key = cleanup.register(lambda: _kill(self.proc))

    def wait(self, timeout):
        """The exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        _kill(self.proc)
        cleanup.unregister(self._key)

    def finish(self, timeout=EXIT_DEADLINE):
        status = self.wait(timeout)
        if status is None:
            self.kill()
        else:
            cleanup.unregister(self._key)
        return status

    @property
    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    @property
    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def describe(self):
        return (f"$ {' '.join(self.argv)}\n--- stdout ---\n{self.stdout[-3000:]}"
                f"\n--- stderr ---\n{self.stderr[-3000:]}")


def launch(v, env=None):
    """Start Vouchd v as Vouchd.start() does, but with extra environment variables and without
    waiting for /healthz (v.stop() works on it afterwards)."""
    require_executable(VOUCHD, "vouchd")
    if v.port is None:
        v.port = pg.free_port()
    v.write_config()
    v._log = open(v.log_path, "ab")
    v._log.write(f"=== start {time.strftime('%H:%M:%S')} {VOUCHD} --config {v.config_path} "
                 f"env {sorted((env or {}).items())}\n".encode())
    v._log.flush()
    v.proc = subprocess.Popen([VOUCHD, "--config", v.config_path], stdin=subprocess.DEVNULL,
                              stdout=v._log, stderr=v._log, env=clean_env(env))
    v.exit_status = None
    if v._cleanup_key is None:
        v._cleanup_key = cleanup.register(v.kill)
    return v


def healthz_status(host, port):
    """GET /healthz on host:port: the status, or the connection error."""
    try:
        return http_request(host, port, "GET", "/healthz", timeout=10).status
    except OSError as exc:
        return exc


class StartupCase(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        require_executable(VOUCHD, "vouchd")
        cls.pg = suite().postgres()

    def setUp(self):
        self._servers = []

    def tearDown(self):
        for v in self._servers:
            v.stop()

    def new_vouchd(self, name, dbname=None, extra=None, identity_ca=None):
        """A Vouchd (not started) on a fresh database unless dbname is given."""
        dbname = dbname or suite().new_database(name)
        v = Vouchd(self.pg.conninfo(dbname), identity_ca or suite().identity_ca_path(),
                   name=f"{__name__}.{type(self).__name__}.{name}", extra=extra)
        v.port = pg.free_port()
        v.dbname = dbname
        self._servers.append(v)
        return v

    def wait_healthy(self, v, port=None, what="vouchd"):
        """Poll /healthz until 200 while v keeps running; fail with its log otherwise."""
        port = port or v.port
        deadline = time.monotonic() + HEALTHY_DEADLINE
        while True:
            if v.proc.poll() is not None:
                self.fail(f"{what}: exited with {v.proc.returncode} while starting\n"
                          + v.log_tail())
            if healthz_status(v.host, port) == 200:
                return
            if time.monotonic() >= deadline:
                self.fail(f"{what}: no GET /healthz 200 on port {port} within "
                          f"{HEALTHY_DEADLINE:.0f} s\n" + v.log_tail())
            time.sleep(0.1)

    def table_exists(self, dbname, table):
        return self.pg.psql(f"SELECT to_regclass('{table}') IS NOT NULL", dbname).strip() == "t"

    def applied_versions(self, dbname):
        """{version: how many rows} of schema_migrations."""
        rows = self.pg.psql("SELECT version, count(*) FROM schema_migrations GROUP BY version "
                            "ORDER BY version", dbname)
        return {int(v): int(n) for v, n in (line.split("|") for line in rows.splitlines()
                                             if line)}

    def schema_shape(self, dbname):
        """Every column of every table and view of the database, with its type."""
        return self.pg.psql(
            "SELECT table_name, column_name, data_type, is_nullable FROM "
            "information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY 1, 2", dbname)

    def reference(self):
        """What this vouchd's migrations give when one `vouchd migrate` runs alone on a fresh
        database: (versions, schema shape). The build may lag behind the source tree, so the
        concurrent runs are compared with this binary's own result."""
        cls = StartupCase
        if getattr(cls, "_reference", None) is None:
            v = self.new_vouchd("migrate-reference")
            v.write_config()
            p = Spawned([VOUCHD, "migrate", "--config", v.config_path], name="migrate-reference")
            self.assertEqual(p.finish(HEALTHY_DEADLINE), 0,
                             "a lone vouchd migrate on a fresh database\n" + p.describe())
            counts = self.applied_versions(v.dbname)
            self.assertTrue(counts, "a lone vouchd migrate recorded no migration")
            self.assertEqual(sorted(counts), list(range(1, max(counts) + 1)),
                             "the versions in schema_migrations are not 1..N")
            self.assertEqual(set(counts.values()), {1}, f"a version recorded twice: {counts}")
            files = migration_files()
            self.assertEqual(set(counts) - set(files), set(),
                             f"vouchd applied versions with no file in {MIGRATIONS_DIR}")
            cls._reference = (sorted(counts), self.schema_shape(v.dbname))
        return cls._reference

    def assertSchemaComplete(self, dbname, what):
        versions, shape = self.reference()
        self.assertTrue(self.table_exists(dbname, "schema_migrations"),
                        f"{what}: no schema_migrations table")
        self.assertEqual(self.applied_versions(dbname), {v: 1 for v in versions},
                         f"{what}: schema_migrations should hold each of {versions} exactly once")
        files = migration_files()
        tables = set()
        for version in versions:
            _fname, created, dropped = files[version]
            tables = (tables | created) - dropped
        present = set(self.pg.psql(
            "SELECT lower(table_name) FROM information_schema.tables "
            "WHERE table_schema = current_schema()", dbname).split())
        self.assertEqual(tables - present, set(),
                         f"{what}: tables created by migrations {versions} are missing")
        self.assertEqual(self.schema_shape(dbname), shape,
                         f"{what}: the schema differs from a lone migrate's")

    def migration_rows(self, dbname):
        return self.pg.psql("SELECT * FROM schema_migrations ORDER BY 1", dbname)


class ConfigRefusalTest(StartupCase):

    def assertRefuses(self, argv, key, what, env=None, port=None):
        """vouchd exits with 1 on its own, and its stderr names key (not merely in the path of
        the configuration file it quotes)."""
        p = Spawned(argv, env=env, name=re.sub(r"[^A-Za-z0-9_.=-]+", "_", what)[:60])
        deadline = time.monotonic() + EXIT_DEADLINE
        status = None
        while status is None:
            status = p.wait(0.1)
            if status is not None:
                break
            if port is not None and healthz_status("127.0.0.1", port) == 200:
                p.kill()
                self.fail(f"{what}: vouchd started and serves /healthz instead of refusing\n"
                          + p.describe())
            if time.monotonic() >= deadline:
                p.kill()
                self.fail(f"{what}: vouchd did not exit within {EXIT_DEADLINE:.0f} s\n"
                          + p.describe())
        cleanup.unregister(p._key)
        self.assertEqual(status, 1, f"{what}: exit status\n{p.describe()}")
        message = p.stderr.replace(argv[-1], "<config>")
        self.assertIn(key.lower(), message.lower(),
                      f"{what}: the message on stderr does not name {key}\n{p.describe()}")
        return p

    def test_bad_configurations_refuse_to_start(self):
        dbname = suite().new_database("refusals")
        cases = [
            # (what, extra config lines, environment, the key the message must name)
            ("unknown key in the file: colour = blue", {"colour": "blue"}, None, "colour"),
            ("max_body_bytes = lots", {"max_body_bytes": "lots"}, None, "max_body_bytes"),
            ("db_pool_size = 0", {"db_pool_size": "0"}, None, "db_pool_size"),
            ("log_level = loud", {"log_level": "loud"}, None, "log_level"),
            ("unknown environment key VOUCH_COLOUR=blue", {}, {"VOUCH_COLOUR": "blue"},
             "colour"),
            ("bad environment value VOUCH_DB_POOL_SIZE=0", {}, {"VOUCH_DB_POOL_SIZE": "0"},
             "db_pool_size"),
            ("bad environment value VOUCH_LOG_LEVEL=loud (the file's log_level is good)", {},
             {"VOUCH_LOG_LEVEL": "loud"}, "log_level"),
        ]
        not_pem = os.path.join(suite().run_dir, "identity-ca-not-pem.txt")
        with open(not_pem, "w") as f:
            f.write("this is not a certificate\n")
        missing = os.path.join(suite().run_dir, "no-such-dir", "identity-ca.pem")
        runs = []  # (what, key, name, extra, env, identity_ca, migrate)
        for i, (what, extra, env, key) in enumerate(cases):
            runs.append((what, key, f"refuse{i}", extra, env, None, False))
        runs += [
            ("vouchd migrate, colour = blue", "colour", "refuse-migrate", {"colour": "blue"},
             None, None, True),
            (f"identity_ca = {missing} (no such file)", "identity_ca", "refuse-ca-missing", {},
             None, missing, False),
            ("identity_ca is a file without a PEM certificate", "identity_ca",
             "refuse-ca-not-pem", {}, None, not_pem, False),
        ]
        problems = []
        for what, key, name, extra, env, identity_ca, migrate in runs:
            v = self.new_vouchd(name, dbname=dbname, extra=extra, identity_ca=identity_ca)
            v.write_config()
            argv = [VOUCHD] + (["migrate"] if migrate else []) + ["--config", v.config_path]
            try:
                self.assertRefuses(argv, key, what, env=env,
                                   port=None if migrate else v.port)
            except AssertionError as exc:
                problems.append(str(exc))
        if problems:
            self.fail(f"{len(problems)} of {len(runs)} bad configurations did not refuse "
                      "properly:\n\n" + "\n\n".join(problems))

        # None of them touched the database...
        self.assertFalse(self.table_exists(dbname, "schema_migrations"),
                         "a vouchd that refused its configuration applied migrations")
        # ...and the same configuration without the bad line starts on it.
        v = self.new_vouchd("refuse-control", dbname=dbname)
        launch(v)
        self.wait_healthy(v, what="the same configuration without a mistake")
        self.assertEqual(v.stop(), 0, "control vouchd: exit status after SIGTERM\n"
                         + v.log_tail())

    def test_help_version_and_usage_errors(self):
        r = subprocess.run([VOUCHD, "--help"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=EXIT_DEADLINE, env=clean_env())
        self.assertEqual(r.returncode, 0, f"vouchd --help: {r!r}")
        for key in SPEC_KEYS:
            self.assertRegex(r.stdout, rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])",
                             f"vouchd --help does not mention the configuration key {key}")

        r = subprocess.run([VOUCHD, "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=EXIT_DEADLINE, env=clean_env())
        self.assertEqual(r.returncode, 0, f"vouchd --version: {r!r}")
        self.assertRegex(r.stdout, r"\d+\.\d+", f"vouchd --version prints no version: {r!r}")

        r = subprocess.run([VOUCHD, "--bogus"], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=EXIT_DEADLINE, env=clean_env())
        self.assertEqual(r.returncode, 2, f"vouchd --bogus: {r!r}")
        self.assertIn("--bogus", r.stderr, f"vouchd --bogus: the error does not name it: {r!r}")


class EnvironmentWinsTest(StartupCase):

    def test_environment_overrides_file(self):
        v = self.new_vouchd("env-wins")
        port_a = v.port                      # in the file
        port_b = pg.free_port()              # in the environment
        while port_b == port_a:
            port_b = pg.free_port()
        env_token = "env-" + os.urandom(16).hex()
        launch(v, env={"VOUCH_LISTEN": f"127.0.0.1:{port_b}", "VOUCH_ADMIN_TOKEN": env_token})
        self.wait_healthy(v, port=port_b, what="vouchd with VOUCH_LISTEN")
        a = healthz_status("127.0.0.1", port_a)
        self.assertIsInstance(a, OSError, f"the file's listen port {port_a} answers although "
                                          f"VOUCH_LISTEN says {port_b}: {a!r}\n" + v.log_tail())
        # The same for another key: the environment's admin token is the one that works.
        v.port = port_b
        r = v.admin("GET", "/v1/devices", token=env_token)
        self.assertEqual(r.status, 200, f"admin API with VOUCH_ADMIN_TOKEN: {r!r}")
        r = v.admin("GET", "/v1/devices", token=v.admin_token)
        self.assertEqual(r.status, 401, f"admin API with the file's (overridden) token: {r!r}")
        self.assertEqual(v.stop(), 0, "exit status after SIGTERM\n" + v.log_tail())


class ConcurrentMigrationTest(StartupCase):

    def test_two_migrates_at_once(self):
        # Three rounds, each on a fresh database, to give the race more than one chance.
        for round_no in range(3):
            v = self.new_vouchd(f"migrate{round_no}")
            v.write_config()
            argv = [VOUCHD, "migrate", "--config", v.config_path]
            procs = [Spawned(argv, name=f"migrate{round_no}-{i}") for i in range(2)]
            for i, p in enumerate(procs):
                status = p.finish(HEALTHY_DEADLINE)
                self.assertEqual(status, 0, f"concurrent vouchd migrate #{i} (round "
                                            f"{round_no}): exit status\n{p.describe()}")
            self.assertSchemaComplete(v.dbname, f"two concurrent migrates, round {round_no}")

            before = self.migration_rows(v.dbname)
            third = Spawned(argv, name=f"migrate{round_no}-third")
            self.assertEqual(third.finish(HEALTHY_DEADLINE), 0,
                             f"a third vouchd migrate on the migrated database (round "
                             f"{round_no})\n" + third.describe())
            self.assertEqual(self.migration_rows(v.dbname), before,
                             f"a third vouchd migrate changed schema_migrations (round "
                             f"{round_no})\n" + third.describe())
            self.assertSchemaComplete(v.dbname, f"after the third migrate (round {round_no})")

    def test_a_changed_migration_is_refused(self):
        """A database that applied another text of a migration (say, a pre-release schema) is
        refused with a message naming the migration, and left as it is."""
        v = self.new_vouchd("changed")
        v.write_config()
        argv = [VOUCHD, "migrate", "--config", v.config_path]
        first = Spawned(argv, name="changed-first")
        self.assertEqual(first.finish(HEALTHY_DEADLINE), 0, first.describe())
        self.pg.psql("UPDATE schema_migrations SET checksum = 'not-this-text' "
                     "WHERE version = 1", v.dbname)
        before = self.migration_rows(v.dbname)
        again = Spawned(argv, name="changed-again")
        self.assertEqual(again.finish(HEALTHY_DEADLINE), 1, again.describe())
        self.assertIn("0001_schema", again.describe())
        self.assertIn("recreate the database", again.describe())
        self.assertEqual(self.migration_rows(v.dbname), before)

    def schema_dump(self, dbname):
        """pg_dump --schema-only, without the lines that name the dump itself (its version, and
        the random key of psql's \\restrict guard)."""
        proc = subprocess.run([os.path.join(pg.PG_BIN, "pg_dump"), "--schema-only",
                               "--no-owner", "-d", self.pg.conninfo(dbname)],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return "\n".join(l for l in proc.stdout.splitlines()
                         if not l.startswith(("-- Dumped", "\\restrict", "\\unrestrict")))

    def migrate(self, v, name):
        run = Spawned([VOUCHD, "migrate", "--config", v.config_path], name=name)
        self.assertEqual(run.finish(HEALTHY_DEADLINE), 0, run.describe())

    def test_functions_are_code(self):
        """The functions (db/functions/) are made again at every migrate: applying them twice,
        and upgrading a database that the first release's schema made (migration 0001 only,
        with the functions it defined then), give the very schema of a new database; and every
        function in the database is one db/functions/ defines."""
        fresh = self.new_vouchd("functions_fresh")
        fresh.write_config()
        self.migrate(fresh, "functions-first")
        first = self.schema_dump(fresh.dbname)
        self.migrate(fresh, "functions-again")
        self.assertEqual(self.schema_dump(fresh.dbname), first, "migrate twice changed the schema")

        # The database an earlier vouchd made: migration 0001 and its functions, recorded as
        # db/migrate.c records it.
        old = self.new_vouchd("functions_upgrade")
        old.write_config()
        text = migration_text("0001_schema")  # kept in parts: their text joined
        self.pg.psql("CREATE TABLE IF NOT EXISTS schema_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now(), checksum text);"
                     + text.decode() +
                     "; INSERT INTO schema_migrations (version, name, checksum) VALUES "
                     f"(1, 'schema', '{hashlib.sha256(text).hexdigest()}')", old.dbname)
        self.migrate(old, "functions-upgrade")
        self.assertEqual(self.schema_dump(old.dbname), first,
                         "an upgraded database differs from a new one")

        defined = set()
        for fname in os.listdir(os.path.join(REPO, "db", "functions")):
            with open(os.path.join(REPO, "db", "functions", fname)) as f:
                defined |= set(re.findall(r"CREATE OR REPLACE FUNCTION (\w+)", f.read()))
        names = self.pg.psql("SELECT proname FROM pg_proc p JOIN pg_namespace n "
                             "ON n.oid = p.pronamespace WHERE n.nspname = 'public'",
                             fresh.dbname).split()
        present = set(names)
        self.assertEqual(present - defined, set(), "functions a migration left behind")
        self.assertEqual(defined - present, set(), "functions db/functions/ did not make")
        # Each defined once: an old signature a migration did not drop stays beside the new one.
        self.assertEqual(sorted({n for n in names if names.count(n) > 1}), [],
                         "functions with an older signature left behind")

    def test_two_servers_at_once(self):
        dbname = suite().new_database("two_servers")
        v1 = self.new_vouchd("server1", dbname=dbname)
        v2 = self.new_vouchd("server2", dbname=dbname)
        v1.write_config()
        v2.write_config()
        launch(v1)
        launch(v2)
        self.wait_healthy(v1, what="the first of two vouchd started together")
        self.wait_healthy(v2, what="the second of two vouchd started together")
        self.assertSchemaComplete(dbname, "two vouchd started together")

        # Both serve the same database: enroll through one, talk through the other.
        d = Device(v1, suite().ca).enroll()
        d.server = v2
        r = d.idle()
        self.assertEqual(r.status, 200, f"Idle through the second server: {r!r}\n"
                         + v2.log_tail())
        self.assertTrue(v1.device(d.udid).json().get("enrolled"), "enrolled, seen from v1")

        before = self.migration_rows(dbname)
        third = Spawned([VOUCHD, "migrate", "--config", v1.config_path], name="migrate-after")
        self.assertEqual(third.finish(HEALTHY_DEADLINE), 0,
                         "vouchd migrate after two servers migrated\n" + third.describe())
        self.assertEqual(self.migration_rows(dbname), before,
                         "vouchd migrate after the servers changed schema_migrations")
        for v in (v1, v2):
            self.assertEqual(v.stop(), 0, f"{v.name}: exit status after SIGTERM\n"
                             + v.log_tail())


class SigtermTest(StartupCase):

    def test_sigterm_stops_cleanly(self):
        v = self.new_vouchd("sigterm")
        launch(v)
        self.wait_healthy(v)
        # Some real work first, so the database pool and device paths are in use.
        d = Device(v, suite().ca).enroll()
        r = d.idle()
        self.assertEqual(r.status, 200, f"Idle before SIGTERM: {r!r}")

        offset = v.log_size()
        v.proc.send_signal(signal.SIGTERM)
        try:
            status = v.proc.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            status = None
        log = v.log_tail(60, since=offset)
        v.stop()  # SIGKILL if it is still there; closes the log
        self.assertIsNotNone(status, f"vouchd still running {STOP_DEADLINE:.0f} s after "
                                     f"SIGTERM\n{log}")
        self.assertEqual(status, 0, f"exit status after SIGTERM\n{log}")
        self.assertRegex(log, re.compile(r"\bstopped\b", re.I),
                         "the log does not say vouchd stopped")
        down = healthz_status(v.host, v.port)
        self.assertIsInstance(down, OSError, f"something still answers on {v.port}: {down!r}")
        # The data survived the shutdown: a new vouchd on the same database knows the device.
        again = self.new_vouchd("sigterm-again", dbname=v.dbname)
        launch(again)
        self.wait_healthy(again, what="vouchd restarted after SIGTERM")
        self.assertTrue(again.device(d.udid).json().get("enrolled"),
                        "the device enrolled before SIGTERM")
        d.server = again
        r = d.idle()
        self.assertEqual(r.status, 200, f"Idle after the restart: {r!r}\n" + again.log_tail())
