"""A complete disposal setup for tests: real storage (fs or S3), the real retention records
(H2's :class:`RetentionRecords`), a real tantivy index fed from storage, the dev PKI key.

Nothing here is a fake: the index is filled through the retention projection from what is
stored, and :class:`Disposal` decides from :class:`RetentionRecords` over the same storage.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from archive.events import EventLog
from archive.model import PackageInput
from archive.storage.base import Storage
from archive.store import AipStore
from retention.disposal import Disposal
from retention.projection import IndexUpdater, RetentionProjection
from retention.proposals import ProposalStore
from retention.records import RetentionRecords
from retention.selection_list import SelectionList
from search.projection import OwnerKeyer
from search.tantivy_index import TantivyIndex
from signing.devpki import DevPki
from tests.support.retention_docs import Clock, commit_document


@dataclass
class World:
    storage: Storage
    store: AipStore
    records: RetentionRecords
    index: TantivyIndex
    updater: IndexUpdater
    disposal: Disposal
    clock: Clock
    selection: SelectionList

    def add(self, document_type: str, issued_on: date, **kwargs: object) -> PackageInput:
        """Commit one document as ingest would and index it from storage."""
        inp = commit_document(
            self.store, self.selection, document_type=document_type, issued_on=issued_on,
            **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        self.reindex([inp.aip_id])
        return inp

    def reindex(self, ids: Sequence[str]) -> None:
        self.updater.update(list(ids))
        self.index.refresh()

    def close(self) -> None:
        self.index.close()


def make_world(
    storage: Storage,
    clock: Clock,
    index_dir: Path,
    pki: DevPki,
    selection_list: SelectionList,
    *,
    tsa_url: str | None = None,
    trust_roots: Sequence[bytes] | None = None,
    keys: object | None = None,
) -> World:
    store = AipStore(storage, clock=clock)
    index = TantivyIndex(index_dir, commit_interval=0.05)
    index.start_indexer()
    updater = IndexUpdater(RetentionProjection(store, storage), index, OwnerKeyer(b"t" * 32))
    records = RetentionRecords(
        storage, store, EventLog(storage), selection_list, clock=clock, index=updater
    )
    disposal = Disposal(
        store=store,
        proposals=ProposalStore(storage, chunk_items=3),
        index=index,
        facts=records,
        keys=keys or pki.key_source(),  # type: ignore[arg-type]
        tsa_url=tsa_url,
        trust_roots=trust_roots if trust_roots is not None else pki.trust_roots(),
        clock=clock,
        new_id=lambda: str(uuid.uuid4()),
    )
    return World(storage, store, records, index, updater, disposal, clock, selection_list)
