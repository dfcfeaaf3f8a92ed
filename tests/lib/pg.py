#!/usr/bin/python3
"""A private, throw-away PostgreSQL 15 cluster for tests.

    pg = PostgresCluster()          # a fresh directory from tempfile.mkdtemp
    pg.start()
    pg.createdb("vouch_test")
    pg.conninfo("vouch_test")       # 'host=<dir> port=<port> user=postgres dbname=vouch_test'
    pg.psql("SELECT 1", "vouch_test")
    pg.stop("fast"); pg.start()     # or pg.restart()
    pg.cleanup()                    # also runs at exit and on SIGTERM/SIGHUP/SIGINT

The server listens only on a unix socket in its own directory (listen_addresses = ''), so several
clusters can run side by side. fsync stays on: the tests check durability across restarts.
initdb refuses to run as root, so when we are root the cluster belongs to the `postgres` user and
its programs run through `runuser -u postgres --`.

Command line (for scripts such as the quickstart):
    python3 tests/lib/pg.py start DIR     # create DIR if needed, initdb once, start, print conninfo
    python3 tests/lib/pg.py stop DIR [MODE]
    python3 tests/lib/pg.py status DIR
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cleanup  # noqa: E402

PG_BIN = os.environ.get("VOUCH_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


class PostgresError(Exception):
    pass


def free_port():
    """A TCP port number nobody listens on right now. With VOUCH_TEST_PORT_SLOT=i/n (test
    runners working in parallel) only ports p with (p >> 1) % n == i, so that two runners never
    pick the same one between choosing and binding it (Linux hands out odd ports to bind(), so
    the lowest bit says nothing)."""
    slot, slots = 0, 1
    if os.environ.get("VOUCH_TEST_PORT_SLOT"):
        slot, slots = (int(x) for x in os.environ["VOUCH_TEST_PORT_SLOT"].split("/"))
    for _ in range(10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if (port >> 1) % slots == slot:
            return port
    raise OSError("no free TCP port in this runner's slot")


def _as_root():
    return os.geteuid() == 0


def _pg_owner():
    return pwd.getpwnam(PG_USER) if _as_root() else None


class PostgresCluster:
    """One PostgreSQL cluster in base_dir (created with mkdtemp when not given)."""

    def __init__(self, base_dir=None, port=None, keep=False, settings=None):
        self.settings = dict(settings or {})  # more postgresql.conf lines, after the test ones
        self.owns_dir = base_dir is None
        if base_dir is None:
            parent = os.environ.get("VOUCH_PG_TMPDIR")
            if parent is None and _as_root():
                parent = "/tmp"  # a TMPDIR under /root would be out of reach for postgres
            base_dir = tempfile.mkdtemp(prefix="vouch-pg-", dir=parent)
        self.base_dir = os.path.abspath(base_dir)
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = self.base_dir
        self.log_file = os.path.join(self.base_dir, "postgres.log")
        self.port_file = os.path.join(self.base_dir, "port")
        self.keep = keep or bool(os.environ.get("VOUCH_KEEP_TEST_DIRS"))
        if port is None and os.path.exists(self.port_file):
            with open(self.port_file) as f:
                port = int(f.read().strip())
        self.port = port if port is not None else free_port()
        self._cleanup_key = None

    # -- running programs -------------------------------------------------------------------
    def _run(self, argv, check=True, timeout=120):
        if _as_root():
            argv = ["runuser", "-u", PG_USER, "--"] + argv
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd="/", timeout=timeout)
        if check and proc.returncode != 0:
            raise PostgresError(
                f"{' '.join(argv)} exited {proc.returncode}:\n"
                f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
                f"{self.log_tail()}")
        return proc

    def log_tail(self, lines=30):
        try:
            with open(self.log_file, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            return ""
        return "--- postgres.log (tail) ---\n" + "".join(tail)

    # -- life cycle -------------------------------------------------------------------------
    def init(self):
        """initdb once; later calls do nothing."""
        if os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            return
        os.makedirs(self.base_dir, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        owner = _pg_owner()
        if owner is not None:
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)
            if self._run(["test", "-w", self.base_dir], check=False).returncode != 0:
                raise PostgresError(f"user {PG_USER} cannot write {self.base_dir}: every parent "
                                    "directory must be searchable by it (chmod o+x)")
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data_dir, "-U", PG_USER,
                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# vouch tests\n"
                    "listen_addresses = ''\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    f"port = {self.port}\n"
                    "fsync = on\n"
                    "synchronous_commit = on\n"
                    "full_page_writes = on\n"
                    "max_connections = 100\n")
            for key, value in self.settings.items():
                f.write(f"{key} = '{value}'\n")
        with open(self.port_file, "w") as f:
            f.write(f"{self.port}\n")

    def start(self):
        self.init()
        if self._cleanup_key is None and self.owns_dir:
            self._cleanup_key = cleanup.register(self.cleanup)
        if self.is_running():
            return
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-l", self.log_file,
                   "-w", "-t", "60", "-s", "start"])

    def stop(self, mode="fast"):
        """Stop the server: mode is smart, fast or immediate (pg_ctl -m)."""
        if not self.is_running():
            return
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "-m", mode,
                   "-w", "-t", "60", "-s", "stop"])

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def is_running(self):
        if not os.path.exists(os.path.join(self.data_dir, "PG_VERSION")):
            return False
        proc = self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data_dir, "status"],
                         check=False)
        return proc.returncode == 0

    def cleanup(self):
        """Stop the server (immediately) and remove its directory unless asked to keep it."""
        if self._cleanup_key is not None:
            cleanup.unregister(self._cleanup_key)
            self._cleanup_key = None
        try:
            self.stop("immediate")
        finally:
            if self.owns_dir and not self.keep:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------
    def conninfo(self, dbname="postgres"):
        return f"host={self.socket_dir} port={self.port} user={PG_USER} dbname={dbname}"

    def psql(self, sql, dbname="postgres", check=True, timeout=60):
        """Run SQL with psql; returns stdout (unaligned, tuples only, '|' between columns)."""
        proc = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-d", self.conninfo(dbname), "-f", "-"],
            input=sql.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and proc.returncode != 0:
            raise PostgresError(f"psql failed ({proc.returncode}): {sql}\n"
                                f"{proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode(errors="replace")

    def createdb(self, name):
        if not name.replace("_", "").isalnum():
            raise ValueError(f"bad database name {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.conninfo(name)

    def dropdb(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _main(argv):
    if len(argv) < 3 or argv[1] not in ("start", "stop", "status"):
        print(__doc__.split("Command line")[1], file=sys.stderr)
        return 2
    cluster = PostgresCluster(base_dir=argv[2], keep=True)
    if argv[1] == "start":
        cluster.start()
        print(cluster.conninfo())
    elif argv[1] == "stop":
        cluster.stop(argv[3] if len(argv) > 3 else "fast")
    else:
        running = cluster.is_running()
        print("running" if running else "stopped")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
