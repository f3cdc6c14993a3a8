"""Pure parts of the API: cursors, keys, and the usage model behind the cost endpoints."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from fastapi import HTTPException
from hypothesis import given
from hypothesis import strategies as st

from loganalyzer.costs.daily import GIB, DayMeasure, day_document, day_usages, price_day, read_day_document
from loganalyzer.costs.engine import price
from loganalyzer.costs.monthly import combine_days
from serving.api import cursor
from serving.api.routes.logs import Partitions, Segment, like_pattern, required_lexemes, segments
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


def _days(n: int, **kw: float) -> list[tuple[date, DayMeasure]]:
    return [(date(2026, 11, 1) + timedelta(days=i), DayMeasure(**kw)) for i in range(n)]


def test_storage_accumulates_and_combine_days_extends_the_month() -> None:
    days = day_usages(
        _days(10, s3_bytes_added=GIB, lambda_invocations=10, lambda_gb_seconds=5),
        stored_before=(5 * GIB, 0.0),
        region="us-east-1",
    )
    assert [u.s3.storage_gb for _, u in days if u.s3] == [5 + i for i in range(1, 11)]
    month = combine_days([u for _, u in days], days_in_month=30)
    assert month.s3 is not None and month.s3.storage_gb == 10.5  # mean of 6..15 GB stored
    assert month.lambda_ is not None and month.lambda_.requests == 300
    assert month.lambda_.duration_ms == 500  # 5 GB-s / 10 runs at 1 GB
    assert price(month).total > 0


def test_a_stored_day_reads_back_as_the_same_usage() -> None:
    (_, usage), *_ = day_usages(
        _days(1, s3_bytes_added=3 * GIB, s3_put_requests=7, dynamodb_write_units=2.5), region="eu-west-1"
    )
    assert read_day_document(day_document(usage)) == usage


def test_a_months_days_priced_one_by_one_add_up_to_the_month_without_free_tier() -> None:
    days = day_usages(_days(30, s3_bytes_added=1000 * GIB, s3_put_requests=1_000_000), region="us-east-1")
    daily = sum((price_day(u).total for _, u in days), Decimal(0))
    month = price(combine_days([u for _, u in days]))
    assert month.total > 0 and abs(daily - month.total) <= Decimal("0.01") * 3 * 30  # cents per line


@pytest.mark.parametrize(
    ("tsquery", "lexemes"),
    [
        ("'timeout' & 'nosuchword'", ("timeout", "nosuchword")),
        ("'connection' <-> 'refused' & 'db'", ("connection", "refused", "db")),
        ("'a' <2> ( 'b' & 'c' )", ("a", "b", "c")),
        ("'it''s' & 'x'", ("it's", "x")),
        ("'a' | 'b'", ()),  # either word: neither is required
        ("'a' & !'b'", ()),
        ("'a':*", ()),
    ],
)
def test_required_lexemes_only_when_every_word_must_be_there(tsquery: str, lexemes: tuple[str, ...]) -> None:
    assert required_lexemes(tsquery) == lexemes


def test_like_pattern_escapes_wildcards() -> None:
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


def test_a_search_span_is_cut_newest_first_by_how_each_part_is_indexed() -> None:
    day = datetime(2026, 12, 7, tzinfo=UTC)
    h = timedelta(hours=1)
    parts = Partitions(
        first=date(2026, 12, 5),
        last=date(2026, 12, 7),
        search_ready=frozenset({date(2026, 12, 5)}),  # 12-06 closed but not rebuilt yet
        hours_ready=frozenset({day - 2 * h, day + h}),
        prefixes={day + 3 * h: day + 3 * h + timedelta(minutes=20)},
    )
    start, upper = day - timedelta(days=1, hours=12), day + 3 * h + timedelta(minutes=45)
    cut = segments(start, upper, parts)
    assert cut == [
        Segment(day + 3 * h + timedelta(minutes=20), upper, "p"),  # the open hour past its prefix
        Segment(day + 3 * h, day + 3 * h + timedelta(minutes=20), "h"),  # its prefix GIN
        Segment(day + 2 * h, day + 3 * h, "p"),
        Segment(day + h, day + 2 * h, "h"),
        Segment(day, day + h, "p"),  # never across midnight
        Segment(day - h, day, "p"),
        Segment(day - 2 * h, day - h, "h"),
        Segment(day - timedelta(days=1), day - 2 * h, "p"),  # unindexed hours of a day together
        Segment(start, day - timedelta(days=1), "s"),
    ]


@given(
    st.datetimes(min_value=datetime(2026, 12, 1), max_value=datetime(2026, 12, 9), timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=4)),
    st.sets(st.integers(0, 8 * 24 - 1)),
    st.sets(st.integers(1, 8)),
)
def test_search_segments_cover_the_span_once_newest_first_each_in_one_day(
    start: datetime, length: timedelta, indexed_hours: set[int], ready_days: set[int]
) -> None:
    base = datetime(2026, 12, 1, tzinfo=UTC)
    parts = Partitions(
        first=base.date(),
        last=base.date() + timedelta(days=9),
        search_ready=frozenset(base.date() + timedelta(days=d) for d in ready_days),
        hours_ready=frozenset(base + timedelta(hours=n) for n in indexed_hours),
    )
    cut = segments(start, start + length, parts)
    assert cut[0].upper == start + length and cut[-1].lower == start
    assert all(a.lower == b.upper for a, b in pairwise(cut))
    last_instant = timedelta(microseconds=1)
    assert all(s.lower < s.upper and s.lower.date() == (s.upper - last_instant).date() for s in cut)
    assert all((s.kind == "s") == (s.lower.date() in parts.search_ready) for s in cut)
