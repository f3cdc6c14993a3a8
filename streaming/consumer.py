"""The always-on consumer: Kafka `logs` → validated events → PostgreSQL, exactly once.

Loop: `consume()` returns up to `batch_max_messages` records or whatever arrived within
`batch_max_seconds` (a batch bounded by size and time); the batch is parsed (invalid records
become dead letters), written with its offsets in one PostgreSQL transaction (streaming.sink),
and only then are the offsets committed to Kafka.

On partition assignment the consumer seeks to the offsets stored in PostgreSQL, so neither a
crash between the two commits nor a rebalance can duplicate or lose a record.

Commits do not wait for PostgreSQL's WAL flush (synchronous_commit = off, CONSUMER_ASYNC_COMMIT):
a batch's rows, dead letters, detection output and offsets commit together, so a PostgreSQL
crash can only lose the newest batches whole. The consumer remembers the offsets it committed
(and, before its first write to a partition, the offset stored when it was assigned); when the
stored ones differ (lower: lost commits or a reset by hand; higher: another member wrote the
partition while ownership overlapped in a rebalance) the sink refuses the batch and
the consumer starts a new Kafka session, which seeks to the stored offsets and reads the lost
records again. Measured in interleaved A/B runs: median +3 to +7 % logs/s (the flush stalled
the writer, and PostgreSQL with it, at every batch).

Scaling out is running more of these processes with the same KAFKA_GROUP_ID: Kafka's group
protocol moves partitions (and, with them, per-partition state) between them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from loganalyzer.consumer_lag import high_watermarks, lag
from loganalyzer.db.connection import connect
from loganalyzer.settings import Settings, kafka_client_config
from streaming.batch import Batch, build_batch
from streaming.batch_size import BatchSizer
from streaming.derived import PartitionDerived, WarmHistory
from streaming.detection_stage import DetectionStage
from streaming.metrics import ConsumerMetrics
from streaming.retry import retry_transient
from streaming.sink import OffsetsMoved, PostgresSink, Unwritable, WriteResult
from streaming.suppressions import SuppressionCache

log = logging.getLogger(__name__)
#: the longest the warm starts of one assignment may read history, all partitions together:
#: assignment blocks polling, and the group evicts a member that does not poll within
#: max.poll.interval.ms (300 s by default). Partitions left when it is spent start cold.
WARM_START_BUDGET = timedelta(seconds=30)


def _newest_age(msgs: list[Any]) -> float | None:
    """Seconds since the last record of a batch reached Kafka (None: no usable timestamp)."""
    if not msgs:
        return None
    ts_type, ts_ms = msgs[-1].timestamp()
    return None if ts_type == 0 else time.time() - ts_ms / 1000


class LogConsumer:
    def __init__(
        self,
        settings: Settings,
        metrics: ConsumerMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        detection: DetectionStage | None = None,
    ) -> None:
        self.settings = settings
        self.detection = detection
        self.metrics = metrics or ConsumerMetrics()
        self._clock = clock
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._sink: PostgresSink | None = None
        #: operator pattern suppressions, kept across reconnections of the sink
        self.suppressions = SuppressionCache(settings.detection.suppression_refresh_seconds)
        self._consumer: Consumer | None = None
        self._assigned: set[int] = set()
        # One batch is written (by this thread) while the next is parsed: PostgreSQL works on
        # its core while Python parses on the other. Only one write is ever in flight, and
        # every rebalance waits for it, so the sink's connection is never used concurrently.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-writer")
        self._in_flight: tuple[Batch, Future[WriteResult]] | None = None
        #: next offset per owned partition as this consumer committed it to PostgreSQL
        self._committed: dict[int, int] = {}
        #: records waiting in the broker per owned partition, from the last statistics (5 s)
        self._backlog: dict[int, int] = {}
        #: next offset per owned partition as stored when it was assigned
        self._assigned_at: dict[int, int] = {}
        #: the stored offsets went back: end this Kafka session and start over from them
        self._restart = False
        #: PostgreSQL refused a batch in a way that retrying cannot change: stop, exit code 1
        self._failed = False
        #: partition.assignment.strategy=cooperative-sticky: rebalances add and take away single
        #: partitions (incremental_assign / incremental_unassign) instead of whole assignments
        strategy = settings.kafka.extra.get("partition.assignment.strategy", "")
        self._cooperative = "cooperative" in strategy.lower()
        self.totals = WriteResult()

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        """Ask the loop to finish the batch in hand, commit and return (signal-safe)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal %d received: finishing the current batch", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _reconnect(self, _exc: BaseException | None = None) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = connect(self.settings.database_url, application_name="loganalyzer-consumer")
        if self.settings.consumer.async_commit:
            self._conn.execute("SET synchronous_commit = off")
            self._conn.commit()
        self._sink = PostgresSink(self._conn, self.settings.kafka.topic, self.suppressions)

    def _kafka_config(self) -> dict[str, Any]:
        """Our tunables, then the user's KAFKA_PROPERTY_* (they win: their broker, their
        limits), then what exactly-once rests on (never overridden: offsets live in PostgreSQL
        and are committed to Kafka by hand, after the database)."""
        k = self.settings.kafka
        return {
            "session.timeout.ms": k.session_timeout_ms,
            "heartbeat.interval.ms": max(500, k.session_timeout_ms // 5),
            # A batch can wait for PostgreSQL for minutes; leaving the group then is fine
            # (offsets live in PostgreSQL), but do not do it for a slow batch.
            "max.poll.interval.ms": 300_000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            # The 1 MiB default caps a fetch at ~4,500 small records per partition: measured
            # 187k records/s consumed with it, 600k/s with 16 MiB.
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            # librdkafka (>= 2.1) stops fetching a partition whose local queue holds
            # queued.min.messages and, by default, waits 1000 ms before it looks again: a
            # backlog is then read at about queue size per second, whatever the broker can do.
            # Measured, consume() alone over 1M records: 207k records/s with that default,
            # 1.06M/s with 10 ms, and a smaller queue (50,000: 1.24M/s at +73 MB RSS).
            "fetch.queue.backoff.ms": 10,
            # How long a fetch may wait at the broker for data: librdkafka's default (500 ms).
            # 50 ms cut the embedded broker's (Tansu 0.6.0) share of the detection lag (a record
            # reached consume() 0.088 s after it was produced on average instead of 0.195 s, at
            # 50k records/s paced), but Tansu answers a fetch with NO records when gathering them
            # takes longer than this wait: in the 30-minute soak (2026-12-06, load average ~16)
            # partitions whose backlog was many small live batches stopped for good (measured on
            # that broker: 0 records in 8 s with 50 or 100 ms, 6-15k in 6 s with 200-300 ms, the
            # whole 59k backlog within 8 s with 500 ms). KAFKA_PROPERTY_FETCH_WAIT_MAX_MS sets it.
            "fetch.wait.max.ms": 500,
            "queued.min.messages": 50_000,
            "queued.max.messages.kbytes": 64 * 1024,
            # the lag gauge's source: each fetch's high watermark (loganalyzer.consumer_lag)
            "statistics.interval.ms": 5000,
            **kafka_client_config(k),
            "group.id": k.group_id,
            # only for an offset the broker no longer has (retention): read what is left
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "on_commit": self._on_commit,
            "error_cb": self._on_kafka_error,
            "stats_cb": self._on_stats,
        }

    def run(self) -> int:
        """Consume until stopped. Returns the process exit code."""
        # The consumer allocates millions of short-lived acyclic objects; the default GC
        # thresholds would scan them every 700 allocations (measured: ~40 % of parse time).
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        retry_transient(self._reconnect, lambda e: None, self._stop.is_set)
        try:
            while not self._stop.is_set():
                self._session()
        finally:
            log.info(
                "stopping: written %d, dead-lettered %d, skipped %d",
                self.totals.written,
                self.totals.dead_lettered,
                self.totals.skipped,
            )
            self._writer.shutdown(wait=True)
            if self._conn is not None:
                self._conn.close()
        return 1 if self._failed else 0

    def _session(self) -> None:
        """One Kafka consumer from subscribe to close: until stopped, or until the offsets in
        PostgreSQL went back (then the next session seeks to them and restores detection)."""
        cfg = self.settings.consumer
        self._restart = False
        self._committed.clear()
        consumer = self._consumer = Consumer(self._kafka_config())
        consumer.subscribe(
            [self.settings.kafka.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "consuming %s from %s as group %s",
            self.settings.kafka.topic,
            self.settings.kafka.bootstrap_servers,
            self.settings.kafka.group_id,
        )
        last_report = time.monotonic()
        reported = 0
        sizer = BatchSizer(cfg.batch_max_messages, cfg.batch_target_wait_seconds)
        cycle_start = time.perf_counter()
        try:
            while not self._stop.is_set() and not self._restart:
                msgs = consumer.consume(num_messages=sizer.size, timeout=cfg.batch_max_seconds)
                now = time.perf_counter()
                sizer.update(len(msgs), now - cycle_start, _newest_age(msgs))
                cycle_start = now
                if msgs:
                    self._handle(msgs)
                else:
                    self._drain()  # idle: settle the last batch now (Kafka commit, totals)
                if self.detection is not None and not self._restart:
                    self._close_quiet_minutes()
                now = time.monotonic()
                if now - last_report >= 10:
                    done = self.totals.written + self.totals.dead_lettered
                    log.info(
                        "written %d, dead-lettered %d, skipped %d (%.0f records/s)",
                        self.totals.written,
                        self.totals.dead_lettered,
                        self.totals.skipped,
                        (done - reported) / (now - last_report),
                    )
                    last_report, reported = now, done
            self._drain()
        finally:
            consumer.close()  # revokes every partition: their detection state goes with them
            self._consumer = None
            if self.detection is not None:
                for p in self._assigned:
                    self.detection.revoke(p)
            self._assigned = set()

    # -- the batch ------------------------------------------------------------------------------
    def _handle(self, msgs: list[Any]) -> None:
        received = time.time()
        batch = build_batch(
            self.settings.kafka.topic, msgs, self.settings.consumer.parse_limits, self._clock()
        )
        stage = self.metrics.stage_seconds
        parsed = time.time()
        arrivals = [pb.first_arrival_ms for pb in batch.partitions.values() if pb.first_arrival_ms]
        if arrivals:
            stage.labels("delivery").observe(max(0.0, received - min(arrivals) / 1000))
        stage.labels("parse").observe(parsed - received)
        for err in batch.errors:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("Kafka delivered an error instead of a record: %s", err)
        self.metrics.consumed.inc(batch.record_count)
        if not batch.partitions:
            return
        derived = None
        if self.detection is not None:
            derived = self.detection.process(batch)
            self.metrics.tracked_services.set(self.detection.tracked_services())
            self.metrics.split_services.set(self.detection.services_on_several_partitions())
            stage.labels("detect").observe(time.time() - parsed)
        if derived:
            for d in derived.values():
                for a in d.anomalies:
                    self.metrics.anomalies.labels(a.anomaly_type, a.status).inc()
                if d.dropped_late:
                    self.metrics.dropped_late.inc(d.dropped_late)
                if d.ahead:
                    self.metrics.ahead.inc(d.ahead)
        waited = time.time()
        self._drain()
        stage.labels("previous_write").observe(time.time() - waited)
        if self._restart:
            return  # this batch is read again in the next session, after the lost ones
        self._in_flight = (
            batch,
            self._writer.submit(self._write, batch, derived, self._expected(batch.partitions)),
        )

    def _close_quiet_minutes(self) -> None:
        """Silence on partitions where nothing arrives: detection closes their minutes from the
        wall clock (DetectionStage.idle); what it finds is written at once, on its own."""
        assert self.detection is not None
        derived = self.detection.idle(self._backlog)
        if not derived:
            return
        self._drain()
        if self._restart:
            return
        expected = self._expected(derived)

        def attempt() -> set[int]:
            assert self._sink is not None
            return self._sink.write_idle(derived, expected)

        try:
            written = self._writer.submit(
                retry_transient, attempt, self._on_db_failure, self._stop.is_set
            ).result()
        except Unwritable as exc:
            self._fail(exc)
            return
        for p in written:
            for a in derived[p].anomalies:
                self.metrics.anomalies.labels(a.anomaly_type, a.status).inc()

    def _fail(self, exc: Unwritable) -> None:
        """PostgreSQL refuses what retrying cannot change: stop (exit code 1) with its message."""
        log.error("stopping: %s", exc)
        self._failed = True
        self._restart = True  # ends the session: nothing more is written
        self.stop()

    def _expected(self, partitions: Iterable[int]) -> dict[int, int]:
        """The stored offset this consumer expects for each partition: what it last committed
        there, else what was stored when the partition was assigned (so the first write after an
        assignment is checked too). -1 for a partition it does not own: never what is stored."""
        committed, assigned_at = self._committed, self._assigned_at
        return {p: committed.get(p, assigned_at.get(p, -1)) for p in partitions}

    def _drain(self) -> None:
        """Wait for the batch in flight; account for it and commit its offsets to Kafka."""
        if self._in_flight is None:
            return
        batch, future = self._in_flight
        self._in_flight = None
        try:
            result = future.result()  # a non-transient error ends the process here, loudly
        except OffsetsMoved as exc:
            if exc.behind:
                log.warning(
                    "the offsets stored in PostgreSQL went back (%s): commits were lost (a crash "
                    "with synchronous_commit = off?) or reset by hand; starting over from them",
                    exc,
                )
            else:
                log.warning(
                    "another member of the group wrote partitions of this batch (%s): ownership "
                    "overlapped in a rebalance; nothing of the batch written, starting over from "
                    "the stored offsets",
                    exc,
                )
            self.metrics.restarts.inc()
            self._restart = True
            return
        except Unwritable as exc:
            self._fail(exc)
            return
        self._committed.update(result.next_offsets)
        self._account(batch, result)
        self._commit_to_kafka(result.next_offsets)

    def _write(
        self,
        batch: Batch,
        derived: dict[int, PartitionDerived] | None = None,
        expected: dict[int, int] | None = None,
    ) -> WriteResult:
        started = time.perf_counter()

        def attempt() -> WriteResult:
            assert self._sink is not None
            return self._sink.write(batch, derived, expected)

        result = retry_transient(attempt, self._on_db_failure, self._stop.is_set)
        if derived:
            self._observe_detection_lag(batch, derived, time.time())
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(batch.record_count)
        return result

    def _on_db_failure(self, _exc: BaseException) -> None:
        """A transient PostgreSQL error while writing: count it and start on a new connection."""
        self.metrics.db_retries.inc()
        self._reconnect()

    def _observe_detection_lag(
        self, batch: Batch, derived: dict[int, PartitionDerived], committed_at: float
    ) -> None:
        """Each anomaly change is committed now; its trigger arrived no earlier than the batch."""
        for p, d in derived.items():
            pb = batch.partitions.get(p)
            if not d.anomalies or pb is None or pb.first_arrival_ms is None:
                continue
            lag = max(0.0, committed_at - pb.first_arrival_ms / 1000)
            for _ in d.anomalies:
                self.metrics.detection_lag.observe(lag)

    def _account(self, batch: Batch, result: WriteResult) -> None:
        t = self.totals
        t.written += result.written
        t.dead_lettered += result.dead_lettered
        t.skipped += result.skipped
        t.db_rejected += result.db_rejected
        self.metrics.written.inc(result.written)
        self.metrics.skipped.inc(result.skipped)
        if result.dead_lettered:
            for pb in batch.partitions.values():
                for d in pb.dead_letters:
                    self.metrics.dead_lettered.labels(d.reason).inc()
            if result.db_rejected:
                self.metrics.dead_lettered.labels("db_rejected").inc(result.db_rejected)
            for reason, n in result.derived_rejected.items():
                self.metrics.dead_lettered.labels(reason).inc(n)
        for p, o in result.next_offsets.items():
            self.metrics.committed_offset.labels(self.settings.kafka.topic, str(p)).set(o)

    def _commit_to_kafka(self, next_offsets: dict[int, int]) -> None:
        """Best effort: PostgreSQL holds the truth; Kafka's copy feeds standard lag tooling."""
        owned = [
            TopicPartition(self.settings.kafka.topic, p, o)
            for p, o in next_offsets.items()
            if p in self._assigned
        ]
        if owned and self._consumer is not None:
            try:
                self._consumer.commit(offsets=owned, asynchronous=True)
            except KafkaException as exc:
                log.info("Kafka offset commit skipped: %s", exc)

    # -- rebalance callbacks ----------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The partitions given to this consumer: all of its assignment with the eager assignors
        (range, roundrobin), only the added ones with cooperative-sticky. Either way each of
        them is set up on its own: stored offset, detection state, then added."""
        cooperative = self._cooperative
        if not partitions:
            if cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            return
        self._drain()
        wanted = [tp.partition for tp in partitions]

        def lookup() -> dict[int, int]:
            assert self._sink is not None
            return self._sink.stored_offsets(wanted)

        stored = retry_transient(lookup, lambda e: self._reconnect(), self._stop.is_set)
        checkpoints: dict[int, tuple[int, bytes]] = {}
        if self.detection is not None:

            def load() -> dict[int, tuple[int, bytes]]:
                assert self._sink is not None
                return self._sink.load_checkpoints(wanted)

            checkpoints = retry_transient(load, lambda e: self._reconnect(), self._stop.is_set)
        self._assigned_at.update(stored)
        deadline = time.monotonic() + WARM_START_BUDGET.total_seconds()
        for tp in partitions:
            tp.offset = stored.get(tp.partition, 0)
            if self.detection is not None:
                history = partial(self._history, tp.partition, deadline)
                tp.offset = self.detection.assign(
                    tp.partition, tp.offset, checkpoints.get(tp.partition), history
                )
        if cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        added = set(wanted)
        self._assigned |= added
        for p in added:
            self._committed.pop(p, None)
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info(
            "assigned partitions %s at stored offsets %s (now owning %s)",
            sorted(added),
            stored,
            sorted(self._assigned),
        )

    def _history(self, partition: int, deadline: float, window: timedelta) -> WarmHistory | None:
        left = deadline - time.monotonic()
        if left <= 0.1:
            log.warning("partition %d: warm-start budget spent on other partitions; starting cold", partition)
            return None

        def load() -> WarmHistory | None:
            assert self._sink is not None
            return self._sink.load_history(partition, window, timedelta(seconds=left))

        return retry_transient(load, lambda e: self._reconnect(), self._stop.is_set)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away (or lost): all of them with the eager assignors, only those
        that move with cooperative-sticky; the others keep their state and go on."""
        # Finish the write in flight so the next owner starts from up-to-date stored offsets
        # (correctness does not depend on it: the FOR UPDATE fence in the sink guarantees that).
        self._drain()
        revoked = {tp.partition for tp in partitions}
        self._assigned -= revoked
        for p in revoked:
            self._committed.pop(p, None)
            self._assigned_at.pop(p, None)
            with contextlib.suppress(KeyError):
                self.metrics.lag.remove(str(p))  # another consumer reports it now
        if self.detection is not None:
            for p in revoked:
                self.detection.revoke(p)
        self.metrics.assigned_partitions.set(len(self._assigned))
        log.info("revoked partitions %s", sorted(revoked))
        if self._cooperative:
            consumer.incremental_unassign(partitions)
        else:
            consumer.unassign()

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            log.debug("Kafka offset commit failed (harmless, offsets live in PostgreSQL): %s", err)

    def _on_stats(self, document: str) -> None:
        """Lag per owned partition, from librdkafka's statistics (served by consume(), on this
        thread, so the offsets read here are the ones the write path keeps)."""
        try:
            stats = json.loads(document)
        except ValueError:
            return
        stored = {
            p: o for p in self._assigned if (o := self._committed.get(p, self._assigned_at.get(p, -1))) >= 0
        }
        backlog = lag(high_watermarks(stats, self.settings.kafka.topic), stored)
        for partition, records in backlog.items():
            self.metrics.lag.labels(partition=str(partition)).set(records)
        self._backlog = backlog  # detection's quiet partitions must have nothing waiting

    def _on_kafka_error(self, err: KafkaError) -> None:
        log.warning("Kafka: %s", err)
