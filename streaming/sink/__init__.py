"""Writing a batch to PostgreSQL exactly once: rows, dead letters and offsets in one transaction.

The protocol (see sql/003_ingest_offsets.sql for why):
1. before the transaction, make sure each event-time day of the batch has its `logs` partition;
2. in one transaction: lock the batch's rows of `ingest_offsets` (FOR UPDATE), drop every record
   below the stored offset (already written, e.g. by the previous owner of the partition or by
   this consumer before a crash), binary-COPY the rest into `logs`, insert the dead letters,
   upsert what detection derived, advance the stored offsets; commit.
Only after that commit does the consumer commit offsets to Kafka.

A value PostgreSQL refuses isolates its row (a `db_rejected`, `pattern_rejected` or
`anomaly_rejected` dead letter with the server's message: `isolation`); a lost connection is
retried by the caller; anything else raises Unwritable, whose message names the records.

Where each part lives: `offsets` (the offset protocol's statements), `log_writer` (the copy,
upsert and rows modes), `dead_letters`, `derived_writer` (pattern counts, anomaly episodes),
`checkpoints`, `warm_start` (history reads on assignment) and `postgres_sink` (the transaction
that ties them together). The row shape itself is `streaming.log_row`.
"""

from streaming.sink.isolation import Unwritable
from streaming.sink.offsets import OffsetsMoved
from streaming.sink.postgres_sink import PostgresSink, WriteResult

__all__ = ["OffsetsMoved", "PostgresSink", "Unwritable", "WriteResult"]
