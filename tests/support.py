"""Helpers shared by tests and benchmarks: a real Tansu broker, a real moto server, throwaway
databases, events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
from confluent_kafka import Producer
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect, drop_database, ensure_database
from loganalyzer.db.migrate import migrate
from loganalyzer.generator.traffic import TrafficModel
from loganalyzer.kafka_admin import ensure_topic
from loganalyzer.platform.local import broker_spec, moto_spec
from loganalyzer.platform.processes import free_port, port_open

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def airflow_home_env(home: Path) -> dict[str, str]:
    """Airflow with its own home and a SQLite metadata file in it, the project's DAGs and plugins,
    no examples: what the DAG tests and the soak's DAG process run on."""
    root = Path(__file__).resolve().parents[1]
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


@contextmanager
def _server(name: str, argv: list[str], port: int, log_dir: Path) -> Iterator[None]:
    """`argv` as its own process (logging to log_dir), until its port answers; killed afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}-{port}.log", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while not port_open("127.0.0.1", port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {log_dir}")
                time.sleep(0.05)
            yield
        finally:
            proc.kill()
            proc.wait()


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A real moto server (S3, SQS, DynamoDB, CloudFormation, ...) as its own process, as
    `loganalyzer up` starts it."""
    port = free_port()
    with _server("moto", list(moto_spec(port).argv), port, log_dir):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def tansu_broker(log_dir: Path) -> Iterator[str]:
    """A real Kafka-protocol broker (Tansu, in memory) on a free loopback port, with the same
    command line as `loganalyzer up`."""
    port = free_port()
    with _server("tansu", list(broker_spec(port).argv), port, log_dir):
        yield f"127.0.0.1:{port}"


@contextmanager
def fresh_database(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A new, migrated database, dropped afterwards."""
    url = make_conninfo(admin_url, dbname=f"la_test_{uuid.uuid4().hex[:12]}")
    ensure_database(url)
    try:
        with connect(url) as conn:
            migrate(conn)
        yield url
    finally:
        drop_database(url)


def new_topic(bootstrap: str, partitions: int = 4) -> str:
    topic = f"logs-{uuid.uuid4().hex[:10]}"
    ensure_topic({"bootstrap.servers": bootstrap}, topic, partitions)
    return topic


def event_doc(i: int, base: datetime | None = None, service: str | None = None) -> dict[str, Any]:
    base = base or datetime.now(UTC) - timedelta(hours=1)
    return {
        "timestamp": (base + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
        "level": ("INFO", "warning", "err", "DEBUG")[i % 4],
        "service": service or f"svc-{i % 7}",
        "host": f"host-{i % 3}",
        "message": f"request {i} handled in {i % 250} ms",
        "metadata": {"request_id": f"r-{i}", "i": i},
    }


def produce(bootstrap: str, topic: str, values: list[bytes | None], keys: list[bytes] | None = None) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "batch.num.messages": 10000})
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for i, v in enumerate(values):
        key = keys[i] if keys else f"k{i % 16}".encode()
        while True:
            try:
                p.produce(topic, value=v, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "producer could not flush"
    assert not errors, f"delivery errors: {errors[:3]}"


def valid_values(n: int, start: int = 0) -> list[bytes | None]:
    base = datetime.now(UTC) - timedelta(hours=1)
    return [orjson.dumps(event_doc(i, base)) for i in range(start, start + n)]


def count(url: str, sql: str = "SELECT count(*) FROM logs") -> int:
    with connect(url) as conn:
        row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster of our own, so a test can stop and restart the server.

    PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user.
    """

    def __init__(self) -> None:
        import glob
        import shutil
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(bins[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="la-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as_user, str(self.bin / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "pg.log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def cleanup(self) -> None:
        import shutil

        with suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# -- benchmarks: a consumer process against a topic, and how far it got ---------------------------


def consumer_env(url: str, bootstrap: str, topic: str, group: str, **overrides: str) -> dict[str, str]:
    """The environment of a `loganalyzer consume` process for one topic and group."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP_ID": group,
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "CONSUMER_METRICS_PORT": "off",
        "LOG_LEVEL": "INFO",
        **overrides,
    }


def start_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`loganalyzer consume` as its own process, output to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "loganalyzer", "consume"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


# -- CPU accounting for the benchmarks (Linux /proc): where a run's CPU went ----------------------
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def pids_named(prefix: str) -> list[int]:
    """Processes whose command name starts with `prefix` (the kernel cuts names at 15 chars)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                comm = (d / "comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(prefix):
                pids.append(int(d.name))
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / _TICK


class CpuSplit(NamedTuple):
    """Where the CPU of a run went, in CPU seconds: the 2-core machine's budget is 2 x wall time."""

    consumers: float
    postgres: float
    broker: float
    machine: float

    def since(self, earlier: CpuSplit) -> CpuSplit:
        return CpuSplit(*(b - a for a, b in zip(earlier, self, strict=True)))


def cpu_of(consumers: list[int], postgres: list[int], broker: list[int]) -> CpuSplit:
    """CPU seconds used so far by each group of processes, and by the whole machine."""
    return CpuSplit(
        sum(map(cpu_seconds, consumers)),
        sum(map(cpu_seconds, postgres)),
        sum(map(cpu_seconds, broker)),
        machine_busy_seconds(),
    )


def stored_records(conn: psycopg.Connection) -> int:
    """Kafka records (rows and dead letters) committed to the database, from ingest_offsets.

    Takes an open connection: benchmarks poll this every few ms, and a new connection each time
    forks a PostgreSQL backend, CPU taken from the very thing being measured."""
    row = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets").fetchone()
    return int(row[0]) if row else 0


def wait_stored(url: str, n: int, proc: subprocess.Popen[bytes], log: Path) -> float:
    """Block until n records are stored; exit the benchmark if the consumer dies first.

    Returns the rate (records/s) they were stored at from the first look that found any stored
    on: for a consumer started on a backlog, what it does flat out, its start-up left out (NaN
    when the first such look already found all n)."""
    first: tuple[float, int] | None = None
    with connect(url, autocommit=True) as conn:
        while (stored := stored_records(conn)) < n:
            if proc.poll() is not None:
                sys.exit(f"consumer died; see {log}")
            if first is None and stored > 0:
                first = (time.perf_counter(), stored)
            time.sleep(0.2)
    if first is None:
        return float("nan")
    return (n - first[1]) / max(time.perf_counter() - first[0], 1e-9)


def traffic(model: TrafficModel, start: datetime, end: datetime) -> tuple[list[bytes | None], list[bytes]]:
    """The generator's encoded records in [start, end) as (values, keys) for `produce`."""
    values: list[bytes | None] = []
    keys: list[bytes] = []
    for r in model.records(start, end):
        values.append(r.value)
        keys.append(r.key)
    return values, keys
