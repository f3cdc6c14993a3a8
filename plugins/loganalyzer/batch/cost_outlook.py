"""Next month's cost forecast and this month at other traffic levels, per tenant and for every
tenant together, into `cost_outlook` (sql/026), for Grafana's Costs dashboard.

Why stored: Grafana reads the platform through SQL only, and a forecast cannot be done in SQL
without a second pricing. So the cost_snapshot DAG, right after it measured a day, asks the cost
engine what the API's GET /api/v1/costs/forecast and /what-if ask it (serving/api/routes/costs.py),
as of that day and at the free tier `none` (the dashboard's daily costs have no free tier):

- the days are read from cost_snapshots as the API reads them (serving/usage_source.py: per day
  the sum over the scope's rows, storage accumulated from the days before the first one) and
  turned into Usages by loganalyzer.costs.daily.day_usages;
- forecast: `forecast_month` over the last HISTORY_DAYS days, for the month after the day's,
  with REPLICATES replicates and the engine's default seed;
- what-if: `what_if` on the day's month so far extended at its run rate (`combine_days`), for
  each of MULTIPLIERS.

Nothing here prices, fits or scales: that is the engine's. A test checks that the stored rows are
the API's answers for the same data, and that re-running a day replaces its rows.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from loganalyzer.costs.daily import DayMeasure, day_usages
from loganalyzer.costs.engine import money_str, price
from loganalyzer.costs.forecast import (
    DEFAULT_REPLICATES,
    HISTORY_DAYS,
    METHOD,
    Forecast,
    ForecastError,
    WhatIf,
    forecast_month,
    next_month,
    what_if,
)
from loganalyzer.costs.monthly import combine_days
from loganalyzer.costs.snapshot_queries import DAYS, STORED_BEFORE
from loganalyzer.costs.usage import Usage

#: the API's replicates (serving.api.routes.costs.FORECAST_REPLICATES, the engine's default)
REPLICATES = DEFAULT_REPLICATES
#: cost_snapshots.cost_usd has no free tier: allowances are per account and month, not per tenant
FREE_TIER = "none"
#: the traffic levels the dashboard shows (the API answers any other)
MULTIPLIERS = (Decimal("0.5"), Decimal(1), Decimal(2), Decimal(5), Decimal(10))


@dataclass(frozen=True)
class Outlook:
    """One scope's outlook as of `day`: what one cost_outlook row and its what-ifs hold."""

    day: date
    tenant: str | None  # None: every tenant together
    region: str
    days_measured: int  # of the day's month
    month_estimate: Decimal  # the day's month at its run rate: the what-ifs' baseline
    history_days: int
    replicates: int
    forecast: Forecast | None
    forecast_error: str | None
    what_ifs: tuple[WhatIf, ...]

    @property
    def scope(self) -> str:
        return "(all tenants)" if self.tenant is None else self.tenant

    @property
    def month_start(self) -> date:
        return self.day.replace(day=1)

    @property
    def forecast_month(self) -> date:
        return next_month(self.day)


def read_days(
    conn: psycopg.Connection[Any], tenant: str | None, first: date, last: date, region: str
) -> list[tuple[date, Usage]]:
    """The scope's measured days from `first` to `last` as the engine's Usages (as the API reads them)."""
    args = {"t": tenant, "a": first, "b": last}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(DAYS, args).fetchall()
        if not rows:
            return []
        before = cur.execute(STORED_BEFORE, args).fetchone()
    assert before is not None
    measured = [(r.pop("day"), DayMeasure(**{k: float(v or 0) for k, v in r.items()})) for r in rows]
    return day_usages(
        measured, stored_before=(before["s3"], before["ddb"]), region=region, free_tier=FREE_TIER
    )


def outlook_of(
    day: date,
    tenant: str | None,
    region: str,
    history: Sequence[tuple[date, Usage]],
    month: Sequence[tuple[date, Usage]],
    *,
    replicates: int = REPLICATES,
    multipliers: Sequence[Decimal] = MULTIPLIERS,
) -> Outlook:
    """The engine's forecast of the month after `day` from `history` (the last HISTORY_DAYS days
    up to `day`), and its what-ifs on `month` (the day's month so far, at least one day)."""
    if not month:
        raise ValueError(f"no measured day in {day:%Y-%m} up to {day}: nothing to extend to the month")
    forecast: Forecast | None = None
    error: str | None = None
    try:
        forecast = forecast_month(history, month=next_month(day), replicates=replicates)
    except ForecastError as exc:
        error = str(exc)
    usage = combine_days([u for _, u in month], days_in_month=calendar.monthrange(day.year, day.month)[1])
    what_ifs = tuple(what_if(usage, traffic_multiplier=m) for m in multipliers)
    return Outlook(
        day=day,
        tenant=tenant,
        region=region,
        days_measured=len(month),
        month_estimate=price(usage).total,
        history_days=len(history),
        replicates=replicates,
        forecast=forecast,
        forecast_error=error,
        what_ifs=what_ifs,
    )


def compute_outlooks(
    conn: psycopg.Connection[Any], day: date, *, region: str, replicates: int = REPLICATES
) -> list[Outlook]:
    """Every tenant measured on `day`, then every tenant together; none when `day` has no rows."""
    tenants = [
        str(r[0])
        for r in conn.execute("SELECT DISTINCT tenant FROM cost_snapshots WHERE day = %s ORDER BY 1", (day,))
    ]
    if not tenants:
        return []
    out = []
    for tenant in [*tenants, None]:
        history = read_days(conn, tenant, day - timedelta(days=HISTORY_DAYS), day, region)
        month = read_days(conn, tenant, day.replace(day=1), day, region)
        out.append(outlook_of(day, tenant, region, history, month, replicates=replicates))
    return out


def _money(d: Decimal) -> Decimal:
    """To the cent as the API shows it (half up), so a stored figure equals the API's string."""
    return Decimal(money_str(d))


_INSERT = """
INSERT INTO cost_outlook (day, tenant, region, free_tier, month_start, days_measured, month_estimate_usd,
    forecast_month, forecast_mean_usd, forecast_low_usd, forecast_high_usd, forecast_point_usd, history_days,
    replicates, method, notes, forecast_error)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


def write_outlooks(conn: psycopg.Connection[Any], day: date, outlooks: Sequence[Outlook]) -> int:
    """Replace the day's outlook rows (and, by cascade, their what-ifs) with these."""
    with conn.transaction():
        conn.execute("DELETE FROM cost_outlook WHERE day = %s", (day,))
        for o in outlooks:
            fc = o.forecast
            row = conn.execute(
                _INSERT,
                (
                    o.day,
                    o.tenant,
                    o.region,
                    FREE_TIER,
                    o.month_start,
                    o.days_measured,
                    _money(o.month_estimate),
                    o.forecast_month,
                    None if fc is None else _money(fc.mean),
                    None if fc is None else _money(fc.low),
                    None if fc is None else _money(fc.high),
                    None if fc is None else _money(fc.point_quote.total),
                    o.history_days,
                    o.replicates,
                    METHOD,
                    [] if fc is None else list(fc.notes),
                    o.forecast_error,
                ),
            ).fetchone()
            assert row is not None
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO cost_outlook_what_if (outlook_id, multiplier, total_usd, delta_usd) "
                    "VALUES (%s, %s, %s, %s)",
                    [(row[0], w.multiplier, _money(w.scenario.total), _money(w.delta)) for w in o.what_ifs],
                )
    return len(outlooks)


def write_outlook(
    conn: psycopg.Connection[Any], day: date, *, region: str, replicates: int = REPLICATES
) -> list[Outlook]:
    """Compute and store the outlook as of `day` (after its cost_snapshots rows were written);
    returns what was stored. The caller's connection commits (the DAG's does on success)."""
    outlooks = compute_outlooks(conn, day, region=region, replicates=replicates)
    write_outlooks(conn, day, outlooks)
    return outlooks
