"""Export a document for transfer to the receiving archive before it is deleted here.

The export is a POSIX tar holding every version's complete E-ARK AIP as stored (root METS,
representations, metadata, schemas), each version under ``<document id>/<aip id>/``, in
version order, with fixed owner and time fields so the same document always exports to the
same bytes. It is stored under ``exports/<proposal id>/<document id>.tar`` with a
conditional create: a resumed execution finds it there and does not export twice.

The receiving archive gets the packages exactly as Kluis archived them, so their own root
METS checksums prove they are unchanged.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from archive import layout
from archive.errors import ObjectExistsError
from archive.storage.base import Storage, check_key

__all__ = ["EXPORTS_PREFIX", "Export", "export_document", "export_key"]

EXPORTS_PREFIX = "exports/"


@dataclass(frozen=True)
class Export:
    key: str
    sha256: str
    size: int


def export_key(proposal_id: str, document_id: str) -> str:
    """Raises: InvalidKeyError."""
    return check_key(f"{EXPORTS_PREFIX}{proposal_id}/{document_id}.tar")


def export_document(
    storage: Storage, proposal_id: str, document_id: str, aip_ids: Sequence[str]
) -> Export:
    """Store the transfer package of the document's versions ``aip_ids`` (oldest first).

    Idempotent: when the export exists already it is returned as stored.

    Raises:
        ObjectNotFoundError: a version's root METS is missing (not committed any more).
        InvalidKeyError, StorageUnavailableError.
    """
    key = export_key(proposal_id, document_id)
    if storage.exists(key):
        stored = storage.stat(key)
        return Export(key, stored.sha256, stored.size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for aip_id in aip_ids:
            storage.stat(layout.aip_key(aip_id, layout.ROOT_METS))  # committed, or raise
            for object_key in storage.keys(layout.aip_prefix(aip_id)):
                with storage.open(object_key) as stream:
                    data = stream.read()
                path = object_key.removeprefix(layout.aip_prefix(aip_id))
                info = tarfile.TarInfo(f"{document_id}/{aip_id}/{path}")
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    try:
        storage.put(key, io.BytesIO(data), size=len(data), sha256=digest, if_absent=True)
    except ObjectExistsError:
        stored = storage.stat(key)
        return Export(key, stored.sha256, stored.size)
    return Export(key, digest, len(data))
