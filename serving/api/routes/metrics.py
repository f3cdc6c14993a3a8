"""Hourly metrics from the rollups (hourly_metrics), newest hour first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from psycopg import sql

from serving.api import cursor as cursors
from serving.api.deps import CurrentPrincipal, PageCacheDep, PoolDep, tenant_scope
from serving.api.pages import cached, keyset_page, where_clause
from serving.api.timeutil import span
from serving.models.metrics import HourlyMetricPage

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])


@router.get(
    "/hourly", response_model=HourlyMetricPage, summary="Hourly volumes, levels and latency per service"
)
async def hourly(
    request: Request,
    pool: PoolDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    service: Annotated[str | None, Query(max_length=200, description="Only this service")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="Hours starting at or after this time")
    ] = None,
    to: Annotated[datetime | None, Query(description="Hours starting before this time")] = None,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Admin keys only: only this tenant")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page")
    ] = None,
) -> Any:
    """Rows ordered by (hour, tenant, service), newest first, in keyset pages."""
    start, end = span(from_, to)
    where: list[sql.Composable] = []
    args: list[Any] = []
    scope = tenant_scope(principal, tenant)
    cache_key = cache.key(principal, request.scope)
    if (hit := cached(cache, cache_key)) is not None:
        return hit
    if scope is not None:
        where.append(sql.SQL("tenant = %s"))
        args.append(scope)
    if service is not None:
        where.append(sql.SQL("service = %s"))
        args.append(service)
    if start is not None:
        where.append(sql.SQL("hour >= %s"))
        args.append(start)
    if end is not None:
        where.append(sql.SQL("hour < %s"))
        args.append(end)
    if cursor is not None:
        h, t, s = cursors.decode(cursor, (datetime, str, str))
        where.append(sql.SQL("(hour, tenant, service) < (%s, %s, %s)"))
        args += [h, t, s]
    query = sql.SQL(
        "SELECT tenant, service, hour, log_count, debug_count, info_count, warn_count, error_count, "
        "fatal_count, CASE WHEN log_count > 0 THEN (error_count + fatal_count)::float8 / log_count "
        "ELSE 0 END AS error_rate, host_count, avg_duration_ms, p95_duration_ms "
        "FROM hourly_metrics {} ORDER BY hour DESC, tenant DESC, service DESC LIMIT %s"
    ).format(where_clause(where))
    return await keyset_page(
        pool, cache, cache_key, query, args, limit, lambda r: (r["hour"], r["tenant"], r["service"])
    )
