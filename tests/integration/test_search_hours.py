"""Today's closed hours get a full-text GIN each; the search query plan reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from loganalyzer.db.connection import connect
from loganalyzer.db.search_hours import index_closed_hours

pytestmark = pytest.mark.integration

DAY = datetime(2026, 3, 4, tzinfo=UTC)
COPY = (
    'COPY logs ("timestamp", tenant, service, host, level, message, kafka_topic, kafka_partition, '
    "kafka_offset) FROM STDIN"
)
# a window inside 02:00-03:00, as the API asks for an indexed hour (parameters, not literals)
SEARCH = (
    'SELECT "timestamp", message FROM logs WHERE "timestamp" >= %s AND "timestamp" < %s '
    "AND service = %s AND to_tsvector('simple', message) @@ websearch_to_tsquery('simple', %s) "
    'ORDER BY "timestamp" DESC LIMIT 5'
)


def _write(conn: psycopg.Connection, first: int, n: int, step: timedelta) -> None:
    with conn.cursor().copy(COPY) as cp:
        for i in range(first, first + n):
            word = "needle" if i % 500 == 0 else "hay"
            cp.write_row((DAY + i * step, "acme", f"svc-{i % 3}", "h", "INFO", f"{word} {i}", "logs", 0, i))


def _hour_indexes(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    return [
        (str(r[0]), bool(r[1]))
        for r in conn.execute(
            "SELECT c.relname, x.indisvalid FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = 'logs_p20260304'::regclass AND c.relname LIKE '%%_search_h%%' ORDER BY 1"
        )
    ]


def test_closed_hours_get_an_index_once_and_searches_use_it(database_url: str) -> None:
    now = DAY + timedelta(hours=3, minutes=10)  # 00-01, 01-02 and 02-03 closed: indexed at once
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition(%s)", (DAY.date(),))
        _write(conn, 0, 20_000, timedelta(seconds=0.6))  # 00:00 to 03:20
        assert index_closed_hours(conn, now) == [
            "logs_p20260304_search_h02",
            "logs_p20260304_search_h01",
            "logs_p20260304_search_h00",
            "logs_p20260304_search_h03_m10",  # the open hour's whole 5-minute steps so far
        ]
        assert _hour_indexes(conn) == [
            *[(f"logs_p20260304_search_h0{h}", True) for h in range(3)],
            ("logs_p20260304_search_h03_m10", True),
        ]
        assert index_closed_hours(conn, now) == []  # built once
        # one step later the prefix is built one step longer, and the shorter one dropped
        assert index_closed_hours(conn, now + timedelta(minutes=10)) == ["logs_p20260304_search_h03_m20"]
        assert _hour_indexes(conn)[-1] == ("logs_p20260304_search_h03_m20", True)
        assert len(_hour_indexes(conn)) == 4
        # the hour's own index replaces its prefix as soon as the hour closes (04:00: the next
        # hour has no whole step yet)
        assert index_closed_hours(conn, now + timedelta(minutes=50)) == ["logs_p20260304_search_h03"]
        assert [n for n, _ in _hour_indexes(conn)] == [f"logs_p20260304_search_h0{h}" for h in range(4)]

        # a search inside the prefix reads the prefix's GIN
        conn.execute(
            "CREATE INDEX logs_p20260304_search_h03_m10 ON logs_p20260304 "
            "USING gin (service, to_tsvector('simple'::regconfig, message)) "
            "WHERE \"timestamp\" >= '2026-03-04 03:00+00' AND \"timestamp\" < '2026-03-04 03:10+00'"
        )
        conn.execute("ANALYZE logs")
        prefix_args = (DAY + timedelta(hours=3), DAY + timedelta(hours=3, minutes=10), "svc-0", "needle")
        plan = "\n".join(str(r[0]) for r in conn.execute("EXPLAIN " + SEARCH, prefix_args))
        assert "logs_p20260304_search_h03_m10" in plan, plan
        assert (
            conn.execute(SEARCH, prefix_args).fetchall()
            == conn.execute(SEARCH.replace("message)", "message || '')"), prefix_args).fetchall()
        )
        conn.execute("DROP INDEX logs_p20260304_search_h03_m10")
        conn.execute("ANALYZE logs")

        args = (DAY + timedelta(hours=2), DAY + timedelta(hours=2, minutes=59), "svc-0", "needle")
        plan = "\n".join(str(r[0]) for r in conn.execute("EXPLAIN " + SEARCH, args))
        assert "logs_p20260304_search_h02" in plan, plan
        found = conn.execute(SEARCH, args).fetchall()
        unindexed = SEARCH.replace("message)", "message || '')")
        parsed = conn.execute(unindexed, args)
        assert found and found == parsed.fetchall()  # the index answers what parsing answers

        # a late row of an indexed hour is in that hour's index at once
        conn.execute(
            'INSERT INTO logs ("timestamp", tenant, service, host, level, message, kafka_topic, '
            "kafka_partition, kafka_offset) "
            "VALUES (%s, 'acme', 'svc-0', 'h', 'INFO', 'late needle', 'logs', 1, 1)",
            (DAY + timedelta(hours=2, minutes=58),),
        )
        assert conn.execute(SEARCH, args).fetchone()[1] == "late needle"  # type: ignore[index]

        # an index a failed build left invalid is built again
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'logs_p20260304_search_h00'::regclass"
        )
        assert index_closed_hours(conn, now + timedelta(minutes=50)) == ["logs_p20260304_search_h00"]
        assert all(valid for _, valid in _hour_indexes(conn))

        # the day's rebuild at close replaces the partition, and the hour indexes with it
        conn.execute("SELECT rebuild_log_partition_for_search('logs_p20260304')")
        assert _hour_indexes(conn) == []
        assert index_closed_hours(conn, DAY + timedelta(days=1, hours=5)) == []


def test_old_days_are_left_to_the_daily_rebuild(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition(%s)", (DAY.date(),))
        assert index_closed_hours(conn, DAY + timedelta(days=3)) == []
        with pytest.raises(ValueError, match="autocommit"):
            conn.autocommit = False
            index_closed_hours(conn, DAY)
