"""Dependencies of the routes, as Annotated aliases: a database connection, the caller."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from serving.db import Pool
from serving.keys import Principal, key_id_of, matches
from serving.settings import ServingSettings

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `loganalyzer keys create --tenant T` (la_<id>_<secret>).",
)

Row = dict[str, object]


def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


async def get_db(pool: Annotated[Pool, Depends(get_pool)]) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
    async with pool.connection() as conn:
        yield conn


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]
DbDep = Annotated[psycopg.AsyncConnection[Row], Depends(get_db)]

_UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "missing or invalid API key: send it in the X-API-Key header",
    headers={"WWW-Authenticate": "X-API-Key"},
)


async def current_principal(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """The caller of this request. A verified key is remembered for a few seconds (one query less).

    It uses the request's own connection (FastAPI gives every dependency of one request the
    same `db`): taking a second one from the pool while holding the first deadlocks as soon as
    every pooled connection is held by a request that waits for its second.
    """
    if not key:
        raise _UNAUTHORIZED
    cache: dict[str, tuple[Principal, float]] = request.app.state.key_cache
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[1] > now:
        return hit[0]
    key_id = key_id_of(key)
    if key_id is None:
        raise _UNAUTHORIZED
    cur = await db.execute(
        "SELECT tenant, is_admin, key_sha256 FROM api_keys WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    row = await cur.fetchone()
    if row is None or not isinstance(digest := row["key_sha256"], bytes) or not matches(key, digest):
        raise _UNAUTHORIZED
    principal = Principal(key_id, str(row["tenant"]), bool(row["is_admin"]))
    if len(cache) > 10_000:
        cache.clear()
    cache[key] = (principal, now + settings.key_cache_seconds)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


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
