"""One event loop, HTTP session, time-stamper and revocation cache per PadesSigner.

Why: pyHanko is asyncio-based and aiohttp sessions (and pyhanko-certvalidator's fetchers,
which cache what they fetch) are bound to the event loop that made them. Running every
signature in its own ``asyncio.run`` therefore threw away the TSA connection and every
OCSP response and CRL after each document (REPORT §5.4: B-LT with a fresh ValidationContext
ran at about half the rate of a reused one). Here one daemon thread runs one loop for the
signer's life; callers submit coroutines to it, so many signatures can wait on the TSA at
once while they share keep-alive connections and revocation data.

Revocation data is reused only while it is current (:class:`_RevinfoCache`): the shared
``ValidationContext`` is replaced when it is older than ``reuse_for``, when any OCSP
response or CRL it holds is past its nextUpdate, or when a fetch failed (the fetchers
would otherwise cache the failure for every later document).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

__all__ = ["SignerNetwork"]

T = TypeVar("T")

_TIMEOUT_S = 10


class _RevinfoCache:
    """A ValidationContext shared by the signatures of one signer while its data is current.

    Only touched from the loop thread, so it needs no lock.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        trust_roots: Sequence[asn1_x509.Certificate],
        reuse_for: timedelta,
    ) -> None:
        self._backend = AIOHttpFetcherBackend(session, per_request_timeout=_TIMEOUT_S)
        self._roots = list(trust_roots)
        self._reuse_for = reuse_for
        self._context: ValidationContext | None = None
        self._built = datetime.min.replace(tzinfo=UTC)
        self.contexts_built = 0
        """How many contexts were made (each one re-fetches OCSP/CRL): for tests and benches."""

    def context(self) -> ValidationContext:
        now = datetime.now(UTC)
        if self._context is None or not self._usable(self._context, now):
            # The old context is dropped, not closed: signatures still in flight may use it,
            # and its fetchers share our session, which the context does not own.
            self._context = ValidationContext(
                trust_roots=self._roots, allow_fetching=True, fetcher_backend=self._backend
            )
            self._built = now
            self.contexts_built += 1
        return self._context

    def discard(self, context: Any) -> None:
        """Forget ``context`` after a failed signature: it may hold a cached fetch error."""
        if self._context is context:
            self._context = None

    def _usable(self, context: ValidationContext, now: datetime) -> bool:
        if now - self._built >= self._reuse_for or context.soft_fail_exceptions:
            return False
        return all(nu is None or nu > now for nu in _next_updates(context))


def _next_updates(context: ValidationContext) -> list[datetime | None]:
    out: list[datetime | None] = []
    for response in context.ocsps:
        basic = response["response_bytes"]["response"].parsed
        for single in basic["tbs_response_data"]["responses"]:
            out.append(single["next_update"].native)
    for crl in context.crls:
        out.append(crl["tbs_cert_list"]["next_update"].native)
    return out


class SignerNetwork:
    """The loop thread and the network state living on it. Start lazily; close once.

    Not fork-safe once started: a process pool must build its signers after fork (as
    :class:`signing.batch.BatchSigner` does).
    """

    def __init__(
        self,
        tsa_url: str | None,
        trust_roots: Sequence[asn1_x509.Certificate],
        revinfo_reuse: timedelta,
    ) -> None:
        self._tsa_url = tsa_url
        self._roots = tuple(trust_roots)
        self._reuse = revinfo_reuse
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timestamper: HTTPTimeStamper | None = None
        self._revinfo: _RevinfoCache | None = None
        self._closed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop thread and wait for it (from any other thread)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._start())
        return future.result()

    # The accessors below are for coroutines running on the loop.

    def timestamper(self) -> HTTPTimeStamper:
        if self._timestamper is None:
            assert self._tsa_url is not None, "levels above B-B need a tsa_url"
            # One instance for the signer's life: it also caches the dummy response pyHanko
            # uses to estimate the container size (REPORT §6.3).
            self._timestamper = HTTPTimeStamper(
                self._tsa_url, session=self._http(), timeout=_TIMEOUT_S
            )
        return self._timestamper

    def revinfo(self) -> _RevinfoCache:
        if self._revinfo is None:
            self._revinfo = _RevinfoCache(self._http(), self._roots, self._reuse)
        return self._revinfo

    @property
    def revinfo_contexts_built(self) -> int:
        """Validation contexts made so far (each one fetches OCSP/CRLs anew)."""
        return 0 if self._revinfo is None else self._revinfo.contexts_built

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the signer's network is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="kluis-signing-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Close the session and stop the loop thread. Idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None:
            return
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
