"""The FastAPI application factory: ``uvicorn kluis.api.app:create_app --factory``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kluis.api.problems import install_problem_handlers
from kluis.api.routers import agency, archivist, health, loket
from kluis.settings import KluisSettings
from kluis.wiring import build_services, build_verifier


def create_app(settings: KluisSettings | None = None, *, run_indexer: bool = True) -> FastAPI:
    """Build the app; backends open in the lifespan and close on shutdown."""
    settings = settings or KluisSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        if run_indexer:
            services.index.start_indexer()
        app.state.services = services
        app.state.verifier = build_verifier(settings)
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="Kluis",
        version="0.1.0",
        summary="Government digital archive: agencies deposit, people read their own documents.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    for router in (health.router, agency.router, loket.router, archivist.router):
        app.include_router(router)
    return app
