"""The event contract, as tables: what is accepted, normalised and rejected (hostile inputs included)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from loganalyzer.events import (
    JSONB_VERSION,
    RFC3339,
    EventParser,
    LogEvent,
    ParseLimits,
    Rejection,
    encode_event,
    normalise_level,
    parse_event,
    parse_timestamp,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LIMITS = ParseLimits()


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "timestamp": "2026-11-24T11:00:00Z",
        "level": "INFO",
        "service": "payments",
        "host": "payments-1",
        "message": "charged order 42",
        "metadata": {"request_id": "r-1"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def parse(d: dict[str, Any] | bytes) -> LogEvent | Rejection:
    raw = d if isinstance(d, bytes) else orjson.dumps(d)
    return parse_event(raw, LIMITS, NOW)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("warning", "WARN"),
        ("WARNING", "WARN"),
        (" Warn ", "WARN"),
        ("err", "ERROR"),
        ("Error", "ERROR"),
        ("critical", "FATAL"),
        ("CRIT", "FATAL"),
        ("fatal", "FATAL"),
        ("info", "INFO"),
        ("notice", "INFO"),
        ("debug", "DEBUG"),
        ("trace", "TRACE"),
        ("verbose", None),
        ("", None),
    ],
)
def test_levels_are_normalised_case_insensitively(raw: str, expected: str | None) -> None:
    assert normalise_level(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-24T11:00:00Z", datetime(2026, 11, 24, 11, tzinfo=UTC)),
        ("2026-11-24t11:00:00z", datetime(2026, 11, 24, 11, tzinfo=UTC)),
        ("2026-11-24 11:00:00Z", datetime(2026, 11, 24, 11, tzinfo=UTC)),
        ("2026-11-24T12:00:00+01:00", datetime(2026, 11, 24, 11, tzinfo=UTC)),
        ("2026-11-24T11:00:00.5Z", datetime(2026, 11, 24, 11, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-24T11:00:00.123456789Z", datetime(2026, 11, 24, 11, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-24T11:00:00", None),  # no offset: ambiguous
        ("2026-11-24T11:00:00+0100", None),  # offset without colon: ISO 8601, not RFC 3339
        ("2026-11-24T11:00:00,5Z", None),  # comma fraction
        ("2026-11-24T11:00:00.Z", None),
        ("2026-11-24T11:00:00.5a5Z", None),
        ("2026-11-24T11:00Z", None),  # no seconds
        ("20261124T110000Z", None),  # basic format
        ("2026-W48-1T11:00:00Z", None),  # week date
        ("2026-11-24T11:00:00+01:00:30", None),
        ("2026-11-24T11:00:00-05:30", datetime(2026, 11, 24, 16, 30, tzinfo=UTC)),
        ("2026-11-24", None),
        ("2026-11-24T11:00:00.Z", None),
        ("2026-13-24T11:00:00Z", None),
        ("2026-11-24T25:00:00Z", None),
        ("1732446000", None),
        ("yesterday at noon, roughly", None),
        ("  2026-11-24T11:00:00Z\n", datetime(2026, 11, 24, 11, tzinfo=UTC)),  # surrounding space ignored
    ],
)
def test_timestamps_are_rfc3339_with_an_offset(raw: str, expected: datetime | None) -> None:
    assert parse_timestamp(raw) == expected
    # The parser (and the fast path for the common shape) must agree with the contract.
    ev = parse_event(orjson.dumps(doc(timestamp=raw)), LIMITS, NOW.replace(hour=16))
    if expected is None:
        assert isinstance(ev, Rejection) and ev.reason == "bad_timestamp"
    else:
        assert isinstance(ev, LogEvent) and ev.timestamp == expected


def _contract_timestamp(raw: str) -> datetime | None:
    """The contract written plainly (regular expression, then arithmetic), as a test oracle."""
    s = raw.strip()
    if RFC3339.fullmatch(s) is None:
        return None
    s = (s[:10] + "T" + s[11:]).replace("z", "Z")
    try:
        return datetime.fromisoformat(s).astimezone(UTC)
    except ValueError:
        return None


@pytest.mark.parametrize("fraction", ["", ".2", ".283", ".283456", ".2834567", ".283456789"])
def test_fast_timestamp_path_agrees_with_the_contract_on_mutated_input(fraction: str) -> None:
    """Random edits of the canonical shape (what a buggy producer sends) through the parser's
    fast path, against the contract's oracle: any disagreement is a contract bug."""
    rng = random.Random(fraction)
    base = f"2026-11-24T11:31:55{fraction}Z"
    alphabet = "0123456789-T:.Z+ ,_z\u0663\n"
    parser = EventParser(LIMITS, NOW)
    for _ in range(3000):
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            pos, c = rng.randrange(len(chars) + 1), rng.choice(alphabet)
            op = rng.random()
            if op < 0.4 and pos < len(chars):
                chars[pos] = c
            elif op < 0.7:
                chars.insert(pos, c)
            elif pos < len(chars):
                del chars[pos]
        raw = "".join(chars)
        want = _contract_timestamp(raw)
        got = parser.fields(orjson.dumps(doc(timestamp=raw)))
        if want is None or not (NOW - LIMITS.max_age <= want <= NOW + LIMITS.max_future_skew):
            assert isinstance(got, Rejection), raw
        else:
            assert isinstance(got, tuple) and got[0] == want and got[0].tzinfo is UTC, raw


@pytest.mark.parametrize(
    ("metadata", "duration"),
    [
        ({"duration_ms": 412}, 412.0),
        ({"duration_ms": 0.5}, 0.5),
        ({"duration_ms": "412"}, None),  # a string is not a number
        ({"duration_ms": True}, None),  # nor is a boolean
        ({"duration_ms": None}, None),
        ({"request_id": "r-1"}, None),
        (_DROP, None),
        (None, None),
    ],
)
def test_the_row_carries_metadata_as_jsonb_and_duration_as_a_number(
    metadata: Any, duration: float | None
) -> None:
    fields = EventParser(LIMITS, NOW).fields(orjson.dumps(doc(metadata=metadata)))
    assert isinstance(fields, tuple) and len(fields) == 8
    assert fields[6][:1] == JSONB_VERSION
    stored = {} if metadata is _DROP or metadata is None else metadata
    assert orjson.loads(fields[6][1:]) == stored
    assert fields[7] == duration and (duration is None or type(fields[7]) is float)


def test_a_valid_event_is_normalised() -> None:
    ev = parse(doc(level="warning", service=" payments ", tenant="acme"))
    assert isinstance(ev, LogEvent)
    assert ev.level == "WARN"
    assert ev.service == "payments"
    assert ev.tenant == "acme"
    assert ev.timestamp == datetime(2026, 11, 24, 11, tzinfo=UTC)
    assert ev.metadata == {"request_id": "r-1"}


def test_optional_fields_default() -> None:
    ev = parse(doc(metadata=_DROP))
    assert isinstance(ev, LogEvent)
    assert ev.metadata == {}
    assert ev.tenant == "default"
    ev2 = parse(doc(metadata=None, tenant=None))
    assert isinstance(ev2, LogEvent) and ev2.metadata == {} and ev2.tenant == "default"


def test_unknown_fields_are_ignored() -> None:
    assert isinstance(parse(doc(extra={"x": 1}, trace_id="abc")), LogEvent)


def test_nul_characters_are_replaced_not_stored() -> None:
    ev = parse(doc(message="a\x00b", metadata={"k\x00": ["v\x00", {"n": "\x00"}]}))
    assert isinstance(ev, LogEvent)
    assert "\x00" not in ev.message
    assert "\x00" not in orjson.dumps(ev.metadata).decode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "invalid_json"),
        (b"not json", "invalid_json"),
        (b'{"timestamp": ', "invalid_json"),
        (b"\xff\xfe\xfd", "invalid_utf8"),
        (b'{"message": "caf\xe9"}', "invalid_utf8"),
        (b"[]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"42", "not_an_object"),
        (b"null", "not_an_object"),
        (None, "not_an_object"),
        (orjson.dumps(doc(timestamp=_DROP)), "missing_field"),
        (orjson.dumps(doc(level=_DROP)), "missing_field"),
        (orjson.dumps(doc(service=_DROP)), "missing_field"),
        (orjson.dumps(doc(host=_DROP)), "missing_field"),
        (orjson.dumps(doc(message=_DROP)), "missing_field"),
        (orjson.dumps(doc(message=None)), "missing_field"),
        (orjson.dumps(doc(level=3)), "wrong_type"),
        (orjson.dumps(doc(timestamp=1732446000)), "wrong_type"),
        (orjson.dumps(doc(service=["a"])), "wrong_type"),
        (orjson.dumps(doc(message={"text": "hi"})), "wrong_type"),
        (orjson.dumps(doc(metadata="k=v")), "wrong_type"),
        (orjson.dumps(doc(metadata=[1, 2])), "wrong_type"),
        (orjson.dumps(doc(tenant=7)), "wrong_type"),
        (orjson.dumps(doc(tenant=["a"])), "wrong_type"),  # unhashable: must not reach the cache
        (orjson.dumps(doc(service="bad\x00name")), "wrong_type"),
        (orjson.dumps(doc(service="   ")), "empty_field"),
        (orjson.dumps(doc(host="")), "empty_field"),
        (orjson.dumps(doc(service="s" * 256)), "field_too_long"),
        (orjson.dumps(doc(level="loud")), "unknown_level"),
        (orjson.dumps(doc(timestamp="2026-11-24T11:00:00")), "bad_timestamp"),
        (orjson.dumps(doc(timestamp="not a time at all, sorry")), "bad_timestamp"),
        (orjson.dumps(doc(timestamp="2020-01-01T00:00:00Z")), "timestamp_out_of_range"),
        (orjson.dumps(doc(timestamp="2026-11-24T15:00:00Z")), "timestamp_out_of_range"),
        (orjson.dumps(doc(message="x" * 70_000)), "oversized"),
        (b'{"timestamp": "\\ud800"}', "invalid_json"),  # lone surrogate
        (b"[" * 60_000, "invalid_json"),  # deep nesting must not blow the stack
    ],
)
def test_invalid_records_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    result = parse_event(raw, LIMITS, NOW)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.detail  # a human explanation, always


def test_size_limit_is_configurable() -> None:
    raw = orjson.dumps(doc(message="x" * 1000))
    assert isinstance(parse_event(raw, ParseLimits(max_message_bytes=10_000), NOW), LogEvent)
    small = parse_event(raw, ParseLimits(max_message_bytes=500), NOW)
    assert isinstance(small, Rejection) and small.reason == "oversized"


def test_time_bounds_are_configurable() -> None:
    raw = orjson.dumps(doc(timestamp="2026-11-20T00:00:00Z"))
    assert isinstance(parse_event(raw, ParseLimits(max_age=timedelta(days=7)), NOW), LogEvent)
    old = parse_event(raw, ParseLimits(max_age=timedelta(days=1)), NOW)
    assert isinstance(old, Rejection) and old.reason == "timestamp_out_of_range"


def test_encode_then_parse_round_trips() -> None:
    ev = parse(doc(level="error", tenant="acme", metadata={"a": [1, 2.5, None, "x"]}))
    assert isinstance(ev, LogEvent)
    assert parse_event(encode_event(ev), LIMITS, NOW) == ev
