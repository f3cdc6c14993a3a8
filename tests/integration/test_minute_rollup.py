"""Retraining's minutes from the hourly rollup (minute_counts) are the minutes it aggregates from
logs: the training matrix is the same, bit for bit, with some hours rolled up and others not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from loganalyzer.batch.retrain import WINDOW_MINUTES
from loganalyzer.batch.rollup import roll_up
from loganalyzer.db.connection import connect
from loganalyzer.db.minute_counts import minute_arrays, plan_reads, rolled_up_hours
from loganalyzer.model.training import window_arrays
from tests.retrain_support import Incident, write_traffic

pytestmark = pytest.mark.integration

BEGIN = datetime(2026, 11, 3, 21, 0, tzinfo=UTC)


def test_training_matrix_from_the_rollup_equals_the_one_from_logs(database_url: str) -> None:
    write_traffic(
        database_url,
        BEGIN,
        6 * 60,
        4,
        3,
        [Incident(1, BEGIN + timedelta(hours=2), BEGIN + timedelta(hours=3))],
    )
    with connect(database_url) as conn:
        # hours 21-23 and 01 rolled up; 00 (across midnight) and 02 not: both sources in one read
        roll_up(conn, BEGIN, BEGIN + timedelta(hours=3))
        roll_up(conn, BEGIN + timedelta(hours=4), BEGIN + timedelta(hours=5))
        # a late event in a rolled-up hour, picked up by re-rolling that hour (as the next run does)
        conn.execute(
            'INSERT INTO logs ("timestamp", tenant, service, host, level, message, duration_ms,'
            " kafka_topic, kafka_partition, kafka_offset) VALUES"
            " ('2026-11-03 22:10:30+00', 'acme', 'svc-02', 'h', 'ERROR', 'late', 7.0, 'late', 0, 1)"
        )
        conn.commit()
        roll_up(conn, BEGIN + timedelta(hours=1), BEGIN + timedelta(hours=2))
        start, end = BEGIN + timedelta(minutes=7), BEGIN + timedelta(hours=6)
        done = rolled_up_hours(conn, start, end)
        plan = plan_reads(start, end, done)
        from_rollup = window_arrays(minute_arrays(conn, start, end), WINDOW_MINUTES)
        from_logs = window_arrays(minute_arrays(conn, start, end, use_rollup=False), WINDOW_MINUTES)
        (rows,) = conn.execute("SELECT count(*) FROM minute_counts").fetchone() or (0,)
    assert done == {BEGIN + timedelta(hours=h) for h in (0, 1, 2, 4)}
    assert [r.rolled_up for r in plan] == [True, False, True, False]
    assert rows == 4 * 4 * 60  # four hours of four services, every minute
    assert set(from_rollup) == set(from_logs) and len(from_logs) >= 4
    for key, ws in from_logs.items():
        assert np.array_equal(from_rollup[key].minutes, ws.minutes)
        assert np.array_equal(from_rollup[key].features, ws.features), key


def test_rolling_up_again_rewrites_nothing_and_drops_minutes_without_logs(database_url: str) -> None:
    write_traffic(database_url, BEGIN, 120, 2, 2, [])
    snapshot = "SELECT *, xmin::text FROM minute_counts ORDER BY 1, 2, 3"
    with connect(database_url) as conn:
        first = roll_up(conn, BEGIN, BEGIN + timedelta(hours=2))
        before = conn.execute(snapshot).fetchall()
        again = roll_up(conn, BEGIN, BEGIN + timedelta(hours=2))
        assert conn.execute(snapshot).fetchall() == before
        conn.execute('DELETE FROM logs WHERE "timestamp" < %s', (BEGIN + timedelta(minutes=30),))
        conn.commit()
        third = roll_up(conn, BEGIN, BEGIN + timedelta(hours=2))
        (left,) = conn.execute("SELECT min(minute) FROM minute_counts").fetchone() or (None,)
    assert first.minutes_written == len(before) == 120 * 2
    assert (again.minutes_written, again.minutes_deleted) == (0, 0)
    assert (third.minutes_written, third.minutes_deleted) == (0, 30 * 2)
    assert left == BEGIN + timedelta(minutes=30)
