"""The package's index file (``archive.index_file``): written by ``build_aip``, trusted by a
reader only when the root METS declares it as it is, and equal to the full read path."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from archive import layout
from archive.descriptive import read_descriptive
from archive.errors import IntegrityError, PackageNotFoundError
from archive.index_file import read_index_file
from archive.mets import index_file_declaration, read_root_mets
from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from tests.support.eark import make_input
from tests.support.legacy_packages import without_index_file

INDEX = layout.INDEX_FILE_PATH


def _variants() -> list[PackageInput]:
    base = make_input()
    meta = base.metadata
    return [
        base,
        dataclasses.replace(
            base,
            metadata=dataclasses.replace(
                meta,
                owner_kind="enterprise",
                owner_id="0417497106",
                retention_until=None,
                title='Titel met "aanhalingstekens", <tags>, & \r\n regels en \u00e9\u00eb',
            ),
        ),
        dataclasses.replace(  # a selection-list rule: dc.xml fills defaults when read back
            base,
            metadata=dataclasses.replace(
                meta, retention_list_version="2025.1", retention_until=date(2040, 1, 1)
            ),
        ),
        dataclasses.replace(base, pdf_name="scan-2024.PDF", text="één regel\n"),
        dataclasses.replace(base, previous_aip_id="5b0c3a52-6a8e-4a8f-9a43-0d7f3f0e2b11"),
    ]


@pytest.mark.parametrize("inp", _variants())
def test_index_file_says_what_the_full_read_path_says(inp: PackageInput) -> None:
    pkg = build_aip(inp)
    found = read_index_file(pkg.aip_id, pkg.files[INDEX], pkg.root_mets)
    assert found is not None
    root = read_root_mets(pkg.root_mets, aip_id=pkg.aip_id)
    dc = pkg.files[layout.DESCRIPTIVE_PATH]
    assert found.metadata == read_descriptive(dc, aip_id=pkg.aip_id)
    assert found.created_at == root.created_at
    text_path = root.representations[layout.REP_TEXT][0]
    assert found.text == next(f for f in root.files if f.path == text_path)
    assert INDEX in {f.path for f in root.files}  # listed, so fixity checks it


def test_the_declaration_is_the_writers_own_bytes(pkg: BuiltPackage) -> None:
    root = read_root_mets(pkg.root_mets, aip_id=pkg.aip_id)
    entry = next(f for f in root.files if f.path == INDEX)
    assert pkg.root_mets.count(index_file_declaration(entry, root.created_at)) == 1


def _rejected(pkg: BuiltPackage, *, data: bytes | None = None, root: bytes | None = None) -> bool:
    found = read_index_file(
        pkg.aip_id,
        pkg.files[INDEX] if data is None else data,
        pkg.root_mets if root is None else root,
    )
    return found is None


def test_only_the_declared_bytes_are_trusted(pkg: BuiltPackage) -> None:
    data, root = pkg.files[INDEX], pkg.root_mets
    assert not _rejected(pkg)
    assert _rejected(pkg, data=data.replace(b"85073003328", b"85073003329"))  # other owner
    assert _rejected(pkg, data=data + b" ")
    assert _rejected(pkg, data=b"not json")
    assert _rejected(pkg, data=b"[]")
    assert read_index_file("0e4f5a7c-0000-4000-8000-000000000000", data, root) is None


def test_a_declaration_that_is_not_markup_is_not_trusted(pkg: BuiltPackage) -> None:
    root = pkg.root_mets
    head, sep, tail = root.partition(b'<mets:mdRef ID="mdref-metadata_descriptive_index.json"')
    assert sep
    commented = head + b"<!-- " + sep + tail.replace(b"/>", b"/> -->", 1)
    assert _rejected(pkg, root=commented)
    assert _rejected(pkg, root=root.replace(b"<mets:amdSec", b"<?pi x?><mets:amdSec", 1))
    # a second mention of the path (another element) makes the declaration ambiguous
    twice = root.replace(
        b"</mets:dmdSec>", b'<x y="metadata/descriptive/index.json"/></mets:dmdSec>', 1
    )
    assert _rejected(pkg, root=twice)


def test_a_package_from_before_index_files_is_not_read_from_one(pkg: BuiltPackage) -> None:
    old = without_index_file(pkg)
    assert _rejected(pkg, root=old.root_mets)


def test_store_reads_the_same_record_either_way(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    fast = store.index_record(pkg.aip_id)
    (fs.root / f"aips/{pkg.aip_id}/{INDEX}").unlink()  # damaged: the full path is taken
    assert store.index_record(pkg.aip_id) == fast


def test_store_reads_old_packages_the_full_way(
    store: AipStore, pkg: BuiltPackage, inp: PackageInput
) -> None:
    old = without_index_file(pkg)
    read_root_mets(old.root_mets, aip_id=old.aip_id)  # still a valid root METS
    store.commit(old)
    record = store.index_record(old.aip_id)
    assert record.metadata == inp.metadata
    assert record.created_at == inp.created_at
    assert store.verify(old.aip_id).ok


def test_store_trusts_neither_a_damaged_index_file_nor_a_damaged_text(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, inp: PackageInput
) -> None:
    store.commit(pkg)
    index = fs.root / f"aips/{pkg.aip_id}/{INDEX}"
    index.write_bytes(index.read_bytes().replace(b"85073003328", b"85073003329"))
    assert store.index_record(pkg.aip_id).metadata.owner_id == "85073003328"  # from dc.xml
    (fs.root / f"aips/{pkg.aip_id}/{layout.DESCRIPTIVE_PATH}").write_bytes(b"<forged/>")
    with pytest.raises(IntegrityError):  # neither file is what the root METS lists
        store.index_record(pkg.aip_id)
    assert not store.verify(pkg.aip_id).ok


def test_an_uncommitted_package_stays_invisible(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    (fs.root / f"aips/{pkg.aip_id}/{layout.ROOT_METS}").unlink()
    with pytest.raises(PackageNotFoundError):
        store.index_record(pkg.aip_id)
