"""Silence on a partition where nothing arrives at all: DetectionStage.idle (fake clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loganalyzer.detection.config import DetectionConfig
from streaming.batch import Batch, PartitionBatch
from streaming.derived import AnomalyRow, PartitionDerived
from streaming.detection_stage import DetectionStage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = NOW

    def tick(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def _batch(
    partition: int, start: datetime, minutes: int, per_minute: int = 60, first_offset: int = 0
) -> Batch:
    rows = []
    for i in range(minutes * per_minute):
        ts = start + timedelta(seconds=60 * i / per_minute)
        off = first_offset + i
        rows.append(
            (ts, "t", "api", "h1", "INFO", f"GET /items/{i} 200", b"\x01{}", None, "logs", partition, off)
        )
    pb = PartitionBatch(partition, first_offset, first_offset + len(rows) - 1, rows, [None] * len(rows))
    return Batch("logs", {partition: pb})


def _stage(clocks: Clocks) -> DetectionStage:
    return DetectionStage(
        DetectionConfig(), None, 3600.0, clock=lambda: clocks.mono, wall_clock=lambda: clocks.wall
    )


def _drops(derived: dict[int, PartitionDerived]) -> list[AnomalyRow]:
    return [a for d in derived.values() for a in d.anomalies if a.anomaly_type == "log_volume_drop"]


def test_a_live_partition_that_goes_quiet_reports_the_silence() -> None:
    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.process(_batch(0, NOW - timedelta(minutes=60), 60))  # live: the newest event is ~now
    assert stage.idle() == {}  # nothing has been quiet yet
    found: list[AnomalyRow] = []
    for _ in range(8 * 60):  # eight minutes of wall time, one look a second, nothing arriving
        clocks.tick(1.0)
        found += _drops(stage.idle())
    assert [a.status for a in found] == ["open"]
    assert found[0].service == "api" and found[0].actual_value == 0
    # the silence began at NOW: its first minute is reported, once the allowed lateness passed
    assert found[0].window_end == NOW + timedelta(minutes=1)  # (window_start: its 5-minute window)


def test_replayed_history_and_a_stalled_consumer_are_not_silence() -> None:
    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.assign(1, 0, None)
    stage.process(_batch(0, NOW - timedelta(days=1, minutes=60), 60))  # a backfill of yesterday
    stage.process(_batch(1, NOW - timedelta(minutes=60), 60))  # live
    stage.idle()
    clocks.tick(600)  # the consumer did not look for 10 minutes (a long batch, an outage)
    assert stage.idle() == {}  # records may have been waiting: quiet time starts again
    for _ in range(60):
        clocks.tick(1.0)
        assert _drops(stage.idle()) == []  # one minute quiet: within the allowed lateness
    found: dict[int, int] = {}
    for _ in range(7 * 60):
        clocks.tick(1.0)
        for p, d in stage.idle().items():
            found[p] = found.get(p, 0) + len(_drops({p: d}))
    assert found == {1: 1}  # the live partition's silence, once; the replay's end is not silence
    backfill = stage.engine(0)
    assert backfill is not None and backfill.max_minute is not None and backfill.closed_upto is not None
    assert backfill.closed_upto <= backfill.max_minute  # its minutes closed by its own events only


def test_a_partition_with_records_waiting_in_the_broker_is_not_silent() -> None:
    """Nothing arriving while the broker still holds records for the partition (a consumer
    behind, a broker slow to answer fetches, as Tansu on a loaded machine) is not silence at the
    source: no drop while the backlog lasts; once it is gone, quiet time counts from then."""
    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.process(_batch(0, NOW - timedelta(minutes=60), 60))
    stage.idle()
    for _ in range(8 * 60):  # eight minutes with 5,000 records waiting: what a drop would need
        clocks.tick(1.0)
        assert _drops(stage.idle({0: 5000})) == []
    found: list[AnomalyRow] = []
    for _ in range(60):  # caught up, then one quiet minute: within the allowed lateness
        clocks.tick(1.0)
        found += _drops(stage.idle({0: 0}))
    assert found == []
    for _ in range(8 * 60):
        clocks.tick(1.0)
        found += _drops(stage.idle({0: 0}))
    assert [a.status for a in found] == ["open"]


def test_an_event_from_a_clock_an_hour_ahead_does_not_carry_the_watermark_away() -> None:
    """One host whose clock runs an hour fast must not close the partition's next hour: its event
    is counted at the consumer's now, and the partition's real traffic keeps being counted."""
    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.process(_batch(0, NOW - timedelta(minutes=60), 60))
    future = _batch(0, NOW + timedelta(hours=1), 1, per_minute=1, first_offset=3600)
    derived = stage.process(future)
    assert derived[0].ahead == 1 and derived[0].dropped_late == 0
    engine = stage.engine(0)
    assert engine is not None and engine.closed_upto is not None
    assert engine.closed_upto <= int(NOW.timestamp()) // 60  # nothing after now has closed
    clocks.tick(30)
    on_time = stage.process(_batch(0, NOW - timedelta(minutes=1), 1, first_offset=3601))
    assert on_time[0].dropped_late == 0 and on_time[0].ahead == 0
    assert _drops(on_time) == []


def test_a_damaged_checkpoint_is_named_and_the_partition_starts_from_its_stored_offset(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A checkpoint whose new field (per-minute pattern errors) is malformed does not stop the
    partition: a warning names it and detection starts fresh at the stored offset; a sound one
    is restored and read from its own offset."""
    import orjson

    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.process(_batch(0, NOW - timedelta(minutes=30), 30))
    engine = stage.engine(0)
    assert engine is not None
    doc = orjson.loads(engine.snapshot())
    assert stage.assign(1, 1800, (1700, orjson.dumps(doc))) == 1700
    for service in doc["services"]:
        service["pattern_errors"] = {"not a minute": 1}
    with caplog.at_level("WARNING"):
        assert stage.assign(2, 1800, (1700, orjson.dumps(doc))) == 1800
    assert "partition 2: unreadable detector checkpoint" in caplog.text
    fresh = stage.engine(2)
    assert fresh is not None and not fresh.services


def test_a_checkpoint_of_a_version_this_release_does_not_read_is_discarded_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A newer release's checkpoint (a rollback) is not guessed at: the partition starts without
    it, from its stored offset, and the log says which version it was."""
    import orjson

    clocks = Clocks()
    stage = _stage(clocks)
    stage.assign(0, 0, None)
    stage.process(_batch(0, NOW - timedelta(minutes=30), 30))
    engine = stage.engine(0)
    assert engine is not None
    doc = orjson.loads(engine.snapshot())
    doc["version"] = 99
    with caplog.at_level("INFO"):
        assert stage.assign(1, 1800, (1700, orjson.dumps(doc))) == 1800
    assert "partition 1: detector checkpoint version 99" in caplog.text
    assert "starting without it" in caplog.text
    assert "starting cold" in caplog.text  # no stored history given: a cold start
    fresh = stage.engine(1)
    assert fresh is not None and not fresh.services
