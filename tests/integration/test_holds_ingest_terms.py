"""Ingest records the selection-list rule in the package and locks it until the computed
end (or its lower bound while an event date is pending); the wiring's services read it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from archive import layout
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from tests.conftest import AGENCY_X, OWNER_A

LIST = """
version = "ingest-7"
[types.attest]
retention = "P10Y"
action = "destroy"
[types.dossier]
retention = "P5Y"
trigger = "event:closure"
action = "transfer"
[types.diploma]
action = "keep"
"""


def test_ingest_records_rule_version_trigger_and_lock(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    path = tmp_path / "list.toml"
    path.write_text(LIST, encoding="utf-8")
    services = build_services(KluisSettings(data_dir=data_dir, selection_list=path))
    try:
        issued = date(2024, 5, 6)
        ids = {}
        for kind in ("attest", "dossier", "diploma"):
            sub = Submission(AGENCY_X, OWNER_A, kind, kind.title(), f"ref-{kind}", issued)
            ids[kind] = services.ingestor.ingest(sub, pdf).receipt.aip_id

        attest = services.store.metadata(ids["attest"])
        assert (attest.retention_list_version, attest.retention_trigger) == (
            "ingest-7",
            "issued_on",
        )
        assert (attest.retention_period, attest.retention_action) == ("P10Y", "destroy")
        assert attest.retention_until == date(2034, 5, 6)
        dossier = services.store.metadata(ids["dossier"])
        assert dossier.retention_trigger == "event:closure" and dossier.retention_until is None

        def lock(doc: str) -> datetime | None:
            return services.storage.stat(layout.aip_key(doc, layout.ROOT_METS)).retain_until

        assert lock(ids["attest"]) == datetime(2034, 5, 6, tzinfo=UTC)
        assert lock(ids["dossier"]) == datetime(2029, 5, 6, tzinfo=UTC)  # lower bound
        assert lock(ids["diploma"]) is None

        state = services.records.state(ids["dossier"])
        assert (state.action, state.retention_until, state.locked_until) == (
            "transfer",
            None,
            date(2029, 5, 6),
        )
        assert services.records.state(ids["diploma"]).disposable_on() is None
    finally:
        services.close()
