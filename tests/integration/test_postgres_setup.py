"""deploy/postgres-setup.sql, run with psql against a private PostgreSQL as the runbook says:
it makes a database vouchd can migrate as the role vouch, a second run changes nothing and
reports no error, and an error stops it before the statements after it. Needs no vouchd
running (vouchd migrate checks the result)."""

import os
import subprocess
import tempfile
import unittest

import pg
from harness import REPO, VOUCHD, require_executable, run_tool, unavailable

SETUP_SQL = os.path.join(REPO, "deploy", "postgres-setup.sql")

# What the script creates or sets, as text to compare between runs: the role (its password
# hash too: SCRAM salts it, so setting the same password again would change it), the database
# (its oid changes if it is made again) and its ACL, the role's settings.
SNAPSHOT_SQL = """
SELECT 'role', oid, rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolpassword
  FROM pg_authid WHERE rolname = 'vouch';
SELECT 'database', oid, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datacl
  FROM pg_database WHERE datname = 'vouch';
SELECT 'settings', setdatabase, setconfig
  FROM pg_db_role_setting WHERE setrole = (SELECT oid FROM pg_roles WHERE rolname = 'vouch');
"""


class PostgresSetupTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(pg.PG_BIN, "psql")):
            unavailable(f"PostgreSQL 15 binaries in {pg.PG_BIN}")

    def setUp(self):
        # A cluster of its own per test: the script works on cluster-wide names (the role vouch).
        self.pg = pg.PostgresCluster()
        self.pg.start()
        self.addCleanup(self.pg.cleanup)

    def run_setup(self, password="'first-password'"):
        """psql -f deploy/postgres-setup.sql as the superuser, the way the runbook runs it."""
        argv = [os.path.join(pg.PG_BIN, "psql"), "-X", "-d", self.pg.conninfo()]
        if password is not None:
            argv += ["-v", f"password={password}"]
        return subprocess.run(argv + ["-f", SETUP_SQL], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)

    def snapshot(self):
        return self.pg.psql(SNAPSHOT_SQL)

    def test_second_run_changes_nothing(self):
        first = self.run_setup()
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertNotIn("ERROR", first.stderr)
        before = self.snapshot()
        self.assertIn("role|", before)
        self.assertIn("|vouch|UTF8|", before)  # owned by vouch
        self.assertIn("statement_timeout=30s", before)
        self.assertIn("idle_in_transaction_session_timeout=60s", before)
        self.assertNotIn("=Tc/", before)  # PUBLIC's default CONNECT and TEMPORARY revoked

        # Again, even with another password: the existing role keeps its own.
        second = self.run_setup("'second-password'")
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertNotIn("ERROR", second.stderr)
        self.assertEqual(self.snapshot(), before)

        # And once more without a password at all: nothing is created, so none is needed.
        third = self.run_setup(None)
        self.assertEqual(third.returncode, 0, third.stderr)
        self.assertEqual(self.snapshot(), before)

    def test_vouchd_migrates_the_database_it_makes(self):
        require_executable(VOUCHD, "vouchd")
        r = self.run_setup()
        self.assertEqual(r.returncode, 0, r.stderr)
        # As the role vouch (trust authentication in the test cluster; the password is
        # PostgreSQL's business), with nothing but database_url.
        with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="vouch-setup-") as conf:
            conf.write(f"database_url = host={self.pg.socket_dir} port={self.pg.port} "
                       "user=vouch dbname=vouch\n")
            conf.flush()
            m = run_tool([VOUCHD, "migrate", "--config", conf.name], timeout=120)
        self.assertEqual(m.returncode, 0, m.stdout + m.stderr)
        owners = self.pg.psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                              "WHERE relnamespace = 'public'::regnamespace", "vouch")
        self.assertEqual(owners.split(), ["vouch"])
        # A run after vouchd made its schema still changes nothing and fails on nothing.
        before = self.snapshot()
        again = self.run_setup()
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertNotIn("ERROR", again.stderr)
        self.assertEqual(self.snapshot(), before)

    def test_database_of_another_owner_stops_it(self):
        # A database called vouch that is not vouchd's: the script must stop, not revoke
        # PUBLIC's access to it or go on as if it were its own.
        self.pg.psql("CREATE DATABASE vouch")
        r = self.run_setup()
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)  # psql: stopped by ON_ERROR_STOP
        self.assertIn("its owner is not the role vouch", r.stderr)
        self.assertNotIn("REVOKE", r.stdout)
        snap = self.snapshot()
        self.assertIn("|postgres|UTF8|\n", snap)  # still postgres's, ACL untouched (NULL)
        self.assertNotIn("settings|", snap)

    def test_no_password_for_a_new_role_stops_it(self):
        r = self.run_setup(None)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("give its password", r.stderr)
        self.assertEqual(self.snapshot(), "")  # no role, no database


if __name__ == "__main__":
    unittest.main()
