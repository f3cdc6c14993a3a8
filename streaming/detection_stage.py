"""Detection inside the consumer: one engine per owned partition, fed from each batch.

Runs in the consumer's main thread on the parsed batch; what it derives (pattern counts,
episode changes, checkpoints) travels with the batch to the writer and commits in the same
transaction as the rows.

Silence with nothing arriving: a minute normally closes when the partition's own newer events
pass it, so a partition whose every service went quiet (a tenant's outage, the only service on
its partition) would never close another minute. `idle()` lets the event time of a quiet live
partition run on with the wall clock (newest event time + time quiet − allowed lateness), so its
minutes close and the silence is reported; the consumer writes what that finds on its own.

Restart without blindness or false alarms: on assignment the engine is restored from the
partition's checkpoint and the consumer seeks back to the checkpoint's offset; records between
it and the stored ingest offset are replayed through detection only (the sink skips storing
them again, and their patterns are not counted twice: they were counted when first stored).
A partition with no (readable) checkpoint but stored events (detection turned on over an
existing database, a lost checkpoint) is warmed instead: baselines from the per-minute counts of
its recent stored events (`WarmHistory`, `DetectionEngine.warm_start`), the newest minute kept
open for the events that follow. Without it, its rules would be blind for the warm-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from loganalyzer.detection.checkpoint import CheckpointVersionError
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.engine import DetectionEngine, ForestScorer
from loganalyzer.detection.episodes import EpisodeEvent, partition_episode_id
from loganalyzer.detection.windows import minute_of, minute_start
from streaming.batch import Batch
from streaming.derived import AnomalyRow, PartitionDerived, PatternDelta, WarmHistory
from streaming.log_row import DURATION, LEVEL, MESSAGE, OFFSET, SERVICE, TENANT, TS

log = logging.getLogger(__name__)


def anomaly_row(event: EpisodeEvent, partition: int) -> AnomalyRow:
    ep = event.episode
    extra = ep.extra
    return AnomalyRow(
        id=partition_episode_id(ep.id, partition),
        tenant=ep.tenant,
        service=ep.service,
        anomaly_type=ep.type,
        severity=ep.severity,
        status=ep.status,
        window_start=ep.window_start,
        window_end=ep.window_end,
        resolved_at=ep.resolved_at,
        score=ep.ratio,
        expected_value=ep.expected,
        actual_value=ep.actual,
        description=ep.description,
        pattern_template=extra.get("template"),
        sample_message=extra.get("sample_message"),
        model_version=extra.get("model_version"),
        details=dict(extra),
    )


#: a checkpoint may cost at most 1/CHECKPOINT_COST_SHARE of the consumer's time: with thousands
#: of services a snapshot takes seconds (bench/bench_detection_state.py: 10,000 services, 31 MB,
#: 2.0 s), and taking it every 10 s would spend 20 % of the detection thread on it. The price
#: of a longer interval is a longer replay (through detection only) after a crash.
CHECKPOINT_COST_SHARE = 20
#: a partition whose newest event was this far behind the wall clock when it arrived is replaying
#: history (a backfill): its silence afterwards is the end of the replay, not an outage
LIVE_HORIZON = timedelta(minutes=10)
#: calls to idle() further apart than this mean the consumer was not polling (a long batch, a
#: PostgreSQL outage): records may have been waiting, so quiet time restarts from now
IDLE_MAX_GAP = 5.0
#: seconds between two looks at quiet partitions (minutes are what it closes)
IDLE_EVERY = 1.0
#: a partition with records this recently closes its own minutes, with its batch (and the
#: batch's detection lag is measured): the wall clock only speaks for quiet ones
IDLE_AFTER = 5.0
_ts = itemgetter(TS)


@dataclass
class _Owned:
    engine: DetectionEngine
    #: records below this offset were stored (and their patterns counted) before assignment
    floor: int
    last_checkpoint: float
    #: seconds between checkpoints: the configured interval, stretched by the snapshot's cost
    interval: float = 0.0
    #: newest event time the partition has shown (None: none yet)
    newest: datetime | None = None
    #: clock() when the partition last had records (or was assigned): quiet since then
    last_data: float = 0.0
    #: the newest event was this far behind the wall clock when it arrived
    behind: timedelta = timedelta(0)
    #: how many services the engine tracked when they were last compared across partitions
    services_seen: int = 0


def _not_ahead_of(rows: list[tuple[Any, ...]], now: datetime) -> tuple[list[tuple[Any, ...]], int]:
    """The rows with every timestamp after `now` replaced by `now`, and how many there were.

    Why: event time only moves forward, so ONE event from a host whose clock runs an hour ahead
    (the parser accepts up to 2 h) would carry the partition's watermark an hour into the future:
    every minute closes at once, every other service looks silent, and their real events are all
    dropped as late for an hour. Detection counts such events at the consumer's now instead; the
    stored row keeps its own timestamp."""
    out: list[tuple[Any, ...]] = []
    ahead = 0
    for row in rows:
        if row[TS] > now:
            row = (*row[:TS], now, *row[TS + 1 :])
            ahead += 1
        out.append(row)
    return out, ahead


class DetectionStage:
    def __init__(
        self,
        config: DetectionConfig,
        scorer: ForestScorer | None = None,
        checkpoint_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        warm_start: timedelta = timedelta(hours=2),
    ) -> None:
        self.config = config
        #: how much stored history warms a partition that has no checkpoint (0: none)
        self.warm_start = warm_start
        self.scorer = scorer
        self.checkpoint_seconds = checkpoint_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._owned: dict[int, _Owned] = {}
        self._last_idle: float | None = None
        #: (tenant, service) -> the owned partitions whose engines track it
        self._partitions_of: dict[tuple[str, str], set[int]] = {}
        #: services already reported as arriving on several partitions (one log line each)
        self._reported: set[tuple[str, str]] = set()

    def assign(
        self,
        partition: int,
        stored_offset: int,
        checkpoint: tuple[int, bytes] | None,
        history: Callable[[timedelta], WarmHistory | None] | None = None,
    ) -> int:
        """Set up a partition's engine; returns the offset to start reading from.

        `history(window)` reads the partition's stored events of that long before its newest; it
        is called only when there is no usable checkpoint and `warm_start` is not zero."""
        engine: DetectionEngine | None = None
        start = stored_offset
        if checkpoint is not None:
            offset, blob = checkpoint
            try:
                engine = DetectionEngine.restore(self.config, blob, self.scorer)
                start = min(offset, stored_offset)
            except CheckpointVersionError as exc:
                log.warning("partition %d: %s: starting without it", partition, exc)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("partition %d: unreadable detector checkpoint (%s)", partition, exc)
        if engine is None:
            engine = DetectionEngine(self.config, self.scorer)
            warm = None
            if history is not None and self.warm_start > timedelta(0):
                warm = history(self.warm_start)
            if warm is None:
                log.info("partition %d: no detector checkpoint and nothing stored: starting cold", partition)
            else:
                # minutes the watermark has not passed stay open for the events that follow
                services = engine.warm_start(
                    warm.rows, minute_of(warm.newest - self.config.allowed_lateness), warm.patterns
                )
                log.info(
                    "partition %d: no detector checkpoint; baselines of %d services warmed from %d "
                    "stored minutes, %d known templates relearned",
                    partition,
                    services,
                    len(warm.rows),
                    len(warm.patterns),
                )
        now = self._clock()
        owned = self._owned[partition] = _Owned(engine, stored_offset, now, last_data=now)
        if engine.max_minute is not None:  # restored: quiet counts from now, from its newest minute
            owned.newest = minute_start(engine.max_minute)
            owned.behind = self._wall_clock() - owned.newest
        return start

    def revoke(self, partition: int) -> None:
        self._owned.pop(partition, None)
        for key in [k for k, parts in self._partitions_of.items() if partition in parts]:
            parts = self._partitions_of[key]
            parts.discard(partition)
            if not parts:
                del self._partitions_of[key]

    def services_on_several_partitions(self) -> int:
        """Services that this consumer's engines track on more than one partition: events not
        keyed by tenant and service (docs/ingestion.md, "Keys")."""
        return sum(1 for parts in self._partitions_of.values() if len(parts) > 1)

    def _note_services(self, partition: int, owned: _Owned) -> None:
        """Compare the partition's services with the other partitions' when its engine started
        tracking new ones (cheap: not per batch once the services are known); say once per
        service when one turns up on several partitions."""
        services = owned.engine.services
        if len(services) == owned.services_seen:
            return
        owned.services_seen = len(services)
        for key in services:
            parts = self._partitions_of.setdefault(key, set())
            if partition in parts:
                continue
            parts.add(partition)
            if len(parts) > 1 and key not in self._reported:
                self._reported.add(key)
                log.warning(
                    "service %s/%s arrives on partitions %s: its detection state is split between "
                    "them (each sees part of its traffic); key records by tenant/service "
                    "(docs/ingestion.md)",
                    key[0],
                    key[1],
                    sorted(parts),
                )

    def tracked_services(self) -> int:
        """Services whose state this consumer holds, over every partition it owns."""
        return sum(len(o.engine.services) for o in self._owned.values())

    def engine(self, partition: int) -> DetectionEngine | None:
        owned = self._owned.get(partition)
        return None if owned is None else owned.engine

    def process(self, batch: Batch) -> dict[int, PartitionDerived]:
        out: dict[int, PartitionDerived] = {}
        now = self._clock()
        wall = self._wall_clock()
        for p, pb in batch.partitions.items():
            owned = self._owned.get(p)
            if owned is None:
                continue  # not ours any more (a rebalance raced this batch); the sink fences it
            rows = pb.rows
            ahead = 0
            if rows:
                newest = max(rows, key=_ts)[TS]
                if newest > wall:  # rare: only then is any row looked at twice
                    rows, ahead = _not_ahead_of(rows, wall)
                    newest = wall
                if owned.newest is None or newest > owned.newest:
                    owned.newest = newest
                owned.last_data = now
                owned.behind = wall - owned.newest
            engine = owned.engine
            observe = engine.observe
            late_before = engine.dropped_late
            floor = owned.floor
            if pb.first_offset >= floor:  # the usual case: every record is new
                for row in rows:
                    observe(
                        row[TS],
                        row[TENANT],
                        row[SERVICE],
                        row[LEVEL],
                        row[MESSAGE],
                        row[DURATION],
                    )
            else:  # replay after a restore: rows below the floor rebuild state, uncounted
                for row in rows:
                    observe(
                        row[TS],
                        row[TENANT],
                        row[SERVICE],
                        row[LEVEL],
                        row[MESSAGE],
                        row[DURATION],
                        row[OFFSET] >= floor,
                    )
            self._note_services(p, owned)
            derived = PartitionDerived(
                patterns=[PatternDelta(*d) for d in engine.drain_patterns()],
                anomalies=[anomaly_row(e, p) for e in engine.advance(owned.newest)],
                dropped_late=engine.dropped_late - late_before,
                ahead=ahead,
            )
            if now - owned.last_checkpoint >= max(self.checkpoint_seconds, owned.interval):
                began = time.perf_counter()
                derived.checkpoint = engine.snapshot()
                owned.interval = CHECKPOINT_COST_SHARE * (time.perf_counter() - began)
                owned.last_checkpoint = now
            out[p] = derived
        return out

    def idle(self, backlog: Mapping[int, int] | None = None) -> dict[int, PartitionDerived]:
        """Close the minutes that wall-clock time has passed on quiet live partitions.

        A partition quiet for `q` seconds is taken to be at event time newest + q, so its
        minutes close once q passes the allowed lateness, exactly as if an event had arrived.
        Skipped: partitions that never had an event, those replaying history (newest event over
        LIVE_HORIZON behind the wall clock when it came), and those with records waiting in the
        broker (`backlog`: the consumer lag last known per partition): nothing arriving then
        means a consumer behind or a broker slow to answer its fetches, not silence at the
        source, and their quiet time starts again. Returns the episode changes of the partitions
        where something changed."""
        now = self._clock()
        if self._last_idle is not None and now - self._last_idle < IDLE_EVERY:
            return {}
        stalled = self._last_idle is None or now - self._last_idle > IDLE_MAX_GAP
        self._last_idle = now
        out: dict[int, PartitionDerived] = {}
        for p, owned in self._owned.items():
            if stalled or (backlog is not None and backlog.get(p, 0) > 0):
                owned.last_data = max(owned.last_data, now)
            quiet = now - owned.last_data
            if owned.newest is None or owned.behind > LIVE_HORIZON or quiet < IDLE_AFTER:
                continue
            events = owned.engine.advance(owned.newest + timedelta(seconds=quiet))
            if events:
                out[p] = PartitionDerived(patterns=[], anomalies=[anomaly_row(e, p) for e in events])
        return out
