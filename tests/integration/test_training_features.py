"""Training and serving compute the same window features from the same events (no skew)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loganalyzer.db.connection import connect
from loganalyzer.db.minute_counts import minute_counts
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.engine import DetectionEngine
from loganalyzer.detection.features import Counts, window_features
from loganalyzer.events import ParseLimits
from loganalyzer.generator.services import CATALOGUE
from loganalyzer.generator.traffic import TrafficModel
from loganalyzer.model.training import feature_rows
from streaming.batch import build_batch
from streaming.log_row import DURATION, LEVEL, MESSAGE, SERVICE, TENANT, TS
from streaming.sink import PostgresSink

pytestmark = pytest.mark.integration


class Rec:
    def __init__(self, o: int, v: bytes) -> None:
        self.o, self.v = o, v

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes:
        return self.v

    def key(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


def test_sql_minute_counts_equal_the_consumers_buckets(database_url: str) -> None:
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=12)
    values = [r.value for r in TrafficModel(CATALOGUE, 30, seed=3).records(start, end)]
    batch = build_batch("logs", [Rec(i, v) for i, v in enumerate(values)], ParseLimits(), datetime.now(UTC))
    engine = DetectionEngine(DetectionConfig(allowed_lateness=timedelta(hours=1)))  # keep every bucket open
    for row in batch.partitions[0].rows:
        engine.observe(row[TS], row[TENANT], row[SERVICE], row[LEVEL], row[MESSAGE], row[DURATION])
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        sink.write(batch)
        sql = minute_counts(conn, start, end)
    served = {key: state.buckets for key, state in engine.services.items()}
    assert set(sql) == set(served)
    for key, minutes in sql.items():
        assert set(minutes) == set(served[key])
        for m, counts in minutes.items():
            mine = served[key][m]
            assert (counts.total, counts.errors, counts.warns, counts.duration_n, counts.length_sum) == (
                mine.total,
                mine.errors,
                mine.warns,
                mine.duration_n,
                mine.length_sum,
            )
            assert counts.duration_sum == pytest.approx(mine.duration_sum)
    rows = feature_rows(sql)
    expected = []
    for key in sql:
        b = served[key]
        for m in range(min(b) + 4, max(b) + 1):
            expected.append(window_features([b.get(k) or Counts() for k in range(m - 4, m + 1)]))
    assert len(rows) == len(expected) > 50
    for got, want in zip(sorted(rows), sorted(expected), strict=True):
        assert got == pytest.approx(want)


def test_minute_arrays_read_in_parallel_by_day_equal_minute_counts(database_url: str) -> None:
    """Training's columnar reader (day ranges over two connections) returns exactly the warm
    start's minute rows, across a midnight and from a start that is not one."""
    from loganalyzer.db.minute_counts import minute_arrays
    from tests.retrain_support import Incident, write_traffic

    begin = datetime(2026, 11, 3, 21, 0, tzinfo=UTC)
    write_traffic(
        database_url,
        begin,
        6 * 60,
        4,
        3,
        [Incident(1, begin + timedelta(hours=2), begin + timedelta(hours=3))],
    )
    start, end = begin + timedelta(minutes=7, seconds=30), begin + timedelta(hours=5, minutes=1)
    with connect(database_url) as conn:
        expected = minute_counts(conn, start, end)
        got = minute_arrays(conn, start, end, readers=2)
        assert minute_arrays(conn, begin + timedelta(hours=7), begin + timedelta(hours=9)) == {}
    assert set(got) == {f"{t}/{s}" for t, s in expected}
    for (tenant, service), minutes in expected.items():
        arrays = got[f"{tenant}/{service}"]
        assert arrays.minutes.tolist() == sorted(minutes)
        assert arrays.counts.tolist() == [
            [c.total, c.errors, c.warns, c.duration_n, c.length_sum] for _, c in sorted(minutes.items())
        ]
        # a float sum depends on the order PostgreSQL adds the rows in (plans differ): last bit only
        assert arrays.duration_sum.tolist() == pytest.approx(
            [c.duration_sum for _, c in sorted(minutes.items())]
        )
