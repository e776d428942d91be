"""BatchSigner: seal many PDFs on every core.

pyHanko is pure Python and holds the GIL, so batches use a process pool (REPORT §7). Each
worker builds its :class:`~signing.pades.PadesSigner` once in the pool initializer, after
fork: parsed key or logged-in PKCS#11 session, measured CMS reservation and (above B-B) the
signer's event loop with its HTTP session, time-stamper and revocation-data cache live for
the worker's whole life. For B-T and up a worker keeps ``in_flight`` signatures going at
once (threads; ``PadesSigner.sign`` is thread-safe and the signatures overlap on the
signer's loop while they wait on the TSA/OCSP), so service latency is hidden.

The key source is given as a picklable zero-argument factory (for instance
``functools.partial(Pkcs11KeySource, module, token, key, pin)``) so each worker opens its own.
Workers start with ``forkserver`` by default: a parent that already initialised a PKCS#11
module must not fork it into children (PKCS#11 forbids using it after fork). Results come
back in input order; a document that fails comes back as its
:class:`~signing.errors.SigningError` instead of a result, so one bad PDF never sinks a batch.

Inter-process cost (profiled, bench/signing.py "CPU ms/doc"): a B-B signature is ~2.5 ms of
CPU, so per-task overhead matters. Documents travel in chunks of up to ``_CHUNK_DOCS``
documents or ``_CHUNK_BYTES`` bytes (one pickle, one pipe write and one wake-up per chunk
instead of per document: this halved the parent's CPU per document against chunks of 4), and
a worker sends back only what the signature *appended* (an incremental update never
rewrites the input, and the parent still holds the input): for a 5 MB PDF that avoids
pickling, piping and unpickling the whole document a second time (moving 5 MB one way
through the pool cost ~6 ms of CPU, parent and worker together). Handing large inputs over
as files in ``/dev/shm`` instead was tried and measured worse on this VM (tmpfs page
allocation cost the parent ~7.5 ms of system time per 5 MB against ~4 ms for the pipe).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final

from signing.errors import SigningError
from signing.keys import KeySource
from signing.pades import PadesSigner, SignedPdf
from signing.policy import SigningPolicy

__all__ = ["BatchSigner"]

_worker: dict[str, Any] = {}

_CHUNK_DOCS: Final = 16
"""Documents per task at B-B (above B-B: ``in_flight``, so a worker's threads all have work)."""

_CHUNK_BYTES: Final = 8 * 1024 * 1024
"""A chunk is closed once its documents reach this size, bounding what is pickled and held
in flight (``2 x processes`` chunks) for large PDFs."""


@dataclass(frozen=True)
class _Sealed:
    """What a worker sends back: the bytes the signature appended, and its facts."""

    kept: int
    """How many leading bytes of the input the signed PDF starts with (all of them)."""
    appended: bytes
    level: str
    signed_at: datetime
    signer_subject: str
    certificate_sha256: str

    def signed(self, pdf: bytes) -> SignedPdf:
        return SignedPdf(
            pdf=pdf[: self.kept] + self.appended,
            level=self.level,
            signed_at=self.signed_at,
            signer_subject=self.signer_subject,
            certificate_sha256=self.certificate_sha256,
        )


def _init(
    policy: SigningPolicy,
    keys: Callable[[], KeySource],
    trust_roots: tuple[bytes, ...],
    in_flight: int,
) -> None:
    _worker["threads"] = ThreadPoolExecutor(in_flight) if policy.level != "B-B" else None
    try:
        _worker["signer"] = PadesSigner(policy, keys(), trust_roots=trust_roots)
        _worker["error"] = None
    except SigningError as exc:  # reported per document instead of a BrokenProcessPool
        _worker["signer"] = None
        _worker["error"] = exc


def _sign_one(pdf: bytes) -> _Sealed | SigningError:
    if _worker["error"] is not None:
        error: SigningError = _worker["error"]
        return error
    try:
        result: SignedPdf = _worker["signer"].sign(pdf)
    except SigningError as exc:
        return exc
    # Always true for an incremental update; checked so a violation costs bytes, not data.
    kept = len(pdf) if result.pdf.startswith(pdf) else 0
    return _Sealed(
        kept=kept,
        appended=result.pdf[kept:],
        level=result.level,
        signed_at=result.signed_at,
        signer_subject=result.signer_subject,
        certificate_sha256=result.certificate_sha256,
    )


def _sign_chunk(pdfs: list[bytes]) -> list[_Sealed | SigningError]:
    threads: ThreadPoolExecutor | None = _worker["threads"]
    if threads is None:
        return [_sign_one(pdf) for pdf in pdfs]
    return list(threads.map(_sign_one, pdfs))


def _warm(_: int) -> bool:
    if _worker["error"] is not None:
        raise _worker["error"]
    return True


class BatchSigner:
    """A process pool of PadesSigners. Use as a context manager; :meth:`close` stops it.

    Raises:
        ValueError: on construction, for ``processes`` or ``in_flight`` below 1.
    """

    def __init__(
        self,
        policy: SigningPolicy,
        keys: Callable[[], KeySource],
        *,
        trust_roots: Sequence[bytes] = (),
        processes: int | None = None,
        in_flight: int = 8,
        start_method: str = "forkserver",
    ) -> None:
        self.processes = processes or os.cpu_count() or 1
        if self.processes < 1 or in_flight < 1:
            raise ValueError("processes and in_flight must be at least 1")
        self._chunk = in_flight if policy.level != "B-B" else _CHUNK_DOCS
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context(start_method),
            initializer=_init,
            initargs=(policy, keys, tuple(trust_roots), in_flight),
        )

    def __enter__(self) -> BatchSigner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for monitoring and benchmarks)."""
        # ProcessPoolExecutor keeps them privately; None before the first submit.
        processes: Any = getattr(self._pool, "_processes", None)
        return list(processes or {})

    def warm_up(self) -> None:
        """Start every worker and open its signer now (else on first use).

        Raises:
            SigningError: a worker could not open its key source (e.g. KeySourceError).
        """
        list(self._pool.map(_warm, range(self.processes)))

    def sign_all(self, pdfs: Iterable[bytes]) -> Iterator[SignedPdf | SigningError]:
        """Seal every PDF; results in input order, failures as their SigningError.

        At most ``2 x processes`` chunks are queued at once, so memory stays bounded
        however long ``pdfs`` is.
        """
        iterator = iter(pdfs)
        window: deque[tuple[list[bytes], Future[list[_Sealed | SigningError]]]] = deque()
        while True:
            while len(window) < 2 * self.processes:
                chunk = self._next_chunk(iterator)
                if not chunk:
                    break
                window.append((chunk, self._pool.submit(_sign_chunk, chunk)))
            if not window:
                return
            chunk, future = window.popleft()
            for pdf, result in zip(chunk, future.result(), strict=True):
                yield result.signed(pdf) if isinstance(result, _Sealed) else result

    def _next_chunk(self, iterator: Iterator[bytes]) -> list[bytes]:
        chunk: list[bytes] = []
        size = 0
        for pdf in iterator:
            chunk.append(pdf)
            size += len(pdf)
            if len(chunk) >= self._chunk or size >= _CHUNK_BYTES:
                break
        return chunk
