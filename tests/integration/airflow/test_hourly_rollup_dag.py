"""hourly_rollup through dag.test(): a 3-day backfill equals a plain GROUP BY, re-runs change nothing,
late events are picked up by the next hour's run, and a bad connection names itself."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loganalyzer.db.connection import connect
from tests.export_support import insert_logs
from tests.integration.airflow.conftest import run_dag, run_failing_dag

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)]

_EXPECTED = """
SELECT tenant, service, date_trunc('hour', "timestamp"), count(*),
       count(*) FILTER (WHERE level IN ('TRACE', 'DEBUG')), count(*) FILTER (WHERE level = 'INFO'),
       count(*) FILTER (WHERE level = 'WARN'), count(*) FILTER (WHERE level = 'ERROR'),
       count(*) FILTER (WHERE level = 'FATAL'), count(DISTINCT host),
       round(avg(duration_ms)::numeric, 6),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::numeric, 6)
FROM logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
_ACTUAL = """
SELECT tenant, service, hour, log_count, debug_count, info_count, warn_count, error_count, fatal_count,
       host_count, round(avg_duration_ms::numeric, 6), round(p95_duration_ms::numeric, 6)
FROM hourly_metrics ORDER BY 1, 2, 3
"""


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with connect(url) as conn:
        return [tuple(r) for r in conn.execute(query)]  # type: ignore[arg-type]


def snapshot(url: str) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT *, xmin::text FROM hourly_metrics ORDER BY 1, 2, 3")


def test_three_day_backfill_is_a_group_by_and_reruns_change_nothing(
    dagbag: Any, platform: dict[str, Any]
) -> None:
    url = platform["database_url"]
    for i, day in enumerate(DAYS):
        insert_logs(url, day, 6_000, tenants=2, services=3, offset=i * 10_000)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    # A manual run's data interval is the hour that ENDS at its logical date (a scheduled or
    # backfilled run's logical date is the hour's start): one run per hour of the three days.
    hours = [start + timedelta(hours=h) for h in range(1, 3 * 24 + 1)]
    for h in hours:
        run = run_dag(dagbag, "hourly_rollup", h)
    assert run.data_interval_end == hours[-1]
    expected = rows(url, _EXPECTED)
    assert len(expected) == 3 * 24 * 6
    assert rows(url, _ACTUAL) == expected

    before = snapshot(url)  # xmin included: an unchanged row must not even be rewritten
    for h in hours[:5]:
        run_dag(dagbag, "hourly_rollup", h)
    assert snapshot(url) == before


def test_a_late_event_is_counted_by_the_next_hours_run(dagbag: Any, platform: dict[str, Any]) -> None:
    url = platform["database_url"]
    insert_logs(url, DAYS[0], 2_400, tenants=1, services=1)
    ten = datetime(2026, 11, 2, 10, tzinfo=UTC)
    run_dag(dagbag, "hourly_rollup", ten + timedelta(hours=1))  # the hour 10:00-11:00 (and 09:00)
    count_sql = "SELECT log_count FROM hourly_metrics WHERE hour = '2026-11-02 10:00+00'"
    (before,) = rows(url, count_sql)[0]
    with connect(url) as conn:
        conn.execute(
            'INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic,'
            " kafka_partition, kafka_offset) VALUES ('2026-11-02 10:30+00', 'tenant-0', 'svc-00', 'h',"
            " 'ERROR', 'late', 'logs', 9, 1)"
        )
        conn.commit()
    run_dag(dagbag, "hourly_rollup", ten + timedelta(hours=2))  # 11:00-12:00 also recomputes 10:00
    assert rows(url, count_sql)[0][0] == before + 1


def test_a_bad_database_connection_is_named(
    dagbag: Any, platform: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LOGANALYZER_DB", "postgres://postgres@127.0.0.1:1/nowhere")
    when = datetime(2026, 11, 2, 10, tzinfo=UTC)
    failed = run_failing_dag(dagbag, "hourly_rollup", when, monkeypatch, capfd)
    error = failed.connection_error(
        "roll_up_hours", "cannot connect to PostgreSQL through Airflow connection 'loganalyzer_db'"
    )
    assert "port 1" in error
