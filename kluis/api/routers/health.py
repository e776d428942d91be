"""Liveness, readiness and metrics (no authentication; no personal data)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from kluis.api.deps import ServicesDep
from kluis.observability import Metrics
from search.model import Query

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "A backend is down", "content": {"application/json": {}}}},
)
def readyz(services: ServicesDep) -> JSONResponse:
    """Storage and index answer; 503 with ``Retry-After`` when one does not."""
    checks: dict[str, str] = {}
    try:
        services.storage.exists("readyz-probe")
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"down: {type(exc).__name__}"
    try:
        services.index.search(Query(limit=1))
        checks["index"] = "ok"
    except Exception as exc:
        checks["index"] = f"down: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text exposition: requests, latencies, errors, ingests.

    Under ``kluis serve --workers N`` every worker writes its counters to a shared directory
    and this sums them over all workers, whichever worker answers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
