"""GET /health: can the API answer, and are the parts that feed it alive?"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import APIRouter

from serving.api.deps import PoolDep, SettingsDep
from serving.api.render import JSONBytes
from serving.db import DatabaseUnavailable, Pool
from serving.models.health import Check, HealthPublic, State
from serving.settings import ServingSettings

router = APIRouter(tags=["health"])

#: the consumer stores a batch at least every few seconds while records arrive
STALE_SECONDS = 120.0


async def _database(pool: Pool) -> tuple[Check, Check]:
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT count(*) AS partitions, coalesce(sum(next_offset), 0)::bigint AS stored, "
                "extract(epoch FROM now() - max(updated_at))::float8 AS idle_seconds FROM ingest_offsets"
            )
            row = await cur.fetchone()
    except (DatabaseUnavailable, OSError) as exc:
        return Check(state=State.down, detail=f"database unreachable: {exc}"), Check(
            state=State.down, detail="unknown while the database is down"
        )
    assert row is not None
    db = Check(state=State.ok, detail="connected")
    if not row["partitions"]:
        consumer = Check(state=State.degraded, detail="no records stored yet (ingest_offsets is empty)")
    else:
        idle = float(row["idle_seconds"])  # type: ignore[arg-type]
        state = State.ok if idle <= STALE_SECONDS else State.degraded
        consumer = Check(
            state=state,
            detail=f"last batch stored {idle:.0f} s ago"
            + ("" if state is State.ok else f" (over {STALE_SECONDS:.0f} s: consumer stopped or no traffic)"),
            data={
                "partitions": row["partitions"],
                "records_stored": row["stored"],
                "seconds_since_last_batch": idle,
            },
        )
    return db, consumer


async def _broker(settings: ServingSettings) -> Check:
    if not settings.kafka_bootstrap_servers:
        return Check(state=State.not_configured, detail="KAFKA_BOOTSTRAP_SERVERS is not set")
    first = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), 2.0)
        writer.close()
        await writer.wait_closed()
    except (OSError, ValueError, TimeoutError) as exc:
        return Check(state=State.down, detail=f"broker {first} unreachable: {exc or 'timeout'}")
    return Check(state=State.ok, detail=f"broker {first} accepts connections")


async def _model(settings: ServingSettings) -> Check:
    if not settings.mlflow_tracking_uri:
        return Check(state=State.not_configured, detail="MLFLOW_TRACKING_URI is not set: rules only")
    url = settings.mlflow_tracking_uri.rstrip("/") + "/api/2.0/mlflow/registered-models/alias"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            r = await client.get(url, params={"name": settings.model_name, "alias": "champion"})
    except httpx.HTTPError as exc:
        return Check(state=State.down, detail=f"MLflow unreachable: {exc}")
    if r.status_code == 200:
        version = r.json().get("model_version", {}).get("version")
        return Check(
            state=State.ok,
            detail=f"{settings.model_name}@champion is version {version}",
            data={"version": version},
        )
    return Check(
        state=State.degraded, detail=f"no {settings.model_name}@champion in MLflow (HTTP {r.status_code})"
    )


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "The database is down"}},
    summary="State of the database, broker, consumer and model",
)
async def health(pool: PoolDep, settings: SettingsDep) -> Any:
    """No API key needed. 200 while the database answers (state ok or degraded), 503 when it does not."""
    (db, consumer), broker, model = await asyncio.gather(_database(pool), _broker(settings), _model(settings))
    checks = (db, broker, consumer, model)
    if db.state is State.down:
        overall = State.down
    elif any(c.state in (State.down, State.degraded) for c in checks):
        overall = State.degraded
    else:
        overall = State.ok
    body = HealthPublic(state=overall, database=db, broker=broker, consumer=consumer, model=model)
    return JSONBytes(body.model_dump(mode="json"), status_code=503 if overall is State.down else 200)


@router.get("/ping", include_in_schema=False)
async def ping() -> Any:
    """A database-free endpoint: the benchmark's reference for what the server itself costs."""
    return JSONBytes({"ok": True})
