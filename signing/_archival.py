"""Incremental updates whose metadata keeps a PDF/A document conformant, and the
long-term-validation revisions (DSS, document time-stamp) written through them.

Why: on every incremental update pyHanko 0.38 sets the modification date and producer in
both the document information dictionary and the XMP packet, but (a) it reads the clock
separately for each, so the two dates can differ by a second, and (b) it *appends* itself to
``/Info /Producer`` ("Agency DMS; pyHanko 0.38.0") while it *replaces* ``pdf:Producer`` in
XMP ("pyHanko 0.38.0"). PDF/A (ISO 19005-1 6.7.3, 19005-2/3 6.6.2.3) requires every
``/Info`` entry to agree with its XMP equivalent, so a signed PDF/A file would fail
validation. :class:`ArchivalWriter` gives both one instant and one producer string.

pyHanko's own long-term-validation helpers (``add_validation_info``, the B-LT/B-LTA steps
after ``sign_pdf``, ``PdfTimeStamper`` with a validation context, and
``update_archival_timestamp_chain``) open a plain ``IncrementalPdfFileWriter`` of their own,
out of our reach. So Kluis never calls them: :func:`append_validation_data` and
:func:`append_document_timestamp` build the same revisions from pyHanko's public parts
(``DocumentSecurityStore.supply_dss_in_writer``, ``CertificateValidator`` and
``PdfTimeStamper.async_timestamp_pdf`` on a writer we pass in), every one through an
:class:`ArchivalWriter`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR, DocumentMetadata
from pyhanko.pdf_utils.metadata.xmp_xml import MetadataStream
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.signers import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation import DocumentSecurityStore
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko_certvalidator import CertificateValidator, ValidationContext

__all__ = ["ArchivalWriter", "append_document_timestamp", "append_validation_data"]

PickSignature = Callable[[PdfFileReader], Any]
"""Chooses the embedded signature (``EmbeddedPdfSignature``) to add validation data for."""


class ArchivalWriter(IncrementalPdfFileWriter):
    """``IncrementalPdfFileWriter(stream, strict=False)`` with consistent metadata.

    ``modified_at`` (aware) becomes both ``/Info /ModDate`` (when the document has one) and
    ``xmp:ModifyDate``, truncated to whole seconds because the PDF date format has no
    fractions; ``/Info /Producer`` (when present) and ``pdf:Producer`` both become pyHanko's
    vendor string.
    """

    def __init__(self, stream: BinaryIO, *, modified_at: datetime) -> None:
        if modified_at.tzinfo is None or modified_at.utcoffset() is None:
            raise ValueError("modified_at must be timezone-aware")
        super().__init__(stream, strict=False)
        self._modified_at = modified_at.astimezone(UTC).replace(microsecond=0)

    def _update_meta(self) -> None:
        super()._update_meta()  # type: ignore[no-untyped-call]
        if self._info is None or "/Metadata" not in self.root:
            return
        meta: Any = self.root["/Metadata"]
        if not isinstance(meta, MetadataStream):
            return
        # Unmanaged: touch only the modification date and producer, keep every other field.
        meta.update_xmp_with_meta(
            DocumentMetadata(last_modified=self._modified_at, xmp_unmanaged=True)
        )
        self.update_container(meta)
        info = self._info.get_object()  # type: ignore[no-untyped-call]
        if "/ModDate" in info:
            info["/ModDate"] = generic.pdf_date(self._modified_at)
        if "/Producer" in info:
            info["/Producer"] = generic.TextStringObject(VENDOR)
        self.mark_update(self._info)


async def append_validation_data(
    stream: BinaryIO,
    context: ValidationContext,
    *,
    modified_at: datetime,
    pick: PickSignature,
) -> None:
    """Append one revision to ``stream`` (in place) with a DSS holding the certificates,
    OCSP responses and CRLs that validate the picked signature and its signature
    time-stamp(s), plus its VRI entry: what pyHanko's ``add_validation_info`` writes.

    ``stream`` must be readable, writable and seekable. Revocation data is fetched through
    ``context`` (cached there for later calls).

    Raises:
        Exception: whatever pyHanko or pyhanko-certvalidator raise (callers translate).
    """
    writer = ArchivalWriter(stream, modified_at=modified_at)
    signature = pick(writer.prev)
    paths = await _validation_paths(signature, context)
    DocumentSecurityStore.supply_dss_in_writer(
        writer,
        signature.pkcs7_content.hex().encode("ascii"),
        paths=paths,
        validation_context=context,
    )
    writer.write_in_place()  # type: ignore[no-untyped-call]


async def append_document_timestamp(
    stream: BinaryIO,
    timestamper: TimeStamper,
    context: ValidationContext,
    *,
    modified_at: datetime,
    digest: str,
    validate_first: PickSignature | None = None,
    chunk_size: int = 1024 * 1024,
) -> None:
    """Append a document time-stamp to ``stream`` (in place), then a DSS revision with the
    validation data of its TSA: what pyHanko's ``timestamp_pdf`` with a validation context
    writes.

    ``validate_first`` picks a signature whose validation data goes into the time-stamp's
    own revision, so the new time-stamp covers it (renewal: the previous time-stamp;
    B-LTA signing: the new signature, as pyHanko's default DSS placement does).

    Raises:
        Exception: whatever pyHanko, pyhanko-certvalidator or the TSA client raise.
    """
    writer = ArchivalWriter(stream, modified_at=modified_at)
    if validate_first is not None:
        covered = validate_first(writer.prev)
        DocumentSecurityStore.supply_dss_in_writer(
            writer,
            covered.pkcs7_content.hex().encode("ascii"),
            paths=await _validation_paths(covered, context),
            validation_context=context,
        )
    # No validation_context here: pyHanko would write the TSA's DSS with a writer of its own.
    writer.IO_CHUNK_SIZE = chunk_size
    await PdfTimeStamper(timestamper).async_timestamp_pdf(
        writer, digest, in_place=True, chunk_size=chunk_size
    )
    await append_validation_data(
        stream,
        context,
        modified_at=modified_at,
        pick=lambda reader: reader.embedded_timestamp_signatures[-1],
    )


async def _validation_paths(signature: Any, context: ValidationContext) -> list[Any]:
    """Validation paths (with their revocation data cached in ``context``) for the signer of
    ``signature`` and of each time-stamp token attached to it: pyHanko's
    ``collect_validation_info``, minus its warning about soft-fail contexts, which would
    be logged for every B-LT document."""
    paths = []
    for signed_data in (
        signature.signed_data,
        *extract_tst_data_iter(signature.signer_info, signed=False),
        *extract_tst_data_iter(signature.signer_info, signed=True),
    ):
        info = extract_certificate_info(signed_data)
        validator = CertificateValidator(
            info.signer_cert, intermediate_certs=info.other_certs, validation_context=context
        )
        paths.append(await validator.async_validate_usage(key_usage=set()))  # type: ignore[no-untyped-call]
    return paths
