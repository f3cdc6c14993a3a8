"""Nightly retraining at scale: 30 days x 50 services of minute-level traffic, retrained end to end.

What it measures: `loganalyzer.batch.retrain.retrain` (the nightly_retrain DAG's work) over a
database holding 30 days of 50 services, with labelled incidents in the held-out last day and an
MLflow store in a temp folder. Each run is a fresh Python process, as the DAG's task is every
night, timed from the parent (interpreter start, imports and all):
1. the first retraining ever: it creates the MLflow store and registers and promotes (no
   champion). Production creates its store once; this run only sets the store up.
2. the headline, a nightly run: fresh process, the store exists, the champion is loaded and
   scored too. The same process then retrains once more, warm (imports done): the difference
   is what a fresh process costs.
Printed: wall time per stage and in total, against the budget (60 s), and a same-run reference:
a plain SQL scan (count, sums) of the same rows.

The traffic is written straight into `logs` as the consumer stores it (tests/retrain_support.py,
generated inside PostgreSQL), and rolled up into minute_counts by the hourly_rollup DAG's minute
upsert (loganalyzer.batch.rollup.roll_up_minutes, a day at a time); neither is part of the
figure. `--no-rollup` leaves minute_counts empty: retraining then aggregates the month's logs.

    .venv/bin/python bench/bench_retrain.py [--days 30] [--services 50] [--logs-per-minute 3] [--no-rollup]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loganalyzer.batch.retrain import RetrainConfig, retrain  # noqa: E402
from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402

BUDGET_SECONDS = 60.0


def child(args: argparse.Namespace) -> None:
    """One process of retraining runs (`--child`): each run's report as a JSON line."""
    end = datetime.fromisoformat(args.end)
    truth = Path(args.truth).read_text()
    config = RetrainConfig(days=float(args.days), holdout_hours=24.0)
    for _ in range(args.runs):
        t = time.perf_counter()
        with connect(args.child) as conn:
            report = retrain(conn, args.tracking_uri, end, config, truth)
        doc = report.to_dict()
        doc["total"] = time.perf_counter() - t
        print(json.dumps(doc, default=str), flush=True)


def run_process(
    url: str, uri: str, end: datetime, days: int, truth: Path, runs: int
) -> tuple[float, list[Any]]:
    """Wall time of a fresh process doing `runs` retrainings, and their reports."""
    cmd = [sys.executable, __file__, "--child", url, "--tracking-uri", uri, "--end", end.isoformat()]
    cmd += ["--days", str(days), "--truth", str(truth), "--runs", str(runs)]
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - t
    return wall, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def show(label: str, total: float, report: Any, scan: float, headline: bool = False) -> None:
    stages = ", ".join(f"{k} {v:.1f}" for k, v in report["stages"].items())
    verdict = "within" if total <= BUDGET_SECONDS else "OVER"
    mark = "HEADLINE " if headline else ""
    print(
        f"{mark}{label}: {total:.1f} s ({verdict} the {BUDGET_SECONDS:.0f} s budget; "
        f"{total / scan:.1f}x the reference scan)"
    )
    print(f"  stages (s): {stages}; retrain() itself {report['total']:.1f}")
    cand, champ = report["candidate"], report["champion"]
    print(
        f"  {report['train_windows']:,} training windows sampled of the span, "
        f"{report['eval_windows']:,} evaluation windows; candidate F1 {cand['f1']:.3f}"
        + (f", champion F1 {champ['f1']:.3f}" if champ else "")
        + f"; {'promoted' if report['promoted'] else 'kept'}: {report['reason']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    ap.add_argument("--end", help=argparse.SUPPRESS)
    ap.add_argument("--truth", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--no-rollup", action="store_true", help="leave minute_counts empty")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--logs-per-minute", type=int, default=3, help="per service")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from loganalyzer.batch.rollup import roll_up_minutes
    from loganalyzer.db.migrate import migrate
    from tests.retrain_support import Incident, write_traffic
    from tests.support import ADMIN_URL

    url = make_conninfo(ADMIN_URL, dbname=f"la_bench_retrain_{uuid.uuid4().hex[:8]}")
    ensure_database(url)
    end = datetime(2026, 11, 30, tzinfo=UTC)
    start = end - timedelta(days=args.days)
    incidents = [
        Incident(s, end - timedelta(hours=h), end - timedelta(hours=h) + timedelta(minutes=30))
        for s, h in ((1, 20), (7, 14), (13, 9), (29, 5), (42, 2))
        if s < args.services
    ]
    truth = "".join(json.dumps(i.ground_truth()) + "\n" for i in incidents)
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
        if not args.no_rollup:
            t = time.perf_counter()

            def fill(day: int) -> None:
                with connect(url) as conn:
                    roll_up_minutes(conn, start + timedelta(days=day), start + timedelta(days=day + 1))

            with ThreadPoolExecutor(2) as pool:
                list(pool.map(fill, range(args.days)))
            with connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE minute_counts")
            print(f"rolled up into minute_counts in {time.perf_counter() - t:.0f} s (not measured)")

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
            uri = f"sqlite:///{tmp}/mlflow.db"
            truth_file = Path(tmp, "truth.jsonl")
            truth_file.write_text(truth)
            env_cwd = os.getcwd()
            os.chdir(tmp)  # MLflow's artifacts go under the working directory
            try:
                wall, (first,) = run_process(url, uri, end, args.days, truth_file, 1)
                show(
                    "store set-up: first retraining ever (fresh process, NEW MLflow store, no champion)",
                    wall,
                    first,
                    scan,
                )
                wall, (cold, warm) = run_process(url, uri, end, args.days, truth_file, 2)
                # the process's wall time less the warm run's: start-up, imports and the cold run
                show(
                    "nightly run (fresh process incl. start-up and imports, existing store, champion scored)",
                    wall - warm["total"],
                    cold,
                    scan,
                    headline=True,
                )
                show("  same process again, warm (imports done)", warm["total"], warm, scan)
            finally:
                os.chdir(env_cwd)
    finally:
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
