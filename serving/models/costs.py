"""Cost quotes as the engine renders them (loganalyzer.costs), with where the usage came from."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class LineItemPublic(BaseModel):
    service: str
    item: str
    tier: str | None
    quantity: str = Field(description="Decimal, as a string (exact)")
    free_quantity: str
    billable_quantity: str
    unit: str
    unit_price: str
    rate: str = Field(description="The price as AWS publishes it, e.g. '$0.20 per 1M requests'")
    cost_unrounded: str
    cost: str = Field(description="Rounded half-up to the cent, as AWS shows it")


class QuotePublic(BaseModel):
    """The engine's quote (docs/costs.md): line items and totals in USD, as decimal strings."""

    currency: str
    region: str
    region_name: str
    as_of: str | None
    free_tier: str
    price_book: dict[str, Any]
    line_items: list[LineItemPublic]
    services: dict[str, str]
    subtotal_usd: str
    credits_usd: str
    total_usd: str
    rounding: str
    notes: list[str]


class UsageSource(StrEnum):
    cost_snapshots = "cost_snapshots"
    estimated_from_database = "estimated_from_database"
    none = "none"


class Period(BaseModel):
    start: date
    end: date
    days_in_period: int
    days_measured: int = Field(description="Days with usage data the figure is built from")


class CostEstimate(QuotePublic):
    period: Period
    source: UsageSource = Field(
        description="cost_snapshots: measured daily usage (the cost DAG); estimated_from_database: "
        "derived from the database's own figures (see assumptions); none: no data yet"
    )
    assumptions: list[str]
    usage: dict[str, Any] = Field(description="The usage document that was priced (docs/costs.md)")


class ForecastBand(BaseModel):
    total_usd: str
    usage: dict[str, Any]


class CostForecast(BaseModel):
    period: Period
    source: UsageSource
    method: str
    interval: str = Field(description="The interval's coverage, e.g. '80%'")
    mean: QuotePublic
    low: ForecastBand = Field(description="10th percentile of next month's cost")
    high: ForecastBand = Field(description="90th percentile of next month's cost")
    assumptions: list[str]


class WhatIf(BaseModel):
    period: Period
    source: UsageSource
    traffic_multiplier: float
    service_multipliers: dict[str, float]
    volume_multiplier: float = Field(description="What the multipliers do to the total log volume")
    baseline_total_usd: str
    scenario_total_usd: str
    delta_usd: str
    scenario: QuotePublic
    assumptions: list[str]
