"""What-if scenarios: scale a month's usage by traffic and re-price it.

The log analyzer's AWS bill grows with log volume: every log line is a Lambda invocation's worth
of work, bytes stored in S3, items written to DynamoDB and bytes sent out. So a traffic
multiplier scales the volume-driven quantities and leaves the configuration alone (memory,
architecture, average duration, hours a table runs). Per-service multipliers act through each
service's share of log volume: doubling a service that produces 10 % of the logs is a 1.1x month.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from loganalyzer.costs.engine import Quote, money_str, price
from loganalyzer.costs.pricebook import PriceBook
from loganalyzer.costs.usage import Usage

MAX_MULTIPLIER = Decimal(1000)


class WhatIfError(ValueError):
    """A what-if parameter is wrong; the message starts with the parameter's name."""


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise WhatIfError(f"{where}: must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise WhatIfError(f"{where}: must be a finite number")
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not d.is_finite():
        raise WhatIfError(f"{where}: must be a finite number")
    return d


def _multiplier(value: Any, where: str) -> Decimal:
    d = _decimal(value, where)
    if d < 0 or d > MAX_MULTIPLIER:
        raise WhatIfError(f"{where}: must be between 0 and {MAX_MULTIPLIER}")
    return d


def scale_usage(usage: Usage, multiplier: Decimal | int | float) -> Usage:
    """Usage with every volume-driven quantity times `multiplier` (0..1000).

    Scaled: Lambda requests (so GB-seconds follow), S3 storage and requests, DynamoDB request
    units, storage and provisioned WCU/RCU, data transfer out. Kept: region, dates, free tier,
    memory, architecture, ephemeral storage, average duration, table mode and hours.
    """
    k = _multiplier(multiplier, "multiplier")
    lam = usage.lambda_
    s3 = usage.s3
    ddb = usage.dynamodb
    return dataclasses.replace(
        usage,
        lambda_=None if lam is None else dataclasses.replace(lam, requests=lam.requests * k),
        s3=None
        if s3 is None
        else dataclasses.replace(
            s3,
            storage_gb=s3.storage_gb * k,
            put_requests=s3.put_requests * k,
            get_requests=s3.get_requests * k,
        ),
        dynamodb=None
        if ddb is None
        else dataclasses.replace(
            ddb,
            write_request_units=ddb.write_request_units * k,
            read_request_units=ddb.read_request_units * k,
            storage_gb=ddb.storage_gb * k,
            wcu=ddb.wcu * k,
            rcu=ddb.rcu * k,
        ),
        data_transfer_out_gb=None if usage.data_transfer_out_gb is None else usage.data_transfer_out_gb * k,
    )


def effective_multiplier(
    shares: Mapping[str, Decimal | int | float],
    multipliers: Mapping[str, Decimal | int | float],
) -> Decimal:
    """The whole-bill multiplier when each service's traffic is multiplied on its own.

    `shares` are each log-producing service's part of log volume (any non-negative weights: they
    are normalised); services without a multiplier keep theirs at 1. A multiplier for a service
    with no share is an error (most likely a misspelt name), not a silent no-op.
    """
    if not shares:
        raise WhatIfError("service_shares: required (and non-empty) with per-service multipliers")
    weights = {name: _decimal(w, f"service_shares.{name}") for name, w in shares.items()}
    for name, w in weights.items():
        if w < 0:
            raise WhatIfError(f"service_shares.{name}: must not be negative")
    total = sum(weights.values(), Decimal(0))
    if total == 0:
        raise WhatIfError("service_shares: at least one share must be positive")
    for name in multipliers:
        if name not in weights:
            known = ", ".join(sorted(weights)) or "none"
            raise WhatIfError(f"service_multipliers.{name}: unknown service (services with a share: {known})")
    factors = {name: _multiplier(m, f"service_multipliers.{name}") for name, m in multipliers.items()}
    return sum((w * factors.get(name, Decimal(1)) for name, w in weights.items()), Decimal(0)) / total


def scale_usage_by_service(
    usage: Usage,
    shares: Mapping[str, Decimal | int | float],
    multipliers: Mapping[str, Decimal | int | float],
) -> Usage:
    return scale_usage(usage, effective_multiplier(shares, multipliers))


@dataclass(frozen=True, slots=True)
class WhatIf:
    multiplier: Decimal
    baseline: Quote
    scenario: Quote

    @property
    def delta(self) -> Decimal:
        return self.scenario.total - self.baseline.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "multiplier": format(self.multiplier.normalize(), "f"),
            "baseline_total_usd": money_str(self.baseline.total),
            "scenario_total_usd": money_str(self.scenario.total),
            "delta_usd": money_str(self.delta),
            "baseline": self.baseline.to_dict(),
            "scenario": self.scenario.to_dict(),
        }


def what_if(
    usage: Usage,
    *,
    traffic_multiplier: Decimal | int | float = 1,
    service_shares: Mapping[str, Decimal | int | float] | None = None,
    service_multipliers: Mapping[str, Decimal | int | float] | None = None,
    book: PriceBook | None = None,
) -> WhatIf:
    """Price `usage` as it is and with traffic scaled: overall times the per-service effect."""
    k = _multiplier(traffic_multiplier, "traffic_multiplier")
    if service_multipliers:
        k = k * effective_multiplier(service_shares or {}, service_multipliers)
    if k > MAX_MULTIPLIER:
        raise WhatIfError(f"traffic_multiplier: the combined multiplier {k} exceeds {MAX_MULTIPLIER}")
    return WhatIf(multiplier=k, baseline=price(usage, book), scenario=price(scale_usage(usage, k), book))
