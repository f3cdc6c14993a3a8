"""Message templates mined per service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PatternPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "service": "svc-a",
                    "pattern_id": "p1",
                    "template": "acme request <*> timeout after <*> ms",
                    "first_seen": "2026-12-06T16:00:00+00:00",
                    "last_seen": "2026-12-06T19:00:00+00:00",
                    "count": 50,
                    "error_count": 10,
                    "error_share": 0.2,
                    "sample_message": "acme request 5 timeout after 15 ms",
                    "suppressed_until": None,
                    "suppressed": False,
                }
            ]
        }
    )

    tenant: str
    service: str
    pattern_id: str
    template: str = Field(description="The message with variable parts replaced by <*>")
    first_seen: datetime
    last_seen: datetime
    count: int
    error_count: int
    error_share: float = Field(description="error_count / count: the share of ERROR/FATAL lines")
    sample_message: str
    suppressed_until: datetime | None = Field(
        description="When a pattern suppression is active: its end (null with suppressed=true: for good)"
    )
    suppressed: bool


class PatternPage(BaseModel):
    data: list[PatternPublic]
    next_cursor: str | None
    limit: int
