"""hourly_metrics from logs: recompute whole hours, idempotently.

Why recompute instead of adding increments: an hour's row is a pure function of the hour's logs,
so a re-run, a backfill, or a run that overlaps the previous one all converge on the same rows.
Late events (the consumer accepts events up to 30 days old) land in hours already rolled up;
each run therefore also recomputes the hour before its own, which catches the usual lateness,
and a backfill over older days catches the rest.

A row is only rewritten when one of its values changed (`IS DISTINCT FROM`), so re-running an
unchanged hour leaves no dead row versions and keeps `computed_at`. Rows of a (tenant, service)
that has no logs in a recomputed hour any more (its partition was dropped) are deleted.

The same run recomputes `minute_counts` for the same hours, the same way (upsert of changed
rows, delete of minutes that have no logs any more), and lists the hours in
`minute_count_hours`: nightly retraining reads a month of minutes from there instead of
aggregating the month's logs (loganalyzer.db.minute_counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from loganalyzer.db.minute_counts import MINUTES_FROM_LOGS

_UPSERT = """
WITH fresh AS (
    SELECT tenant, service, date_trunc('hour', "timestamp") AS hour,
           count(*) AS log_count,
           count(*) FILTER (WHERE level IN ('TRACE', 'DEBUG')) AS debug_count,
           count(*) FILTER (WHERE level = 'INFO') AS info_count,
           count(*) FILTER (WHERE level = 'WARN') AS warn_count,
           count(*) FILTER (WHERE level = 'ERROR') AS error_count,
           count(*) FILTER (WHERE level = 'FATAL') AS fatal_count,
           count(DISTINCT host)::integer AS host_count,
           avg(duration_ms) AS avg_duration_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_duration_ms
    FROM logs
    WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
    GROUP BY 1, 2, 3
)
INSERT INTO hourly_metrics AS h (tenant, service, hour, log_count, debug_count, info_count,
                                 warn_count, error_count, fatal_count, host_count,
                                 avg_duration_ms, p95_duration_ms)
SELECT * FROM fresh
ON CONFLICT (tenant, service, hour) DO UPDATE SET
    log_count = excluded.log_count, debug_count = excluded.debug_count,
    info_count = excluded.info_count, warn_count = excluded.warn_count,
    error_count = excluded.error_count, fatal_count = excluded.fatal_count,
    host_count = excluded.host_count, avg_duration_ms = excluded.avg_duration_ms,
    p95_duration_ms = excluded.p95_duration_ms, computed_at = now()
WHERE (h.log_count, h.debug_count, h.info_count, h.warn_count, h.error_count, h.fatal_count,
       h.host_count, h.avg_duration_ms, h.p95_duration_ms)
      IS DISTINCT FROM
      (excluded.log_count, excluded.debug_count, excluded.info_count, excluded.warn_count,
       excluded.error_count, excluded.fatal_count, excluded.host_count, excluded.avg_duration_ms,
       excluded.p95_duration_ms)
"""

_DELETE_STALE = """
DELETE FROM hourly_metrics h
WHERE h.hour >= %(start)s AND h.hour < %(end)s
  AND NOT EXISTS (
      SELECT 1 FROM logs l
      WHERE l.tenant = h.tenant AND l.service = h.service
        AND l."timestamp" >= h.hour AND l."timestamp" < h.hour + interval '1 hour')
"""


_UPSERT_MINUTES = f"""
WITH fresh AS (
    SELECT minute, tenant, service, total, errors, warns, duration_sum, duration_n, length_sum
    FROM ({MINUTES_FROM_LOGS.format(where="")}) AS m
),
written AS (
    INSERT INTO minute_counts AS c (minute, tenant, service, total, errors, warns, duration_sum,
                                    duration_n, length_sum)
    SELECT * FROM fresh
    ON CONFLICT (minute, tenant, service) DO UPDATE SET
        total = excluded.total, errors = excluded.errors, warns = excluded.warns,
        duration_sum = excluded.duration_sum, duration_n = excluded.duration_n,
        length_sum = excluded.length_sum
    WHERE (c.total, c.errors, c.warns, c.duration_sum, c.duration_n, c.length_sum)
          IS DISTINCT FROM
          (excluded.total, excluded.errors, excluded.warns, excluded.duration_sum,
           excluded.duration_n, excluded.length_sum)
    RETURNING 1
),
deleted AS (
    DELETE FROM minute_counts c
    WHERE c.minute >= %(start)s AND c.minute < %(end)s
      AND NOT EXISTS (SELECT 1 FROM fresh f
                      WHERE f.minute = c.minute AND f.tenant = c.tenant AND f.service = c.service)
    RETURNING 1
)
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM deleted)
"""
# Both data-modifying parts see the same snapshot: the delete never sees the rows being written,
# and removes only minutes that `fresh` (the hours' logs now) does not hold.

_MARK_HOURS = """
INSERT INTO minute_count_hours (hour)
SELECT generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour', interval '1 hour')
ON CONFLICT (hour) DO NOTHING
"""


@dataclass(frozen=True)
class RollupResult:
    start: datetime
    end: datetime
    #: rows inserted or changed (0 when the hours were already up to date)
    written: int
    deleted: int
    #: minute_counts rows inserted or changed, and deleted
    minutes_written: int = 0
    minutes_deleted: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "written": self.written,
            "deleted": self.deleted,
            "minutes_written": self.minutes_written,
            "minutes_deleted": self.minutes_deleted,
        }


def hours_to_roll_up(interval_end: datetime, late_hours: int = 1) -> tuple[datetime, datetime]:
    """[start, end) of whole UTC hours for a run whose interval ends at `interval_end`: the hour
    that ends there plus `late_hours` before it (late events)."""
    if interval_end.tzinfo is None:
        raise ValueError(f"interval end {interval_end} has no time zone: pass an aware datetime")
    end = interval_end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1 + late_hours), end


def roll_up(conn: psycopg.Connection, start: datetime, end: datetime) -> RollupResult:
    """Recompute hourly_metrics and minute_counts for every whole hour in [start, end), in one
    transaction."""
    if start.minute or start.second or start.microsecond or end.minute or end.second or end.microsecond:
        raise ValueError(f"roll-up bounds must be whole hours, got {start} .. {end}")
    if end <= start:
        raise ValueError(f"empty roll-up interval {start} .. {end}")
    params = {"start": start, "end": end}
    with conn.transaction():
        written = conn.execute(_UPSERT, params).rowcount
        deleted = conn.execute(_DELETE_STALE, params).rowcount
        m_written, m_deleted = _roll_up_minutes(conn, params)
    return RollupResult(start, end, max(written, 0), max(deleted, 0), m_written, m_deleted)


def _roll_up_minutes(conn: psycopg.Connection, params: dict[str, datetime]) -> tuple[int, int]:
    row = conn.execute(_UPSERT_MINUTES, params).fetchone()
    conn.execute(_MARK_HOURS, params)
    return (int(row[0]), int(row[1])) if row else (0, 0)


def roll_up_minutes(conn: psycopg.Connection, start: datetime, end: datetime) -> tuple[int, int]:
    """Only the minute_counts part of `roll_up` (rows written, deleted), in one transaction: for
    filling a month of minutes at once (bench/bench_retrain.py) without hourly_metrics'
    percentiles, which cost most of a roll-up."""
    with conn.transaction():
        return _roll_up_minutes(conn, {"start": start, "end": end})
