"""Shapes shared by the resources: a page of results."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one (null: last page)."""

    data: list[T]
    next_cursor: str | None = Field(description="Opaque cursor of the next page; null on the last page")
    limit: int = Field(description="The page size asked for")


class Problem(BaseModel):
    """An error: what is wrong, in words."""

    detail: str
