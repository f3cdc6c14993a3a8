"""What the platform costs on AWS: this month's estimate, next month's forecast, what-ifs, and
pricing of any usage document. Pricing is loganalyzer.costs (one engine for API, CLI and DAG)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request

from loganalyzer.costs.engine import price
from loganalyzer.costs.usage import UsageError, parse_usage
from serving.api.deps import CurrentPrincipal, DbDep, tenant_scope
from serving.api.render import JSONBytes
from serving.cost_model import (
    DayUsage,
    forecast_days,
    month_bounds,
    next_month,
    usage_document,
    volume_multiplier,
)
from serving.models.common import Problem
from serving.models.costs import CostEstimate, CostForecast, QuotePublic, WhatIf
from serving.usage_source import UsageHistory, history

router = APIRouter(prefix="/api/v1/costs", tags=["costs"])

FORECAST_HISTORY_DAYS = 60
FORECAST_METHOD = (
    "Least-squares linear trend of each daily usage quantity over up to the last 60 days measured, "
    "summed over next month's days; the 80% interval is +/- 1.2816 x the residual standard deviation "
    "x sqrt(days) on each quantity (independent daily residuals), priced at the low, mean and high usage "
    "(pricing is monotone in usage). S3 and DynamoDB storage accumulate from what is stored today."
)


class Region(StrEnum):
    us_east_1 = "us-east-1"
    eu_west_1 = "eu-west-1"


class FreeTier(StrEnum):
    none = "none"
    always_free = "always_free"
    legacy_12_month = "legacy_12_month"


RegionQ = Annotated[Region, Query(description="AWS region whose prices apply")]
FreeTierQ = Annotated[
    FreeTier,
    Query(
        description="Free-tier plan of the account: none, always_free, or legacy_12_month (accounts "
        "before 2025-07-15). The credit-based free_plan needs POST /api/v1/costs/price."
    ),
]
TenantQ = Annotated[str | None, Query(max_length=200, description="Admin keys only: only this tenant")]


def _today() -> date:
    return datetime.now(UTC).date()


def _period(first: date, last: date, measured: int) -> dict[str, Any]:
    return {"start": first, "end": last, "days_in_period": (last - first).days + 1, "days_measured": measured}


def _quote(doc: dict[str, Any]) -> dict[str, Any]:
    try:
        return price(parse_usage(doc)).to_dict()
    except UsageError as exc:  # a derived document out of the engine's range: say which field
        raise HTTPException(
            422,
            f"the usage derived from the database is out of range: {exc}",
        ) from None


class _Raw(JSONBytes):
    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else super().render(content)


def _remember(request: Request, key: tuple[Any, ...], body: dict[str, Any]) -> _Raw:
    response = _Raw(body)
    ttl = request.app.state.settings.cost_cache_seconds
    if ttl > 0:
        cache: dict[tuple[Any, ...], tuple[float, bytes]] = request.app.state.cost_cache
        if len(cache) > 1000:
            cache.clear()
        cache[key] = (time.monotonic() + ttl, bytes(response.body))
    return response


def _hit(request: Request, key: tuple[Any, ...]) -> _Raw | None:
    cache: dict[tuple[Any, ...], tuple[float, bytes]] = request.app.state.cost_cache
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return _Raw(hit[1])
    return None


async def _month(
    db: DbDep, scope: str | None, region: Region, free_tier: FreeTier
) -> tuple[UsageHistory, dict[str, Any], dict[str, Any]]:
    today = _today()
    first, last = month_bounds(today)
    hist = await history(db, scope, first, today)
    doc = usage_document(
        hist.days, hist.stored_before, (last - first).days + 1, region.value, free_tier.value
    )
    return hist, doc, _period(first, last, len(hist.days))


@router.get("/estimate", response_model=CostEstimate, summary="This month's AWS cost, from measured usage")
async def estimate(
    request: Request,
    db: DbDep,
    principal: CurrentPrincipal,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """The current calendar month: the days measured so far scaled to the whole month, priced line
    by line to the cent. `source` says whether the usage was measured (cost_snapshots) or estimated
    from the database's own figures (then `assumptions` lists how). Cached for a minute."""
    scope = tenant_scope(principal, tenant)
    key = ("estimate", scope, principal.is_admin, region, free_tier, _today())
    if (hit := _hit(request, key)) is not None:
        return hit
    hist, doc, period = await _month(db, scope, region, free_tier)
    body = {
        **_quote(doc),
        "period": period,
        "source": hist.source,
        "assumptions": hist.assumptions,
        "usage": doc,
    }
    return _remember(request, key, body)


@router.get("/forecast", response_model=CostForecast, summary="Next month's AWS cost: mean and 80% interval")
async def forecast(
    request: Request,
    db: DbDep,
    principal: CurrentPrincipal,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """Next calendar month's cost: `mean` and the `low`/`high` bounds of an 80 % interval; `method`
    says how (a linear trend per daily usage quantity, residual spread). Cached for a minute."""
    scope = tenant_scope(principal, tenant)
    key = ("forecast", scope, principal.is_admin, region, free_tier, _today())
    if (hit := _hit(request, key)) is not None:
        return hit
    today = _today()
    first, last = next_month(today)
    hist = await history(db, scope, today - timedelta(days=FORECAST_HISTORY_DAYS), today)
    # storage already there when next month starts: before the history plus what it added,
    # plus the trend's growth from today to the 1st
    s3_now = hist.stored_before[0] + sum(d.s3_bytes_added for d in hist.days)
    ddb_now = hist.stored_before[1] + sum(d.dynamodb_bytes_added for d in hist.days)
    bridge = (
        forecast_days(hist.days, today + timedelta(days=1), first - timedelta(days=1)) if hist.days else None
    )
    if bridge is not None and bridge.mean:
        s3_now += sum(d.s3_bytes_added for d in bridge.mean)
        ddb_now += sum(d.dynamodb_bytes_added for d in bridge.mean)
    fc = forecast_days(hist.days, first, last)
    days = (last - first).days + 1

    def doc(ds: list[DayUsage]) -> dict[str, Any]:
        return usage_document(ds, (s3_now, ddb_now), days, region.value, free_tier.value)

    low, mean, high = doc(fc.low), doc(fc.mean), doc(fc.high)
    body = {
        "period": _period(first, last, len(hist.days)),
        "source": hist.source,
        "method": FORECAST_METHOD,
        "interval": "80%",
        "mean": _quote(mean),
        "low": {"total_usd": _quote(low)["total_usd"], "usage": low},
        "high": {"total_usd": _quote(high)["total_usd"], "usage": high},
        "assumptions": hist.assumptions,
    }
    return _remember(request, key, body)


def parse_multipliers(raw: list[str]) -> dict[str, float]:
    """`svc:2,svc2:0.5` (or the parameter repeated) into {service: multiplier}; 422 naming the bad part."""
    out: dict[str, float] = {}
    for item in (p.strip() for r in raw for p in r.split(",")):
        if not item:
            continue
        service, sep, value = item.rpartition(":")
        try:
            m = float(value)
        except ValueError:
            m = float("nan")
        if not sep or not service or not (0 <= m <= 1000):
            raise HTTPException(
                422,
                f"service_multipliers item {item!r} must be service:multiplier with 0 <= multiplier <= 1000",
            )
        out[service] = m
    return out


@router.get("/what-if", response_model=WhatIf, summary="This month's cost at another traffic level")
async def what_if(
    db: DbDep,
    principal: CurrentPrincipal,
    traffic_multiplier: Annotated[
        float,
        Query(ge=0, le=1000, description="Multiply every service's log volume by this (1: as measured)"),
    ] = 1.0,
    service_multipliers: Annotated[
        list[str] | None,
        Query(
            max_length=100,
            description="Per-service multipliers overriding traffic_multiplier: `svc:2,svc2:0.5` or the "
            "parameter repeated. Services are weighted by their share of the log volume.",
        ),
    ] = None,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """Every billed quantity grows with log volume, so the month's usage is scaled by the volume
    multiplier (each service's share times its multiplier) and priced again."""
    per_service = parse_multipliers(service_multipliers or [])
    scope = tenant_scope(principal, tenant)
    hist, base_doc, period = await _month(db, scope, region, free_tier)
    factor = volume_multiplier(hist.service_shares, traffic_multiplier, per_service)
    today = _today()
    first, last = month_bounds(today)
    scaled = usage_document(
        [d.scaled(factor) for d in hist.days],
        (hist.stored_before[0], hist.stored_before[1]),
        (last - first).days + 1,
        region.value,
        free_tier.value,
    )
    base, scenario = _quote(base_doc), _quote(scaled)
    delta = Decimal(scenario["total_usd"]) - Decimal(base["total_usd"])
    return JSONBytes(
        {
            "period": period,
            "source": hist.source,
            "traffic_multiplier": traffic_multiplier,
            "service_multipliers": per_service,
            "volume_multiplier": factor,
            "baseline_total_usd": base["total_usd"],
            "scenario_total_usd": scenario["total_usd"],
            "delta_usd": f"{delta:.2f}",
            "scenario": scenario,
            "assumptions": [*hist.assumptions, "storage kept from before this month is not scaled"],
        }
    )


PRICE_EXAMPLE = {
    "region": "us-east-1",
    "free_tier": "always_free",
    "lambda": {"requests": 3000000, "duration_ms": 120, "memory_mb": 1536, "architecture": "x86_64"},
}


@router.post(
    "/price",
    response_model=QuotePublic,
    responses={
        422: {"model": Problem, "description": "A field of the usage document is wrong (path names it)"}
    },
    summary="Price a usage document",
)
async def price_usage(
    principal: CurrentPrincipal,
    usage: Annotated[
        dict[str, Any],
        Body(
            description="A usage document (docs/costs.md): every part optional, unknown keys refused",
            openapi_examples={
                "lambda_mobile_backend": {"summary": "AWS's Lambda pricing example", "value": PRICE_EXAMPLE}
            },
        ),
    ],
) -> Any:
    """Line items (service, item, quantity, unit, unit price, cost) and total_usd, the same JSON as
    `loganalyzer costs price --usage FILE`. A bad field answers 422 with its path."""
    try:
        quote = price(parse_usage(usage))
    except UsageError as exc:
        return JSONBytes({"detail": str(exc), "path": exc.path}, status_code=422)
    return JSONBytes(quote.to_dict())
