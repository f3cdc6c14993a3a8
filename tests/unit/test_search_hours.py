"""Which hours get a search index, and which index names are hour indexes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loganalyzer.db.search_hours import PREFIX_STEP, hour_of_index, hours_to_index, prefix_to_index

DAY = datetime(2026, 12, 6, tzinfo=UTC)


def test_an_hour_is_indexed_as_soon_as_it_has_closed_newest_first() -> None:
    todo = hours_to_index(DAY + timedelta(hours=1, minutes=59, seconds=59), ["logs_p20261206"], [])
    assert [t.name for t in todo] == ["logs_p20261206_search_h00"]  # 01-02 still open
    todo = hours_to_index(DAY + timedelta(hours=2), ["logs_p20261206"], [])
    assert [t.name for t in todo] == ["logs_p20261206_search_h01", "logs_p20261206_search_h00"]


def test_the_open_hour_gets_its_whole_steps_so_far() -> None:
    part = "logs_p20261206"
    assert prefix_to_index(DAY + timedelta(hours=3, minutes=4), [part], []) is None  # no whole step yet
    target = prefix_to_index(DAY + timedelta(hours=3, minutes=23), [part], [])
    assert target is not None
    assert (target.hour, target.end) == (
        DAY + timedelta(hours=3),
        DAY + timedelta(hours=3) + 23 // 5 * PREFIX_STEP,
    )
    assert prefix_to_index(DAY + timedelta(hours=3, minutes=23), [part], [target.name]) is None
    assert prefix_to_index(DAY + timedelta(hours=3, minutes=23), [], []) is None  # its day was rebuilt


def test_valid_indexes_are_not_built_again_and_old_days_are_skipped() -> None:
    now = DAY + timedelta(hours=1, minutes=30)
    todo = hours_to_index(
        now, ["logs_p20261204", "logs_p20261205", "logs_p20261206"], ["logs_p20261205_search_h23"]
    )
    names = [t.name for t in todo]
    assert names[0] == "logs_p20261206_search_h00"
    assert "logs_p20261205_search_h23" not in names
    assert "logs_p20261205_search_h22" in names
    assert not any("20261204" in n for n in names)
    assert len(names) == 1 + 23


def test_hour_of_index_reads_only_hour_index_names() -> None:
    assert hour_of_index("logs_p20261206_search_h13") == DAY + timedelta(hours=13)
    assert hour_of_index("logs_p20261206_search_gin") is None
    assert hour_of_index("logs_p20261206_time_idx") is None
