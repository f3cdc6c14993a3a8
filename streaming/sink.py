"""Writing a batch to PostgreSQL exactly once: rows, dead letters and offsets in one transaction.

The protocol (see sql/003_ingest_offsets.sql for why):
1. before the transaction, make sure each event-time day of the batch has its `logs` partition;
2. in one transaction: lock the batch's rows of `ingest_offsets` (FOR UPDATE), drop every record
   below the stored offset (already written, e.g. by the previous owner of the partition or by
   this consumer before a crash), binary-COPY the rest into `logs`, insert the dead letters,
   advance the stored offsets; commit.
Only after that commit does the consumer commit offsets to Kafka.

If the fast path still meets a unique violation (the offsets table was reset by hand, say), the
batch is retried through a staging table with ON CONFLICT DO NOTHING. If PostgreSQL rejects a
value that passed validation, the batch is written row by row and the rejected rows become dead
letters with the database's reason: a bad row never takes valid rows of its batch down with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import errors as pgerrors
from psycopg.adapt import PyFormat
from psycopg.types.json import Jsonb

from loganalyzer.db.minute_counts import minute_rows
from streaming.batch import METADATA, OFFSET, PARTITION, Batch, DeadLetter
from streaming.derived import AnomalyRow, PartitionDerived, PatternDelta, WarmHistory

log = logging.getLogger(__name__)
_MINUTE = timedelta(minutes=1)
#: templates relearned per service on a warm start: the most recently seen (the miner's own
#: default bound, pattern_max_templates, is 1,000)
MAX_SEED_PATTERNS = 1_000
#: a warm start's known templates, least recently seen first so that the miner's recency order
#: (what it evicts first) holds
_PATTERN_SEEDS_SQL = """
SELECT tenant, service, pattern_id, template, count FROM (
    SELECT p.tenant, p.service, p.pattern_id, p.template, p.count, p.last_seen,
           row_number() OVER (PARTITION BY p.tenant, p.service ORDER BY p.last_seen DESC) AS recency
    FROM log_patterns p
    JOIN unnest(%s::text[], %s::text[]) AS s(tenant, service)
      ON p.tenant = s.tenant AND p.service = s.service
) recent
WHERE recency <= %s
ORDER BY tenant, service, last_seen
"""

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
#: metadata arrives already in jsonb's binary wire form (EventParser.fields): declared as bytea
#: here, psycopg passes the bytes through in C instead of calling a JSON encoder per row.
LOG_TYPES = ("timestamptz", "text", "text", "text", "text", "text", "bytea", "float8", "text", "int4", "int8")


def copy_log_rows(cur: psycopg.Cursor[Any], table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Binary-COPY rows of EventParser.fields + Kafka coordinates into `table` (`logs` or a table
    like it): the one encoding of a log row, shared by the sink's paths and the ingest bench's
    raw-COPY reference, so that the reference always measures exactly what the consumer writes."""
    with cur.copy(f"COPY {table} ({', '.join(LOG_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(list(LOG_TYPES))
        for row in rows:
            copy.write_row(row)


def use_c_bytea_dumper(conn: psycopg.Connection) -> None:
    """Make COPY's `bytea` column use psycopg's C dumper on this connection.

    `Copy.set_types` picks the dumper registered last for the type's OID, and psycopg.dbapi20
    registers a Python one there (for its `Binary` wrapper, which we never use): measured at
    ~0.2 µs per row, 10 % of write_row."""
    conn.adapters.register_dumper(None, conn.adapters.get_dumper(bytes, PyFormat.BINARY))


#: Errors that mean "this value", not "this database": only these send rows to the slow path.
#: A missing table or a lost connection must stop the batch, never dead-letter valid data.
_ROW_ERRORS = (
    pgerrors.DataError,
    pgerrors.CheckViolation,
    pgerrors.NotNullViolation,
    pgerrors.UntranslatableCharacter,
)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


class OffsetsWentBack(Exception):
    """PostgreSQL holds lower offsets than this consumer committed there: commits were lost
    (a crash with synchronous_commit = off, a failover) or offsets were reset by hand. Nothing
    in this batch was written; the consumer must start over from the stored offsets."""

    def __init__(self, behind: dict[int, tuple[int, int]]) -> None:
        self.behind = behind  # partition -> (stored, committed by us)
        super().__init__(
            ", ".join(f"partition {p}: stored {s}, we committed {c}" for p, (s, c) in sorted(behind.items()))
        )


@dataclass(slots=True)
class WriteResult:
    written: int = 0
    dead_lettered: int = 0
    #: records skipped because the database already held them (replay, previous owner)
    skipped: int = 0
    #: rows PostgreSQL rejected although they passed validation (now dead letters)
    db_rejected: int = 0
    next_offsets: dict[int, int] = field(default_factory=dict)


class PostgresSink:
    """Owns one connection; every public method either commits or leaves nothing behind."""

    def __init__(self, conn: psycopg.Connection, topic: str) -> None:
        self.conn = conn
        self.topic = topic
        self._known_days: set[date] = set()
        self._derived: dict[int, PartitionDerived] = {}
        self._committed: Mapping[int, int] = {}
        # orjson encodes the jsonb parameters (anomaly details): ~10x faster than the stdlib encoder.
        psycopg.types.json.set_json_dumps(orjson.dumps, context=conn)
        use_c_bytea_dumper(conn)

    # -- assignment ---------------------------------------------------------------------------
    def stored_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to read for each partition; partitions never seen start at 0."""
        with self.conn.transaction():
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) "
                    "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                    [(self.topic, p) for p in partitions],
                )
            rows = self.conn.execute(
                "SELECT kafka_partition, next_offset FROM ingest_offsets "
                "WHERE kafka_topic = %s AND kafka_partition = ANY(%s)",
                (self.topic, list(partitions)),
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    # -- partitions of logs ------------------------------------------------------------------
    def ensure_days(self, days: Iterable[date]) -> None:
        """Create missing daily partitions in their own short transaction (DDL takes strong locks)."""
        missing = sorted(d for d in days if d not in self._known_days)
        if not missing:
            return
        with self.conn.transaction():
            for day in missing:
                self.conn.execute("SELECT ensure_log_partition(%s)", (day,))
        self._known_days.update(missing)

    # -- the batch ---------------------------------------------------------------------------
    def write(
        self,
        batch: Batch,
        derived: dict[int, PartitionDerived] | None = None,
        committed: Mapping[int, int] | None = None,
    ) -> WriteResult:
        """Write the batch and what detection derived from it (per partition) in one transaction.

        `committed`: the next offset per partition as this consumer last committed it; a stored
        offset below it raises OffsetsWentBack (and nothing is written)."""
        self.ensure_days(batch.days)
        self._derived = derived or {}
        self._committed = committed or {}
        try:
            return self._write(batch, mode="copy")
        except pgerrors.UniqueViolation:
            log.warning(
                "unique violation on the fast path: ingest_offsets is behind logs for %s; "
                "retrying this batch with ON CONFLICT DO NOTHING",
                self.topic,
            )
            return self._write(batch, mode="upsert")
        except _ROW_ERRORS as exc:
            log.warning("PostgreSQL rejected a value in this batch (%s); writing it row by row", exc)
            return self._write(batch, mode="rows")

    def _write(self, batch: Batch, mode: str) -> WriteResult:
        result = WriteResult()
        topic = self.topic
        partitions = sorted(batch.partitions)
        conn = self.conn
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO ingest_offsets (kafka_topic, kafka_partition, next_offset) "
                    "VALUES (%s, %s, 0) ON CONFLICT DO NOTHING",
                    [(topic, p) for p in partitions],
                )
            stored = self._lock_offsets(partitions)
            behind = {
                p: (stored[p], c)
                for p in partitions
                if (c := self._committed.get(p)) is not None and stored[p] < c
            }
            if behind:
                raise OffsetsWentBack(behind)  # (the transaction rolls back: nothing written)
            rows: list[tuple[Any, ...]] = []
            raws: dict[tuple[int, int], bytes | None] = {}
            dead: list[DeadLetter] = []
            advance: list[tuple[int, str, int]] = []
            for p in partitions:
                pb = batch.partitions[p]
                floor = stored[p]
                if pb.last_offset < floor:
                    result.skipped += len(pb.rows) + len(pb.dead_letters)
                    continue
                if pb.first_offset >= floor:  # the usual case: nothing of it is stored yet
                    rows.extend(pb.rows)
                    dead.extend(pb.dead_letters)
                else:
                    kept = [r for r in pb.rows if r[OFFSET] >= floor]
                    result.skipped += len(pb.rows) - len(kept)
                    rows.extend(kept)
                    kept_dead = [d for d in pb.dead_letters if d.offset >= floor]
                    result.skipped += len(pb.dead_letters) - len(kept_dead)
                    dead.extend(kept_dead)
                if mode == "rows":
                    raws.update(((p, r[OFFSET]), raw) for r, raw in zip(pb.rows, pb.raws, strict=True))
                advance.append((pb.last_offset + 1, topic, p))

            if mode == "copy":
                self._copy_logs(rows)
                result.written = len(rows)
            elif mode == "upsert":
                result.written = self._upsert_logs(rows)
                result.skipped += len(rows) - result.written
            else:
                written, rejected = self._insert_rows_individually(rows, raws)
                result.written = written
                result.db_rejected = len(rejected)
                dead.extend(rejected)
            self._insert_dead_letters(dead)
            result.dead_lettered = len(dead)
            # Derived data only for partitions that advanced: a fenced partition's records were
            # already stored (and counted) by another owner.
            advanced = {p for _, _, p in advance}
            derived = [d for p, d in self._derived.items() if p in advanced]
            self._upsert_patterns([x for d in derived for x in d.patterns])
            self._upsert_anomalies([x for d in derived for x in d.anomalies])
            self._save_checkpoints(
                [
                    (p, batch.partitions[p].last_offset + 1, d.checkpoint)
                    for p, d in self._derived.items()
                    if p in advanced and d.checkpoint is not None
                ]
            )
            if advance:
                with conn.cursor() as cur:
                    cur.executemany(
                        "UPDATE ingest_offsets SET next_offset = %s, updated_at = now() "
                        "WHERE kafka_topic = %s AND kafka_partition = %s",
                        advance,
                    )
            result.next_offsets = {p: o for o, _, p in advance}
        return result

    def write_idle(self, derived: Mapping[int, PartitionDerived], expected: Mapping[int, int]) -> set[int]:
        """Commit what detection found on partitions with no new records (silence seen from the
        wall clock), for the partitions this consumer still owns: those whose stored offset is
        the one it expects (`expected`), locked FOR UPDATE so a new owner cannot interleave.
        Returns the partitions written. Episodes are upserted on their id, so an owner that
        finds the same silence again changes nothing."""
        partitions = sorted(derived)
        with self.conn.transaction():
            stored = self._lock_offsets(partitions)
            owned = {p for p in partitions if p in stored and stored[p] == expected.get(p)}
            self._upsert_anomalies([a for p in sorted(owned) for a in derived[p].anomalies])
        return owned

    def _lock_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        """The stored next offset of each partition, its row locked until the transaction ends
        (in partition order, so two consumers never wait on each other in a cycle): the fence
        against another owner writing the same partition."""
        return {
            int(p): int(o)
            for p, o in self.conn.execute(
                "SELECT kafka_partition, next_offset FROM ingest_offsets "
                "WHERE kafka_topic = %s AND kafka_partition = ANY(%s) "
                "ORDER BY kafka_partition FOR UPDATE",
                (self.topic, list(partitions)),
            ).fetchall()
        }

    def _copy_logs(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur:
            copy_log_rows(cur, "logs", rows)

    def _upsert_logs(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS logs_staging (LIKE logs INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            )
            copy_log_rows(cur, "logs_staging", rows)
            cur.execute(
                f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) "
                f"SELECT {', '.join(LOG_COLUMNS)} FROM logs_staging ON CONFLICT DO NOTHING"
            )
            return cur.rowcount

    def _insert_rows_individually(
        self, rows: list[tuple[Any, ...]], raw_by_coord: dict[tuple[int, int], bytes | None]
    ) -> tuple[int, list[DeadLetter]]:
        written = 0
        rejected: list[DeadLetter] = []
        sql = (
            f"INSERT INTO logs ({', '.join(LOG_COLUMNS)}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )
        for row in rows:
            values = list(row)
            values[METADATA] = values[METADATA][1:].decode()  # jsonb wire form -> JSON text
            try:
                with self.conn.transaction():
                    cur = self.conn.execute(sql, values)
                    written += cur.rowcount
            except _ROW_ERRORS as exc:
                rejected.append(
                    DeadLetter(
                        partition=row[PARTITION],
                        offset=row[OFFSET],
                        key=None,
                        kafka_timestamp_ms=None,
                        raw=raw_by_coord.get((row[PARTITION], row[OFFSET])),
                        reason="db_rejected",
                        detail=f"PostgreSQL rejected the row: {str(exc).strip()[:500]}",
                    )
                )
        return written, rejected

    def _upsert_patterns(self, deltas: list[PatternDelta]) -> None:
        if not deltas:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO log_patterns (tenant, service, pattern_id, template, first_seen, last_seen, "
                "count, error_count, sample_message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (tenant, service, pattern_id) DO UPDATE SET "
                "template = EXCLUDED.template, "
                "first_seen = least(log_patterns.first_seen, EXCLUDED.first_seen), "
                "last_seen = greatest(log_patterns.last_seen, EXCLUDED.last_seen), "
                "count = log_patterns.count + EXCLUDED.count, "
                "error_count = log_patterns.error_count + EXCLUDED.error_count",
                [
                    (
                        d.tenant,
                        d.service,
                        d.pattern_id,
                        d.template,
                        d.first_seen,
                        d.last_seen,
                        d.count,
                        d.error_count,
                        d.sample_message[:2000],
                    )
                    for d in deltas
                ],
            )

    def _upsert_anomalies(self, rows: list[AnomalyRow]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO anomalies (id, tenant, service, anomaly_type, severity, status, window_start, "
                "window_end, resolved_at, score, expected_value, actual_value, description, "
                "pattern_template, sample_message, model_version, details) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, status = EXCLUDED.status, "
                "window_end = greatest(anomalies.window_end, EXCLUDED.window_end), "
                "resolved_at = EXCLUDED.resolved_at, score = EXCLUDED.score, "
                "expected_value = EXCLUDED.expected_value, actual_value = EXCLUDED.actual_value, "
                "description = EXCLUDED.description, details = EXCLUDED.details, updated_at = now()",
                [
                    (
                        a.id,
                        a.tenant,
                        a.service,
                        a.anomaly_type,
                        a.severity,
                        a.status,
                        a.window_start,
                        a.window_end,
                        a.resolved_at,
                        a.score,
                        a.expected_value,
                        a.actual_value,
                        a.description,
                        a.pattern_template,
                        a.sample_message,
                        a.model_version,
                        Jsonb(a.details, dumps=_dumps),
                    )
                    for a in rows
                ],
            )

    def _save_checkpoints(self, items: list[tuple[int, int, bytes]]) -> None:
        if not items:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO detector_checkpoints (kafka_topic, kafka_partition, next_offset, state) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (kafka_topic, kafka_partition) DO UPDATE SET "
                "next_offset = EXCLUDED.next_offset, state = EXCLUDED.state, saved_at = now()",
                [(self.topic, p, o, state) for p, o, state in items],
            )

    def load_checkpoints(self, partitions: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """Saved detection state per partition: (next_offset it describes, state)."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT kafka_partition, next_offset, state FROM detector_checkpoints "
                "WHERE kafka_topic = %s AND kafka_partition = ANY(%s)",
                (self.topic, list(partitions)),
            ).fetchall()
        return {int(p): (int(o), bytes(s)) for p, o, s in rows}

    def load_history(self, partition: int, window: timedelta, budget: timedelta) -> WarmHistory | None:
        """The partition's stored events of the `window` before its newest one, as per-minute
        counts, for a warm start. None: nothing stored, or the reads ran over `budget` (the
        caller starts cold rather than hold the partition: assignment blocks polling)."""
        topic = self.topic
        try:
            with self.conn.transaction():
                # at least 1 ms: PostgreSQL reads a statement_timeout of 0 as "no limit"
                ms = str(max(1, int(budget.total_seconds() * 1000)))
                self.conn.execute("SELECT set_config('statement_timeout', %s, true)", (ms,))
                # the newest record by offset: one backward probe of each day's coordinates index
                row = self.conn.execute(
                    'SELECT "timestamp" FROM logs WHERE kafka_topic = %s AND kafka_partition = %s '
                    "ORDER BY kafka_offset DESC LIMIT 1",
                    (topic, partition),
                ).fetchone()
                if row is None:
                    return None
                newest = row[0]
                # every stored event up to the newest one's minute (and a few out of order after)
                end = newest.replace(second=0, microsecond=0) + 2 * _MINUTE
                since = (newest - window).replace(second=0, microsecond=0)
                rows = minute_rows(self.conn, since, end, (topic, partition))
                services = sorted({(tenant, service) for tenant, service, *_ in rows})
                patterns = self.conn.execute(
                    _PATTERN_SEEDS_SQL,
                    ([t for t, _ in services], [s for _, s in services], MAX_SEED_PATTERNS),
                ).fetchall()
        except pgerrors.QueryCanceled:
            log.warning("partition %d: history read over %s; detection starts cold", partition, budget)
            return None
        return WarmHistory(rows, newest, [(t, s, i, tpl, int(c)) for t, s, i, tpl, c in patterns])

    def _insert_dead_letters(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, kafka_key, "
                "kafka_timestamp, raw, raw_size, reason, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (
                        self.topic,
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
