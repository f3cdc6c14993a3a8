"""A trained IsolationForest together with what it expects as input (pure; no MLflow)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from loganalyzer.model.profiles import Profile, standardise


class ForestScores(NamedTuple):
    """What the engine gets for a list of windows (see ForestModel.evaluate)."""

    #: anomaly score per window (positive: anomalous); NaN for a service the model does not know
    scores: list[float]
    version: str
    #: calibrated threshold (None: the detection config's forest_score applies)
    threshold: float | None
    #: per window, its features in robust standard deviations from the service's normal (the
    #: forest's own input); None without profiles or for an unknown service. The engine uses it
    #: to say WHY a window is anomalous, and how far out it is: a forest's score saturates once
    #: a point is beyond everything it was trained on, so the score alone cannot tell "a bit
    #: unusual" from "20 deviations out".
    deviations: list[tuple[float, ...] | None]


@dataclass(frozen=True)
class ForestModel:
    """The estimator, its registry version and the feature names it was trained on.

    Why the names travel with the model: the consumer refuses a model trained on other features
    (train/serve skew) instead of scoring nonsense.
    """

    version: str
    estimator: Any  # sklearn.ensemble.IsolationForest
    feature_names: tuple[str, ...]
    #: score above which a window is anomalous, calibrated on the training windows (None: the
    #: detection config's forest_score applies)
    threshold: float | None = None
    #: per-service input profiles ("tenant/service" -> Profile); empty: raw features (older models)
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    def scores(self, rows: Sequence[Sequence[float]], keys: Sequence[str] | None = None) -> list[float]:
        """Anomaly score per row: positive means anomalous (the negated decision function).

        With profiles, `keys` names each row's service; a service without a profile scores NaN
        (not scored: the model does not know its normal).
        """
        return self.evaluate(rows, keys).scores

    def evaluate(self, rows: Sequence[Sequence[float]], keys: Sequence[str] | None = None) -> ForestScores:
        """Scores and standardised features of every row, in one pass."""
        deviations: list[tuple[float, ...] | None] = [None] * len(rows)
        if not rows:
            return ForestScores([], self.version, self.threshold, deviations)
        if not self.profiles:
            x = np.asarray(rows, dtype=np.float64)
            scores = [float(-s) for s in self.estimator.decision_function(x)]
            return ForestScores(scores, self.version, self.threshold, deviations)
        if keys is None:
            raise ValueError("this model scores per service: pass the rows' service keys")
        known = [i for i, k in enumerate(keys) if k in self.profiles]
        out = [math.nan] * len(rows)
        if known:
            for i in known:
                deviations[i] = standardise(rows[i], self.profiles[keys[i]])
            x = np.asarray([deviations[i] for i in known], dtype=np.float64)
            for i, s in zip(known, self.estimator.decision_function(x), strict=True):
                out[i] = float(-s)
        return ForestScores(out, self.version, self.threshold, deviations)


#: the share of training windows allowed above the threshold (training data is mostly normal)
CALIBRATION_QUANTILE = 0.999
CALIBRATION_MARGIN = 0.0


def calibrate(estimator: Any, rows: Sequence[Sequence[float]]) -> float:
    """A score threshold just above almost every training window's score.

    Why: IsolationForest's own cut (score 0) flags a fixed share of any data; the windows of a
    normal day tell where normal ends for THIS traffic.
    """
    scores = sorted(float(-s) for s in estimator.decision_function(np.asarray(rows, dtype=np.float64)))
    q = scores[min(len(scores) - 1, int(CALIBRATION_QUANTILE * len(scores)))]
    return max(0.0, q) + CALIBRATION_MARGIN


def train_forest(rows: Sequence[Sequence[float]], n_estimators: int = 200, random_state: int = 0) -> Any:
    """Fit an IsolationForest on window-feature rows (assumed mostly normal)."""
    from sklearn.ensemble import IsolationForest

    if len(rows) < 50:
        raise ValueError(f"need at least 50 feature rows to train, got {len(rows)}")
    model = IsolationForest(n_estimators=n_estimators, contamination="auto", random_state=random_state)
    model.fit(np.asarray(rows, dtype=np.float64))
    return model
