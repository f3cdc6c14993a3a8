"""sql/014: a closed day is rebuilt for search without losing a row, a constraint or an index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from loganalyzer.db.connection import connect

pytestmark = pytest.mark.integration

DAY = datetime(2026, 3, 4, tzinfo=UTC)
COPY = (
    'COPY logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition, '
    "kafka_offset) FROM STDIN"
)


def _write(conn: psycopg.Connection, first: int, n: int) -> None:
    with conn.cursor().copy(COPY) as cp:
        for i in range(first, first + n):
            cp.write_row(
                (
                    DAY + timedelta(seconds=i),
                    "acme",
                    f"svc-{i % 3}",
                    "h",
                    "INFO",
                    f"user {i} login ok",
                    "logs",
                    0,
                    i,
                )
            )


def _indexes(conn: psycopg.Connection, table: str) -> list[str]:
    return sorted(
        r[0]
        for r in conn.execute(
            "SELECT regexp_replace(indexdef, 'INDEX \\S+ ON \\S+', 'INDEX ON') FROM pg_indexes "
            "WHERE tablename = %s",
            (table,),
        )
    )


def test_a_closed_day_is_rebuilt_whole_and_late_rows_become_searchable(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition(%s)", (DAY.date(),))
        conn.execute("SELECT ensure_log_partition(%s)", ((DAY + timedelta(days=1)).date(),))
        _write(conn, 0, 5000)
        before = _indexes(conn, "logs_p20260304")
        built = [r[0] for r in conn.execute("SELECT index_closed_log_partitions('2026-03-05')")]
        assert built == [
            "logs_p20260304_service_time_idx",
            "logs_p20260304_search_gin",
            "logs_p20260304_time_idx",
        ]
        assert conn.execute("SELECT count(*), count(message_tsv) FROM logs").fetchone() == (5000, 5000)
        after = _indexes(conn, "logs_p20260304")
        assert set(before) < set(after)  # every index it had, plus the closed-day ones
        assert len(after) == len(before) + 3
        # still a partition of logs, still refusing a duplicate Kafka record
        with pytest.raises(psycopg.errors.UniqueViolation):
            _write(conn, 10, 1)
        # the partition bounds are enforced by the parent again, not by a leftover CHECK
        checks = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'logs_p20260304'::regclass "
            "AND contype = 'c' AND conname LIKE '%bounds'"
        ).fetchone()
        assert checks == (0,)
        # a late row: NULL until the next maintenance run, then searchable
        _write(conn, 5000, 1)
        late = [r[0] for r in conn.execute("SELECT index_closed_log_partitions('2026-03-05')")]
        assert late == ["logs_p20260304: 1 late rows made searchable"]
        found = conn.execute(
            "SELECT count(*) FROM logs WHERE message_tsv @@ websearch_to_tsquery('simple', 'user 5000')"
        ).fetchone()
        assert found == (1,)
        # today's partition (not closed) was left alone: no search column values, no GIN
        assert conn.execute("SELECT to_regclass('logs_p20260305_search_gin')").fetchone() == (None,)


def test_rebuilding_one_day_directly_and_refusing_other_tables(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition(%s)", (DAY.date(),))
        _write(conn, 0, 100)
        conn.execute("SELECT rebuild_log_partition_for_search('logs_p20260304')")
        assert conn.execute("SELECT count(*), count(message_tsv) FROM logs").fetchone() == (100, 100)
        with pytest.raises(psycopg.errors.RaiseException, match="not a daily logs partition"):
            conn.execute("SELECT rebuild_log_partition_for_search('dead_letters')")
