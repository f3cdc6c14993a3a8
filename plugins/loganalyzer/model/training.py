"""Training data for the forest, from `logs`: the same minute Counts (loganalyzer.db.minute_counts)
and window features the consumer computes (loganalyzer.detection.features), so training and
serving cannot drift.

`fit_candidate` is the one way a model is trained: `loganalyzer model train` and the nightly
retraining (loganalyzer.batch.retrain) both call it on the windows of `windows_by_service`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loganalyzer.detection.features import Counts, window_features
from loganalyzer.events import service_key
from loganalyzer.model.forest import CALIBRATION_QUANTILE, calibrate, train_forest
from loganalyzer.model.profiles import Profile, fit_profiles, standardise

#: one window: (minute since the epoch of its LAST bucket, its six features)
Window = tuple[int, tuple[float, ...]]


def windows_by_service(
    per_service: Mapping[tuple[str, str], Mapping[int, Counts]], window: int = 5
) -> dict[str, list[Window]]:
    """Every complete window of every service (missing minutes are empty minutes), by
    "tenant/service" key, each with the minute it ends in (labels and time splits need it)."""
    out: dict[str, list[Window]] = {}
    empty = Counts()
    for (tenant, service), minutes in per_service.items():
        if not minutes:
            continue
        first, last = min(minutes), max(minutes)
        out[service_key(tenant, service)] = [
            (m, window_features([minutes.get(k) or empty for k in range(m - window + 1, m + 1)]))
            for m in range(first + window - 1, last + 1)
        ]
    return out


def feature_rows_by_service(
    per_service: Mapping[tuple[str, str], Mapping[int, Counts]], window: int = 5
) -> dict[str, list[tuple[float, ...]]]:
    """`windows_by_service` without the minutes (the model's per-service profiles are fitted on them)."""
    return {k: [row for _, row in ws] for k, ws in windows_by_service(per_service, window).items()}


def feature_rows(
    per_service: Mapping[tuple[str, str], Mapping[int, Counts]], window: int = 5
) -> list[tuple[float, ...]]:
    """Every complete window of every service, all services together."""
    return [row for rows in feature_rows_by_service(per_service, window).values() for row in rows]


@dataclass(frozen=True)
class Candidate:
    """A freshly trained model and what it was trained on (not registered yet)."""

    estimator: Any  # sklearn.ensemble.IsolationForest
    threshold: float
    profiles: dict[str, Profile]
    #: standardised rows the forest was fitted on (input example and signature come from them)
    rows: list[tuple[float, ...]]
    #: windows available before sampling (all services with a profile)
    windows: int


class NotEnoughData(ValueError):
    """Too few windows to train on; the message says how many and where from."""


def fit_candidate(
    by_service: Mapping[str, Sequence[tuple[float, ...]]],
    *,
    n_estimators: int = 200,
    random_state: int = 0,
    max_rows: int = 0,
    calibration_quantile: float = CALIBRATION_QUANTILE,
) -> Candidate:
    """Fit profiles on every window, then the forest and its threshold on the standardised windows.

    `max_rows` > 0 fits the forest on a seeded random sample of that many windows: each tree sees
    only 256 of them anyway, so a month of 50 services (2 million windows) need not be scored in
    full to place the threshold.
    """
    profiles = fit_profiles(by_service)
    keyed = [(k, r) for k, rs in by_service.items() if k in profiles for r in rs]
    total = len(keyed)
    if max_rows and total > max_rows:
        keyed = random.Random(random_state).sample(keyed, max_rows)
    rows = [standardise(r, profiles[k]) for k, r in keyed]
    if len(rows) < 50:
        raise NotEnoughData(f"only {len(rows)} feature windows of services with an hour of data: need 50")
    estimator = train_forest(rows, n_estimators=n_estimators, random_state=random_state)
    return Candidate(estimator, calibrate(estimator, rows, calibration_quantile), profiles, rows, total)
