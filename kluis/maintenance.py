"""Maintenance that keeps the archive consistent after crashes, shared by CLI and scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.reconcile import IngestReconcileReport, reconcile_ingest
from kluis.wiring import Services


@dataclass(frozen=True)
class ReconcileSummary:
    ingest: IngestReconcileReport
    indexed: tuple[str, ...]
    """Documents that were stored but missing from the index."""


def reconcile(services: Services) -> ReconcileSummary:
    """Clean up after crashed ingests, then index stored documents the index lacks.

    Idempotent, so it may run on several replicas at once (deletes of leftovers and
    re-seals repeat harmlessly). Raises: ArchiveError, SearchError.
    """
    report = reconcile_ingest(services.store, services.ledger)
    indexed = set(services.index.ids())
    missing = tuple(d for d in services.store.document_ids() if d not in indexed)
    for document_id in missing:
        services.ingestor.index_existing(document_id)
    return ReconcileSummary(report, missing)
