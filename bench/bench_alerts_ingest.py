"""Do Slack alerts slow ingestion? The ingest bench's consumer, without and with `loganalyzer alerts`
running against a slow, failing local webhook, in the same run, beside raw binary COPY.

1. start a Tansu broker; produce N seed-shaped events (bench_ingest.py's) before timing;
2. each round: a fresh migrated database holding `--storm` open anomaly episodes (12 services,
   so 12 routes), then `loganalyzer consume` (detection on) timed from the first stored batch to
   the last row (bench_ingest.run_consumer):
   - "without": no alerts process;
   - "with": `loganalyzer alerts` polling every 0.2 s, one route per service, against a local
     receiver whose every answer is a 500, a 429 or a reply later than the client's timeout,
     so the process retries all the time (and discovers the episodes the consumer opens);
3. rounds alternate (without, with, without, with, ...) so that drift of a shared machine hits both;
4. print each round, the medians, their ratio and the raw COPY reference of the same rows;
5. the one thing alerts add to the consumer's own writes, the index on anomalies.updated_at
   (sql/015): the consumer's anomaly upsert (streaming/sink/derived_writer.py) timed with and
   without it, ABAB.

Usage: .venv/bin/python bench/bench_alerts_ingest.py [--events N] [--rounds R] [--storm K]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ingest import copy_reference, run_consumer, seed_shaped_events  # noqa: E402

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.kafka_admin import ensure_topic  # noqa: E402
from streaming.derived import AnomalyRow  # noqa: E402
from streaming.sink.derived_writer import upsert_anomalies  # noqa: E402
from tests.integration.slack_receiver import SlackReceiver  # noqa: E402
from tests.support import ADMIN_URL, cpu_seconds, produce, tansu_broker  # noqa: E402

SERVICES = [f"service-{i:02d}" for i in range(12)]
#: what the receiver answers, in turn: never a success, so every episode is retried all along
HOSTILE = ("500", "429:0.3", "sleep:0.8", "503")


def fresh(url: str, storm: int) -> None:
    drop_database(url)
    ensure_database(url)
    with connect(url) as conn:
        migrate(conn)
        start = datetime.now(UTC) - timedelta(minutes=20)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start, "
                "window_end, expected_value, actual_value, description) "
                "VALUES (%s, 'default', %s, 'log_volume_spike', 'high', 'open', %s, %s, 100, 900, %s)",
                [
                    (f"storm-{i}", SERVICES[i % 12], start, start + timedelta(minutes=5), "storm episode")
                    for i in range(storm)
                ],
            )


def start_alerts(url: str, receiver: SlackReceiver, log_dir: Path, poll: float) -> subprocess.Popen[bytes]:
    cfg = log_dir / "bench-alerts.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "min_severity": "low",
                "group_wait_seconds": 0,
                "max_messages_per_minute": 1000,
                "retry_base_seconds": 0.1,
                "retry_max_seconds": 0.5,
                "timeout_seconds": 0.5,
                "routes": [
                    {"name": s, "match": {"service": [s]}, "webhook_url": receiver.url(s)} for s in SERVICES
                ],
            }
        )
    )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ALERTS_CONFIG": str(cfg),
        "ALERTS_POLL_SECONDS": str(poll),
        "SLACK_WEBHOOK_URL": receiver.url("default"),
        "LOG_LEVEL": "ERROR",
    }
    with open(log_dir / "bench-alerts.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "loganalyzer", "alerts"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def alerts_backends(url: str) -> list[int]:
    """The PostgreSQL backend(s) serving `loganalyzer alerts`: its queries' CPU is spent there."""
    deadline = time.monotonic() + 30
    with connect(url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'loganalyzer-alerts' "
                "AND datname = current_database()"
            ).fetchall()
            if rows or time.monotonic() > deadline:
                return [r[0] for r in rows]
            time.sleep(0.1)


def upsert_cost(url: str, episodes: int = 2000, batch: int = 50, rounds: int = 4) -> dict[bool, float]:
    """µs per anomaly upsert through the consumer's own sink, with and without the alerts index.

    Every round upserts all episodes again (an open episode is rewritten as its window grows),
    in transactions of `batch` rows; with and without the index alternate (ABAB)."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    out: dict[bool, list[float]] = {True: [], False: []}
    with connect(url) as conn:
        conn.execute("SET synchronous_commit = off")  # as the consumer commits (CONSUMER_ASYNC_COMMIT)
        for r in range(rounds * 2):
            indexed = r % 2 == 0
            conn.execute(
                "CREATE INDEX IF NOT EXISTS anomalies_updated_at_idx ON anomalies (updated_at)"
                if indexed
                else "DROP INDEX IF EXISTS anomalies_updated_at_idx"
            )
            conn.commit()
            rows = [
                AnomalyRow(
                    f"ep-{i}", "default", SERVICES[i % 12], "log_volume_spike", "high", "open",
                    start, start + timedelta(seconds=r), None, 5.0, 100.0, 900.0 + r, "bench episode",
                )
                for i in range(episodes)
            ]  # fmt: skip
            t0 = time.perf_counter()
            for k in range(0, episodes, batch):
                refused = upsert_anomalies(conn, rows[k : k + batch])
                assert not refused, refused[:1]
                conn.commit()
            out[indexed].append((time.perf_counter() - t0) / episodes * 1e6)
        conn.execute("CREATE INDEX IF NOT EXISTS anomalies_updated_at_idx ON anomalies (updated_at)")
        conn.commit()
    return {k: statistics.median(v[1:] if k else v) for k, v in out.items()}  # first: inserts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs (without, with alerts)")
    ap.add_argument("--storm", type=int, default=2000, help="open episodes in the table before each run")
    ap.add_argument("--poll", type=float, default=2.0, help="ALERTS_POLL_SECONDS (2: the default)")
    args = ap.parse_args()
    n = args.events
    log_dir = ROOT / ".state" / "bench"
    log_dir.mkdir(parents=True, exist_ok=True)

    print(f"generating {n:,} seed-shaped events…", flush=True)
    values = seed_shaped_events(n)
    target = make_conninfo(ADMIN_URL, dbname=f"la_bench_alerts_{os.getpid()}")
    reference = make_conninfo(ADMIN_URL, dbname=f"la_bench_alerts_ref_{os.getpid()}")
    receiver = SlackReceiver().start()
    rates: dict[bool, list[float]] = {False: [], True: []}
    #: the consumer's own CPU per event: what alerts could add to ingestion's work, and much less
    #: sensitive than wall-clock rates to the other loads of a shared machine
    cpu_us: dict[bool, list[float]] = {False: [], True: []}
    try:
        with tansu_broker(log_dir) as bootstrap:
            topic = f"bench-alerts-{os.getpid()}"
            ensure_topic({"bootstrap.servers": bootstrap}, topic, args.partitions)
            keys = [f"t/{i % 12}".encode() for i in range(n)]
            produce(bootstrap, topic, list[bytes | None](values), keys=keys)
            print(f"produced {n:,} events (before timing)", flush=True)
            for r in range(args.rounds):
                # ABBA: without first in even rounds, with first in odd ones, so that a machine
                # getting busier or quieter during the run does not favour one side
                for with_alerts in (False, True) if r % 2 == 0 else (True, False):
                    fresh(target, args.storm)
                    alerts = None
                    before = len(receiver.outcomes())
                    if with_alerts:
                        for s in (*SERVICES, "default"):
                            receiver.script(s, *(HOSTILE * 5000))
                        alerts = start_alerts(target, receiver, log_dir, args.poll)
                        time.sleep(1)
                    pids = [alerts.pid, *alerts_backends(target)] if alerts else []
                    cpu0 = [cpu_seconds(p) for p in pids]
                    try:
                        run = run_consumer(target, bootstrap, topic, n, log_dir, detection=True)
                        alerts_cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
                    finally:
                        if alerts is not None:
                            alerts.send_signal(signal.SIGTERM)
                            alerts.wait(30)
                    with connect(target) as conn:
                        row = conn.execute(
                            "SELECT (SELECT count(*) FROM anomalies WHERE id NOT LIKE 'storm-%%'), "
                            "(SELECT count(*) FROM alert_deliveries), "
                            "(SELECT coalesce(sum(attempts), 0) FROM alert_deliveries)"
                        ).fetchone()
                    assert row is not None
                    rates[with_alerts].append(run.rate)
                    cpu_us[with_alerts].append(run.cpu.consumers / run.records * 1e6)
                    requests = len(receiver.outcomes()) - before
                    print(
                        f"  alerts {'running' if with_alerts else 'off    '}: {run.rate:>9,.0f} logs/s "
                        f"({run.seconds:.2f}s), consumer CPU {cpu_us[with_alerts][-1]:.1f} µs/event; "
                        f"episodes opened by the consumer {row[0]}; "
                        f"delivery rows {row[1]}, webhook requests {requests} (all failed or timed out), "
                        f"CPU of alerts: process {sum(alerts_cpu[:1]):.2f}s, "
                        f"its PostgreSQL backend {sum(alerts_cpu[1:]):.2f}s "
                        f"({sum(alerts_cpu) / run.seconds:.1%} of one core)",
                        flush=True,
                    )
            fresh(reference, 0)
            ref_s, _ = copy_reference(reference, values)
            fresh(target, 0)
            cost = upsert_cost(target)
    finally:
        receiver.stop()
        drop_database(target)
        drop_database(reference)
    ref_rate = n / ref_s
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print()
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {n:,} events, detection on, {args.storm} open episodes, "
        f"alerts polling every {args.poll:g}s"
    )
    print(f"medians of {args.rounds} run(s) each:")
    print(f"consumer without alerts:                 {off:>10,.0f} logs/s  ({off / ref_rate:.2f} of COPY)")
    print(f"consumer with alerts running:            {on:>10,.0f} logs/s  ({on / ref_rate:.2f} of COPY)")
    print(f"raw binary COPY of the same rows:        {ref_rate:>10,.0f} logs/s")
    print(f"ratio with / without alerts:             {on / off:>10.3f}")
    c_off, c_on = statistics.median(cpu_us[False]), statistics.median(cpu_us[True])
    print(
        f"consumer CPU per event, without / with:  {c_off:>10.1f} / {c_on:.1f} µs  (ratio {c_on / c_off:.3f})"
    )
    print(
        f"anomaly upsert through the sink, with / without the updated_at index: "
        f"{cost[True]:.0f} / {cost[False]:.0f} µs per row (transactions of 50)"
    )
    pairs = ", ".join(f"{w / o:.2f}" for o, w in zip(rates[False], rates[True], strict=True))
    print(f"ratio per round (with / without):        {pairs}")


if __name__ == "__main__":
    main()
