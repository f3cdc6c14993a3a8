"""Assembles the API: settings in, app out. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.api.cost_cache import CostCache
from serving.api.pages import CachedPagesFront, KeyCache, PageCache
from serving.api.routes import anomalies, costs, health, logs, metrics, patterns
from serving.db import DatabaseUnavailable, Pool
from serving.limits import RequestLimits
from serving.models.common import COMMON_RESPONSES, Problem
from serving.rate_limit import RateLimit, RateLimiter
from serving.settings import ServingSettings

DESCRIPTION = """
Smart Log Analyzer's REST API: anomaly episodes and operator feedback, hourly metrics, log
search, log templates and AWS cost estimates of the platform itself.

Every `/api/v1` call needs an API key in the `X-API-Key` header (`loganalyzer keys create
--tenant T`). A key sees only its tenant's data; an admin key sees every tenant and may filter
with `tenant=`. Lists are keyset pages: pass `next_cursor` back as `cursor`.
"""

TAGS = [
    {"name": "health", "description": "Liveness of the API and the parts that feed it"},
    {"name": "anomalies", "description": "Anomaly episodes, their explanation, and operator feedback"},
    {"name": "metrics", "description": "Hourly rollups per service"},
    {"name": "logs", "description": "Full-text search over stored log lines"},
    {"name": "patterns", "description": "Message templates mined per service"},
    {"name": "costs", "description": "What the platform costs on AWS: estimate, forecast, what-if, pricing"},
]


#: where /docs and /redoc load Swagger UI's and ReDoc's scripts and styles from
DOCS_ASSETS_URL = "/docs-assets"

#: what the middlewares answer before a route runs (serving/limits.py, serving/rate_limit.py)
LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "The body is larger than API_MAX_BODY_BYTES"},
    414: {"model": Problem, "description": "The URL is longer than API_MAX_URL_BYTES"},
    429: {
        "model": Problem,
        "description": "This key's rate limit (API_RATE_LIMIT_PER_SECOND) is exceeded; see Retry-After",
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    },
    431: {"model": Problem, "description": "The request headers are larger than API_MAX_HEADER_BYTES"},
}


def _message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(settings: ServingSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = Pool(settings.database_url, settings.pool_size, settings.statement_timeout_ms)
        await pool.open()
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    # Swagger UI (/docs) and ReDoc (/redoc) are served from the package's own copy of their
    # scripts: FastAPI's default loads them from a CDN, and a machine without internet access
    # (an air-gapped deployment, our test machines) would show a blank page
    app = FastAPIOffline(
        title="Smart Log Analyzer API",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        # no validator badge: it would send the schema's address to validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    key_cache: KeyCache = {}
    page_cache = PageCache(settings.page_cache_seconds)
    app.state.key_cache = key_cache
    app.state.cost_cache = CostCache(settings.cost_cache_seconds)
    app.state.page_cache = page_cache
    app.state.searchable_texts = {}
    app.add_middleware(CachedPagesFront, pages=page_cache, keys=key_cache)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        return JSONResponse({"detail": _message(exc), "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_400_BAD_REQUEST:  # FastAPI's answer to a body it cannot parse
            return JSONResponse(
                {"detail": "the request body is not valid JSON (send Content-Type: application/json)"},
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(DatabaseUnavailable)
    async def database_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"database unavailable: {exc}"}, status_code=503)

    @app.exception_handler(psycopg.errors.QueryCanceled)
    async def too_slow(request: Request, exc: psycopg.errors.QueryCanceled) -> JSONResponse:
        return JSONResponse(
            {
                "detail": "the query took longer than the statement timeout: "
                "narrow the filters (service, from/to)"
            },
            status_code=503,
        )

    @app.exception_handler(psycopg.DataError)
    async def bad_value(request: Request, exc: psycopg.DataError) -> JSONResponse:
        return JSONResponse({"detail": f"invalid value: {str(exc).splitlines()[0]}"}, status_code=422)

    # outermost last: size limits first (cheapest), then the rate limit, then CORS
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
            max_age=600,
        )
    if settings.rate_limit_per_second > 0:
        app.add_middleware(
            RateLimit, limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        )
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    app.include_router(health.router)
    for module in (anomalies, metrics, logs, patterns, costs):
        app.include_router(module.router, responses={**COMMON_RESPONSES, **LIMIT_RESPONSES})
    return app
