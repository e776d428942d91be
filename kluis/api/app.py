"""The FastAPI application factory: ``uvicorn kluis.api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from kluis.api.edge import EdgeMiddleware, RateLimiter
from kluis.api.ingest_pool import IngestPool
from kluis.api.problems import install_problem_handlers
from kluis.api.routers import agency, archivist, disposal, health, holds, loket
from kluis.audit import AuditLog
from kluis.observability import Metrics
from kluis.scheduler import JobMetrics, start_scheduler
from kluis.settings import KluisSettings
from kluis.wiring import build_services, build_verifier


def create_app(
    settings: KluisSettings | None = None,
    *,
    run_indexer: bool = True,
    ingest_address: str | None = None,
) -> FastAPI:
    """Build the app; backends open in the lifespan and close on shutdown.

    ``ingest_address``: where ``kluis serve``'s ingest processes listen (its workers share
    them). Without it, ``ingest_processes`` > 0 starts that many for this app alone.
    """
    settings = settings or KluisSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        scheduler = None
        if run_indexer:
            services.index.start_indexer()
            scheduler = start_scheduler(services, metrics=JobMetrics(metrics.registry))
        app.state.services = services
        app.state.audit = AuditLog(services.storage)
        app.state.verifier = build_verifier(settings)
        app.state.ingest_pool = None
        if ingest_address is not None:
            app.state.ingest_pool = IngestPool(ingest_address)
        elif settings.ingest_processes:
            app.state.ingest_pool = IngestPool.own(settings, settings.ingest_processes)
        try:
            if app.state.ingest_pool is not None:
                await app.state.ingest_pool.start()
            yield
        finally:
            if app.state.ingest_pool is not None:
                await app.state.ingest_pool.close()
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            services.close()

    app = FastAPI(
        title="Kluis",
        version="0.1.0",
        summary="Government digital archive: agencies deposit, people read their own documents.",
        lifespan=lifespan,
        docs_url="/docs" if settings.development else None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    # Per process: with N workers each takes 1/N, so a replica never admits more than set.
    app.state.rate_limiter = RateLimiter(
        rate=settings.rate_limit_per_second / settings.workers,
        burst=max(1, settings.rate_limit_burst // settings.workers),
    )
    install_problem_handlers(app)
    for router in (health.router, agency.router, loket.router, archivist.router, disposal.router):
        app.include_router(router)
    app.include_router(holds.router)
    app.include_router(holds.agency_router)
    app.add_middleware(EdgeMiddleware, metrics=metrics, max_body=settings.max_request_bytes)
    _document_problems(app)
    return app


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "correlation_id": {"type": "string"},
    },
}


def _document_problems(app: FastAPI) -> None:
    """Every error answer is ``application/problem+json``: say so in the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, response in list(responses.items()):
                    if status[0] in "45":
                        response["content"] = problem
                        if status == "422":
                            response["description"] = "The request is not valid"
                responses["default"] = {"description": "A problem", "content": problem}
        schemas = schema["components"]["schemas"]
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
