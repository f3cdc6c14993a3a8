"""Which stretches of a retraining span are read from minute_counts and which from logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loganalyzer.db.minute_counts import ReadRange, plan_reads

T0 = datetime(2026, 11, 3, 22, 0, tzinfo=UTC)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def test_rolled_up_hours_merge_within_a_day_and_ranges_cut_at_midnight() -> None:
    done = {h(0), h(1), h(2), h(4)}  # 22:00, 23:00, 00:00 (next day), 02:00
    assert plan_reads(h(0), h(5), done) == [
        ReadRange(h(0), h(2), True),
        ReadRange(h(2), h(3), True),
        ReadRange(h(3), h(4), False),
        ReadRange(h(4), h(5), True),
    ]


def test_nothing_rolled_up_is_one_logs_range_per_day() -> None:
    assert plan_reads(h(0), h(5), set()) == [ReadRange(h(0), h(2), False), ReadRange(h(2), h(5), False)]


def test_a_bound_inside_a_minute_reads_its_hour_from_logs() -> None:
    start = h(0) + timedelta(minutes=7, seconds=30)
    assert plan_reads(start, h(2), {h(0), h(1)}) == [
        ReadRange(start, h(1), False),
        ReadRange(h(1), h(2), True),
    ]


def test_a_partial_hour_on_whole_minutes_is_read_from_the_rollup() -> None:
    start, end = h(0) + timedelta(minutes=7), h(1) + timedelta(minutes=30)
    assert plan_reads(start, end, {h(0), h(1)}) == [ReadRange(start, end, True)]
