"""Read a package's manifest back from its root METS, descriptive metadata and PREMIS.

Pure functions over bytes (no I/O): :class:`archive.store.AipStore` fetches the bytes, tests
feed them straight from :func:`archive.package.build_aip`.

Invariants: every metadata file is checked against the SHA-256 the root METS lists for it
before it is trusted; the root METS's ``OBJID`` must name the requested package; all XML goes
through the hardened parser. ``read_manifest(build_aip(inp))`` reproduces ``inp``'s metadata,
signature, original hash, creation time and events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial

from archive import layout
from archive.descriptive import read_descriptive
from archive.errors import IntegrityError, InvalidPackageError
from archive.mets import RootMets, read_root_mets
from archive.model import AipManifest, FileEntry, Preservation
from archive.premis import read_premis

__all__ = ["assemble_manifest", "check_bytes", "read_manifest", "read_root"]


def read_root(aip_id: str, root_mets: bytes) -> RootMets:
    """Parse a root METS and check that it belongs to ``aip_id``.

    Raises:
        HostileXmlError: the bytes are not safe, well-formed XML.
        InvalidPackageError: not a Kluis root METS, or one of another package.
    """
    root = read_root_mets(root_mets, aip_id=aip_id)
    if root.obj_id != f"urn:uuid:{aip_id}":
        raise InvalidPackageError(aip_id, f"root METS OBJID is {root.obj_id!r}")
    for rep in (layout.REP_PDF, layout.REP_TEXT):
        if len(root.representations.get(rep, ())) != 1:
            raise InvalidPackageError(aip_id, f"representation {rep} must hold exactly one file")
    return root


def check_bytes(aip_id: str, entry: FileEntry, data: bytes) -> bytes:
    """Return ``data`` if it matches ``entry``'s size and SHA-256.

    Raises:
        IntegrityError: it does not.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256 or len(data) != entry.size:
        raise IntegrityError(layout.aip_key(aip_id, entry.path), entry.sha256, actual)
    return data


def read_manifest(
    aip_id: str, root_mets: bytes, *, descriptive: bytes, premis: bytes
) -> AipManifest:
    """Assemble the manifest of package ``aip_id`` from its three metadata documents, all
    parsed now (a package about to be stored is checked in full).

    Raises:
        HostileXmlError: a document is not safe, well-formed XML.
        InvalidPackageError: a document is not what a Kluis package holds.
        IntegrityError: the descriptive or PREMIS bytes differ from what the root METS lists.
    """
    root = read_root(aip_id, root_mets)
    manifest = assemble_manifest(
        aip_id,
        root,
        root_mets_sha256=hashlib.sha256(root_mets).hexdigest(),
        descriptive=descriptive,
        premis=premis,
    )
    manifest.preservation  # noqa: B018  (parse the PREMIS now: its errors are raised here)
    return manifest


def assemble_manifest(
    aip_id: str,
    root: RootMets,
    *,
    root_mets_sha256: str,
    descriptive: bytes,
    premis: bytes | Callable[[], bytes],
) -> AipManifest:
    """:func:`read_manifest` for a root METS already parsed by :func:`read_root` (a package
    read parses it once). The descriptive bytes are checked against the root METS now.

    ``premis``: the PREMIS bytes, checked now, or a function that reads them (a package read
    from storage: a download needs no PREMIS, so the file is read, checked and parsed on the
    first use of the manifest's PREMIS part; see :class:`AipManifest`).

    Raises:
        HostileXmlError, InvalidPackageError: the descriptive metadata is not a Kluis one.
        IntegrityError: the descriptive bytes, or PREMIS bytes given, differ from what the
            root METS lists.
    """
    meta = read_descriptive(check_bytes(aip_id, root.descriptive, descriptive), aip_id=aip_id)
    if isinstance(premis, bytes):
        check_bytes(aip_id, root.premis, premis)
    return AipManifest(
        aip_id=aip_id,
        metadata=meta,
        files=root.files,
        pdf_path=root.representations[layout.REP_PDF][0],
        text_path=root.representations[layout.REP_TEXT][0],
        created_at=root.created_at,
        root_mets_sha256=root_mets_sha256,
        previous_aip_id=root.previous_aip_id,
        preservation=partial(_read_preservation, aip_id, root.premis, premis),
    )


def _read_preservation(
    aip_id: str, listed: FileEntry, premis: bytes | Callable[[], bytes]
) -> Preservation:
    """The manifest's PREMIS part from its bytes (read now if given as a function), checked
    against what the root METS lists.

    Raises:
        HostileXmlError, InvalidPackageError, IntegrityError; from the read: its errors.
    """
    data = premis if isinstance(premis, bytes) else premis()
    record = read_premis(check_bytes(aip_id, listed, data), aip_id=aip_id)
    return Preservation(record.original_sha256, record.signature, record.events)
