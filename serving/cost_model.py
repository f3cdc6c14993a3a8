"""From daily usage measurements to the usage documents the cost engine prices.

Pure functions (no I/O): the costs route reads the days from PostgreSQL and hands them here.

Model: every quantity the platform bills for grows with log volume (the daily Parquet export
is what S3 stores, one Lambda run and one DynamoDB summary per exported object), so:
  * the month's estimate is the month-to-date days scaled to the whole month;
  * S3 storage is cumulative: each day's export stays stored, so the month's GB-months are the
    mean, over the month's days, of what was stored that day;
  * a what-if multiplies each service's share of the volume by its multiplier;
  * the forecast fits a straight line to each daily quantity (least squares over the last
    days measured), sums the line over next month's days, and takes an 80 % interval of that
    sum as +/- 1.2816 standard deviations of the daily residuals times sqrt(days); pricing is
    monotone in usage, so pricing the low, mean and high usage gives the interval in dollars.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import Any

STORAGE_GB = 1024**3  # S3 and DynamoDB storage: GiB, which AWS calls GB
Z80 = 1.2816  # two-sided 80 % interval of a normal distribution
#: memory of the summary function (lambda/) that the GB-seconds are converted at
LAMBDA_MEMORY_MB = 1024


@dataclass(frozen=True)
class DayUsage:
    """One day's measured (or estimated) usage of one tenant."""

    day: date
    s3_bytes_added: float = 0.0
    s3_put_requests: float = 0.0
    s3_get_requests: float = 0.0
    lambda_invocations: float = 0.0
    lambda_gb_seconds: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    dynamodb_bytes_added: float = 0.0

    def scaled(self, factor: float) -> DayUsage:
        return replace(
            self, **{f.name: getattr(self, f.name) * factor for f in fields(self) if f.name != "day"}
        )


QUANTITIES = tuple(f.name for f in fields(DayUsage) if f.name != "day")


def month_bounds(today: date) -> tuple[date, date]:
    """First and last day of today's month."""
    last = calendar.monthrange(today.year, today.month)[1]
    return today.replace(day=1), today.replace(day=last)


def next_month(today: date) -> tuple[date, date]:
    first = month_bounds(today)[1] + timedelta(days=1)
    return month_bounds(first)


def usage_document(
    days: Sequence[DayUsage],
    stored_before_bytes: tuple[float, float],
    month_days: int,
    region: str,
    free_tier: str,
    as_of: date | None = None,
) -> dict[str, Any]:
    """The month's usage document from `days` (the month's days measured so far, in order),
    scaled to `month_days`. `stored_before_bytes` is (S3, DynamoDB) bytes stored when the month began."""
    n = len(days)
    scale = month_days / n if n else 0.0
    s3_stored, ddb_stored = stored_before_bytes
    s3_daily_stored, ddb_daily_stored = [], []
    for d in days:
        s3_stored += d.s3_bytes_added
        ddb_stored += d.dynamodb_bytes_added
        s3_daily_stored.append(s3_stored)
        ddb_daily_stored.append(ddb_stored)
    # the month's remaining days keep growing at the measured mean daily rate
    s3_rate = sum(d.s3_bytes_added for d in days) / n if n else 0.0
    ddb_rate = sum(d.dynamodb_bytes_added for d in days) / n if n else 0.0
    for i in range(1, month_days - n + 1):
        s3_daily_stored.append(s3_stored + s3_rate * i)
        ddb_daily_stored.append(ddb_stored + ddb_rate * i)
    s3_gb_month = sum(s3_daily_stored) / month_days / STORAGE_GB if month_days else 0.0
    ddb_gb_month = sum(ddb_daily_stored) / month_days / STORAGE_GB if month_days else 0.0

    def total(name: str) -> float:
        return float(sum(getattr(d, name) for d in days)) * scale

    invocations = total("lambda_invocations")
    gb_seconds = total("lambda_gb_seconds")
    duration_ms = gb_seconds * 1000 / invocations / (LAMBDA_MEMORY_MB / 1024) if invocations else 0.0
    doc: dict[str, Any] = {"region": region, "free_tier": free_tier}
    if as_of is not None:
        doc["as_of"] = as_of.isoformat()
    doc["s3"] = {
        "storage_gb": _round(s3_gb_month, 6),
        "put_requests": round(total("s3_put_requests")),
        "get_requests": round(total("s3_get_requests")),
    }
    doc["lambda"] = {
        "requests": round(invocations),
        "duration_ms": _round(duration_ms, 3),
        "memory_mb": LAMBDA_MEMORY_MB,
        "architecture": "arm64",
    }
    doc["dynamodb"] = {
        "mode": "on_demand",
        "write_request_units": round(total("dynamodb_write_units")),
        "read_request_units": round(total("dynamodb_read_units")),
        "storage_gb": _round(ddb_gb_month, 6),
    }
    return doc


def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}f}")


def volume_multiplier(
    shares: Mapping[str, float], traffic_multiplier: float, service_multipliers: Mapping[str, float]
) -> float:
    """What a what-if does to total volume: each service's share times its own multiplier
    (the traffic multiplier for services not named). Without shares, the traffic multiplier."""
    total = sum(shares.values())
    if total <= 0:
        return traffic_multiplier
    return sum(share / total * service_multipliers.get(s, traffic_multiplier) for s, share in shares.items())


@dataclass(frozen=True)
class Forecast:
    low: list[DayUsage]
    mean: list[DayUsage]
    high: list[DayUsage]
    history_days: int


def forecast_days(history: Sequence[DayUsage], first: date, last: date) -> Forecast:
    """Next month's days at the low (10th percentile), mean and high (90th) of a linear trend."""
    target = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    n = len(history)
    lows: dict[str, list[float]] = {}
    means: dict[str, list[float]] = {}
    highs: dict[str, list[float]] = {}
    for q in QUANTITIES:
        ys = [getattr(d, q) for d in history]
        xs = [(d.day - history[0].day).days for d in history] if n else []
        slope, intercept, sigma = _fit(xs, ys)
        base = history[0].day if n else first
        pred = [max(0.0, intercept + slope * (t - base).days) for t in target]
        spread = Z80 * sigma * math.sqrt(len(target)) / len(target) if target else 0.0
        means[q] = pred
        lows[q] = [max(0.0, p - spread) for p in pred]
        highs[q] = [p + spread for p in pred]

    def build(values: dict[str, list[float]]) -> list[DayUsage]:
        return [DayUsage(t, **{q: values[q][i] for q in QUANTITIES}) for i, t in enumerate(target)]

    return Forecast(build(lows), build(means), build(highs), n)


def _fit(xs: Sequence[int], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line (slope, intercept) and the residuals' standard deviation."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0, 0.0
    if n == 1:
        return 0.0, ys[0], 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    intercept = my - slope * mx
    resid = [y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)]
    dof = max(n - 2, 1)
    sigma = math.sqrt(sum(r * r for r in resid) / dof)
    return slope, intercept, sigma
