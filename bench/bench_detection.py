"""Detection quality: labelled incidents replayed through Kafka and the real consumer.

1. a clean day of traffic (12 services), then a day with ≥ 20 incidents of every type, both from
   the generator (ground truth kept), event time ending about now;
2. the clean day goes through Kafka and `loganalyzer consume` (detection on); the IsolationForest
   is trained on it (`loganalyzer model train`, MLflow on SQLite) and promoted; the consumer picks
   it up without a restart; then the incident day goes through;
3. from `anomalies` vs the ground truth: precision, recall and F1 per anomaly type, median and p95
   detection delay (event time from incident start to the end of the window that first showed
   it), and false alarms per service-day on the clean day (after the first hour of warm-up).

Matching: an incident is found when an anomaly of its expected type on its service overlaps it
(±5 minutes). An anomaly counts for precision when it overlaps any incident on its service (an
error-rate spike during a new-error-pattern incident is real, not false).

Usage: .venv/bin/python bench/bench_detection.py [--rate 30] [--per-type 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from loganalyzer.generator.incidents import EXPECTED_ANOMALY, INCIDENT_TYPES, Incident, random_scenario  # noqa: E402
from loganalyzer.generator.services import CATALOGUE  # noqa: E402
from loganalyzer.generator.traffic import TrafficModel  # noqa: E402
from loganalyzer.kafka_admin import ensure_topic  # noqa: E402
from tests.support import (  # noqa: E402
    ADMIN_URL,
    consumer_env,
    produce,
    start_consumer,
    tansu_broker,
    traffic,
    wait_stored,
)

SLACK = timedelta(minutes=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=30.0, help="mean events/s of event time, all services")
    ap.add_argument("--per-type", type=int, default=20, help="incidents of each type on the incident day")
    args = ap.parse_args()

    day = timedelta(hours=24)
    # whole UTC days ending at the last midnight: every run of a day sees the same scenario
    start = (datetime.now(UTC) - 2 * day).replace(hour=0, minute=0, second=0, microsecond=0)
    clean_end, end = start + day, start + 2 * day
    incidents = random_scenario(CATALOGUE, clean_end + timedelta(minutes=30), end, args.per_type, seed=42)
    print(
        f"clean day {start:%Y-%m-%d %H:%M} → {clean_end:%H:%M}, incident day → {end:%Y-%m-%d %H:%M} UTC; "
        f"{len(incidents)} incidents over {len(CATALOGUE)} services",
        flush=True,
    )
    model = TrafficModel(CATALOGUE, args.rate, seed=7, incidents=incidents)
    t0 = time.perf_counter()
    day0 = traffic(model, start, clean_end)
    day1 = traffic(model, clean_end, end)
    print(f"generated {len(day0[0]) + len(day1[0]):,} events in {time.perf_counter() - t0:.0f}s", flush=True)

    state = ROOT / ".state" / "bench"
    state.mkdir(parents=True, exist_ok=True)
    mlflow_dir = Path(tempfile.mkdtemp(prefix="la-mlflow-"))
    url = make_conninfo(ADMIN_URL, dbname=f"la_bench_det_{os.getpid()}")
    log = state / "bench-detection-consumer.log"
    with tansu_broker(state) as bootstrap:
        ensure_database(url)
        try:
            with connect(url) as conn:
                migrate(conn)
            topic = f"bench-det-{os.getpid()}"
            ensure_topic({"bootstrap.servers": bootstrap}, topic, 4)
            env = consumer_env(
                url,
                bootstrap,
                topic,
                "bench-det",
                MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                MODEL_REFRESH_SECONDS="1",
            )
            produce(bootstrap, topic, *day0)
            proc = start_consumer(env, log)
            try:
                t0 = time.perf_counter()
                wait_stored(url, len(day0[0]), proc, log)
                print(
                    f"clean day stored in {time.perf_counter() - t0:.0f}s; training the forest…", flush=True
                )
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "loganalyzer",
                        "model",
                        "train",
                        "--hours",
                        "23",
                        "--until",
                        clean_end.isoformat(),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    cwd=mlflow_dir,  # MLflow on SQLite puts artifacts under ./mlruns
                )
                deadline = time.monotonic() + 60
                while b"loaded log-anomaly-detector" not in log.read_bytes():
                    if time.monotonic() > deadline:
                        sys.exit(f"the consumer did not load the model; see {log}")
                    time.sleep(0.5)
                produce(bootstrap, topic, *day1)
                t0 = time.perf_counter()
                wait_stored(url, len(day0[0]) + len(day1[0]), proc, log)
                time.sleep(2)  # the last batch's anomalies
                print(f"incident day stored in {time.perf_counter() - t0:.0f}s", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            with connect(url) as conn:
                anomalies = conn.execute(
                    "SELECT service, anomaly_type, window_start, window_end, details->>'detected_at' "
                    "FROM anomalies"
                ).fetchall()
        finally:
            drop_database(url)
    report(anomalies, incidents, start, clean_end, end)


def report(
    anomalies: list[tuple[str, str, datetime, datetime, str | None]],
    incidents: list[Incident],
    start: datetime,
    clean_end: datetime,
    end: datetime,
) -> None:
    by_service: dict[str, list[Incident]] = defaultdict(list)
    for inc in incidents:
        by_service[inc.service].append(inc)

    def overlaps(a_start: datetime, a_end: datetime, inc: Incident) -> bool:
        return a_start <= inc.end + SLACK and a_end >= inc.start - SLACK

    types = sorted(set(EXPECTED_ANOMALY.values()))
    tp_p: dict[str, int] = defaultdict(int)
    fp_p: dict[str, int] = defaultdict(int)
    unmatched: list[str] = []
    for service, kind, a_start, a_end, _ in anomalies:
        if a_start < clean_end:
            continue
        if any(overlaps(a_start, a_end, inc) for inc in by_service[service]):
            tp_p[kind] += 1
        else:
            fp_p[kind] += 1
            unmatched.append(f"{kind} on {service} {a_start:%H:%M}-{a_end:%H:%M}")

    found: dict[str, int] = defaultdict(int)
    delays: dict[str, list[float]] = defaultdict(list)
    for inc in incidents:
        kind = EXPECTED_ANOMALY[inc.type]
        hits = [a for a in anomalies if a[0] == inc.service and a[1] == kind and overlaps(a[2], a[3], inc)]
        if hits:
            found[kind] += 1
            detected = min(datetime.fromisoformat(a[4]) if a[4] else a[3] for a in hits)
            delays[kind].append(max(0.0, (detected - inc.start).total_seconds() / 60))

    print()
    print(
        f"{'anomaly type':<20} {'incidents':>9} {'found':>6} {'recall':>7} {'precision':>9} {'F1':>6} "
        f"{'median delay':>13} {'p95 delay':>10}"
    )
    all_delays: list[float] = []
    for kind in types:
        n = sum(1 for inc in incidents if EXPECTED_ANOMALY[inc.type] == kind)
        recall = found[kind] / n if n else 0.0
        reported = tp_p[kind] + fp_p[kind]
        precision = tp_p[kind] / reported if reported else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        d = sorted(delays[kind])
        all_delays += d
        med = f"{statistics.median(d):.1f} min" if d else "-"
        p95 = f"{d[min(len(d) - 1, int(0.95 * len(d)))]:.1f} min" if d else "-"
        print(
            f"{kind:<20} {n:>9} {found[kind]:>6} {recall:>7.2f} {precision:>9.2f} {f1:>6.2f} "
            f"{med:>13} {p95:>10}"
        )
    if unmatched:
        print(f"\nanomalies on the incident day that overlap no incident: {len(unmatched)}")
        print("  " + "; ".join(unmatched[:12]))
    warm = start + timedelta(hours=1)
    clean = [a for a in anomalies if warm <= a[2] < clean_end]
    service_days = len(CATALOGUE) * (clean_end - warm) / timedelta(days=1)
    print(
        f"\nfalse alarms on the clean day (after 1 h warm-up): {len(clean)} over {service_days:.1f} "
        f"service-days = {len(clean) / service_days:.2f} per service-day"
    )
    if clean:
        print("  " + "; ".join(f"{a[1]} on {a[0]} at {a[2]:%H:%M}" for a in clean[:10]))
    if all_delays:
        print(f"median detection delay, all types: {statistics.median(all_delays):.1f} min of event time")
    print(
        orjson.dumps(
            {"incidents": {t: sum(1 for i in incidents if i.type == t) for t in INCIDENT_TYPES}}
        ).decode()
    )


if __name__ == "__main__":
    main()
