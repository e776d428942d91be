"""build_aip: CSIP layout, deterministic bytes, the root METS as complete manifest."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

import pytest

from archive.errors import InvalidKeyError
from archive.mets import read_root_mets
from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.xml import parse_xml, schema_bytes, validate
from tests.support.eark import make_input


def test_layout(pkg: BuiltPackage, inp: PackageInput) -> None:
    assert sorted(pkg.files) == [
        "metadata/descriptive/dc.xml",
        "metadata/descriptive/index.json",
        "metadata/preservation/premis.xml",
        "representations/rep1/METS.xml",
        "representations/rep1/data/document.pdf",
        "representations/rep2/METS.xml",
        "representations/rep2/data/document.txt",
        "schemas/DILCISExtensionMETS.xsd",
        "schemas/mets.xsd",
        "schemas/xlink.xsd",
    ]
    assert pkg.files["representations/rep1/data/document.pdf"] == inp.signed_pdf
    assert pkg.files["representations/rep2/data/document.txt"] == inp.text.encode("utf-8")
    assert pkg.files["schemas/mets.xsd"] == schema_bytes("mets.xsd")
    root = parse_xml(pkg.root_mets)
    assert root.get("OBJID") == f"urn:uuid:{inp.aip_id}"
    hdr = root.find("{http://www.loc.gov/METS/}metsHdr")
    assert hdr is not None
    assert hdr.get("{https://DILCIS.eu/XML/METS/CSIPExtensionMETS}OAISPACKAGETYPE") == "AIP"


def test_root_mets_lists_every_file_with_sha256_and_size(pkg: BuiltPackage) -> None:
    root = read_root_mets(pkg.root_mets, aip_id=pkg.aip_id)
    assert {f.path for f in root.files} == set(pkg.files)
    for entry in root.files:
        data = pkg.files[entry.path]
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        assert entry.size == len(data)


@pytest.mark.parametrize(
    "path", ["METS.xml", "representations/rep1/METS.xml", "representations/rep2/METS.xml"]
)
def test_mets_files_are_valid_against_the_shipped_schema(pkg: BuiltPackage, path: str) -> None:
    data = pkg.root_mets if path == "METS.xml" else pkg.files[path]
    assert validate(parse_xml(data)) == ()


def test_equal_input_gives_identical_bytes(inp: PackageInput) -> None:
    first = build_aip(inp, software_version="1")
    second = build_aip(make_input(), software_version="1")
    assert first == second


def test_different_input_gives_a_different_manifest(inp: PackageInput) -> None:
    other = dataclasses.replace(inp, text=inp.text + "!")
    assert build_aip(other).root_mets != build_aip(inp).root_mets


def test_naive_datetime_is_refused(inp: PackageInput) -> None:
    with pytest.raises(ValueError, match="naive"):
        build_aip(dataclasses.replace(inp, created_at=datetime(2025, 1, 1)))


@pytest.mark.parametrize("aip_id", ["not-a-uuid", "6F1C2A4E-9B1D-4C3E-8A57-0D2F3B4C5D6E"])
def test_aip_id_must_be_a_canonical_uuid(aip_id: str) -> None:
    with pytest.raises(ValueError):
        build_aip(make_input(aip_id=aip_id))


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", ".hidden.pdf", "met s.pdf"])
def test_unsafe_pdf_names_are_refused(inp: PackageInput, name: str) -> None:
    with pytest.raises(InvalidKeyError):
        build_aip(dataclasses.replace(inp, pdf_name=name))


def test_text_name_follows_the_pdf_name(inp: PackageInput) -> None:
    built = build_aip(dataclasses.replace(inp, pdf_name="besluit-2025.PDF"))
    assert "representations/rep2/data/besluit-2025.txt" in built.files
