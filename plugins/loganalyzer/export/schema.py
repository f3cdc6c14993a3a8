"""The one Arrow schema of exported files, and the query that feeds it.

Why one fixed schema, cast into batch by batch: the driver's batches carry PostgreSQL type
metadata and `jsonb` as an `arrow.json` extension type, and a Parquet file needs the same schema
in every row group; a schema fixed here keeps every file of every day readable as one dataset.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pyarrow as pa

from loganalyzer.export.checksum import day_start

#: Columns inside each file. tenant and service are in the object key (layout.py), not here.
_FIELDS: list[Any] = [
    pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("host", pa.string(), nullable=False),
    pa.field("level", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
    pa.field("metadata", pa.string(), nullable=False),  # the jsonb document as JSON text
    pa.field("kafka_topic", pa.string(), nullable=False),
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("kafka_offset", pa.int64(), nullable=False),
    pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("duration_ms", pa.float64()),
]
FILE_SCHEMA = pa.schema(_FIELDS)

#: Dictionary encoding only where values repeat: on message or metadata it makes files bigger
#: and the export slower (both measured).
DICTIONARY_COLUMNS = ["host", "level", "kafka_topic"]

ROW_GROUP_ROWS = 250_000

_SELECT_COLUMNS = (
    '"timestamp", tenant, service, host, level, message, metadata, '
    "kafka_topic, kafka_partition, kafka_offset, ingested_at, duration_ms"
)


def day_bounds(day: date) -> tuple[str, str]:
    return day_start(day).isoformat(), day_start(day + timedelta(days=1)).isoformat()


def day_query(day: date) -> str:
    """The day's rows in file order. Literals, not parameters: the driver streams a plain query
    through COPY, and the bounds come from a `date`, never from user text.

    (kafka_partition, kafka_offset) after the timestamp only breaks ties, so that a re-export of
    unchanged rows writes them in the same order.
    """
    lo, hi = day_bounds(day)
    return (
        f"SELECT {_SELECT_COLUMNS} FROM logs "
        f"WHERE \"timestamp\" >= '{lo}'::timestamptz AND \"timestamp\" < '{hi}'::timestamptz "
        'ORDER BY tenant, service, "timestamp", kafka_partition, kafka_offset'
    )


def to_file_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A driver batch (or a slice of one) in FILE_SCHEMA; the jsonb column keeps its JSON text."""
    arrays = []
    for field in FILE_SCHEMA:
        col: Any = batch.column(field.name)
        if isinstance(col.type, pa.ExtensionType):
            col = col.storage
        if col.type != field.type:
            col = col.cast(field.type)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=FILE_SCHEMA)
