"""Per-service profiles of the forest's input (pure logic; a real, small IsolationForest)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from loganalyzer.model.forest import BULK_ROWS, CompiledForest, ForestModel, train_forest
from loganalyzer.model.profiles import fit_profile, fit_profiles, shrunk, standardise, standardise_matrix


def windows(rng: random.Random, volume: float, duration: float, n: int = 300) -> list[tuple[float, ...]]:
    out = []
    for _ in range(n):
        logs = max(1.0, rng.gauss(volume, volume * 0.1))
        errors = float(round(logs * 0.01))
        out.append((logs, errors, errors / logs, 0.02, rng.gauss(duration, duration * 0.05), 60.0))
    return out


def test_a_services_normal_window_standardises_near_zero_and_its_incident_far_from_it() -> None:
    rng = random.Random(1)
    fast = fit_profile(windows(rng, 500, 40))
    slow = fit_profile(windows(rng, 500, 900))
    normal = standardise((500, 5, 0.01, 0.02, 40, 60), fast)
    assert all(abs(z) < 1.5 for z in normal)
    # 300 ms: an incident for the 40 ms service, a good day for the 900 ms one
    assert standardise((500, 5, 0.01, 0.02, 300, 60), fast)[4] > 20
    assert standardise((500, 5, 0.01, 0.02, 300, 60), slow)[4] < -5


def test_low_volume_rates_are_shrunk_towards_the_services_median() -> None:
    prior = (500.0, 5.0, 0.01, 0.02, 40.0, 60.0)
    night = shrunk((20, 3, 0.15, 0.0, 40, 60), prior)  # 3 errors of 20 logs
    day = shrunk((5000, 750, 0.15, 0.0, 40, 60), prior)  # 750 of 5,000: a real spike
    assert night[2] < 0.02 < 0.1 < day[2]


def test_a_service_the_model_never_saw_is_not_scored() -> None:
    rng = random.Random(2)
    by_service = {"default/a": windows(rng, 500, 40), "default/b": windows(rng, 50, 200)}
    profiles = fit_profiles(by_service)
    rows = [standardise(r, profiles[k]) for k, rs in by_service.items() for r in rs]
    model = ForestModel("1", train_forest(rows), ("f",) * 6, None, profiles)
    normal, incident, unknown = model.scores(
        [(500, 5, 0.01, 0.02, 40, 60), (500, 5, 0.01, 0.02, 300, 60), (500, 5, 0.01, 0.02, 40, 60)],
        ["default/a", "default/a", "default/zzz"],
    )
    assert incident > normal
    assert math.isnan(unknown)
    assert fit_profiles({"default/short": windows(rng, 10, 10, n=30)}) == {}  # under an hour of windows


def _fitted_forest(seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    return train_forest(rng.normal(size=(2_000, 6)).tolist(), random_state=seed)


def test_compiled_forest_scores_exactly_as_sklearn_decision_function() -> None:
    """The consumer scores with CompiledForest; the numbers must be sklearn's own."""
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        estimator = _fitted_forest(seed)
        compiled = CompiledForest.compile(estimator)
        assert compiled is not None
        thresholds = np.concatenate(
            [e.tree_.threshold[e.tree_.children_left >= 0] for e in estimator.estimators_]
        )
        on_split = rng.choice(thresholds, size=(40, 6))  # exactly on split points (<= goes left)
        for x in (
            rng.normal(size=(200, 6)),
            rng.normal(size=(50, 6)) * 1e6,  # far beyond the training data
            on_split,
            np.nextafter(on_split, np.inf),  # just right of them, before and after float32 rounding
            np.zeros((1, 6)),
        ):
            fast = compiled.anomaly_scores(x)
            assert fast is not None
            np.testing.assert_allclose(fast, -estimator.decision_function(x), rtol=0, atol=1e-12)


def test_forest_model_falls_back_to_sklearn_for_missing_values_and_feature_subsampling() -> None:
    estimator = _fitted_forest()
    compiled = CompiledForest.compile(estimator)
    assert compiled is not None
    x = np.array([[0.1, np.nan, 0.3, 0.0, 1.0, 2.0]])
    assert compiled.anomaly_scores(x) is None  # sklearn routes NaN itself
    model = ForestModel("1", estimator, tuple(f"f{i}" for i in range(6)))
    assert model.scores(x.tolist()) == pytest.approx([-estimator.decision_function(x)[0]], abs=1e-12)

    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(2)
    sub = IsolationForest(n_estimators=20, max_features=0.5, random_state=0).fit(rng.normal(size=(500, 6)))
    assert CompiledForest.compile(sub) is None
    x = rng.normal(size=(10, 6))
    sub_model = ForestModel("2", sub, tuple(f"f{i}" for i in range(6)))
    assert sub_model.scores(x.tolist()) == pytest.approx(list(-sub.decision_function(x)), abs=1e-12)


def test_standardise_matrix_gives_standardise_numbers_row_for_row() -> None:
    rng = random.Random(11)
    rows = windows(rng, 40.0, 90.0) + windows(rng, 2.0, 900.0, 50) + [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]
    profile = fit_profile(rows)
    matrix = standardise_matrix(np.asarray(rows), profile)
    assert matrix.tolist() == [list(standardise(r, profile)) for r in rows]


def test_a_bulk_evaluation_scores_and_standardises_as_the_row_by_row_path() -> None:
    """From BULK_ROWS rows on, ForestModel.evaluate standardises over arrays and lets sklearn
    score: the deviations are the row-by-row ones, the scores decision_function's."""
    rng = random.Random(5)
    by_service = {"t/fast": windows(rng, 500, 40), "t/slow": windows(rng, 80, 900)}
    profiles = fit_profiles(by_service)
    train = [standardise(r, profiles[k]) for k, rs in by_service.items() for r in rs]
    model = ForestModel("1", train_forest(train, n_estimators=20, random_state=0), ("f",) * 6, 0.0, profiles)
    n = BULK_ROWS + 10
    keys = [("t/fast", "t/slow", "t/unknown")[i % 3] for i in range(n)]
    rows = [
        by_service["t/fast"][i % 300] if k != "t/slow" else by_service["t/slow"][i % 300]
        for i, k in enumerate(keys)
    ]
    got = model.evaluate(rows, keys)
    want = [standardise(r, profiles[k]) if k in profiles else None for r, k in zip(rows, keys, strict=True)]
    assert got.deviations == want
    known = [d for d in want if d is not None]
    expected = -model.estimator.decision_function(np.asarray(known))
    scored = [s for s in got.scores if not math.isnan(s)]
    assert scored == pytest.approx(expected.tolist(), abs=0, rel=1e-12)
    assert sum(math.isnan(s) for s in got.scores) == keys.count("t/unknown")
