"""Keyset pages of the list endpoints: one helper runs the query, cuts the page, makes the
cursor, renders it and keeps it in the page cache; a thin ASGI layer answers repeated pages.

Why a cache in front of FastAPI: a page rendered from PostgreSQL costs several times a
database-free answer of the same server, and most of what remains once the page is cached is
FastAPI's own per-request work (dependency resolution, validation of up to ten query
parameters). Dashboards poll the same URLs, so a page that this caller's scope already got
within `ttl` seconds is answered before routing: the key must be one verified within
API_KEY_CACHE_SECONDS (the same trust the routes give it), and the page is stored under the
key's tenant and admin flag, so a tenant is never served another tenant's page. A miss goes
through the route as before. New anomalies show up at most `ttl` seconds late; feedback
actions clear the tenant's pages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.api import cursor as cursors
from serving.api.render import JSONBytes, RawJSON, page
from serving.db import Pool
from serving.keys import Principal

PageKey = tuple[str, bool, bytes]
#: verified API keys: key -> (principal, trusted until), filled by deps.current_principal
KeyCache = dict[str, tuple[Principal, float]]
MAX_PAGES = 10_000


def scope_target(scope: Scope) -> bytes:
    """Path and query string exactly as sent: the same URL is the same page."""
    return str(scope.get("path", "")).encode() + b"?" + bytes(scope.get("query_string", b""))


class PageCache:
    """Rendered pages per (tenant, admin, URL), each kept `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._pages: dict[PageKey, tuple[float, bytes]] = {}
        #: answers served from the cache before routing (observable by tests and benches)
        self.front_hits = 0

    @staticmethod
    def key(principal: Principal, scope: Scope) -> PageKey:
        return (principal.tenant, principal.is_admin, scope_target(scope))

    def get(self, key: PageKey) -> bytes | None:
        hit = self._pages.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def put(self, key: PageKey, body: bytes) -> None:
        if self.ttl <= 0:
            return
        if len(self._pages) > MAX_PAGES:
            self._pages.clear()
        self._pages[key] = (time.monotonic() + self.ttl, body)

    def forget_tenant(self, tenant: str) -> None:
        for k in [k for k in self._pages if k[0] == tenant or k[1]]:
            self._pages.pop(k, None)


class CachedPagesFront:
    """ASGI layer: a GET whose caller and URL have a fresh page gets it without routing."""

    def __init__(self, app: ASGIApp, pages: PageCache, keys: KeyCache) -> None:
        self.app = app
        self.pages = pages
        self.keys = keys

    def _hit(self, scope: Scope) -> bytes | None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.pages.ttl <= 0:
            return None
        api_key = next((v for k, v in scope["headers"] if k == b"x-api-key"), None)
        if api_key is None:
            return None
        known = self.keys.get(api_key.decode("latin-1"))
        if known is None or known[1] <= time.monotonic():
            return None
        return self.pages.get(PageCache.key(known[0], scope))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._hit(scope)
        if body is None:
            await self.app(scope, receive, send)
            return
        self.pages.front_hits += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def where_clause(conditions: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


def cut(
    rows: list[dict[str, Any]], limit: int, cursor_of: Callable[[dict[str, Any]], tuple[object, ...]]
) -> tuple[list[dict[str, Any]], str | None]:
    """The page (rows were fetched with LIMIT limit + 1) and the cursor of the next one, if any."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, cursors.encode(*cursor_of(rows[-1]))


async def keyset_page(
    pool: Pool,
    pages: PageCache,
    key: PageKey,
    query: sql.Composed,
    args: Sequence[Any],
    limit: int,
    cursor_of: Callable[[dict[str, Any]], tuple[object, ...]],
) -> JSONBytes:
    """Run `query` (its last placeholder is the LIMIT), render the page and keep it in the cache.

    The connection is borrowed for the query only, never while rendering."""
    async with pool.connection() as db:
        cur = await db.execute(query, [*args, limit + 1])
        rows = await cur.fetchall()
    rows, next_cursor = cut(rows, limit, cursor_of)
    response = page(rows, limit, next_cursor)
    pages.put(key, bytes(response.body))
    return response


def cached(pages: PageCache, key: PageKey) -> RawJSON | None:
    """The cached page of `key` (a request that passed the front layer before its key was
    remembered, or while another request was filling the page)."""
    body = pages.get(key)
    return None if body is None else RawJSON(body)
