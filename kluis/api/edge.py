"""The outermost layer of every request: request id, size limit, Content-Digest, security
headers, metrics and one structured access-log line.

A pure ASGI middleware (no body re-wrapping by Starlette), so it sees every response,
including the ones it answers itself (413, digest mismatch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kluis.api.problems import problem_json
from kluis.errors import BadRequestError, DigestMismatchError, PayloadTooLargeError
from kluis.observability import Metrics, request_id_var
from kluis.problems import PROBLEMS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("kluis.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_MEMBER = re.compile(r"^\s*([a-z0-9*._-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*(?:;.*)?$")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
)
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOCS_PATHS = ("/docs", "/redoc")


def parse_content_digest(value: str) -> dict[str, bytes]:
    """RFC 9530 ``Content-Digest`` (a structured-field dictionary of byte sequences).

    Raises: BadRequestError when malformed or naming no algorithm we support.
    """
    found: dict[str, bytes] = {}
    for member in value.split(","):
        match = _MEMBER.match(member)
        if match is None:
            raise BadRequestError("Content-Digest is malformed; expected sha-256=:<base64>:")
        algorithm, encoded = match.group(1), match.group(2)
        if algorithm in _DIGESTS:
            try:
                found[algorithm] = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise BadRequestError("Content-Digest is not valid base64") from None
    if not found:
        raise BadRequestError("Content-Digest names no supported algorithm (sha-256, sha-512)")
    return found


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        path: str = scope.get("path", "")

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out = list(message.get("headers", []))
                names = {k.lower() for k, _ in out}
                out.append((b"x-request-id", request_id.encode()))
                out.extend(h for h in SECURITY_HEADERS if h[0] not in names)
                if not path.startswith(_DOCS_PATHS) and _CSP[0] not in names:
                    out.append(_CSP)
                if b"cache-control" not in names:
                    out.append((b"cache-control", b"no-store"))
                message["headers"] = out
            await send(message)

        try:
            await self._guarded(scope, receive, send_wrapped, headers)
        finally:
            elapsed = time.perf_counter() - started
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            if status >= 400:
                self.metrics.errors.labels(route, str(status)).inc()
            access_log.info(
                "%s %s %d",
                method,
                route,
                status,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._problem(scope, receive, send, PayloadTooLargeError, "too large")
            return
        digest_header = headers.get(b"content-digest")
        if digest_header is None:
            await self.app(scope, self._counting(receive), send)
            return
        try:
            expected = parse_content_digest(digest_header.decode("latin-1"))
        except BadRequestError as exc:
            await self._problem(scope, receive, send, BadRequestError, str(exc))
            return
        # The digest covers the whole content: read it all (bounded) before the app sees
        # any of it, so nothing is stored when it does not match.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body:
                await self._problem(scope, receive, send, PayloadTooLargeError, "too large")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        content = b"".join(chunks)
        for algorithm, value in expected.items():
            if _DIGESTS[algorithm](content).digest() != value:
                detail = f"the {algorithm} of the content does not match Content-Digest"
                await self._problem(scope, receive, send, DigestMismatchError, detail)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _counting(self, receive: Receive) -> Receive:
        total = 0
        limit = self.max_body

        async def counted() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise PayloadTooLargeError(f"the request body exceeds {limit} bytes")
            return message

        return counted

    async def _problem(
        self, scope: Scope, receive: Receive, send: Send, error: type[Exception], detail: str
    ) -> None:
        if error is PayloadTooLargeError:
            detail = f"the request body exceeds {self.max_body} bytes"
        response = problem_json(PROBLEMS[error], detail, scope.get("path", ""))
        await response(scope, receive, send)


class RateLimiter:
    """Per-client token buckets, in process memory: the limits hold per replica."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> int:
        """0 when allowed, else the whole seconds until a token is available."""
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                if client not in self._buckets and len(self._buckets) >= self._max_clients:
                    self._buckets.pop(next(iter(self._buckets)))
                self._buckets[client] = (tokens - 1, now)
                return 0
            self._buckets[client] = (tokens, now)
            return max(1, int((1 - tokens) / self.rate + 0.999))
