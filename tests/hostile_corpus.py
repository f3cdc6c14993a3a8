"""Hostile records, each with the answer the event contract gives it: a regression corpus.

Every record here once raised, or sits at an edge where a decoder could: the unit tests run
each through EventParser and build_batch as a plain example, the integration test sends all of
them through the real broker and consumer among valid traffic. A failure a property test finds
is added here, with the reason it must get (None: the record is a valid event and is stored).

Timestamps are built from `now`, so the same corpus is valid in a unit test's fixed clock and
in a live consumer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from loganalyzer.events import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_METADATA_DEPTH


@dataclass(frozen=True)
class HostileCase:
    kind: str
    raw: bytes | None
    #: the dead-letter reason, or None when the record is a valid event and must be stored
    reason: str | None


def _ts(now: datetime) -> bytes:
    return (now - timedelta(minutes=5)).isoformat().replace("+00:00", "Z").encode()


def _record(
    now: datetime, *, ts: bytes | None = None, tail: bytes = b"", message: bytes = b'"hostile"'
) -> bytes:
    """A record with every required field; `tail` adds or repeats fields (a leading comma)."""
    return (
        b'{"timestamp":"'
        + (ts if ts is not None else _ts(now))
        + b'","level":"INFO","service":"hostile","host":"h-1","message":'
        + message
        + tail
        + b"}"
    )


def _nested(opening: bytes, closing: bytes, levels: int, leaf: bytes = b"1") -> bytes:
    return opening * levels + leaf + closing * levels


def hostile_cases(now: datetime) -> list[HostileCase]:
    """The corpus for a consumer whose clock reads `now` and whose limits are the defaults."""
    r = _record
    at_limit = _nested(b'{"a":', b"}", DEFAULT_MAX_METADATA_DEPTH - 1, b"{}")  # metadata itself is 1
    over_limit = _nested(b'{"a":', b"}", DEFAULT_MAX_METADATA_DEPTH, b"{}")
    cases = [
        # -- not a record at all
        HostileCase("tombstone", None, "not_an_object"),
        HostileCase("empty value", b"", "invalid_json"),
        HostileCase("whitespace only", b" \n\t ", "invalid_json"),
        HostileCase("plain text", b"GET /index.html 200", "invalid_json"),
        HostileCase("truncated object", r(now)[:40], "invalid_json"),
        HostileCase("trailing garbage", r(now) + b" }", "invalid_json"),
        HostileCase("byte order mark", b"\xef\xbb\xbf" + r(now), "invalid_json"),
        HostileCase("two objects", r(now) + r(now), "invalid_json"),
        HostileCase("JSON array", b"[1,2,3]", "not_an_object"),
        HostileCase("JSON null", b"null", "not_an_object"),
        HostileCase("JSON string", b'"{\\"level\\":\\"INFO\\"}"', "not_an_object"),
        HostileCase("JSON number 1e400", b"1e400", "invalid_json"),
        # -- bytes and characters
        HostileCase("invalid UTF-8 bytes", b"\xff\xfe\xfd\x00garbage", "invalid_utf8"),
        HostileCase("invalid UTF-8 in message", r(now, message=b'"caf\xe9"'), "invalid_utf8"),
        HostileCase("overlong UTF-8 slash", r(now, message=b'"\xc0\xaf"'), "invalid_utf8"),
        HostileCase("raw surrogate bytes", r(now, message=b'"\xed\xa0\x80"'), "invalid_utf8"),
        HostileCase("lone surrogate escape in message", r(now, message=b'"\\ud800"'), "invalid_json"),
        HostileCase(
            "lone surrogate escape in metadata key", r(now, tail=b',"metadata":{"\\udfff":1}'), "invalid_json"
        ),
        HostileCase("surrogate pair escape", r(now, message=b'"\\ud83d\\ude00"'), None),
        HostileCase("raw NUL byte in a string", r(now, message=b'"a\x00b"'), "invalid_json"),
        HostileCase("raw newline in a string", r(now, message=b'"a\nb"'), "invalid_json"),
        HostileCase("NUL escape in message", r(now, message=b'"a\\u0000b"'), None),
        HostileCase(
            "NUL escape in metadata key and value", r(now, tail=b',"metadata":{"k\\u0000":"\\u0000"}'), None
        ),
        HostileCase(
            "NUL escape in service",
            b'{"timestamp":"'
            + _ts(now)
            + b'","level":"INFO","service":"a\\u0000b","host":"h","message":"m"}',
            "wrong_type",
        ),
        HostileCase("NUL escape in level", r(now, tail=b',"level":"INFO\\u0000"'), "unknown_level"),
        # -- sizes
        HostileCase(
            "over the size limit", r(now, message=b'"' + b"x" * DEFAULT_MAX_MESSAGE_BYTES + b'"'), "oversized"
        ),
        HostileCase(
            "message just under the limit",
            r(now, message=b'"' + b"x" * (DEFAULT_MAX_MESSAGE_BYTES - 200) + b'"'),
            None,
        ),
        HostileCase("empty message", r(now, message=b'""'), None),
        HostileCase("size limit of brackets", b"[" * (DEFAULT_MAX_MESSAGE_BYTES + 1), "oversized"),
        # -- nesting: checked before any decoder recurses
        HostileCase(
            "metadata objects 1,000 deep",
            r(now, tail=b',"metadata":' + _nested(b'{"a":', b"}", 1000)),
            "too_deeply_nested",
        ),
        HostileCase(
            "metadata arrays 1,000 deep",
            r(now, tail=b',"metadata":{"a":' + _nested(b"[", b"]", 1000) + b"}"),
            "too_deeply_nested",
        ),
        HostileCase(
            "metadata 300 deep with an escape (the general decoder)",
            r(now, message=b'"caf\\u00e9"', tail=b',"metadata":' + _nested(b'{"a":', b"}", 300)),
            "too_deeply_nested",
        ),
        HostileCase("top-level arrays 1,000 deep", _nested(b"[", b"]", 1000), "too_deeply_nested"),
        HostileCase("top-level objects 1,000 deep", _nested(b'{"a":', b"}", 1000), "too_deeply_nested"),
        HostileCase("unclosed arrays 60,000 deep", b"[" * 60_000, "too_deeply_nested"),
        HostileCase(
            "unknown field 1,000 deep",
            r(now, tail=b',"extra":' + _nested(b"[", b"]", 1000)),
            "too_deeply_nested",
        ),
        HostileCase(
            "metadata one level over the limit",
            r(now, tail=b',"metadata":' + over_limit),
            "too_deeply_nested",
        ),
        HostileCase("metadata at the depth limit", r(now, tail=b',"metadata":' + at_limit), None),
        HostileCase("brackets inside strings", r(now, message=b'"' + b"[{" * 2000 + b'"'), None),
        HostileCase("escaped quotes and brackets", r(now, message=b'"' + b'\\"[' * 2000 + b'"'), None),
        # -- timestamps
        HostileCase(
            "year 1 with a positive offset", r(now, ts=b"0001-01-01T00:00:00+01:00"), "timestamp_out_of_range"
        ),
        HostileCase(
            "year 9999 with a negative offset",
            r(now, ts=b"9999-12-31T23:59:59-01:00"),
            "timestamp_out_of_range",
        ),
        HostileCase(
            "year 1 with an offset (the general decoder)",
            r(now, ts=b"0001-01-01T00:00:00+01:00", message=b'"\\u00e9"'),
            "timestamp_out_of_range",
        ),
        HostileCase(
            "year 9999 with an offset, space separator",
            r(now, ts=b"9999-12-31 23:59:59.999-23:59"),
            "timestamp_out_of_range",
        ),
        HostileCase("year 0", r(now, ts=b"0000-01-01T00:00:00Z"), "bad_timestamp"),
        HostileCase("no offset", r(now, ts=b"2026-11-24T11:00:00"), "bad_timestamp"),
        HostileCase("offset hour 24", r(now, ts=b"2026-11-24T11:00:00+24:00"), "bad_timestamp"),
        HostileCase("epoch number as timestamp", r(now, tail=b',"timestamp":1732446000'), "wrong_type"),
        HostileCase("far future", r(now, ts=b"2999-01-01T00:00:00Z"), "timestamp_out_of_range"),
        # -- numbers
        HostileCase("1e400 in metadata", r(now, tail=b',"metadata":{"k":1e400}'), "invalid_json"),
        HostileCase("duration 1e400", r(now, tail=b',"metadata":{"duration_ms":1e400}'), "invalid_json"),
        HostileCase("NaN in metadata", r(now, tail=b',"metadata":{"k":NaN}'), "invalid_json"),
        HostileCase("2**64 in metadata", r(now, tail=b',"metadata":{"k":18446744073709551616}'), None),
        HostileCase("duration 2**64", r(now, tail=b',"metadata":{"duration_ms":18446744073709551616}'), None),
        HostileCase(
            "duration -2**63-1", r(now, tail=b',"metadata":{"duration_ms":-9223372036854775809}'), None
        ),
        HostileCase("duration 1e308", r(now, tail=b',"metadata":{"duration_ms":1e308}'), None),
        HostileCase("duration as a boolean", r(now, tail=b',"metadata":{"duration_ms":true}'), None),
        HostileCase(
            "400-digit integer", r(now, tail=b',"metadata":{"k":' + b"9" * 400 + b"}"), "invalid_json"
        ),
        # -- types and fields
        HostileCase(
            "level as a number",
            b'{"timestamp":"' + _ts(now) + b'","level":5,"service":"a","host":"h","message":"m"}',
            "wrong_type",
        ),
        HostileCase("service as an object", r(now, tail=b',"service":{"name":"a"}'), "wrong_type"),
        HostileCase("metadata as a list", r(now, tail=b',"metadata":[1,2]'), "wrong_type"),
        HostileCase("metadata as a string", r(now, tail=b',"metadata":"k=v"'), "wrong_type"),
        HostileCase("tenant as a list", r(now, tail=b',"tenant":["a"]'), "wrong_type"),
        HostileCase("message null", r(now, message=b"null"), "missing_field"),
        HostileCase(
            "no timestamp", b'{"level":"INFO","service":"a","host":"h","message":"m"}', "missing_field"
        ),
        HostileCase("empty service", r(now, tail=b',"service":"   "'), "empty_field"),
        HostileCase("256-character host", r(now, tail=b',"host":"' + b"h" * 256 + b'"'), "field_too_long"),
        HostileCase("unknown level", r(now, tail=b',"level":"LOUD"'), "unknown_level"),
        HostileCase("duplicate keys, last one wrong", r(now, tail=b',"level":5'), "wrong_type"),
        HostileCase("duplicate keys, last one valid", r(now, tail=b',"level":"error"'), None),
        HostileCase("duplicate metadata keys", r(now, tail=b',"metadata":{"a":1,"a":2}'), None),
        HostileCase("empty key and unknown fields", r(now, tail=b',"":1,"extra":{"x":[]}'), None),
    ]
    kinds = [c.kind for c in cases]
    assert len(set(kinds)) == len(kinds), "every kind is named once"
    return cases


def load_external_corpus(path: Path) -> list[bytes | None]:
    """Someone else's hostile records: a directory holds one record per file (any bytes, an
    empty file is an empty value); a file holds one record per line (JSON Lines, the newline
    removed). Sorted by file name, so runs are repeatable."""
    if path.is_dir():
        return [p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()]
    return [line.removesuffix(b"\r") for line in path.read_bytes().split(b"\n") if line]


def valid_event(now: datetime, i: int) -> bytes:
    """The i-th valid event of the traffic the hostile records are mixed into."""
    return orjson.dumps(
        {
            "timestamp": (now - timedelta(minutes=30) + timedelta(milliseconds=i))
            .isoformat()
            .replace("+00:00", "Z"),
            "level": ("INFO", "warning", "err", "DEBUG")[i % 4],
            "service": f"svc-{i % 5}",
            "host": f"host-{i % 3}",
            "message": f"request {i} handled in {i % 250} ms",
            "metadata": {"corpus_valid_id": i, "duration_ms": i % 250},
        }
    )
