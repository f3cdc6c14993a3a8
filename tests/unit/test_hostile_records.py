"""No record can raise: the parser and build_batch against hostile input (corpus and Hypothesis).

The promise under test: whatever the bytes, EventParser.fields returns a row tuple or a
Rejection whose reason is in REASONS, and build_batch accounts for every record as a row or a
dead letter. The corpus in tests/hostile_corpus.py holds the known triggers and every failure
the properties below have found, as plain examples.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loganalyzer.events import (
    JSONB_VERSION,
    REASONS,
    EventParser,
    ParseLimits,
    Rejection,
    nesting_exceeds,
)
from streaming.batch import build_batch
from tests.hostile_corpus import hostile_cases

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMITS = ParseLimits()
CASES = hostile_cases(NOW)


class Rec:
    """A Kafka record as build_batch reads it (the consumer passes confluent_kafka.Message)."""

    def __init__(self, value: bytes | None, offset: int, partition: int = 0) -> None:
        self._value, self._offset, self._partition = value, offset, partition

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


def check_result(raw: bytes | None, result: Any) -> None:
    """A row that PostgreSQL will take, or a rejection with a stable reason and a detail."""
    if isinstance(result, Rejection):
        assert result.reason in REASONS, result
        assert result.detail, result
        return
    assert type(result) is tuple and len(result) == 8, result
    ts, tenant, service, host, level, message, metadata, duration = result
    assert ts.tzinfo is UTC and NOW - LIMITS.max_age <= ts <= NOW + LIMITS.max_future_skew
    for name in (tenant, service, host):
        assert type(name) is str and 0 < len(name) <= 255 and "\x00" not in name
    assert level in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    assert type(message) is str and "\x00" not in message
    message.encode("utf-8")  # no lone surrogate reaches a text column
    assert type(metadata) is bytes and metadata[:1] == JSONB_VERSION
    assert b"\\u0000" not in metadata  # jsonb cannot hold NUL
    assert type(orjson.loads(metadata[1:])) is dict  # valid JSON, no lone surrogate
    assert duration is None or (type(duration) is float and math.isfinite(duration))


def check_batch(values: list[bytes | None]) -> None:
    """build_batch accounts for every record exactly once, in offset order, and never raises."""
    batch = build_batch("logs", [Rec(v, i, i % 2) for i, v in enumerate(values)], LIMITS, NOW)
    seen: list[int] = []
    for pb in batch.partitions.values():
        seen += [row[-1] for row in pb.rows]
        seen += [d.offset for d in pb.dead_letters]
        for d in pb.dead_letters:
            assert d.reason in REASONS and d.detail
            assert d.raw == values[d.offset]
    assert sorted(seen) == list(range(len(values)))


def _same(fast: Any, general: Any) -> bool:
    if isinstance(fast, Rejection) or isinstance(general, Rejection):
        return bool(fast == general)
    return bool(
        fast[:6] == general[:6]
        and orjson.loads(fast[6][1:]) == orjson.loads(general[6][1:])
        and fast[7] == general[7]
    )


def check_paths_agree(raw: bytes | None) -> None:
    """Past the checks both share (tombstone, size, depth), the general decoder alone must give
    the answer fields() gave, and must not raise either."""
    parser = EventParser(LIMITS, NOW)
    result = parser.fields(raw)
    if raw is None or (isinstance(result, Rejection) and result.reason in ("oversized", "too_deeply_nested")):
        return
    general = parser._fields_general(raw)
    # one documented difference: integers beyond 64 bits are exact only on the fast path
    big_integers = b"\\u" not in raw and any(len(t) > 18 for t in _digit_runs(raw))
    if isinstance(result, tuple) and isinstance(general, tuple) and big_integers:
        return
    assert _same(result, general), (raw[:300], result, general)


def _digit_runs(raw: bytes) -> list[bytes]:
    return re.findall(rb"\d+", raw)


# -- the corpus, as plain examples ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_hostile_corpus_gets_the_contracts_answer(case: Any) -> None:
    result = EventParser(LIMITS, NOW).fields(case.raw)
    check_result(case.raw, result)
    if case.reason is None:
        assert isinstance(result, tuple), result
    else:
        assert isinstance(result, Rejection) and result.reason == case.reason, result
    check_paths_agree(case.raw)


def test_hostile_corpus_in_one_batch_is_all_accounted_for() -> None:
    values = [c.raw for c in CASES]
    batch = build_batch("logs", [Rec(v, i) for i, v in enumerate(values)], LIMITS, NOW)
    reasons = {d.offset: d.reason for d in batch.partitions[0].dead_letters}
    rows = {row[-1] for row in batch.partitions[0].rows}
    for i, case in enumerate(CASES):
        if case.reason is None:
            assert i in rows, case.kind
        else:
            assert reasons.get(i) == case.reason, case.kind
    check_batch(values)


def test_the_known_triggers_are_in_the_corpus() -> None:
    kinds = {c.kind for c in CASES}
    assert {
        "year 1 with a positive offset",
        "year 9999 with a negative offset",
        "metadata objects 1,000 deep",
        "metadata arrays 1,000 deep",
        "top-level arrays 1,000 deep",
        "top-level objects 1,000 deep",
    } <= kinds


# -- nesting: the bound, and the scan that enforces it --------------------------------------------


def _record(metadata: bytes) -> bytes:
    return (
        b'{"timestamp":"2026-11-24T11:00:00Z","level":"INFO","service":"s","host":"h",'
        b'"message":"m","metadata":' + metadata + b"}"
    )


@pytest.mark.parametrize("depth", [1, 5])
def test_the_depth_limit_is_configurable_and_exact(depth: int) -> None:
    parser = EventParser(ParseLimits(max_metadata_depth=depth), NOW)
    inside = b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)  # metadata `depth` levels deep
    assert isinstance(parser.fields(_record(inside)), tuple)
    deeper = parser.fields(_record(b'{"a":' + inside + b"}"))
    assert isinstance(deeper, Rejection) and deeper.reason == "too_deeply_nested"
    as_array = parser.fields(_record(b'{"a":' + b"[" * depth + b"1" + b"]" * depth + b"}"))
    assert isinstance(as_array, Rejection) and as_array.reason == "too_deeply_nested"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, database=None)
@given(json_values, st.sampled_from(['[]{}"\\', '\\"', "x"]))
def test_nesting_scan_agrees_with_the_depth_of_the_value(value: Any, noise: str) -> None:
    """Brackets, quotes and backslashes inside strings must not fool the scan."""

    def salt(v: Any) -> Any:
        if isinstance(v, str):
            return v + noise
        if isinstance(v, dict):
            return {salt(k): salt(x) for k, x in v.items()}
        if isinstance(v, list):
            return [salt(x) for x in v]
        return v

    text = orjson.dumps(salt(value))
    depth = _depth(value)
    assert not nesting_exceeds(text, depth)
    assert nesting_exceeds(text, depth - 1) == (depth > 0)


# -- errors no rule foresaw -------------------------------------------------------------------------


def test_an_unforeseen_error_is_an_unparseable_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: EventParser, *args: Any) -> Any:
        raise KeyError("a bug in a rule")

    monkeypatch.setattr(EventParser, "_identity", broken)
    good = orjson.dumps(
        {"timestamp": "2026-11-24T11:00:00Z", "level": "INFO", "service": "s", "host": "h", "message": "m"}
    )
    result = EventParser(LIMITS, NOW).fields(good)
    assert result == Rejection("unparseable", "KeyError: 'a bug in a rule'")
    batch = build_batch("logs", [Rec(good, 0), Rec(None, 1)], LIMITS, NOW)
    letters = batch.partitions[0].dead_letters
    assert [(d.offset, d.reason) for d in letters] == [(0, "unparseable"), (1, "not_an_object")]
    assert letters[0].detail == "KeyError: 'a bug in a rule'"


def test_build_batch_survives_a_parser_that_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def raising(self: EventParser, raw: bytes | None) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(EventParser, "fields", raising)
    batch = build_batch("logs", [Rec(b"{}", 0), Rec(b"{}", 1)], LIMITS, NOW)
    assert [(d.reason, d.detail) for d in batch.partitions[0].dead_letters] == [
        ("unparseable", "RecursionError: maximum recursion depth exceeded")
    ] * 2
    assert batch.partitions[0].last_offset == 1


def test_unparseable_is_counted_in_the_dead_letter_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    from loganalyzer.settings import load_settings
    from streaming.consumer import LogConsumer
    from streaming.sink import WriteResult

    monkeypatch.setattr(EventParser, "_identity", lambda self, *a: 1 / 0)
    raw = orjson.dumps(
        {"timestamp": "2026-11-24T11:00:00Z", "level": "INFO", "service": "s", "host": "h", "message": "m"}
    )
    batch = build_batch("logs", [Rec(raw, 0), Rec(raw, 1)], LIMITS, NOW)
    consumer = LogConsumer(load_settings({}))
    consumer._account(batch, WriteResult(dead_lettered=2, next_offsets={0: 2}))
    value = consumer.metrics.registry.get_sample_value(
        "loganalyzer_events_dead_lettered_total", {"reason": "unparseable"}
    )
    assert value == 2


# -- properties: arbitrary bytes, and structured mutations of valid events --------------------------

_BASE: dict[str, Any] = {
    "timestamp": "2026-11-24T11:00:00.123Z",
    "level": "warning",
    "service": "payments",
    "host": "payments-1",
    "message": "charged order 42",
    "metadata": {"request_id": "r-1", "duration_ms": 12},
    "tenant": "acme",
}
_FIELDS = [*_BASE, "extra"]

_edge_strings = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfffy",
        "\ufeff",
        "\u2028",
        "s" * 255,
        "s" * 256,
        "x" * 70_000,
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.999999-23:59",
        "0001-01-01T00:00:00.000001+23:59",
        "0000-01-01T00:00:00Z",
        "2026-11-24T11:00:00+24:00",
        "2026-11-24T11:00:00-00:00",
        "2026-02-29T11:00:00Z",
        "2026-11-24T11:00:60Z",
        "2026-11-24T11:00:00.0000000000000000001Z",
        "2026-11-24T11:00:00Z",
        "2026-11-24t11:00:00z",
        "INFO",
        " err ",
        "\u0130NFO",  # a capital I with a dot: lower() changes its length
        "ＩＮＦＯ",
    ]
)
_edge_numbers = st.sampled_from(
    [0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400, 1e308, -0.0, 5e-324, 1.5]
)


class _Text(str):
    """JSON text spliced into a record as it is (nesting deeper than an encoder will write)."""


def _deep(levels: int, opening: str) -> _Text:
    if opening == "[":
        return _Text("[" * levels + "1" + "]" * levels)
    return _Text('{"a":' * levels + "1" + "}" * levels)


_deep_values = st.builds(
    _deep, st.sampled_from([62, 63, 64, 65, 300, 1000, 5000]), st.sampled_from(["[", "{"])
)
field_values = st.one_of(
    _edge_strings,
    st.text(max_size=30),
    _edge_numbers,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    json_values,
    _deep_values,
    st.builds(lambda k, v: {k: v}, st.sampled_from(["duration_ms", "\x00", "\ud800", ""]), _edge_numbers),
)


def _encode(doc: dict[str, Any], ascii_only: bool, spaced: bool) -> bytes:
    """The stdlib encoder: writes huge integers, raw surrogates and NUL escapes as a sender might;
    _Text values anywhere are spliced in as they are."""
    splices: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, _Text):
            splices.append(v)
            return f"\x01splice{len(splices) - 1}"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    separators = (", ", ": ") if spaced else (",", ":")
    text = json.dumps(mark(doc), ensure_ascii=ascii_only, separators=separators)
    for i, value in enumerate(splices):
        text = text.replace(json.dumps(f"\x01splice{i}", ensure_ascii=ascii_only), value)
    return text.replace("Infinity", "1e400").encode("utf-8", "surrogatepass")


metadata_values = st.one_of(
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    st.builds(lambda d: {"nested": d}, _deep_values),
    _deep_values,
    st.builds(lambda n: {"duration_ms": n}, st.one_of(_edge_numbers, st.integers(), st.floats())),
)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    doc = dict(_BASE)
    if draw(st.booleans()):
        doc["metadata"] = draw(metadata_values)
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()) and name in doc:
            del doc[name]
        else:
            doc[name] = draw(field_values)
    raw = _encode(doc, draw(st.booleans()), draw(st.booleans()))
    if draw(st.booleans()):  # a duplicate key after the others: the last one wins in both decoders
        dup = draw(st.sampled_from(_FIELDS))
        raw = (
            raw[:-1]
            + b","
            + json.dumps(dup).encode()
            + b":"
            + _encode({"v": draw(field_values)}, True, False)[5:-1]
            + b"}"
        )
    for _ in range(draw(st.integers(0, 3))):  # byte edits: truncation, stray bytes, bad UTF-8
        pos = draw(st.integers(0, len(raw)))
        piece = draw(
            st.sampled_from(
                [
                    b'"',
                    b"\\",
                    b"\\u0000",
                    b"\\ud800",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b",",
                    b"\xff",
                    b"\xc3",
                    b"\x00",
                    b"1e400",
                    b" ",
                ]
            )
        )
        raw = raw[:pos] + piece + raw[pos + draw(st.integers(0, 3)) :]
    return raw


@settings(max_examples=1500, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
@example(b"[" * 1000 + b"]" * 1000)
@example(b'{"metadata":' + b'{"a":' * 1000 + b"1" + b"}" * 1001)
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = EventParser(LIMITS, NOW).fields(raw)
    check_result(raw, result)
    check_paths_agree(raw)


@settings(
    max_examples=1500,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_events())
def test_mutated_events_never_raise_and_both_decoders_agree(raw: bytes) -> None:
    result = EventParser(LIMITS, NOW).fields(raw)
    check_result(raw, result)
    check_paths_agree(raw)


@settings(
    max_examples=200,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.one_of(mutated_events(), st.binary(max_size=200), st.none()), max_size=20))
def test_build_batch_accounts_for_every_record(values: list[bytes | None]) -> None:
    check_batch(values)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("LOG_MAX_AGE_DAYS", "1e9"), ("LOG_MAX_AGE_DAYS", "nan"), ("LOG_MAX_FUTURE_MINUTES", "1e12")],
)
def test_time_window_settings_stay_inside_datetimes_range(name: str, raw: str) -> None:
    """A window past year 1 or 9999 would raise in every batch's EventParser: refused at start."""
    from loganalyzer.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=name):
        load_settings({name: raw})
    widest = load_settings({"LOG_MAX_AGE_DAYS": "36500", "LOG_MAX_FUTURE_MINUTES": "525600"})
    parser = EventParser(widest.consumer.parse_limits, datetime.now(UTC))
    for ts in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        result = parser.fields(orjson.dumps({**_BASE, "timestamp": ts}))
        assert isinstance(result, Rejection) and result.reason == "timestamp_out_of_range"
