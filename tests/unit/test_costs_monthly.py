"""Daily measurements into a month: sums, averages, run rate, and GB-seconds into a duration."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loganalyzer.costs.engine import money_str, price
from loganalyzer.costs.monthly import combine_days, lambda_usage
from loganalyzer.costs.usage import Usage, parse_usage


def test_gb_seconds_become_the_average_duration() -> None:
    # The mobile backend measured as AWS bills it: 3M requests, 540,000 GB-s at 1,536 MB
    lam = lambda_usage(3_000_000, 540_000, 1536)
    assert lam.duration_ms == 120
    assert money_str(price(Usage(lambda_=lam)).total) == "2.73"
    assert lambda_usage(0, 0, 128).duration_ms == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 128), "must not be negative"),
        ((0, 5, 128), "gb_seconds without requests"),
        ((1, 1, 64), "lambda.memory_mb"),
        ((1, 1, 128, "sparc"), "lambda.architecture"),
    ],
)
def test_lambda_usage_refuses_impossible_measurements(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lambda_usage(*args)  # type: ignore[arg-type]


DAY1 = {
    "as_of": "2026-12-01",
    "lambda": {"requests": 1000, "duration_ms": 100, "memory_mb": 512},
    "s3": {"storage_gb": 10, "put_requests": 50, "get_requests": 70},
    "dynamodb": {"write_request_units": 30, "read_request_units": 90, "storage_gb": 2},
    "data_transfer_out_gb": 1.5,
}
DAY2 = {
    "as_of": "2026-12-02",
    "lambda": {"requests": 3000, "duration_ms": 200, "memory_mb": 1024},
    "s3": {"storage_gb": 20, "put_requests": 150, "get_requests": 30},
    "dynamodb": {"write_request_units": 10, "read_request_units": 10, "storage_gb": 4},
}


def test_flows_add_levels_average_and_configuration_is_the_last_days() -> None:
    month = combine_days([parse_usage(DAY1), parse_usage(DAY2)])
    assert month.lambda_ is not None and month.s3 is not None and month.dynamodb is not None
    assert [month.lambda_.requests, month.lambda_.duration_ms, month.lambda_.memory_mb] == [4000, 175, 1024]
    assert [month.s3.storage_gb, month.s3.put_requests, month.s3.get_requests] == [15, 200, 100]
    assert [month.dynamodb.write_request_units, month.dynamodb.read_request_units] == [40, 100]
    assert month.dynamodb.storage_gb == 3
    assert month.data_transfer_out_gb == Decimal("1.5")
    assert str(month.as_of) == "2026-12-02"


def test_run_rate_extends_the_days_so_far_to_the_month() -> None:
    month = combine_days([parse_usage(DAY1), parse_usage(DAY2)], days_in_month=31)
    assert month.lambda_ is not None and month.s3 is not None
    assert month.lambda_.requests == 4000 * Decimal(31) / 2
    assert month.s3.storage_gb == 15  # a level is not extended
    assert month.data_transfer_out_gb == Decimal("1.5") * 31 / 2


def test_provisioned_hours_add_up_and_capacity_averages() -> None:
    days = [parse_usage({"dynamodb": {"wcu": w, "rcu": 10, "hours": 24}}) for w in (30, 50)]
    month = combine_days(days, days_in_month=30)
    assert month.dynamodb is not None
    assert [month.dynamodb.mode, month.dynamodb.wcu, month.dynamodb.hours] == ["provisioned", 40, 720]


@pytest.mark.parametrize(
    ("n", "days_in_month", "message"),
    [(0, None, "days: none given"), (2, 27, "days_in_month"), (3, 28, None)],
)
def test_combine_days_arguments(n: int, days_in_month: int | None, message: str | None) -> None:
    days = [parse_usage(DAY1)] * n
    if message is None:
        lam = combine_days(days, days_in_month=days_in_month).lambda_
        assert lam is not None and lam.requests == 1000 * 28
        return
    with pytest.raises(ValueError, match=message):
        combine_days(days, days_in_month=days_in_month)
