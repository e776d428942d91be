"""Maintenance jobs, shared by the scheduler (``kluis serve``) and ``kluis jobs run``.

:func:`job_table` binds every job function to this process's services; :func:`run_job` runs
one under its lease (:mod:`archive.leases`), renewing it from a heartbeat while the job runs,
so no two instances on the same storage run the same job at once. The job functions check the
lease before each unit of work and keep checkpoints in storage (:mod:`retention.jobs`), so a
job interrupted here resumes elsewhere.
"""

from __future__ import annotations

import os
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from archive.events import EventLog
from archive.leases import Lease, Leases
from ingest.reconcile import IngestReconcileReport, reconcile_ingest
from kluis.wiring import Services
from retention.jobs import (
    UpkeepPolicy,
    execute_approved,
    rotate_fixity,
    signature_upkeep,
    sweep_due,
)
from signing.upkeep import augment, renew

SCHEDULER_AGENT = "kluis-scheduler"
"""Who the scheduler's sweeps propose and its executions execute as (in PREMIS events and
proposals); a system agent, never one of the two archivists of the four-eyes rule."""


@dataclass(frozen=True)
class ReconcileSummary:
    ingest: IngestReconcileReport
    indexed: tuple[str, ...]
    """Documents that were stored but missing from the index."""


def reconcile(services: Services, lease: Lease | None = None) -> ReconcileSummary:
    """Clean up after crashed ingests, then index stored documents the index lacks.

    Idempotent (deletes of leftovers and re-seals repeat harmlessly). With a ``lease`` it
    stops before the next document once the lease is lost. Raises: ArchiveError (incl.
    LeaseLostError), SearchError.
    """
    if lease is not None:
        lease.keep()
    report = reconcile_ingest(services.store, services.ledger)
    indexed = set(services.index.ids())
    missing = tuple(d for d in services.store.document_ids() if d not in indexed)
    for document_id in missing:
        if lease is not None:
            lease.keep()
        services.ingestor.index_existing(document_id)
    return ReconcileSummary(report, missing)


@dataclass(frozen=True)
class JobSummary:
    """What one run did: a line for logs, a count of problems found (corrupt packages,
    failed renewals) for metrics and exit codes, and JSON-ready details."""

    text: str
    problems: int = 0
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    """How often the scheduler starts it; 0: not scheduled (``kluis jobs run`` still can)."""
    run: Callable[[Lease], JobSummary]
    run_at_start: bool = False
    """Also run when the scheduler starts (reconcile: recover from a crash at once); the
    others wait one interval, so restarts of many replicas do not all start them together."""


def _reconcile_job(services: Services, lease: Lease) -> JobSummary:
    summary = reconcile(services, lease)
    ingest = summary.ingest
    return JobSummary(
        f"finished {len(ingest.completed_packages)} and discarded "
        f"{len(ingest.discarded_packages)} incomplete packages, "
        f"sealed {len(ingest.sealed_packages)}, released {len(ingest.released_claims)} stale "
        f"claims, removed {ingest.removed_leftovers} staging leftovers, indexed "
        f"{len(summary.indexed)} documents",
        problems=len(ingest.stuck_packages),
        details={
            "completed": list(ingest.completed_packages),
            "stuck": list(ingest.stuck_packages),
            "discarded": list(ingest.discarded_packages),
            "sealed": list(ingest.sealed_packages),
            "released_claims": len(ingest.released_claims),
            "removed_leftovers": ingest.removed_leftovers,
            "indexed": list(summary.indexed),
        },
    )


def _fixity_job(services: Services, lease: Lease) -> JobSummary:
    report = rotate_fixity(
        services.store,
        EventLog(services.storage),
        services.storage,
        lease,
        sample=services.settings.scheduler.fixity_sample_size,
        new_id=lambda: str(uuid.uuid4()),
    )
    corrupt = f", CORRUPT: {', '.join(report.corrupt)}" if report.corrupt else ""
    return JobSummary(
        f"checked {len(report.checked)} packages (cycle {report.cycle}, "
        f"{report.completed_cycles} completed){corrupt}",
        problems=len(report.corrupt),
        details={
            "checked": list(report.checked),
            "corrupt": report.details,
            "cursor": report.cursor,
            "cycle": report.cycle,
            "completed_cycles": report.completed_cycles,
        },
    )


def _upkeep_job(services: Services, lease: Lease) -> JobSummary:
    tsa_url = services.settings.tsa_url
    if not tsa_url:
        return JobSummary("skipped: signature upkeep needs a time-stamp authority (tsa_url)")
    cfg = services.settings.scheduler
    roots = services.trust_roots
    report = signature_upkeep(
        services.store,
        services.storage,
        lease,
        renew=lambda pdf: renew(pdf, trust_roots=roots, tsa_url=tsa_url),
        augment=lambda pdf: augment(pdf, trust_roots=roots, tsa_url=tsa_url, level="B-LTA"),
        trust_roots=roots,
        policy=UpkeepPolicy(
            horizon=timedelta(days=cfg.upkeep_horizon_days),
            settle=timedelta(seconds=cfg.upkeep_settle_seconds),
            batch=cfg.upkeep_batch_size,
        ),
    )
    for document_id, _ in (*report.renewed, *report.augmented):
        services.ingestor.index_existing(document_id)  # the index shows the newest version
    return JobSummary(
        f"examined {report.examined} documents: renewed {len(report.renewed)}, augmented "
        f"{len(report.augmented)}, failed {len(report.failed)}",
        problems=len(report.failed),
        details={
            "renewed": dict(report.renewed),
            "augmented": dict(report.augmented),
            "failed": dict(report.failed),
            "cursor": report.cursor,
        },
    )


def _sweep_job(services: Services, lease: Lease) -> JobSummary:
    return JobSummary(sweep_due(services.disposal, lease, proposed_by=SCHEDULER_AGENT))


def _disposal_job(services: Services, lease: Lease) -> JobSummary:
    report = execute_approved(services.disposal, lease, executor=SCHEDULER_AGENT)
    failed = f", FAILED: {', '.join(p for p, _ in report.failed)}" if report.failed else ""
    return JobSummary(
        f"executed {len(report.executed)} proposals: destroyed {report.destroyed}, "
        f"transferred {report.transferred}, skipped {report.skipped}{failed}",
        problems=len(report.failed),
        details={
            "executed": list(report.executed),
            "certificates": list(report.certificates),
            "destroyed": report.destroyed,
            "transferred": report.transferred,
            "skipped": report.skipped,
            "failed": dict(report.failed),
        },
    )


def job_table(services: Services) -> dict[str, Job]:
    """Every job this process can run, by name, with its configured interval."""
    settings = services.settings
    cfg = settings.scheduler
    return {
        "reconcile": Job(
            "reconcile",
            settings.reconcile_interval_seconds,
            lambda lease: _reconcile_job(services, lease),
            run_at_start=True,
        ),
        "fixity": Job(
            "fixity", cfg.fixity_interval_seconds, lambda lease: _fixity_job(services, lease)
        ),
        "upkeep": Job(
            "upkeep",
            cfg.upkeep_interval_seconds if settings.tsa_url else 0.0,
            lambda lease: _upkeep_job(services, lease),
        ),
        "sweep": Job(
            "sweep", cfg.sweep_interval_seconds, lambda lease: _sweep_job(services, lease)
        ),
        "disposal": Job(
            "disposal",
            cfg.disposal_interval_seconds,
            lambda lease: _disposal_job(services, lease),
        ),
    }


def holder_name() -> str:
    """Names this instance in lease records: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_leases(services: Services, holder: str | None = None) -> Leases:
    cfg = services.settings.scheduler
    return Leases(
        services.storage,
        holder=holder or holder_name(),
        skew=timedelta(seconds=cfg.lease_skew_seconds),
    )


def run_job(
    job: Job,
    leases: Leases,
    ttl: timedelta,
    *,
    started: Callable[[Lease], None] | None = None,
    finished: Callable[[Lease], None] | None = None,
) -> JobSummary:
    """Run ``job`` once under its lease: take it, renew it from a heartbeat thread every third
    of ``ttl`` while the job runs, release it afterwards. ``started``/``finished`` see the
    lease (the scheduler keeps the running ones, to interrupt them at shutdown).

    Raises:
        LeaseBusyError: another instance runs the job now (nothing was done).
        LeaseLostError: the lease was lost mid-run; the job stopped at a checkpoint.
        Whatever the job raises (ArchiveError, SearchError, ...).
    """
    lease = leases.acquire(job.name, ttl)
    if started is not None:
        started(lease)
    try:
        with lease, lease.keep_alive():
            return job.run(lease)
    finally:
        if finished is not None:
            finished(lease)
