from __future__ import annotations

import dataclasses
import hashlib
import hmac

import pytest

from search.projection import OwnerKeyer, project
from tests.unit.search.builders import OWNER, T0, manifest

SECRET = b"s" * 32


def test_owner_key_is_hex_hmac_sha256_of_the_owner_id() -> None:
    expected = hmac.new(SECRET, OWNER.encode(), hashlib.sha256).hexdigest()
    assert OwnerKeyer(SECRET).key(OWNER) == expected
    assert len(expected) == 64


def test_owner_key_depends_on_secret_and_owner() -> None:
    keyer = OwnerKeyer(SECRET)
    assert keyer.key(OWNER) == OwnerKeyer(SECRET).key(OWNER)
    assert keyer.key(OWNER) != OwnerKeyer(b"t" * 32).key(OWNER)
    assert keyer.key(OWNER) != keyer.key("00010100105")


@pytest.mark.parametrize("owner_id", ["", "85.07.30-033.28", " 85073003328", "８５０７"])
def test_non_canonical_owner_ids_are_refused(owner_id: str) -> None:
    with pytest.raises(ValueError, match="digits"):
        OwnerKeyer(SECRET).key(owner_id)


def test_short_secret_is_refused_and_never_shown() -> None:
    with pytest.raises(ValueError):
        OwnerKeyer(b"short")
    assert "s" * 16 not in repr(OwnerKeyer(SECRET))


def test_projection_of_a_manifest() -> None:
    m = manifest("aip-1", minutes=3)
    keyer = OwnerKeyer(SECRET)
    doc = project(m, "De tekst", keyer, on_hold=True)
    assert doc.aip_id == "aip-1"
    assert doc.owner_key == keyer.key(OWNER)
    assert (doc.agency_id, doc.document_type, doc.agency_ref) == (
        "OVO000001",
        "besluit",
        "2024/aip-1",
    )
    assert doc.title == m.metadata.title
    assert doc.text == "De tekst"
    assert doc.issued_on == m.metadata.issued_on
    assert doc.ingested_at == m.created_at == T0.replace(minute=3)
    assert doc.retention_until == m.metadata.retention_until
    assert doc.on_hold is True
    assert project(m, "De tekst", keyer) == dataclasses.replace(doc, on_hold=False)


def test_no_raw_owner_number_anywhere_in_the_index_document() -> None:
    m = manifest("aip-1", title="Attest", retention_until=None)
    doc = project(m, "Tekst zonder nummer", OwnerKeyer(SECRET))
    for field in dataclasses.fields(doc):
        assert OWNER not in str(getattr(doc, field.name)), field.name
    assert OWNER not in repr(doc)
