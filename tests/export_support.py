"""Helpers for the export, Lambda and benchmark: days of seed-shaped logs (the moto server is in
tests/support.py)."""

from __future__ import annotations

from datetime import date, timedelta

from loganalyzer.db.connection import connect
from loganalyzer.export.checksum import POSTGRES_CHECKSUM_SQL, RowChecksum, checksum_from_row, day_start

#: Seed-shaped rows spread over one UTC day. (tenant, service) cycle so that every service has
#: rows all day; in every 20th round of that cycle all are ERRORs (two templates), every 9th WARN.
_INSERT = """
INSERT INTO logs ("timestamp", tenant, service, host, level, message, metadata,
                  kafka_topic, kafka_partition, kafka_offset, duration_ms)
SELECT %(start)s::timestamptz + (g::float8 / %(n)s::float8) * interval '86399 seconds',
       'tenant-' || (g %% %(tenants)s),
       'svc-' || lpad(((g / %(tenants)s) %% %(services)s)::text, 2, '0'),
       'host-' || (g %% 7),
       CASE WHEN q %% 20 = 0 THEN 'ERROR' WHEN q %% 9 = 0 THEN 'WARN'
            WHEN q %% 3 = 0 THEN 'DEBUG' ELSE 'INFO' END,
       CASE WHEN q %% 40 = 0
            THEN 'payment failed for order ' || g || ': timeout after ' || (g %% 900) || ' ms'
            WHEN q %% 20 = 0 THEN 'connection refused by db-' || (g %% 3) || ' port 5432'
            ELSE 'request ' || g || ' served in ' || (g %% 250) || ' ms' END,
       jsonb_build_object('request_id', 'r-' || g, 'duration_ms', g %% 250, 'path', '/api/v1/items'),
       %(topic)s, (g %% 4)::int, g + %(offset)s::bigint, (g %% 250)::float8
FROM generate_series(%(first)s::bigint, %(last)s::bigint) g,
     LATERAL (SELECT g / (%(tenants)s * %(services)s) AS q) per_round
"""


def insert_logs(
    url: str,
    day: date,
    rows: int,
    *,
    tenants: int = 2,
    services: int = 5,
    offset: int = 0,
    topic: str = "logs",
    chunk: int = 1_000_000,
) -> None:
    """`rows` seed-shaped logs of `day`, generated inside PostgreSQL (fast enough for 10M rows)."""
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT ensure_log_partition(%s)", (day,))
        for first in range(1, rows + 1, chunk):
            last = min(first + chunk - 1, rows)
            conn.execute(
                _INSERT,
                {
                    "start": day_start(day),
                    "n": rows,
                    "tenants": tenants,
                    "services": services,
                    "topic": topic,
                    "offset": offset,
                    "first": first,
                    "last": last,
                },
            )


def postgres_checksum(url: str, day: date) -> RowChecksum:
    lo, hi = day_start(day), day_start(day + timedelta(days=1))
    with connect(url) as conn:
        row = conn.execute(POSTGRES_CHECKSUM_SQL, (lo, lo, hi)).fetchone()
    assert row is not None
    return checksum_from_row(tuple(row))
