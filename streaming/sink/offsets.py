"""The offset protocol's statements: `ingest_offsets` holds, per Kafka partition, the next offset
to read; its row, locked FOR UPDATE, fences a partition against a second owner (see
sql/003_ingest_offsets.sql)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg


class OffsetsWentBack(Exception):
    """PostgreSQL holds lower offsets than this consumer committed there: commits were lost
    (a crash with synchronous_commit = off, a failover) or offsets were reset by hand. Nothing
    in this batch was written; the consumer must start over from the stored offsets."""

    def __init__(self, behind: dict[int, tuple[int, int]]) -> None:
        self.behind = behind  # partition -> (stored, committed by us)
        super().__init__(
            ", ".join(f"partition {p}: stored {s}, we committed {c}" for p, (s, c) in sorted(behind.items()))
        )


def ensure_offset_rows(conn: psycopg.Connection, topic: str, partitions: Sequence[int]) -> None:
    """A row at offset 0 for each partition never seen (so that it can be locked)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) "
            "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
            [(topic, p) for p in partitions],
        )


def read_offsets(conn: psycopg.Connection, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """The stored next offset of each partition, without locking (for an assignment)."""
    rows = conn.execute(
        "SELECT kafka_partition, next_offset FROM ingest_offsets "
        "WHERE kafka_topic = %s AND kafka_partition = ANY(%s)",
        (topic, list(partitions)),
    ).fetchall()
    return {int(p): int(o) for p, o in rows}


def lock_offsets(conn: psycopg.Connection, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """The stored next offset of each partition, its row locked until the transaction ends
    (in partition order, so two consumers never wait on each other in a cycle): the fence
    against another owner writing the same partition."""
    return {
        int(p): int(o)
        for p, o in conn.execute(
            "SELECT kafka_partition, next_offset FROM ingest_offsets "
            "WHERE kafka_topic = %s AND kafka_partition = ANY(%s) "
            "ORDER BY kafka_partition FOR UPDATE",
            (topic, list(partitions)),
        ).fetchall()
    }


def advance_offsets(conn: psycopg.Connection, topic: str, next_offsets: Iterable[tuple[int, int]]) -> None:
    """Store (partition, next offset) pairs; the caller holds their rows' locks."""
    params = [(o, topic, p) for p, o in next_offsets]
    if not params:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE ingest_offsets SET next_offset = %s, updated_at = now() "
            "WHERE kafka_topic = %s AND kafka_partition = %s",
            params,
        )
