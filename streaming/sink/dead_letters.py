"""Inserting dead letters: the records (or derived rows) that could not be stored, with why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from streaming.batch import DeadLetter


def insert_dead_letters(conn: psycopg.Connection, topic: str, dead: Sequence[DeadLetter]) -> None:
    if not dead:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, kafka_key, "
            "kafka_timestamp, raw, raw_size, reason, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
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
                    d.reason,
                    d.detail.replace("\x00", "\\0"),
                )
                for d in dead
            ],
        )
