"""Pricing: a Usage and a PriceBook in, a Quote of line items out, to the cent as AWS bills.

Arithmetic is Decimal at 60 significant digits (no binary floats anywhere). Each line item is
rounded half-up to the cent, as AWS shows line items; the total is the sum of the rounded lines,
so that the lines a user sees always add up to the total they see.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

import orjson

from loganalyzer.costs.pricebook import Edition, PriceBook, default_price_book
from loganalyzer.costs.usage import Usage, UsageError

CENT = Decimal("0.01")
_CONTEXT = Context(prec=60)
_MB_PER_GB = Decimal(1024)
_FREE_EPHEMERAL_MB = 512
# Accounts signed up before this date have the legacy 12-month tier; from it, the free plan.
FREE_PLAN_START = date(2025, 7, 15)
LEGACY_LAST_DAY = date(2026, 7, 14)


def dec_str(d: Decimal) -> str:
    """Plain decimal notation (never an exponent), no trailing zeros beyond what is needed."""
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def money_str(d: Decimal) -> str:
    return format(d.quantize(CENT, rounding=ROUND_HALF_UP), "f")


@dataclass(frozen=True, slots=True)
class LineItem:
    service: str
    item: str
    tier: str | None
    quantity: Decimal
    free_quantity: Decimal
    unit: str
    unit_price: Decimal  # per single unit, full precision
    rate: str  # the price as AWS publishes it, e.g. "$0.20 per 1M requests"
    cost_exact: Decimal

    @property
    def billable_quantity(self) -> Decimal:
        return self.quantity - self.free_quantity

    @property
    def cost(self) -> Decimal:
        return self.cost_exact.quantize(CENT, rounding=ROUND_HALF_UP)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "item": self.item,
            "tier": self.tier,
            "quantity": dec_str(self.quantity),
            "free_quantity": dec_str(self.free_quantity),
            "billable_quantity": dec_str(self.billable_quantity),
            "unit": self.unit,
            "unit_price": dec_str(self.unit_price),
            "rate": self.rate,
            "cost_unrounded": dec_str(self.cost_exact),
            "cost": money_str(self.cost_exact),
        }


@dataclass(frozen=True, slots=True)
class Quote:
    region: str
    region_name: str
    as_of: date | None
    free_tier: str
    currency: str
    price_book_version: str
    prices_effective_from: date
    covers_from: date
    line_items: tuple[LineItem, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def subtotal(self) -> Decimal:
        """Before free-plan credits: the sum of the rounded charge lines."""
        return sum((li.cost for li in self.line_items if li.service != "credits"), Decimal(0))

    @property
    def credits(self) -> Decimal:
        """Free-plan credits applied (a non-negative amount)."""
        return -sum((li.cost for li in self.line_items if li.service == "credits"), Decimal(0))

    @property
    def total(self) -> Decimal:
        return sum((li.cost for li in self.line_items), Decimal(0))

    def service_totals(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for li in self.line_items:
            out[li.service] = out.get(li.service, Decimal(0)) + li.cost
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "region": self.region,
            "region_name": self.region_name,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "free_tier": self.free_tier,
            "price_book": {
                "version": self.price_book_version,
                "covers_from": self.covers_from.isoformat(),
                "prices_effective_from": self.prices_effective_from.isoformat(),
            },
            "line_items": [li.to_dict() for li in self.line_items],
            "services": {k: money_str(v) for k, v in self.service_totals().items()},
            "subtotal_usd": money_str(self.subtotal),
            "credits_usd": money_str(self.credits),
            "total_usd": money_str(self.total),
            "rounding": "each line item rounded half-up to the cent; totals are sums of rounded lines",
            "notes": list(self.notes),
        }


def quote_json(quote: Quote) -> bytes:
    """The one JSON rendering of a quote (CLI and API alike): orjson, keys sorted."""
    return orjson.dumps(quote.to_dict(), option=orjson.OPT_SORT_KEYS)


# --- tier arithmetic -------------------------------------------------------------------------


def _short(d: Decimal, unit: str) -> str:
    if unit in ("GB", "GB-month") and d >= 1024 and d % 1024 == 0:
        return f"{dec_str(d / 1024)} TB"
    if d >= 10**9:
        return f"{dec_str(d / 10**9)}B {unit}"
    if d >= 10**6 and d % 10**6 == 0:
        return f"{dec_str(d / 10**6)}M {unit}"
    return f"{int(d):,} {unit}" if d == d.to_integral_value() else f"{dec_str(d)} {unit}"


def _tier_label(lo: Decimal, hi: Decimal | None, unit: str, n_tiers: int) -> str | None:
    if n_tiers == 1:
        return None
    if hi is None:
        return f"over {_short(lo, unit)}"
    if lo == 0:
        return f"first {_short(hi, unit)}"
    return f"next {_short(hi - lo, unit)}"


def _rate(price: Decimal, per: Decimal, unit: str) -> str:
    shown = format(price, "f")  # as published: "0.20", not "0.2"
    if per == 1:
        return f"${shown} per {unit}"
    return f"${shown} per {_short(per, unit)}"


def _tiered(
    service: str,
    item: str,
    quantity: Decimal,
    free: Decimal,
    edition: Edition,
    unit: str,
) -> Iterator[LineItem]:
    """Split `quantity` over the edition's cumulative tiers; free units come off the first units.

    A zero quantity still yields one (zero) line for the first tier, so that a section always
    shows what it would be billed for.
    """
    free = min(free, quantity)
    lo = Decimal(0)
    n = len(edition.tiers)
    for i, tier in enumerate(edition.tiers):
        hi = tier.upto
        top = quantity if hi is None else min(quantity, hi)
        in_tier = max(Decimal(0), top - lo)
        if in_tier > 0 or (i == 0 and quantity == 0):
            free_here = max(Decimal(0), min(free, top) - lo)
            unit_price = tier.price / edition.per
            yield LineItem(
                service=service,
                item=item,
                tier=_tier_label(lo, hi, unit, n),
                quantity=in_tier,
                free_quantity=free_here,
                unit=unit,
                unit_price=unit_price,
                rate=_rate(tier.price, edition.per, unit),
                cost_exact=(in_tier - free_here) * unit_price,
            )
        if hi is None or quantity <= hi:
            break
        lo = hi


# --- per-service pricing ---------------------------------------------------------------------


class _Pricer:
    def __init__(self, usage: Usage, book: PriceBook) -> None:
        self.usage = usage
        self.book = book
        self.effective: list[date] = []

    def edition(self, key: str) -> Edition:
        try:
            ed = self.book.edition(self.usage.region, key, self.usage.as_of)
        except LookupError:
            raise UsageError("as_of", f"the price book has no {key} price on {self.usage.as_of}") from None
        self.effective.append(ed.effective_from)
        return ed

    def free(self, key: str) -> Decimal:
        return self.book.free_allowance(self.usage.free_tier, key)

    def lines(self) -> Iterator[LineItem]:
        u = self.usage
        if u.lambda_ is not None:
            lam = u.lambda_
            yield from _tiered(
                "lambda", "requests", lam.requests, self.free("lambda.requests"),
                self.edition("lambda.requests"), "requests",
            )  # fmt: skip
            seconds = lam.requests * lam.duration_ms / 1000
            gb_seconds = seconds * Decimal(lam.memory_mb) / _MB_PER_GB
            yield from _tiered(
                "lambda", f"compute_{lam.architecture}", gb_seconds, self.free("lambda.compute"),
                self.edition(f"lambda.compute.{lam.architecture}"), "GB-s",
            )  # fmt: skip
            if lam.ephemeral_storage_mb > _FREE_EPHEMERAL_MB:
                extra_gb = Decimal(lam.ephemeral_storage_mb - _FREE_EPHEMERAL_MB) / _MB_PER_GB
                yield from _tiered(
                    "lambda", "ephemeral_storage", seconds * extra_gb, Decimal(0),
                    self.edition("lambda.ephemeral_storage"), "GB-s",
                )  # fmt: skip
        if u.s3 is not None:
            s3 = u.s3
            yield from _tiered(
                "s3", "storage_standard", s3.storage_gb, self.free("s3.storage"),
                self.edition("s3.storage"), "GB-month",
            )  # fmt: skip
            yield from _tiered(
                "s3", "put_copy_post_list_requests", s3.put_requests, self.free("s3.put_requests"),
                self.edition("s3.put_requests"), "requests",
            )  # fmt: skip
            yield from _tiered(
                "s3", "get_select_requests", s3.get_requests, self.free("s3.get_requests"),
                self.edition("s3.get_requests"), "requests",
            )  # fmt: skip
        if u.dynamodb is not None:
            d = u.dynamodb
            if d.mode == "on_demand":
                yield from _tiered(
                    "dynamodb", "write_request_units", d.write_request_units, Decimal(0),
                    self.edition("dynamodb.write_request_units"), "WRU",
                )  # fmt: skip
                yield from _tiered(
                    "dynamodb", "read_request_units", d.read_request_units, Decimal(0),
                    self.edition("dynamodb.read_request_units"), "RRU",
                )  # fmt: skip
            else:
                # The free tier is 25 WCU and 25 RCU for every hour the table runs.
                yield from _tiered(
                    "dynamodb", "write_capacity", d.wcu * d.hours, self.free("dynamodb.wcu_units") * d.hours,
                    self.edition("dynamodb.wcu_hours"), "WCU-hours",
                )  # fmt: skip
                yield from _tiered(
                    "dynamodb", "read_capacity", d.rcu * d.hours, self.free("dynamodb.rcu_units") * d.hours,
                    self.edition("dynamodb.rcu_hours"), "RCU-hours",
                )  # fmt: skip
            yield from _tiered(
                "dynamodb", "storage", d.storage_gb, self.free("dynamodb.storage"),
                self.edition("dynamodb.storage"), "GB-month",
            )  # fmt: skip
        if u.data_transfer_out_gb is not None:
            yield from _tiered(
                "data_transfer", "internet_out", u.data_transfer_out_gb,
                self.free("data_transfer.internet_out"), self.edition("data_transfer.internet_out"), "GB",
            )  # fmt: skip


def _notes(usage: Usage, credits_applied: Decimal | None) -> list[str]:
    notes: list[str] = []
    if usage.as_of is None:
        notes.append("as_of not given: the newest prices in the price book are used")
    if usage.free_tier == "legacy_12_month" and usage.as_of is not None and usage.as_of > LEGACY_LAST_DAY:
        notes.append(
            "legacy_12_month lasts 12 months from sign-up and ended for accounts created before "
            f"{FREE_PLAN_START.isoformat()} by {LEGACY_LAST_DAY.isoformat()}; priced as asked"
        )
    if usage.free_tier == "free_plan" and usage.as_of is not None and usage.as_of < FREE_PLAN_START:
        notes.append(f"the free plan exists for accounts created from {FREE_PLAN_START.isoformat()}")
    fp = usage.free_plan
    if fp is not None and credits_applied is None:
        notes.append(f"free plan ended {fp.plan_end.isoformat()}: credits not applied on {usage.as_of}")
    if fp is not None and credits_applied is not None:
        left = fp.credits_usd - credits_applied
        notes.append(
            f"free plan credits: {money_str(credits_applied)} USD applied, {money_str(left)} USD left"
        )
    return notes


def price(usage: Usage, book: PriceBook | None = None) -> Quote:
    """Price a month of usage. Never raises on a Usage from parse_usage against the same book,
    except UsageError when a custom book lacks the region or as_of."""
    book = book or default_price_book()
    if usage.region not in book.prices:
        raise UsageError(
            "region", f"unknown region {usage.region!r} (the price book has {', '.join(book.regions)})"
        )
    with localcontext(_CONTEXT):
        pricer = _Pricer(usage, book)
        lines = list(pricer.lines())
        credits_applied: Decimal | None = None
        fp = usage.free_plan
        if fp is not None and (usage.as_of is None or usage.as_of <= fp.plan_end):
            subtotal = sum((li.cost for li in lines), Decimal(0))
            credits_applied = min(fp.credits_usd.quantize(CENT, rounding=ROUND_HALF_UP), subtotal)
            lines.append(
                LineItem(
                    service="credits",
                    item="free_plan_credits",
                    tier=None,
                    quantity=credits_applied,
                    free_quantity=Decimal(0),
                    unit="USD",
                    unit_price=Decimal(-1),
                    rate=f"credits drawn down until {fp.plan_end.isoformat()}",
                    cost_exact=-credits_applied,
                )
            )
        return Quote(
            region=usage.region,
            region_name=book.region_names[usage.region],
            as_of=usage.as_of,
            free_tier=usage.free_tier,
            currency=book.currency,
            price_book_version=book.version,
            prices_effective_from=max(pricer.effective, default=book.covers_from),
            covers_from=book.covers_from,
            line_items=tuple(lines),
            notes=tuple(_notes(usage, credits_applied)),
        )
