"""`airflow backfill create --dag-id hourly_rollup` over three hours, really run: a fresh PostgreSQL
metadata database (`airflow db migrate`), the CLI creates the backfill, a scheduler with the
LocalExecutor runs it, and the hours' rows are in hourly_metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from loganalyzer.db.connection import connect, drop_database
from tests.airflow_backfill import airflow_setup, run_backfill
from tests.retrain_support import write_traffic
from tests.support import ADMIN_URL

pytestmark = pytest.mark.integration

FIRST = datetime(2026, 11, 30, 1, tzinfo=UTC)


@pytest.fixture
def metadata_db() -> Iterator[str]:
    url = make_conninfo(ADMIN_URL, dbname=f"airflow_test_{uuid.uuid4().hex[:10]}")
    yield url
    drop_database(url)


@pytest.mark.timeout(900)
def test_backfill_create_runs_three_hours_of_the_rollup(
    tmp_path: Path, metadata_db: str, database_url: str
) -> None:
    # 4 hours of traffic of 3 services: 00:00 (recomputed as "the hour before") to 04:00
    write_traffic(database_url, FIRST - timedelta(hours=1), 4 * 60, 3, 2, [])
    setup = airflow_setup(tmp_path / "airflow", metadata_db, database_url)
    t = time.perf_counter()
    result = run_backfill(
        setup,
        metadata_db,
        "hourly_rollup",
        FIRST,
        FIRST + timedelta(hours=2),
        3,
        tmp_path / "logs",
        timeout=600,
    )
    print(
        f"backfill of 3 hours: {time.perf_counter() - t:.0f} s (migrate + register"
        f" {result.seconds_migrate:.0f} s,"
        f" runs {result.seconds_runs:.0f} s): {result.states}"
    )
    assert result.states == {"success": 3}, f"see {tmp_path / 'logs'} and {setup.home / 'logs'}"
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT hour, count(*), sum(log_count) FROM hourly_metrics GROUP BY 1 ORDER BY 1"
        ).fetchall()
    # each run recomputes its hour and the one before: 00:00 .. 03:00, 3 services x 120 logs each
    assert [(h, n, int(c)) for h, n, c in rows] == [
        (FIRST + timedelta(hours=i - 1), 3, 3 * 120) for i in range(4)
    ]
