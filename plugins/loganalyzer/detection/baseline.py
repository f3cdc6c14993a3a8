"""What a service's minute normally looks like: seasonal slots with a recent-EWMA fallback.

Seasonal: one slot per hour of the week (168), each an EWMA of per-minute volume and errors for
that hour. A slot is trusted once it has seen two hours of minutes (so at least two different
days for an hour of the week). Until then, the recent baseline answers: an EWMA over roughly
the last 30 minutes, which follows slow daily changes. Anomalous minutes are not learned from
(the engine skips `update` while a volume or error episode is open).

Memory: two floats for recent, and 168×3 doubles (4 KiB) once the service has an hour of history.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import datetime
from typing import Any

RECENT_ALPHA = 2 / (30 + 1)
SEASONAL_ALPHA = 0.1
SEASONAL_TRUSTED = 120
SLOTS = 7 * 24


def slot_of(minute_start: datetime) -> int:
    return minute_start.weekday() * 24 + minute_start.hour


@dataclass(slots=True)
class Expected:
    volume: float  # logs per minute
    error_rate: float
    seasonal: bool


@dataclass(slots=True)
class Baseline:
    recent_volume: float = 0.0
    recent_errors: float = 0.0
    minutes: int = 0
    seasonal: array[float] | None = None  # [volume, errors, n] per slot

    def expected(self, minute_start: datetime) -> Expected:
        if self.seasonal is not None:
            i = slot_of(minute_start) * 3
            if self.seasonal[i + 2] >= SEASONAL_TRUSTED:
                vol = self.seasonal[i]
                return Expected(vol, self.seasonal[i + 1] / vol if vol > 0 else 0.0, True)
        vol = self.recent_volume
        return Expected(vol, self.recent_errors / vol if vol > 0 else 0.0, False)

    def update(self, minute_start: datetime, total: int, errors: int) -> None:
        if self.minutes == 0:
            self.recent_volume, self.recent_errors = float(total), float(errors)
        else:
            self.recent_volume += RECENT_ALPHA * (total - self.recent_volume)
            self.recent_errors += RECENT_ALPHA * (errors - self.recent_errors)
        self.minutes += 1
        if self.minutes < 60:
            return
        if self.seasonal is None:
            self.seasonal = array("d", [0.0]) * (SLOTS * 3)
        i = slot_of(minute_start) * 3
        s = self.seasonal
        if s[i + 2] == 0:
            s[i], s[i + 1] = float(total), float(errors)
        else:
            s[i] += SEASONAL_ALPHA * (total - s[i])
            s[i + 1] += SEASONAL_ALPHA * (errors - s[i + 1])
        s[i + 2] += 1

    def to_state(self) -> list[Any]:
        seasonal = None if self.seasonal is None else self.seasonal.tolist()
        return [self.recent_volume, self.recent_errors, self.minutes, seasonal]

    @classmethod
    def from_state(cls, state: list[Any]) -> Baseline:
        vol, err, minutes, seasonal = state
        return cls(float(vol), float(err), int(minutes), None if seasonal is None else array("d", seasonal))
