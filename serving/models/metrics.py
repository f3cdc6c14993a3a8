"""Hourly rollups per service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class HourlyMetricPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "service": "svc-a",
                    "hour": "2026-12-06T19:00:00+00:00",
                    "log_count": 100,
                    "debug_count": 0,
                    "info_count": 80,
                    "warn_count": 0,
                    "error_count": 20,
                    "fatal_count": 0,
                    "error_rate": 0.2,
                    "host_count": 2,
                    "avg_duration_ms": 12.5,
                    "p95_duration_ms": None,
                }
            ]
        }
    )

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
