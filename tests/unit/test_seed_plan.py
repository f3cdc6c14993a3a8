"""What `up` seeds: the span, never what is stored already, and incidents where baselines are warm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loganalyzer.platform.seed import HISTORY_LAG, holdout_hours, plan_history, seed_incidents

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
END = NOW - HISTORY_LAG


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        (None, (END - timedelta(hours=3), END)),
        (NOW - timedelta(days=2), (END - timedelta(hours=3), END)),
        (END - timedelta(hours=1), (END - timedelta(hours=1) + timedelta(milliseconds=1), END)),
        (END - timedelta(seconds=30), None),  # less than a minute missing
        (NOW - timedelta(minutes=2), None),  # stored up to nearly now: the live generator catches up
    ],
)
def test_plan_history_fills_only_what_is_missing(
    latest: datetime | None, expected: tuple[datetime, datetime] | None
) -> None:
    assert plan_history(NOW, timedelta(hours=3), latest) == expected


def test_history_ends_before_the_consumer_takes_a_partition_for_live() -> None:
    from streaming.detection_stage import LIVE_HORIZON

    assert HISTORY_LAG > LIVE_HORIZON


@pytest.mark.parametrize(("hours", "expected"), [(3, 0.75), (2, 0.5), (24 * 7, 24.0)])
def test_holdout_is_a_quarter_at_most_a_day(hours: float, expected: float) -> None:
    assert holdout_hours(END - timedelta(hours=hours), END) == pytest.approx(expected)


def test_seed_incidents_fall_in_the_second_half_one_of_each_type() -> None:
    start = END - timedelta(hours=3)
    incidents = seed_incidents(start, END, seed=7)
    assert sorted(i.type for i in incidents) == sorted(
        ["error_burst", "traffic_spike", "outage", "new_error_pattern", "latency_degradation"]
    )
    assert all(start + timedelta(hours=1.5) <= i.start and i.end <= END for i in incidents)
    assert seed_incidents(END - timedelta(minutes=20), END, seed=7) == []
