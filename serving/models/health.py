"""The health report."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class State(StrEnum):
    ok = "ok"
    degraded = "degraded"
    down = "down"
    not_configured = "not_configured"


class Check(BaseModel):
    state: State
    detail: str
    data: dict[str, Any] = Field(default_factory=dict)


class HealthPublic(BaseModel):
    """Overall `down` (HTTP 503) only when the database is down; other parts degrade it."""

    state: State
    database: Check
    broker: Check
    consumer: Check = Field(
        description="Ingestion progress from ingest_offsets (what is stored), not the broker's watermarks"
    )
    model: Check = Field(description="The MLflow champion model the consumer scores with")
