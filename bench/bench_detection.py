"""Detection quality: labelled incidents replayed through Kafka and the real consumer.

1. two clean days of traffic (12 services), then a day with ≥ 20 incidents of every type (half
   the outages fully silent, half at 2 % of normal), all from the generator (ground truth kept),
   event time ending at the last midnight;
2. the first clean day goes through Kafka and `loganalyzer consume` (detection on); the
   IsolationForest is trained on it (`loganalyzer model train`, MLflow on SQLite) and promoted;
   the consumer picks it up without a restart; then the second clean day and the incident day go
   through, every detector on;
3. from `anomalies` vs the ground truth: precision, recall and F1 per anomaly type; median and p95
   detection delay in event time from the incident's start to the row (`details.emitted_at`: the
   partition's event time when the consumer emitted it), and, for reference, to the end of the
   window that first showed it (`details.detected_at`); false alarms per service-day on the
   second clean day (every detector, the forest included) and on the first (rules and patterns
   only, after one hour of warm-up).

Matching: an incident is found when an anomaly of its expected type on its service overlaps it
(±5 minutes). An anomaly counts for precision when it overlaps any incident on its service (an
error-rate spike during a new-error-pattern incident is real, not false: the new error is 15 % of
the lines); how many of them overlap only incidents of another type is printed too ("other").

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
from dataclasses import replace
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
    ap.add_argument("--dump", type=Path, help="also write the anomalies and incidents here (JSON)")
    args = ap.parse_args()

    day = timedelta(hours=24)
    # whole UTC days ending at the last midnight: every run of a day sees the same scenario
    start = (datetime.now(UTC) - 3 * day).replace(hour=0, minute=0, second=0, microsecond=0)
    train_end, clean_end, end = start + day, start + 2 * day, start + 3 * day
    incidents = random_scenario(CATALOGUE, clean_end + timedelta(minutes=30), end, args.per_type, seed=42)
    outages = [i for i, inc in enumerate(incidents) if inc.type == "outage"]
    for i in outages[::2]:  # a service that goes completely silent
        incidents[i] = replace(incidents[i], magnitude=0.0)
    print(
        f"clean days {start:%Y-%m-%d %H:%M} → {clean_end:%Y-%m-%d %H:%M}, incident day → "
        f"{end:%Y-%m-%d %H:%M} UTC; {len(incidents)} incidents over {len(CATALOGUE)} services",
        flush=True,
    )
    model = TrafficModel(CATALOGUE, args.rate, seed=7, incidents=incidents)
    t0 = time.perf_counter()
    day0 = traffic(model, start, train_end)
    day1 = traffic(model, train_end, clean_end)
    day2 = traffic(model, clean_end, end)
    total = len(day0[0]) + len(day1[0]) + len(day2[0])
    print(f"generated {total:,} events in {time.perf_counter() - t0:.0f}s", flush=True)

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
                        train_end.isoformat(),
                    ],
                    env=env,
                    check=True,
                    capture_output=True,
                    cwd=mlflow_dir,  # MLflow on SQLite puts artifacts under ./mlruns
                )
                deadline = time.monotonic() + 300  # minutes on a saturated machine (2026-12-06: over 60 s)
                while b"loaded log-anomaly-detector" not in log.read_bytes():
                    if time.monotonic() > deadline:
                        sys.exit(f"the consumer did not load the model; see {log}")
                    time.sleep(0.5)
                produce(bootstrap, topic, *day1)
                produce(bootstrap, topic, *day2)
                t0 = time.perf_counter()
                wait_stored(url, total, proc, log)
                time.sleep(2)  # the last batch's anomalies
                took = time.perf_counter() - t0
                print(f"second clean day and incident day stored in {took:.0f}s", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
            with connect(url) as conn:
                anomalies = conn.execute(
                    "SELECT service, anomaly_type, window_start, window_end, details->>'detected_at', "
                    "details->>'emitted_at' FROM anomalies"
                ).fetchall()
                if args.dump:
                    rows = conn.execute(
                        "SELECT to_jsonb(a) FROM anomalies a ORDER BY window_start"
                    ).fetchall()
                    args.dump.write_bytes(
                        orjson.dumps(
                            {
                                "anomalies": [r[0] for r in rows],
                                "incidents": [i.ground_truth() for i in incidents],
                            },
                            option=orjson.OPT_INDENT_2,
                        )
                    )
        finally:
            drop_database(url)
    report(anomalies, incidents, start, train_end, clean_end)


Row = tuple[str, str, datetime, datetime, str | None, str | None]


def report(
    anomalies: list[Row], incidents: list[Incident], start: datetime, train_end: datetime, clean_end: datetime
) -> None:
    by_service: dict[str, list[Incident]] = defaultdict(list)
    for inc in incidents:
        by_service[inc.service].append(inc)

    def overlaps(a_start: datetime, a_end: datetime, inc: Incident) -> bool:
        return a_start <= inc.end + SLACK and a_end >= inc.start - SLACK

    def at(iso: str | None, fallback: datetime) -> datetime:
        return datetime.fromisoformat(iso) if iso else fallback

    types = sorted(set(EXPECTED_ANOMALY.values()))
    tp_p: dict[str, int] = defaultdict(int)
    fp_p: dict[str, int] = defaultdict(int)
    other_p: dict[str, int] = defaultdict(int)
    unmatched: list[str] = []
    for service, kind, a_start, a_end, *_ in anomalies:
        if a_start < clean_end:
            continue
        near = [inc for inc in by_service[service] if overlaps(a_start, a_end, inc)]
        if near:
            tp_p[kind] += 1
            if all(EXPECTED_ANOMALY[inc.type] != kind for inc in near):
                other_p[kind] += 1
        else:
            fp_p[kind] += 1
            unmatched.append(f"{kind} on {service} {a_start:%H:%M}-{a_end:%H:%M}")

    found: dict[str, int] = defaultdict(int)
    to_row: dict[str, list[float]] = defaultdict(list)
    to_window: dict[str, list[float]] = defaultdict(list)
    missing_emitted = 0
    for inc in incidents:
        kind = EXPECTED_ANOMALY[inc.type]
        hits = [a for a in anomalies if a[0] == inc.service and a[1] == kind and overlaps(a[2], a[3], inc)]
        if not hits:
            continue
        found[kind] += 1
        missing_emitted += sum(1 for a in hits if a[5] is None)
        emitted = min(at(a[5], a[3]) for a in hits)
        window = min(at(a[4], a[3]) for a in hits)
        to_row[kind].append(max(0.0, (emitted - inc.start).total_seconds() / 60))
        to_window[kind].append(max(0.0, (window - inc.start).total_seconds() / 60))

    def quantiles(d: list[float]) -> str:
        if not d:
            return f"{'-':>9} {'-':>9}"
        d = sorted(d)
        return f"{statistics.median(d):>5.1f} min {d[min(len(d) - 1, int(0.95 * len(d)))]:>5.1f} min"

    print()
    print(
        f"{'':<20} {'':>9} {'':>6} {'':>7} {'':>9} {'':>6}  {'delay to the row':>19}  "
        f"{'to the window end':>19}"
    )
    print(
        f"{'anomaly type':<20} {'incidents':>9} {'found':>6} {'recall':>7} {'precision':>9} {'F1':>6}  "
        f"{'median':>9} {'p95':>9}  {'median':>9} {'p95':>9}  {'other':>5}"
    )
    all_rows: list[float] = []
    for kind in types:
        n = sum(1 for inc in incidents if EXPECTED_ANOMALY[inc.type] == kind)
        recall = found[kind] / n if n else 0.0
        reported = tp_p[kind] + fp_p[kind]
        precision = tp_p[kind] / reported if reported else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        all_rows += to_row[kind]
        print(
            f"{kind:<20} {n:>9} {found[kind]:>6} {recall:>7.2f} {precision:>9.2f} {f1:>6.2f}  "
            f"{quantiles(to_row[kind])}  {quantiles(to_window[kind])}  {other_p[kind]:>5}"
        )
    print(
        "other: rows of the type that overlap only incidents of another type on their service "
        "(counted as right: an outage or an error burst is also an anomalous window for the forest)"
    )
    silent = [inc for inc in incidents if inc.type == "outage" and inc.magnitude == 0]
    silent_found = sum(
        1
        for inc in silent
        if any(
            a[0] == inc.service and a[1] == "log_volume_drop" and overlaps(a[2], a[3], inc) for a in anomalies
        )
    )
    print(f"\nfully silent outages found: {silent_found} of {len(silent)}")
    if missing_emitted:
        print(f"WARNING: {missing_emitted} matching rows have no emitted_at (delay taken to the window end)")
    if unmatched:
        print(f"anomalies on the incident day that overlap no incident: {len(unmatched)}")
        print("  " + "; ".join(unmatched[:12]))

    def false_alarms(label: str, lo: datetime, hi: datetime) -> None:
        clean = [a for a in anomalies if lo <= a[2] < hi]
        service_days = len(CATALOGUE) * (hi - lo) / timedelta(days=1)
        print(
            f"false alarms, {label}: {len(clean)} over {service_days:.1f} service-days = "
            f"{len(clean) / service_days:.2f} per service-day"
        )
        if clean:
            print("  " + "; ".join(f"{a[1]} on {a[0]} at {a[2]:%H:%M}" for a in clean[:10]))

    print()
    false_alarms("second clean day, every detector (forest loaded)", train_end, clean_end)
    warm = start + timedelta(hours=1)
    false_alarms("first clean day, rules and patterns (after 1 h warm-up)", warm, train_end)
    if all_rows:
        med = statistics.median(all_rows)
        print(f"median detection delay to the row, all types: {med:.1f} min of event time")
    print(
        orjson.dumps(
            {"incidents": {t: sum(1 for i in incidents if i.type == t) for t in INCIDENT_TYPES}}
        ).decode()
    )


if __name__ == "__main__":
    main()
