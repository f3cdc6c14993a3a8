"""The sink's two slow paths, which must lose nothing: a unique violation on the fast path (the
offsets table was reset by hand) and a value PostgreSQL rejects although it passed validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from loganalyzer.db.connection import connect
from loganalyzer.events import ParseLimits
from streaming.batch import Batch, build_batch
from streaming.log_row import LEVEL, METADATA
from streaming.sink import PostgresSink
from tests.integration.test_sink_derived import Rec

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def _batch(n: int, first: int = 0) -> Batch:
    recs = [
        Rec(
            0,
            first + i,
            orjson.dumps(
                {
                    "timestamp": (NOW - timedelta(minutes=5, seconds=i)).isoformat(),
                    "level": "INFO",
                    "service": "payments",
                    "host": "h",
                    "message": f"charged order {i}",
                    "metadata": {"duration_ms": i, "tags": ["a", {"b": None}]},
                }
            ),
        )
        for i in range(n)
    ]
    return build_batch("logs", recs, ParseLimits(), NOW)


def test_a_reset_offsets_table_replays_without_duplicates(database_url: str) -> None:
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        assert sink.write(_batch(50)).written == 50
        conn.execute("UPDATE ingest_offsets SET next_offset = 0")  # "reset by hand"
        conn.commit()
        again = sink.write(_batch(60))  # the 50 again, plus 10 new ones
        assert (again.written, again.skipped) == (10, 50)
        assert conn.execute("SELECT count(*), count(DISTINCT kafka_offset) FROM logs").fetchone() == (60, 60)
        assert again.next_offsets == {0: 60}


def test_a_row_postgres_rejects_is_dead_lettered_and_the_rest_of_its_batch_lands(database_url: str) -> None:
    batch = _batch(20)
    rows = batch.partitions[0].rows
    # A value that passed our validation but not the table's CHECK (the parser never produces
    # it; a future change of the contract or of the schema could): only this row may be lost.
    bad = list(rows[7])
    bad[LEVEL] = "LOUD"
    rows[7] = tuple(bad)
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        result = sink.write(batch)
        assert (result.written, result.db_rejected, result.dead_lettered) == (19, 1, 1)
        reason, detail, raw = conn.execute("SELECT reason, detail, raw FROM dead_letters").fetchone()  # type: ignore[misc]
        assert reason == "db_rejected" and "logs_level_check" in detail
        assert bytes(raw) == batch.partitions[0].raws[7]
        stored = conn.execute("SELECT metadata, duration_ms FROM logs WHERE kafka_offset = 3").fetchone()
        assert stored == ({"duration_ms": 3, "tags": ["a", {"b": None}]}, 3.0)
        assert stored is not None and orjson.loads(rows[3][METADATA][1:]) == stored[0]
