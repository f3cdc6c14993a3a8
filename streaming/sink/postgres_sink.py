"""PostgresSink: one connection, and the transaction that writes a batch with everything that
belongs to it (rows, dead letters, derived data, checkpoints, offsets)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import errors as pgerrors

from streaming.batch import Batch, DeadLetter
from streaming.derived import AnomalyRow, PartitionDerived, WarmHistory
from streaming.log_row import OFFSET, use_c_bytea_dumper
from streaming.retry import is_transient
from streaming.sink import checkpoints, warm_start
from streaming.sink.dead_letters import derived_dead_letter, insert_dead_letters
from streaming.sink.derived_writer import upsert_anomalies, upsert_patterns
from streaming.sink.isolation import ROW_ERRORS, Unwritable, message_of, what_to_do
from streaming.sink.log_writer import copy_logs, insert_rows_individually, upsert_logs
from streaming.sink.offsets import (
    advance_offsets,
    check_expected,
    ensure_offset_rows,
    lock_offsets,
    read_offsets,
)
from streaming.sink.suppressions import load_suppressions
from streaming.suppressions import SuppressionCache

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WriteResult:
    written: int = 0
    dead_lettered: int = 0
    #: records skipped because the database already held them (replay, previous owner)
    skipped: int = 0
    #: rows PostgreSQL rejected although they passed validation (now dead letters)
    db_rejected: int = 0
    #: derived rows PostgreSQL rejected, by dead-letter reason (pattern_rejected, anomaly_rejected)
    derived_rejected: dict[str, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)


class PostgresSink:
    """Owns one connection; every public method either commits or leaves nothing behind."""

    def __init__(
        self,
        conn: psycopg.Connection,
        topic: str,
        suppressions: SuppressionCache | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.conn = conn
        self.topic = topic
        #: operator pattern suppressions: anomaly rows they match are written muted (None: none read)
        self.suppressions = suppressions
        self._wall_clock = wall_clock
        #: anomaly rows written muted by a pattern suppression, since this sink was made
        self.suppressed = 0
        self._known_days: set[date] = set()
        self._derived: dict[int, PartitionDerived] = {}
        self._expected: Mapping[int, int] = {}
        # orjson encodes the jsonb parameters (anomaly details): ~10x faster than the stdlib encoder.
        psycopg.types.json.set_json_dumps(orjson.dumps, context=conn)
        use_c_bytea_dumper(conn)

    # -- assignment ---------------------------------------------------------------------------
    def stored_offsets(self, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to read for each partition; partitions never seen start at 0."""
        with self.conn.transaction():
            ensure_offset_rows(self.conn, self.topic, partitions)
            return read_offsets(self.conn, self.topic, partitions)

    def load_checkpoints(self, partitions: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """Saved detection state per partition: (next_offset it describes, state)."""
        return checkpoints.load_checkpoints(self.conn, self.topic, partitions)

    def load_history(self, partition: int, window: timedelta, budget: timedelta) -> WarmHistory | None:
        """See streaming.sink.warm_start.load_history."""
        return warm_start.load_history(self.conn, self.topic, partition, window, budget)

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
        expected: Mapping[int, int] | None = None,
    ) -> WriteResult:
        """Write the batch and what detection derived from it (per partition) in one transaction.

        `expected`: the next offset per partition as this consumer believes it stored (what it
        last committed there, or what was stored when the partition was assigned); any other
        stored offset raises OffsetsMoved, and nothing is written."""
        self._derived = derived or {}
        self._expected = expected or {}
        try:
            self.ensure_days(batch.days)
            return self._write_any_mode(batch)
        except psycopg.Error as exc:
            if is_transient(exc):
                raise  # the caller retries on a new connection
            raise Unwritable(self._unwritable(batch, exc)) from exc

    def _write_any_mode(self, batch: Batch) -> WriteResult:
        """COPY; on a conflict, through a staging table; on a refused value, row by row."""
        try:
            return self._write(batch, mode="copy")
        except pgerrors.UniqueViolation:
            log.warning(
                "unique violation on the fast path: ingest_offsets is behind logs for %s; "
                "retrying this batch with ON CONFLICT DO NOTHING",
                self.topic,
            )
            try:
                return self._write(batch, mode="upsert")
            except ROW_ERRORS as exc:
                log.warning("PostgreSQL rejected a value in this batch (%s); writing it row by row", exc)
                return self._write(batch, mode="rows")
        except ROW_ERRORS as exc:
            log.warning("PostgreSQL rejected a value in this batch (%s); writing it row by row", exc)
            return self._write(batch, mode="rows")

    def _unwritable(self, batch: Batch, exc: BaseException) -> str:
        ranges = ", ".join(
            f"{self.topic}/{p} offsets {pb.first_offset}-{pb.last_offset}"
            for p, pb in sorted(batch.partitions.items())
        )
        first = min(batch.partitions.items(), default=None)
        todo = (
            what_to_do(self.topic, first[0], first[1].first_offset)
            if first
            else "fix what PostgreSQL names and restart"
        )
        return f"PostgreSQL refused the batch of records {ranges}: {message_of(exc)}; {todo}"

    def _write(self, batch: Batch, mode: str) -> WriteResult:
        result = WriteResult()
        topic = self.topic
        partitions = sorted(batch.partitions)
        conn = self.conn
        with conn.transaction():
            ensure_offset_rows(conn, topic, partitions)
            stored = lock_offsets(conn, topic, partitions)
            check_expected(stored, self._expected)  # (raising rolls back: nothing written)
            rows: list[tuple[Any, ...]] = []
            raws: dict[tuple[int, int], bytes | None] = {}
            dead: list[DeadLetter] = []
            advance: list[tuple[int, int]] = []
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
                advance.append((p, pb.last_offset + 1))

            if mode == "copy":
                result.written = copy_logs(conn, rows)
            elif mode == "upsert":
                result.written = upsert_logs(conn, rows)
                result.skipped += len(rows) - result.written
            else:
                written, rejected = insert_rows_individually(conn, rows, raws)
                result.written = written
                result.db_rejected = len(rejected)
                dead.extend(rejected)
            # Derived data only for partitions that advanced: a fenced partition's records were
            # already stored (and counted) by another owner.
            last = {p: o - 1 for p, o in advance}
            derived = [(p, self._derived[p]) for p in sorted(last) if p in self._derived]
            dead.extend(self._write_derived(derived, last, result))
            insert_dead_letters(conn, topic, dead)
            result.dead_lettered = len(dead)
            checkpoints.save_checkpoints(
                conn,
                topic,
                [(p, last[p] + 1, d.checkpoint) for p, d in derived if d.checkpoint is not None],
            )
            advance_offsets(conn, topic, advance)
            result.next_offsets = dict(advance)
        return result

    def write_idle(self, derived: Mapping[int, PartitionDerived], expected: Mapping[int, int]) -> set[int]:
        """Commit what detection found on partitions with no new records (silence seen from the
        wall clock), for the partitions this consumer still owns: those whose stored offset is
        the one it expects (`expected`), locked FOR UPDATE so a new owner cannot interleave.
        Returns the partitions written. Episodes are upserted on their id, so an owner that
        finds the same silence again changes nothing."""
        try:
            return self._write_idle(derived, expected)
        except psycopg.Error as exc:
            if is_transient(exc):
                raise
            raise Unwritable(
                f"PostgreSQL refused the anomalies found on quiet partitions {sorted(derived)} of "
                f"{self.topic}: {message_of(exc)}; fix what PostgreSQL names (a missing table: "
                "`loganalyzer migrate`) and restart"
            ) from exc

    def _write_idle(self, derived: Mapping[int, PartitionDerived], expected: Mapping[int, int]) -> set[int]:
        partitions = sorted(derived)
        with self.conn.transaction():
            stored = lock_offsets(self.conn, self.topic, partitions)
            owned = sorted(p for p in partitions if p in stored and stored[p] == expected.get(p))
            last = {p: stored[p] - 1 for p in owned}
            dead = self._write_derived([(p, derived[p]) for p in owned], last, WriteResult())
            insert_dead_letters(self.conn, self.topic, dead)
        return set(owned)

    def _write_derived(
        self, derived: list[tuple[int, PartitionDerived]], last: Mapping[int, int], result: WriteResult
    ) -> list[DeadLetter]:
        """Upsert pattern counts and anomaly episodes; the rows PostgreSQL refuses become dead
        letters (with the coordinates of their batch's last record) instead of failing it."""
        patterns = [(p, x) for p, d in derived for x in d.patterns]
        anomalies = [(p, x) for p, d in derived for x in d.anomalies]
        refused: list[tuple[str, int, Any, BaseException]] = []
        if patterns:
            partition_of = {id(x): p for p, x in patterns}
            for row, exc in upsert_patterns(self.conn, [x for _, x in patterns]):
                refused.append(("pattern_rejected", partition_of[id(row)], row, exc))
        if anomalies:
            anomalies = self._mark_suppressed(anomalies)
            partition_of = {id(x): p for p, x in anomalies}
            for arow, exc in upsert_anomalies(self.conn, [x for _, x in anomalies], self._wall_clock()):
                refused.append(("anomaly_rejected", partition_of[id(arow)], arow, exc))
        dead: list[DeadLetter] = []
        for reason, p, row, exc in refused:
            log.warning(
                "PostgreSQL refused a derived row of partition %d (%s): %s", p, reason, message_of(exc)
            )
            dead.append(derived_dead_letter(p, max(last[p], 0), reason, row, exc))
            result.derived_rejected[reason] = result.derived_rejected.get(reason, 0) + 1
        return dead

    def _mark_suppressed(self, anomalies: list[tuple[int, AnomalyRow]]) -> list[tuple[int, AnomalyRow]]:
        """The rows with the pattern suppression that mutes each, if any (the view is read inside
        this transaction, at most every refresh_seconds, and only when there are anomalies)."""
        if self.suppressions is None:
            return anomalies
        active = self.suppressions.current(lambda: load_suppressions(self.conn))
        if not len(active):
            return anomalies
        now = self._wall_clock()
        out: list[tuple[int, AnomalyRow]] = []
        for p, row in anomalies:
            s = active.match(row.tenant, row.service, row.pattern_template, now)
            if s is not None:
                row = replace(row, suppressed_by=s.feedback_id, suppressed_until=s.until)
                self.suppressed += 1
            out.append((p, row))
        return out
