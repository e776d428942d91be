"""Tokens: who is calling, decided from a verified JWT and nothing else.

Three kinds of principal: an agency (``sub`` = agency id, scope ``documents:write``), a
person or enterprise through a portal (``sub`` = owner number, scope
``documents:read:self``) and an archivist (``roles`` contains ``archivist``). Issuer,
audience, expiry and not-before are always checked, with a small clock-skew leeway.

Public keys come from a JWKS file or URL (:class:`JwksSource`): cached for a TTL and
fetched again, at most every few seconds, when a token names an unknown ``kid``, so an
issuer can rotate keys without a restart. Development mode also trusts a locally
generated ES256 key, used by ``kluis token``; production never does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
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


_MAX_JWKS_BYTES = 1 << 20


def _parse_jwks(raw: bytes) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for jwk in json.loads(raw)["keys"]:
        if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
            continue
        keys[str(jwk["kid"])] = jwt.PyJWK(jwk).key
    return keys


def _fetch_url(url: str, timeout: float = 5.0) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"JWKS URL must be http(s): {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read(_MAX_JWKS_BYTES + 1)
    if len(body) > _MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    return body


class JwksSource:
    """Public keys by ``kid`` from a JWKS file or URL, cached for ``ttl`` seconds.

    An unknown ``kid`` triggers a refetch (key rotation), but no more often than every
    ``min_refetch`` seconds, so tokens with random kids cannot hammer the issuer. When a
    refetch fails the previous keys stay in use.
    """

    def __init__(
        self,
        *,
        file: Path | None = None,
        url: str | None = None,
        ttl: float = 300.0,
        min_refetch: float = 10.0,
        fetch: Callable[[str], bytes] = _fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (file is None) == (url is None):
            raise ValueError("give exactly one of a JWKS file or URL")
        self._file = file
        self._url = url
        self._ttl = ttl
        self._min_refetch = min_refetch
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._loaded_at: float | None = None
        self._refreshing = False
        self._load()

    def _refresh_in_background(self) -> None:
        try:
            self._reload_if(self._ttl)
        finally:
            self._refreshing = False

    def _load(self) -> None:
        raw = self._file.read_bytes() if self._file is not None else self._fetch(str(self._url))
        self._keys = _parse_jwks(raw)
        self._loaded_at = self._clock()

    def _reload_if(self, older_than: float) -> None:
        with self._lock:
            now = self._clock()
            if self._loaded_at is not None and now - self._loaded_at < older_than:
                return
            try:
                self._load()
            except Exception:
                # Keep the old keys; try again no sooner than min_refetch from now.
                self._loaded_at = now - max(self._ttl - self._min_refetch, 0)

    def key(self, kid: str) -> Any | None:
        """The key named ``kid``. A stale cache is refreshed in the background (the old
        keys serve meanwhile); only an unknown ``kid`` waits for a fetch (rotation)."""
        loaded = self._loaded_at
        if loaded is not None and self._clock() - loaded >= self._ttl and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_in_background, daemon=True).start()
        found = self._keys.get(kid)
        if found is None:
            self._reload_if(self._min_refetch)
            found = self._keys.get(kid)
        return found


class TokenVerifier:
    """Verifies bearer tokens against trusted public keys."""

    CACHE_SECONDS = 60.0
    CACHE_SIZE = 50_000

    def __init__(
        self,
        keys: dict[str, Any],
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        jwks: JwksSource | None = None,
    ) -> None:
        self._keys = keys
        self._jwks = jwks
        self._cache: dict[bytes, tuple[Principal, float]] = {}
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
        jwks_url: str | None = None,
        jwks_ttl: float = 300.0,
    ) -> TokenVerifier:
        keys: dict[str, Any] = {}
        jwks = None
        if jwks_file is not None or jwks_url is not None:
            jwks = JwksSource(file=jwks_file, url=jwks_url, ttl=jwks_ttl)
        if dev_data_dir is not None:
            keys["dev"] = dev_signing_key(dev_data_dir).public_key()
        return cls(keys, issuer=issuer, audience=audience, leeway=leeway, jwks=jwks)

    def _key(self, kid: str) -> Any | None:
        if kid in self._keys:
            return self._keys[kid]
        return self._jwks.key(kid) if self._jwks is not None else None

    def verify(self, token: str) -> Principal:
        """Raises: AuthenticationError, ForbiddenError.

        A verified token is remembered for at most ``CACHE_SECONDS`` (and never past its
        ``exp`` + leeway), so a portal's repeated calls cost one signature check a minute;
        a key withdrawn from the JWKS stops working within that time.
        """
        if len(token) > 8192:
            raise AuthenticationError("the token is too long")
        now = time.time()
        known = self.cached(token)
        if known is not None:
            return known
        principal, expires = self._verify(token)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        until = min(expires + self._leeway, now + self.CACHE_SECONDS)
        self._cache[_token_key(token)] = (principal, until)
        return principal

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified recently, without any I/O; else None.

        Keyed by the SHA-256 of the whole token (signature included), so only the very bytes
        that were verified hit, and no bearer token is kept in memory."""
        entry = self._cache.get(_token_key(token))
        if entry is not None and entry[1] > time.time():
            return entry[0]
        return None

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(str(header.get("kid")))
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
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("the token is not valid yet") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"the token is not valid: {type(exc).__name__}") from exc
        return _principal(claims), float(claims["exp"])


def _token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


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
