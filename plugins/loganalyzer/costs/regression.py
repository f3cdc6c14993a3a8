"""Least squares for the forecast: a day-number trend plus day-of-week effects, in pure Python.

The design is fixed by the history's dates, so its projection (X'X)^-1 X' is computed once and
every bootstrap refit is a matrix-vector product. Residuals are leverage-adjusted
(r / sqrt(1 - h), then centred), the usual correction that keeps a residual bootstrap from
under-stating the noise of a small sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WEEKDAY_MIN_DAYS = 14  # two of each weekday before their effects are estimated


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when the system is singular."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col and m[r][col]:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


@dataclass(frozen=True, slots=True)
class Design:
    """Columns: intercept, day number (unless level only), then one indicator per weekday other
    than the first seen."""

    origin: date
    trend: bool
    weekdays: tuple[int, ...]  # weekdays with their own effect
    rows: tuple[tuple[float, ...], ...]
    projection: tuple[tuple[float, ...], ...]  # (X'X)^-1 X', k x n
    leverage: tuple[float, ...]

    @staticmethod
    def for_dates(dates: Sequence[date], trend: bool = True) -> Design:
        origin = dates[0]
        weekdays: tuple[int, ...] = ()
        if len(dates) >= WEEKDAY_MIN_DAYS:
            seen = sorted({d.weekday() for d in dates})
            counts = {w: sum(1 for d in dates if d.weekday() == w) for w in seen}
            weekdays = tuple(w for w in seen[1:] if counts[w] >= 2)
        for attempt in (weekdays, ()):
            design = Design._build(origin, trend and len(set(dates)) > 1, attempt, dates)
            if design is not None:
                return design
        raise ValueError("history dates do not determine a fit")  # unreachable: a level always fits

    @staticmethod
    def _build(origin: date, trend: bool, weekdays: tuple[int, ...], dates: Sequence[date]) -> Design | None:
        rows = tuple(_row(origin, trend, weekdays, d) for d in dates)
        k = len(rows[0])
        xtx = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
        columns: list[list[float]] = []
        for j in range(k):
            unit = [1.0 if i == j else 0.0 for i in range(k)]
            col = _solve(xtx, unit)
            if col is None:
                return None
            columns.append(col)
        inverse = [[columns[j][i] for j in range(k)] for i in range(k)]
        projection = tuple(tuple(sum(inverse[i][j] * r[j] for j in range(k)) for r in rows) for i in range(k))
        leverage = tuple(sum(r[i] * projection[i][n] for i in range(k)) for n, r in enumerate(rows))
        return Design(origin, trend, weekdays, rows, projection, leverage)

    def row(self, d: date) -> tuple[float, ...]:
        return _row(self.origin, self.trend, self.weekdays, d)

    def slope(self, beta: Sequence[float]) -> float:
        return beta[1] if self.trend else 0.0

    def fit(self, ys: Sequence[float]) -> tuple[float, ...]:
        return tuple(sum(p * y for p, y in zip(prow, ys, strict=True)) for prow in self.projection)

    def fitted(self, beta: Sequence[float]) -> list[float]:
        return [sum(b * x for b, x in zip(beta, r, strict=True)) for r in self.rows]

    def resampling_residuals(self, ys: Sequence[float], beta: Sequence[float]) -> tuple[float, ...]:
        raw = [y - f for y, f in zip(ys, self.fitted(beta), strict=True)]
        adjusted = [r / math.sqrt(max(1e-9, 1.0 - h)) for r, h in zip(raw, self.leverage, strict=True)]
        mean = sum(adjusted) / len(adjusted)
        return tuple(a - mean for a in adjusted)


def _row(origin: date, trend: bool, weekdays: tuple[int, ...], d: date) -> tuple[float, ...]:
    days = (float((d - origin).days),) if trend else ()
    return (1.0, *days, *(1.0 if d.weekday() == w else 0.0 for w in weekdays))


def predict(beta: Sequence[float], row: Sequence[float]) -> float:
    return sum(b * x for b, x in zip(beta, row, strict=True))
