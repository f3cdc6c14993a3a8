"""Soak: mixed traffic with incidents at a steady rate for `--minutes`, with the API under read
load and the DAGs running, every process's memory watched throughout.

1. a throwaway database, a Tansu broker, a moto endpoint (the export bucket and the summaries
   table, for the cost DAG), MLflow on SQLite;
2. `--history-minutes` (80) of the same generator's traffic before the live part, produced as
   fast as possible, so that every service is past detection's warm-up (20 minutes for the
   rules, 30 for new error patterns) when the first live incident starts; the IsolationForest
   is trained on that history (`loganalyzer model train`, needs an hour of a service's windows)
   and promoted, and the consumer picks it up without a restart;
3. live: `loganalyzer generate` (12 services, an incident of a rotating type every 4 minutes,
   1 % malformed records, real time, event time continuing from the history's end) into
   `loganalyzer consume` (detection on); meanwhile `loganalyzer serve` answers `--api-clients`
   concurrent readers (anomalies, hourly metrics, log search of the last 15 minutes, an admin
   key; latency recorded), and bench/soak_dags.py runs `hourly_rollup` every minute and
   `cost_snapshot` every 5 minutes through `dag.test()`;
4. every 5 s the RSS of the consumer, the API server and the DAG process (with children).

Printed at the end:
- per process: RSS after start-up, peak, end, and the least-squares slope over the second half
  of the live part (MB per minute: a leak shows as a steady positive slope; the first half holds
  the warm-up of caches, pools and detection state);
- throughput: live events stored per second next to the offered rate of the same run, and the
  rate at which the history backlog was stored (the consumer's capacity on this machine then);
- detection lag of the live part (`loganalyzer_detection_lag_seconds`: Kafka arrival to commit
  of each anomaly change) and, per incident, its delay in event time to the row;
- completeness by the generator's own ids: the bench regenerates both streams (same seeds, same
  start, same incidents: the generator is deterministic) and checks that every request id is
  in `logs` exactly once and nothing else is, and that `dead_letters` holds as many records as
  the generator made malformed. Kafka offsets are not used (Tansu's watermarks are wrong);
- each incident of the ground truth that started at least 2 minutes before the end: found once,
  more than once, or missed (an anomaly of its expected type on its service whose window
  overlaps the incident ±5 minutes, as bench/bench_detection.py matches), and the live
  anomalies that overlap no incident;
- the API's latency (p50/p99 per endpoint group, per third of the run) and non-200 answers; the
  DAG runs and their failures.

Usage: .venv/bin/python bench/bench_soak.py [--minutes 30] [--rate 500] [--history-minutes 80]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_latency import delta, quantile, scrape  # noqa: E402
from http_load import request_once  # noqa: E402

from loganalyzer.db.connection import connect  # noqa: E402
from loganalyzer.generator.incidents import EXPECTED_ANOMALY, demo_incidents  # noqa: E402
from loganalyzer.generator.producer import KafkaSink  # noqa: E402
from loganalyzer.generator.services import CATALOGUE  # noqa: E402
from loganalyzer.generator.traffic import TrafficModel  # noqa: E402
from loganalyzer.kafka_admin import ensure_topic  # noqa: E402
from loganalyzer.platform.airflow import process_tree_rss  # noqa: E402
from loganalyzer.platform.processes import free_port, port_open  # noqa: E402
from tests.support import (  # noqa: E402
    airflow_home_env,
    consumer_env,
    count,
    fresh_database,
    moto_server,
    start_consumer,
    tansu_broker,
)

LIVE_SEED = 1  # `loganalyzer generate`'s default seed
HISTORY_SEED = 2
INVALID_RATE = 0.01
SLACK = timedelta(minutes=5)
SAMPLE_SECONDS = 5.0
#: words of the generator's error templates (docs/generator.md): what an operator searches for
SEARCH_WORDS = ("timeout", "failed", "declined", "deadlock", "unavailable", "rejected", "conflict")


# -- memory --------------------------------------------------------------------------------------


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) pairs, in MB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (v - mv) for t, v in samples) / den if den else 0.0


# -- the API's readers ---------------------------------------------------------------------------


@dataclass
class ReadLoad:
    """`clients` keep-alive connections asking the API in turn, each pausing `pause` s between
    requests (a few dashboards and people, not a benchmark's saturation)."""

    port: int
    key: str
    clients: int
    pause: float = 0.2
    #: (seconds since start, endpoint group, latency s, HTTP status)
    results: list[tuple[float, str, float, int]] = field(default_factory=list)
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def paths(self, rng: random.Random) -> tuple[str, str]:
        services = [s.name for s in CATALOGUE]
        group = rng.choice(("anomalies", "metrics", "search"))
        if group == "anomalies":
            extra = rng.choice(("", f"&service={rng.choice(services)}", "&status=open"))
            return group, f"/api/v1/anomalies?limit=50{extra}"
        if group == "metrics":
            return group, f"/api/v1/metrics/hourly?limit=100&service={rng.choice(services)}"
        since = quote((datetime.now(UTC) - timedelta(minutes=15)).isoformat(timespec="seconds"))
        return group, f"/api/v1/logs/search?q={rng.choice(SEARCH_WORDS)}&limit=50&from={since}"

    async def _client(self, k: int, t0: float) -> None:
        rng = random.Random(k)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while not self._stop.is_set():
                group, path = self.paths(rng)
                raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {self.key}\r\n\r\n".encode()
                start = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(request_once(reader, writer, raw), 60)
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    self.failures += 1
                    writer.close()
                    while not self._stop.is_set():  # the server restarting, or stopped at the end
                        await asyncio.sleep(1)
                        try:
                            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                            break
                        except OSError:
                            self.failures += 1
                    continue
                self.results.append((start - t0, group, time.perf_counter() - start, status))
                await asyncio.sleep(self.pause)
        finally:
            writer.close()

    def start(self, t0: float) -> None:
        async def run() -> None:
            await asyncio.gather(*(self._client(k, t0) for k in range(self.clients)))

        self._thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(90)


# -- the platform's processes ------------------------------------------------------------------


def airflow_env(home: Path, url: str, aws_endpoint: str) -> dict[str, str]:
    """The DAG process's environment: its own AIRFLOW_HOME, the soak's database and moto."""
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(url)
    return {
        **os.environ,
        **airflow_home_env(home),
        "AIRFLOW_CONN_LOGANALYZER_DB": (
            f"postgres://{d.get('user', 'postgres')}@{d.get('host', '127.0.0.1')}:"
            f"{d.get('port', 5432)}/{d['dbname']}"
        ),
        "AIRFLOW_CONN_LOGANALYZER_AWS": json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": aws_endpoint, "region_name": "us-east-1"},
            }
        ),
    }


def migrated_airflow_home(home: Path, env: dict[str, str]) -> None:
    """A migrated metadata database, copied from the tests' template when there is one (the
    migration costs 10-180 s on a loaded machine)."""
    from importlib.metadata import version

    home.mkdir(parents=True, exist_ok=True)
    template = ROOT / ".state" / "test-airflow" / f"airflow-{version('apache-airflow-core')}.db"
    if not template.exists():
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=900)
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "airflow.db", template.with_suffix(".tmp"))
        template.with_suffix(".tmp").replace(template)
    else:
        shutil.copyfile(template, home / "airflow.db")


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- completeness by the generator's ids ---------------------------------------------------------


def expected_ids(t_hist: datetime, t0: datetime, t1: datetime, rate: float) -> Iterator[str | int]:
    """Every request id the two generators produced (the same models, seeds and incidents as
    they ran), then the number of malformed records they made (the last item)."""
    invalid = 0
    for seed, start, end, incidents in (
        (HISTORY_SEED, t_hist, t0, []),
        (LIVE_SEED, t0, t1, demo_incidents(t0)),
    ):
        model = TrafficModel(CATALOGUE, rate, seed=seed, incidents=incidents, invalid_rate=INVALID_RATE)
        for event in model.events(start, end):
            yield str(event.metadata["request_id"])
        invalid += model.by_level.get("INVALID", 0)
    yield invalid


@dataclass
class Completeness:
    valid: int
    invalid: int
    missing: int
    duplicated: int
    unknown: int
    rows: int
    dead_letters: int

    @property
    def ok(self) -> bool:
        return (self.missing, self.duplicated, self.unknown) == (
            0,
            0,
            0,
        ) and self.dead_letters == self.invalid


def check_completeness(
    url: str, t_hist: datetime, t0: datetime, t1: datetime, rate: float, wait: float
) -> Completeness:
    """Load the generators' ids into a temporary table, wait until as many rows are stored (at
    most `wait` s), then compare id by id."""
    with connect(url) as conn:
        conn.execute("CREATE TEMP TABLE soak_expected (request_id text)")
        invalid = 0
        valid = 0
        with conn.cursor().copy("COPY soak_expected (request_id) FROM STDIN") as cp:
            for item in expected_ids(t_hist, t0, t1, rate):
                if isinstance(item, int):
                    invalid = item
                else:
                    cp.write_row((item,))
                    valid += 1
        conn.commit()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            rows = int(conn.execute("SELECT count(*) FROM logs").fetchone()[0])  # type: ignore[index]
            dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])  # type: ignore[index]
            conn.commit()
            if rows >= valid and dead >= invalid:
                break
            time.sleep(2)
        conn.execute("CREATE INDEX ON soak_expected (request_id)")
        conn.execute("ANALYZE soak_expected")
        missing = conn.execute(
            "SELECT count(*) FROM soak_expected e WHERE NOT EXISTS "
            "(SELECT 1 FROM logs l WHERE l.metadata->>'request_id' = e.request_id)"
        ).fetchone()
        per_id = conn.execute(
            "SELECT count(*) FILTER (WHERE e.request_id IS NULL), "
            "       coalesce(sum(n - 1) FILTER (WHERE e.request_id IS NOT NULL), 0) "
            "FROM (SELECT metadata->>'request_id' AS rid, count(*) AS n FROM logs GROUP BY 1) l "
            "LEFT JOIN soak_expected e ON e.request_id = l.rid"
        ).fetchone()
        rows = int(conn.execute("SELECT count(*) FROM logs").fetchone()[0])  # type: ignore[index]
        dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])  # type: ignore[index]
    assert missing is not None and per_id is not None
    return Completeness(valid, invalid, int(missing[0]), int(per_id[1]), int(per_id[0]), rows, dead)


# -- incidents ----------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class IncidentResult:
    type: str
    service: str
    start: datetime
    end: datetime
    rows: int
    delay_min: float | None  # event time from the start to the first matching row's release


@dataclass
class Unmatched:
    """Anomalies that overlap no incident, by where they fall."""

    live: list[str]  # false alarms of the live part
    history: int  # window before t0: the history (detection's warm-up included)
    end: int  # volume drops reaching past t1: every service goes silent when the generator stops


def match_incidents(
    url: str, truth: Path, t0: datetime, t1: datetime
) -> tuple[list[IncidentResult], Unmatched]:
    """Each incident of the ground truth that started ≥ 2 minutes before `t1`, with its matching
    rows, and the anomalies that overlap no incident."""
    with connect(url) as conn:
        anomalies = conn.execute(
            "SELECT service, anomaly_type, window_start, window_end, details->>'emitted_at' FROM anomalies"
        ).fetchall()
    incidents = [json.loads(line) for line in truth.read_text().splitlines() if line.strip()]
    incidents = [i for i in incidents if parse_time(i["start"]) <= t1 - timedelta(minutes=2)]
    out: list[IncidentResult] = []
    for inc in incidents:
        start, end = parse_time(inc["start"]), parse_time(inc["end"])
        kind = EXPECTED_ANOMALY[inc["type"]]
        hits = [
            a
            for a in anomalies
            if a[0] == inc["service"] and a[1] == kind and a[2] <= end + SLACK and a[3] >= start - SLACK
        ]
        delay = None
        if hits:
            released = min(parse_time(a[4]) if a[4] else a[3] for a in hits)
            delay = max(0.0, (released - start).total_seconds() / 60)
        out.append(IncidentResult(inc["type"], inc["service"], start, end, len(hits), delay))
    unmatched = Unmatched([], 0, 0)
    for service, kind, a_start, a_end, _ in anomalies:
        near = any(
            i["service"] == service
            and a_start <= parse_time(i["end"]) + SLACK
            and a_end >= parse_time(i["start"]) - SLACK
            for i in incidents
        )
        if near:
            continue
        if a_start < t0:
            unmatched.history += 1
        elif kind == "log_volume_drop" and a_end > t1:
            unmatched.end += 1
        else:
            unmatched.live.append(f"{kind} on {service} at +{(a_start - t0).total_seconds() / 60:.0f} min")
    return out, unmatched


# -- the run ------------------------------------------------------------------------------------


def broker_backlog(port: int) -> int:
    """Records waiting in the broker for the consumer: its `loganalyzer_consumer_lag`, summed."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1
    return sum(
        int(float(line.rpartition(" ")[2]))
        for line in text.splitlines()
        if line.startswith("loganalyzer_consumer_lag{")
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def wait_rows(
    url: str, n: int, timeout: float, consumer: subprocess.Popen[bytes], *, give_up: bool = True
) -> bool:
    """Until `logs` + `dead_letters` hold `n` rows. After `timeout` s: exit, or with
    give_up=False say so and return False (the rest of the report still counts)."""
    start = time.monotonic()
    sql = "SELECT (SELECT count(*) FROM logs) + (SELECT count(*) FROM dead_letters)"
    while count(url, sql) < n:
        if consumer.poll() is not None:
            raise SystemExit(f"the consumer exited with {consumer.returncode}")
        if time.monotonic() - start > timeout:
            message = f"only {count(url, sql)} of {n} records stored after {timeout:.0f} s"
            if give_up:
                raise SystemExit(message)
            print(f"WARNING: {message}", flush=True)
            return False
        time.sleep(1)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="live minutes (default 30)")
    ap.add_argument("--rate", type=float, default=500.0, help="generator's mean events/s over a day")
    ap.add_argument("--history-minutes", type=float, default=80.0, help="traffic before the live part")
    ap.add_argument("--api-clients", type=int, default=4, help="concurrent API readers")
    ap.add_argument("--dag-every", type=float, default=60.0, help="seconds between hourly_rollup runs")
    ap.add_argument(
        "--keep-logs", type=Path, help="copy the processes' logs, the ground truth and the anomalies here"
    )
    args = ap.parse_args()
    if args.history_minutes < 70:
        raise SystemExit("--history-minutes must be at least 70: the forest needs an hour of each service")
    load_before = os.getloadavg()
    print(f"soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_before[0]:.1f}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp_name,
        tansu_broker(Path(tmp_name)) as broker,
        fresh_database() as url,
        moto_server(Path(tmp_name)) as aws_endpoint,
    ):
        tmp = Path(tmp_name)
        topic = "logs-soak"
        ensure_topic({"bootstrap.servers": broker}, topic, 4)
        truth = tmp / "ground_truth.jsonl"
        metrics_port, api_port = free_port(), free_port()
        mlflow_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        aws = {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        base = {
            **os.environ,
            **aws,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": broker,
            "KAFKA_TOPIC": topic,
        }
        subprocess.run(
            [sys.executable, "-m", "loganalyzer", "aws", "bootstrap"],
            env=base,
            check=True,
            capture_output=True,
        )
        cenv = consumer_env(
            url,
            broker,
            topic,
            "soak",
            CONSUMER_METRICS_PORT=str(metrics_port),
            MLFLOW_TRACKING_URI=mlflow_uri,
            MODEL_REFRESH_SECONDS="10",
        )
        home = tmp / "airflow"
        aenv = {**base, **airflow_env(home, url, aws_endpoint)}
        migrated_airflow_home(home, aenv)
        key = subprocess.run(
            [sys.executable, "-m", "loganalyzer", "keys", "create", "--tenant", "default", "--admin",
             "--label", "soak"],
            env=base, check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip

        t0 = datetime.now(UTC).replace(microsecond=0)
        t_hist = t0 - timedelta(minutes=args.history_minutes)
        span = timedelta(minutes=args.minutes)
        consumer = start_consumer(cenv, tmp / "consumer.log")
        try:
            with contextlib.ExitStack() as stack:
                # the API and the DAG loop from the start: warm when the live part begins
                api = stack.enter_context(
                    process([sys.executable, "-m", "loganalyzer", "serve", "--port", str(api_port)],
                            {**base, "LOG_LEVEL": "WARNING"}, tmp / "api.log")
                )  # fmt: skip
                dags = stack.enter_context(
                    process([sys.executable, str(ROOT / "bench" / "soak_dags.py"),
                             "--every", str(args.dag_every)], aenv, tmp / "dags.log")
                )  # fmt: skip
                deadline = time.monotonic() + 300
                while not port_open("127.0.0.1", api_port):
                    if api.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the API did not start; see {tmp / 'api.log'}")
                    time.sleep(0.2)
                # history first, as fast as it goes; then the live generator continues from t0
                started = time.monotonic()
                sink = KafkaSink({"bootstrap.servers": broker}, topic)
                history = TrafficModel(CATALOGUE, args.rate, seed=HISTORY_SEED, invalid_rate=INVALID_RATE)
                n_history = 0
                for rec in history.records(t_hist, t0):
                    sink.send(rec.key, rec.value)
                    n_history += 1
                    if n_history % 10_000 == 0:
                        sink.poll()
                sink.flush()
                produced_history_in = time.monotonic() - started
                with open(tmp / "generator.log", "wb") as generator_log:
                    generator = subprocess.Popen(
                    [sys.executable, "-m", "loganalyzer", "generate", "--rate", str(args.rate),
                     "--speedup", "1", "--start", t0.isoformat(),
                     "--duration", f"{int(span.total_seconds())}s",
                     "--seed", str(LIVE_SEED), "--demo-incidents", "--invalid-rate", str(INVALID_RATE),
                     "--ground-truth", str(truth), "--quiet"],
                    env=base, stdout=subprocess.DEVNULL, stderr=generator_log,
                    )  # fmt: skip
                live_wall0 = time.monotonic()
                event_time_behind = live_wall0 - started  # event time runs this far behind the wall clock
                wait_rows(url, n_history, 1800, consumer)
                history_capacity = n_history / (time.monotonic() - started)
                trained = subprocess.run(
                    [sys.executable, "-m", "loganalyzer", "model", "train", "--hours",
                     f"{(args.history_minutes - 1) / 60:.3f}", "--until", t0.isoformat()],
                    env={**cenv, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True, cwd=tmp,
                )  # fmt: skip
                print(
                    f"history: {n_history:,} records produced in {produced_history_in:.0f} s, all stored "
                    f"{time.monotonic() - started:.0f} s after the first "
                    f"({history_capacity:,.0f} records/s); "
                    f"model: {' '.join((trained.stdout + trained.stderr).split())}",
                    flush=True,
                )
                lag_before = scrape(metrics_port).get("loganalyzer_detection_lag_seconds", {})
                load = ReadLoad(api_port, key, args.api_clients)
                load.start(live_wall0)
                samples: dict[str, list[tuple[float, float]]] = {
                    "consumer": [],
                    "API": [],
                    "Airflow DAGs": [],
                }
                pids = {"consumer": consumer.pid, "API": api.pid, "Airflow DAGs": dags.pid}
                backlog: list[tuple[float, int]] = []  # (s, records waiting in the broker)
                while generator.poll() is None:
                    now = time.monotonic() - live_wall0
                    for name, pid in pids.items():
                        samples[name].append((now, process_tree_rss(pid) / 2**20))
                    backlog.append((now, broker_backlog(metrics_port)))
                    if consumer.poll() is not None:
                        raise SystemExit(f"the consumer exited with {consumer.returncode}")
                    time.sleep(SAMPLE_SECONDS)
                live_seconds = time.monotonic() - live_wall0
                t1 = t0 + span
                # the generator's own count (its last line) says when the consumer has caught up
                said = re.search(r"produced ([\d,]+) events", (tmp / "generator.log").read_text())
                n_live = int(said.group(1).replace(",", "")) if said else 0
                wait_rows(url, n_history + n_live, 1800, consumer, give_up=False)
                drained_after = time.monotonic() - live_wall0
                completeness = check_completeness(url, t_hist, t0, t1, args.rate, wait=60)
                load.stop()
                dag_lines = (tmp / "dags.log").read_text(errors="replace").splitlines()
            lag = delta(scrape(metrics_port).get("loganalyzer_detection_lag_seconds", {}), lag_before)
        finally:
            consumer.terminate()
            consumer.wait(60)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for f in tmp.glob("*.log"):
                    shutil.copy(f, args.keep_logs / f.name)
                if truth.exists():
                    shutil.copy(truth, args.keep_logs / truth.name)
        results, unmatched = match_incidents(url, truth, t0, t1)
        if args.keep_logs:
            with connect(url) as conn:
                rows = conn.execute("SELECT to_jsonb(a) FROM anomalies a ORDER BY window_start").fetchall()
            (args.keep_logs / "anomalies.json").write_text(json.dumps([r[0] for r in rows], indent=1))
            (args.keep_logs / "samples.json").write_text(
                json.dumps({"rss_mb": samples, "broker_backlog": backlog, "t0": t0.isoformat()})
            )
    load_after = os.getloadavg()
    live_events = completeness.valid + completeness.invalid - n_history

    print()
    print(
        f"soak, measured {datetime.now(UTC):%Y-%m-%d}: {args.minutes:g} live minutes at --rate {args.rate:g} "
        f"after {args.history_minutes:g} minutes of history; load average {load_before[0]:.1f} at the "
        f"start, {load_after[0]:.1f} / {load_after[1]:.1f} / {load_after[2]:.1f} at the end"
    )
    print(
        f"  generator exit code {generator.returncode}; event time ran {event_time_behind:.0f} s behind the "
        f"wall clock (the history's production)"
    )
    if live_events != n_live:
        print(f"  WARNING: the generator reported {n_live:,} live events, its regeneration {live_events:,}")
    print(
        f"  throughput: {live_events / live_seconds:,.1f} live events/s offered, all stored "
        f"{drained_after - live_seconds:.0f} s after the generator's end; same run's reference: the "
        f"history backlog stored at {history_capacity:,.0f} records/s"
    )
    c = completeness
    print(
        f"  every produced event in PostgreSQL: {'yes' if c.ok else 'NO'}: {c.valid:,} request ids "
        f"expected, {c.missing} missing, {c.duplicated} stored twice, {c.unknown} unknown rows "
        f"({c.rows:,} rows); {c.dead_letters:,} dead letters for {c.invalid:,} malformed records"
    )
    for name, ss in samples.items():
        rss = [v for t, v in ss if t >= 10]
        second_half = [s for s in ss if s[0] >= live_seconds / 2]
        print(
            f"  {name} RSS: {rss[0]:.0f} MB at 10 s, peak {max(rss):.0f} MB, end {rss[-1]:.0f} MB; "
            f"slope over the second half {slope_per_minute(second_half):+.2f} MB/min ({len(ss)} samples)"
        )
    waiting = [b for _, b in backlog if b >= 0]
    if waiting:
        worst = max(backlog, key=lambda x: x[1])
        print(
            f"  records waiting in the broker (the consumer's lag): "
            f"median {statistics.median(waiting):,.0f}, "
            f"max {worst[1]:,} at {worst[0] / 60:.0f} min, {waiting[-1]:,} when the generator stopped"
        )
    print(
        f"  detection lag (live part): p50 {quantile(lag, 0.5)}, p99 {quantile(lag, 0.99)}, max "
        f"{quantile(lag, 1.0)} over {int(lag.get('+Inf', 0))} anomaly changes"
    )
    once = sum(1 for r in results if r.rows == 1)
    more = sum(1 for r in results if r.rows > 1)
    missed = sum(1 for r in results if r.rows == 0)
    print(f"  incidents: {once} found once, {more} more than once, {missed} missed (of {len(results)})")
    for r in results:
        found = f"{r.rows} row(s), {r.delay_min:.1f} min after its start" if r.rows else "MISSED"
        print(
            f"    +{(r.start - t0).total_seconds() / 60:4.0f} min {r.type:<20} {r.service:<16} "
            f"{(r.end - r.start).total_seconds() / 60:.0f} min: {found}"
        )
    print(
        f"  live anomalies overlapping no incident (false alarms): {len(unmatched.live)}"
        + (f" ({'; '.join(unmatched.live[:8])})" if unmatched.live else "")
        + f"; in the history: {unmatched.history}; volume drops when the generator stopped (every "
        f"service silent, as detection should say): {unmatched.end}"
    )
    print(
        f"  API readers: {args.api_clients}, {len(load.results):,} requests, "
        f"{load.failures} connection failures"
    )
    first, last = (
        (min(r[0] for r in load.results), max(r[0] for r in load.results)) if load.results else (0, 1)
    )
    thirds = [first + (last - first) * k / 3 for k in range(3)] + [last + 1]
    for group in ("anomalies", "metrics", "search"):
        lat = [r for r in load.results if r[1] == group]
        ok = [r[2] * 1000 for r in lat if r[3] == 200]
        per_third = []
        for a, b in itertools.pairwise(thirds):
            part = [r[2] * 1000 for r in lat if a <= r[0] < b and r[3] == 200]
            per_third.append(f"{pct(part, 0.99):.0f}")
        print(
            f"    {group:<10} {len(lat):>6} requests, non-200 {sum(1 for r in lat if r[3] != 200)}, "
            f"p50 {pct(ok, 0.5):.0f} ms, p99 {pct(ok, 0.99):.0f} ms "
            f"(p99 per third: {' / '.join(per_third)} ms)"
        )
    runs = [line.split() for line in dag_lines if line.split()[:1] in (["hourly_rollup"], ["cost_snapshot"])]
    for dag_id in ("hourly_rollup", "cost_snapshot"):
        mine = [r for r in runs if r[0] == dag_id]
        good = [float(r[2]) for r in mine if r[1] == "success" and len(r) > 2]
        failed = [r[1] for r in mine if r[1] != "success"]
        print(
            f"  DAG {dag_id}: {len(mine)} runs, {len(good)} succeeded "
            f"(median {statistics.median(good or [0]):.1f} s)" + (f", failed: {failed[:3]}" if failed else "")
        )


if __name__ == "__main__":
    main()
