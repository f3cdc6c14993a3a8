"""The IsolationForest's registry life cycle against a real MLflow tracking store (SQLite)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from loganalyzer.model.forest import calibrate, train_forest
from loganalyzer.model.registry import ChampionWatcher, register_forest

pytestmark = pytest.mark.integration

FEATURES = ("a", "b", "c")


def rows(n: int, seed: int, shift: float = 0.0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, len(FEATURES))) + shift).tolist()


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_no_model_means_skip_with_one_clear_line(tracking_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    watcher = ChampionWatcher(tracking_uri, FEATURES)
    with caplog.at_level(logging.INFO):
        assert watcher.refresh_now() is None
        assert watcher.refresh_now() is None
    lines = [r.message for r in caplog.records if "IsolationForest detector is skipped" in r.message]
    assert len(lines) == 1


def test_watcher_follows_the_champion_alias_without_restart(tracking_uri: str) -> None:
    train = rows(500, 1)
    estimator = train_forest(train)
    threshold = calibrate(estimator, train)
    v1 = register_forest(tracking_uri, estimator, FEATURES, train, metrics={"n": 500}, threshold=threshold)
    loaded: list[str] = []
    watcher = ChampionWatcher(tracking_uri, FEATURES, on_load=lambda m: loaded.append(m.version))
    model = watcher.refresh_now()
    assert model is not None and model.version == v1
    assert model.threshold == threshold
    assert loaded == [v1]  # the consumer freezes the GC here (cli._detection_stage)
    # calibrated: at most 0.5 % of the (normal) training windows score above it
    assert sum(s > threshold for s in model.scores(train)) <= 0.005 * len(train) + 1
    scored = watcher.scorer([[0.0, 0.0, 0.0]])
    assert scored is not None and scored[1] == v1 and scored[2] == threshold
    normal, outlier = model.scores([[0.0, 0.0, 0.0], [8.0, -8.0, 8.0]])
    assert outlier > 0 > normal  # positive = anomalous

    # A new version registered without promotion changes nothing...
    v2 = register_forest(tracking_uri, train_forest(rows(500, 2)), FEATURES, train, promote=False)
    assert watcher.refresh_now().version == v1  # type: ignore[union-attr]
    # ...moving the alias switches the running watcher to it.
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).set_registered_model_alias("log-anomaly-detector", "champion", v2)
    assert watcher.refresh_now().version == v2  # type: ignore[union-attr]
    assert v2 != v1
    assert loaded == [v1, v2]  # once per version, not per check


def test_a_model_trained_on_other_features_is_refused(tracking_uri: str) -> None:
    train = rows(200, 3)
    register_forest(tracking_uri, train_forest(train), ("x", "y", "z"), train)
    assert ChampionWatcher(tracking_uri, FEATURES).refresh_now() is None


def test_training_needs_enough_rows() -> None:
    with pytest.raises(ValueError, match="at least 50"):
        train_forest(rows(10, 0))


def test_per_service_profiles_travel_with_the_model_version(tracking_uri: str) -> None:
    import math

    from loganalyzer.model.profiles import fit_profiles, standardise

    features6 = tuple(f"f{i}" for i in range(6))
    rng = np.random.default_rng(4)
    by_service = {
        key: [(float(v), 1.0, 1 / v, 0.02, float(d), 60.0) for v, d in zip(vol, dur, strict=True)]
        for key, vol, dur in (
            ("default/a", rng.normal(500, 30, 200), rng.normal(40, 2, 200)),
            ("acme/b", rng.normal(80, 8, 200), rng.normal(900, 40, 200)),
        )
    }
    profiles = fit_profiles(by_service)
    train = [standardise(r, profiles[k]) for k, rs in by_service.items() for r in rs]
    estimator = train_forest(train)
    register_forest(
        tracking_uri, estimator, features6, train, threshold=calibrate(estimator, train), profiles=profiles
    )
    model = ChampionWatcher(tracking_uri, features6).refresh_now()
    assert model is not None and model.profiles == profiles
    normal, slow, unknown = model.scores(
        [by_service["default/a"][0], (500.0, 1.0, 0.002, 0.12, 400.0, 75.0), by_service["default/a"][0]],
        ["default/a", "default/a", "nobody/new"],
    )
    assert model.threshold is not None and slow > normal  # crossing it on real traffic: bench_detection
    assert math.isnan(unknown)
