"""Per-minute Counts of stored events, from `logs`: the same buckets the consumer builds from
events (loganalyzer.detection.features.Counts), read back by SQL.

Two readers: training (window features of every service) and the consumer's warm start
(a partition with no detector checkpoint rebuilds its baselines from what is already stored).
One query for both, so the minute a model is trained on and the minute a baseline learns from
cannot disagree. Its equality with the consumer's buckets is tested in
tests/integration/test_training_features.py.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from queue import Empty, Queue
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from loganalyzer.detection.features import Counts

_MINUTES_SQL = """
SELECT tenant, service, date_part('epoch', minute)::bigint / 60 AS minute,
       total, errors, warns, duration_sum, duration_n, length_sum
FROM (
    SELECT tenant, service, date_trunc('minute', "timestamp") AS minute,
           count(*) AS total,
           count(*) FILTER (WHERE level IN ('ERROR', 'FATAL')) AS errors,
           count(*) FILTER (WHERE level = 'WARN') AS warns,
           coalesce(sum(duration_ms), 0) AS duration_sum,
           count(duration_ms) AS duration_n,
           coalesce(sum(length(message)), 0) AS length_sum
    FROM logs
    WHERE "timestamp" >= %s AND "timestamp" < %s {where}
    GROUP BY 1, 2, 3
) AS m
"""
# Why the minute is grouped as a timestamp and turned into a number afterwards, with date_part:
# extract() returns numeric since PostgreSQL 14, and a numeric division per row was a third of
# this query; date_part's float8 of a whole minute is exact, and it runs once per group.

#: (tenant, service, minute since the epoch, what the service logged in it)
MinuteRow = tuple[str, str, int, Counts]


def minute_rows(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    kafka: tuple[str, int] | None = None,
) -> list[MinuteRow]:
    """Counts of every (tenant, service, minute) with events in [start, end), ordered by tenant,
    service and minute; `kafka` = (topic, partition) keeps one Kafka partition's events only."""
    where = ""
    params: list[object] = [start, end]
    if kafka is not None:
        where = "AND kafka_topic = %s AND kafka_partition = %s"
        params += list(kafka)
    query = sql.SQL(_MINUTES_SQL.format(where=where) + "ORDER BY 1, 2, 3")
    return [
        (tenant, service, int(m), Counts(int(total), int(errors), int(warns), float(ds), int(dn), int(ls)))
        for tenant, service, m, total, errors, warns, ds, dn, ls in conn.execute(query, params)
    ]


def minute_counts(
    conn: psycopg.Connection, start: datetime, end: datetime
) -> dict[tuple[str, str], dict[int, Counts]]:
    """`minute_rows` by service: {(tenant, service): {minute: Counts}}."""
    out: dict[tuple[str, str], dict[int, Counts]] = defaultdict(dict)
    for tenant, service, minute, counts in minute_rows(conn, start, end):
        out[(tenant, service)][minute] = counts
    return out


@dataclass(frozen=True)
class MinuteArrays:
    """One service's minutes with events, as columns (training over weeks: no object per minute)."""

    #: minutes since the epoch, ascending
    minutes: np.ndarray
    #: per minute, Counts' integer fields: total, errors, warns, duration_n, length_sum
    counts: np.ndarray
    #: per minute, Counts.duration_sum
    duration_sum: np.ndarray


def day_ranges(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: one range per daily partition of `logs` (pure)."""
    out: list[tuple[datetime, datetime]] = []
    lo = start
    while lo < end:
        midnight = datetime.combine(lo.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
        hi = min(end, midnight)
        out.append((lo, hi))
        lo = hi
    return out


#: connections reading day ranges at once: PostgreSQL aggregates a range in one backend, so two
#: connections use both cores of a small server
MINUTE_READERS = 2

_COLUMNS_SQL = (
    "SELECT tenant || '/' || service AS key, minute, total, errors, warns, duration_sum, duration_n,"
    " length_sum FROM ({inner}) AS rows"
)


def _read_ranges(dsn: str, ranges: Queue[tuple[datetime, datetime]]) -> list[Any]:
    """Take day ranges off `ranges` until it is empty; each one's minute rows as a pyarrow Table.

    Through ADBC (Arrow-native, binary COPY in C): psycopg's COPY hands Python one row at a time,
    and at 2 million minutes that loop was as costly as PostgreSQL's aggregate.
    """
    import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]

    tables: list[Any] = []
    with adbc.connect(dsn) as conn, conn.cursor() as cur:
        # JIT compiling this aggregate cost more than it saved (measured 11 s vs 6 s for 5 days
        # of 50 services)
        cur.execute("SET jit = off")
        while True:
            try:
                lo, hi = ranges.get_nowait()
            except Empty:
                return tables
            bounds = f"'{lo.isoformat()}'::timestamptz", f"'{hi.isoformat()}'::timestamptz"
            cur.execute(_COLUMNS_SQL.format(inner=_MINUTES_SQL.format(where="") % bounds))
            table = cur.fetch_arrow_table()
            if table.num_rows:
                tables.append(table)


def minute_arrays(
    conn: psycopg.Connection, start: datetime, end: datetime, readers: int = MINUTE_READERS
) -> dict[str, MinuteArrays]:
    """The rows of `minute_rows` (the same query) by "tenant/service", as numpy columns.

    Read day by day (a day is one partition, and its groups fit the aggregate's memory; one query
    over a month spilled its hash table to disk) through `readers` connections at once to the
    database of `conn`, as Arrow tables: a month of 50 services is 2 million minutes, which as
    Python tuples and Counts objects cost more than the query.
    """
    import pyarrow as pa

    ranges: Queue[tuple[datetime, datetime]] = Queue()
    for r in day_ranges(start, end):
        ranges.put(r)
    password = conn.info.password
    dsn = make_conninfo(conn.info.dsn, **({"password": password} if password else {}))
    n = max(1, min(readers, ranges.qsize()))
    with ThreadPoolExecutor(n) as pool:
        parts = list(pool.map(lambda _: _read_ranges(dsn, ranges), range(n)))
    tables = [t for part in parts for t in part]
    if not tables:
        return {}
    table = pa.concat_tables(tables).sort_by([("key", "ascending"), ("minute", "ascending")])
    keys = table["key"].to_numpy()
    minutes = table["minute"].to_numpy()
    ints = np.column_stack(
        [table[n].to_numpy() for n in ("total", "errors", "warns", "duration_n", "length_sum")]
    )
    dsum = table["duration_sum"].to_numpy()
    bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    out: dict[str, MinuteArrays] = {}
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(keys)]]), strict=True):
        out[str(keys[lo])] = MinuteArrays(minutes[lo:hi], ints[lo:hi], dsum[lo:hi])
    return out
