"""Detection checkpoints: one serialized engine state per Kafka partition, with the offset it
describes, saved in the batch's transaction so that it never runs ahead of the stored rows."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


def save_checkpoints(conn: psycopg.Connection, topic: str, items: Sequence[tuple[int, int, bytes]]) -> None:
    """Upsert (partition, next offset, state) triples."""
    if not items:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detector_checkpoints (kafka_topic, kafka_partition, next_offset, state) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET "
            "next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, saved_at = now()",
            [(topic, p, o, state) for p, o, state in items],
        )


def load_checkpoints(
    conn: psycopg.Connection, topic: str, partitions: Sequence[int]
) -> dict[int, tuple[int, bytes]]:
    """Saved detection state per partition: (next_offset it describes, state)."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT kafka_partition, next_offset, state FROM detector_checkpoints "
            "WHERE kafka_topic = %s AND kafka_partition = ANY(%s)",
            (topic, list(partitions)),
        ).fetchall()
    return {int(p): (int(o), bytes(s)) for p, o, s in rows}
