"""What the platform costs on AWS: this month's estimate, next month's forecast, what-ifs, and
pricing of any usage document. All of it is loganalyzer.costs (one engine for API, CLI and DAG):
this module only reads the days (serving.usage_source) and renders the engine's answers."""

from __future__ import annotations

import asyncio
import calendar
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request

from loganalyzer.costs.daily import LAMBDA_ARCHITECTURE, LAMBDA_MEMORY_MB
from loganalyzer.costs.engine import price
from loganalyzer.costs.forecast import (
    DEFAULT_REPLICATES,
    HISTORY_DAYS,
    ForecastError,
    WhatIfError,
    forecast_month,
    what_if,
)
from loganalyzer.costs.monthly import combine_days
from loganalyzer.costs.usage import DynamoDBUsage, LambdaUsage, S3Usage, Usage, UsageError, parse_usage
from serving.api.cost_cache import CostCache
from serving.api.deps import CurrentPrincipal, DbDep, PageCacheDep, PoolDep, tenant_scope
from serving.api.render import JSONBytes, RawJSON
from serving.models.common import Problem
from serving.models.costs import CostEstimate, CostForecast, QuotePublic, WhatIf
from serving.usage_source import UsageHistory, history

router = APIRouter(prefix="/api/v1/costs", tags=["costs"])

#: the engine's defaults, shared with the stored outlook (loganalyzer.batch.cost_outlook); the
#: answer is cached, so one tenant pays for its replicates once per cache period
FORECAST_HISTORY_DAYS = HISTORY_DAYS
FORECAST_REPLICATES = DEFAULT_REPLICATES


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


def month_bounds(day: date) -> tuple[date, date]:
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _period(first: date, last: date, measured: int) -> dict[str, Any]:
    return {"start": first, "end": last, "days_in_period": (last - first).days + 1, "days_measured": measured}


def _cache(request: Request) -> CostCache:
    cache: CostCache = request.app.state.cost_cache
    return cache


def _month_usage(hist: UsageHistory, today: date, region: Region, free_tier: FreeTier) -> Usage:
    """The month so far extended to the whole month at its run rate (combine_days); no days: zero."""
    first, last = month_bounds(today)
    if hist.days:
        return combine_days([u for _, u in hist.days], days_in_month=(last - first).days + 1)
    return Usage(
        region=region.value,
        as_of=today,
        free_tier=free_tier.value,
        lambda_=LambdaUsage(memory_mb=LAMBDA_MEMORY_MB, architecture=LAMBDA_ARCHITECTURE),
        s3=S3Usage(),
        dynamodb=DynamoDBUsage(),
    )


async def _month(
    db: DbDep, scope: str | None, region: Region, free_tier: FreeTier
) -> tuple[UsageHistory, Usage, dict[str, Any]]:
    today = _today()
    first, last = month_bounds(today)
    hist = await history(db, scope, first, today, region.value, free_tier.value)
    return hist, _month_usage(hist, today, region, free_tier), _period(first, last, len(hist.days))


@router.get("/estimate", response_model=CostEstimate, summary="This month's AWS cost, from measured usage")
async def estimate(
    request: Request,
    pool: PoolDep,
    pages: PageCacheDep,
    principal: CurrentPrincipal,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """The current calendar month: the days measured so far extended to the whole month
    (loganalyzer.costs.monthly.combine_days: flows at their run rate, storage averaged), priced
    line by line to the cent. `source` says whether the usage was measured (cost_snapshots) or
    estimated from the database's own figures (then `assumptions` lists how). Cached for
    API_COST_CACHE_SECONDS."""
    scope = tenant_scope(principal, tenant)

    async def compute() -> bytes:
        async with pool.connection() as db:
            hist, usage, period = await _month(db, scope, region, free_tier)
        body = {
            **price(usage).to_dict(),
            "period": period,
            "source": hist.source,
            "assumptions": hist.assumptions,
            "usage": usage.to_dict(),
        }
        return bytes(JSONBytes(body).body)

    key = ("estimate", scope, principal.is_admin, region, free_tier, _today())
    body = await _cache(request).get_or_compute(key, compute)
    pages.put(pages.key(principal, request.scope), body)  # repeated: answered before routing
    return RawJSON(body)


@router.get(
    "/forecast",
    response_model=CostForecast,
    responses={422: {"model": Problem, "description": "Fewer than 3 days of usage to forecast from"}},
    summary="Next month's AWS cost: mean and 80% interval",
)
async def forecast(
    request: Request,
    pool: PoolDep,
    principal: CurrentPrincipal,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """Next calendar month's cost by loganalyzer.costs.forecast.forecast_month over up to the
    last 60 days: `mean_usd` and `interval_80_usd` (P10..P90 of 400 priced bootstrap replicates),
    `point_usd` of the trend itself, `method` and `notes`. Computed at most once per tenant and
    parameters per API_COST_CACHE_SECONDS (concurrent callers wait for the one computation)."""
    scope = tenant_scope(principal, tenant)
    today = _today()
    first, last = month_bounds(month_bounds(today)[1] + timedelta(days=1))

    async def compute() -> bytes:
        async with pool.connection() as db:
            hist = await history(
                db, scope, today - timedelta(days=FORECAST_HISTORY_DAYS), today, region.value, free_tier.value
            )
        try:
            fc = await asyncio.to_thread(
                forecast_month, hist.days, month=first, replicates=FORECAST_REPLICATES
            )
        except ForecastError as exc:
            raise HTTPException(422, f"cannot forecast {first:%Y-%m} ({hist.source}): {exc}") from None
        body = {
            "period": _period(first, last, len(hist.days)),
            "source": hist.source,
            "interval": "80%",
            "computed_at": datetime.now(UTC).isoformat(),
            **fc.to_dict(),
            "assumptions": hist.assumptions,
        }
        return bytes(JSONBytes(body).body)

    key = ("forecast", scope, principal.is_admin, region, free_tier, today)
    return RawJSON(await _cache(request).get_or_compute(key, compute))


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
async def what_if_route(
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
            description="Per-service multipliers, on top of traffic_multiplier: `svc:2,svc2:0.5` or the "
            "parameter repeated. Services are weighted by their share of the log volume; a service "
            "without logs is refused (422).",
        ),
    ] = None,
    region: RegionQ = Region.us_east_1,
    free_tier: FreeTierQ = FreeTier.always_free,
    tenant: TenantQ = None,
) -> Any:
    """loganalyzer.costs.whatif.what_if on this month's estimate: every volume-driven quantity
    (requests, request units, storage) times traffic_multiplier x the services' share-weighted
    multipliers, configuration kept, priced again."""
    per_service = parse_multipliers(service_multipliers or [])
    scope = tenant_scope(principal, tenant)
    hist, usage, period = await _month(db, scope, region, free_tier)
    try:
        wi = what_if(
            usage,
            traffic_multiplier=traffic_multiplier,
            service_shares=hist.service_shares,
            service_multipliers=per_service,
        )
    except WhatIfError as exc:
        raise HTTPException(422, str(exc)) from None
    return JSONBytes(
        {
            "period": period,
            "source": hist.source,
            "traffic_multiplier": traffic_multiplier,
            "service_multipliers": per_service,
            "volume_multiplier": float(wi.multiplier),
            **wi.to_dict(),
            "assumptions": hist.assumptions,
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
