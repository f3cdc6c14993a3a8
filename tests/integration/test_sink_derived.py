"""Derived data (pattern counts, anomaly episodes, checkpoints) commits with its rows, or not at all."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from loganalyzer.db.connection import connect
from loganalyzer.events import ParseLimits
from streaming.batch import build_batch
from streaming.derived import AnomalyRow, PartitionDerived, PatternDelta
from streaming.sink import PostgresSink, Unwritable

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


class Rec:
    def __init__(self, p: int, o: int, v: bytes) -> None:
        self.p, self.o, self.v = p, o, v

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def value(self) -> bytes:
        return self.v

    def key(self) -> bytes:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


def _batch(partition: int, first: int, n: int):  # type: ignore[no-untyped-def]
    recs = [
        Rec(
            partition,
            first + i,
            orjson.dumps(
                {
                    "timestamp": (NOW - timedelta(minutes=5)).isoformat(),
                    "level": "ERROR",
                    "service": "payments",
                    "host": "h",
                    "message": f"charge failed for order {i}",
                }
            ),
        )
        for i in range(n)
    ]
    return build_batch("logs", recs, ParseLimits(), NOW)


def _derived(count: int, status: str = "open") -> PartitionDerived:
    t = NOW - timedelta(minutes=5)
    return PartitionDerived(
        patterns=[
            PatternDelta(
                "default",
                "payments",
                "p1",
                "charge failed for order <*>",
                t,
                t,
                count,
                count,
                "charge failed for order 0",
            )
        ],
        anomalies=[
            AnomalyRow(
                "ep-1",
                "default",
                "payments",
                "error_rate_spike",
                "high",
                status,
                t,
                t + timedelta(minutes=1),
                None if status == "open" else NOW,
                9.0,
                0.01,
                0.5,
                "error rate 50% vs expected 1%",
            )
        ],
        checkpoint=b"state-bytes",
    )


def test_derived_data_commits_with_the_rows(database_url: str) -> None:
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        sink.write(_batch(0, 0, 10), {0: _derived(10)})
        sink.write(_batch(0, 10, 5), {0: _derived(5, status="resolved")})
        # A replay of the first batch is fenced: its derived data must not count twice.
        result = sink.write(_batch(0, 0, 10), {0: _derived(10)})
        assert result.skipped == 10
        pattern = conn.execute("SELECT count, error_count FROM log_patterns").fetchall()
        logs = conn.execute("SELECT count(*) FROM logs").fetchone()
        anomaly = conn.execute("SELECT status, resolved_at IS NOT NULL FROM anomalies").fetchall()
        assert sink.load_checkpoints([0]) == {0: (15, b"state-bytes")}
    assert pattern == [(15, 15)]
    assert logs == (15,)  # pattern counts add up to the rows
    assert anomaly == [("resolved", True)]  # one episode, updated in place


def test_a_failed_write_leaves_no_derived_data(database_url: str) -> None:
    """A server-side problem (here a missing table) is no row's fault: the batch fails whole,
    with a message naming its records and what to do, and leaves nothing behind."""
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        conn.execute("DROP TABLE anomalies CASCADE")  # (the suppressions view goes with it)
        conn.commit()
        with pytest.raises(Unwritable, match=r"logs/1 offsets 0-2: .*anomalies.*loganalyzer migrate"):
            sink.write(_batch(1, 0, 3), {1: _derived(3)})
        assert conn.execute("SELECT count(*) FROM log_patterns").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (0,)
        assert sink.load_checkpoints([1]) == {}


def test_silence_found_on_a_quiet_partition_is_written_only_by_its_owner(database_url: str) -> None:
    """write_idle: no rows, no offsets moved; the episodes land only where the stored offset is
    the one this consumer expects (another owner has moved on: fenced)."""
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0, 1])
        sink.write(_batch(0, 0, 10))
        sink.write(_batch(1, 0, 10))
        found = _derived(0)
        other = PartitionDerived(anomalies=[dataclasses.replace(found.anomalies[0], id="ep-other")])
        written = sink.write_idle({0: found, 1: other}, {0: 10, 1: 7})  # partition 1 moved on
        assert written == {0}
        assert conn.execute("SELECT id, status FROM anomalies").fetchall() == [("ep-1", "open")]
        # (pattern counts belong with the rows that made them: write_idle never writes them)
        assert conn.execute("SELECT count(*) FROM log_patterns").fetchone() == (0,)
        assert sink.stored_offsets([0, 1]) == {0: 10, 1: 10}


def test_a_history_read_over_its_budget_gives_up_and_leaves_the_connection_usable(
    database_url: str,
) -> None:
    """The warm start's budget: assignment blocks polling, so a history read that cannot finish
    in time (here: waiting on a lock someone holds on `logs`) is cancelled and the partition
    starts cold; the sink's connection goes on working."""
    import time

    with connect(database_url) as conn, connect(database_url) as other:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        sink.write(_batch(0, 0, 10))
        conn.commit()
        assert sink.load_history(0, timedelta(hours=2), timedelta(seconds=5)) is not None
        conn.execute("SET lock_timeout = '5s'")  # were the budget not applied: an error, not a hang
        conn.commit()
        other.execute("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")  # held until other commits
        began = time.monotonic()
        assert sink.load_history(0, timedelta(hours=2), timedelta(seconds=0.3)) is None
        assert 0.25 < time.monotonic() - began < 3
        other.commit()
        warm = sink.load_history(0, timedelta(hours=2), timedelta(seconds=5))
        assert warm is not None and sum(c.total for *_, c in warm.rows) == 10


def test_quiet_partitions_findings_postgres_cannot_take_stop_with_a_message(database_url: str) -> None:
    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs")
        sink.stored_offsets([0])
        sink.write(_batch(0, 0, 10))
        conn.execute("DROP TABLE anomalies CASCADE")  # (the suppressions view goes with it)
        conn.commit()
        with pytest.raises(
            Unwritable, match=r"quiet partitions \[0\] of logs: .*anomalies.*loganalyzer migrate"
        ):
            sink.write_idle({0: _derived(0)}, {0: 10})


def _state(conn: object, aid: str) -> tuple[object, ...]:
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT operator_state, operator_state_until, "
        "anomaly_effective_status(status, operator_state, operator_state_until) FROM anomalies WHERE id = %s",
        (aid,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _with_template(d: PartitionDerived, aid: str, status: str = "open") -> PartitionDerived:
    (a,) = d.anomalies
    a = dataclasses.replace(a, id=aid, status=status, pattern_template="charge failed for order <*>")
    return dataclasses.replace(d, anomalies=[a], checkpoint=None)


def test_operator_states_survive_the_consumers_upserts_and_a_pattern_suppression_marks_rows(
    database_url: str,
) -> None:
    """An anomaly suppression (the API's UPDATE) stays on the episode through its later updates;
    the consumer's mark of a pattern suppression never shortens it, nor replaces an
    acknowledgement; a longer pattern suppression extends a shorter one."""
    from streaming.suppressions import SuppressionCache

    with connect(database_url) as conn:
        sink = PostgresSink(conn, "logs", SuppressionCache(refresh_seconds=0))
        sink.stored_offsets([0])
        sink.write(_batch(0, 0, 3), {0: _with_template(_derived(3), "ep-good")})
        sink.write(_batch(0, 3, 3), {0: _with_template(_derived(3), "ep-ack")})
        sink.write(_batch(0, 6, 3), {0: _with_template(_derived(3), "ep-short")})
        conn.execute(
            "UPDATE anomalies SET operator_state = 'suppressed', operator_state_at = now() "
            "WHERE id = 'ep-good'"
        )
        conn.execute(
            "UPDATE anomalies SET operator_state = 'acknowledged', operator_state_at = now() "
            "WHERE id = 'ep-ack'"
        )
        conn.execute(
            "UPDATE anomalies SET operator_state = 'suppressed', operator_state_at = now(), "
            "operator_state_until = now() + interval '5 minutes' WHERE id = 'ep-short'"
        )
        conn.commit()
        sink.write(_batch(0, 9, 3), {0: _with_template(_derived(3), "ep-good", "resolved")})
        assert _state(conn, "ep-good") == ("suppressed", None, "suppressed")  # its later update too

        conn.execute(
            "INSERT INTO anomaly_feedback (tenant, action, scope, service, pattern_template, until) "
            "VALUES ('default', 'suppress', 'pattern', 'payments', 'charge failed for order <*>', "
            "now() + interval '2 hours')"
        )
        conn.commit()
        for i, aid in enumerate(("ep-good", "ep-ack", "ep-short", "ep-new")):
            sink.write(_batch(0, 12 + 3 * i, 3), {0: _with_template(_derived(3), aid)})
        good, ack, short, new = (_state(conn, a) for a in ("ep-good", "ep-ack", "ep-short", "ep-new"))
    assert good == ("suppressed", None, "suppressed")  # for good is longer than 2 hours
    assert ack[0] == "acknowledged"
    assert short[0] == "suppressed" and short[1] > NOW + timedelta(hours=1)  # extended
    assert new[0] == "suppressed" and new[1] > NOW + timedelta(hours=1) and new[2] == "suppressed"
    assert sink.suppressed == 4  # every row of the pattern was marked; the SQL decided what to keep
