"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from kluis.api.deps import ServicesDep
from search.model import Query

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
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
    )
