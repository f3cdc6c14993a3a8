"""A partition's detection is a function of its records in order: neither the batches they
arrive in nor a checkpoint restored part-way (the records after its offset read again) changes
an episode.

Why it matters: after a crash or a rebalance the partition's next owner restores the newest
stored checkpoint, replays the records after its offset through detection only, and reads on in
batches of its own sizes (streaming/detection_stage.py). Its episodes must be those of one
engine that never stopped (docs/resilience.md). Traffic: the generator's, three services of one
partition for 95 minutes with an error burst, a traffic spike and never-seen ERROR templates.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.engine import DetectionEngine
from loganalyzer.detection.episodes import EpisodeEvent
from loganalyzer.events import EventParser, ParseLimits
from loganalyzer.generator.incidents import Incident
from loganalyzer.generator.services import CATALOGUE, service_by_name
from loganalyzer.generator.traffic import TrafficModel
from streaming.batch import Batch, PartitionBatch
from streaming.derived import PartitionDerived
from streaming.detection_stage import DetectionStage
from streaming.log_row import DURATION, LEVEL, MESSAGE, OFFSET, SERVICE, TENANT, TS

START = datetime(2026, 12, 6, 22, 44, tzinfo=UTC)
SERVICES = ("billing", "orders", "payments")
CONFIG = DetectionConfig()
Row = tuple[Any, ...]
#: a written episode as the scale-out test compares them: (id, service, type, window start)
Key = tuple[str, str, str, datetime]


def _incident(kind: str, service: str, minutes: tuple[int, int], magnitude: float) -> Incident:
    spec = service_by_name(service)
    first, last = (START + timedelta(minutes=m) for m in minutes)
    return Incident(kind, spec.tenant, spec.name, first, last, magnitude)


@functools.cache
def _rows() -> tuple[Row, ...]:
    """The partition's records as `logs` rows, offsets from 0 (the same data every call)."""
    incidents = [
        _incident("traffic_spike", "orders", (58, 66), 8.0),
        _incident("error_burst", "payments", (72, 82), 0.4),
    ]
    model = TrafficModel(CATALOGUE, 20.0, seed=7, incidents=incidents)
    parse = EventParser(ParseLimits(), START + timedelta(hours=2)).fields
    rows: list[Row] = []
    for record in model.records(START, START + timedelta(minutes=95)):
        row = parse(record.value)
        assert isinstance(row, tuple)
        if row[SERVICE] in SERVICES:
            rows.append((*row, "logs", 0, len(rows)))
    return tuple(rows)


def _split(rows: Sequence[Row], sizes: Sequence[int]) -> Iterator[Sequence[Row]]:
    """The rows in consecutive batches of the given sizes, repeated until none are left."""
    i = 0
    while i < len(rows):
        for n in sizes:
            if i >= len(rows):
                return
            yield rows[i : i + n]
            i += n


def _observe(engine: DetectionEngine, rows: Sequence[Row]) -> None:
    for r in rows:
        engine.observe(r[TS], r[TENANT], r[SERVICE], r[LEVEL], r[MESSAGE], r[DURATION])


def _opened(events: list[EpisodeEvent]) -> set[tuple[str, str, datetime]]:
    return {(e.episode.service, e.episode.type, e.episode.window_start) for e in events if e.kind == "opened"}


@functools.cache
def _one_pass() -> tuple[set[tuple[str, str, datetime]], bytes]:
    """Every record observed, then one advance: the episodes opened and the state at the end."""
    rows = _rows()
    engine = DetectionEngine(CONFIG)
    _observe(engine, rows)
    opened = _opened(engine.advance(max(r[TS] for r in rows)))
    return opened, engine.snapshot()


def test_the_traffic_has_rule_and_pattern_episodes() -> None:
    """What the properties below compare is not empty: the incidents and new ERROR templates."""
    types = {(service, kind) for service, kind, _ in _one_pass()[0]}
    assert {("orders", "log_volume_spike"), ("payments", "error_rate_spike")} <= types
    assert any(kind == "new_error_pattern" for _, kind in types)


@given(st.lists(st.integers(1, 2_500), min_size=1, max_size=12))
@settings(max_examples=25, deadline=None)
def test_batch_boundaries_change_nothing_the_engine_finds(sizes: list[int]) -> None:
    """Advanced after each batch (as the consumer does) or once at the end: the same episodes
    and, at the end, the same state to the byte."""
    engine = DetectionEngine(CONFIG)
    opened: set[tuple[str, str, datetime]] = set()
    newest: datetime | None = None
    for batch in _split(_rows(), sizes):
        _observe(engine, batch)
        top = max(r[TS] for r in batch)
        newest = top if newest is None else max(newest, top)
        opened |= _opened(engine.advance(newest))
    assert (opened, engine.snapshot()) == _one_pass()


def test_a_new_template_after_the_last_episode_resolved_opens_a_second_one_in_any_batches() -> None:
    """The example behind the property: a pattern episode resolves when minute `last +
    resolve_after` closes, and a later never-seen template then opens a second episode. Whether
    that minute had closed used to depend on whether the caller advanced the engine between the
    two lines; now the second line's own time closes it."""
    start = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    lines: list[tuple[datetime, str, str]] = []
    for m in range(40):
        for i in range(30):
            lines.append((start + timedelta(minutes=m, seconds=2 * i), "INFO", f"served request {i}"))
    lines.append((start + timedelta(minutes=31, seconds=1), "ERROR", "replica 3 lost its lease on shard 9"))
    lines.append((start + timedelta(minutes=35, seconds=30), "ERROR", "disk quota exceeded on volume 7"))
    lines.sort(key=lambda line: line[0])

    def episodes(advance_each_line: bool) -> list[tuple[str, datetime]]:
        engine = DetectionEngine(CONFIG)
        events: list[EpisodeEvent] = []
        for ts, level, message in lines:
            engine.observe(ts, "acme", "api", level, message, 12)
            if advance_each_line:
                events += engine.advance(ts)
        events += engine.advance(lines[-1][0])
        return [(e.kind, e.episode.window_start) for e in events if e.episode.type == "new_error_pattern"]

    at31, at35 = start + timedelta(minutes=31), start + timedelta(minutes=35)
    # resolved when minute 34 closed (31 + 3), at 35:15: the 35:30 line is a second episode
    # (resolved in turn when minute 38 closes)
    expected = [("opened", at31), ("resolved", at31), ("opened", at35), ("resolved", at35)]
    assert episodes(advance_each_line=True) == expected
    assert episodes(advance_each_line=False) == expected


# -- the consumer's path: checkpoint, crash, restore, replay -----------------------------------


def _batch(rows: Sequence[Row]) -> Batch:
    pb = PartitionBatch(0, rows[0][OFFSET], rows[-1][OFFSET], list(rows), [None] * len(rows))
    return Batch("logs", {0: pb})


def _stage() -> DetectionStage:
    """Checkpoints after every batch (the clock jumps an hour a call), wall clock a day ahead
    of the traffic (no record is ahead of it, no partition looks live)."""
    ticks = iter(range(0, 10**9, 3600))
    return DetectionStage(
        CONFIG,
        None,
        checkpoint_seconds=1.0,
        clock=lambda: float(next(ticks)),
        wall_clock=lambda: START + timedelta(days=1),
        warm_start=timedelta(0),
    )


def _written(derived: PartitionDerived) -> set[Key]:
    return {(a.id, a.service, a.anomaly_type, a.window_start) for a in derived.anomalies}


@functools.cache
def _uninterrupted() -> tuple[frozenset[Key], bytes]:
    """One stage owning the partition throughout, in batches of 500: what it writes, its state."""
    stage = _stage()
    stage.assign(0, 0, None)
    written: set[Key] = set()
    for batch in _split(_rows(), [500]):
        written |= _written(stage.process(_batch(batch))[0])
    engine = stage.engine(0)
    assert engine is not None
    return frozenset(written), engine.snapshot()


@given(
    before=st.lists(st.integers(1, 2_500), min_size=1, max_size=6),
    after=st.lists(st.integers(1, 2_500), min_size=1, max_size=6),
    cut=st.floats(0, 1),
    lag=st.floats(0, 1),
)
@settings(max_examples=25, deadline=None)
def test_restoring_a_checkpoint_and_replaying_from_its_offset_equals_never_stopping(
    before: list[int], after: list[int], cut: float, lag: float
) -> None:
    """The first owner stores rows (and the episodes found with them) up to batch `stored`, the
    newest checkpoint it stored being the one of batch `taken` <= `stored` (checkpoints are
    lazy). The next owner restores it, replays from its offset in batches of other sizes (the
    rows below the stored offset for detection only, as the sink then writes nothing of a batch
    wholly below it) and reads on: it writes the episodes one owner would, and ends in its state."""
    batches = [_batch(rows) for rows in _split(_rows(), before)]
    taken = round(cut * (len(batches) - 1))
    stored = taken + round(lag * (len(batches) - 1 - taken))
    first = _stage()
    first.assign(0, 0, None)
    written: set[Key] = set()
    checkpoint: tuple[int, bytes] | None = None
    for i, batch in enumerate(batches[: stored + 1]):
        derived = first.process(batch)[0]
        written |= _written(derived)
        if i == taken:
            assert derived.checkpoint is not None
            checkpoint = (batch.partitions[0].last_offset + 1, derived.checkpoint)
    floor = batches[stored].partitions[0].last_offset + 1

    second = _stage()
    start = second.assign(0, floor, checkpoint)
    assert checkpoint is not None and start == checkpoint[0]
    for rows in _split(_rows()[start:], after):
        derived = second.process(_batch(rows))[0]
        if rows[-1][OFFSET] >= floor:  # what the sink writes (PostgresSink._write)
            written |= _written(derived)
    engine = second.engine(0)
    assert engine is not None
    assert (frozenset(written), engine.snapshot()) == _uninterrupted()
