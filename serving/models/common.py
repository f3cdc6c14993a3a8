"""Shapes shared by the resources: a page of results."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one (null: last page)."""

    data: list[T]
    next_cursor: str | None = Field(description="Opaque cursor of the next page; null on the last page")
    limit: int = Field(description="The page size asked for")


class Problem(BaseModel):
    """An error: what is wrong, in words (and, for bad parameters, each problem by location)."""

    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For invalid parameters or bodies: each problem with its location"
    )
    path: str | None = Field(default=None, description="For a bad usage document: the bad field's path")


#: the answers every /api/v1 route can give besides its own
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or invalid X-API-Key"},
    403: {"model": Problem, "description": "A tenant key asked for another tenant's data"},
    422: {"model": Problem, "description": "A parameter or the body is invalid; detail says which and why"},
    503: {
        "model": Problem,
        "description": "The database is unavailable or the query hit the statement timeout",
    },
}
