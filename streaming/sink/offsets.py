"""The offset protocol's statements: `ingest_offsets` holds, per Kafka partition, the next offset
to read; its row, locked FOR UPDATE, fences a partition against a second owner (see
sql/003_ingest_offsets.sql)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import psycopg


class OffsetsMoved(Exception):
    """The stored offset of a partition is not the one this consumer expects (what it committed
    there, or what was stored when the partition was assigned to it). Nothing in the batch was
    written; the consumer must start over from the stored offsets.

    Lower (`behind`): commits were lost (a crash with synchronous_commit = off, a failover) or
    offsets were reset by hand; the lost range must be read again.
    Higher (`ahead`): another member wrote the partition meanwhile (ownership overlapped during a
    rebalance: a member evicted after max.poll.interval.ms while its write waited, and its
    successor). Writing the part of the batch above the stored offset would store rows whose
    pattern counts this consumer's detection state does not match."""

    def __init__(self, behind: dict[int, tuple[int, int]], ahead: dict[int, tuple[int, int]]) -> None:
        self.behind = behind  # partition -> (stored, expected by us)
        self.ahead = ahead
        parts = [
            f"partition {p}: stored {s}, we expected {e}" for p, (s, e) in sorted({**behind, **ahead}.items())
        ]
        super().__init__(", ".join(parts))


def check_expected(stored: dict[int, int], expected: Mapping[int, int]) -> None:
    """Raise OffsetsMoved unless every partition with an expectation is stored exactly there."""
    behind: dict[int, tuple[int, int]] = {}
    ahead: dict[int, tuple[int, int]] = {}
    for p, s in stored.items():
        e = expected.get(p)
        if e is None or s == e:
            continue
        (behind if s < e else ahead)[p] = (s, e)
    if behind or ahead:
        raise OffsetsMoved(behind, ahead)


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
