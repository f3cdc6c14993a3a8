"""The price book: AWS list prices as data (pricebook.json), with dated editions per region.

Prices live in a data file, not in code, so that a price change is a reviewed one-line diff with
its date and source next to it, and so that a quote for a past month uses that month's prices.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any

FREE_TIER_PLANS = ("none", "always_free", "legacy_12_month", "free_plan")


class PriceBookError(ValueError):
    """The price book data is malformed (a packaging bug, never a user error)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """Quantities up to `upto` (cumulative, in the key's unit; None: no bound) cost `price` per `per`."""

    upto: Decimal | None
    price: Decimal


@dataclass(frozen=True, slots=True)
class Edition:
    effective_from: date
    per: Decimal
    tiers: tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    retrieved: str
    covers: str


@dataclass(frozen=True, slots=True)
class PriceBook:
    version: str
    currency: str
    covers_from: date
    sources: tuple[Source, ...]
    free_tiers: Mapping[str, Mapping[str, Decimal]]
    region_names: Mapping[str, str]
    prices: Mapping[str, Mapping[str, tuple[Edition, ...]]]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(sorted(self.prices))

    def edition(self, region: str, key: str, as_of: date | None) -> Edition:
        """The edition of `key` in force on `as_of` (the newest one when as_of is None)."""
        editions = self.prices[region][key]
        if as_of is None:
            return editions[-1]
        chosen = None
        for ed in editions:
            if ed.effective_from <= as_of:
                chosen = ed
        if chosen is None:
            raise LookupError(f"no price for {key} in {region} on {as_of}")
        return chosen

    def free_allowance(self, plan: str, key: str) -> Decimal:
        return self.free_tiers[plan].get(key, Decimal(0))


def _dec(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise PriceBookError(f"{where}: prices and bounds are strings of decimals, got {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise PriceBookError(f"{where}: not a decimal: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise PriceBookError(f"{where}: must be a finite non-negative decimal")
    return d


def _date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PriceBookError(f"{where}: not an ISO date: {value!r}") from None


def _edition(raw: Mapping[str, Any], where: str) -> Edition:
    tiers: list[Tier] = []
    previous = Decimal(0)
    raw_tiers = raw["tiers"]
    for i, t in enumerate(raw_tiers):
        upto = None if t["upto"] is None else _dec(t["upto"], f"{where}.tiers[{i}].upto")
        if upto is None and i != len(raw_tiers) - 1:
            raise PriceBookError(f"{where}.tiers[{i}]: only the last tier may be unbounded")
        if upto is not None and upto <= previous:
            raise PriceBookError(f"{where}.tiers[{i}]: bounds must increase")
        if upto is not None:
            previous = upto
        tiers.append(Tier(upto=upto, price=_dec(t["price"], f"{where}.tiers[{i}].price")))
    if not tiers or tiers[-1].upto is not None:
        raise PriceBookError(f"{where}: the last tier must be unbounded")
    per = _dec(raw["per"], f"{where}.per")
    if per == 0:
        raise PriceBookError(f"{where}.per: must be positive")
    return Edition(effective_from=_date(raw["from"], f"{where}.from"), per=per, tiers=tuple(tiers))


def parse_price_book(raw: Mapping[str, Any]) -> PriceBook:
    """Validate the book's structure once, so that pricing can index it without checks."""
    try:
        covers_from = _date(raw["covers_from"], "covers_from")
        prices: dict[str, dict[str, tuple[Edition, ...]]] = {}
        names: dict[str, str] = {}
        keys: set[str] | None = None
        for region, body in raw["regions"].items():
            names[region] = body["name"]
            region_prices: dict[str, tuple[Edition, ...]] = {}
            for key, editions in body["prices"].items():
                eds = tuple(_edition(e, f"regions.{region}.{key}[{i}]") for i, e in enumerate(editions))
                dates = [e.effective_from for e in eds]
                if dates != sorted(set(dates)) or dates[0] > covers_from:
                    raise PriceBookError(
                        f"regions.{region}.{key}: editions must be in date order and start by covers_from"
                    )
                region_prices[key] = eds
            if keys is not None and set(region_prices) != keys:
                raise PriceBookError(f"regions.{region}: must price the same keys as the other regions")
            keys = set(region_prices)
            prices[region] = region_prices
        free = {
            plan: {k: _dec(v, f"free_tiers.{plan}.{k}") for k, v in raw["free_tiers"][plan].items()}
            for plan in FREE_TIER_PLANS
        }
        sources = tuple(Source(s["url"], s["retrieved"], s["covers"]) for s in raw["sources"])
        return PriceBook(
            version=str(raw["version"]),
            currency=str(raw["currency"]),
            covers_from=covers_from,
            sources=sources,
            free_tiers=free,
            region_names=names,
            prices=prices,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise PriceBookError(f"malformed price book: {exc!r}") from None


@lru_cache(maxsize=1)
def default_price_book() -> PriceBook:
    """The book shipped with the package (read once per process)."""
    text = resources.files("loganalyzer.costs").joinpath("pricebook.json").read_text(encoding="utf-8")
    return parse_price_book(json.loads(text))
