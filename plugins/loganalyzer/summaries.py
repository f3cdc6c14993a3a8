"""The daily summary of one tenant's service, computed from its exported Parquet parts (pure).

Why from all parts of the service-day and not from the one object of an event: a service-day
may be split into several parts, and S3 events arrive in any order, duplicated or retried.
Recomputing from every part of the newest export run makes the summary a function of what is
in the bucket, so any event of that service-day writes the same item.

Why anomaly_count comes from the files' metadata: anomalies are detected by the streaming
consumer and live in PostgreSQL, which the summary function cannot reach. The export copies
each service-day's count of anomaly episodes (those that started that day) into the key-value
metadata of its files, so it arrives with the logs it describes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa

from loganalyzer.patterns.tokens import signature

ERROR_LEVELS = ("ERROR", "FATAL")
TOP_ERRORS = 5
_RATE = Decimal("0.000001")


@dataclass
class PartCounts:
    """What one part contributes; parts of a service-day add up (merge)."""

    rows: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: first message seen of each error template (parts are counted in part order)
    samples: dict[str, str] = field(default_factory=dict)

    def merge(self, other: PartCounts) -> PartCounts:
        samples = dict(self.samples)
        for k, v in other.samples.items():
            samples.setdefault(k, v)
        return PartCounts(
            self.rows + other.rows, self.levels + other.levels, self.errors + other.errors, samples
        )


def error_template(message: str) -> str:
    """The message with its variable parts masked: errors of one kind count together."""
    return " ".join(signature(message)) or message


def count_part(table: pa.Table) -> PartCounts:
    """Level counts and error templates of one part (columns `level` and `message`)."""
    levels: Counter[str] = Counter(str(v) for v in table.column("level").to_pylist())
    errors: Counter[str] = Counter()
    samples: dict[str, str] = {}
    if any(levels.get(lv) for lv in ERROR_LEVELS):
        import pyarrow.compute as pc

        mask = pc.is_in(table.column("level"), value_set=pa.array(ERROR_LEVELS))
        for value in table.column("message").filter(mask).to_pylist():
            message = str(value)
            t = error_template(message)
            errors[t] += 1
            samples.setdefault(t, message)
    return PartCounts(table.num_rows, levels, errors, samples)


@dataclass(frozen=True)
class ServiceDaySummary:
    date: str
    tenant: str
    service: str
    total_logs: int
    error_count: int
    warn_count: int
    anomaly_count: int
    error_rate: Decimal
    top_errors: tuple[Mapping[str, Any], ...]
    levels: Mapping[str, int]
    source_objects: tuple[str, ...]
    source_bytes: int
    export_run_id: str
    estimated_costs: Mapping[str, Any]

    @property
    def sort_key(self) -> str:
        return f"{self.tenant}#{self.service}"

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item (Python values; numbers as int or Decimal, as DynamoDB wants)."""
        return {
            "date": self.date,
            "tenant_service": self.sort_key,
            "tenant": self.tenant,
            "service": self.service,
            "total_logs": self.total_logs,
            "error_count": self.error_count,
            "warn_count": self.warn_count,
            "anomaly_count": self.anomaly_count,
            "error_rate": self.error_rate,
            "top_errors": [dict(e) for e in self.top_errors],
            "levels": dict(self.levels),
            "source_objects": list(self.source_objects),
            "source_bytes": self.source_bytes,
            "export_run_id": self.export_run_id,
            "estimated_costs": dict(self.estimated_costs),
        }


def summarize(
    day: str,
    tenant: str,
    service: str,
    counts: PartCounts,
    *,
    anomaly_count: int,
    source_objects: Iterable[str],
    source_bytes: int,
    export_run_id: str,
    estimated_costs: Mapping[str, Any],
) -> ServiceDaySummary:
    errors = sum(counts.levels.get(lv, 0) for lv in ERROR_LEVELS)
    rate = (Decimal(errors) / Decimal(counts.rows)).quantize(_RATE) if counts.rows else Decimal(0)
    top = sorted(counts.errors.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ERRORS]
    return ServiceDaySummary(
        date=day,
        tenant=tenant,
        service=service,
        total_logs=counts.rows,
        error_count=errors,
        warn_count=counts.levels.get("WARN", 0),
        anomaly_count=anomaly_count,
        error_rate=rate,
        top_errors=tuple({"template": t, "count": n, "sample": counts.samples[t]} for t, n in top),
        levels=dict(sorted(counts.levels.items())),
        source_objects=tuple(source_objects),
        source_bytes=source_bytes,
        export_run_id=export_run_id,
        estimated_costs=estimated_costs,
    )


def usage_of_service_day(parts: int, source_bytes: int, item_kb: int, region: str) -> dict[str, Any]:
    """The AWS usage a service-day's data causes, as a cost-engine usage document.

    Counted: keeping its objects for a month, one PUT and one GET per part (export, summary),
    one summary invocation and one item write per part. Not counted: the summary's compute
    time (it varies run to run, and a retried event must give the same item; the daily
    cost snapshot records measured GB-seconds) and free tiers (an account's, not a service's).
    """
    return {
        "region": region,
        "free_tier": "none",
        "s3": {"storage_gb": source_bytes / 1e9, "put_requests": parts, "get_requests": parts},
        "lambda": {"requests": parts, "duration_ms": 0, "memory_mb": 512},
        "dynamodb": {"mode": "on_demand", "write_request_units": parts * max(item_kb, 1)},
    }


def estimate_costs(usage_doc: Mapping[str, Any]) -> dict[str, Any]:
    """The cost engine's quote of `usage_doc`, kept at full precision: a service-day's costs are
    fractions of a cent, which the engine's rounded line items would all show as 0.00."""
    from loganalyzer.costs.engine import dec_str, price
    from loganalyzer.costs.usage import parse_usage

    quote = price(parse_usage(usage_doc))
    exact = sum((li.cost_exact for li in quote.line_items), Decimal(0))
    return {
        "basis": "this service-day's objects stored one month, its PUT/GET, invocations and item writes",
        "price_book": quote.price_book_version,
        "region": quote.region,
        "total_usd": Decimal(dec_str(exact)),
        "line_items": [
            {
                "service": li.service,
                "item": li.item,
                "quantity": li.quantity,
                "usd": Decimal(dec_str(li.cost_exact)),
            }
            for li in quote.line_items
            if li.quantity
        ],
    }
