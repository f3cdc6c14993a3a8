"""What a service's minute normally looks like: seasonal slots with a recent-EWMA fallback.

Three estimates of per-minute volume and errors, the most specific trusted one answers:

1. hour of the week (168 slots): weekly patterns (quiet weekends); trusted after two weeks;
2. hour of the day (24 slots): daily patterns (night-time lows, a nightly batch); trusted
   after two days, so daily seasonality is modelled long before the weekly slots fill;
3. recent: an EWMA over about the last `recent_minutes` (30) minutes, the cold-start
   fallback, which follows slow changes but lags sharp ones. Its error rate is capped at
   `longterm_rate_factor` (1.25) times that of a long-term EWMA kept beside it (half-life
   `longterm_half_life_minutes`, 6 h; its first minutes an exact mean): the minutes of a slow
   error ramp learned before its evidence blocks learning (learning.py) lifted the 30-minute
   rate from 0.5 % to 3-4 %, and the ramp then sat near the 3x threshold; the long-term rate
   barely moves in that time. Volume is not capped (a deploy's new level is followed as fast as
   before). When a lasting shift is accepted as the new normal (`relearn_after_minutes`,
   learning.py), the long-term EWMA takes the recent level, so the cap never keeps a permanent
   change alarming. Once a seasonal slot answers (after two days), it is the long-term
   reference and the cap does not apply. The error evidence that blocks learning is the CUSUM
   against the uncapped rate (`Expected.uncapped_error_rate`, learning.py): a quiet service's
   few errors, improbable only against the cap, do not keep it from learning its volume.

A slot's mean is exact over its first visit (alpha 1/n) and then exponentially weighted by
visit: each new day (or week) weighs `seasonal_alpha` in the mean, so one odd day does not
define the hour. The engine decides which minutes are learned (not the anomalous ones; see
learning.py), this module only keeps the numbers.

Time is given as minutes since the epoch (see windows.py); slots are UTC hours.

Memory: five floats and an int until `seasonal_after_minutes` of history, then two arrays of
(168 + 24) × 3 doubles (4.6 KiB), whatever the traffic.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TypedDict

from loganalyzer.detection.config import BaselineSettings

WEEK_SLOTS = 7 * 24
DAY_SLOTS = 24
#: 1970-01-01 (minute 0) was a Thursday; Monday = 0 as in datetime.weekday()
_EPOCH_WEEKDAY = 3


def week_slot(minute: int) -> int:
    """Hour of the week (Monday 00:00 UTC = 0) of a minute since the epoch."""
    return ((minute // 1440 + _EPOCH_WEEKDAY) % 7) * 24 + (minute // 60) % 24


def day_slot(minute: int) -> int:
    return (minute // 60) % 24


class BaselineState(TypedDict):
    """A baseline in a detector checkpoint: the slot tables flattened, [volume, errors, n] each."""

    recent_volume: float
    recent_errors: float
    #: the long-term EWMA (checkpoint version 6; a version-5 checkpoint starts it from recent)
    long_volume: float
    long_errors: float
    minutes: int
    weekly: list[float] | None
    daily: list[float] | None


@dataclass(slots=True)
class Expected:
    volume: float  # logs per minute
    error_rate: float
    #: which estimate answered: "week", "day" or "recent"
    source: str = "recent"
    #: the recent EWMA's error rate when the long-term cap lowered error_rate, else None
    uncapped_error_rate: float | None = None

    @property
    def seasonal(self) -> bool:
        return self.source != "recent"


@dataclass(slots=True)
class Baseline:
    recent_volume: float = 0.0
    recent_errors: float = 0.0
    #: minutes learned (not minutes seen: skipped minutes do not count)
    minutes: int = 0
    #: [volume, errors, n] per hour of the week, allocated after seasonal_after_minutes
    weekly: array[float] | None = None
    #: [volume, errors, n] per hour of the day
    daily: array[float] | None = None
    #: the long-term EWMA of volume and errors (half-life settings.longterm_half_life_minutes)
    long_volume: float = 0.0
    long_errors: float = 0.0

    def expected(self, minute: int, settings: BaselineSettings) -> Expected:
        trusted = settings.seasonal_trusted_minutes
        if self.weekly is not None and self.daily is not None:
            i = week_slot(minute) * 3
            s = self.weekly
            if s[i + 2] >= trusted:
                return _expected(s[i], s[i + 1], "week")
            i = day_slot(minute) * 3
            s = self.daily
            if s[i + 2] >= trusted:
                return _expected(s[i], s[i + 1], "day")
        exp = _expected(self.recent_volume, self.recent_errors, "recent")
        if self.long_volume > 0:
            cap = settings.longterm_rate_factor * self.long_errors / self.long_volume
            if exp.error_rate > cap:
                exp.uncapped_error_rate, exp.error_rate = exp.error_rate, cap
        return exp

    def update(
        self, minute: int, total: int, errors: int, settings: BaselineSettings, relearn: bool = False
    ) -> None:
        """Learn one closed minute as normal. `relearn`: the minute is learned because a lasting
        shift is accepted as the new normal (learning.py); the long-term EWMA takes the recent
        level, so the cap on the recent error rate does not keep the shift alarming."""
        if self.minutes == 0:
            self.recent_volume, self.recent_errors = float(total), float(errors)
            self.long_volume, self.long_errors = float(total), float(errors)
        else:
            alpha = 2.0 / (settings.recent_minutes + 1)
            self.recent_volume += alpha * (total - self.recent_volume)
            self.recent_errors += alpha * (errors - self.recent_errors)
            if relearn:
                self.long_volume, self.long_errors = self.recent_volume, self.recent_errors
            else:
                # an exact mean over the first minutes, then a half-life of longterm_half_life_minutes
                slow = max(1.0 / (self.minutes + 1), 1.0 - 0.5 ** (1.0 / settings.longterm_half_life_minutes))
                self.long_volume += slow * (total - self.long_volume)
                self.long_errors += slow * (errors - self.long_errors)
        self.minutes += 1
        if self.minutes <= settings.seasonal_after_minutes:
            return
        if self.weekly is None or self.daily is None:
            self.weekly = array("d", [0.0]) * (WEEK_SLOTS * 3)
            self.daily = array("d", [0.0]) * (DAY_SLOTS * 3)
        floor = settings.seasonal_alpha / 60.0  # per minute: a whole visit (hour) weighs alpha
        _learn(self.weekly, week_slot(minute) * 3, total, errors, floor)
        _learn(self.daily, day_slot(minute) * 3, total, errors, floor)

    def to_state(self) -> BaselineState:
        """The baseline as named JSON-compatible fields (a detector checkpoint's part)."""
        return {
            "recent_volume": self.recent_volume,
            "recent_errors": self.recent_errors,
            "long_volume": self.long_volume,
            "long_errors": self.long_errors,
            "minutes": self.minutes,
            "weekly": None if self.weekly is None else self.weekly.tolist(),
            "daily": None if self.daily is None else self.daily.tolist(),
        }

    @classmethod
    def from_state(cls, state: BaselineState) -> Baseline:
        weekly, daily = state["weekly"], state["daily"]
        if weekly is not None and len(weekly) != WEEK_SLOTS * 3:
            raise ValueError(f"baseline: {len(weekly)} weekly values, expected {WEEK_SLOTS * 3}")
        if daily is not None and len(daily) != DAY_SLOTS * 3:
            raise ValueError(f"baseline: {len(daily)} daily values, expected {DAY_SLOTS * 3}")
        b = cls(float(state["recent_volume"]), float(state["recent_errors"]), int(state["minutes"]))
        b.long_volume, b.long_errors = float(state["long_volume"]), float(state["long_errors"])
        if weekly is not None:
            b.weekly = array("d", weekly)
            b.daily = array("d", daily) if daily is not None else array("d", [0.0]) * (DAY_SLOTS * 3)
        return b


def _expected(volume: float, errors: float, source: str) -> Expected:
    return Expected(volume, errors / volume if volume > 0 else 0.0, source)


def _learn(s: array[float], i: int, total: int, errors: int, floor: float) -> None:
    n = s[i + 2] + 1
    alpha = max(1.0 / n, floor)
    s[i] += alpha * (total - s[i])
    s[i + 1] += alpha * (errors - s[i + 1])
    s[i + 2] = n
