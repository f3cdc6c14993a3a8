"""Nightly retraining at scale: 30 days x 50 services of minute-level traffic, retrained end to end.

What it measures: `loganalyzer.batch.retrain.retrain` (the nightly_retrain DAG's work) over a
database holding 30 days of 50 services, with labelled incidents in the held-out last day and an
MLflow store in a temp folder, twice: the first run registers and promotes (no champion), the
second also loads and scores the champion. Printed: wall time per stage and in total, against the
budget (60 s), and a same-run reference: a plain SQL scan (count, sums) of the same rows.

The traffic is written straight into `logs` as the consumer stores it (tests/retrain_support.py,
generated inside PostgreSQL), so writing it is not part of the figure.

    .venv/bin/python bench/bench_retrain.py [--days 30] [--services 50] [--logs-per-minute 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.batch.retrain import RetrainConfig, retrain  # noqa: E402
from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from tests.retrain_support import Incident, write_traffic  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

BUDGET_SECONDS = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--logs-per-minute", type=int, default=3, help="per service")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()

    url = make_conninfo(ADMIN_URL, dbname=f"la_bench_retrain_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    end = datetime(2026, 11, 30, tzinfo=UTC)
    start = end - timedelta(days=args.days)
    incidents = [
        Incident(s, end - timedelta(hours=h), end - timedelta(hours=h) + timedelta(minutes=30))
        for s, h in ((1, 20), (7, 14), (13, 9), (29, 5), (42, 2))
        if s < args.services
    ]
    truth = "".join(__import__("json").dumps(i.ground_truth()) + "\n" for i in incidents)
    try:
        with connect(url) as conn:
            migrate(conn)
        t = time.perf_counter()
        rows = write_traffic(url, start, args.days * 1440, args.services, args.logs_per_minute, incidents)
        with connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE logs")
        print(
            f"data: {rows:,} logs, {args.days} days x {args.services} services "
            f"(written in {time.perf_counter() - t:.0f} s, not measured)"
        )

        with connect(url) as conn:
            t = time.perf_counter()
            ref = conn.execute(
                "SELECT count(*), sum(length(message)), sum(duration_ms) FROM logs"
                ' WHERE "timestamp" >= %s AND "timestamp" < %s',
                (start, end),
            ).fetchone()
            scan = time.perf_counter() - t
        assert ref is not None and ref[0] == rows
        print(f"reference: plain SQL scan of the same {ref[0]:,} rows (count, sums): {scan:.1f} s")

        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)
            uri = f"sqlite:///{tmp}/mlflow.db"
            config = RetrainConfig(days=float(args.days), holdout_hours=24.0)
            for label in ("first run (no champion)", "second run (champion loaded and scored)"):
                t = time.perf_counter()
                with connect(url) as conn:
                    report = retrain(conn, uri, end, config, truth)
                total = time.perf_counter() - t
                stages = ", ".join(f"{k} {v:.1f}" for k, v in report.stages.items())
                verdict = "within" if total <= BUDGET_SECONDS else "OVER"
                print(
                    f"{label}: {total:.1f} s ({verdict} the {BUDGET_SECONDS:.0f} s budget; "
                    f"{total / scan:.1f}x the reference scan)"
                )
                print(f"  stages (s): {stages}")
                print(
                    f"  {report.train_windows:,} training windows sampled of the span, "
                    f"{report.eval_windows:,} evaluation windows; candidate F1 {report.candidate.f1:.3f}"
                    + (f", champion F1 {report.champion.f1:.3f}" if report.champion else "")
                    + f"; {'promoted' if report.promoted else 'kept'}: {report.reason}"
                )
    finally:
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
