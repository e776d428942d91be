"""An incremental writer whose metadata update keeps a PDF/A document conformant.

Why: on every incremental update pyHanko 0.38 sets the modification date and producer in
both the document information dictionary and the XMP packet, but (a) it reads the clock
separately for each, so the two dates can differ by a second, and (b) it *appends* itself to
``/Info /Producer`` ("Agency DMS; pyHanko 0.38.0") while it *replaces* ``pdf:Producer`` in
XMP ("pyHanko 0.38.0"). PDF/A (ISO 19005-1 6.7.3, 19005-2/3 6.6.2.3) requires every
``/Info`` entry to agree with its XMP equivalent, so a signed PDF/A file would fail
validation. Here both get one instant (our signing time) and one producer string.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR, DocumentMetadata
from pyhanko.pdf_utils.metadata.xmp_xml import MetadataStream

__all__ = ["ArchivalWriter"]


class ArchivalWriter(IncrementalPdfFileWriter):
    """``IncrementalPdfFileWriter(stream, strict=False)`` with consistent metadata."""

    def __init__(self, stream: BinaryIO, *, modified_at: datetime) -> None:
        super().__init__(stream, strict=False)
        self._modified_at = modified_at

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
