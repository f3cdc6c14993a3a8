"""Pure parts of the API: cursors, keys, and the usage model behind the cost endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from loganalyzer.costs.engine import price
from loganalyzer.costs.usage import parse_usage
from serving.api import cursor
from serving.cost_model import (
    STORAGE_GB,
    DayUsage,
    forecast_days,
    next_month,
    usage_document,
    volume_multiplier,
)
from serving.keys import key_id_of, matches, new_key

KINDS = (datetime, str, int)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text().filter(lambda s: "\x00" not in s),
    st.integers(-(2**63), 2**63 - 1),
)
def test_a_cursor_round_trips(ts: datetime, s: str, n: int) -> None:
    assert cursor.decode(cursor.encode(ts, s, n), KINDS) == [ts, s, n]


@given(st.text(max_size=200))
def test_any_other_cursor_is_a_422_never_a_crash(raw: str) -> None:
    try:
        values = cursor.decode(raw, KINDS)
    except HTTPException as exc:
        assert exc.status_code == 422
    else:
        assert isinstance(values[0], datetime) and isinstance(values[2], int)


def test_keys_carry_their_id_and_match_only_themselves() -> None:
    a, b = new_key(), new_key()
    assert key_id_of(a.secret_key) == a.key_id
    assert matches(a.secret_key, a.digest) and not matches(b.secret_key, a.digest)
    assert key_id_of("la_short_x") is None and key_id_of("") is None


def _day(i: int, **kw: float) -> DayUsage:
    return DayUsage(date(2026, 12, 1) + timedelta(days=i), **kw)


def test_storage_is_cumulative_and_the_month_is_scaled() -> None:
    days = [_day(i, s3_bytes_added=STORAGE_GB, lambda_invocations=10, lambda_gb_seconds=5) for i in range(10)]
    doc = usage_document(days, (0.0, 0.0), 30, "us-east-1", "none")
    # stored: 1..30 GB over the month's 30 days (growth continues at 1 GB/day) -> mean 15.5 GB-months
    assert doc["s3"]["storage_gb"] == pytest.approx(15.5)
    assert doc["lambda"]["requests"] == 300
    assert doc["lambda"]["duration_ms"] == pytest.approx(500.0)  # 5 GB-s / 10 runs at 1 GB
    quote = price(parse_usage(doc))  # the engine accepts what the model produces
    assert quote.total > 0


def test_no_days_price_to_zero() -> None:
    doc = usage_document([], (0.0, 0.0), 31, "eu-west-1", "always_free")
    assert str(price(parse_usage(doc)).total) in ("0", "0.00")


@pytest.mark.parametrize(
    ("shares", "traffic", "per_service", "expected"),
    [
        ({"a": 1, "b": 3}, 2.0, {}, 2.0),
        ({"a": 1, "b": 3}, 1.0, {"b": 0.0}, 0.25),
        ({"a": 1, "b": 1}, 1.0, {"a": 3.0}, 2.0),
        ({}, 5.0, {"a": 3.0}, 5.0),
    ],
)
def test_volume_multiplier(
    shares: dict[str, float], traffic: float, per_service: dict[str, float], expected: float
) -> None:
    assert volume_multiplier(shares, traffic, per_service) == pytest.approx(expected)


def test_a_linear_trend_is_extended_and_noise_widens_the_interval() -> None:
    first, last = next_month(date(2026, 12, 6))
    assert (first, last) == (date(2027, 1, 1), date(2027, 1, 31))
    exact = [_day(i, lambda_invocations=100 + 10 * i) for i in range(20)]
    fc = forecast_days(exact, first, last)
    assert fc.mean[0].lambda_invocations == pytest.approx(100 + 10 * 31)
    assert fc.low[0].lambda_invocations == pytest.approx(fc.high[0].lambda_invocations)  # no residuals
    noisy = [_day(i, lambda_invocations=100 + (50 if i % 2 else -50)) for i in range(20)]
    fc = forecast_days(noisy, first, last)
    assert sum(d.lambda_invocations for d in fc.low) < sum(d.lambda_invocations for d in fc.mean)
    assert sum(d.lambda_invocations for d in fc.mean) < sum(d.lambda_invocations for d in fc.high)
    assert all(d.lambda_invocations >= 0 for d in fc.low)
