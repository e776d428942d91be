"""METS, PREMIS and descriptive metadata read back exactly what was written."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from archive.descriptive import read_descriptive, write_descriptive
from archive.errors import HostileXmlError, IntegrityError, InvalidPackageError
from archive.model import AipManifest, BuiltPackage, PackageInput
from archive.package import build_aip
from archive.premis import _read_event, read_premis
from archive.reader import read_manifest
from archive.xml import parse_xml


def _read(
    pkg: BuiltPackage,
    *,
    aip_id: str | None = None,
    root_mets: bytes | None = None,
    descriptive: bytes | None = None,
) -> AipManifest:
    return read_manifest(
        aip_id or pkg.aip_id,
        root_mets or pkg.root_mets,
        descriptive=descriptive or pkg.files["metadata/descriptive/dc.xml"],
        premis=pkg.files["metadata/preservation/premis.xml"],
    )


def test_build_then_read_equals_input(pkg: BuiltPackage, inp: PackageInput) -> None:
    manifest = _read(pkg)
    assert manifest.aip_id == inp.aip_id
    assert manifest.metadata == inp.metadata
    assert manifest.signature == inp.signature
    assert manifest.original_sha256 == inp.original_sha256
    assert manifest.created_at == inp.created_at
    assert manifest.events == inp.events
    assert manifest.pdf_path == "representations/rep1/data/document.pdf"
    assert manifest.text_path == "representations/rep2/data/document.txt"
    assert manifest.pdf.sha256 == hashlib.sha256(inp.signed_pdf).hexdigest()
    assert manifest.pdf.mime_type == "application/pdf"
    assert manifest.root_mets_sha256 == hashlib.sha256(pkg.root_mets).hexdigest()
    assert {f.path for f in manifest.files} == set(pkg.files)


def test_premis_records_agents_objects_and_fixity(pkg: BuiltPackage, inp: PackageInput) -> None:
    record = read_premis(pkg.files["metadata/preservation/premis.xml"], aip_id=pkg.aip_id)
    assert record.agents == inp.agents
    pdf = next(o for o in record.objects if o.mime_type == "application/pdf")
    assert pdf.sha256 == hashlib.sha256(inp.signed_pdf).hexdigest()
    assert pdf.size == len(inp.signed_pdf)
    assert {o.mime_type for o in record.objects} == {"application/pdf", "text/plain"}


def test_times_in_other_zones_round_trip_as_the_same_instant(inp: PackageInput) -> None:
    brussels = timezone(timedelta(hours=2))
    at = datetime(2025, 6, 1, 12, 0, tzinfo=brussels)
    changed = dataclasses.replace(
        inp,
        created_at=at,
        signature=dataclasses.replace(inp.signature, signed_at=at),
    )
    manifest = _read(build_aip(changed))
    assert manifest.created_at == at
    assert manifest.created_at.tzinfo == UTC
    assert manifest.signature.signed_at == at


def test_permanent_retention_and_enterprise_owner(inp: PackageInput) -> None:
    meta = dataclasses.replace(
        inp.metadata, retention_until=None, owner_kind="enterprise", owner_id="0417497106"
    )
    data = write_descriptive(inp.aip_id, meta, mime_type="application/pdf")
    assert read_descriptive(data, aip_id=inp.aip_id) == meta


def test_control_characters_in_metadata_are_refused(inp: PackageInput) -> None:
    meta = dataclasses.replace(inp.metadata, title="bad \x00 title")
    with pytest.raises(ValueError):
        write_descriptive(inp.aip_id, meta, mime_type="application/pdf")


def test_tampered_descriptive_metadata_is_detected(pkg: BuiltPackage) -> None:
    tampered = pkg.files["metadata/descriptive/dc.xml"].replace(b"besluit", b"beslaat")
    with pytest.raises(IntegrityError):
        _read(pkg, descriptive=tampered)


def test_root_mets_of_another_package_is_refused(pkg: BuiltPackage) -> None:
    with pytest.raises(InvalidPackageError, match="OBJID"):
        _read(pkg, aip_id="00000000-0000-4000-8000-000000000000")


def test_unsafe_paths_in_a_root_mets_are_refused(pkg: BuiltPackage) -> None:
    evil = pkg.root_mets.replace(b'xlink:href="schemas/mets.xsd"', b'xlink:href="../../etc/passwd"')
    with pytest.raises(InvalidPackageError, match="unsafe path"):
        _read(pkg, root_mets=evil)


def test_hostile_root_mets_is_refused(pkg: BuiltPackage) -> None:
    evil = pkg.root_mets.replace(
        b"?>\n", b'?>\n<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n', 1
    )
    with pytest.raises(HostileXmlError):
        _read(pkg, root_mets=evil)


def test_issued_on_round_trips(inp: PackageInput) -> None:
    meta = dataclasses.replace(inp.metadata, issued_on=date(1999, 12, 31))
    data = write_descriptive(inp.aip_id, meta, mime_type="application/pdf")
    assert read_descriptive(data, aip_id=inp.aip_id).issued_on == date(1999, 12, 31)


_EVENT = """<premis:premis xmlns:premis="http://www.loc.gov/premis/v3" version="3.0">
  <premis:event>
    {parts}
  </premis:event>
</premis:premis>"""
_EVENT_ID = (
    "<premis:eventIdentifier><premis:eventIdentifierType>local</premis:eventIdentifierType>"
    "<premis:eventIdentifierValue>e1</premis:eventIdentifierValue></premis:eventIdentifier>"
)
_EVENT_TYPE = "<premis:eventType>ingestion</premis:eventType>"
_EVENT_AT = "<premis:eventDateTime>2025-03-14T09:26:53Z</premis:eventDateTime>"
_OUTCOME = (
    "<premis:eventOutcomeInformation><premis:eventOutcome>success</premis:eventOutcome>"
    "</premis:eventOutcomeInformation>"
)


def _event(*parts: str) -> bytes:
    return _EVENT.format(parts="".join(parts)).encode()


def test_an_event_reads_its_first_parts_and_every_linked_agent() -> None:
    data = _event(
        _EVENT_ID,
        _EVENT_TYPE,
        _EVENT_AT,
        # the first detail *found* counts, as with ElementPath's find
        "<premis:eventDetailInformation/>",
        "<premis:eventDetailInformation><premis:eventDetail>second</premis:eventDetail>"
        "</premis:eventDetailInformation>",
        _OUTCOME,
        "<premis:linkingAgentIdentifier><premis:linkingAgentIdentifierValue>a1"
        "</premis:linkingAgentIdentifierValue></premis:linkingAgentIdentifier>",
        "<premis:linkingAgentIdentifier><premis:linkingAgentIdentifierValue>a2"
        "</premis:linkingAgentIdentifierValue><premis:linkingAgentIdentifierValue>a3"
        "</premis:linkingAgentIdentifierValue></premis:linkingAgentIdentifier>",
        "<premis:eventType>ignored: not the first</premis:eventType>",
    )
    event = _read_event(parse_xml(data)[0], "x")
    assert (event.identifier, event.event_type, event.outcome) == ("e1", "ingestion", "success")
    assert event.at == datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
    assert event.detail == "second"
    assert event.agent_ids == ("a1", "a2", "a3")


@pytest.mark.parametrize(
    ("parts", "missing"),
    [
        ((_EVENT_TYPE, _EVENT_AT, _OUTCOME), "eventIdentifier"),
        ((_EVENT_ID, _EVENT_TYPE, _EVENT_AT), "outcome None"),
        ((_EVENT_ID, _EVENT_AT, _OUTCOME), "eventType"),
        ((_EVENT_ID, _EVENT_TYPE, _OUTCOME), "eventDateTime"),
    ],
)
def test_an_event_without_a_required_part_is_refused(parts: tuple[str, ...], missing: str) -> None:
    with pytest.raises(InvalidPackageError, match=missing):
        _read_event(parse_xml(_event(*parts))[0], "x")
