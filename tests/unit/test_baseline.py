"""Seasonal baselines: which estimate answers, and when (hour of week, hour of day, recent)."""

from __future__ import annotations

from datetime import UTC, datetime

from loganalyzer.detection.baseline import Baseline, day_slot, week_slot
from loganalyzer.detection.config import BaselineSettings
from loganalyzer.detection.windows import minute_of

SETTINGS = BaselineSettings()
#: Monday 2026-11-23 00:00 UTC
MONDAY = minute_of(datetime(2026, 11, 23, tzinfo=UTC))


def _volume(minute: int, night: float = 10.0, day: float = 100.0, weekend: float | None = None) -> float:
    """Traffic with a night-time low (02:00-03:00 UTC) and, optionally, another weekend level."""
    if weekend is not None and week_slot(minute) >= 5 * 24:
        return weekend
    return night if day_slot(minute) == 2 else day


def _learn(b: Baseline, start: int, minutes: int, **kw: float | None) -> None:
    for m in range(start, start + minutes):
        v = _volume(m, **kw)  # type: ignore[arg-type]
        b.update(m, int(v), int(v // 10), SETTINGS)


def test_slots_are_utc_hours_of_the_week_from_monday() -> None:
    assert week_slot(MONDAY) == 0 and day_slot(MONDAY) == 0
    assert week_slot(MONDAY + 26 * 60 + 59) == 26  # Tuesday 02:59
    assert week_slot(MONDAY + 7 * 1440) == 0  # the next Monday


def test_cold_start_answers_from_the_recent_ewma() -> None:
    b = Baseline()
    _learn(b, MONDAY + 10 * 60, 45)  # 45 minutes at 100/min: no seasonal slot yet
    e = b.expected(MONDAY + 10 * 60 + 45, SETTINGS)
    assert e.source == "recent" and e.volume == 100 and abs(e.error_rate - 0.1) < 1e-9
    _learn(b, MONDAY + 10 * 60 + 45, 30, day=200.0)  # a level change is followed within ~a span
    assert 150 < b.expected(MONDAY + 11 * 60 + 15, SETTINGS).volume < 200


def test_the_hour_of_day_answers_after_two_visits_and_knows_the_night() -> None:
    b = Baseline()
    _learn(b, MONDAY, 1440)  # one day: every hour visited once (60 minutes < 120 trusted)
    assert b.expected(MONDAY + 1440 + 2 * 60, SETTINGS).source == "recent"
    _learn(b, MONDAY + 1440, 1440)  # two days: the hours after the first (allocation) hour
    night = b.expected(MONDAY + 2 * 1440 + 2 * 60 + 30, SETTINGS)
    assert night.source == "day" and abs(night.volume - 10) < 1e-6
    # the recent EWMA at that moment would still say ~100 (the evening before was at 100)
    assert b.recent_volume > 90
    assert b.expected(MONDAY + 2 * 1440 + 14 * 60, SETTINGS).volume == 100


def test_the_hour_of_week_answers_after_two_weeks_and_knows_the_weekend() -> None:
    b = Baseline()
    _learn(b, MONDAY, 7 * 1440, weekend=40.0)
    saturday_noon = MONDAY + 7 * 1440 + 5 * 1440 + 12 * 60
    first = b.expected(saturday_noon, SETTINGS)
    assert first.source == "day" and first.volume > 40  # one weekend is not yet trusted
    _learn(b, MONDAY + 7 * 1440, 7 * 1440, weekend=40.0)
    e = b.expected(saturday_noon + 7 * 1440, SETTINGS)
    assert e.source == "week" and abs(e.volume - 40) < 1e-6
    assert b.expected(saturday_noon + 7 * 1440 - 5 * 1440, SETTINGS).volume == 100  # a Monday


def test_state_round_trips() -> None:
    b = Baseline()
    _learn(b, MONDAY, 3 * 1440)
    again = Baseline.from_state(b.to_state())
    for m in (MONDAY + 3 * 1440 + 2 * 60, MONDAY + 3 * 1440 + 15 * 60):
        assert again.expected(m, SETTINGS) == b.expected(m, SETTINGS)
