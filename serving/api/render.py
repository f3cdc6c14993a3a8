"""JSON responses rendered with orjson, skipping FastAPI's jsonable_encoder (3x slower).

The routes still declare their pydantic response models, so the OpenAPI schema documents
exactly what these payloads hold; the tests check payloads against it (schemathesis).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class RawJSON(JSONBytes):
    """A body already rendered (a cached answer, or JSON PostgreSQL built) passed through as is."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode()
        return super().render(content)


def page(rows: list[dict[str, Any]], limit: int, next_cursor: str | None) -> JSONBytes:
    return JSONBytes({"data": rows, "next_cursor": next_cursor, "limit": limit})
