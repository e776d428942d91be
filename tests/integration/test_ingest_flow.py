"""Ingest end to end on the embedded backends: real signing, real packages, real index."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from archive.storage.base import Storage
from ingest.errors import IdempotencyConflictError, InvalidSubmissionError
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import Services, build_services
from search.model import Query
from tests.conftest import AGENCY_X, OWNER_A, OWNER_B
from tests.support import pdfs

pytestmark = pytest.mark.integration


def submission(**overrides: object) -> Submission:
    values: dict[str, object] = {
        "agency_id": AGENCY_X,
        "owner": OWNER_A,
        "document_type": "attest",
        "title": "Attest gezinsbijslag",
        "agency_ref": "R1",
    }
    values.update(overrides)
    return Submission(**values)  # type: ignore[arg-type]


def all_keys(storage: Storage) -> list[str]:
    return list(storage.keys(""))


def test_ingest_stores_signs_and_indexes(services: Services, pdf: bytes) -> None:
    result = services.ingestor.ingest(submission(), pdf)
    assert result.created
    receipt = result.receipt
    assert receipt.signature_level == "B-B"
    manifest = services.store.manifest(receipt.aip_id)
    assert manifest.pdf.sha256 == receipt.sha256
    assert manifest.metadata.owner_id == OWNER_A
    assert manifest.metadata.retention_until is not None
    with services.store.open_file(receipt.aip_id, manifest.pdf_path) as f:
        stored = f.read()
    assert stored.startswith(pdf)  # signing appends an incremental update
    services.index.refresh()
    page = services.index.search(Query(owner_key=services.keyer.key(OWNER_A)))
    assert [h.aip_id for h in page.hits] == [receipt.aip_id]
    assert services.index.search(Query(text="vergunning")).total == 1
    assert services.index.search(Query(owner_key=services.keyer.key(OWNER_B))).total == 0


def test_retry_replays_the_receipt_and_stores_nothing(services: Services, pdf: bytes) -> None:
    first = services.ingestor.ingest(submission(), pdf)
    keys = all_keys(services.storage)
    again = services.ingestor.ingest(submission(), pdf)
    assert not again.created
    assert again.receipt == first.receipt
    assert all_keys(services.storage) == keys


def test_same_ref_other_bytes_is_a_conflict(services: Services, pdf: bytes) -> None:
    services.ingestor.ingest(submission(), pdf)
    keys = all_keys(services.storage)
    with pytest.raises(IdempotencyConflictError, match="R1"):
        services.ingestor.ingest(submission(), pdfs.make_pdf(["Een ander document"]))
    assert all_keys(services.storage) == keys


HOSTILE: dict[str, tuple[Callable[[], bytes], dict[str, object], str]] = {
    "truncated": (pdfs.truncated_pdf, {}, "file"),
    "encrypted": (pdfs.encrypted_pdf, {}, "file"),
    "not a pdf": (pdfs.not_a_pdf, {}, "file"),
    "javascript": (pdfs.javascript_pdf, {}, "file"),
    "empty": (lambda: b"", {}, "file"),
    "bad owner": (pdfs.make_pdf, {"owner": "85073003329"}, "owner"),
    "unknown type": (pdfs.make_pdf, {"document_type": "toverformule"}, "type"),
    "bad agency": (pdfs.make_pdf, {"agency_id": "../etc"}, "agency"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_bad_input_is_refused_and_changes_nothing(services: Services, case: str) -> None:
    make, overrides, field = HOSTILE[case]
    with pytest.raises(InvalidSubmissionError) as caught:
        services.ingestor.ingest(submission(**overrides), make())
    assert field in {p.field for p in caught.value.problems}
    assert all_keys(services.storage) == []
    services.index.refresh()
    assert services.index.search(Query()).total == 0


def test_oversized_file_is_refused(data_dir: Path) -> None:
    services = build_services(KluisSettings(data_dir=data_dir, max_pdf_bytes=200_000))
    try:
        big = pdfs.make_pdf(padding_bytes=200_000)
        with pytest.raises(InvalidSubmissionError, match="limit"):
            services.ingestor.ingest(submission(), big)
        assert all_keys(services.storage) == []
    finally:
        services.close()
