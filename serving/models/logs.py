"""Log search results."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class LogHit(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "timestamp": "2026-12-06T19:15:00+00:00",
                    "tenant": "acme",
                    "service": "svc-a",
                    "host": "host-1",
                    "level": "ERROR",
                    "message": "acme request 15 timeout after 45 ms",
                    "highlight": "acme request 15 <b>timeout</b> after 45 ms",
                    "kafka_partition": 0,
                    "kafka_offset": 15,
                }
            ]
        }
    )

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
    next_cursor: str | None = Field(
        description="Opaque cursor of the next page; null on the last page. A search that used up "
        "its time budget (API_SEARCH_BUDGET_MS) answers the lines found so far, possibly fewer than "
        "`limit` or none, with a cursor that continues where it stopped"
    )
    limit: int
