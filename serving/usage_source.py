"""Reads a tenant's daily usage from PostgreSQL: measured (cost_snapshots), else estimated.

Why an estimate at all: cost_snapshots is written by the daily cost DAG after each export; a
fresh install, or one without the batch side, still deserves an order of magnitude. The
estimate derives every quantity from the database's own figures and lists its assumptions.
Only reading is here: a day's measures become a `Usage` through loganalyzer.costs.daily, the same
translation the cost DAG stores, and combining, forecasting and pricing are the cost engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import psycopg

from loganalyzer.costs.daily import LAMBDA_ARCHITECTURE, LAMBDA_MEMORY_MB, DayMeasure, day_usages
from loganalyzer.costs.snapshot_queries import DAYS, STORED_BEFORE
from loganalyzer.costs.usage import Usage

#: zstd Parquet of log rows against PostgreSQL heap bytes of the same rows (typical for
#: repetitive log lines; the real ratio is measured by the export and lands in cost_snapshots)
PARQUET_RATIO = 0.15
MULTIPART_PART_BYTES = 8 * 1024 * 1024
LAMBDA_BASE_SECONDS = 0.2
LAMBDA_SECONDS_PER_ROW = 2e-6
SUMMARY_ITEM_BYTES = 1024

ESTIMATE_ASSUMPTIONS = [
    f"S3: each day's logs exported once as zstd Parquet at {PARQUET_RATIO:.0%} of their PostgreSQL heap "
    "size (partition size x the tenant's share of that day's rows), kept all month",
    f"S3 PUT: one per (service, day) object plus one per {MULTIPART_PART_BYTES // 2**20} MiB part; "
    "GET: one per object (the summary function reads it)",
    f"Lambda: one {LAMBDA_MEMORY_MB} MB {LAMBDA_ARCHITECTURE} run per object, {LAMBDA_BASE_SECONDS} s + "
    f"{LAMBDA_SECONDS_PER_ROW * 1e6:g} us per row",
    f"DynamoDB: one {SUMMARY_ITEM_BYTES}-byte on-demand summary write per object",
    "month to date scaled to the whole month",
]
MEASURED_ASSUMPTIONS = ["month to date (measured by the cost DAG) scaled to the whole month"]


@dataclass
class UsageHistory:
    #: one Usage per day (loganalyzer.costs.daily), storage accumulated from before the first day
    days: list[tuple[date, Usage]]
    source: str
    assumptions: list[str]
    #: each service's share of the log volume (for what-if multipliers)
    service_shares: dict[str, float] = field(default_factory=dict)


async def _rows(
    db: psycopg.AsyncConnection[dict[str, Any]], query: str, args: dict[str, Any]
) -> list[dict[str, Any]]:
    cur = await db.execute(query, args)
    return await cur.fetchall()


async def service_shares(db: psycopg.AsyncConnection[dict[str, Any]], tenant: str | None) -> dict[str, float]:
    rows = await _rows(
        db,
        "SELECT service, sum(count)::float8 AS n FROM log_patterns "
        "WHERE %(t)s::text IS NULL OR tenant = %(t)s GROUP BY service",
        {"t": tenant},
    )
    return {str(r["service"]): float(r["n"]) for r in rows}


async def history(
    db: psycopg.AsyncConnection[dict[str, Any]],
    tenant: str | None,
    first: date,
    last: date,
    region: str,
    free_tier: str,
) -> UsageHistory:
    """Daily usage of `tenant` (None: every tenant) from `first` to `last` inclusive."""
    measured, stored_before, source, assumptions, shares = await _measures(db, tenant, first, last)
    days = day_usages(measured, stored_before=stored_before, region=region, free_tier=free_tier)
    return UsageHistory(days, source, assumptions, shares)


Measures = tuple[list[tuple[date, DayMeasure]], tuple[float, float], str, list[str], dict[str, float]]


async def _measures(
    db: psycopg.AsyncConnection[dict[str, Any]], tenant: str | None, first: date, last: date
) -> Measures:
    shares = await service_shares(db, tenant)
    has_snapshots = (await _rows(db, "SELECT to_regclass('cost_snapshots') IS NOT NULL AS x", {}))[0]["x"]
    if has_snapshots:
        args = {"t": tenant, "a": first, "b": last}
        days = await _rows(
            db,
            DAYS,
            args,
        )
        if days:
            before = await _rows(
                db,
                STORED_BEFORE,
                args,
            )
            return (
                [(d.pop("day"), DayMeasure(**{k: float(v or 0) for k, v in d.items()})) for d in days],
                (before[0]["s3"], before[0]["ddb"]),
                "cost_snapshots",
                list(MEASURED_ASSUMPTIONS),
                shares,
            )
    return await _estimate(db, tenant, first, last, shares)


async def _estimate(
    db: psycopg.AsyncConnection[dict[str, Any]],
    tenant: str | None,
    first: date,
    last: date,
    shares: dict[str, float],
) -> Measures:
    parts = await _rows(
        db,
        "SELECT to_date(substr(c.relname, 7), 'YYYYMMDD') AS day, c.reltuples::float8 AS reltuples, "
        "pg_relation_size(c.oid)::float8 AS heap_bytes FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'logs'::regclass "
        "AND c.relname ~ '^logs_p[0-9]{8}$' AND to_date(substr(c.relname, 7), 'YYYYMMDD') <= %(b)s "
        "ORDER BY 1",
        {"b": last},
    )
    # The tenant's share of each day's rows and its services that day, from the hourly rollups.
    per_day = await _rows(
        db,
        "SELECT hour::date AS day, "
        "sum(log_count) FILTER (WHERE %(t)s::text IS NULL OR tenant = %(t)s)::float8 AS mine, "
        "sum(log_count)::float8 AS total, count(DISTINCT service) FILTER "
        "(WHERE %(t)s::text IS NULL OR tenant = %(t)s) AS services FROM hourly_metrics "
        "WHERE hour < %(b)s::date + 1 GROUP BY 1",
        {"t": tenant, "b": last},
    )
    rollup = {r["day"]: r for r in per_day}
    overall = await _rows(
        db,
        "SELECT coalesce(sum(count) FILTER (WHERE %(t)s::text IS NULL OR tenant = %(t)s), 0)::float8 "
        "AS mine, "
        "coalesce(sum(count), 0)::float8 AS total, count(DISTINCT (tenant, service)) FILTER "
        "(WHERE %(t)s::text IS NULL OR tenant = %(t)s) AS services FROM log_patterns",
        {"t": tenant},
    )
    fallback_share = (
        overall[0]["mine"] / overall[0]["total"] if overall[0]["total"] else (1.0 if not tenant else 0.0)
    )
    fallback_services = max(int(overall[0]["services"]), 1)
    days: list[tuple[date, DayMeasure]] = []
    before_s3 = before_ddb = 0.0
    for p in parts:
        heap = float(p["heap_bytes"])
        rows = float(p["reltuples"]) if p["reltuples"] >= 0 else heap / 300.0
        r = rollup.get(p["day"])
        if r is not None and r["total"]:
            share, services = float(r["mine"] or 0.0) / float(r["total"]), int(r["services"])
        else:
            share, services = fallback_share, fallback_services
        if heap <= 0 or share <= 0:
            services = 0
        s3_bytes = heap * share * PARQUET_RATIO
        day = p["day"]
        measure = DayMeasure(
            s3_bytes_added=s3_bytes,
            s3_put_requests=services + math.ceil(s3_bytes / MULTIPART_PART_BYTES),
            s3_get_requests=services,
            lambda_invocations=services,
            lambda_gb_seconds=(services * LAMBDA_BASE_SECONDS + rows * share * LAMBDA_SECONDS_PER_ROW)
            * LAMBDA_MEMORY_MB
            / 1024,
            dynamodb_write_units=services,
            dynamodb_bytes_added=services * SUMMARY_ITEM_BYTES,
        )
        if day < first:
            before_s3 += measure.s3_bytes_added
            before_ddb += measure.dynamodb_bytes_added
        else:
            days.append((day, measure))
    source = "estimated_from_database" if days else "none"
    return _fill(days, last), (before_s3, before_ddb), source, list(ESTIMATE_ASSUMPTIONS), shares


def _fill(days: list[tuple[date, DayMeasure]], last: date) -> list[tuple[date, DayMeasure]]:
    """Days without a partition between the first measured day and `last` count as zero usage."""
    if not days:
        return []
    by_day = dict(days)
    out = []
    d = days[0][0]
    while d <= last:
        out.append((d, by_day.get(d, DayMeasure())))
        d += timedelta(days=1)
    return out
