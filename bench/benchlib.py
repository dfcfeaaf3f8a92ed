"""What every Vouch benchmark shares: the tuned private PostgreSQL, a vouchd to measure, CPU and
memory of the processes involved, and the result rows.

A result row is one JSON line on stdout (bench/run.sh collects them into bench/results.json and
the summary table of bench/results.md):
    {"bench": "...", "figure": "...", "value": 1234.5, "unit": "/s",
     "reference": 2345.6, "ratio": 0.526, "target": ">=0.50", ...extra fields}
reference, ratio and target are null when a figure has none. Beside the rows each benchmark
prints its own table for people.
"""
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import pg  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def postgres_tuning(mem_bytes=None):
    """The postgresql.conf settings the README recommends for vouchd's database, for a machine
    with mem_bytes of memory (default: this one). Durability stays on: a report vouchd answered
    200 is committed and flushed (synchronous_commit = on, fsync = on)."""
    if mem_bytes is None:
        mem_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mem_mb = mem_bytes // (1024 * 1024)
    return {
        "shared_buffers": f"{min(max(mem_mb // 4, 128), 16384)}MB",
        "effective_cache_size": f"{max(mem_mb * 3 // 4, 256)}MB",
        "work_mem": "16MB",
        "maintenance_work_mem": f"{min(max(mem_mb // 16, 64), 2048)}MB",
        "wal_buffers": "64MB",
        "wal_compression": "lz4",
        "max_wal_size": "8GB",
        "min_wal_size": "1GB",
        "checkpoint_timeout": "15min",
        "checkpoint_completion_target": "0.9",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "autovacuum_naptime": "10s",
        "autovacuum_vacuum_cost_limit": "2000",
        "synchronous_commit": "on",
        "max_connections": "200",
    }


def pinned(cpus):
    """For preexec_fn: the child runs on cpus only (None: wherever the scheduler likes)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def tuned_cluster(cpus=None, **overrides):
    """A private PostgreSQL with the recommended settings (and overrides), started. With cpus
    the postmaster starts pinned to them, so every backend it forks inherits the pinning. With
    VOUCH_BENCH_PROFILE=1 it also loads pg_stat_statements and times functions:
    print_postgres_profile() shows them."""
    settings = postgres_tuning()
    settings.update(overrides)
    if os.environ.get("VOUCH_BENCH_PROFILE"):
        settings.update({"shared_preload_libraries": "pg_stat_statements",
                         "pg_stat_statements.track": "all",
                         "pg_stat_statements.track_planning": "on", "track_functions": "all"})
    cluster = pg.PostgresCluster(settings=settings)
    if cpus is None:
        cluster.start()
        return cluster
    # pg_ctl and the postmaster inherit this process's CPU set: pin it while they start.
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        cluster.start()
    finally:
        os.sched_setaffinity(0, mine)
    return cluster


def print_postgres_profile(cluster, dbname):
    """With VOUCH_BENCH_PROFILE=1: the functions and statements that took PostgreSQL's time."""
    if not os.environ.get("VOUCH_BENCH_PROFILE"):
        return
    print("-- PostgreSQL functions by self time (ms): name|calls|total|self")
    print(cluster.psql("SELECT funcname, calls, round(total_time::numeric), "
                       "round(self_time::numeric) FROM pg_stat_user_functions "
                       "ORDER BY self_time DESC LIMIT 15", dbname))
    # Planning is apart from execution: a statement re-planned at every call (a custom plan that
    # the plan cache keeps preferring to its generic one) shows a plan time near its calls.
    print("-- statements by total time: calls|total ms|mean ms|plans|plan ms|rows|query")
    print(cluster.psql("SELECT calls, round(total_exec_time::numeric), "
                       "round(mean_exec_time::numeric, 3), plans, round(total_plan_time::numeric), "
                       "rows, "
                       "left(regexp_replace(query, '\\s+', ' ', 'g'), 120) "
                       "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 30", dbname))
    # An update that is not HOT writes a new entry into every index of its table.
    print("-- row writes by table: table|inserts|updates|HOT updates|deletes")
    print(cluster.psql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
                       "FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 "
                       "ORDER BY n_tup_upd + n_tup_ins DESC LIMIT 12", dbname))


def reset_postgres_profile(cluster, dbname):
    if os.environ.get("VOUCH_BENCH_PROFILE"):
        cluster.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; "
                     "SELECT pg_stat_statements_reset(); SELECT pg_stat_reset();", dbname)


def http(url, token=None, method="GET", body=None, timeout=600, content_type=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (and of its children it waited for)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14..17.
    return sum(int(x) for x in fields[11:15]) / CLOCK_TICKS


def machine_cpu_seconds():
    """Busy CPU seconds of the whole machine so far (every process and the kernel; /proc/stat):
    beside the benchmark's own processes it says whether something else shared the cores."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def peak_rss_mb(pid):
    """The process's peak resident set (VmHWM) in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu_seconds(cluster):
    """CPU seconds of the whole PostgreSQL cluster so far: the postmaster, its live children and
    (through the postmaster's cutime/cstime) the children that exited."""
    with open(os.path.join(cluster.data_dir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    total = cpu_seconds(postmaster)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += sum(int(x) for x in fields[11:13]) / CLOCK_TICKS
    return total


class Vouchd:
    """One vouchd from build with the given configuration keys, up once /healthz answers."""

    def __init__(self, build, tmp, settings, name="vouchd", cpus=None):
        self.port = pg.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = settings.setdefault("admin_token", secrets.token_hex(24))
        settings.setdefault("log_level", "warn")
        self.conf = os.path.join(tmp, f"{name}.conf")
        with open(self.conf, "w") as f:
            f.write(f"listen = 127.0.0.1:{self.port}\n")
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")
        self.log = os.path.join(tmp, f"{name}.log")
        # vouchd reads VOUCH_* variables as configuration keys: only the file counts here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOUCH_")}
        self.proc = subprocess.Popen([os.path.join(build, "server", "vouchd"), "--config",
                                      self.conf], stderr=open(self.log, "w"), env=env,
                                     preexec_fn=pinned(cpus))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"vouchd exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if http(self.url + "/healthz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"vouchd did not become healthy: {self.log_tail()}")

    def log_tail(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-2000:]

    def admin(self, method, path, body=None, content_type=None):
        return http(self.url + path, self.token, method, body, content_type=content_type)

    def cpu_seconds(self):
        return cpu_seconds(self.proc.pid)

    def peak_rss_mb(self):
        return peak_rss_mb(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


class Sim:
    """vouch-sim running in the background (on cpus when given); finish() waits and returns
    (JSON summary, CPU s)."""

    def __init__(self, build, *args, cpus=None):
        import tempfile
        self.what = args[0]
        self.out = tempfile.TemporaryFile(mode="w+")
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([os.path.join(build, "tests", "sim", "vouch-sim"), *args],
                                     stdout=self.out, stderr=self.err, text=True,
                                     preexec_fn=pinned(cpus))

    def stderr_text(self):
        self.err.seek(0)
        return self.err.read()

    def finish(self):
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.returncode != 0:
            sys.exit(f"vouch-sim {self.what} failed ({self.proc.returncode}): "
                     f"{self.stderr_text()[-3000:]}")
        self.out.seek(0)
        return json.loads(self.out.read().strip().splitlines()[-1]), \
            usage.ru_utime + usage.ru_stime


def run_sim(build, *args, cpus=None):
    """Runs vouch-sim to its end (on cpus when given); returns (its JSON summary, its CPU
    seconds)."""
    return Sim(build, *args, cpus=cpus).finish()


def sim_udids(build, simdir):
    out = subprocess.run([os.path.join(build, "tests", "sim", "vouch-sim"), "list", "--dir",
                          simdir], capture_output=True, text=True, check=True).stdout
    return [line.split("\t")[1] for line in out.splitlines()]


def row(bench, figure, value, unit, reference=None, target=None, **extra):
    """Prints one result row as a JSON line; ratio = value / reference when there is one."""
    ratio = round(value / reference, 3) if reference else None
    rec = {"bench": bench, "figure": figure, "value": round(value, 2), "unit": unit,
           "reference": round(reference, 2) if reference is not None else None,
           "ratio": ratio, "target": target}
    rec.update(extra)
    print(json.dumps(rec), flush=True)
    return rec


def fmt_value(value, unit):
    if unit in ("/s",):
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value:,.1f} s"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    return f"{value:,.4g} {unit}".strip()


def print_table(rows):
    """The human table of rows (as row() returns them)."""
    print(f"{'figure':<52} {'value':>14} {'reference':>14} {'ratio':>7} {'target':>8}")
    for r in rows:
        ref = fmt_value(r["reference"], r["unit"]) if r.get("reference") is not None else ""
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ""
        print(f"{r['figure']:<52} {fmt_value(r['value'], r['unit']):>14} {ref:>14} "
              f"{ratio:>7} {r.get('target') or '':>8}")
