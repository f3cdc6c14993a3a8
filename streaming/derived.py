"""What detection derives from a batch, written in the same transaction as the batch's rows.

Why the same transaction: pattern counts must add up to the rows in `logs`, an anomaly must
never be recorded for rows that were rolled back, and a detector checkpoint must describe
exactly the offsets that are stored. Everything is per Kafka partition, so a partition whose
records were already stored (a zombie owner during a rebalance) contributes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class PatternDelta:
    """New occurrences of one template of one service in one batch."""

    tenant: str
    service: str
    pattern_id: str
    template: str
    first_seen: datetime
    last_seen: datetime
    count: int
    error_count: int
    sample_message: str


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    """The current state of one anomaly episode: upserted on `id` (deterministic per episode)."""

    id: str
    tenant: str
    service: str
    anomaly_type: str
    severity: str
    status: str  # open | resolved
    window_start: datetime
    window_end: datetime
    resolved_at: datetime | None
    score: float | None
    expected_value: float | None
    actual_value: float | None
    description: str
    pattern_template: str | None = None
    sample_message: str | None = None
    model_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: the operator's pattern suppression that mutes this episode (anomaly_feedback id), if any:
    #: the row is written with operator_state 'suppressed' until `suppressed_until` (None: for good)
    suppressed_by: int | None = None
    suppressed_until: datetime | None = None


@dataclass(slots=True)
class PartitionDerived:
    patterns: list[PatternDelta] = field(default_factory=list)
    anomalies: list[AnomalyRow] = field(default_factory=list)
    #: detection state as of the batch's last offset + 1, when it is time to save it
    checkpoint: bytes | None = None
    #: events of this batch whose minute had already closed: stored and mined, not counted in
    #: any window (the operator's signal that producers lag more than the allowed lateness)
    dropped_late: int = 0
    #: events timestamped ahead of the consumer's clock: detection counted them at its now
    ahead: int = 0


@dataclass(frozen=True, slots=True)
class WarmHistory:
    """What the sink gives detection for a partition with no checkpoint: the per-minute counts of
    its recent stored events, and the newest one's event time (where the watermark stands)."""

    rows: list[tuple[str, str, int, Any]]  # (tenant, service, minute, Counts)
    newest: datetime
    #: the services' known templates from log_patterns, as (tenant, service, pattern id,
    #: template, count), least recently seen first: the template miner relearns them
    patterns: list[tuple[str, str, str, str, int]] = field(default_factory=list)
