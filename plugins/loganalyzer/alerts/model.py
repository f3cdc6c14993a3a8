"""The values the alert logic works on: an anomaly episode as read, and one event to deliver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Episode:
    """The columns of an `anomalies` row that a message shows."""

    id: str
    tenant: str
    service: str
    anomaly_type: str
    severity: str
    status: str
    window_start: datetime
    window_end: datetime
    resolved_at: datetime | None = None
    expected_value: float | None = None
    actual_value: float | None = None
    description: str = ""
    pattern_template: str | None = None


@dataclass(frozen=True)
class PendingEvent:
    """An event ('opened' or 'resolved') of an episode that waits for delivery on a route."""

    episode: Episode
    event: str
    route: str
    created_at: datetime
    attempts: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.episode.id, self.event)
