"""Backend-specific behaviour of TantivyIndex (the shared behaviour is in the contract)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from search import IndexDocument, IndexUnavailableError, Query, TantivyIndex

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def doc(aip_id: str, **changes: object) -> IndexDocument:
    fields: dict[str, object] = {
        "aip_id": aip_id,
        "owner_key": "k" * 64,
        "agency_id": "OVO000001",
        "document_type": "attest",
        "title": "Attest",
        "text": "tekst",
        "issued_on": date(2024, 1, 1),
        "ingested_at": T0,
        "agency_ref": aip_id,
    }
    fields.update(changes)
    return IndexDocument(**fields)  # type: ignore[arg-type]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def index(directory: Path) -> Iterator[TantivyIndex]:
    with TantivyIndex(directory) as built:
        yield built


def outbox(directory: Path) -> list[Path]:
    return sorted(p for p in (directory / "outbox").iterdir() if p.suffix == ".json")


def test_submit_is_durable_before_any_indexer_runs(directory: Path, index: TantivyIndex) -> None:
    index.submit([doc("a"), doc("b")])
    index.remove(["c"])
    entries = outbox(directory)
    assert len(entries) == 2
    assert [json.loads(p.read_text())["op"] for p in entries] == ["upsert", "remove"]
    with TantivyIndex(directory) as other:  # e.g. the next process after a crash
        other.refresh()
        assert sorted(other.ids()) == ["a", "b"]
    assert outbox(directory) == []
    assert not index.holds_writer


def test_reapplying_an_entry_is_harmless(directory: Path, index: TantivyIndex) -> None:
    index.submit([doc("a", title="Eerste")])
    [entry] = outbox(directory)
    saved = entry.read_bytes()
    index.refresh()
    entry.write_bytes(saved)  # as if the indexer died between commit and acknowledge
    index.submit([doc("a", title="Tweede")])
    index.refresh()
    assert index.search(Query()).total == 1
    assert index.get("a").title == "Tweede"  # type: ignore[union-attr]


def test_an_undecodable_entry_is_moved_aside_and_does_not_block(
    directory: Path, index: TantivyIndex
) -> None:
    (directory / "outbox" / "00000000000000000001-0000001-00000001.json").write_text("{not json")
    index.submit([doc("a")])
    index.refresh()
    assert list(index.ids()) == ["a"]
    assert [p.name for p in (directory / "outbox-rejected").iterdir()] == [
        "00000000000000000001-0000001-00000001.json"
    ]


def test_a_second_instance_waits_for_the_indexer_instead_of_writing(directory: Path) -> None:
    with TantivyIndex(directory, commit_interval=0.05) as server, TantivyIndex(directory) as cli:
        server.start_indexer()
        deadline = time.monotonic() + 5
        while not server.holds_writer and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.holds_writer
        cli.submit([doc("a")])
        cli.refresh()
        assert not cli.holds_writer
        assert cli.get("a") is not None
        assert server.get("a") is not None


def test_refresh_without_an_indexer_borrows_the_writer(index: TantivyIndex) -> None:
    index.submit([doc("a")])
    index.refresh()
    assert list(index.ids()) == ["a"]
    assert not index.holds_writer


def test_close_applies_what_is_pending_and_releases_the_writer(directory: Path) -> None:
    first = TantivyIndex(directory)
    first.start_indexer()
    first.submit([doc("a")])
    first.close()
    first.close()  # idempotent
    assert outbox(directory) == []
    with TantivyIndex(directory) as second:
        assert list(second.ids()) == ["a"]
        second.start_indexer()
        deadline = time.monotonic() + 5
        while not second.holds_writer and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second.holds_writer  # the lock was released by close()


def test_a_closed_index_is_unavailable(index: TantivyIndex) -> None:
    index.close()
    with pytest.raises(IndexUnavailableError):
        index.submit([doc("a")])
    with pytest.raises(IndexUnavailableError):
        index.search(Query())


@pytest.mark.parametrize("bad", ["", "a/b", "../x", "a b", "-a", "x" * 201])
def test_ids_outside_the_storage_alphabet_are_refused(index: TantivyIndex, bad: str) -> None:
    with pytest.raises(ValueError):
        index.submit([doc(bad)])
    with pytest.raises(ValueError):
        index.remove([bad])


def test_times_come_back_as_the_same_instant_in_utc(index: TantivyIndex) -> None:
    cest = timezone(timedelta(hours=2))
    index.submit(
        [
            doc("aware", ingested_at=datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=cest)),
            doc("naive", ingested_at=datetime(2025, 6, 1, 12, 0, 0, 1)),
        ]
    )
    index.refresh()
    aware = index.get("aware")
    naive = index.get("naive")
    assert aware is not None and naive is not None
    assert aware.ingested_at == datetime(2025, 6, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert aware.ingested_at.tzinfo == UTC
    assert naive.ingested_at == datetime(2025, 6, 1, 12, 0, 0, 1, tzinfo=UTC)


def test_an_index_of_another_analysis_version_refuses_to_open(directory: Path) -> None:
    TantivyIndex(directory).close()
    marker = directory / "kluis-index.json"
    marker.write_text(json.dumps({"schema": 1, "analysis": "nl-kp-0"}))
    with pytest.raises(IndexUnavailableError, match="reindex"):
        TantivyIndex(directory)


def test_an_index_without_its_marker_refuses_to_open(directory: Path) -> None:
    TantivyIndex(directory).close()
    (directory / "kluis-index.json").unlink()
    with pytest.raises(IndexUnavailableError, match="reindex"):
        TantivyIndex(directory)
    shutil.rmtree(directory)
    TantivyIndex(directory).close()  # a fresh directory is fine again
