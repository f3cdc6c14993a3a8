"""From measured days to a month: what the cost-snapshot DAG records and the estimate prices.

Snapshots are daily (a day's requests, request units and bytes out; the day's average GB stored
and provisioned capacity); AWS bills a month. `combine_days` adds the flows, averages the levels,
and, given the month's length, extends the days so far at their run rate: the current month's
estimate. `lambda_usage` turns measured GB-seconds (what CloudWatch and the snapshots have)
into the usage document's average duration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal

from loganalyzer.costs.usage import ARCHITECTURES, MAX_HOURS, DynamoDBUsage, LambdaUsage, S3Usage, Usage

_MB_PER_GB = Decimal(1024)


def lambda_usage(
    requests: Decimal | int,
    gb_seconds: Decimal | int,
    memory_mb: int,
    architecture: str = "x86_64",
    ephemeral_storage_mb: int = 512,
) -> LambdaUsage:
    """LambdaUsage whose GB-seconds are `gb_seconds`: duration_ms = GB-s / requests / GB x 1000."""
    requests, gb_seconds = Decimal(requests), Decimal(gb_seconds)
    if requests < 0 or gb_seconds < 0:
        raise ValueError("lambda: requests and gb_seconds must not be negative")
    if not 128 <= memory_mb <= 10_240:
        raise ValueError("lambda.memory_mb: must be between 128 and 10240")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"lambda.architecture: unknown value {architecture!r}")
    if requests == 0 and gb_seconds > 0:
        raise ValueError("lambda: gb_seconds without requests")
    duration = Decimal(0) if requests == 0 else gb_seconds * 1000 * _MB_PER_GB / (requests * memory_mb)
    return LambdaUsage(requests, duration, memory_mb, architecture, ephemeral_storage_mb)


def combine_days(days: Sequence[Usage], *, days_in_month: int | None = None) -> Usage:
    """One month's Usage from daily ones (in date order; configuration from the last day).

    Flows (requests, request units, GB out, table hours) are summed, and multiplied by
    days_in_month / len(days) when days_in_month is given; levels (GB stored, WCU, RCU) are
    averaged; the Lambda duration is the request-weighted average. A section present on some
    days counts as zero on the others.
    """
    n = len(days)
    if n == 0:
        raise ValueError("days: none given")
    if days_in_month is not None and not (28 <= days_in_month <= 31 and n <= days_in_month):
        raise ValueError(f"days_in_month: must be 28..31 and at least the {n} days given")
    scale = Decimal(1) if days_in_month is None else Decimal(days_in_month) / n
    last = days[-1]

    lam = next((u.lambda_ for u in reversed(days) if u.lambda_ is not None), None)
    if lam is not None:
        lams = [u.lambda_ for u in days if u.lambda_ is not None]
        requests = sum((x.requests for x in lams), Decimal(0))
        weighted = sum((x.requests * x.duration_ms for x in lams), Decimal(0))
        lam = dataclasses.replace(
            lam,
            requests=requests * scale,
            duration_ms=weighted / requests if requests else lam.duration_ms,
        )

    s3 = None
    if any(u.s3 is not None for u in days):
        parts = [u.s3 or S3Usage() for u in days]
        s3 = S3Usage(
            storage_gb=sum((p.storage_gb for p in parts), Decimal(0)) / n,
            put_requests=sum((p.put_requests for p in parts), Decimal(0)) * scale,
            get_requests=sum((p.get_requests for p in parts), Decimal(0)) * scale,
        )

    ddb = next((u.dynamodb for u in reversed(days) if u.dynamodb is not None), None)
    if ddb is not None:
        mode = ddb.mode
        tables = [u.dynamodb if u.dynamodb is not None and u.dynamodb.mode == mode else None for u in days]
        on_demand = mode == "on_demand"
        ddb = DynamoDBUsage(
            mode=mode,
            write_request_units=_sum(t.write_request_units for t in tables if t) * scale
            if on_demand
            else Decimal(0),
            read_request_units=_sum(t.read_request_units for t in tables if t) * scale
            if on_demand
            else Decimal(0),
            storage_gb=_sum(u.dynamodb.storage_gb for u in days if u.dynamodb) / n,
            wcu=Decimal(0) if on_demand else _sum(t.wcu for t in tables if t) / n,
            rcu=Decimal(0) if on_demand else _sum(t.rcu for t in tables if t) / n,
            hours=ddb.hours if on_demand else min(MAX_HOURS, _sum(t.hours for t in tables if t) * scale),
        )

    transfer = [u.data_transfer_out_gb for u in days if u.data_transfer_out_gb is not None]
    return dataclasses.replace(
        last,
        lambda_=lam,
        s3=s3,
        dynamodb=ddb,
        data_transfer_out_gb=_sum(transfer) * scale if transfer else None,
    )


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, Decimal(0))
