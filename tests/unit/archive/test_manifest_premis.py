"""The manifest's PREMIS part: read from storage, checked against the root METS and parsed
only when ``original_sha256``, ``signature`` or ``events`` is first used (a download needs
none of them); a package about to be stored is checked in full at once."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable
from typing import Any

import pytest

import archive.reader
from archive import layout
from archive.errors import HostileXmlError, IntegrityError, InvalidPackageError
from archive.model import AipManifest, BuiltPackage, PackageInput
from archive.premis import PremisRecord
from archive.reader import assemble_manifest, read_manifest, read_root
from archive.storage.fs import FsStorage
from archive.store import AipStore

PDF = "representations/rep1/data/document.pdf"
NOT_PREMIS = b"<?xml version='1.0' encoding='UTF-8'?>\n<other/>\n"


@pytest.fixture
def premis_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids whose PREMIS the reader parses, in order."""
    parsed: list[str] = []
    real: Callable[..., PremisRecord] = archive.reader.read_premis

    def counting(data: bytes, *, aip_id: str) -> PremisRecord:
        parsed.append(aip_id)
        return real(data, aip_id=aip_id)

    monkeypatch.setattr(archive.reader, "read_premis", counting)
    return parsed


def test_a_download_does_not_parse_the_premis(
    store: AipStore, pkg: BuiltPackage, premis_parses: list[str]
) -> None:
    store.commit(pkg)
    premis_parses.clear()
    manifest = store.manifest(pkg.aip_id)
    with store.open_file(pkg.aip_id, manifest.pdf_path, manifest=manifest) as handle:
        assert handle.read() == pkg.files[PDF]
    assert manifest.metadata.owner_id  # the descriptive metadata is parsed at once
    assert premis_parses == []


def test_the_premis_part_is_parsed_once_on_first_use(
    store: AipStore, pkg: BuiltPackage, inp: PackageInput, premis_parses: list[str]
) -> None:
    store.commit(pkg)
    premis_parses.clear()
    manifest = store.manifest(pkg.aip_id)
    assert manifest.signature == inp.signature
    assert manifest.original_sha256 == inp.original_sha256
    assert manifest.events == inp.events
    assert premis_parses == [pkg.aip_id]


@pytest.fixture
def premis_reads(store: AipStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the PREMIS files the store reads, in order."""
    reads: list[str] = []
    real = store._read_small

    def counting(key: str) -> bytes:
        if key.endswith(layout.PREMIS_PATH):
            reads.append(key)
        return real(key)

    monkeypatch.setattr(store, "_read_small", counting)
    return reads


def test_a_download_does_not_even_read_the_premis(
    store: AipStore, pkg: BuiltPackage, premis_reads: list[str]
) -> None:
    store.commit(pkg)
    manifest = store.manifest(pkg.aip_id)
    with store.open_file(pkg.aip_id, manifest.pdf_path, manifest=manifest) as handle:
        handle.read()
    assert premis_reads == []
    _ = manifest.events
    _ = manifest.signature
    assert premis_reads == [layout.aip_key(pkg.aip_id, layout.PREMIS_PATH)]


def _damage(fs: FsStorage, pkg: BuiltPackage) -> None:
    path = fs.root / layout.aip_key(pkg.aip_id, layout.PREMIS_PATH)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # same size, other bytes
    path.write_bytes(bytes(data))


def test_damaged_premis_bytes_fail_the_first_use_and_fixity(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    _damage(fs, pkg)
    manifest = store.manifest(pkg.aip_id)
    with store.open_file(pkg.aip_id, manifest.pdf_path, manifest=manifest) as handle:
        assert handle.read() == pkg.files[PDF]  # the PDF itself is intact
    with pytest.raises(IntegrityError):
        _ = manifest.signature
    with pytest.raises(IntegrityError):  # not cached as if it had worked
        _ = manifest.events
    assert layout.PREMIS_PATH in {f.path for f in store.verify(pkg.aip_id).problems}


def test_a_missing_premis_fails_the_first_use(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    (fs.root / layout.aip_key(pkg.aip_id, layout.PREMIS_PATH)).unlink()
    manifest = store.manifest(pkg.aip_id)
    with pytest.raises(InvalidPackageError, match="listed but missing"):
        _ = manifest.original_sha256


def _listing(pkg: BuiltPackage, premis: bytes) -> dict[str, Any]:
    """A root METS of ``pkg`` (parsed) that lists ``premis`` as its PREMIS file."""
    root = read_root(pkg.aip_id, pkg.root_mets)
    entry = dataclasses.replace(
        root.premis, size=len(premis), sha256=hashlib.sha256(premis).hexdigest()
    )
    return {
        "aip_id": pkg.aip_id,
        "root": dataclasses.replace(root, premis=entry),
        "root_mets_sha256": "0" * 64,
        "descriptive": pkg.files[layout.DESCRIPTIVE_PATH],
        "premis": premis,
    }


@pytest.mark.parametrize(
    ("premis", "error"),
    [(NOT_PREMIS, InvalidPackageError), (b"<premis", HostileXmlError)],
)
def test_listed_but_unusable_premis_fails_at_first_use(
    pkg: BuiltPackage, premis: bytes, error: type[Exception]
) -> None:
    manifest = assemble_manifest(**_listing(pkg, premis))
    assert manifest.pdf.path == PDF  # what a download needs works
    with pytest.raises(error):
        _ = manifest.signature
    with pytest.raises(error):  # not cached as if it had worked
        _ = manifest.events


def test_read_manifest_parses_everything_at_once(pkg: BuiltPackage) -> None:
    # commit checks a package with it before storing anything: nothing is left for later
    listed = read_root(pkg.aip_id, pkg.root_mets).premis
    root_mets = pkg.root_mets.replace(
        listed.sha256.encode(), hashlib.sha256(NOT_PREMIS).hexdigest().encode()
    )
    root_mets = re.sub(
        rb'(xlink:href="metadata/preservation/premis.xml" MIMETYPE="[^"]*" SIZE=")[0-9]+',
        rb"\g<1>" + str(len(NOT_PREMIS)).encode(),
        root_mets,
    )
    assert read_root(pkg.aip_id, root_mets).premis.size == len(NOT_PREMIS)
    with pytest.raises(InvalidPackageError):
        read_manifest(
            pkg.aip_id,
            root_mets,
            descriptive=pkg.files[layout.DESCRIPTIVE_PATH],
            premis=NOT_PREMIS,
        )


def test_manifests_compare_by_their_premis_part_too(
    store: AipStore, pkg: BuiltPackage, inp: PackageInput
) -> None:
    committed = store.commit(pkg)
    read = store.manifest(pkg.aip_id)
    assert read == committed  # deferred on one side, parsed on the other
    other = AipManifest(
        aip_id=read.aip_id,
        metadata=read.metadata,
        files=read.files,
        pdf_path=read.pdf_path,
        text_path=read.text_path,
        created_at=read.created_at,
        root_mets_sha256=read.root_mets_sha256,
        previous_aip_id=read.previous_aip_id,
        original_sha256="ff" * 32,
        signature=inp.signature,
        events=inp.events,
    )
    assert other != read


def test_a_manifest_takes_the_premis_values_or_a_parser_not_both(
    store: AipStore, pkg: BuiltPackage, inp: PackageInput
) -> None:
    store.commit(pkg)
    read = store.manifest(pkg.aip_id)
    head: dict[str, Any] = {
        "aip_id": read.aip_id,
        "metadata": read.metadata,
        "files": read.files,
        "pdf_path": read.pdf_path,
        "text_path": read.text_path,
        "created_at": read.created_at,
    }
    with pytest.raises(TypeError):
        AipManifest(**head)
    with pytest.raises(TypeError):
        AipManifest(**head, signature=inp.signature, preservation=lambda: read.preservation)
