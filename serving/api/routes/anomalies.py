"""Anomaly episodes: list (keyset pages), one with its explanation, operator feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from psycopg import sql

from serving.api import cursor as cursors
from serving.api.deps import CurrentPrincipal, DbDep, PageCacheDep, PoolDep, Row, tenant_scope
from serving.api.pages import PageCache, cached, keyset_page, where_clause
from serving.api.render import JSONBytes, RawJSON
from serving.api.timeutil import span
from serving.keys import Principal
from serving.models.anomalies import (
    AnomalyDetail,
    AnomalyPage,
    AnomalyPublic,
    AnomalyStatus,
    AnomalyType,
    FeedbackNote,
    FeedbackResult,
    Severity,
    SuppressRequest,
    SuppressScope,
)
from serving.models.common import Problem

router = APIRouter(prefix="/api/v1/anomalies", tags=["anomalies"])

PUBLIC_COLUMNS = sql.SQL(
    "id, tenant, service, anomaly_type AS type, severity, "
    "anomaly_effective_status(status, operator_state, operator_state_until) AS status, "
    "window_start, window_end, detected_at, resolved_at, score, expected_value, actual_value, "
    "description, pattern_template"
)
OPEN = (
    "status = 'open' AND (operator_state IS NULL "
    "OR (operator_state = 'suppressed' AND operator_state_until <= now()))"
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No anomaly with this id for this key's tenant"}
}
IdPath = Annotated[str, Path(max_length=200, description="The anomaly's id (from a list page)")]


@router.get("", response_model=AnomalyPage, summary="List anomaly episodes, newest first")
async def list_anomalies(
    request: Request,
    pool: PoolDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    service: Annotated[str | None, Query(max_length=200, description="Only this service")] = None,
    type: Annotated[AnomalyType | None, Query(description="Only this anomaly type")] = None,
    severity: Annotated[Severity | None, Query(description="Only this severity")] = None,
    status_: Annotated[
        AnomalyStatus | None,
        Query(alias="status", description="Only anomalies in this state (operator feedback included)"),
    ] = None,
    from_: Annotated[
        datetime | None,
        Query(alias="from", description="Episodes that started at or after this time (RFC 3339)"),
    ] = None,
    to: Annotated[
        datetime | None, Query(description="Episodes that started before this time (RFC 3339)")
    ] = None,
    tenant: Annotated[
        str | None,
        Query(max_length=200, description="Admin keys only: only this tenant (others: own tenant)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page (opaque)")
    ] = None,
) -> Any:
    """Episodes ordered by window_start then id, newest first. Pages are keyset pages: stable
    while the detector inserts new episodes (they appear on the first page, never shift later ones).
    There is no total count on purpose: counting a large filter costs more than the page."""
    start, end = span(from_, to)
    where: list[sql.Composable] = []
    args: list[Any] = []
    scope = tenant_scope(principal, tenant)
    cache_key = cache.key(principal, request.scope)
    if (hit := cached(cache, cache_key)) is not None:
        return hit
    for column, value in (
        ("tenant", scope),
        ("service", service),
        ("anomaly_type", type.value if type else None),
        ("severity", severity.value if severity else None),
    ):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            args.append(value)
    if status_ is AnomalyStatus.open:
        # anomaly_effective_status(...) = 'open', spelled so that the planner can estimate it
        # (a function's result gets a fixed 0.5 % guess) and use the partial open index
        where.append(sql.SQL(OPEN))
    elif status_ is not None:
        where.append(sql.SQL("anomaly_effective_status(status, operator_state, operator_state_until) = %s"))
        args.append(status_.value)
    if start is not None:
        where.append(sql.SQL("window_start >= %s"))
        args.append(start)
    if end is not None:
        where.append(sql.SQL("window_start < %s"))
        args.append(end)
    if cursor is not None:
        ws, last_id = cursors.decode(cursor, (datetime, str))
        where.append(sql.SQL("(window_start, id) < (%s, %s)"))
        args += [ws, last_id]
    query = sql.SQL("SELECT {} FROM anomalies {} ORDER BY window_start DESC, id DESC LIMIT %s").format(
        PUBLIC_COLUMNS, where_clause(where)
    )
    return await keyset_page(
        pool, cache, cache_key, query, args, limit, lambda r: (r["window_start"], r["id"])
    )


async def _fetch(db: DbDep, principal: Principal, anomaly_id: str, columns: sql.Composable) -> Row:
    query = sql.SQL("SELECT {} FROM anomalies WHERE id = %s").format(columns)
    args: list[Any] = [anomaly_id]
    if not principal.is_admin:
        query = query + sql.SQL(" AND tenant = %s")
        args.append(principal.tenant)
    cur = await db.execute(query, args)
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no anomaly with id {anomaly_id!r}")
    return row


#: The whole detail document, rendered by PostgreSQL in one statement (sql/025
#: anomaly_detail): the episode, up to 10 sample lines (problems first, then the window's first
#: other lines) read from the window's own daily partition, and the feedback. One round trip and
#: no partitioned table to plan: with 32 callers on a pool of 4 in one event loop, a request's
#: latency is a multiple of how long it holds its connection.
DETAIL = "SELECT anomaly_detail(%s, %s) AS body"


@router.get(
    "/{anomaly_id}",
    response_model=AnomalyDetail,
    responses=NOT_FOUND,
    summary="One anomaly, with why it was raised and sample log lines",
)
async def get_anomaly(db: DbDep, principal: CurrentPrincipal, anomaly_id: IdPath) -> Any:
    """The episode, its explanation (expected vs actual, window, pattern, up to 10 stored lines of
    the service in the window, problems first) and the operator feedback recorded on it."""
    cur = await db.execute(DETAIL, (anomaly_id, None if principal.is_admin else principal.tenant))
    row = await cur.fetchone()
    if row is None or row["body"] is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no anomaly with id {anomaly_id!r}")
    return RawJSON(row["body"])


async def _act(
    db: DbDep,
    cache: PageCache,
    principal: Principal,
    anomaly_id: str,
    action: str,
    state: str,
    note: str,
    scope: SuppressScope = SuppressScope.anomaly,
    until: datetime | None = None,
) -> Any:
    """Record the action and the anomaly's new operator state in one transaction."""
    async with db.transaction():
        row = await _fetch(
            db, principal, anomaly_id, sql.SQL("tenant, service, anomaly_type, pattern_template")
        )
        if scope is SuppressScope.pattern and row["pattern_template"] is None:
            raise HTTPException(
                422,
                f"anomaly {anomaly_id!r} has no pattern template: suppress it with scope 'anomaly'",
            )
        cur = await db.execute(
            "INSERT INTO anomaly_feedback (tenant, anomaly_id, action, scope, service, pattern_template, "
            "anomaly_type, until, key_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id, action, scope, until, key_id, created_at, note",
            (
                row["tenant"],
                anomaly_id,
                action,
                scope.value,
                row["service"],
                row["pattern_template"],
                row["anomaly_type"],
                until,
                principal.key_id,
                note,
            ),
        )
        feedback = await cur.fetchone()
        cur = await db.execute(
            sql.SQL(
                "UPDATE anomalies SET operator_state = %s, operator_state_at = now(), "
                "operator_state_until = %s WHERE id = %s RETURNING {}"
            ).format(PUBLIC_COLUMNS),
            (state, until, anomaly_id),
        )
        anomaly = await cur.fetchone()
    cache.forget_tenant(str(row["tenant"]))
    return JSONBytes({"anomaly": anomaly, "feedback": feedback})


@router.post(
    "/{anomaly_id}/acknowledge",
    response_model=FeedbackResult,
    responses=NOT_FOUND,
    summary="Acknowledge: someone is on it",
)
async def acknowledge(
    db: DbDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    anomaly_id: IdPath,
    body: FeedbackNote | None = None,
) -> Any:
    """Marks the anomaly acknowledged and records who (the key) and when; a label 'real' for retraining."""
    return await _act(
        db, cache, principal, anomaly_id, "acknowledge", "acknowledged", body.note if body else ""
    )


@router.post(
    "/{anomaly_id}/resolve", response_model=FeedbackResult, responses=NOT_FOUND, summary="Resolve by hand"
)
async def resolve(
    db: DbDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    anomaly_id: IdPath,
    body: FeedbackNote | None = None,
) -> Any:
    """Marks the anomaly resolved by an operator (the detector's own status is kept beside it)."""
    return await _act(db, cache, principal, anomaly_id, "resolve", "resolved", body.note if body else "")


@router.post(
    "/{anomaly_id}/suppress",
    response_model=FeedbackResult,
    responses=NOT_FOUND,
    summary="Suppress this anomaly or its pattern, for a while or for good",
)
async def suppress(
    db: DbDep,
    cache: PageCacheDep,
    principal: CurrentPrincipal,
    anomaly_id: IdPath,
    body: SuppressRequest | None = None,
) -> Any:
    """With scope 'pattern', every future anomaly of this service and pattern template is
    suppressed (the `suppressions` view lists what is active); with neither duration_minutes nor
    until, for good. A suppression for good also labels the pattern as noise for retraining."""
    body = body or SuppressRequest()
    until = body.until
    if body.duration_minutes is not None:
        until = datetime.now(UTC) + timedelta(minutes=body.duration_minutes)
    if until is not None and until <= datetime.now(UTC):
        raise HTTPException(422, "until is in the past")
    return await _act(
        db, cache, principal, anomaly_id, "suppress", "suppressed", body.note, body.scope, until
    )


__all__ = ["AnomalyPublic", "router"]
