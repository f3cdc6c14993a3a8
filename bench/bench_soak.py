"""Soak: mixed traffic with incidents at a steady rate for `--minutes`, the consumer watched throughout.

`loganalyzer generate` (the real generator: 12 services, an incident of a rotating type every
4 minutes, 1 % malformed records, real time) feeds `loganalyzer consume` (detection on) through
a real Tansu broker into a throwaway database. Every 5 s the consumer's RSS is sampled; at the
end the benchmark prints

- the RSS slope (least squares over the second half of the run, MB per minute: a leak shows as a
  steady positive slope; the first half holds the warm-up of detection state and pools),
- throughput: events stored per second, next to the offered rate (same run's reference),
- detection lag (the consumer's `loganalyzer_detection_lag_seconds` histogram),
- whether every produced event is in PostgreSQL (`logs` + `dead_letters` = the records in the
  topic, counted by reading it back), and every incident of the ground truth found once, twice
  or missed.

`--rate` is the generator's mean over a day: its time-of-day seasonality makes the offered rate
of a given half hour lower or higher, and the offered rate printed is the one measured.

Detection needs ~20 minutes of a service's history before it judges it, so only a run of the
default 30 minutes can find incidents; a short run checks memory, throughput and completeness.
The API and Airflow parts of the soak are not covered yet.

Usage: .venv/bin/python bench/bench_soak.py [--minutes 30] [--rate 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_latency import quantile, scrape  # noqa: E402

from loganalyzer.db.connection import connect  # noqa: E402
from loganalyzer.generator.incidents import EXPECTED_ANOMALY  # noqa: E402
from loganalyzer.platform.processes import free_port  # noqa: E402
from tests.support import consumer_env, count, fresh_database, start_consumer, tansu_broker  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) pairs, in MB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (v - mv) for t, v in samples) / den if den else 0.0


def incidents_found(url: str, truth: Path) -> tuple[int, int, int]:
    """(found once, found more than once, missed) over the ground truth's incidents."""
    once = more = missed = 0
    for line in truth.read_text().splitlines():
        inc = json.loads(line)
        start = datetime.fromisoformat(inc["start"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(inc["end"].replace("Z", "+00:00"))
        with connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM anomalies WHERE service = %s AND anomaly_type = %s "
                "AND window_start BETWEEN %s AND %s",
                (inc["service"], EXPECTED_ANOMALY[inc["type"]], start - timedelta(minutes=5), end),
            ).fetchone()
        n = int(row[0]) if row else 0
        once, more, missed = once + (n == 1), more + (n > 1), missed + (n == 0)
    return once, more, missed


def records_in(bootstrap: str, topic: str) -> int:
    """How many records the topic holds, read back from the start (Tansu's watermarks lie)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "soak-count", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    # assigned, not subscribed: no group join to wait for
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen, idle = 0, 0
    try:
        while idle < 5:
            batch = consumer.consume(10_000, 1.0)
            seen += sum(1 for m in batch if m.error() is None)
            idle = 0 if batch else idle + 1
    finally:
        consumer.close()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--rate", type=float, default=500.0, help="events per second (event time = wall time)"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        tansu_broker(Path(tmp)) as broker,
        fresh_database() as url,
    ):
        metrics_port = free_port()
        topic = "logs-soak"
        truth = Path(tmp) / "ground_truth.jsonl"
        env = consumer_env(
            url, broker, topic, "soak", CONSUMER_METRICS_PORT=str(metrics_port), MLFLOW_TRACKING_URI=""
        )
        consumer = start_consumer(env, Path(tmp) / "consumer.log")
        gen_env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker, "KAFKA_TOPIC": topic}
        generator = subprocess.Popen(
            [sys.executable, "-m", "loganalyzer", "generate", "--rate", str(args.rate), "--speedup", "1",
             "--demo-incidents", "--invalid-rate", "0.01", "--duration", f"{int(args.minutes * 60)}s",
             "--ground-truth", str(truth), "--quiet"],
            env=gen_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        t0 = time.monotonic()
        samples: list[tuple[float, float]] = []
        while generator.poll() is None:
            samples.append((time.monotonic() - t0, rss_mb(consumer.pid)))
            time.sleep(5)
        produced_for = time.monotonic() - t0
        total = records_in(broker, topic)
        stored_sql = "SELECT (SELECT count(*) FROM logs) + (SELECT count(*) FROM dead_letters)"
        deadline = time.monotonic() + 120
        while count(url, stored_sql) < total and time.monotonic() < deadline:
            time.sleep(1)
        drained_after = time.monotonic() - t0
        stored = count(url, stored_sql)
        rss = [v for t, v in samples if t >= 10]  # after the consumer's start-up
        dead = count(url, "SELECT count(*) FROM dead_letters")
        lag = scrape(metrics_port).get("loganalyzer_detection_lag_seconds", {})
        consumer.terminate()
        consumer.wait(30)
        once, more, missed = incidents_found(url, truth)
    second_half = [s for s in samples if s[0] >= produced_for / 2]
    print(
        f"soak, measured {datetime.now(UTC):%Y-%m-%d}: {args.minutes:g} min at {args.rate:g} events/s offered"
    )
    print(f"  generator exit code {generator.returncode}, produced {total} events in {produced_for:.0f} s")
    print(
        f"  throughput: {stored / drained_after:.0f} events/s stored "
        f"(reference, same run: {total / produced_for:.0f} events/s offered)"
    )
    print(
        f"  every event in PostgreSQL: {'yes' if stored == total else 'NO'} "
        f"({stored} of {total}; {dead} dead letters for the 1 % malformed)"
    )
    print(
        f"  consumer RSS: at 10 s {rss[0]:.0f} MB, peak {max(rss):.0f} MB, end {rss[-1]:.0f} MB; "
        f"slope over the second half {slope_per_minute(second_half):+.2f} MB/min ({len(samples)} samples)"
    )
    print(
        f"  detection lag: p50 {quantile(lag, 0.5)}, p99 {quantile(lag, 0.99)} "
        f"over {int(lag.get('_count', 0))} anomaly changes"
    )
    print(
        f"  incidents: {once} found once, {more} more than once, {missed} missed (of {once + more + missed})"
    )


if __name__ == "__main__":
    main()
