"""AipStore reads: one root METS parse per package read, content checked while streamed,
and the one-level listing of package ids."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

import pytest

from archive import layout
from archive.errors import (
    IntegrityError,
    InvalidPackageError,
    ObjectNotFoundError,
    PackageNotFoundError,
)
from archive.model import BuiltPackage
from archive.package import build_aip
from archive.storage.base import ListsChildren
from archive.storage.fs import FsStorage
from archive.store import AipStore, _read_at_most
from tests.support.eark import make_input
from tests.support.pdfs import make_pdf

OTHER_ID = "0b7d1f0e-3c2a-4e59-9d84-1a2b3c4d5e6f"
PDF = "representations/rep1/data/document.pdf"


class CountingFs(FsStorage):
    """Real fs storage that counts which keys are opened."""

    opened: list[str]

    def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        self.opened.append(key)
        return super().open(key, offset=offset, length=length)


@pytest.fixture
def counting(fs: FsStorage) -> Iterator[CountingFs]:
    storage = CountingFs(fs.root)
    storage.opened = []
    yield storage
    storage.close()


def test_a_download_reads_the_root_mets_once(counting: CountingFs, pkg: BuiltPackage) -> None:
    store = AipStore(counting)
    store.commit(pkg)
    counting.opened.clear()
    manifest = store.manifest(pkg.aip_id)
    with store.open_file(pkg.aip_id, manifest.pdf_path, manifest=manifest) as handle:
        assert handle.read() == pkg.files[PDF]
    root_key = layout.aip_key(pkg.aip_id, layout.ROOT_METS)
    assert counting.opened.count(root_key) == 1
    assert counting.opened[-1] == layout.aip_key(pkg.aip_id, PDF)


def test_open_file_with_a_manifest_serves_the_same_bytes(
    store: AipStore, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    for path, data in pkg.files.items():
        with store.open_file(pkg.aip_id, path, manifest=manifest) as handle:
            assert handle.read() == data
        with store.open_file(pkg.aip_id, path) as handle:
            chunks = []
            while chunk := handle.read(7):
                chunks.append(chunk)
            assert b"".join(chunks) == data
    with store.open_pdf(pkg.aip_id, manifest=manifest) as handle:
        assert handle.read() == pkg.files[PDF]
    with store.open_file(pkg.aip_id, layout.ROOT_METS, manifest=manifest) as handle:
        assert handle.read() == pkg.root_mets


def test_open_file_refuses_another_packages_manifest(store: AipStore, pkg: BuiltPackage) -> None:
    other = build_aip(make_input(OTHER_ID))
    store.commit(pkg)
    store.commit(other)
    with pytest.raises(ValueError):
        store.open_file(pkg.aip_id, PDF, manifest=store.manifest(OTHER_ID))


def test_open_file_with_a_manifest_still_serves_only_listed_files(
    store: AipStore, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    with pytest.raises(ObjectNotFoundError):
        store.open_file(pkg.aip_id, "representations/rep1/data/other.pdf", manifest=manifest)


def _damage(fs: FsStorage, pkg: BuiltPackage, damage: str) -> bytes:
    """Damage the stored PDF of ``pkg`` as ``damage`` says; return its new bytes."""
    path = fs.root / "aips" / pkg.aip_id / PDF
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        del data[-1]
    else:
        data += b"\n"
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
@pytest.mark.parametrize("with_manifest", [True, False])
def test_a_damaged_streamed_file_fails_the_read_that_reaches_its_end(
    store: AipStore, fs: FsStorage, damage: str, with_manifest: bool
) -> None:
    # Larger than fs reads at once (64 KiB): streamed, checked while it is read.
    pkg = build_aip(make_input(signed_pdf=make_pdf(["big"], padding_bytes=200_000)))
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    data = _damage(fs, pkg, damage)
    given = manifest if with_manifest else None
    with store.open_file(pkg.aip_id, PDF, manifest=given) as handle, pytest.raises(IntegrityError):
        handle.read()
    with store.open_pdf(pkg.aip_id, manifest=given) as handle, pytest.raises(IntegrityError):
        while handle.read(64 * 1024):
            pass
    with store.open_file(pkg.aip_id, PDF, manifest=given) as handle:
        assert handle.read(3) == data[:3]  # a range of a streamed file is served unchecked


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend"])
@pytest.mark.parametrize("with_manifest", [True, False])
def test_a_damaged_small_file_is_refused_before_any_byte(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, damage: str, with_manifest: bool
) -> None:
    # fs hands a small object over whole, in memory: it is checked at once, ranges too.
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    _damage(fs, pkg, damage)
    given = manifest if with_manifest else None
    with pytest.raises(IntegrityError):
        store.open_file(pkg.aip_id, PDF, manifest=given)
    with pytest.raises(IntegrityError):
        store.open_pdf(pkg.aip_id, manifest=given)


def test_an_intact_small_file_is_served_whole_and_in_ranges(
    store: AipStore, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    with store.open_file(pkg.aip_id, PDF, manifest=manifest) as handle:
        assert handle.read(3) == pkg.files[PDF][:3]
        assert handle.read() == pkg.files[PDF][3:]


def test_a_missing_file_stays_an_error(store: AipStore, fs: FsStorage, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    (fs.root / "aips" / pkg.aip_id / PDF).unlink()
    with pytest.raises(ObjectNotFoundError):
        store.open_file(pkg.aip_id, PDF, manifest=manifest)
    with pytest.raises(ObjectNotFoundError):
        store.open_file(pkg.aip_id, PDF)
    with pytest.raises(PackageNotFoundError):
        store.open_file(OTHER_ID, PDF)


def test_fs_lists_one_level(fs: FsStorage, pkg: BuiltPackage) -> None:
    assert isinstance(fs, ListsChildren)
    AipStore(fs).commit(pkg)
    assert list(fs.children("aips/")) == [f"{pkg.aip_id}/"]
    assert list(fs.children(f"aips/{pkg.aip_id}/")) == [
        "METS.xml",
        "metadata/",
        "representations/",
        "schemas/",
    ]
    assert list(fs.children("nothing/")) == []
    assert list(fs.children(f"aips/{pkg.aip_id}/METS.xml/")) == []
    with pytest.raises(ValueError):
        list(fs.children("aips"))


def test_package_ids_from_one_level_equal_the_full_listing(store: AipStore, fs: FsStorage) -> None:
    ids = ["1" + OTHER_ID[1:], "f" + OTHER_ID[1:], OTHER_ID]
    for aip_id in ids:
        store.commit(build_aip(make_input(aip_id)))
    incomplete = build_aip(make_input("9" + OTHER_ID[1:]))
    store.commit(incomplete)
    (fs.root / "aips" / incomplete.aip_id / layout.ROOT_METS).unlink()  # not committed
    (fs.root / "aips" / "not a package id").mkdir()
    listed = [key.split("/") for key in fs.keys("aips/")]
    from_keys = [parts[1] for parts in listed if parts[2:] == [layout.ROOT_METS]]
    assert list(store.aip_ids()) == from_keys == sorted(ids)


def test_metadata_over_the_limit_is_refused(fs: FsStorage, pkg: BuiltPackage) -> None:
    AipStore(fs).commit(pkg)
    biggest = max(len(pkg.root_mets), *(len(d) for p, d in pkg.files.items() if "metadata" in p))
    assert AipStore(fs, max_metadata_bytes=biggest).manifest(pkg.aip_id).aip_id == pkg.aip_id
    with pytest.raises(InvalidPackageError, match="metadata larger than"):
        AipStore(fs, max_metadata_bytes=len(pkg.root_mets) - 1).manifest(pkg.aip_id)


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 200_000])
def test_bounded_reads_return_at_most_the_limit(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    assert _read_at_most(io.BytesIO(data), size + 1) == data
    assert _read_at_most(io.BytesIO(data), 70_000) == data[:70_000]
