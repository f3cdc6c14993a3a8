"""A trained IsolationForest together with what it expects as input (pure; no MLflow)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


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

    def scores(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Anomaly score per row: positive means anomalous (the negated decision function)."""
        if not rows:
            return []
        x = np.asarray(rows, dtype=np.float64)
        return [float(-s) for s in self.estimator.decision_function(x)]


#: the share of training windows allowed above the threshold (training data is mostly normal)
CALIBRATION_QUANTILE = 0.995
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
