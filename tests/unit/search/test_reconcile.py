from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from search import OwnerKeyer, Query, TantivyIndex, project, reindex
from search.projection import document_digest
from search.reconcile import reconcile_index, summarize
from tests.unit.search.builders import manifest
from tests.unit.search.test_reindex import PackagesInMemory

KEYER = OwnerKeyer(b"r" * 32)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    with TantivyIndex(tmp_path / "index") as built:
        yield built


@pytest.fixture
def store() -> PackagesInMemory:
    return PackagesInMemory(*(manifest(f"{p}{i:02d}", minutes=i) for p in "abc" for i in range(8)))


def test_a_rebuilt_index_is_proven_equal_range_by_range(
    store: PackagesInMemory, index: TantivyIndex
) -> None:
    reindex(store, index, KEYER)
    report = reconcile_index(store, index, KEYER, prefix_chars=1)
    assert report.ranges == 3
    assert report.in_sync and report.verified
    assert report.drifted_ranges == ()


def test_deleted_corrupted_and_stale_entries_are_found_and_healed(
    store: PackagesInMemory, index: TantivyIndex
) -> None:
    reindex(store, index, KEYER)
    index.remove(["a03", "c07"])  # lost entries
    good = project(store.manifest("b05"), store.read_text("b05"), KEYER)
    index.submit([replace(good, title="Vervalst", owner_key="f" * 64)])  # corrupted entry
    index.submit([replace(good, aip_id="b99")])  # an entry storage does not hold
    index.refresh()
    assert index.search(Query(owner_key="f" * 64)).total == 1

    report = reconcile_index(store, index, KEYER, prefix_chars=1)

    assert report.missing == ("a03", "c07")
    assert report.corrupt == ("b05",)
    assert report.stale == ("b99",)
    assert report.drifted_ranges == ("a", "b", "c")
    assert report.verified
    assert index.search(Query(owner_key="f" * 64)).total == 0
    assert sorted(index.ids()) == sorted(store.packages)
    assert dict(index.digests())["b05"] == document_digest(good)
    assert reconcile_index(store, index, KEYER, prefix_chars=1).in_sync


def test_without_repair_only_reports(store: PackagesInMemory, index: TantivyIndex) -> None:
    reindex(store, index, KEYER)
    index.remove(["a00"])
    index.refresh()
    report = reconcile_index(store, index, KEYER, repair=False)
    assert report.missing == ("a00",) and not report.verified
    assert "a00" not in set(index.ids())


def test_range_summaries_depend_on_every_pair() -> None:
    base = summarize([("a1", "x"), ("a2", "y"), ("b1", "z")], 1)
    assert base["a"].count == 2 and base["b"].count == 1
    assert summarize([("a2", "y"), ("a1", "x"), ("b1", "z")], 1) == base  # order-free
    assert summarize([("a1", "x"), ("a2", "Y"), ("b1", "z")], 1)["a"] != base["a"]


class CrashingStore(PackagesInMemory):
    """Fails to read the ``crash_at``-th package once, like a killed run."""

    def __init__(self, crash_at: int, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reads = 0
        self.crash_at = crash_at

    def read_text(self, aip_id: str) -> str:
        self.reads += 1
        if self.reads == self.crash_at:
            raise KeyboardInterrupt
        return super().read_text(aip_id)


def test_an_interrupted_reindex_resumes_after_its_checkpoint(
    tmp_path: Path, index: TantivyIndex
) -> None:
    store = CrashingStore(12, *(manifest(f"aip-{i:02d}", minutes=i) for i in range(20)))
    checkpoint = tmp_path / "reindex.checkpoint"
    with pytest.raises(KeyboardInterrupt):
        reindex(store, index, KEYER, batch_size=5, checkpoint=checkpoint)
    assert checkpoint.exists()
    index.refresh()
    assert sorted(index.ids()) == [f"aip-{i:02d}" for i in range(10)]  # two whole batches

    totals: list[tuple[int, int]] = []
    stats = reindex(
        store,
        index,
        KEYER,
        batch_size=5,
        checkpoint=checkpoint,
        on_total=lambda t, d: totals.append((t, d)),
    )

    assert stats.resumed_after == "aip-09"
    assert (stats.indexed, stats.total) == (10, 20)
    assert totals == [(20, 10)]
    assert not checkpoint.exists()
    assert sorted(index.ids()) == sorted(store.packages)


def test_reading_on_several_threads_keeps_the_order(index: TantivyIndex) -> None:
    store = PackagesInMemory(*(manifest(f"aip-{i:03d}", minutes=i) for i in range(150)))
    stats = reindex(store, index, KEYER, batch_size=40, read_workers=4)
    assert stats.indexed == 150
    assert reconcile_index(store, index, KEYER, read_workers=3).in_sync
