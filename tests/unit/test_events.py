"""The event contract, as tables: what is accepted, normalised and rejected (hostile inputs included)."""

from __future__ import annotations

import json
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
        (b"[" * 60_000, "too_deeply_nested"),  # decided before any decoder recurses
        # what the fast decoder skips without looking must still be checked
        (orjson.dumps(doc())[:-1] + b',"extra":"caf\xe9"}', "invalid_utf8"),
        (orjson.dumps(doc(metadata=_DROP))[:-1] + b',"metadata":{"k":"caf\xe9"}}', "invalid_utf8"),
        (orjson.dumps(doc(metadata=_DROP))[:-1] + b',"metadata":{"k":NaN}}', "invalid_json"),
        (orjson.dumps(doc(metadata=_DROP))[:-1] + b',"metadata":{"k":1e400}}', "invalid_json"),
        (orjson.dumps(doc(metadata=_DROP))[:-1] + b',"metadata":{"k":[1,]}}', "invalid_json"),
        (b"\xef\xbb\xbf" + orjson.dumps(doc()), "invalid_json"),  # a byte order mark
        (orjson.dumps(doc()) + b" x", "invalid_json"),
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


# -- the fast decoder against the general path ----------------------------------------------------
# EventParser.fields decodes well-formed records with msgspec and leaves everything else to the
# orjson path, which alone decides rejections. These tests hold the two to the same answers.

# fmt: off
_HOSTILE_VALUES: list[Any] = [
    None, True, 0, -1, 412, 2**63, -(2**63), 2**64 + 1, 10**30, 1.5, -0.0, 1e308, "", " ", "x",
    "INFO", "warning", "2026-11-24T11:00:00Z", "2026-11-24 11:00:00.123456789+01:00",
    "2026-11-24T11:00:00+0100", "caf\u00e9 \u65e5\u672c", "a\x00b", "tab\there", "\ud83d\ude00",
    [], [1, "a"], {}, {"duration_ms": 5}, {"duration_ms": "5"}, {"duration_ms": 10**30},
    {"duration_ms": 2**64}, {"duration_ms": True}, {"nested": {"duration_ms": 1}}, "s" * 300,
]
# fmt: on
_FIELDS = ("timestamp", "level", "service", "host", "message", "metadata", "tenant", "extra")


def _same(fast: Any, general: Any) -> bool:
    """Equal results; metadata compared as JSON values (the fast path keeps the sender's text)."""
    if isinstance(fast, Rejection) or isinstance(general, Rejection):
        return bool(fast == general)
    return bool(
        fast[:6] == general[:6]
        and fast[6][:1] == general[6][:1] == JSONB_VERSION
        and orjson.loads(fast[6][1:]) == orjson.loads(general[6][1:])
        and fast[7] == general[7]
        and type(fast[7]) is type(general[7])
    )


class _CountingParser(EventParser):
    """Counts the records the fast path left to the general one."""

    general = 0

    def _fields_general(self, raw: bytes) -> tuple[Any, ...] | Rejection:
        self.general += 1
        return super()._fields_general(raw)


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(doc()),
        orjson.dumps(doc(tenant="acme", level="warning", metadata={"duration_ms": 1.5, "a": [1, {}]})),
        orjson.dumps(doc(metadata=_DROP, message="café 日本 ok")),  # UTF-8, not escaped
        orjson.dumps(doc(timestamp="2026-11-24T10:00:00.123456789-01:00", service=" padded ")),
        orjson.dumps(doc(level="loud")),  # a rejection the fast path decides (after decoding)
    ],
)
def test_well_formed_records_take_the_fast_path(raw: bytes) -> None:
    parser = _CountingParser(LIMITS, NOW)
    result = parser.fields(raw)
    assert parser.general == 0
    assert _same(result, parser._fields_general(raw))


def test_fast_and_general_paths_agree_on_hostile_field_values() -> None:
    rng = random.Random(11)
    parser = _CountingParser(LIMITS, NOW)
    fast_taken = fast_accepted = 0
    for _ in range(5000):
        d = doc(tenant="acme", metadata={"duration_ms": 12, "request_id": "r-9"})
        for name in rng.sample(_FIELDS, rng.randint(1, 3)):
            d[name] = rng.choice([*_HOSTILE_VALUES, _DROP])
        d = {k: v for k, v in d.items() if v is not _DROP}
        # the stdlib encoder: it writes huge integers, and raw (not escaped) non-ASCII and surrogates
        raw = json.dumps(d, ensure_ascii=rng.random() < 0.3).encode("utf-8", "surrogatepass")
        before = parser.general
        fast, general = parser.fields(raw), EventParser._fields_general(parser, raw)
        assert _same(fast, general), (raw, fast, general)
        fast_taken += parser.general == before
        fast_accepted += parser.general == before and isinstance(fast, tuple)
    # the fast path decided many of these records, accepting some: it was really compared
    assert fast_taken > 400 and fast_accepted > 200, (fast_taken, fast_accepted)


def test_fast_and_general_paths_agree_on_mutated_bytes() -> None:
    """Random byte edits of valid records (truncation, stray quotes, bad UTF-8, huge numbers)."""
    rng = random.Random(12)
    parser = _CountingParser(LIMITS, NOW)
    bases = [
        orjson.dumps(doc()),
        orjson.dumps(doc(tenant="acme", metadata={"duration_ms": 3.5, "tags": ["a", {"b": None}]})),
        b'{ "timestamp" : "2026-11-24T11:00:00.5Z", "level":"err", "service":"api", "host":"h",'
        b' "message":"caf\xc3\xa9 ok", "metadata" : { "duration_ms" : 7 } }',
    ]
    # fmt: off
    pieces = [b'"', b"\\", b"\\u0000", b"{", b"}", b"[", b",", b":", b"\xff", b"\xc3", b"\xa9", b" ",
              b"1e400", b"99999999999999999999999", b"NaN", b"null", b"true", b"0", b"\n", b"\t"]
    # fmt: on
    fast_taken = 0
    for _ in range(20_000):
        raw = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(raw) + 1)
            op = rng.random()
            if op < 0.4:
                raw[pos:pos] = rng.choice(pieces)
            elif op < 0.7:
                raw[pos : pos + rng.randint(1, 4)] = rng.choice(pieces)
            else:
                del raw[pos : pos + rng.randint(1, 4)]
        value = bytes(raw)
        before = parser.general
        fast, general = parser.fields(value), EventParser._fields_general(parser, value)
        assert _same(fast, general), (value, fast, general)
        fast_taken += parser.general == before
    assert fast_taken > 1000  # edits that kept a record well formed: the fast path decided them


def test_a_record_with_an_escape_still_parses() -> None:
    """Escapes take the general path: the result is the same event either way."""
    plain = parse(doc(message="caf\u00e9"))
    escaped = parse(orjson.dumps(doc(message="x"))[:-1].replace(b'"x"', b'"caf\\u00e9"') + b"}")
    assert isinstance(plain, LogEvent) and isinstance(escaped, LogEvent)
    assert plain.message == escaped.message == "caf\u00e9"
