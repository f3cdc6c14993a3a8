"""The log event contract: what the `logs` topic accepts, what is normalised, what is rejected.

Parsing is pure (bytes in, `LogEvent` or `Rejection` out) so that the consumer, the generator's
self-checks and the tests share exactly one definition. docs/event-contract.md is the user-facing
version of the rules below; keep the two in step.

Why a NamedTuple: the consumer parses 100k+ events per second, and a tuple goes straight into a
binary COPY without another copy of its fields. The consumer's hot path (`EventParser.fields`)
goes further and returns the metadata already in jsonb's binary wire form, plus the number
`metadata.duration_ms` (its own column), so the COPY never calls back into Python per row.

Two decoders, one contract: a well-formed record is decoded by msgspec straight into its fields,
and its metadata is stored as the sender's JSON text (decoded once to check it, never encoded
again), which costs about 30 % less than the general path. Anything the fast path does not take
(a decode or validation error, any `\\u` escape, non-ASCII bytes that are not UTF-8, a field the
contract does not name) goes through the general orjson path, which alone decides what is
rejected and why. tests/unit/test_events.py holds the two to the same answers on its hostile
table and on thousands of mutated records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import orjson

DEFAULT_TENANT = "default"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
#: How deep `metadata` may nest (metadata itself is level 1). Both decoders recurse once per
#: level, and orjson's encoder stops at 255 levels: a bound well below both keeps a hostile
#: record a dead letter instead of a RecursionError.
DEFAULT_MAX_METADATA_DEPTH = 64
#: The largest depth the settings accept (orjson encodes at most 255 levels, the record adds one).
MAX_METADATA_DEPTH_LIMIT = 250

#: Canonical levels, in increasing severity.
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
ERROR_LEVELS = frozenset({"ERROR", "FATAL"})

#: Accepted spellings (compared case-insensitively, surrounding spaces ignored) → canonical level.
LEVEL_ALIASES: dict[str, str] = {
    "trace": "TRACE",
    "debug": "DEBUG",
    "info": "INFO",
    "information": "INFO",
    "notice": "INFO",
    "warn": "WARN",
    "warning": "WARN",
    "error": "ERROR",
    "err": "ERROR",
    "fatal": "FATAL",
    "critical": "FATAL",
    "crit": "FATAL",
    "emergency": "FATAL",
    "emerg": "FATAL",
    "alert": "FATAL",
    "panic": "FATAL",
}

#: Limits on the short identifying fields: they are indexed and grouped by, so keep them short.
MAX_NAME_CHARS = 255

REQUIRED_FIELDS = ("timestamp", "level", "service", "host", "message")

#: jsonb's binary wire format is a version byte (1) followed by the JSON text.
JSONB_VERSION = b"\x01"
_EMPTY_METADATA = JSONB_VERSION + b"{}"


class _WireEvent(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """The shape of a well-formed record, for the fast decoder (see the module docstring).

    Unknown fields send a record to the general path: msgspec would skip them checking only
    their syntax, so a value orjson refuses (1e400) would be accepted here and rejected there."""

    timestamp: str
    level: str
    service: str
    host: str
    message: str
    metadata: msgspec.Raw = msgspec.Raw(b"{}")
    tenant: str = DEFAULT_TENANT


_decode_wire = msgspec.json.Decoder(_WireEvent).decode
#: Metadata is decoded in full although only duration_ms is read: a skipped value is not checked
#: (1e400, or bad UTF-8, would reach PostgreSQL), and the result must be what orjson would accept.
_decode_metadata = msgspec.json.Decoder(dict[str, Any]).decode
#: A run of digits at least as long as a double's largest integer part (309 digits): such a
#: number may be beyond what orjson accepts, so its record goes the general path.
_LONG_NUMBER = re.compile(rb"\d{309}")
#: Integers a float8 column (and orjson) take as they are; larger ones go the general path.
_MAX_EXACT_INT = 1 << 63


class LogEvent(NamedTuple):
    """One valid, normalised log event. Field order is the `logs` table's COPY column order."""

    timestamp: datetime  # timezone-aware, UTC
    tenant: str
    service: str
    host: str
    level: str  # one of LEVELS
    message: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not accepted. `reason` is a stable machine code, `detail` is for humans."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds applied while parsing; read from settings once per process."""

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_age: timedelta = timedelta(days=30)
    max_future_skew: timedelta = timedelta(hours=2)
    max_metadata_depth: int = DEFAULT_MAX_METADATA_DEPTH


#: The stable reason codes a dead-letter row can carry.
REASONS = (
    "oversized",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "empty_field",
    "field_too_long",
    "unknown_level",
    "bad_timestamp",
    "timestamp_out_of_range",
    "too_deeply_nested",
    "unparseable",
    "db_rejected",
)


def normalise_level(raw: str) -> str | None:
    """Canonical level for a spelling, or None when the spelling is unknown."""
    return LEVEL_ALIASES.get(raw.strip().lower())


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def parse_timestamp(raw: str) -> datetime | None:
    """Parse an RFC 3339 timestamp (offset required; 'Z' accepted) into an aware UTC datetime.

    RFC 3339 allows a space instead of 'T' and lower-case 't'/'z'; fractional seconds of any
    length are truncated to microseconds. A timestamp without an offset is ambiguous and rejected,
    and so are the other ISO 8601 forms Python would accept (week dates, basic format, no seconds):
    the regular expression is the contract, `fromisoformat` only does the arithmetic.
    """
    n = len(raw)
    # Fastest path, the shape every well-behaved producer sends ("…T08:31:55.283Z", 1-6 fraction
    # digits): one slice comparison, then fromisoformat checks every digit and range (it would
    # accept an empty fraction and ignore a 7th digit, hence the length bounds).
    if raw[-1:] == "Z" and raw[4:20:3] == "--T::." and 21 < n < 28:
        try:
            return datetime.fromisoformat(raw)  # "Z" parses to UTC itself
        except ValueError:
            return None
    # Fast path for the other canonical shapes (upper-case T, offset Z or ±hh:mm): a few index
    # checks instead of the regular expression; fromisoformat then checks every digit and range.
    if (
        20 <= n <= 40
        and raw[10] == "T"
        and raw[4] == "-"
        and raw[7] == "-"
        and raw[13] == ":"
        and raw[16] == ":"
    ):
        if raw[-1] == "Z":
            end = n - 1
        elif raw[-3] == ":" and raw[-6] in "+-":
            end = n - 6
        else:
            end = -1
        if end == 19 or (end > 20 and raw[19] == "." and raw[20:end].isdigit()):
            try:
                ts = datetime.fromisoformat(raw)
            except ValueError:  # e.g. month 13, hour 25, a letter where a digit belongs
                return None
            return ts if ts.tzinfo is UTC else _to_utc(ts)
    s = raw.strip()
    if RFC3339.fullmatch(s) is None:
        return None
    if s[10] != "T":
        s = s[:10] + "T" + s[11:]
    if s[-1] == "z":
        s = s[:-1] + "Z"
    try:
        ts = datetime.fromisoformat(s)
    except ValueError:
        return None
    return ts if ts.tzinfo is UTC else _to_utc(ts)


_UTC_MIN = datetime.min.replace(tzinfo=UTC)
_UTC_MAX = datetime.max.replace(tzinfo=UTC)


def _to_utc(ts: datetime) -> datetime:
    """UTC of an aware datetime. An offset can carry a valid local time past year 1 or 9999
    ("0001-01-01T00:00:00+01:00"), which has no datetime in UTC: it becomes that end of the range,
    outside every accepted window, so the record is `timestamp_out_of_range` and not a crash."""
    try:
        return ts.astimezone(UTC)
    except OverflowError:
        return _UTC_MIN if ts.year == 1 else _UTC_MAX


#: Exact spellings seen in practice, looked up before the case-insensitive path (hot loop).
_LEVEL_FAST: dict[str, str] = {
    **{k: v for k, v in LEVEL_ALIASES.items()},
    **{k.upper(): v for k, v in LEVEL_ALIASES.items()},
    **{k.capitalize(): v for k, v in LEVEL_ALIASES.items()},
}


class EventParser:
    """Parses records against bounds computed once per batch (the hot loop of the consumer).

    `now` bounds the accepted event time (max age / max future skew), so that a clock-skewed or
    hostile producer cannot create partitions for arbitrary days.
    """

    __slots__ = ("_earliest", "_latest", "_names", "_scan_from", "limits")

    def __init__(self, limits: ParseLimits, now: datetime) -> None:
        self.limits = limits
        self._earliest = now - limits.max_age
        self._latest = now + limits.max_future_skew
        #: metadata (with jsonb's version byte) this long or shorter cannot nest deeper than the
        #: bound: each level takes an opening and a closing bracket
        self._scan_from = 2 * limits.max_metadata_depth + 2
        #: raw tenant/service/host spelling -> validated, trimmed name. Names repeat in almost
        #: every record, so each spelling is validated once per batch instead of once per record.
        self._names: dict[str, str] = {}

    def _name(self, field_name: str, raw: str) -> str | Rejection:
        value = raw.strip()
        if not value:
            return Rejection("empty_field", f"field '{field_name}' is empty")
        if len(value) > MAX_NAME_CHARS:
            return Rejection("field_too_long", f"field '{field_name}' is longer than {MAX_NAME_CHARS} chars")
        if "\x00" in value:
            return Rejection("wrong_type", f"field '{field_name}' contains a NUL character")
        if len(self._names) < 100_000:
            self._names[raw] = value
        return value

    def __call__(self, raw: bytes | None) -> LogEvent | Rejection:
        fields = self.fields(raw)
        if isinstance(fields, Rejection):
            return fields
        ts, tenant, service, host, level, message, metadata, _duration = fields
        return LogEvent(ts, tenant, service, host, level, message, orjson.loads(metadata[1:]))

    def fields(self, raw: bytes | None) -> tuple[Any, ...] | Rejection:
        """The event as a plain tuple in `logs` COPY column order (the consumer's hot path: a
        NamedTuple costs a Python-level __new__ per event; a tuple concatenates in C):
        (timestamp, tenant, service, host, level, message, metadata as jsonb binary bytes,
        duration_ms as a float or None).

        Never raises: one record must not stop the consumer (a stopped consumer reads the same
        offset again when restarted, so one record would stop its partition for good). An error
        no rule foresaw becomes `unparseable` with the exception in the detail; the `try` costs
        nothing until something raises."""
        try:
            if raw is None:
                return Rejection("not_an_object", "record has no value (tombstone)")
            if len(raw) > self.limits.max_message_bytes:
                return Rejection(
                    "oversized", f"record is {len(raw)} bytes; the limit is {self.limits.max_message_bytes}"
                )
            # msgspec keeps metadata raw without checking its UTF-8, and an escape may be a NUL or
            # a lone surrogate: such records take the general path.
            if (b"\\" not in raw or b"\\u" not in raw) and (raw.isascii() or _is_utf8(raw)):
                try:
                    # Only `metadata` can nest here (the other fields must be strings, unknown
                    # fields are refused). msgspec recurses as it skips it, under the interpreter's
                    # recursion limit: past that limit it raises RecursionError (a clean
                    # exception, never a stack overflow) and the general path, which checks the
                    # depth before orjson decodes anything, says why.
                    wire = _decode_wire(raw)
                    metadata = wire.metadata
                    encoded = JSONB_VERSION + metadata
                    # Nesting deeper than the bound needs twice as many brackets: short metadata
                    # (almost all of it) costs one comparison here, not a scan.
                    if len(encoded) > self._scan_from and _deeper_than(
                        encoded, self.limits.max_metadata_depth
                    ):
                        return self._too_deep()
                    d = _decode_metadata(metadata).get("duration_ms")
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                    pass
                else:
                    if len(metadata) > 308 and _LONG_NUMBER.search(metadata) is not None:
                        # msgspec takes an integer of any size; beyond a double's range orjson
                        # (the contract) rejects it: let the general path decide.
                        return self._fields_general(raw)
                    if type(d) is float:
                        duration: float | None = d
                    elif type(d) is int:  # (`type is`: a bool is not a number here, as in jsonb)
                        if not -_MAX_EXACT_INT < d < _MAX_EXACT_INT:
                            return self._fields_general(raw)  # orjson's rule for huge integers
                        duration = float(d)
                    else:
                        duration = None
                    identity = self._identity(
                        wire.timestamp, wire.level, wire.tenant, wire.service, wire.host
                    )
                    if isinstance(identity, Rejection):
                        return identity
                    return (*identity, wire.message, encoded, duration)
            return self._fields_general(raw)
        except Exception as exc:  # whatever it is, it is one record's problem
            return unparseable(exc)

    def _too_deep(self) -> Rejection:
        return Rejection(
            "too_deeply_nested",
            f"objects or arrays nest more than {self.limits.max_metadata_depth} levels below the "
            "record (LOG_MAX_METADATA_DEPTH)",
        )

    def _identity(
        self, ts_raw: str, level_raw: str, tenant: Any, service: Any, host: Any
    ) -> tuple[datetime, str, str, str, str] | Rejection:
        """The validated (timestamp, tenant, service, host, level), in the order rejections are
        reported: timestamp, its range, level, then the names (a missing tenant is the default)."""
        ts = parse_timestamp(ts_raw)
        if ts is None:
            return Rejection(
                "bad_timestamp", f"'timestamp' {ts_raw[:64]!r} is not RFC 3339 with a UTC offset"
            )
        if ts < self._earliest or ts > self._latest:
            return Rejection(
                "timestamp_out_of_range",
                f"'timestamp' {ts_raw[:64]!r} is outside [now - {self.limits.max_age}, "
                f"now + {self.limits.max_future_skew}]",
            )
        level = _LEVEL_FAST.get(level_raw) or normalise_level(level_raw)
        if level is None:
            return Rejection("unknown_level", f"'level' {level_raw[:32]!r} is not a known log level")
        names = self._names
        if type(tenant) is not str:
            if tenant is not None:
                kind = type(tenant).__name__
                return Rejection("wrong_type", f"field 'tenant' must be a string, got {kind}")
            tenant = DEFAULT_TENANT
        if (clean := names.get(tenant)) is not None:
            tenant = clean
        elif isinstance(tenant := self._name("tenant", tenant), Rejection):
            return tenant
        if (clean := names.get(service)) is not None:
            service = clean
        elif isinstance(service := self._name("service", service), Rejection):
            return service
        if (clean := names.get(host)) is not None:
            host = clean
        elif isinstance(host := self._name("host", host), Rejection):
            return host
        return (ts, tenant, service, host, level)

    def _fields_general(self, raw: bytes) -> tuple[Any, ...] | Rejection:
        """Every record the fast path does not take; the one place that says why a record is
        rejected."""
        if _deeper_than(raw, self.limits.max_metadata_depth + 1):  # +1: the record's own object
            return self._too_deep()
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _json_rejection(raw, exc)
        if type(doc) is not dict:
            return Rejection("not_an_object", f"expected a JSON object, got {type(doc).__name__}")
        get = doc.get
        ts_raw = get("timestamp")
        level_raw = get("level")
        service = get("service")
        host = get("host")
        message = get("message")
        if not (
            type(ts_raw) is str
            and type(level_raw) is str
            and type(service) is str
            and type(host) is str
            and type(message) is str
        ):
            return _field_rejection(doc)
        identity = self._identity(ts_raw, level_raw, get("tenant"), service, host)
        if isinstance(identity, Rejection):
            return identity

        metadata = get("metadata")
        if b"\\u0000" in raw:
            # JSON can only carry NUL as this escape. PostgreSQL text and jsonb cannot store NUL:
            # replace it in the message and metadata rather than lose the event.
            message = message.replace("\x00", "\ufffd")
            metadata = _without_nul(metadata)
        if metadata is None:
            encoded = _EMPTY_METADATA
            duration = None
        elif type(metadata) is not dict:
            return Rejection(
                "wrong_type", f"field 'metadata' must be an object, got {type(metadata).__name__}"
            )
        else:
            encoded = JSONB_VERSION + orjson.dumps(metadata)
            d = metadata.get("duration_ms")
            # A JSON number only (bool is not one): the same rule as jsonb_typeof() = 'number'.
            duration = float(d) if type(d) is int or type(d) is float else None
        return (*identity, message, encoded, duration)


def parse_event(raw: bytes | None, limits: ParseLimits, now: datetime) -> LogEvent | Rejection:
    """Validate and normalise one Kafka record value (see EventParser for batches)."""
    return EventParser(limits, now)(raw)


def unparseable(exc: BaseException) -> Rejection:
    """The dead letter of a record that raised where no rule expected it (a bug to report, not a
    reason to stop): the exception's type and message, bounded."""
    return Rejection("unparseable", f"{type(exc).__name__}: {exc}"[:1000])


#: What changes nesting in JSON text, and what changes whether a bracket is inside a string.
_STRUCTURE = re.compile(rb'["\\\[\]{}]')


def _deeper_than(raw: bytes, max_depth: int) -> bool:
    """Whether `raw` nests deeper than `max_depth`: two C-speed counts decide almost every text
    (fewer brackets than the bound cannot nest deeper than it); the exact scan runs on the rest."""
    return raw.count(b"{") + raw.count(b"[") > max_depth and nesting_exceeds(raw, max_depth)


def nesting_exceeds(raw: bytes, max_depth: int) -> bool:
    """True when objects and arrays in `raw` nest deeper than `max_depth` (the outermost value
    is level 1). Brackets inside strings do not count. Not a validator: it only has to be right
    about depth for text the decoders would otherwise accept, and it must not recurse. Linear in
    the number of quotes, backslashes and brackets; stops at the first level past the bound."""
    depth = 0
    in_string = False
    skip = -1  # the byte after a backslash inside a string: escaped, whatever it is
    for m in _STRUCTURE.finditer(raw):
        pos = m.start()
        if pos == skip:
            continue
        c = raw[pos]
        if in_string:
            if c == 0x5C:  # backslash
                skip = pos + 1
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x7B or c == 0x5B:  # { [
            depth += 1
            if depth > max_depth:
                return True
        elif c == 0x7D or c == 0x5D:  # } ]
            depth -= 1
    return False


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_rejection(raw: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return Rejection("invalid_utf8", f"not valid UTF-8: {uexc.reason} at byte {uexc.start}")
    return Rejection("invalid_json", f"not valid JSON: {exc}")


def _field_rejection(doc: dict[str, Any]) -> Rejection:
    """The first required field that is missing or not a string (the slow path of a bad record)."""
    for name in REQUIRED_FIELDS:
        value = doc.get(name)
        if value is None:
            return Rejection("missing_field", f"required field '{name}' is missing or null")
        if type(value) is not str:
            return Rejection("wrong_type", f"field '{name}' must be a string, got {type(value).__name__}")
    raise AssertionError("unreachable: every required field is a string")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def encode_event(event: LogEvent) -> bytes:
    """The canonical JSON encoding of an event (what the generator produces)."""
    doc: dict[str, Any] = {
        "timestamp": event.timestamp.isoformat().replace("+00:00", "Z"),
        "level": event.level,
        "service": event.service,
        "host": event.host,
        "message": event.message,
        "metadata": event.metadata,
    }
    if event.tenant != DEFAULT_TENANT:
        doc["tenant"] = event.tenant
    return orjson.dumps(doc)


def service_key(tenant: str, service: str) -> str:
    """ "tenant/service": how a service is named across the product (Kafka keys, per-service
    thresholds, the forest's per-service profiles)."""
    return f"{tenant}/{service}"


def partition_key(tenant: str, service: str) -> bytes:
    """Kafka key that keeps one service's events (and so its detection state) on one partition."""
    return service_key(tenant, service).encode()
