"""Tokens: who is calling, decided from a verified JWT and nothing else.

Three kinds of principal: an agency (``sub`` = agency id, scope ``documents:write``), a
person or enterprise through a portal (``sub`` = owner number, scope
``documents:read:self``) and an archivist (``roles`` contains ``archivist``). Issuer,
audience, expiry and not-before are always checked, with a small clock-skew leeway.

Development mode also trusts a locally generated ES256 key, used by ``kluis token``;
production trusts only the keys of the JWKS file.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ingest.owners import InvalidOwnerNumber, parse_owner
from kluis.local_secrets import ensure_secret_file

Role = Literal["agency", "citizen", "archivist"]
SCOPES: dict[Role, str] = {
    "agency": "documents:write",
    "citizen": "documents:read:self",
    "archivist": "archive:manage",
}
_ALGORITHMS = ["ES256", "RS256", "PS256", "EdDSA"]


class AuthenticationError(Exception):
    """No usable credentials: missing, malformed, expired, wrong issuer or audience."""


class ForbiddenError(Exception):
    """Valid credentials that do not allow this operation."""


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    """Agency id, owner number (digits only) or archivist id."""
    client_id: str | None = None
    """The portal or application that called on the subject's behalf (``azp``/``client_id``)."""


def _dev_key_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "dev-token-key.pem"


def dev_signing_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The development token key, generated on first use."""

    def make() -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    loaded = serialization.load_pem_private_key(
        ensure_secret_file(_dev_key_path(data_dir), make), None
    )
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return loaded


def mint_dev_token(
    data_dir: Path,
    *,
    role: Role,
    subject: str,
    issuer: str,
    audience: str,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    """A token signed with the development key; only development servers accept it."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "scope": SCOPES[role],
        "azp": "kluis-cli",
    }
    if role == "archivist":
        claims["roles"] = ["archivist"]
    return jwt.encode(claims, dev_signing_key(data_dir), algorithm="ES256", headers={"kid": "dev"})


class TokenVerifier:
    """Verifies bearer tokens against a fixed set of public keys."""

    def __init__(
        self, keys: dict[str, Any], *, issuer: str, audience: str, leeway: int = 30
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    @classmethod
    def from_sources(
        cls,
        *,
        jwks_file: Path | None,
        dev_data_dir: Path | None,
        issuer: str,
        audience: str,
        leeway: int,
    ) -> TokenVerifier:
        keys: dict[str, Any] = {}
        if jwks_file is not None:
            for jwk in json.loads(jwks_file.read_text())["keys"]:
                keys[jwk["kid"]] = jwt.PyJWK(jwk).key
        if dev_data_dir is not None:
            keys["dev"] = dev_signing_key(dev_data_dir).public_key()
        return cls(keys, issuer=issuer, audience=audience, leeway=leeway)

    def verify(self, token: str) -> Principal:
        """Raises: AuthenticationError, ForbiddenError."""
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(str(header.get("kid")))
            if key is None:
                raise AuthenticationError("the token is signed by an unknown key")
            claims = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"the token is not valid: {exc}") from exc
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    scopes = set(str(claims.get("scope", "")).split())
    roles = claims.get("roles") or []
    subject = str(claims["sub"])
    client = claims.get("azp") or claims.get("client_id")
    client_id = str(client) if client else None
    if isinstance(roles, Sequence) and "archivist" in roles:
        return Principal("archivist", subject, client_id)
    if SCOPES["agency"] in scopes:
        return Principal("agency", subject, client_id)
    if SCOPES["citizen"] in scopes:
        try:
            owner = parse_owner(subject)
        except InvalidOwnerNumber as exc:
            raise AuthenticationError("the token's subject is not an owner number") from exc
        return Principal("citizen", owner.id, client_id)
    raise ForbiddenError("the token grants no Kluis scope")
