"""Time-based jobs of ``kluis serve`` (APScheduler 3.x, in process).

For now one job: :func:`kluis.maintenance.reconcile`, so a reference whose ingest crashed
becomes usable again and a stored-but-unindexed document becomes visible without an
operator. The job is idempotent; the storage lease that keeps replicas from running the
same job at once comes with the retention scheduler.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from kluis.maintenance import reconcile
from kluis.wiring import Services

log = logging.getLogger("kluis.scheduler")


def _reconcile_job(services: Services) -> None:
    try:
        summary = reconcile(services)
    except Exception:
        log.exception("reconcile failed; retrying at the next interval")
        return
    if summary.ingest.discarded_packages or summary.indexed or summary.ingest.sealed_packages:
        log.info(
            "reconcile: discarded %d incomplete packages, sealed %d, indexed %d documents",
            len(summary.ingest.discarded_packages),
            len(summary.ingest.sealed_packages),
            len(summary.indexed),
        )


def start_scheduler(services: Services, *, reconcile_every: float) -> BackgroundScheduler:
    """Start the jobs; the first reconcile runs at once. Call ``shutdown()`` when done."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        _reconcile_job,
        "interval",
        seconds=reconcile_every,
        args=(services,),
        id="reconcile",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler
