"""A trained IsolationForest together with what it expects as input (pure; no MLflow)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from loganalyzer.model.profiles import Profile, standardise, standardise_matrix

#: rows scored at once by the compiled forest: its arrays are rows x trees (4096 x 200: ~6 MB each)
SCORE_CHUNK = 4096
#: from this many rows on, sklearn's own decision_function scores (retraining's evaluation and
#: calibration): its fixed cost per call is amortised, and walking each tree in compiled code
#: beat the compiled walk 2.0 vs 6.2-7.1 s on 97,000 rows x 200 trees (same numbers to 1e-15)
BULK_ROWS = 10_000


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


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n
    points, the normaliser of isolation depths (Liu et al. 2008; the formula sklearn uses)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class CompiledForest:
    """A fitted sklearn IsolationForest as flat node arrays, scored with a few numpy operations.

    Why: `decision_function` costs ~19 ms per call however few rows it gets (input validation,
    joblib, one `tree.apply` per tree; measured with 200 trees), and the consumer calls it at
    every closed minute of every partition it owns: at 50,000 logs/s of replayed traffic that was
    a fifth of a core. Walking all trees at once for all rows is a loop over the trees' depth
    (≤ 8 with 256 samples per tree) on (rows x trees) arrays: well under a millisecond.

    The arithmetic is sklearn's: X is rounded to float32 as its trees compare it, a leaf is worth
    its depth plus c(its training samples), and the score is 2^(-mean / c(max_samples)). Tests
    hold it to `decision_function` on random and extreme inputs. Rows with NaN (missing-value
    routing) and models that subsample features are left to sklearn (`compile` returns None).
    """

    def __init__(self, estimator: Any) -> None:
        trees = [e.tree_ for e in estimator.estimators_]
        sizes = [t.node_count for t in trees]
        starts = np.cumsum([0, *sizes[:-1]])
        self.roots = starts.astype(np.intp)
        left = np.concatenate([t.children_left for t in trees]).astype(np.intp)
        right = np.concatenate([t.children_right for t in trees]).astype(np.intp)
        offsets = np.repeat(starts, sizes).astype(np.intp)
        leaf = left < 0
        index = np.arange(len(left), dtype=np.intp)
        # A leaf points at itself, so walking past it is harmless and every path takes max_depth steps.
        self.left = np.where(leaf, index, left + offsets)
        self.right = np.where(leaf, index, right + offsets)
        self.feature = np.where(leaf, 0, np.concatenate([t.feature for t in trees])).astype(np.intp)
        self.threshold = np.concatenate([t.threshold for t in trees])
        depths = np.concatenate([t.compute_node_depths() for t in trees]).astype(np.float64)
        samples = np.concatenate([t.n_node_samples for t in trees])
        self.leaf_value = depths + average_path_length(samples) - 1.0
        self.steps = max(int(t.max_depth) for t in trees)
        self.denominator = len(trees) * float(average_path_length(np.array([estimator.max_samples_]))[0])
        self.offset = float(estimator.offset_)

    @classmethod
    def compile(cls, estimator: Any) -> CompiledForest | None:
        """The compiled form, or None for a model this class does not reproduce exactly."""
        n_features = getattr(estimator, "n_features_in_", None)
        if getattr(estimator, "_max_features", n_features) != n_features or not hasattr(estimator, "offset_"):
            return None
        return cls(estimator)

    def anomaly_scores(self, x: np.ndarray) -> np.ndarray | None:
        """-decision_function(x) (positive: anomalous); None when a row holds a NaN."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        if np.isnan(x).any():
            return None
        rows = np.arange(len(x), dtype=np.intp)[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(self.steps):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        mean = self.leaf_value[node].sum(axis=1)
        scores = 2.0 ** (-(mean / self.denominator)) if self.denominator else np.ones(len(x))
        return scores + self.offset  # -(score_samples - offset_), score_samples = -scores


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
    _compiled: CompiledForest | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", CompiledForest.compile(self.estimator))

    def _anomaly_scores(self, x: np.ndarray) -> list[float]:
        """-decision_function(x), compiled when possible (same numbers; 0.47 vs 19 ms per call)."""
        if self._compiled is None or len(x) >= BULK_ROWS:
            return [float(-s) for s in self.estimator.decision_function(x)]
        parts = []
        for i in range(0, len(x), SCORE_CHUNK):  # bounds the (rows x trees) arrays of a big batch
            fast = self._compiled.anomaly_scores(x[i : i + SCORE_CHUNK])
            if fast is None:
                return [float(-s) for s in self.estimator.decision_function(x)]
            parts.append(fast)
        return np.concatenate(parts).tolist()  # type: ignore[no-any-return]

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
            scores = self._anomaly_scores(np.asarray(rows, dtype=np.float64))
            return ForestScores(scores, self.version, self.threshold, deviations)
        if keys is None:
            raise ValueError("this model scores per service: pass the rows' service keys")
        known = [i for i, k in enumerate(keys) if k in self.profiles]
        out = [math.nan] * len(rows)
        if len(known) >= BULK_ROWS:
            x = self._standardised(rows, keys, known)
            for i, dev in zip(known, x.tolist(), strict=True):
                deviations[i] = tuple(dev)
        elif known:
            for i in known:
                deviations[i] = standardise(rows[i], self.profiles[keys[i]])
            x = np.asarray([deviations[i] for i in known], dtype=np.float64)
        if known:
            for i, s in zip(known, self._anomaly_scores(x), strict=True):
                out[i] = s
        return ForestScores(out, self.version, self.threshold, deviations)

    def _standardised(
        self, rows: Sequence[Sequence[float]], keys: Sequence[str], known: list[int]
    ) -> np.ndarray:
        """`standardise` of the `known` rows, one service at a time over arrays (a day of windows)."""
        raw = np.asarray([rows[i] for i in known], dtype=np.float64)
        by_key: dict[str, list[int]] = {}
        for j, i in enumerate(known):
            by_key.setdefault(keys[i], []).append(j)
        x = np.empty_like(raw)
        for key, js in by_key.items():
            x[js] = standardise_matrix(raw[js], self.profiles[key])
        return x


#: the share of training windows allowed above the threshold (training data is mostly normal)
CALIBRATION_QUANTILE = 0.999
CALIBRATION_MARGIN = 0.0


def calibrate(
    estimator: Any, rows: Sequence[Sequence[float]], quantile: float = CALIBRATION_QUANTILE
) -> float:
    """A score threshold just above almost every training window's score.

    Why: IsolationForest's own cut (score 0) flags a fixed share of any data; the windows of a
    normal day tell where normal ends for THIS traffic.
    """
    x = np.asarray(rows, dtype=np.float64)
    # The compiled walk gives decision_function's numbers (tests hold it to them); from BULK_ROWS
    # rows on sklearn's own walk is faster. Chunks bound the compiled (rows x trees) arrays.
    compiled = CompiledForest.compile(estimator) if len(x) < BULK_ROWS else None
    parts: list[np.ndarray] | None = [] if compiled is not None else None
    if compiled is not None and parts is not None:
        for i in range(0, len(x), SCORE_CHUNK):
            chunk = compiled.anomaly_scores(x[i : i + SCORE_CHUNK])
            if chunk is None:  # a NaN: leave it all to sklearn
                parts = None
                break
            parts.append(chunk)
    raw = np.concatenate(parts) if parts else -estimator.decision_function(x)
    scores = sorted(float(s) for s in raw)
    q = scores[min(len(scores) - 1, int(quantile * len(scores)))]
    return max(0.0, q) + CALIBRATION_MARGIN


def train_forest(rows: Sequence[Sequence[float]], n_estimators: int = 200, random_state: int = 0) -> Any:
    """Fit an IsolationForest on window-feature rows (assumed mostly normal)."""
    from sklearn.ensemble import IsolationForest

    if len(rows) < 50:
        raise ValueError(f"need at least 50 feature rows to train, got {len(rows)}")
    model = IsolationForest(n_estimators=n_estimators, contamination="auto", random_state=random_state)
    model.fit(np.asarray(rows, dtype=np.float64))
    return model
