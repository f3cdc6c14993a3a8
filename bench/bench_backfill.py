"""A week's backfill of `hourly_rollup` through `airflow backfill create`, really run.

What it does: a throwaway product database with `--days` days of minute traffic of
`--services` services, a fresh PostgreSQL metadata database (`airflow db migrate`), then
`airflow backfill create --dag-id hourly_rollup` over every hour of those days, run by the
api-server and a scheduler with the LocalExecutor (tests/airflow_backfill.py, the same helper as
the 3-hour integration test). Printed: how long migrating and the runs took, the runs' states,
and whether hourly_metrics then equals a direct recomputation of the same hours; as the same-run
reference, `loganalyzer.batch.rollup` run in-process over the same hours.

    .venv/bin/python bench/bench_backfill.py [--days 7] [--services 10] [--max-active-runs 1]
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

from loganalyzer.db.connection import connect, drop_database, ensure_database  # noqa: E402
from loganalyzer.db.migrate import migrate  # noqa: E402
from tests.airflow_backfill import airflow_setup, run_backfill  # noqa: E402
from tests.retrain_support import write_traffic  # noqa: E402
from tests.support import ADMIN_URL  # noqa: E402

SNAPSHOT = (
    "SELECT tenant, service, hour, log_count, error_count, warn_count FROM hourly_metrics ORDER BY 1, 2, 3"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--max-active-runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=5400.0)
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:8]
    product = make_conninfo(ADMIN_URL, dbname=f"la_bench_backfill_{tag}")
    metadata = make_conninfo(ADMIN_URL, dbname=f"la_bench_backfill_airflow_{tag}")
    ensure_database(product)
    ensure_database(metadata)
    start = datetime(2026, 11, 23, tzinfo=UTC)
    hours = args.days * 24
    try:
        with connect(product) as conn:
            migrate(conn)
        write_traffic(product, start - timedelta(hours=1), (hours + 1) * 60, args.services, 2, [])
        tmp = Path(tempfile.mkdtemp(prefix="la-bench-backfill-"))
        setup = airflow_setup(tmp / "airflow", metadata, product)
        print(f"{time.strftime('%Y-%m-%d %H:%M')} UTC, load average {os.getloadavg()}")
        t = time.perf_counter()
        result = run_backfill(
            setup,
            metadata,
            "hourly_rollup",
            start,
            start + timedelta(hours=hours - 1),
            hours,
            tmp / "logs",
            timeout=args.timeout,
            max_active_runs=args.max_active_runs,
        )
        total = time.perf_counter() - t
        print(f"load average after: {os.getloadavg()}")
        print(
            f"backfill of {hours} hourly runs: {total:.0f} s in all (db migrate, dags reserialize and pause "
            f"{result.seconds_migrate:.0f} s, scheduler running the runs {result.seconds_runs:.0f} s, "
            f"{result.seconds_runs / hours:.1f} s per run); states: {result.states}"
        )
        with connect(product) as conn:
            backfilled = conn.execute(SNAPSHOT).fetchall()
            conn.execute("TRUNCATE hourly_metrics")
            conn.commit()
        from loganalyzer.batch.rollup import roll_up

        t = time.perf_counter()
        with connect(product) as conn:
            roll_up(conn, start - timedelta(hours=1), start + timedelta(hours=hours))
            direct = conn.execute(SNAPSHOT).fetchall()
        print(
            f"same-run reference: the rollup in-process over the same hours: "
            f"{time.perf_counter() - t:.1f} s; "
            f"hourly_metrics equal: {backfilled == direct} ({len(backfilled)} rows)"
        )
    finally:
        drop_database(product)
        drop_database(metadata)


if __name__ == "__main__":
    main()
