"""PadesSigner: seal PDF bytes with a PAdES baseline signature (ETSI EN 319 142-1).

Every signature is appended as an incremental update (earlier revisions and signatures stay
byte-for-byte intact), uses the ``/ETSI.CAdES.detached`` subfilter and takes its signing
time from the injected clock, truncated to whole seconds as CMS encodes it.

Levels: B-B; B-T adds an RFC 3161 signature time-stamp from ``policy.tsa_url``; B-LT also
fetches revocation data (AIA/CDP, anchored at ``trust_roots``) into a DSS; B-LTA adds a
document time-stamp. For services prefer B-T here and :func:`signing.upkeep.augment` later
(see :mod:`signing.policy`).

Performance (REPORT §5.3/§6.4): the key source yields a signer whose key is parsed once,
whose size-estimation dry run performs no private-key operation and whose static CMS parts
are encoded once (``StaticCmsParts``); for B-B the CMS size is measured once per
PadesSigner (first signature) so pyHanko skips its estimate on every document. That leaves a
few ms of Python per B-B signature. Above B-B the TSA/OCSP round trips dominate: those
signatures run on one event loop per signer (:mod:`signing._network`) that keeps the HTTP
session, the time-stamper and the fetched revocation data (while current) across documents;
keep many signatures in flight (threads, or :class:`signing.batch.BatchSigner`).

Memory: :meth:`PadesSigner.sign_stream` reads the input from a seekable stream and writes
the signed document to an output stream; pyHanko parses only the cross-reference data and
copies and hashes the rest in chunks, so with file-backed streams (e.g. a
``tempfile.SpooledTemporaryFile``) a 1 GB PDF is signed in a few MB of Python memory.
:meth:`PadesSigner.sign` (bytes in, bytes out) holds input and output: about 2x the file.

Threading: :meth:`PadesSigner.sign` is thread-safe and keeps no per-document state on the
instance. pyHanko is asyncio-based; B-B calls run their own short-lived event loop
(``asyncio.run``), so ``sign`` must NOT be called from a thread with a running event loop
(inside ``async def``): call it from a worker thread or process instead.

Errors: only :class:`~signing.errors.UnreadablePdfError` (input problems) and
:class:`~signing.errors.SignatureFailedError` (everything after the input was accepted)
escape, with the original exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, BinaryIO, Final

from cryptography import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.validation import read_certification_data
from pyhanko_certvalidator import CertificateValidator

from signing._archival import ArchivalWriter, append_document_timestamp, append_validation_data
from signing._network import SignerNetwork
from signing.errors import KeySourceError, SignatureFailedError, UnreadablePdfError
from signing.keys import KeySource, load_root
from signing.policy import SigningPolicy

__all__ = ["PadesSigner", "SealFacts", "SignedPdf"]

_RESERVE_MARGIN_HEX: Final = 1024
"""Slack on top of the measured CMS size, in hex digits (2 per byte). A B-B container has no
externally produced parts; only ECDSA signatures (+-2 bytes) and the time encoding vary."""

_MAX_FIELD_SUFFIX: Final = 1000

_IO_CHUNK: Final = 1024 * 1024
"""Copy and hash chunk size. pyHanko's default (4 KiB) made streaming a 1 GB file twice as
slow as signing it in memory; 1 MiB is as fast and still bounded."""

_PRODUCIBLE_LEVELS: Final = frozenset({"B-B", "B-T", "B-LT", "B-LTA"})
_LT: Final = frozenset({"B-LT", "B-LTA"})

_REVINFO_REUSE: Final = timedelta(seconds=60)
"""Default for how long one signer reuses fetched OCSP responses and CRLs (never past their
nextUpdate). Short: a revocation published meanwhile is seen within this window."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SealFacts:
    """The facts about a new signature (what :meth:`PadesSigner.sign_stream` returns)."""

    level: str
    """PAdES level produced, e.g. ``"B-B"``."""
    signed_at: datetime
    """Signing time as embedded in the signature (aware, UTC, whole seconds)."""
    signer_subject: str
    """Subject of the signing certificate, RFC 4514."""
    certificate_sha256: str
    """Lower-case hex SHA-256 of the signing certificate's DER."""


@dataclass(frozen=True)
class SignedPdf:
    """A sealed document and the facts about its new signature."""

    pdf: bytes
    level: str
    """PAdES level produced, e.g. ``"B-B"``."""
    signed_at: datetime
    """Signing time as embedded in the signature (aware, UTC, whole seconds)."""
    signer_subject: str
    """Subject of the signing certificate, RFC 4514."""
    certificate_sha256: str
    """Lower-case hex SHA-256 of the signing certificate's DER."""


class PadesSigner:
    """Seals PDFs according to a :class:`~signing.policy.SigningPolicy` with one key.

    Opens ``keys`` once on construction and keeps the signer until :meth:`close`.
    ``trust_roots`` (DER) anchor the revocation-data collection of B-LT and B-LTA; fetched
    OCSP responses and CRLs are reused for ``revinfo_reuse`` (and never past nextUpdate).

    Raises:
        KeySourceError: on construction, if the key source cannot be opened.
        ValueError: on construction, for B-LT/B-LTA without trust roots or a bad root.
    """

    def __init__(
        self,
        policy: SigningPolicy,
        keys: KeySource,
        *,
        clock: Callable[[], datetime] = _utc_now,
        trust_roots: Sequence[bytes] = (),
        revinfo_reuse: timedelta = _REVINFO_REUSE,
    ) -> None:
        if policy.level not in _PRODUCIBLE_LEVELS:
            raise ValueError(f"PadesSigner cannot produce PAdES level {policy.level!r} yet")
        if policy.level in ("B-LT", "B-LTA") and not trust_roots:
            raise ValueError(f"PAdES level {policy.level} needs trust_roots")
        self._policy = policy
        roots = tuple(load_root(i, der) for i, der in enumerate(trust_roots))
        # Started on first use above B-B, so a signer built before a fork has no thread yet.
        self._network = SignerNetwork(policy.tsa_url, roots, revinfo_reuse)
        self._clock = clock
        self._stack = ExitStack()
        self._signer: Any = self._stack.enter_context(keys.open_signer())
        if self._signer.signing_cert is None:
            self._stack.close()
            raise KeySourceError(keys.name, "the signer has no certificate")
        cert_der: bytes = self._signer.signing_cert.dump()
        self._signer_subject = x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()
        self._certificate_sha256 = hashlib.sha256(cert_der).hexdigest()
        self._bytes_reserved: int | None = None  # measured on first use (needs an event loop)
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> PadesSigner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the key. Idempotent; :meth:`sign` fails afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._network.close()
        finally:
            self._stack.close()

    @property
    def revinfo_contexts_built(self) -> int:
        """Validation contexts made so far (each one fetches OCSP/CRLs anew); B-LT/B-LTA."""
        return self._network.revinfo_contexts_built

    def sign(self, pdf: bytes) -> SignedPdf:
        """Return ``pdf`` with a new PAdES signature appended as an incremental update.

        The new signature field is named ``policy.field_name``, or ``<name>-2``, ``-3``, ...
        when a field of that name exists already; existing fields are never filled.

        Raises:
            UnreadablePdfError: the input is not a PDF pyHanko can read, is encrypted, or
                is certified with a DocMDP level that forbids changes.
            SignatureFailedError: the signature could not be produced, or the signer is
                closed, or the clock returned a naive datetime.
            RuntimeError: when called from a thread with a running asyncio event loop.
        """
        # The input buffer is shared, not copied (BytesIO over bytes is copy-on-write), and
        # pyHanko hashes a BytesIO output through a memoryview: input + output, no more.
        output = io.BytesIO()
        facts = self.sign_stream(io.BytesIO(pdf), output)
        return SignedPdf(
            pdf=output.getvalue(),
            level=facts.level,
            signed_at=facts.signed_at,
            signer_subject=facts.signer_subject,
            certificate_sha256=facts.certificate_sha256,
        )

    def sign_stream(self, source: BinaryIO, output: BinaryIO) -> SealFacts:
        """Write ``source`` with a new PAdES signature appended to ``output``.

        ``source`` must be readable and seekable (a file opened ``"rb"``, a BytesIO); it is
        read, never written. ``output`` must be empty, readable, writable and seekable (a
        file opened ``"w+b"``, a ``tempfile.SpooledTemporaryFile``): pyHanko fills in the
        byte range and the signature after writing. Memory use does not grow with the file
        size when both are file-backed. On any error ``output`` is truncated to empty, so no
        half-signed document is left behind. Neither stream is closed.

        Raises:
            ValueError: ``output`` is not empty or lacks read, write or seek support.
            UnreadablePdfError, SignatureFailedError, RuntimeError: as for :meth:`sign`.
        """
        _refuse_running_loop()
        _check_output(output)
        with self._lock:
            if self._closed:
                raise SignatureFailedError("the signer is closed")
        signed_at = self._signing_time()
        writer, field_name = _open_for_signing(source, self._policy.field_name, signed_at)
        work = self._sign_async(field_name, writer, output, signed_at)
        try:
            if self._policy.level == "B-B":
                asyncio.run(work)  # no network: a private loop is cheaper than a hop
            else:
                self._network.run(work)
        except BaseException as exc:
            work.close()  # no-op once it ran; else no "never awaited" warning
            output.seek(0)
            output.truncate()
            if isinstance(exc, PdfError):  # surfaced lazily while writing the update
                raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
            if isinstance(exc, Exception):  # pyHanko, asn1crypto, key backends: foreign
                raise SignatureFailedError(f"{type(exc).__name__}: {exc}") from exc
            raise
        return SealFacts(
            level=self._policy.level,
            signed_at=signed_at,
            signer_subject=self._signer_subject,
            certificate_sha256=self._certificate_sha256,
        )

    async def _sign_async(
        self,
        field_name: str,
        writer: IncrementalPdfFileWriter,
        output: BinaryIO,
        signed_at: datetime,
    ) -> None:
        level = self._policy.level
        context: Any = None
        timestamper: Any = None
        if level != "B-B":
            timestamper = self._network.timestamper()
        if level in _LT:
            context = self._network.revinfo().context()
        meta = PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm=self._policy.digest,
            subfilter=SigSeedSubFilter.PADES,
            reason=self._policy.reason,
            location=self._policy.location,
            # B-LT/B-LTA revisions are ours (below): pyHanko's would use a plain writer.
            embed_validation_info=False,
        )
        pdf_signer = _ClockedPdfSigner(
            meta, self._signer, signing_time=signed_at, timestamper=timestamper
        )
        try:
            if context is not None:
                # As pyHanko's pre-sign validation did: refuse before using the key when the
                # signer's chain does not validate (e.g. revoked); fills the context's cache.
                await CertificateValidator(
                    self._signer.signing_cert,
                    intermediate_certs=list(self._signer.cert_registry),
                    validation_context=context,
                ).async_validate_usage(set())  # type: ignore[no-untyped-call]
            if level == "B-B":
                if self._bytes_reserved is None:
                    # Benign race: concurrent first calls measure the same value.
                    self._bytes_reserved = await self._measure_reserve(signed_at)
                await pdf_signer.async_sign_pdf(
                    writer, bytes_reserved=self._bytes_reserved, output=output, chunk_size=_IO_CHUNK
                )
            else:
                # The time-stamp token's size is the TSA's business: let pyHanko estimate
                # (its dry run reuses the time-stamper's cached dummy response).
                await pdf_signer.async_sign_pdf(writer, output=output, chunk_size=_IO_CHUNK)
            if context is not None:
                await self._add_long_term_data(output, field_name, context, timestamper, signed_at)
        except BaseException:
            if context is not None:
                self._network.revinfo().discard(context)
            raise

    async def _add_long_term_data(
        self,
        output: BinaryIO,
        field_name: str,
        context: Any,
        timestamper: Any,
        signed_at: datetime,
    ) -> None:
        """Append the B-LT revision (DSS for the new signature and its time-stamp), and for
        B-LTA the document time-stamp, through :class:`ArchivalWriter` so every revision
        keeps ``/Info`` and XMP in step (PDF/A). All carry the signing time."""

        def ours(reader: Any) -> Any:
            return next(s for s in reader.embedded_regular_signatures if s.field_name == field_name)

        if self._policy.level == "B-LTA":
            await append_document_timestamp(
                output,
                timestamper,
                context,
                modified_at=signed_at,
                digest=self._policy.digest,
                validate_first=ours,
                chunk_size=_IO_CHUNK,
            )
        else:
            await append_validation_data(output, context, modified_at=signed_at, pick=ours)

    async def _measure_reserve(self, signed_at: datetime) -> int:
        """Hex digits to reserve for the CMS container, built once as pyHanko's dry run."""
        digest = hashlib.new(self._policy.digest, b"").digest()
        container = await self._signer.async_sign(
            digest,
            self._policy.digest,
            dry_run=True,
            use_pades=True,
            signed_attr_settings=PdfCMSSignedAttributes(signing_time=signed_at),
        )
        return 2 * len(container.dump()) + _RESERVE_MARGIN_HEX

    def _signing_time(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise SignatureFailedError("the clock returned a naive datetime")
        # CMS signingTime and the PDF /M entry have one-second resolution.
        return now.astimezone(UTC).replace(microsecond=0)


class _ClockedPdfSigner(PdfSigner):
    """PdfSigner whose signing session uses our clock instead of the local wall clock."""

    def __init__(
        self, meta: Any, signer: Any, *, signing_time: datetime, timestamper: Any = None
    ) -> None:
        super().__init__(meta, signer, timestamper=timestamper)
        self._signing_time = signing_time

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._signing_time
        return session


def _check_output(output: BinaryIO) -> None:
    if not (output.readable() and output.writable() and output.seekable()):
        raise ValueError("the output stream must be readable, writable and seekable")
    if output.seek(0, io.SEEK_END) != 0:
        raise ValueError("the output stream must be empty")


def _open_for_signing(
    pdf: BinaryIO, wanted_field: str, signed_at: datetime
) -> tuple[IncrementalPdfFileWriter, str]:
    """Parse ``pdf`` for an incremental update and pick a free field name.

    Everything pyHanko touches while signing (trailer, catalog, AcroForm, DocMDP) is
    resolved here, so parse failures are reported as :class:`UnreadablePdfError`.
    """
    try:
        writer = ArchivalWriter(pdf, modified_at=signed_at)  # PDF/A: /Info agrees with XMP
        writer.IO_CHUNK_SIZE = _IO_CHUNK
        if writer.prev.encrypted:
            raise UnreadablePdfError("the document is encrypted")
        certification = read_certification_data(writer.prev)
        taken = _top_level_field_names(writer)
        _ = writer.root["/Pages"]  # the new widget goes on a page
    except UnreadablePdfError:
        raise
    except Exception as exc:  # hostile input makes parsers fail in arbitrary ways
        raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise UnreadablePdfError("a certification signature forbids any change")
    return writer, _free_field_name(wanted_field, taken)


def _top_level_field_names(writer: IncrementalPdfFileWriter) -> set[str]:
    form = writer.root.get("/AcroForm")
    if form is None:
        return set()
    names: set[str] = set()
    for ref in form.get_object().get("/Fields", ()):
        name = ref.get_object().get("/T")
        if name is not None:
            names.add(str(name))
    return names


def _free_field_name(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    for suffix in range(2, _MAX_FIELD_SUFFIX):
        candidate = f"{wanted}-{suffix}"
        if candidate not in taken:
            return candidate
    raise UnreadablePdfError(f"too many signature fields named {wanted!r}")


def _refuse_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "signing uses asyncio.run() and cannot run inside an event loop; "
        "call it from a worker thread (e.g. run_in_threadpool) or a process"
    )
