"""Values PostgreSQL refuses, in every statement of a batch: the row that holds one becomes a dead
letter with the server's message, and the rest of the batch lands.

The parser keeps most such values out (and the batch is built by it here); the sink must hold
even when a value gets through, so each case puts the value into the built batch by hand."""

from __future__ import annotations

import dataclasses
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from loganalyzer.db.connection import connect
from loganalyzer.events import ParseLimits
from streaming.batch import Batch, DeadLetter, build_batch
from streaming.derived import AnomalyRow, PartitionDerived, PatternDelta
from streaming.log_row import MESSAGE, METADATA
from streaming.retry import retry_transient
from streaming.sink import PostgresSink
from tests.integration.test_sink_derived import Rec

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
T = NOW - timedelta(minutes=5)


def _batch(n: int = 10) -> Batch:
    recs = [
        Rec(
            0,
            i,
            orjson.dumps(
                {
                    "timestamp": T.isoformat(),
                    "level": "ERROR",
                    "service": "payments",
                    "host": "h",
                    "message": f"charge failed for order {i}",
                    "metadata": {"i": i},
                }
            ),
        )
        for i in range(n)
    ]
    return build_batch("logs", recs, ParseLimits(), NOW)


def _replace(batch: Batch, index: int, column: int, value: Any) -> None:
    rows = batch.partitions[0].rows
    row = list(rows[index])
    row[column] = value
    rows[index] = tuple(row)


def _pattern(pattern_id: str, template: str, sample: str, count: int = 1) -> PatternDelta:
    return PatternDelta("default", "payments", pattern_id, template, T, T, count, count, sample)


def _anomaly(anomaly_id: str, **changes: Any) -> AnomalyRow:
    row = AnomalyRow(
        anomaly_id, "default", "payments", "error_rate_spike", "high", "open", T, T + timedelta(minutes=1),
        None, 9.0, 0.01, 0.5, "error rate 50% vs expected 1%",
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def _dead(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT source, reason, kafka_offset, detail FROM dead_letters ORDER BY source, kafka_offset"
    ).fetchall()


@pytest.mark.parametrize(
    ("metadata", "server_says"),
    [
        (b'{"a": "\\u0000"}', "unsupported Unicode escape sequence"),
        (b'{"a": "\\ud800"}', "Unicode low surrogate must follow a high surrogate"),
    ],
)
def test_a_jsonb_value_postgres_refuses_is_isolated(
    database_url: str, metadata: bytes, server_says: str
) -> None:
    batch = _batch()
    _replace(batch, 4, METADATA, b"\x01" + metadata)
    with connect(database_url) as conn:
        result = PostgresSink(conn, "logs").write(batch)
        assert (result.written, result.db_rejected) == (9, 1)
        [(source, reason, offset, detail)] = _dead(conn)
        assert (source, reason, offset) == ("record", "db_rejected", 4) and server_says in detail


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("charge\x00failed", "0x00"),  # binary COPY: the server refuses; row by row: psycopg does
        ("charge \ud800 failed", "surrogates not allowed"),  # psycopg cannot encode it
    ],
)
def test_a_message_that_cannot_be_text_is_isolated(database_url: str, message: str, says: str) -> None:
    batch = _batch()
    _replace(batch, 2, MESSAGE, message)
    with connect(database_url) as conn:
        result = PostgresSink(conn, "logs").write(batch)
        assert (result.written, result.db_rejected) == (9, 1)
        [(_, reason, offset, detail)] = _dead(conn)
        assert (reason, offset) == ("db_rejected", 2) and says in detail


def test_a_message_over_an_index_row_size_is_isolated_and_never_retried(database_url: str) -> None:
    """An index an operator added on `message` (b-tree rows hold at most 2704 bytes): PostgreSQL's
    "program limit exceeded" is filed by psycopg under OperationalError, like a lost connection;
    retried, it would stop the partition for good."""
    batch = _batch()
    _replace(batch, 6, MESSAGE, os.urandom(6000).hex())  # incompressible: no TOAST rescue
    with connect(database_url) as conn:
        conn.execute("CREATE INDEX logs_message_idx ON logs (message)")
        conn.commit()
        sink = PostgresSink(conn, "logs")
        tries: list[BaseException] = []
        result = retry_transient(lambda: sink.write(batch), tries.append, lambda: True)
        assert tries == []
        assert (result.written, result.db_rejected) == (9, 1)
        [(_, reason, offset, detail)] = _dead(conn)
        assert (reason, offset) == ("db_rejected", 6) and "index row" in detail and "maximum" in detail


def test_pattern_rows_postgres_refuses_are_isolated(database_url: str) -> None:
    derived = PartitionDerived(
        patterns=[
            _pattern("p1", "charge failed for order <*>", "charge failed for order 0", 8),
            _pattern("p2", "charge\x00failed <*>", "charge\x00failed 1"),
            _pattern("p3", "charge \ud800 <*>", "charge \ud800 2"),
        ]
    )
    with connect(database_url) as conn:
        result = PostgresSink(conn, "logs").write(_batch(), {0: derived})
        assert result.written == 10 and result.derived_rejected == {"pattern_rejected": 2}
        assert conn.execute("SELECT pattern_id, count FROM log_patterns").fetchall() == [("p1", 8)]
        dead = _dead(conn)
        assert [(s, r, o) for s, r, o, _ in dead] == [("pattern", "pattern_rejected", 9)] * 2
        assert any("NUL" in d for *_, d in dead) and any("surrogates" in d for *_, d in dead)
        raws = conn.execute("SELECT raw FROM dead_letters ORDER BY id").fetchall()
        assert {orjson.loads(bytes(r))["pattern_id"] for (r,) in raws} == {"p2", "p3"}


def test_anomaly_rows_postgres_refuses_are_isolated_and_non_finite_scores_stored_as_null(
    database_url: str,
) -> None:
    derived = PartitionDerived(
        anomalies=[
            _anomaly("ok"),
            _anomaly("nan", score=math.nan, expected_value=math.inf),
            _anomaly("bad-severity", severity="extreme"),
            _anomaly("bad-window", window_end=T - timedelta(minutes=1)),
            _anomaly("bad-details", details={"note": "a\x00b"}),
        ]
    )
    with connect(database_url) as conn:
        result = PostgresSink(conn, "logs").write(_batch(), {0: derived})
        assert result.written == 10 and result.derived_rejected == {"anomaly_rejected": 3}
        stored = conn.execute(
            "SELECT id, score, expected_value, details FROM anomalies ORDER BY id"
        ).fetchall()
        assert stored == [
            ("nan", None, None, {"non_finite": {"score": "nan", "expected_value": "inf"}}),
            ("ok", 9.0, 0.01, {}),
        ]
        details = " ".join(d for *_, d in _dead(conn))
        assert "anomalies_severity_check" in details and "anomalies_window_check" in details
        assert "unsupported Unicode escape sequence" in details


def test_dead_letters_with_nul_and_surrogates_are_stored(database_url: str) -> None:
    batch = _batch(3)
    batch.partitions[0].dead_letters.append(
        DeadLetter(0, 3, b"key\x00with-nul", None, b"raw\x00", "invalid_json", "bad \x00 and \ud800 here")
    )
    batch.partitions[0].last_offset = 3
    with connect(database_url) as conn:
        result = PostgresSink(conn, "logs").write(batch)
        assert (result.written, result.dead_lettered) == (3, 1)
        row = conn.execute("SELECT kafka_key, raw, detail FROM dead_letters").fetchone()
        assert row is not None
        assert (bytes(row[0]), bytes(row[1]), row[2]) == (
            b"key\x00with-nul",
            b"raw\x00",
            "bad \\0 and \\ud800 here",
        )


def test_the_consumer_stops_naming_the_records_when_postgres_cannot_take_a_batch(
    broker: str, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No row is at fault (the dead_letters table is gone): no retry loop, no traceback, exit
    code 1 and one message that names the records and what to do."""
    import threading

    from loganalyzer.settings import load_settings
    from streaming.consumer import LogConsumer
    from tests.integration.consumer_harness import consumer_env
    from tests.support import new_topic, produce, valid_values

    topic = new_topic(broker, partitions=1)
    produce(broker, topic, [*valid_values(5), b"not json"])
    with connect(database_url) as conn:
        conn.execute("DROP TABLE dead_letters")
    consumer = LogConsumer(load_settings(consumer_env(database_url, broker, topic)))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(consumer.run()), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        consumer.stop()
        thread.join(30)
        pytest.fail("the consumer kept going")
    assert result == [1]
    [stop] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping: PostgreSQL")]
    assert f"{topic}/0 offsets 0-5" in stop and "dead_letters" in stop and "loganalyzer migrate" in stop
    assert f"UPDATE ingest_offsets SET next_offset = 1 WHERE kafka_topic = '{topic}'" in stop
