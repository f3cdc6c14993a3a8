"""Per-service input profiles of the forest: the six features made comparable across services.

Why: one IsolationForest serves every service, but "normal" differs by service (a 40 ms service
at 300 ms is an incident, a 900 ms service at 300 ms is a good day), and a window's rates are
noisy when its volume is low (3 errors of 20 logs at night is not a 15 % error rate). Measured
on two labelled days (bench/bench_detection.py), the raw features gave the forest F1 ~0.55-0.75.

The transform, fitted per (tenant, service) on the training windows and shipped inside the
model (so training and serving cannot differ):
1. shrink each window's rates and means towards the service's median by volume:
   (value × n + k × median) / (n + k), with n the window's log count and k = SHRINK_LOGS;
   counts go to log1p (volume is multiplicative);
2. robust z-score: (x − median) / max(IQR / 1.349, floor), per feature.

A service the model never saw is not scored (no profile, no honest notion of its normal).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: pseudo-logs of the service's median mixed into each window (variance of rates at low volume)
SHRINK_LOGS = 1000.0
#: smallest scale per feature after step 1 (a feature that never moves must not make a tiny
#: change look infinite): log count, log errors, error rate, warn rate, ms, characters.
#: The counts' floor of 1.0 (in log space: ×2.7) leaves volume to the seasonal volume rules: a
#: weekday after a weekend training day is not an anomaly of the window's shape (measured:
#: forest precision 0.82 -> 0.88 on a Sunday-trained model scoring a Monday).
_FLOORS = (1.0, 1.0, 0.002, 0.002, 1.0, 0.5)
_RELATIVE_FLOOR = 0.02


@dataclass(frozen=True)
class Profile:
    prior: tuple[float, ...]  # medians of the raw features (shrinkage targets)
    center: tuple[float, ...]
    scale: tuple[float, ...]

    def to_doc(self) -> dict[str, list[float]]:
        return {"prior": list(self.prior), "center": list(self.center), "scale": list(self.scale)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Sequence[float]]) -> Profile:
        return cls(tuple(doc["prior"]), tuple(doc["center"]), tuple(doc["scale"]))


def shrunk(row: Sequence[float], prior: Sequence[float], k: float = SHRINK_LOGS) -> tuple[float, ...]:
    n = row[0]
    w = n / (n + k)
    return (
        math.log1p(n),
        math.log1p(row[1]),
        *(w * row[i] + (1 - w) * prior[i] for i in range(2, 6)),
    )


def standardise(row: Sequence[float], profile: Profile) -> tuple[float, ...]:
    s = shrunk(row, profile.prior)
    return tuple((x - c) / d for x, c, d in zip(s, profile.center, profile.scale, strict=True))


def shrunk_matrix(raw: np.ndarray, prior: Sequence[float], k: float = SHRINK_LOGS) -> np.ndarray:
    """`shrunk` of every row at once (fitting only: serving applies `standardise` row by row, with
    the fitted numbers)."""
    n = raw[:, 0]
    w = (n / (n + k))[:, None]
    out = np.empty_like(raw)
    out[:, 0] = np.log1p(n)
    out[:, 1] = np.log1p(raw[:, 1])
    out[:, 2:6] = w * raw[:, 2:6] + (1 - w) * np.asarray(prior[2:6])
    return out


def standardise_matrix(raw: np.ndarray, profile: Profile) -> np.ndarray:
    """`standardise` of many rows of one service at once (evaluating a day of windows): the same
    operations in the same order, so the same numbers (tested). log1p is the math module's:
    numpy's differs from it in the last bit."""
    raw = np.asarray(raw, dtype=np.float64)
    n = raw[:, 0]
    w = (n / (n + SHRINK_LOGS))[:, None]
    s = np.empty_like(raw)
    s[:, 0] = [math.log1p(v) for v in n.tolist()]
    s[:, 1] = [math.log1p(v) for v in raw[:, 1].tolist()]
    s[:, 2:6] = w * raw[:, 2:6] + (1 - w) * np.asarray(profile.prior[2:6])
    out: np.ndarray = (s - np.asarray(profile.center)) / np.asarray(profile.scale)
    return out


def fit_profile(rows: Sequence[Sequence[float]] | np.ndarray) -> Profile:
    raw = np.asarray(rows, dtype=np.float64)
    prior = tuple(float(x) for x in np.median(raw, axis=0))
    s = shrunk_matrix(raw, prior)
    center = np.median(s, axis=0)
    q1, q3 = np.percentile(s, 25, axis=0), np.percentile(s, 75, axis=0)
    floor = np.maximum(np.asarray(_FLOORS), _RELATIVE_FLOOR * np.abs(center))
    scale = np.maximum((q3 - q1) / 1.349, floor)
    return Profile(prior, tuple(float(x) for x in center), tuple(float(x) for x in scale))


def fit_profiles(
    rows_by_service: Mapping[str, Sequence[Sequence[float]] | np.ndarray], min_rows: int = 60
) -> dict[str, Profile]:
    """A profile per service with at least `min_rows` windows (an hour): fewer say too little."""
    return {key: fit_profile(rows) for key, rows in rows_by_service.items() if len(rows) >= min_rows}
