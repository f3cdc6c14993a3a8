"""Per-service profiles of the forest's input (pure logic; a real, small IsolationForest)."""

from __future__ import annotations

import math
import random

from loganalyzer.model.forest import ForestModel, train_forest
from loganalyzer.model.profiles import fit_profile, fit_profiles, shrunk, standardise


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
