"""Next month's usage and cost from daily usage history: a trend fit and a residual bootstrap.

Method (docs/costs.md has the long form): each volume series (requests, request units, bytes out,
stored GB, provisioned capacity) gets a least-squares fit of a line over day number plus, from
14 days of history, one effect per weekday (regression.py). The point forecast extends the fit
over the target month's own days. The interval comes from B bootstrap replicates: residuals
(leverage-adjusted) are resampled, the same days for every series so that series which move
together stay together, the fit redone on the resampled history, the target month simulated
from the refitted lines plus freshly resampled residuals, and each simulated month priced. The
mean is the mean of the priced replicates; the 80 % interval their 10th and 90th percentiles.
Everything is deterministic for a given seed.

Why a trend and not a richer model: the API has weeks of history, not years; a line and a
weekly cycle are what such a history supports, and the bootstrap shows their uncertainty instead
of pretending to precision. A level that jumps lately is flagged in the notes, not modelled.
"""

from __future__ import annotations

import calendar
import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from loganalyzer.costs.engine import Quote, money_str, price
from loganalyzer.costs.pricebook import PriceBook
from loganalyzer.costs.regression import Design, predict
from loganalyzer.costs.usage import DynamoDBUsage, S3Usage, Usage
from loganalyzer.costs.whatif import (
    WhatIf,
    WhatIfError,
    effective_multiplier,
    scale_usage,
    scale_usage_by_service,
    what_if,
)

__all__ = [
    "Forecast",
    "ForecastError",
    "WhatIf",
    "WhatIfError",
    "effective_multiplier",
    "forecast_month",
    "scale_usage",
    "scale_usage_by_service",
    "what_if",
]

METHOD = (
    "per usage series: least-squares trend plus day-of-week effects (from 14 days of history); "
    "residual bootstrap; 80 % interval = P10..P90 of the priced replicates"
)
MIN_DAYS = 3
REGIME_MIN_DAYS = 7
DEFAULT_REPLICATES = 400
#: days of measured history a forecast is fitted on (the API's and the stored outlook's)
HISTORY_DAYS = 60
MAX_REPLICATES = 5000


class ForecastError(ValueError):
    """The history cannot support a forecast; the message says why."""


def _table(u: Usage, mode: str) -> DynamoDBUsage | None:
    """The DynamoDB part when it is in `mode`: only that mode's quantities are forecast."""
    return u.dynamodb if u.dynamodb is not None and u.dynamodb.mode == mode else None


# Series summed over the month's days (flows) and averaged over them (levels).
_FLOWS: dict[str, Callable[[Usage], Decimal | None]] = {
    "lambda.requests": lambda u: u.lambda_.requests if u.lambda_ else None,
    "s3.put_requests": lambda u: u.s3.put_requests if u.s3 else None,
    "s3.get_requests": lambda u: u.s3.get_requests if u.s3 else None,
    "dynamodb.write_request_units": lambda u: (
        t.write_request_units if (t := _table(u, "on_demand")) else None
    ),
    "dynamodb.read_request_units": lambda u: t.read_request_units if (t := _table(u, "on_demand")) else None,
    "data_transfer_out_gb": lambda u: u.data_transfer_out_gb,
}
_LEVELS: dict[str, Callable[[Usage], Decimal | None]] = {
    "s3.storage_gb": lambda u: u.s3.storage_gb if u.s3 else None,
    "dynamodb.storage_gb": lambda u: u.dynamodb.storage_gb if u.dynamodb else None,
    "dynamodb.wcu": lambda u: t.wcu if (t := _table(u, "provisioned")) else None,
    "dynamodb.rcu": lambda u: t.rcu if (t := _table(u, "provisioned")) else None,
}


@dataclass(frozen=True, slots=True)
class _Series:
    beta: tuple[float, ...]
    fitted: tuple[float, ...]
    resampling: tuple[float, ...]  # leverage-adjusted, centred residuals
    raw: tuple[float, ...]


def _series(design: Design, ys: Sequence[float]) -> _Series:
    beta = design.fit(ys)
    fitted = tuple(design.fitted(beta))
    raw = tuple(y - f for y, f in zip(ys, fitted, strict=True))
    return _Series(beta, fitted, design.resampling_residuals(ys, beta), raw)


def _line_sse(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = 0.0 if sxx == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return sum((y - my - slope * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))


def _regime_start(dates: Sequence[date], series: Sequence[Sequence[float]]) -> int:
    """First day of the current regime: 0, or where two lines (a level change) beat one line.

    Decided once for all series, on the sum of their standardised values, by BIC: one line has
    2 parameters, two lines 4, and the change day, searched over every day, counts as 3 (as 1,
    a trend with noise was split in 15 % of simulated histories; as 3, in 1 %). Each side needs
    a week of days, so that the forecast never rests on fewer than 7 of them.
    """
    n = len(dates)
    if n < 2 * REGIME_MIN_DAYS:
        return 0
    combined = [0.0] * n
    for ys in series:
        sd = statistics.pstdev(ys)
        if sd > 0:
            mean = statistics.fmean(ys)
            combined = [c + (y - mean) / sd for c, y in zip(combined, ys, strict=True)]
    xs = [float((d - dates[0]).days) for d in dates]
    tiny = 1e-9 * n

    def bic(sse: float, params: int) -> float:
        return n * math.log(sse / n + tiny) + params * math.log(n)

    best, best_bic = 0, bic(_line_sse(xs, combined), 2)
    for cut in range(REGIME_MIN_DAYS, n - REGIME_MIN_DAYS + 1):
        sse = _line_sse(xs[:cut], combined[:cut]) + _line_sse(xs[cut:], combined[cut:])
        score = bic(sse, 7)
        if score < best_bic:
            best, best_bic = cut, score
    return best


def _departs_lately(raw: Sequence[float]) -> bool:
    """Do the last 7 days sit off the fitted line (a level change the trend cannot follow)?"""
    if len(raw) < 14:
        return False
    sd = statistics.pstdev(raw)
    return sd > 0 and abs(statistics.fmean(raw[-7:])) > 2 * sd / math.sqrt(7)


@dataclass(frozen=True, slots=True)
class Forecast:
    month: date  # first day of the forecast month
    days: int
    history_days: int
    replicates: int
    seed: int
    point_usage: Usage
    point_quote: Quote
    mean: Decimal
    low: Decimal  # 10th percentile
    high: Decimal  # 90th percentile
    trends: dict[str, float]  # fitted slope per series, in units per day
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.strftime("%Y-%m"),
            "days": self.days,
            "history_days": self.history_days,
            "method": METHOD,
            "replicates": self.replicates,
            "seed": self.seed,
            "mean_usd": money_str(self.mean),
            "interval_80_usd": {"low": money_str(self.low), "high": money_str(self.high)},
            "point_usd": money_str(self.point_quote.total),
            "point_usage": self.point_usage.to_dict(),
            "point_quote": self.point_quote.to_dict(),
            "trend_per_day": {k: _round_sig(v) for k, v in sorted(self.trends.items())},
            "notes": list(self.notes),
        }


def _round_sig(x: float) -> float:
    return 0.0 if x == 0 else round(x, 6 - math.floor(math.log10(abs(x))))


def _dec(x: float) -> Decimal:
    """A non-negative Decimal from a simulated float, to a precision that cannot matter at a cent."""
    return Decimal(repr(round(max(0.0, x), 6)))


def next_month(d: date) -> date:
    """The first day of the month after d's."""
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def _month_usage(template: Usage, flows: dict[str, float], levels: dict[str, float], days: int) -> Usage:
    lam = template.lambda_
    s3 = template.s3
    ddb = template.dynamodb
    return dataclasses.replace(
        template,
        lambda_=None if lam is None else dataclasses.replace(lam, requests=_dec(flows["lambda.requests"])),
        s3=None
        if s3 is None
        else S3Usage(
            storage_gb=_dec(levels["s3.storage_gb"]),
            put_requests=_dec(flows["s3.put_requests"]),
            get_requests=_dec(flows["s3.get_requests"]),
        ),
        dynamodb=None
        if ddb is None
        else DynamoDBUsage(
            mode=ddb.mode,
            write_request_units=_dec(flows["dynamodb.write_request_units"])
            if ddb.mode == "on_demand"
            else Decimal(0),
            read_request_units=_dec(flows["dynamodb.read_request_units"])
            if ddb.mode == "on_demand"
            else Decimal(0),
            storage_gb=_dec(levels["dynamodb.storage_gb"]),
            wcu=_dec(levels["dynamodb.wcu"]) if ddb.mode == "provisioned" else Decimal(0),
            rcu=_dec(levels["dynamodb.rcu"]) if ddb.mode == "provisioned" else Decimal(0),
            hours=Decimal(24 * days),
        ),
        data_transfer_out_gb=None
        if template.data_transfer_out_gb is None
        else _dec(flows["data_transfer_out_gb"]),
    )


def _template(history: Sequence[tuple[date, Usage]], month: date) -> Usage:
    """The forecast month's configuration: the last day's, with a request-weighted duration."""
    last = history[-1][1]
    lam = last.lambda_
    if lam is not None:
        weight = sum((u.lambda_.requests for _, u in history if u.lambda_), Decimal(0))
        if weight > 0:
            dur = sum(
                (u.lambda_.requests * u.lambda_.duration_ms for _, u in history if u.lambda_), Decimal(0)
            )
            lam = dataclasses.replace(lam, duration_ms=dur / weight)
    return dataclasses.replace(last, as_of=month, lambda_=lam)


def forecast_month(
    history: Sequence[tuple[date, Usage]],
    *,
    month: date | None = None,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    book: PriceBook | None = None,
) -> Forecast:
    """Forecast the cost of `month` (default: the month after the last day of history).

    `history` holds one Usage per day with that day's quantities: requests, request units and GB
    out are the day's totals; storage and provisioned capacity are the day's averages. Region,
    free tier, memory, architecture and mode come from the last day.
    """
    if not history:
        raise ForecastError("history: no days given")
    days_sorted = sorted(history, key=lambda p: p[0])
    dates = [d for d, _ in days_sorted]
    if len(set(dates)) != len(dates):
        raise ForecastError("history: a date appears twice")
    if len(dates) < MIN_DAYS:
        raise ForecastError(f"history: {len(dates)} day(s) given; a forecast needs at least {MIN_DAYS}")
    if not 1 <= replicates <= MAX_REPLICATES:
        raise ForecastError(f"replicates: must be between 1 and {MAX_REPLICATES}")
    target = next_month(dates[-1]) if month is None else month.replace(day=1)
    if target <= dates[-1].replace(day=1):
        raise ForecastError(f"month: {target:%Y-%m} is not after the history's last month {dates[-1]:%Y-%m}")
    n_days = calendar.monthrange(target.year, target.month)[1]
    getters = _FLOWS | _LEVELS
    template = _template(days_sorted, target)
    present = [k for k, g in getters.items() if g(days_sorted[-1][1]) is not None]
    start = _regime_start(dates, [[float(getters[k](u) or 0) for _, u in days_sorted] for k in present])
    all_days = len(dates)
    days_sorted, dates = days_sorted[start:], dates[start:]
    # After a level change, a slope from under two weeks would be extrapolated a month: level only.
    design = Design.for_dates(dates, trend=not start or len(dates) >= 2 * REGIME_MIN_DAYS)
    future_rows = [design.row(target + timedelta(days=i)) for i in range(n_days)]
    # Only the series the month will have (the last day's sections and DynamoDB mode) are fitted.
    fits = {k: _series(design, [float(getters[k](u) or 0) for _, u in days_sorted]) for k in present}

    def month_from(betas: dict[str, tuple[float, ...]], noise_days: Sequence[int] | None) -> Usage:
        flows: dict[str, float] = {}
        levels: dict[str, float] = {}
        for key, beta in betas.items():
            resid = fits[key].resampling
            path = [
                max(0.0, predict(beta, row) + (0.0 if noise_days is None else resid[noise_days[i]]))
                for i, row in enumerate(future_rows)
            ]
            if key in _FLOWS:
                flows[key] = sum(path)
            else:
                levels[key] = sum(path) / n_days
        return _month_usage(template, flows, levels, n_days)

    point_usage = month_from({k: f.beta for k, f in fits.items()}, None)
    point_quote = price(point_usage, book)

    rng = random.Random(seed)
    n = len(dates)
    totals: list[Decimal] = []
    for _ in range(replicates):
        pick = [rng.randrange(n) for _ in range(n)]
        betas = {
            key: design.fit([f + fit.resampling[j] for f, j in zip(fit.fitted, pick, strict=True)])
            for key, fit in fits.items()
        }
        noise = [rng.randrange(n) for _ in range(n_days)]
        totals.append(price(month_from(betas, noise), book).total)
    totals.sort()

    notes = []
    if start:
        notes.append(
            f"usage changed level around {dates[0].isoformat()}: fitted on the {n} days since "
            f"(of {all_days} given)"
        )
    if n < 14:
        notes.append(f"only {n} days of history: the trend and the interval are rough")
    if design.weekdays:
        notes.append("day-of-week effects estimated from the history and applied to the month's weekdays")
    if (dates[-1] - dates[0]).days + 1 != n:
        notes.append("history has gaps: missing days are skipped, not counted as zero")
    shifted = [k for k in present if _departs_lately(fits[k].raw)]
    if shifted:
        notes.append(
            "the last 7 days depart from the fitted trend in "
            + ", ".join(shifted)
            + " (a level change?): the forecast may be off"
        )
    notes.append("the interval covers usage variation under the fitted trend, not price changes or outages")
    return Forecast(
        month=target,
        days=n_days,
        history_days=all_days,
        replicates=replicates,
        seed=seed,
        point_usage=point_usage,
        point_quote=point_quote,
        mean=sum(totals, Decimal(0)) / len(totals),
        low=_percentile(totals, 0.10),
        high=_percentile(totals, 0.90),
        trends={k: design.slope(fits[k].beta) for k in present},
        notes=tuple(notes),
    )


def _percentile(sorted_values: Sequence[Decimal], q: float) -> Decimal:
    """Linear interpolation between closest ranks (numpy's default), on Decimals."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = Decimal(repr(q)) * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac
