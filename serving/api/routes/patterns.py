"""Message templates of a service (log_patterns), most frequent first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from psycopg import sql

from serving.api import cursor as cursors
from serving.api.deps import CurrentPrincipal, PageCacheDep, PoolDep, tenant_scope
from serving.api.pages import cached, keyset_page, where_clause
from serving.models.patterns import PatternPage

router = APIRouter(prefix="/api/v1/patterns", tags=["patterns"])


@router.get(
    "", response_model=PatternPage, summary="Templates of a service: counts, first/last seen, error share"
)
async def list_patterns(
    request: Request,
    pool: PoolDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    service: Annotated[str | None, Query(max_length=200, description="Only this service")] = None,
    errors_only: Annotated[bool, Query(description="Only templates seen at ERROR/FATAL level")] = False,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Admin keys only: only this tenant")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page")
    ] = None,
) -> Any:
    """Ordered by count, most frequent first (ties by tenant, service, pattern id), with whether a
    pattern suppression is active for the template."""
    where: list[sql.Composable] = []
    args: list[Any] = []
    scope = tenant_scope(principal, tenant)
    cache_key = cache.key(principal, request.scope)
    if (hit := cached(cache, cache_key)) is not None:
        return hit
    if scope is not None:
        where.append(sql.SQL("p.tenant = %s"))
        args.append(scope)
    if service is not None:
        where.append(sql.SQL("p.service = %s"))
        args.append(service)
    if errors_only:
        where.append(sql.SQL("p.error_count > 0"))
    if cursor is not None:
        c, t, s, pid = cursors.decode(cursor, (int, str, str, str))
        where.append(sql.SQL("(p.count, p.tenant, p.service, p.pattern_id) < (%s, %s, %s, %s)"))
        args += [c, t, s, pid]
    query = sql.SQL(
        "SELECT p.tenant, p.service, p.pattern_id, p.template, p.first_seen, p.last_seen, p.count, "
        "p.error_count, p.error_count::float8 / p.count AS error_share, p.sample_message, "
        "s.until AS suppressed_until, s.tenant IS NOT NULL AS suppressed "
        "FROM log_patterns p LEFT JOIN suppressions s "
        "ON s.tenant = p.tenant AND s.service = p.service AND s.pattern_template = p.template {} "
        "ORDER BY p.count DESC, p.tenant DESC, p.service DESC, p.pattern_id DESC LIMIT %s"
    ).format(where_clause(where))
    return await keyset_page(
        pool,
        cache,
        cache_key,
        query,
        args,
        limit,
        lambda r: (r["count"], r["tenant"], r["service"], r["pattern_id"]),
    )
