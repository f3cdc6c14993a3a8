"""One tenant's measured day as the cost engine's Usage: the single translation shared by the
cost-snapshot DAG (which stores it and prices it per day) and the API (which builds it from
cost_snapshots rows or database estimates, then combines or forecasts the days).

Why one translation: if the DAG and the API each turned bytes and invocations into a usage
document, a month-to-date figure in Grafana and the API's estimate of the same days could
disagree. Here a day's `Usage` follows `forecast_month`'s convention: requests and request units
are the day's totals; `storage_gb` is what is stored at the end of the day (the export's bytes
accumulate: every day's objects stay), so `combine_days` averages it into GB-months.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from loganalyzer.costs.engine import Quote, price
from loganalyzer.costs.monthly import lambda_usage
from loganalyzer.costs.pricebook import PriceBook
from loganalyzer.costs.usage import DynamoDBUsage, S3Usage, Usage, parse_usage

GIB = 1024**3  # AWS's "GB" of storage
#: the summary function's deployed defaults (deploy/aws/template.yaml MemorySize, Architecture),
#: used where no invocation record says otherwise
LAMBDA_MEMORY_MB = 1024
LAMBDA_ARCHITECTURE = "x86_64"


@dataclass(frozen=True, slots=True)
class DayMeasure:
    """What one day added: the day's new bytes and its requests (floats, as measured)."""

    s3_bytes_added: float = 0.0
    s3_put_requests: float = 0.0
    s3_get_requests: float = 0.0
    lambda_invocations: float = 0.0
    lambda_gb_seconds: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    dynamodb_bytes_added: float = 0.0


def _dec(x: float, places: str = "1e-6") -> Decimal:
    return Decimal(repr(max(0.0, float(x)))).quantize(Decimal(places))


def day_usage(
    day: date,
    measure: DayMeasure,
    *,
    s3_bytes_stored: float,
    dynamodb_bytes_stored: float,
    region: str,
    free_tier: str = "none",
    memory_mb: int = LAMBDA_MEMORY_MB,
    architecture: str = LAMBDA_ARCHITECTURE,
) -> Usage:
    """The day's Usage; `*_bytes_stored` are the bytes stored at the end of the day."""
    requests = _dec(measure.lambda_invocations, "1")
    gb_seconds = _dec(measure.lambda_gb_seconds) if requests else Decimal(0)
    return Usage(
        region=region,
        as_of=day,
        free_tier=free_tier,
        lambda_=lambda_usage(requests, gb_seconds, memory_mb, architecture),
        s3=S3Usage(
            storage_gb=_dec(s3_bytes_stored / GIB, "1e-9"),
            put_requests=_dec(measure.s3_put_requests, "1"),
            get_requests=_dec(measure.s3_get_requests, "1"),
        ),
        dynamodb=DynamoDBUsage(
            mode="on_demand",
            write_request_units=_dec(measure.dynamodb_write_units),
            read_request_units=_dec(measure.dynamodb_read_units),
            storage_gb=_dec(dynamodb_bytes_stored / GIB, "1e-9"),
        ),
    )


def day_usages(
    days: Sequence[tuple[date, DayMeasure]],
    *,
    stored_before: tuple[float, float] = (0.0, 0.0),
    region: str,
    free_tier: str = "none",
    memory_mb: int = LAMBDA_MEMORY_MB,
    architecture: str = LAMBDA_ARCHITECTURE,
) -> list[tuple[date, Usage]]:
    """Consecutive days (date order) with storage accumulated from `stored_before` (S3, DynamoDB bytes)."""
    s3, ddb = stored_before
    out: list[tuple[date, Usage]] = []
    for day, m in days:
        s3 += m.s3_bytes_added
        ddb += m.dynamodb_bytes_added
        out.append(
            (
                day,
                day_usage(
                    day,
                    m,
                    s3_bytes_stored=s3,
                    dynamodb_bytes_stored=ddb,
                    region=region,
                    free_tier=free_tier,
                    memory_mb=memory_mb,
                    architecture=architecture,
                ),
            )
        )
    return out


def day_document(usage: Usage) -> dict[str, Any]:
    """What cost_snapshots.usage stores for a day (a usage document, docs/costs.md)."""
    return usage.to_dict()


def read_day_document(doc: Mapping[str, Any], book: PriceBook | None = None) -> Usage:
    """A stored day back into a Usage (validated: a hand-edited row names its bad field)."""
    return parse_usage(doc, book)


def price_day(usage: Usage, book: PriceBook | None = None) -> Quote:
    """The day's own cost: storage counts for one day of its month, and no monthly free tier
    (allowances are per month and account: they belong to the month's estimate, not to a day).
    A month's days priced this way add up to the month at `free_tier: none`."""
    day = usage.as_of
    if day is None:
        raise ValueError("as_of: a day's usage needs its date")
    share = Decimal(1) / calendar.monthrange(day.year, day.month)[1]
    s3 = usage.s3
    ddb = usage.dynamodb
    one_day = dataclasses.replace(
        usage,
        free_tier="none",
        free_plan=None,
        s3=None if s3 is None else dataclasses.replace(s3, storage_gb=s3.storage_gb * share),
        dynamodb=None if ddb is None else dataclasses.replace(ddb, storage_gb=ddb.storage_gb * share),
    )
    return price(one_day, book)
