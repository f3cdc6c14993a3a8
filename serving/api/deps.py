"""Dependencies of the routes, as Annotated aliases: a database connection, the caller, the page cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from serving.api.pages import KeyCache, PageCache
from serving.db import Pool
from serving.keys import Principal, key_id_of, matches
from serving.settings import ServingSettings

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `loganalyzer keys create --tenant T` (`la_<id>_<secret>`).",
)

Row = dict[str, object]


async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "missing or invalid API key: send it in the X-API-Key header",
    headers={"WWW-Authenticate": "X-API-Key"},
)


async def current_principal(
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
    key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """The caller of this request. A verified key is remembered for a few seconds (no query then).

    The key lookup borrows a pooled connection and gives it back before the route gets its own
    (get_db depends on this function): a request never holds two, which deadlocked once every
    pooled connection was held by a request waiting for its second.
    """
    if not key:
        raise _UNAUTHORIZED
    cache: KeyCache = request.app.state.key_cache
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[1] > now:
        return hit[0]
    key_id = key_id_of(key)
    if key_id is None:
        raise _UNAUTHORIZED
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT tenant, is_admin, key_sha256, "
            "extract(epoch FROM expires_at - now())::float8 AS expires_in FROM api_keys "
            "WHERE id = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            (key_id,),
        )
        row = await cur.fetchone()
    if row is None or not isinstance(digest := row["key_sha256"], bytes) or not matches(key, digest):
        raise _UNAUTHORIZED
    principal = Principal(key_id, str(row["tenant"]), bool(row["is_admin"]))
    if len(cache) > 10_000:
        cache.clear()
    # a key that expires (rotated, in its grace period) is trusted no longer than it lives
    expires_in = row["expires_in"]
    ttl = settings.key_cache_seconds
    if isinstance(expires_in, float):
        ttl = min(ttl, expires_in)
    cache[key] = (principal, now + ttl)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def get_db(pool: PoolDep, principal: CurrentPrincipal) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
    """A pooled connection for the request, handed out only after the caller is authenticated."""
    async with pool.connection() as conn:
        yield conn


#: scope="function": the connection goes back to the pool as soon as the route returns, not after
#: the response has been sent (FastAPI's default for dependencies with yield): with 32 callers
#: on 4 connections in one event loop, sending waits for the loop, and every request queued for
#: a connection waited with it
DbDep = Annotated[psycopg.AsyncConnection[Row], Depends(get_db, scope="function")]


async def get_page_cache(request: Request) -> PageCache:
    cache: PageCache = request.app.state.page_cache
    return cache


PageCacheDep = Annotated[PageCache, Depends(get_page_cache)]


def tenant_scope(principal: Principal, requested: str | None) -> str | None:
    """The tenant a query is limited to: the key's own, or (admin only) the one asked for, or all."""
    if principal.is_admin:
        return requested
    if requested is not None and requested != principal.tenant:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this key belongs to tenant {principal.tenant!r} and cannot read tenant {requested!r}",
        )
    return principal.tenant
