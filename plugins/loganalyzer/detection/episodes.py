"""Episodes: one incident is one anomaly that opens, updates and resolves.

Per (service, type) at most one episode is open. A finding opens it; later findings keep the
peak (by ratio) and extend window_end; `resolve_after` consecutive evaluations without a
finding resolve it. Changes are emitted only when something a reader cares about changes
(opened, peak or severity raised, resolved), to keep writes low. Ids are derived from
(tenant, service, type, start) so a replay computes the same ids and the database upserts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class EpisodeState(TypedDict):
    """An episode in a detector checkpoint (times as ISO 8601 strings)."""

    id: str
    tenant: str
    service: str
    type: str
    window_start: str
    window_end: str
    severity: str
    actual: float
    expected: float
    ratio: float
    description: str
    status: str
    resolved_at: str | None
    normal_streak: int
    extra: dict[str, Any]


def episode_id(tenant: str, service: str, kind: str, start: datetime) -> str:
    raw = f"{tenant}\x00{service}\x00{kind}\x00{start.isoformat()}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def partition_episode_id(episode: str, partition: int) -> str:
    """The id an episode is stored under when it was found on one Kafka partition.

    Detection state is per partition: when a producer does not key by tenant and service, one
    service's events arrive on several partitions and each partition's engine opens its own
    episodes, with the same `episode_id`; stored under it, they would overwrite each other.
    Deterministic, so a replay or a new owner of the same partition updates the same row."""
    return hashlib.blake2b(f"{episode}\x00{partition}".encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class Episode:
    id: str
    tenant: str
    service: str
    type: str
    window_start: datetime
    window_end: datetime
    severity: str
    actual: float
    expected: float
    ratio: float
    description: str
    status: str = "open"
    resolved_at: datetime | None = None
    normal_streak: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> EpisodeState:
        """The episode as named JSON-compatible fields (a detector checkpoint's part)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "service": self.service,
            "type": self.type,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "severity": self.severity,
            "actual": self.actual,
            "expected": self.expected,
            "ratio": self.ratio,
            "description": self.description,
            "status": self.status,
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "normal_streak": self.normal_streak,
            "extra": self.extra,
        }

    @classmethod
    def from_state(cls, s: EpisodeState) -> Episode:
        resolved_at = s["resolved_at"]
        return cls(
            str(s["id"]),
            str(s["tenant"]),
            str(s["service"]),
            str(s["type"]),
            datetime.fromisoformat(s["window_start"]),
            datetime.fromisoformat(s["window_end"]),
            str(s["severity"]),
            float(s["actual"]),
            float(s["expected"]),
            float(s["ratio"]),
            str(s["description"]),
            status=str(s["status"]),
            resolved_at=None if resolved_at is None else datetime.fromisoformat(resolved_at),
            normal_streak=int(s["normal_streak"]),
            extra=dict(s["extra"]),
        )


@dataclass(frozen=True, slots=True)
class EpisodeEvent:
    kind: str  # opened | updated | resolved
    episode: Episode


def step(
    open_episode: Episode | None,
    *,
    tenant: str,
    service: str,
    kind: str,
    finding_ratio: float | None,
    severity: str | None,
    actual: float,
    expected: float,
    description: str,
    window_start: datetime,
    window_end: datetime,
    resolve_after: int,
    extra: dict[str, Any] | None = None,
) -> tuple[Episode | None, EpisodeEvent | None]:
    """Advance one (service, type) by one evaluation. Returns the open episode and what changed."""
    if finding_ratio is not None and severity is not None:
        if open_episode is None:
            extra = {**(extra or {}), "detected_at": window_end.isoformat()}
            ep = Episode(
                episode_id(tenant, service, kind, window_start),
                tenant,
                service,
                kind,
                window_start,
                window_end,
                severity,
                actual,
                expected,
                finding_ratio,
                description,
                extra=extra or {},
            )
            return ep, EpisodeEvent("opened", ep)
        ep = open_episode
        ep.normal_streak = 0
        ep.window_end = max(ep.window_end, window_end)
        worse = _further(kind, finding_ratio, ep.ratio)
        if worse or SEVERITY_RANK[severity] > SEVERITY_RANK[ep.severity]:
            if worse:
                ep.ratio, ep.actual, ep.expected, ep.description = (
                    finding_ratio,
                    actual,
                    expected,
                    description,
                )
            if SEVERITY_RANK[severity] > SEVERITY_RANK[ep.severity]:
                ep.severity = severity
            return ep, EpisodeEvent("updated", ep)
        return ep, None
    if open_episode is None:
        return None, None
    ep = open_episode
    ep.normal_streak += 1
    if ep.normal_streak >= resolve_after:
        ep.status = "resolved"
        ep.resolved_at = window_end
        return None, EpisodeEvent("resolved", ep)
    return ep, None


def _further(kind: str, new_ratio: float, old_ratio: float) -> bool:
    """Is the new value further from normal than the peak so far? (drops go down, the rest up)"""
    return new_ratio < old_ratio if kind == "log_volume_drop" else new_ratio > old_ratio
