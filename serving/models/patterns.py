"""Message templates mined per service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PatternPublic(BaseModel):
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
