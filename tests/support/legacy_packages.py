"""Packages as Kluis wrote them before a layout addition, for tests of the readers' fallbacks."""

from __future__ import annotations

from archive import layout
from archive.model import BuiltPackage


def without_index_file(pkg: BuiltPackage) -> BuiltPackage:
    """``pkg`` as ``build_aip`` wrote it before index files (``archive.index_file``) existed:
    no ``metadata/descriptive/index.json``, no ``dmdSec`` for it; every other byte the same."""
    root = pkg.root_mets
    start = root.index(b'  <mets:dmdSec ID="dmd-index"')
    end = root.index(b"</mets:dmdSec>\n", start) + len(b"</mets:dmdSec>\n")
    root = root[:start] + root[end:]
    root = root.replace(b'DMDID="dmd-descriptive dmd-index"', b'DMDID="dmd-descriptive"')
    files = {p: b for p, b in pkg.files.items() if p != layout.INDEX_FILE_PATH}
    return BuiltPackage(aip_id=pkg.aip_id, files=files, root_mets=root)
