"""The rule, list version, trigger and end recorded at ingest survive the round trip
through the package's descriptive metadata, and the selection list validates triggers."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from lxml import etree

from archive.descriptive import KLUIS_NS, read_descriptive, write_descriptive
from archive.errors import InvalidPackageError
from retention.errors import InvalidSelectionListError
from retention.selection_list import Period, parse_selection_list
from tests.support.eark import make_input
from tests.support.retention_docs import selection


@pytest.mark.parametrize(
    ("document_type", "until"),
    [("attest", date(2035, 3, 1)), ("dossier", None), ("diploma", None)],
)
def test_recorded_rule_round_trips(document_type: str, until: date | None) -> None:
    inp = make_input()
    terms = selection("2026.2_a").terms(document_type, date(2025, 3, 1))
    assert terms.retention_until == until
    meta = dataclasses.replace(
        inp.metadata,
        document_type=document_type,
        retention_until=terms.retention_until,
        retention_list_version=terms.list_version,
        retention_trigger=terms.trigger,
        retention_period=terms.period,
        retention_action=terms.action,
    )
    data = write_descriptive(inp.aip_id, meta, mime_type="application/pdf")
    assert read_descriptive(data, aip_id=inp.aip_id) == meta
    rule = etree.fromstring(data).find(f"{{{KLUIS_NS}}}retentionRule")
    assert rule is not None and rule.get("listVersion") == "2026.2_a"


def test_packages_without_a_recorded_rule_still_read() -> None:
    inp = make_input()
    data = write_descriptive(inp.aip_id, inp.metadata, mime_type="application/pdf")
    assert b"retentionRule" not in data
    meta = read_descriptive(data, aip_id=inp.aip_id)
    assert meta.retention_list_version is None and meta.retention_until == date(2055, 3, 1)


def test_a_rule_without_its_version_is_refused() -> None:
    inp = make_input()
    meta = dataclasses.replace(inp.metadata, retention_list_version="v1", retention_action="keep")
    data = write_descriptive(inp.aip_id, meta, mime_type="application/pdf")
    broken = data.replace(b'listVersion="v1" ', b"")
    with pytest.raises(InvalidPackageError, match="listVersion"):
        read_descriptive(broken, aip_id=inp.aip_id)


def test_event_terms_lock_the_lower_bound() -> None:
    terms = selection().terms("dossier", date(2024, 2, 29))
    assert (terms.trigger, terms.retention_until, terms.lock_until) == (
        "event:closure",
        None,
        date(2029, 2, 28),
    )
    assert selection().terms("diploma", date(2024, 1, 1)).lock_until is None
    assert str(Period.parse("P1Y2M3D")) == "P1Y2M3D" and str(Period.parse("P6M")) == "P6M"


def test_bad_triggers_and_versions_are_all_reported() -> None:
    raw = {
        "version": "bad version/1",
        "types": {
            "a": {"retention": "P1Y", "trigger": "closed_on", "action": "destroy"},
            "bb": {"retention": "P1Y", "trigger": "event:", "action": "destroy"},
            "cc": {"retention": "P1Y", "trigger": "event:Closure", "action": "destroy"},
            "dd": {"retention": "P1Y", "trigger": "event:closure", "action": "destroy"},
        },
    }
    with pytest.raises(InvalidSelectionListError) as caught:
        parse_selection_list(raw, source="t")
    problems = caught.value.problems
    assert any("'version'" in p for p in problems)
    for code in ("a", "bb", "cc"):
        assert any(p.startswith(f"types.{code}.trigger") for p in problems), code
    assert not any(p.startswith("types.dd") for p in problems)
