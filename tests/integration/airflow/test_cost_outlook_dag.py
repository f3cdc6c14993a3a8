"""cost_snapshot, through dag.test() and logged in as the Airflow login user, stores the measured
day's cost outlook for Grafana (cost_outlook, sql/026): a forecast for each tenant with 3 measured
days, the reason for each without, what-ifs for all; a re-run of the day replaces its rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loganalyzer.db.connection import connect
from tests.export_support import insert_logs
from tests.integration.airflow.conftest import run_dag

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)


def _outlook(url: str) -> dict[str | None, tuple[Any, ...]]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT o.tenant, o.id, o.history_days, o.forecast_mean_usd, o.forecast_error, count(w.*) "
            "FROM cost_outlook o LEFT JOIN cost_outlook_what_if w ON w.outlook_id = o.id "
            "WHERE o.day = %s GROUP BY o.id",
            (DAY,),
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_cost_snapshot_stores_the_days_outlook_and_a_rerun_replaces_it(
    dagbag: Any, platform: dict[str, Any]
) -> None:
    from loganalyzer.batch.cost_outlook import MULTIPLIERS
    from loganalyzer.batch.cost_snapshot import TenantUsage, write_snapshot

    url = platform["database_url"]
    with connect(url) as conn:  # tenant-0's three days before, as this DAG stored them
        for k in (3, 2, 1):
            usage = TenantUsage(
                s3_bytes_stored=10**6 * (4 - k), s3_objects=2, s3_put_requests=2, s3_get_requests=2
            )
            write_snapshot(conn, DAY - timedelta(days=k), {"tenant-0": usage}, "us-east-1", "local")
    insert_logs(url, DAY, 3_000, tenants=2, services=2)
    run_dag(dagbag, "daily_s3_export", datetime(2026, 11, 21, tzinfo=UTC))
    run_dag(dagbag, "cost_snapshot", datetime(2026, 11, 21, 1, tzinfo=UTC), day=DAY.isoformat())

    first = _outlook(url)
    assert set(first) == {"*", "tenant-0", "tenant-1", None}
    _, history, mean, error, what_ifs = first["tenant-0"]
    assert (history, error, what_ifs) == (4, None, len(MULTIPLIERS)) and mean is not None
    _, history, mean, error, what_ifs = first["tenant-1"]  # measured on DAY only
    assert history == 1 and mean is None and "needs at least 3" in error and what_ifs == len(MULTIPLIERS)
    _, history, mean, error, _ = first[None]  # every tenant together: 4 days
    assert (history, error) == (4, None) and mean is not None

    run_dag(dagbag, "cost_snapshot", datetime(2026, 11, 21, 2, tzinfo=UTC), day=DAY.isoformat())
    again = _outlook(url)
    assert set(again) == set(first)
    assert all(again[t][0] != first[t][0] for t in first)  # new rows, the old ones gone
    assert {t: r[1:] for t, r in again.items()} == {t: r[1:] for t, r in first.items()}
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM cost_outlook").fetchone() == (len(first),)
