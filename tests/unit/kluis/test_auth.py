"""Token verification: JWKS file or URL, cache and rotation, iss/aud/exp/nbf with leeway."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kluis.auth import AuthenticationError, ForbiddenError, JwksSource, TokenVerifier

ISS, AUD = "https://idp.example", "kluis"


def jwk(kid: str) -> tuple[ec.EllipticCurvePrivateKey, dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update(kid=kid, use="sig", alg="ES256")
    return key, public


def token(key: ec.EllipticCurvePrivateKey, kid: str, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "OVO000001",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "scope": "documents:write",
        "azp": "portal-1",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


class FakeIssuer:
    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.calls = 0
        self.fail = False

    def __call__(self, url: str) -> bytes:
        self.calls += 1
        if self.fail:
            raise OSError("issuer down")
        return json.dumps({"keys": self.keys}).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verifier(source: JwksSource, leeway: int = 30) -> TokenVerifier:
    return TokenVerifier({}, issuer=ISS, audience=AUD, leeway=leeway, jwks=source)


def test_jwks_file(tmp_path: Path) -> None:
    key, public = jwk("k1")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public]}))
    v = verifier(JwksSource(file=path))
    principal = v.verify(token(key, "k1"))
    assert (principal.role, principal.subject, principal.client_id) == (
        "agency",
        "OVO000001",
        "portal-1",
    )


def test_jwks_url_is_cached_and_refetched_on_rotation() -> None:
    old_key, old_public = jwk("old")
    new_key, new_public = jwk("new")
    issuer, clock = FakeIssuer(old_public), Clock()
    source = JwksSource(
        url="https://idp.example/jwks", ttl=300, min_refetch=10, fetch=issuer, clock=clock
    )
    v = verifier(source)
    for _ in range(5):
        v.verify(token(old_key, "old"))
    assert issuer.calls == 1  # cached

    issuer.keys = [old_public, new_public]  # the issuer rotates
    clock.now += 11
    assert v.verify(token(new_key, "new")).subject == "OVO000001"
    assert issuer.calls == 2  # unknown kid: fetched again

    # Unknown kids do not hammer the issuer: at most one fetch per min_refetch.
    stranger, _ = jwk("evil")
    for _ in range(5):
        with pytest.raises(AuthenticationError):
            v.verify(token(stranger, "evil"))
    assert issuer.calls == 2

    # TTL expiry refetches in the background while the cached keys keep serving.
    calls = issuer.calls
    clock.now += 301
    assert v.verify(token(new_key, "new")).subject == "OVO000001"
    deadline = time.monotonic() + 5
    while issuer.calls == calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert issuer.calls == calls + 1

    # A failing issuer keeps the old keys working.
    issuer.fail = True
    clock.now += 301
    assert v.verify(token(new_key, "new")).subject == "OVO000001"
    clock.now += 11
    assert v.verify(token(new_key, "new")).subject == "OVO000001"


def test_claims_are_checked_with_leeway() -> None:
    key, public = jwk("k1")
    v = verifier(JwksSource(url="https://x", fetch=FakeIssuer(public)), leeway=30)
    now = int(time.time())
    # Within the leeway: accepted.
    v.verify(token(key, "k1", exp=now - 10, nbf=now + 10))
    cases = {
        "expired": {"exp": now - 120},
        "not yet valid": {"nbf": now + 120},
        "wrong audience": {"aud": "someone-else"},
        "wrong issuer": {"iss": "https://evil.example"},
        "no expiry": {"exp": None},
    }
    for why, overrides in cases.items():
        with pytest.raises(AuthenticationError):
            v.verify(token(key, "k1", **overrides))
        assert why


def test_roles_and_scopes() -> None:
    key, public = jwk("k1")
    v = verifier(JwksSource(url="https://x", fetch=FakeIssuer(public)))
    assert v.verify(token(key, "k1", scope="documents:read:self", sub="85073003328")).role == (
        "citizen"
    )
    archivist = v.verify(token(key, "k1", scope="", roles=["archivist"], sub="a.peeters"))
    assert archivist.role == "archivist"
    with pytest.raises(ForbiddenError):
        v.verify(token(key, "k1", scope="profile"))
    with pytest.raises(AuthenticationError):  # citizen scope needs an owner number
        v.verify(token(key, "k1", scope="documents:read:self", sub="not-a-number"))


def test_algorithm_none_and_hs256_are_refused() -> None:
    key, public = jwk("k1")
    v = verifier(JwksSource(url="https://x", fetch=FakeIssuer(public)))
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": "OVO000001",
        "iat": 0,
        "exp": 2**31,
        "scope": "documents:write",
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError):
        v.verify(unsigned)
    with pytest.raises(AuthenticationError):
        v.verify("x" * 9000)


def test_production_does_not_trust_dev_tokens(data_dir: Path, tmp_path: Path) -> None:
    from kluis.auth import mint_dev_token
    from kluis.settings import AuthSettings, KluisSettings
    from kluis.wiring import build_verifier

    _, public = jwk("k1")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public]}))
    dev = mint_dev_token(
        data_dir, role="agency", subject="OVO000001", issuer="kluis-dev", audience="kluis"
    )
    in_dev = build_verifier(KluisSettings(data_dir=data_dir))
    assert in_dev.verify(dev).role == "agency"
    prod = build_verifier(
        KluisSettings(data_dir=data_dir, mode="production", auth=AuthSettings(jwks_file=jwks))
    )
    with pytest.raises(AuthenticationError):
        prod.verify(dev)


def test_jwks_over_http_loopback() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    key, public = jwk("k-http")
    body = json.dumps({"keys": [public]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        v = verifier(JwksSource(url=url))
        assert v.verify(token(key, "k-http")).role == "agency"
    finally:
        server.shutdown()
        server.server_close()


def test_verified_tokens_are_cached_until_expiry() -> None:
    key, public = jwk("k1")
    issuer = FakeIssuer(public)
    v = verifier(JwksSource(url="https://x", fetch=issuer), leeway=0)
    good = token(key, "k1")
    assert v.cached(good) is None
    principal = v.verify(good)
    assert v.cached(good) == principal
    short = token(key, "k1", exp=int(time.time()) + 1)
    v.verify(short)
    time.sleep(1.1)
    assert v.cached(short) is None
    with pytest.raises(AuthenticationError):
        v.verify(short)


def test_cache_is_keyed_by_the_whole_token_and_keeps_no_token() -> None:
    key, public = jwk("k1")
    v = verifier(JwksSource(url="https://x", fetch=FakeIssuer(public)), leeway=0)
    good = token(key, "k1")
    v.verify(good)
    head, payload, signature = good.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"  # same claims, another signature
    assert v.cached(forged) is None
    with pytest.raises(AuthenticationError):
        v.verify(forged)
    assert all(good not in repr(k) for k in v._cache)  # hashes only, no bearer token
