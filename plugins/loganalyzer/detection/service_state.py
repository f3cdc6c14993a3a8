"""Everything the engine keeps about one (tenant, service), in one record.

One object per service, extending its minute buckets (windows.py), so the hot path finds the
buckets, the miner and the pattern bookkeeping with a single dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from loganalyzer.detection.baseline import Baseline
from loganalyzer.detection.config import DetectorThresholds
from loganalyzer.detection.episodes import Episode
from loganalyzer.detection.evidence import Dispersion, DropEvidence, ErrorCusum
from loganalyzer.detection.windows import ServiceBuckets
from loganalyzer.patterns import TemplateMiner


@dataclass(slots=True)
class PatternTally:
    """Occurrences of one template since the last drain (what log_patterns adds up)."""

    template: str
    first: datetime
    last: datetime
    count: int
    errors: int
    sample: str


@dataclass(slots=True)
class ServiceState(ServiceBuckets):
    baseline: Baseline = field(default_factory=Baseline)
    #: open episodes by type (at most one per type)
    episodes: dict[str, Episode] = field(default_factory=dict)
    miner: TemplateMiner = field(default_factory=TemplateMiner)
    #: messages counted (the new-pattern warm-up)
    messages: int = 0
    #: open new_error_pattern episode: its pattern ids -> last minute seen
    new_patterns: dict[str, int] = field(default_factory=dict)
    #: never-seen ERROR templates waiting for confirmation: id -> [first minute, occurrences]
    candidates: dict[str, list[int]] = field(default_factory=dict)
    #: ERROR lines of the open new_error_pattern episode's patterns, per minute (kept as long as
    #: the minute's bucket): the error-rate rule and the error baseline leave them out
    pattern_errors: dict[int, int] = field(default_factory=dict)
    #: occurrences since the last drain, by pattern id (not checkpointed: drained every batch)
    pattern_tallies: dict[str, PatternTally] = field(default_factory=dict)
    #: consecutive closed minutes not learned from (see relearn_after_minutes)
    skipped: int = 0
    #: consecutive windows the forest scored above its threshold (forest_gate.PERSISTENCE opens)
    forest_streak: int = 0
    #: thresholds_for(tenant, service), resolved once (the config is immutable)
    thresholds: DetectorThresholds | None = None
    #: extra-Poisson variance of the per-minute volume (learned from normal minutes)
    dispersion: Dispersion = field(default_factory=Dispersion)
    #: the current run of low minutes and how improbable it is
    drop: DropEvidence = field(default_factory=DropEvidence)
    #: accumulated evidence of a sustained error rise
    cusum: ErrorCusum = field(default_factory=ErrorCusum)
