"""Per-minute Counts of stored events, from `logs`: the same buckets the consumer builds from
events (loganalyzer.detection.features.Counts), read back by SQL.

Two readers: training (window features of every service) and the consumer's warm start
(a partition with no detector checkpoint rebuilds its baselines from what is already stored).
One query for both, so the minute a model is trained on and the minute a baseline learns from
cannot disagree. Its equality with the consumer's buckets is tested in
tests/integration/test_training_features.py.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg
from psycopg import sql

from loganalyzer.detection.features import Counts

_MINUTES_SQL = """
SELECT tenant, service, (extract(epoch FROM date_trunc('minute', "timestamp")) / 60)::bigint AS minute,
       count(*),
       count(*) FILTER (WHERE level IN ('ERROR', 'FATAL')),
       count(*) FILTER (WHERE level = 'WARN'),
       coalesce(sum(duration_ms), 0),
       count(duration_ms),
       coalesce(sum(length(message)), 0)
FROM logs
WHERE "timestamp" >= %s AND "timestamp" < %s {where}
GROUP BY 1, 2, 3
"""

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


def minute_arrays(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, MinuteArrays]:
    """The rows of `minute_rows` (the same query) by "tenant/service", as numpy columns.

    Read through COPY ... (FORMAT csv) and pyarrow's CSV reader: a month of 50 services is
    2 million minutes, which as Python tuples and Counts objects cost more than the query.
    Floats survive the text form exactly (PostgreSQL prints the shortest exact representation).
    """
    import pyarrow as pa
    from pyarrow import csv

    query = (
        "COPY (SELECT tenant || '/' || service, minute, total, errors, warns, dsum, dn, lsum"
        f" FROM ({_MINUTES_SQL.format(where='')})"
        " AS m (tenant, service, minute, total, errors, warns, dsum, dn, lsum)"
        " ORDER BY tenant, service, minute) TO STDOUT WITH (FORMAT csv)"
    )
    buf = io.BytesIO()
    # JIT compiling this aggregate cost more than it saved (measured 11 s vs 6 s for 5 days of
    # 50 services); local to the caller's transaction.
    conn.execute("SELECT set_config('jit', 'off', true)")
    with conn.cursor() as cur, cur.copy(query, (start, end)) as copy:
        for chunk in copy:
            buf.write(chunk)
    if not buf.tell():
        return {}
    buf.seek(0)
    names = ["key", "minute", "total", "errors", "warns", "dsum", "dn", "lsum"]
    types = {n: pa.int64() for n in names[1:]} | {"key": pa.string(), "dsum": pa.float64()}
    table = csv.read_csv(
        buf,
        read_options=csv.ReadOptions(column_names=names),
        convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )
    keys = table["key"].to_numpy()
    minutes = table["minute"].to_numpy()
    ints = np.column_stack([table[n].to_numpy() for n in ("total", "errors", "warns", "dn", "lsum")])
    dsum = table["dsum"].to_numpy()
    bounds = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    out: dict[str, MinuteArrays] = {}
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(keys)]]), strict=True):
        out[str(keys[lo])] = MinuteArrays(minutes[lo:hi], ints[lo:hi], dsum[lo:hi])
    return out
