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

#: per (tenant, service, minute): Counts' fields, aggregated from logs; the minute as a timestamp.
#: Also what the hourly rollup stores in minute_counts (loganalyzer.batch.rollup).
MINUTES_FROM_LOGS = """
SELECT tenant, service, date_trunc('minute', "timestamp") AS minute,
       count(*) AS total,
       count(*) FILTER (WHERE level IN ('ERROR', 'FATAL')) AS errors,
       count(*) FILTER (WHERE level = 'WARN') AS warns,
       coalesce(sum(duration_ms::numeric), 0)::float8 AS duration_sum,
       count(duration_ms) AS duration_n,
       coalesce(sum(length(message)), 0) AS length_sum
FROM logs
WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s {where}
GROUP BY 1, 2, 3
"""

_MINUTES_SQL = """
SELECT tenant, service, date_part('epoch', minute)::bigint / 60 AS minute,
       total, errors, warns, duration_sum, duration_n, length_sum
FROM ({inner}) AS m
"""
# Why duration_ms is summed as numeric: a float8 sum depends on the order PostgreSQL adds a
# minute's rows in, which differs between plans (the rollup's INSERT, a parallel read), by the
# last bit; numeric addition does not, so the minutes from minute_counts and from logs are the
# same numbers to the bit (tests/integration/test_minute_rollup.py).
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
    params: dict[str, object] = {"start": start, "end": end}
    if kafka is not None:
        where = "AND kafka_topic = %(topic)s AND kafka_partition = %(partition)s"
        params.update(topic=kafka[0], partition=kafka[1])
    query = sql.SQL(_MINUTES_SQL.format(inner=MINUTES_FROM_LOGS.format(where=where)) + "ORDER BY 1, 2, 3")
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
#: the same columns from the hourly rollup's minute_counts (the same types: bigint, float8)
_ROLLED_UP_SQL = _COLUMNS_SQL.format(
    inner=_MINUTES_SQL.format(
        inner="SELECT * FROM minute_counts WHERE minute >= %(start)s AND minute < %(end)s"
    )
)


@dataclass(frozen=True)
class ReadRange:
    """A stretch of [start, end) read from one source: minute_counts when every hour of it has been
    rolled up (and its bounds are whole minutes), else an aggregate of logs."""

    start: datetime
    end: datetime
    rolled_up: bool


def plan_reads(start: datetime, end: datetime, rolled_up_hours: set[datetime]) -> list[ReadRange]:
    """[start, end) cut at UTC midnights and where the source changes (pure).

    Why whole minutes: a minute_counts row holds its whole minute, a bound inside a minute would
    count events outside [start, end).
    """
    out: list[ReadRange] = []
    for lo, hi in day_ranges(start, end):
        t = lo
        while t < hi:
            hour = t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            nxt = min(hi, hour + timedelta(hours=1))
            aligned = t.second == 0 and t.microsecond == 0 and nxt.second == 0 and nxt.microsecond == 0
            rolled = hour in rolled_up_hours and aligned
            if out and out[-1].rolled_up == rolled and out[-1].end == t and t != lo:
                out[-1] = ReadRange(out[-1].start, nxt, rolled)
            else:
                out.append(ReadRange(t, nxt, rolled))
            t = nxt
    return out


def rolled_up_hours(conn: psycopg.Connection, start: datetime, end: datetime) -> set[datetime]:
    """Hours of [start, end) the hourly rollup has written to minute_counts."""
    rows = conn.execute(
        "SELECT hour FROM minute_count_hours WHERE hour >= date_trunc('hour', %s::timestamptz) AND hour < %s",
        (start, end),
    ).fetchall()
    return {r[0].astimezone(UTC) for r in rows}


def _read_ranges(dsn: str, ranges: Queue[ReadRange]) -> list[Any]:
    """Take ranges off `ranges` until it is empty; each one's minute rows as a pyarrow Table.

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
                r = ranges.get_nowait()
            except Empty:
                return tables
            bounds = {
                "start": f"'{r.start.isoformat()}'::timestamptz",
                "end": f"'{r.end.isoformat()}'::timestamptz",
            }
            if r.rolled_up:
                cur.execute(_ROLLED_UP_SQL % bounds)
            else:
                from_logs = _MINUTES_SQL.format(inner=MINUTES_FROM_LOGS.format(where=""))
                cur.execute(_COLUMNS_SQL.format(inner=from_logs) % bounds)
            table = cur.fetch_arrow_table()
            if table.num_rows:
                tables.append(table)


def minute_arrays(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    readers: int = MINUTE_READERS,
    use_rollup: bool = True,
) -> dict[str, MinuteArrays]:
    """The rows of `minute_rows` (the same query) by "tenant/service", as numpy columns.

    With `use_rollup`, hours the hourly rollup has stored in minute_counts are read from there
    (the same numbers, a small read: 2 million rows instead of an aggregate of 6.5 million logs
    for a month of 50 services) and only the others are aggregated from logs.

    Read day by day (a day is one partition, and its groups fit the aggregate's memory; one query
    over a month spilled its hash table to disk) through `readers` connections at once to the
    database of `conn`, as Arrow tables: a month of 50 services is 2 million minutes, which as
    Python tuples and Counts objects cost more than the query.
    """
    import pyarrow as pa

    ranges: Queue[ReadRange] = Queue()
    done = rolled_up_hours(conn, start, end) if use_rollup else set()
    for r in plan_reads(start, end, done):
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
