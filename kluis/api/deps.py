"""FastAPI dependencies: the process's services and the verified caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kluis.auth import AuthenticationError, ForbiddenError, Principal, Role, TokenVerifier
from kluis.wiring import Services

_bearer = HTTPBearer(auto_error=False, description="A JWT from a trusted issuer")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError("a bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    return verifier.verify(credentials.credentials)


def require(role: Role) -> object:
    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role != role:
            raise ForbiddenError(f"this endpoint is for {role} tokens")
        return principal

    return Depends(check)


ServicesDep = Annotated[Services, Depends(get_services)]
AgencyDep = Annotated[Principal, require("agency")]
CitizenDep = Annotated[Principal, require("citizen")]
ArchivistDep = Annotated[Principal, require("archivist")]
