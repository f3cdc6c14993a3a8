"""Hourly rollups per service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class HourlyMetricPublic(BaseModel):
    tenant: str
    service: str
    hour: datetime = Field(description="Start of the UTC hour (event time)")
    log_count: int
    debug_count: int
    info_count: int
    warn_count: int
    error_count: int
    fatal_count: int
    error_rate: float = Field(description="(error_count + fatal_count) / log_count")
    host_count: int
    avg_duration_ms: float | None
    p95_duration_ms: float | None


class HourlyMetricPage(BaseModel):
    data: list[HourlyMetricPublic]
    next_cursor: str | None
    limit: int
