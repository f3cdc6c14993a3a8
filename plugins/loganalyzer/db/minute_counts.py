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
from datetime import datetime

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
