"""Forecasts (trend + bootstrap interval, calibrated on simulated histories) and what-ifs."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from loganalyzer.costs.engine import money_str, price
from loganalyzer.costs.forecast import (
    ForecastError,
    WhatIfError,
    effective_multiplier,
    forecast_month,
    scale_usage,
    scale_usage_by_service,
    what_if,
)
from loganalyzer.costs.usage import Usage, parse_usage

NOV = date(2026, 11, 1)


def day(i: int, requests: float, storage: float = 100.0, **extra: Any) -> tuple[date, Usage]:
    d = NOV + timedelta(days=i)
    doc = {
        "as_of": d.isoformat(),
        "lambda": {"requests": requests, "duration_ms": 120, "memory_mb": 1536},
        "s3": {"storage_gb": storage, "put_requests": requests / 10, "get_requests": requests / 2},
        "data_transfer_out_gb": requests / 50_000,
        **extra,
    }
    return d, parse_usage(doc)


def test_noiseless_linear_history_extrapolates_exactly_with_a_zero_width_interval() -> None:
    # requests = 100,000 + 1,000 t over November (t = 0..29); December is t = 30..60
    history = [day(i, 100_000 + 1_000 * i, storage=50 + 2 * i) for i in range(30)]
    f = forecast_month(history, replicates=50)
    assert (f.month, f.days) == (date(2026, 12, 1), 31)
    lam = f.point_usage.lambda_
    s3 = f.point_usage.s3
    assert lam is not None and s3 is not None
    assert lam.requests == Decimal(31 * 100_000 + 1_000 * sum(range(30, 61)))  # 4,495,000
    assert s3.storage_gb == Decimal(50 + 2 * 45)  # the line's mean over t = 30..60
    assert f.point_usage.as_of == date(2026, 12, 1)
    assert f.low == f.high == f.point_quote.total == f.mean
    assert f.trends["lambda.requests"] == pytest.approx(1000.0)


def test_the_same_seed_gives_the_same_forecast() -> None:
    rng = random.Random(3)
    history = [day(i, 200_000 + rng.gauss(0, 30_000)) for i in range(21)]
    a = forecast_month(history, seed=7).to_dict()
    b = forecast_month(history, seed=7).to_dict()
    c = forecast_month(history, seed=8).to_dict()
    assert a == b
    assert a["interval_80_usd"] != c["interval_80_usd"] or a["mean_usd"] != c["mean_usd"]
    low, high = Decimal(a["interval_80_usd"]["low"]), Decimal(a["interval_80_usd"]["high"])
    assert low < Decimal(a["mean_usd"]) < high


def test_the_80_percent_interval_covers_about_80_percent_of_simulated_months() -> None:
    """Calibration: histories from a known trend with noise; the realised next month (same
    process) should fall inside the interval about 80 % of the time."""
    trials, covered = 40, 0
    for trial in range(trials):
        rng = random.Random(1000 + trial)

        def requests(t: int, rng: random.Random = rng) -> float:
            return max(0.0, 3_000_000 + 40_000 * t + rng.gauss(0, 600_000))

        history = [day(i, requests(i)) for i in range(30)]
        f = forecast_month(history, replicates=150, seed=trial)
        realised = sum(requests(t) for t in range(30, 61))
        lam = f.point_usage.lambda_
        assert lam is not None
        actual_usage = scale_usage(f.point_usage, Decimal(repr(realised)) / lam.requests)
        actual = price(actual_usage).total
        covered += f.low <= actual <= f.high
    assert 0.65 <= covered / trials <= 0.95, covered


def test_provisioned_tables_run_every_hour_of_the_month_and_config_comes_from_the_last_day() -> None:
    history = [
        day(i, 1000, dynamodb={"mode": "provisioned", "wcu": 40 + i, "rcu": 30, "hours": 24})
        for i in range(10)
    ]
    history[-1] = day(
        9, 1000, dynamodb={"mode": "provisioned", "wcu": 49, "rcu": 30, "hours": 24}, region="eu-west-1"
    )
    f = forecast_month(history, month=date(2027, 2, 1))
    ddb = f.point_usage.dynamodb
    assert ddb is not None
    assert (f.days, ddb.hours, f.point_usage.region) == (28, Decimal(24 * 28), "eu-west-1")
    assert ddb.wcu == Decimal(40 + (92 + 119) / 2)  # the trend line wcu = 40 + t over Feb 1..28 (t = 92..119)
    assert "only 10 days of history" in " ".join(f.notes)


def test_duration_is_the_request_weighted_average() -> None:
    history = [
        (NOV + timedelta(days=i), parse_usage({"lambda": {"requests": r, "duration_ms": ms}}))
        for i, (r, ms) in enumerate([(1000, 100), (3000, 200), (0, 5000)])
    ]
    lam = forecast_month(history).point_usage.lambda_
    assert lam is not None and lam.duration_ms == Decimal(175)


@pytest.mark.parametrize(
    ("history", "kwargs", "message"),
    [
        ([], {}, "history: no days given"),
        ([day(0, 1), day(1, 1)], {}, "history: 2 day(s) given; a forecast needs at least 3"),
        ([day(0, 1), day(0, 2), day(1, 1)], {}, "history: a date appears twice"),
        ([day(i, 1) for i in range(5)], {"month": date(2026, 11, 1)}, "month: 2026-11 is not after"),
        ([day(i, 1) for i in range(5)], {"replicates": 0}, "replicates: must be between 1 and 5000"),
    ],
)
def test_forecast_refuses_what_it_cannot_support(history: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ForecastError, match=message.replace("(", r"\(").replace(")", r"\)")):
        forecast_month(history, **kwargs)


def test_gaps_are_noted() -> None:
    history = [day(i, 1000 + i) for i in (0, 1, 2, 5, 6)]
    assert "history has gaps" in " ".join(forecast_month(history).notes)


# --- what-if --------------------------------------------------------------------------------

MOBILE = {"lambda": {"requests": 3_000_000, "duration_ms": 120, "memory_mb": 1536}}


def test_doubling_traffic_reprices_the_scaled_usage() -> None:
    # 6M requests: (6-1)M x $0.20/M = $1.00; 1,080,000 - 400,000 GB-s x $0.0000166667 = $11.33
    w = what_if(parse_usage(MOBILE), traffic_multiplier=2)
    d = w.to_dict()
    assert (d["baseline_total_usd"], d["scenario_total_usd"], d["delta_usd"]) == ("2.73", "12.33", "9.60")
    assert d["multiplier"] == "2"


def test_scaling_keeps_configuration_and_scales_volume() -> None:
    usage = parse_usage(
        {
            "lambda": {"requests": 10, "duration_ms": 100, "memory_mb": 512, "architecture": "arm64"},
            "s3": {"storage_gb": 1, "put_requests": 2, "get_requests": 3},
            "dynamodb": {"mode": "provisioned", "wcu": 4, "rcu": 5, "hours": 100, "storage_gb": 6},
            "data_transfer_out_gb": 7,
        }
    )
    scaled = scale_usage(usage, 3)
    assert scaled.lambda_ is not None and scaled.s3 is not None and scaled.dynamodb is not None
    lam, s3, ddb = scaled.lambda_, scaled.s3, scaled.dynamodb
    assert [lam.requests, lam.duration_ms, lam.memory_mb, lam.architecture] == [30, 100, 512, "arm64"]
    assert [s3.storage_gb, s3.put_requests, s3.get_requests] == [3, 6, 9]
    assert [ddb.wcu, ddb.rcu, ddb.hours, ddb.storage_gb] == [12, 15, 100, 18]
    assert scaled.data_transfer_out_gb == 21
    assert scale_usage(usage, 1) == usage


def test_per_service_multipliers_act_through_log_volume_shares() -> None:
    shares = {"api": 3, "auth": 1}
    assert effective_multiplier(shares, {"auth": 5}) == 2  # (3 x 1 + 1 x 5) / 4
    assert effective_multiplier(shares, {}) == 1
    assert effective_multiplier({"api": 0.25, "auth": 0.75}, {"api": 0, "auth": 2}) == Decimal("1.5")
    usage = parse_usage(MOBILE)
    assert scale_usage_by_service(usage, shares, {"auth": 5}) == scale_usage(usage, 2)
    combined = what_if(usage, traffic_multiplier=2, service_shares=shares, service_multipliers={"auth": 5})
    assert combined.multiplier == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"traffic_multiplier": -1}, "traffic_multiplier: must be between 0 and 1000"),
        ({"traffic_multiplier": 1001}, "traffic_multiplier: must be between 0 and 1000"),
        ({"traffic_multiplier": float("nan")}, "traffic_multiplier: must be a finite number"),
        ({"traffic_multiplier": "2"}, "traffic_multiplier: must be a number"),
        ({"service_multipliers": {"api": 2}}, "service_shares: required"),
        (
            {"service_shares": {"api": 1}, "service_multipliers": {"apu": 2}},
            "service_multipliers.apu: unknown service",
        ),
        (
            {"service_shares": {"api": -1}, "service_multipliers": {"api": 2}},
            "service_shares.api: must not be negative",
        ),
        (
            {"service_shares": {"api": 0}, "service_multipliers": {"api": 2}},
            "service_shares: at least one share",
        ),
        (
            {"service_shares": {"api": 1}, "service_multipliers": {"api": 5000}},
            "service_multipliers.api: must be",
        ),
        (
            {"traffic_multiplier": 900, "service_shares": {"api": 1}, "service_multipliers": {"api": 2}},
            "traffic_multiplier: the combined multiplier 1800 exceeds 1000",
        ),
    ],
)
def test_what_if_refuses_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(WhatIfError, match=message):
        what_if(parse_usage(MOBILE), **kwargs)


def test_zero_traffic_costs_nothing_but_configuration() -> None:
    usage = parse_usage({**MOBILE, "dynamodb": {"wcu": 50, "rcu": 50}})
    scenario = what_if(usage, traffic_multiplier=0).scenario
    assert money_str(scenario.total) == "0.00"


def test_weekday_effects_follow_the_target_months_own_weekdays() -> None:
    # Four weeks of 1,000 requests on working days and 200 at weekends, no trend, no noise.
    history = [day(i, 1000 if (NOV + timedelta(days=i)).weekday() < 5 else 200) for i in range(28)]
    f = forecast_month(history, replicates=20)
    lam = f.point_usage.lambda_
    assert lam is not None
    # December 2026 starts on a Tuesday: 23 working days and 8 weekend days.
    assert float(lam.requests) == pytest.approx(23 * 1000 + 8 * 200, abs=1e-3)
    assert "day-of-week effects" in " ".join(f.notes)


def test_a_level_change_restarts_the_fit_instead_of_becoming_a_slope() -> None:
    history = [day(i, 1000 if i < 20 else 2000) for i in range(30)]
    f = forecast_month(history, replicates=20)
    lam = f.point_usage.lambda_
    assert lam is not None
    assert float(lam.requests) == pytest.approx(31 * 2000, abs=1e-3)
    assert f.history_days == 30
    assert "usage changed level around 2026-11-21: fitted on the 10 days since (of 30 given)" in f.notes
