"""Log search results."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class LogHit(BaseModel):
    timestamp: datetime
    tenant: str
    service: str
    host: str
    level: str
    message: str
    highlight: str | None = Field(
        description="The message with matched words between <b> and </b> (when q is given)"
    )
    kafka_partition: int
    kafka_offset: int


class LogPage(BaseModel):
    data: list[LogHit]
    next_cursor: str | None
    limit: int
