"""Detector checkpoints: named fields with a version, exact round trips, and the old versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from loganalyzer.detection.checkpoint import CHECKPOINT_VERSION, CheckpointVersionError
from loganalyzer.detection.config import DetectionConfig
from loganalyzer.detection.engine import DetectionEngine
from loganalyzer.detection.episodes import EpisodeEvent

START = datetime(2026, 11, 23, 10, tzinfo=UTC)
#: written by the engine of checkpoint version 2 (positional lists): a checkpoint taken with an
#: error-rate episode open and a new-pattern episode pending, and every episode change that
#: engine then made on the traffic `_traffic` replays (minutes 78-100)
V2 = Path(__file__).parent / "data" / "detector_checkpoint_v2.json"


def _traffic(
    engine: DetectionEngine,
    minutes: range,
    per_minute: int = 120,
    error_share: float = 0.01,
    novel: bool = False,
) -> list[list[str | None]]:
    """Each minute's episode changes as the consumer writes them: as rows, when they happen."""
    events: list[list[str | None]] = []
    for m in minutes:
        errors = round(per_minute * error_share)
        for i in range(per_minute):
            ts = START + timedelta(minutes=m, seconds=i * 60 / per_minute)
            if novel and i == per_minute - 1:
                engine.observe(ts, "acme", "payments", "ERROR", f"replica {i} lost its lease on shard 9", 40)
                continue
            level = "ERROR" if i < errors else "INFO"
            msg = f"charge failed for order {i}" if level == "ERROR" else f"charged order {i} in {i % 90} ms"
            engine.observe(ts, "acme", "payments", level, msg, 40)
        events += _rows(engine.advance())
    return events


def _rows(events: list[EpisodeEvent]) -> list[list[str | None]]:
    return [
        [
            e.kind,
            e.episode.id,
            e.episode.type,
            e.episode.severity,
            e.episode.status,
            e.episode.window_start.isoformat(),
            e.episode.window_end.isoformat(),
            None if e.episode.resolved_at is None else e.episode.resolved_at.isoformat(),
            e.episode.description,
        ]
        for e in events
    ]


#: the version-2 engine resolved rule episodes after 3 normal minutes, as `resolve_after` does
V2_CONFIG = DetectionConfig(rule_resolve_after=3)


def _episodes(rows: list[list[str | None]]) -> list[list[str | None]]:
    """The episodes of a list of rows: each opening (id, type, window start) and each resolution
    in full. Why not every row: the version-2 engine closed a minute only when its caller
    advanced it (here once per minute of traffic), this one as soon as an event's time passes
    the minute's end plus the allowed lateness, so an episode's intermediate `updated` rows (and
    the severity an opening row shows when it is read) fall a minute apart between the two."""
    return [
        r if r[0] == "resolved" else [r[0], r[1], r[2], r[5]] for r in rows if r[0] in ("opened", "resolved")
    ]


def _busy_engine(config: DetectionConfig | None = None) -> DetectionEngine:
    """Past the seasonal tables' allocation, with an episode open, evidence and a pending event."""
    engine = DetectionEngine(config or DetectionConfig())
    _traffic(engine, range(75))
    _traffic(engine, range(75, 78), error_share=0.3)
    at = START + timedelta(minutes=78, seconds=5)
    engine.observe(at, "acme", "payments", "ERROR", "replica 4 lost its lease on shard 9", 40)
    return engine


def test_a_checkpoint_round_trips_through_json_with_named_fields() -> None:
    engine = _busy_engine()
    blob = engine.snapshot()
    doc = orjson.loads(blob)
    assert doc["version"] == CHECKPOINT_VERSION
    assert set(doc) == {"version", "max_minute", "closed_upto", "dropped_late", "pending", "services"}
    service = doc["services"][0]
    assert (service["tenant"], service["service"]) == ("acme", "payments")
    assert set(service["buckets"][0]) == {
        "minute",
        "total",
        "errors",
        "warns",
        "duration_sum",
        "duration_n",
        "length_sum",
    }
    assert service["baseline"]["weekly"] is not None and service["baseline"]["minutes"] > 60
    assert [e["type"] for e in service["episodes"]] == ["error_rate_spike", "new_error_pattern"]
    assert service["cusum"]["statistic"] > 0 and set(service["drop"]) == {
        "score",
        "minutes",
        "expected",
        "actual",
        "capped",
    }
    assert [p["kind"] for p in doc["pending"]] == ["opened"]
    assert doc["pending"][0]["episode"]["type"] == "new_error_pattern"

    restored = DetectionEngine.restore(DetectionConfig(), blob)
    assert restored.snapshot() == blob  # nothing lost or changed on the way
    a, b = engine.services[("acme", "payments")], restored.services[("acme", "payments")]
    assert (a.buckets, a.cusum, a.drop, a.dispersion, a.pattern_errors, a.new_patterns) == (
        b.buckets,
        b.cusum,
        b.drop,
        b.dispersion,
        b.pattern_errors,
        b.new_patterns,
    )
    assert a.episodes == b.episodes and a.baseline.to_state() == b.baseline.to_state()
    after = _traffic(engine, range(78, 84), error_share=0.3, novel=True) + _traffic(engine, range(84, 100))
    again = _traffic(restored, range(78, 84), error_share=0.3, novel=True) + _traffic(
        restored, range(84, 100)
    )
    assert after == again != []


def test_a_version_2_checkpoint_is_migrated_and_continues_as_the_engine_that_wrote_it() -> None:
    recorded = orjson.loads(V2.read_bytes())
    assert recorded["checkpoint"]["version"] == 2
    engine = DetectionEngine.restore(V2_CONFIG, recorded["checkpoint"])
    state = engine.services[("acme", "payments")]
    assert set(state.episodes) == {"error_rate_spike", "new_error_pattern"}
    assert state.cusum.statistic > 0 and state.baseline.weekly is not None
    assert orjson.loads(engine.snapshot())["version"] == CHECKPOINT_VERSION  # saved in the new layout
    events = _traffic(engine, range(78, 84), error_share=0.3, novel=True) + _traffic(engine, range(84, 100))
    assert _episodes(events) == _episodes(recorded["after"]) != []


def test_the_current_engine_on_the_same_traffic_agrees_with_the_recorded_one() -> None:
    """The fixture's traffic is this file's: the engine that wrote version 2 and this one found
    the same episodes from the same state (so the migration test compares like with like)."""
    engine = _busy_engine(V2_CONFIG)
    events = _traffic(engine, range(78, 84), error_share=0.3, novel=True) + _traffic(engine, range(84, 100))
    assert _episodes(events) == _episodes(orjson.loads(V2.read_bytes())["after"]) != []


def _quiet(engine: DetectionEngine, minutes: range, silent: bool = False) -> list[list[str | None]]:
    """A quiet service: 3 lines a minute, or none."""
    events: list[list[str | None]] = []
    for m in minutes:
        for i in range(0 if silent else 3):
            ts = START + timedelta(minutes=m, seconds=i * 20)
            engine.observe(ts, "acme", "cron", "INFO", f"ran job {i}", 40)
        events += _rows(engine.advance(START + timedelta(minutes=m + 1, seconds=16)))
    return events


def test_a_version_3_checkpoint_is_migrated_with_its_low_run_and_continues() -> None:
    """Version 3 had no capped evidence: it is derived from the run's, so a silence under way at
    the checkpoint is found at the same minute as by the engine that did not stop."""
    engine = DetectionEngine(DetectionConfig())
    _quiet(engine, range(90))
    _quiet(engine, range(90, 93), silent=True)
    doc = orjson.loads(engine.snapshot())
    for service in doc["services"]:
        del service["drop"]["capped"]
    doc["version"] = 3
    restored = DetectionEngine.restore(DetectionConfig(), doc)
    a, b = engine.services[("acme", "cron")], restored.services[("acme", "cron")]
    assert b.drop.minutes == 3 and b.drop.capped == a.drop.capped > 0
    assert orjson.loads(restored.snapshot())["version"] == CHECKPOINT_VERSION
    after = _quiet(engine, range(93, 110), silent=True)
    assert [r[2] for r in after if r[0] == "opened"] == ["log_volume_drop"]
    assert _quiet(restored, range(93, 110), silent=True) == after


def test_a_quiet_services_longer_error_memory_round_trips() -> None:
    """A service expecting less than an error in five minutes keeps more minutes of the error
    CUSUM (evidence.recent_minutes); they survive a checkpoint."""
    engine = DetectionEngine(DetectionConfig())
    _quiet(engine, range(90))
    blob = engine.snapshot()
    assert len(orjson.loads(blob)["services"][0]["cusum"]["recent"]) == 30  # 0.03 errors a minute
    restored = DetectionEngine.restore(DetectionConfig(), blob)
    assert restored.snapshot() == blob
    assert restored.services[("acme", "cron")].cusum == engine.services[("acme", "cron")].cusum


@pytest.mark.parametrize("version", [4, 5])
def test_a_version_4_or_5_checkpoint_starts_its_long_term_baseline_from_the_recent_one(version: int) -> None:
    """Versions 4 and 5 had no long-term EWMA (version 4 held five minutes of the error CUSUM's
    ratios, which this version holds too) nor learning CUSUM: they start from the recent EWMA
    and the error CUSUM, every other field is read unchanged, and the engine continues with the
    same rows."""
    engine = _busy_engine()
    doc = orjson.loads(engine.snapshot())
    assert [len(s["cusum"]["recent"]) for s in doc["services"]] == [5]
    for service in doc["services"]:
        del service["baseline"]["long_volume"], service["baseline"]["long_errors"]
        del service["cusum"]["learning"]
    doc["version"] = version
    restored = DetectionEngine.restore(DetectionConfig(), doc)
    b = restored.services[("acme", "payments")].baseline
    assert (b.long_volume, b.long_errors) == (b.recent_volume, b.recent_errors)
    cusum = restored.services[("acme", "payments")].cusum
    assert cusum.learning == cusum.statistic
    migrated, original = orjson.loads(restored.snapshot()), orjson.loads(engine.snapshot())
    for d in (migrated, original):
        for service in d["services"]:
            del service["baseline"]["long_volume"], service["baseline"]["long_errors"]
            del service["cusum"]["learning"]
    assert migrated == original
    assert _traffic(restored, range(78, 100)) == _traffic(engine, range(78, 100)) != []


@pytest.mark.parametrize("version", [0, 7, 99, "3", None])
def test_a_version_neither_read_nor_migrated_is_refused_by_name(version: object) -> None:
    doc = orjson.loads(_busy_engine().snapshot())
    doc["version"] = version
    with pytest.raises(CheckpointVersionError, match=f"version {version!r}"):
        DetectionEngine.restore(DetectionConfig(), doc)
