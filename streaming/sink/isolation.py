"""Telling a bad value from a bad database, and isolating the rows PostgreSQL refuses.

A value that PostgreSQL (or psycopg, encoding it) refuses will be refused again on every retry:
retrying the batch would stop ingestion of its partition for good. Such errors isolate the row
that caused them. Everything else either passes (a lost connection, a server restart: retried
with backoff by streaming.retry) or stops the consumer with a message naming the records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors

#: Errors that mean "this value", not "this database": only these isolate rows. A missing table
#: or a lost connection must stop the batch, never dead-letter valid data.
#: psycopg.DataError: class 22 from the server (bad jsonb, NUL in COPY text, out of range) and
#: psycopg's own refusal of a NUL in a text parameter; UnicodeError: a lone surrogate that cannot
#: be encoded; ProgramLimitExceeded (54xxx): e.g. a value over a b-tree index's row size.
ROW_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    pgerrors.CheckViolation,
    pgerrors.NotNullViolation,
    pgerrors.ForeignKeyViolation,
    pgerrors.ProgramLimitExceeded,
    UnicodeError,
)


def message_of(exc: BaseException, limit: int = 500) -> str:
    """The error's message, storable as text (no NUL, no lone surrogate) and bounded."""
    return safe_text(" ".join(str(exc).split()))[:limit]


def safe_text(s: str) -> str:
    """`s` as PostgreSQL text accepts it: NUL spelled out, lone surrogates as escapes."""
    return s.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def isolating_executemany(
    conn: psycopg.Connection, sql: str, params: Sequence[Sequence[Any]]
) -> list[tuple[int, BaseException]]:
    """Run `sql` for every parameter row; rows PostgreSQL refuses are left out.

    One savepoint around the whole statement (the usual case costs one round trip more); only
    when it fails is each row tried in a savepoint of its own. Returns (index, error) of each
    refused row."""
    if not params:
        return []
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, params)
        return []
    except ROW_ERRORS:
        pass
    refused: list[tuple[int, BaseException]] = []
    for i, row in enumerate(params):
        try:
            with conn.transaction():
                conn.execute(sql, row)
        except ROW_ERRORS as exc:
            refused.append((i, exc))
    return refused


class Unwritable(Exception):
    """PostgreSQL refuses something that retrying will not change and that cannot be isolated
    (a missing table, a permission, a dead letter it refuses): the consumer stops with this
    message, which names the records and what to do. Nothing of the batch was committed."""


def what_to_do(topic: str, partition: int, offset: int) -> str:
    return (
        "nothing of the batch was committed and a restart reads it again; fix what PostgreSQL "
        "names (a missing table or column: `loganalyzer migrate`; a permission: grant it), or, "
        f"to give up this record, store the offset after it: UPDATE ingest_offsets SET "
        f"next_offset = {offset + 1} WHERE kafka_topic = '{topic}' AND kafka_partition = {partition}"
    )
