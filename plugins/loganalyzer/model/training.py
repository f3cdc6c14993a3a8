"""Training data for the forest, from `logs`: the same minute Counts (loganalyzer.db.minute_counts)
and window features the consumer computes (loganalyzer.detection.features), so training and
serving cannot drift.

`fit_candidate` is the one way a model is trained: `loganalyzer model train` and the nightly
retraining (loganalyzer.batch.retrain) both call it on the windows of `windows_by_service`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loganalyzer.db.minute_counts import MinuteArrays
from loganalyzer.detection.features import Counts, window_feature_matrix, window_features
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
class ServiceWindows:
    """Every complete window of one service as arrays: the minute each ends in, its features."""

    minutes: np.ndarray  # int64
    features: np.ndarray  # (windows, 6) float64, FEATURE_NAMES order


def window_arrays(per_service: Mapping[str, MinuteArrays], window: int = 5) -> dict[str, ServiceWindows]:
    """`windows_by_service` over columns (training over weeks): the same windows, the same values
    (`window_feature_matrix` is bit-identical to `window_features`, tested)."""
    out: dict[str, ServiceWindows] = {}
    for key, m in per_service.items():
        if not len(m.minutes):
            continue
        first, last = int(m.minutes[0]), int(m.minutes[-1])
        dense = np.zeros((last - first + 1, 5), dtype=np.int64)
        dense_d = np.zeros(last - first + 1, dtype=np.float64)
        dense[m.minutes - first] = m.counts
        dense_d[m.minutes - first] = m.duration_sum
        features = window_feature_matrix(dense, dense_d, window)
        ends = np.arange(first + window - 1, first + window - 1 + len(features), dtype=np.int64)
        out[key] = ServiceWindows(ends, features)
    return out


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
    by_service: Mapping[str, Sequence[tuple[float, ...]] | np.ndarray],
    *,
    n_estimators: int = 200,
    random_state: int = 0,
    max_rows: int = 0,
    calibration_quantile: float = CALIBRATION_QUANTILE,
) -> Candidate:
    """Fit profiles on every window, then the forest and its threshold on the standardised windows.

    `max_rows` > 0 fits the forest on a seeded random sample of that many windows: each tree sees
    only 256 of them anyway, so a month of 50 services (2 million windows) need not be scored in
    full to place the threshold. The sampled windows are standardised by `standardise`, the
    consumer's own serving transform.
    """
    arrays = {k: np.asarray(rs, dtype=np.float64).reshape(-1, 6) for k, rs in by_service.items()}
    profiles = fit_profiles(arrays)
    keys = [k for k in arrays if k in profiles]
    sizes = np.asarray([len(arrays[k]) for k in keys], dtype=np.int64)
    total = int(sizes.sum())
    if max_rows and total > max_rows:
        picked = np.sort(np.random.default_rng(random_state).choice(total, size=max_rows, replace=False))
    else:
        picked = np.arange(total)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else np.zeros(0, dtype=np.int64)
    owner = np.searchsorted(np.cumsum(sizes), picked, side="right")
    rows = [
        standardise(tuple(arrays[keys[o]][i - starts[o]].tolist()), profiles[keys[o]])
        for o, i in zip(owner.tolist(), picked.tolist(), strict=True)
    ]
    if len(rows) < 50:
        raise NotEnoughData(f"only {len(rows)} feature windows of services with an hour of data: need 50")
    estimator = train_forest(rows, n_estimators=n_estimators, random_state=random_state)
    return Candidate(estimator, calibrate(estimator, rows, calibration_quantile), profiles, rows, total)
