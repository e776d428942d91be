"""A renewed (new) version of a held document is held too, and carries the document's
lock even when a retention record extended it beyond the metadata's end (real certomancer
PKI, fs storage)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path

from archive import layout
from archive.events import EventLog
from archive.model import SignatureInfo
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.holds import HoldRegistry
from retention.records import RetentionRecords, lock_datetime
from retention.selection_list import Period
from retention.upkeep import renew_document
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import renew
from tests.support.eark import make_input
from tests.support.pdfs import make_pdf
from tests.support.pki import running_pki
from tests.support.retention_docs import Clock, selection


def test_renewal_of_a_held_document(tmp_path: Path) -> None:
    cpki = running_pki()
    with PadesSigner(
        SigningPolicy(level="B-T", tsa_url=cpki.tsa_url),
        Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None),
    ) as signer:
        signed = signer.sign(make_pdf(["Attest", "Gezegeld."]))
    clock = Clock(datetime.now(UTC))
    storage = FsStorage(tmp_path / "s", clock=clock)
    store = AipStore(storage, clock=clock)
    old = selection("r-1")
    issued = clock().date()
    terms = old.terms("attest", issued)
    inp = make_input(
        aip_id=str(uuid.uuid4()),
        signed_pdf=signed.pdf,
        signature=SignatureInfo(
            signed.level, signed.signed_at, signed.signer_subject, signed.certificate_sha256
        ),
    )
    meta = dataclasses.replace(
        inp.metadata,
        document_type="attest",
        issued_on=issued,
        retention_until=terms.retention_until,
        retention_list_version="r-1",
        retention_trigger="issued_on",
        retention_period="P10Y",
        retention_action="destroy",
    )
    assert terms.lock_until is not None
    store.commit(
        build_aip(dataclasses.replace(inp, metadata=meta)),
        retain_until=lock_datetime(terms.lock_until),
    )
    doc = inp.aip_id
    records = RetentionRecords(storage, store, EventLog(storage), old, clock=clock)
    records.recompute(selection("r-2", attest={"retention": "P20Y", "action": "destroy"}))
    HoldRegistry(storage, store, EventLog(storage), clock=clock).place(
        reason="r", mandate="m", placed_by="a", document_ids=[doc]
    )

    roots = [cpki.root_der]
    new_id = renew_document(
        store,
        doc,
        renew=lambda pdf: renew(pdf, trust_roots=roots, tsa_url=cpki.tsa_url),
        trust_roots=roots,
        clock=clock,
    )
    twenty = lock_datetime(Period(years=20).after(issued))
    root = storage.stat(layout.aip_key(new_id, layout.ROOT_METS))
    assert root.legal_hold and root.retain_until == twenty
    assert all(storage.stat(k).legal_hold for k in store.document_keys(doc))
    assert records.state(doc).locked_until == twenty.date()
