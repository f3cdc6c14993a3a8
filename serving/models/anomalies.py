"""Anomaly episodes and operator feedback, as the API shows and accepts them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AnomalyType(StrEnum):
    error_rate_spike = "error_rate_spike"
    log_volume_spike = "log_volume_spike"
    log_volume_drop = "log_volume_drop"
    new_error_pattern = "new_error_pattern"
    isolation_forest = "isolation_forest"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class AnomalyStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    suppressed = "suppressed"


class AnomalyPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "acme-an-001",
                    "tenant": "acme",
                    "service": "svc-b",
                    "type": "log_volume_spike",
                    "severity": "medium",
                    "status": "open",
                    "window_start": "2026-12-06T18:50:00+00:00",
                    "window_end": "2026-12-06T18:55:00+00:00",
                    "detected_at": "2026-12-06T19:08:01.478652+00:00",
                    "resolved_at": None,
                    "score": None,
                    "expected_value": 0.02,
                    "actual_value": 0.2,
                    "description": "error rate 20% vs expected 2% on acme",
                    "pattern_template": "acme request <*> timeout after <*> ms",
                }
            ]
        }
    )

    id: str
    tenant: str
    service: str
    type: AnomalyType
    severity: Severity
    status: AnomalyStatus = Field(
        description="open, acknowledged, resolved (by the detector or an operator) or suppressed"
    )
    window_start: datetime = Field(description="Event time the condition was first seen")
    window_end: datetime = Field(description="Event time the condition was last seen (or resolved)")
    detected_at: datetime
    resolved_at: datetime | None
    score: float | None
    expected_value: float | None = Field(description="The baseline the detector compared against")
    actual_value: float | None = Field(description="The peak observed value during the episode")
    description: str
    pattern_template: str | None


class SampleLog(BaseModel):
    timestamp: datetime
    host: str
    level: str
    message: str


class FeedbackPublic(BaseModel):
    id: int
    action: str
    scope: str
    until: datetime | None
    key_id: str | None
    created_at: datetime
    note: str


class Explanation(BaseModel):
    """Why the detector raised it: what it expected, what it saw, where, and example lines."""

    summary: str
    expected_value: float | None
    actual_value: float | None
    ratio: float | None = Field(description="actual / expected, when both are known and expected > 0")
    window_start: datetime
    window_end: datetime
    pattern_template: str | None
    sample_message: str | None
    details: dict[str, Any]
    sample_logs: list[SampleLog] = Field(
        description="Up to 10 stored lines of the service in the window, problems (WARN/ERROR/FATAL) first"
    )


class AnomalyDetail(AnomalyPublic):
    model_version: str | None
    explanation: Explanation
    feedback: list[FeedbackPublic] = Field(description="Operator actions on this anomaly, newest first")


class AnomalyPage(BaseModel):
    data: list[AnomalyPublic]
    next_cursor: str | None = Field(description="Opaque cursor of the next page; null on the last page")
    limit: int


class FeedbackNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000, description="Free text kept with the action")


class SuppressScope(StrEnum):
    anomaly = "anomaly"
    pattern = "pattern"


class SuppressRequest(FeedbackNote):
    """Suppress for a duration (`duration_minutes`), until a time (`until`), or for good (neither)."""

    scope: SuppressScope = Field(
        default=SuppressScope.anomaly,
        description="anomaly: this episode only; pattern: every anomaly of this service with this "
        "anomaly's pattern template (the consumer raises nothing for it while suppressed)",
    )
    duration_minutes: int | None = Field(
        default=None, ge=1, le=525_600 * 10, description="Suppress for this long"
    )
    until: datetime | None = Field(
        default=None, description="Suppress until this time (RFC 3339 with offset)"
    )

    @model_validator(mode="after")
    def _one_end(self) -> SuppressRequest:
        if self.duration_minutes is not None and self.until is not None:
            raise ValueError("give duration_minutes or until, not both (neither: suppress for good)")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until needs a UTC offset, e.g. 2026-12-07T00:00:00Z")
        return self


class FeedbackResult(BaseModel):
    anomaly: AnomalyPublic
    feedback: FeedbackPublic
