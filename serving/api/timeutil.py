"""Query-parameter times: naive values are read as UTC; from must precede to."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import HTTPException


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def span(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start, end = utc(start), utc(end)
    if start is not None and end is not None and start >= end:
        raise HTTPException(422, "'from' must be before 'to'")
    return start, end
