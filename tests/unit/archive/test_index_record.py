"""``AipStore.index_record`` and ``document_ids``: the document-level reads of reindex."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from archive.errors import IntegrityError, PackageNotFoundError
from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore

V2_ID = "5b0c3a52-6a8e-4a8f-9a43-0d7f3f0e2b11"


def _version_2(inp: PackageInput, previous: str) -> BuiltPackage:
    return build_aip(
        dataclasses.replace(
            inp,
            aip_id=V2_ID,
            previous_aip_id=previous,
            metadata=dataclasses.replace(inp.metadata, title="Herziene titel"),
            text="herziene tekst over bouwvergunningen",
            created_at=inp.created_at + timedelta(days=400),
        )
    )


def test_one_record_per_document_from_its_newest_version(
    store: AipStore, inp: PackageInput, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    unversioned = store.index_record(pkg.aip_id)
    assert unversioned.aip_id == unversioned.document_id == pkg.aip_id
    assert unversioned.metadata == store.manifest(pkg.aip_id).metadata
    assert unversioned.text == store.read_text(pkg.aip_id)
    assert unversioned.created_at == inp.created_at

    store.commit_version(_version_2(inp, pkg.aip_id))

    assert sorted(store.aip_ids()) == sorted([pkg.aip_id, V2_ID])
    assert list(store.document_ids()) == [pkg.aip_id]
    record = store.index_record(pkg.aip_id)
    assert (record.document_id, record.aip_id) == (pkg.aip_id, V2_ID)
    assert record.metadata.title == "Herziene titel"
    assert record.text == "herziene tekst over bouwvergunningen"
    assert record.created_at == inp.created_at  # archived then; a new version is not newer


def test_an_unknown_document_is_not_found(store: AipStore) -> None:
    with pytest.raises(PackageNotFoundError):
        store.index_record("0e4f5a7c-0000-4000-8000-000000000000")


def test_index_record_checks_integrity(store: AipStore, fs: FsStorage, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    text = fs.root / f"aips/{pkg.aip_id}/representations/rep2/data/document.txt"
    good = text.read_bytes()
    text.write_bytes(b"forged")
    with pytest.raises(IntegrityError):
        store.index_record(pkg.aip_id)
    text.write_bytes(good)
    store.index_record(pkg.aip_id)
    # dc.xml is read only when the index file is not usable (tests/unit/archive/test_index_file.py)
    (fs.root / f"aips/{pkg.aip_id}/metadata/descriptive/index.json").unlink()
    (fs.root / f"aips/{pkg.aip_id}/metadata/descriptive/dc.xml").write_bytes(b"<forged/>")
    with pytest.raises(IntegrityError):
        store.index_record(pkg.aip_id)
