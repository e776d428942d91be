"""FastAPI dependencies: the process's services and the verified, rate-limited caller.

All are ``async def`` on purpose: sync dependencies would each cost a hop through the
thread pool. Only a token not seen recently is verified in a worker thread.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kluis.api.deposits import Deposits, InThreadDeposits
from kluis.api.edge import RateLimiter
from kluis.api.ingest_pool import IngestPool
from kluis.audit import AuditLog
from kluis.auth import AuthenticationError, ForbiddenError, Principal, Role, TokenVerifier
from kluis.errors import RateLimitedError
from kluis.observability import Metrics
from kluis.wiring import Services

_bearer = HTTPBearer(auto_error=False, description="A JWT from a trusted issuer")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_audit(request: Request) -> AuditLog:
    audit: AuditLog = request.app.state.audit
    return audit


async def get_deposits(request: Request) -> Deposits:
    """How this process runs a deposit: its pool of ingest processes, or in its own threads."""
    pool: IngestPool | None = request.app.state.ingest_pool
    if pool is not None:
        return pool
    services: Services = request.app.state.services
    return InThreadDeposits(services.ingestor, request.app.state.audit, services.keyer)


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _limit(request: Request, client: str) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    # Hashed: a citizen's subject is a national number and must not sit in memory dumps.
    wait = limiter.take(hashlib.sha256(client.encode()).hexdigest()[:32])
    if wait:
        raise RateLimitedError(wait)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise AuthenticationError("a bearer token is required")
        token = credentials.credentials
        # A cache hit is pure CPU; a miss may fetch the JWKS (rotation), so it runs in a
        # worker thread and never blocks the event loop.
        principal = verifier.cached(token)
        if principal is None:
            principal = await run_in_threadpool(verifier.verify, token)
    except AuthenticationError:
        # Failed attempts count against the caller's address.
        _limit(request, "ip:" + (request.client.host if request.client else "unknown"))
        raise
    _limit(request, f"{principal.role}:{principal.subject}:{principal.client_id}")
    return principal


def require(role: Role) -> object:
    async def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role != role:
            raise ForbiddenError(f"this endpoint is for {role} tokens")
        return principal

    return Depends(check)


ServicesDep = Annotated[Services, Depends(get_services)]
AuditDep = Annotated[AuditLog, Depends(get_audit)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DepositsDep = Annotated[Deposits, Depends(get_deposits)]
AgencyDep = Annotated[Principal, require("agency")]
CitizenDep = Annotated[Principal, require("citizen")]
ArchivistDep = Annotated[Principal, require("archivist")]
