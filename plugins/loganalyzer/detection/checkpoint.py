"""A partition's detection state as a checkpoint: named fields, a version, and old versions.

The consumer stores `dump()`'s document as JSON in `detector_checkpoints`, with the batch; a
consumer that gets the partition reads it back (`load()`), so it neither alarms on an empty
baseline nor goes blind. Every field is named, so a reader (or a migration) never depends on
positions, and the document carries `version`:

- 6: this layout; `baseline.long_volume` and `baseline.long_errors` hold the long-term EWMA
  that caps a cold-start expected error rate (baseline.py), and `cusum.learning` the error
  CUSUM against the uncapped rate, which blocks learning (learning.py);
- 5: without them, migrated by starting the long-term EWMA from the recent one; `cusum.recent`
  holds up to 30 minutes (evidence.recent_minutes: a quiet
  service's error alarm is judged on more than five), so a release that keeps five must not
  read it (it would keep the longer list for ever);
- 4: the same layout as 5 with five minutes in `cusum.recent`, migrated as 5;
- 3: without `drop.capped` (the low run's evidence with each minute capped), migrated by
  deriving it from the run's evidence;
- 1 and 2: the positional lists written before (2 added `version` and the evidence); they are
  migrated (`upgrade`), so a consumer upgraded over a running deployment keeps its state;
- anything else (a newer release's checkpoint, a damaged one) raises `CheckpointVersionError`;
  the consumer then discards it with a log line and starts without it (warm or cold,
  streaming/detection_stage.py).

The template miner's state is its own versioned document (`TemplateMiner.to_state`). Pattern
tallies are not checkpointed: they are drained with every batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from loganalyzer.detection.baseline import Baseline, BaselineState
from loganalyzer.detection.config import DetectorThresholds
from loganalyzer.detection.episodes import Episode, EpisodeEvent, EpisodeState
from loganalyzer.detection.evidence import Dispersion, DropEvidence, ErrorCusum
from loganalyzer.detection.features import Counts
from loganalyzer.detection.service_state import ServiceState
from loganalyzer.detection.windows import WindowStore
from loganalyzer.patterns import MinerConfig, TemplateMiner

CHECKPOINT_VERSION = 6
#: versions `upgrade` migrates to CHECKPOINT_VERSION (1 and 2: positional lists)
MIGRATED_VERSIONS = (1, 2, 3, 4, 5)


class CheckpointVersionError(ValueError):
    """A checkpoint of a version this release neither reads nor migrates."""


class BucketState(TypedDict):
    minute: int
    total: int
    errors: int
    warns: int
    duration_sum: float
    duration_n: int
    length_sum: int


class DispersionState(TypedDict):
    cv2: float
    n: int


class DropState(TypedDict):
    score: float
    minutes: int
    expected: float
    actual: int
    #: the run's evidence with no minute counted for more than drop_minute_cap (version 4)
    capped: float


class CusumState(TypedDict):
    statistic: float
    errors: float
    expected: float
    #: the last minutes' log-likelihood ratios: 5 to 30 of them (evidence.recent_minutes; 5 at
    #: most before version 5)
    recent: list[float]
    #: the statistic against the uncapped expected error rate, which blocks learning (version 6;
    #: migrated as `statistic`)
    learning: float


class ServiceCheckpoint(TypedDict):
    tenant: str
    service: str
    first_minute: int
    last_minute: int
    buckets: list[BucketState]
    baseline: BaselineState
    #: the open episodes
    episodes: list[EpisodeState]
    miner: dict[str, Any]
    messages: int
    new_patterns: dict[str, int]
    candidates: dict[str, list[int]]
    skipped: int
    forest_streak: int
    #: minute (as a string: a JSON key) -> ERROR lines of the open new pattern
    pattern_errors: dict[str, int]
    dispersion: DispersionState
    drop: DropState
    cusum: CusumState


class PendingEvent(TypedDict):
    kind: str
    episode: EpisodeState


class Checkpoint(TypedDict):
    version: int
    max_minute: int | None
    closed_upto: int | None
    dropped_late: int
    #: episode changes decided on the hot path that the next advance() returns
    pending: list[PendingEvent]
    #: least recently active first (the eviction order)
    services: list[ServiceCheckpoint]


def dump(store: WindowStore[ServiceState], pending: list[EpisodeEvent]) -> Checkpoint:
    """The state as a JSON-compatible document (ints, floats, strings, lists, dicts)."""
    return {
        "version": CHECKPOINT_VERSION,
        "max_minute": store.max_minute,
        "closed_upto": store.closed_upto,
        "dropped_late": store.dropped_late,
        "pending": [{"kind": e.kind, "episode": e.episode.to_state()} for e in pending],
        "services": [_dump_service(s) for s in store.services.values()],
    }


def _dump_service(s: ServiceState) -> ServiceCheckpoint:
    drop, cusum = s.drop, s.cusum
    return {
        "tenant": s.tenant,
        "service": s.service,
        "first_minute": s.first_minute,
        "last_minute": s.last_minute,
        "buckets": [
            {
                "minute": k,
                "total": b.total,
                "errors": b.errors,
                "warns": b.warns,
                "duration_sum": b.duration_sum,
                "duration_n": b.duration_n,
                "length_sum": b.length_sum,
            }
            for k, b in s.buckets.items()
        ],
        "baseline": s.baseline.to_state(),
        "episodes": [e.to_state() for e in s.episodes.values()],
        "miner": s.miner.to_state(),
        "messages": s.messages,
        "new_patterns": s.new_patterns,
        "candidates": s.candidates,
        "skipped": s.skipped,
        "forest_streak": s.forest_streak,
        "pattern_errors": {str(k): v for k, v in s.pattern_errors.items()},
        "dispersion": {"cv2": s.dispersion.cv2, "n": s.dispersion.n},
        "drop": {
            "score": drop.score,
            "minutes": drop.minutes,
            "expected": drop.expected,
            "actual": drop.actual,
            "capped": drop.capped,
        },
        "cusum": {
            "statistic": cusum.statistic,
            "errors": cusum.errors,
            "expected": cusum.expected,
            "recent": cusum.recent,
            "learning": cusum.learning,
        },
    }


def load(
    doc: Mapping[str, Any], store: WindowStore[ServiceState], miner_config: MinerConfig
) -> list[EpisodeEvent]:
    """Fill an empty store from a checkpoint of any readable version; returns the pending episode
    changes. Raises CheckpointVersionError, or ValueError/KeyError/TypeError on a damaged one."""
    cp = upgrade(doc)
    store.max_minute = cp["max_minute"]
    store.closed_upto = cp["closed_upto"]
    store.dropped_late = int(cp["dropped_late"])
    open_episodes: dict[str, Episode] = {}
    for s in cp["services"]:
        state = _load_service(s, miner_config)
        store.services[(state.tenant, state.service)] = state
        open_episodes.update((ep.id, ep) for ep in state.episodes.values())
    # a pending change of an open episode is that episode (as before the checkpoint): what the
    # minutes closed next do to it is in the row the change becomes
    return [
        EpisodeEvent(
            str(p["kind"]), open_episodes.get(p["episode"]["id"]) or Episode.from_state(p["episode"])
        )
        for p in cp["pending"]
    ]


def _load_service(s: ServiceCheckpoint, miner_config: MinerConfig) -> ServiceState:
    episodes = [Episode.from_state(e) for e in s["episodes"]]
    d, drop, cusum = s["dispersion"], s["drop"], s["cusum"]
    return ServiceState(
        str(s["tenant"]),
        str(s["service"]),
        int(s["first_minute"]),
        int(s["last_minute"]),
        {
            int(b["minute"]): Counts(
                int(b["total"]),
                int(b["errors"]),
                int(b["warns"]),
                float(b["duration_sum"]),
                int(b["duration_n"]),
                int(b["length_sum"]),
            )
            for b in s["buckets"]
        },
        Baseline.from_state(s["baseline"]),
        {e.type: e for e in episodes},
        TemplateMiner.from_state(s["miner"], miner_config),
        int(s["messages"]),
        {str(k): int(v) for k, v in s["new_patterns"].items()},
        {str(k): [int(x) for x in v] for k, v in s["candidates"].items()},
        pattern_errors={int(k): int(v) for k, v in s["pattern_errors"].items()},
        skipped=int(s["skipped"]),
        forest_streak=int(s["forest_streak"]),
        dispersion=Dispersion(float(d["cv2"]), int(d["n"])),
        drop=DropEvidence(
            float(drop["score"]),
            int(drop["minutes"]),
            float(drop["expected"]),
            int(drop["actual"]),
            float(drop["capped"]),
        ),
        cusum=ErrorCusum(
            float(cusum["statistic"]),
            [float(x) for x in cusum["recent"]],
            float(cusum["errors"]),
            float(cusum["expected"]),
            float(cusum["learning"]),
        ),
    )


def upgrade(doc: Mapping[str, Any]) -> Checkpoint:
    """The document in this version's layout. Versions 1 to 5 are migrated; anything else
    raises CheckpointVersionError."""
    version = doc.get("version", 1)  # version 1 had no such key
    if version == CHECKPOINT_VERSION:
        return cast(Checkpoint, doc)
    if version in (4, 5) and isinstance(version, int):  # five minutes of `recent` are a valid memory
        return _from_v5(doc)
    if version == 3 and isinstance(version, int):
        return _from_v5(_from_v3(doc))
    if version in MIGRATED_VERSIONS and isinstance(version, int):
        return _from_positional(doc)
    raise CheckpointVersionError(
        f"detector checkpoint version {version!r}: this release reads version {CHECKPOINT_VERSION} "
        f"and migrates {', '.join(map(str, MIGRATED_VERSIONS))}"
    )


def capped_from(score: float, minutes: int, cap: float = DetectorThresholds.drop_minute_cap) -> float:
    """A run's capped evidence where only its sum is known (a version-3 checkpoint): at most
    `cap` per minute, at most the sum. Exact for runs whose minutes were all below the cap (a
    quiet service's silence) or all above it (a busy service's outage)."""
    return min(score, cap * minutes)


def _from_v5(doc: Mapping[str, Any]) -> Checkpoint:
    """Versions 4 and 5: the same named fields, without the baseline's long-term EWMA, which
    starts from the recent one (the cap on the recent error rate then holds from the next
    minutes on, as the long-term EWMA moves away from it), and without the learning CUSUM,
    which starts as the error CUSUM (equal while the cap lowers nothing)."""
    services = []
    for s in doc["services"]:
        b = s["baseline"]
        long = {"long_volume": b["recent_volume"], "long_errors": b["recent_errors"]}
        cusum = {**s["cusum"], "learning": s["cusum"]["statistic"]}
        services.append({**s, "baseline": {**b, **long}, "cusum": cusum})
    return cast(Checkpoint, {**doc, "version": CHECKPOINT_VERSION, "services": services})


def _from_v3(doc: Mapping[str, Any]) -> Checkpoint:
    """Version 3: the same named fields, without the low run's capped evidence (and without
    the long-term EWMA: the result is a version-5 layout for _from_v5)."""
    services = []
    for s in doc["services"]:
        drop = s["drop"]
        capped = capped_from(float(drop["score"]), int(drop["minutes"]))
        services.append({**s, "drop": {**drop, "capped": capped}})
    return cast(Checkpoint, {**doc, "version": CHECKPOINT_VERSION, "services": services})


def _from_positional(doc: Mapping[str, Any]) -> Checkpoint:
    """Versions 1 and 2: each service a list of fields by position (later fields optional)."""
    return {
        "version": CHECKPOINT_VERSION,
        "max_minute": doc["max_minute"],
        "closed_upto": doc["closed_upto"],
        "dropped_late": doc["dropped_late"],
        "pending": [{"kind": kind, "episode": _episode_v2(e)} for kind, e in doc.get("pending", [])],
        "services": [_service_v2(row) for row in doc["services"]],
    }


def _service_v2(row: list[Any]) -> ServiceCheckpoint:
    tenant, service, first, last, buckets, baseline, episodes, miner = row[:8]
    messages, new_patterns, candidates = row[8:11]
    vol, err, minutes, weekly = baseline[:4]
    evidence = row[14] if len(row) > 14 else None
    out: ServiceCheckpoint = {
        "tenant": tenant,
        "service": service,
        "first_minute": first,
        "last_minute": last,
        "buckets": [
            {
                "minute": k,
                "total": total,
                "errors": errors,
                "warns": warns,
                "duration_sum": duration_sum,
                "duration_n": duration_n,
                "length_sum": length_sum,
            }
            for k, total, errors, warns, duration_sum, duration_n, length_sum in buckets
        ],
        "baseline": {
            "recent_volume": vol,
            "recent_errors": err,
            "long_volume": vol,
            "long_errors": err,
            "minutes": minutes,
            "weekly": weekly,
            "daily": baseline[4] if len(baseline) > 4 else None,  # before the daily slots
        },
        "episodes": [_episode_v2(e) for e in episodes],
        "miner": miner,
        "messages": messages,
        "new_patterns": new_patterns,
        "candidates": candidates,
        "skipped": row[11] if len(row) > 11 else 0,
        "forest_streak": row[12] if len(row) > 12 else 0,
        "pattern_errors": {str(k): v for k, v in row[13]} if len(row) > 13 else {},
        "dispersion": {"cv2": 0.0, "n": 0},
        "drop": {"score": 0.0, "minutes": 0, "expected": 0.0, "actual": 0, "capped": 0.0},
        "cusum": {"statistic": 0.0, "errors": 0.0, "expected": 0.0, "recent": [], "learning": 0.0},
    }
    if evidence is not None:
        score, run, expected, actual = evidence["drop"]
        statistic, errors, expected_errors, recent = evidence["cusum"]
        out["dispersion"] = {"cv2": evidence["cv2"], "n": evidence["cv2_n"]}
        out["drop"] = {
            "score": score,
            "minutes": run,
            "expected": expected,
            "actual": actual,
            "capped": capped_from(score, run),
        }
        out["cusum"] = {
            "statistic": statistic,
            "errors": errors,
            "expected": expected_errors,
            "recent": recent,
            "learning": statistic,
        }
    return out


def _episode_v2(s: list[Any]) -> EpisodeState:
    """Positional episodes held open ones only (no status, no resolved_at)."""
    return {
        "id": s[0],
        "tenant": s[1],
        "service": s[2],
        "type": s[3],
        "window_start": s[4],
        "window_end": s[5],
        "severity": s[6],
        "actual": s[7],
        "expected": s[8],
        "ratio": s[9],
        "description": s[10],
        "status": "open",
        "resolved_at": None,
        "normal_streak": s[11],
        "extra": s[12],
    }
