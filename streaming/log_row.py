"""The shape of one `logs` row, defined once: its columns, their COPY types and tuple indices.

Why one module: the batch builds these tuples, the sink copies them, detection reads fields out
of them by index and the ingest bench copies them as its reference. Kept in three places, the
constants drifted apart silently; here a new column is one edit.

Rows are plain tuples in COPY column order because this is the consumer's hot loop: a tuple
built once by `streaming.batch` goes straight into the binary COPY without being touched again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.adapt import PyFormat

#: `logs` columns in the order of a row tuple (EventParser.fields + Kafka coordinates)
LOG_COLUMNS = (
    '"timestamp"',
    "tenant",
    "service",
    "host",
    "level",
    "message",
    "metadata",
    "duration_ms",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
#: Index of each column in a row tuple.
TS, TENANT, SERVICE, HOST, LEVEL, MESSAGE, METADATA, DURATION, TOPIC, PARTITION, OFFSET = range(
    len(LOG_COLUMNS)
)
#: metadata arrives already in jsonb's binary wire form (EventParser.fields): declared as bytea
#: here, psycopg passes the bytes through in C instead of calling a JSON encoder per row.
LOG_TYPES = ("timestamptz", "text", "text", "text", "text", "text", "bytea", "float8", "text", "int4", "int8")
_COLUMN_LIST = ", ".join(LOG_COLUMNS)


def copy_log_rows(cur: psycopg.Cursor[Any], table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Binary-COPY row tuples into `table` (`logs` or a table like it): the one encoding of a log
    row, shared by the sink's paths and the ingest bench's raw-COPY reference, so that the
    reference always measures exactly what the consumer writes."""
    with cur.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(LOG_TYPES))
        for row in rows:
            copy.write_row(row)


def use_c_bytea_dumper(conn: psycopg.Connection) -> None:
    """Make COPY's `bytea` column use psycopg's C dumper on this connection.

    `Copy.set_types` picks the dumper registered last for the type's OID, and psycopg.dbapi20
    registers a Python one there (for its `Binary` wrapper, which we never use): measured at
    ~0.2 µs per row, 10 % of write_row."""
    conn.adapters.register_dumper(None, conn.adapters.get_dumper(bytes, PyFormat.BINARY))
