"""Writing accepted rows into `logs`, in one of three modes.

- copy: binary COPY, the hot path; any conflict or refused value aborts it.
- upsert: through a staging table with ON CONFLICT DO NOTHING, for a batch whose rows may be
  stored already (the offsets table was reset by hand).
- rows: one INSERT per row, each in its own savepoint, for a batch holding a value PostgreSQL
  refuses: only the refused rows are lost, as dead letters with the server's reason.
"""

from __future__ import annotations

from typing import Any

import psycopg

from streaming.batch import DeadLetter
from streaming.log_row import LOG_COLUMNS, METADATA, OFFSET, PARTITION, copy_log_rows
from streaming.sink.isolation import ROW_ERRORS, message_of

_COLUMNS = ", ".join(LOG_COLUMNS)


def copy_logs(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    with conn.cursor() as cur:
        copy_log_rows(cur, "logs", rows)
    return len(rows)


def upsert_logs(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Rows written; the others were stored already."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS logs_staging (LIKE logs INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        copy_log_rows(cur, "logs_staging", rows)
        cur.execute(
            f"INSERT INTO logs ({_COLUMNS}) SELECT {_COLUMNS} FROM logs_staging ON CONFLICT DO NOTHING"
        )
        return cur.rowcount


def insert_rows_individually(
    conn: psycopg.Connection, rows: list[tuple[Any, ...]], raw_by_coord: dict[tuple[int, int], bytes | None]
) -> tuple[int, list[DeadLetter]]:
    """(rows written, dead letters for the rows PostgreSQL refused)."""
    written = 0
    rejected: list[DeadLetter] = []
    sql = (
        f"INSERT INTO logs ({_COLUMNS}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )
    for row in rows:
        values = list(row)
        try:
            values[METADATA] = values[METADATA][1:].decode()  # jsonb wire form -> JSON text
            with conn.transaction():
                cur = conn.execute(sql, values)
                written += cur.rowcount
        except ROW_ERRORS as exc:
            rejected.append(
                DeadLetter(
                    partition=row[PARTITION],
                    offset=row[OFFSET],
                    key=None,
                    kafka_timestamp_ms=None,
                    raw=raw_by_coord.get((row[PARTITION], row[OFFSET])),
                    reason="db_rejected",
                    detail=f"PostgreSQL rejected the row: {message_of(exc)}",
                )
            )
    return written, rejected
