"""Inserting dead letters: the records (or rows derived from them) that could not be stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from streaming.batch import DeadLetter
from streaming.sink.isolation import Unwritable, isolating_executemany, message_of, safe_text, what_to_do

#: dead letters of rows derived from a batch (sql/009), by reason; every other one is a record's
DERIVED_SOURCES = {"pattern_rejected": "pattern", "anomaly_rejected": "anomaly"}

_SQL = (
    "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, kafka_key, "
    "kafka_timestamp, raw, raw_size, reason, detail, source) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def derived_dead_letter(
    partition: int, last_offset: int, reason: str, row: Any, exc: BaseException
) -> DeadLetter:
    """A derived row PostgreSQL refused, kept as JSON with the server's reason; it carries the
    coordinates of the last record of the batch it was derived from."""
    return DeadLetter(
        partition=partition,
        offset=last_offset,
        key=None,
        kafka_timestamp_ms=None,
        raw=_as_json(row),
        reason=reason,
        detail=f"PostgreSQL rejected the {DERIVED_SOURCES[reason]} row: {message_of(exc)}",
    )


def _as_json(row: Any) -> bytes:
    """The row as JSON bytes (lone surrogates escaped, other types as text)."""
    fields = {k: getattr(row, k) for k in row.__slots__} if hasattr(row, "__slots__") else {"row": row}
    clean = {k: safe_text(v) if isinstance(v, str) else v for k, v in fields.items()}
    try:
        return orjson.dumps(clean, default=str)
    except TypeError:
        return safe_text(repr(clean)).encode()


def insert_dead_letters(conn: psycopg.Connection, topic: str, dead: Sequence[DeadLetter]) -> None:
    """Insert them all; one that PostgreSQL still refuses stops the batch (Unwritable), naming
    its record: a dead letter is the last place a record can go."""
    params = [
        (
            topic,
            d.partition,
            d.offset,
            d.key,
            None
            if d.kafka_timestamp_ms is None
            else datetime.fromtimestamp(d.kafka_timestamp_ms / 1000, tz=UTC),
            d.raw,
            0 if d.raw is None else len(d.raw),
            safe_text(d.reason),
            safe_text(d.detail),
            DERIVED_SOURCES.get(d.reason, "record"),
        )
        for d in dead
    ]
    refused = isolating_executemany(conn, _SQL, params)
    if refused:
        i, exc = refused[0]
        d = dead[i]
        raise Unwritable(
            f"PostgreSQL refused the dead letter of record {topic}/{d.partition}/{d.offset} "
            f"({d.reason}): {message_of(exc)}; {what_to_do(topic, d.partition, d.offset)}"
        ) from exc
