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

    def scores(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """Anomaly score per row: positive means anomalous (the negated decision function)."""
        if not rows:
            return []
        x = np.asarray(rows, dtype=np.float64)
        return [float(-s) for s in self.estimator.decision_function(x)]


def train_forest(rows: Sequence[Sequence[float]], n_estimators: int = 200, random_state: int = 0) -> Any:
    """Fit an IsolationForest on window-feature rows (assumed mostly normal)."""
    from sklearn.ensemble import IsolationForest

    if len(rows) < 50:
        raise ValueError(f"need at least 50 feature rows to train, got {len(rows)}")
    model = IsolationForest(n_estimators=n_estimators, contamination="auto", random_state=random_state)
    model.fit(np.asarray(rows, dtype=np.float64))
    return model
