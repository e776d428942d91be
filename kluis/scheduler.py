"""Time-based jobs of ``kluis serve`` (APScheduler 3.x, in process), each under a lease.

The jobs (:func:`kluis.maintenance.job_table`): ``reconcile`` (clean up after crashed ingests,
index what the index lacks; also at start-up), ``fixity`` (rotation: the next N packages each
run, the whole archive every cycle), ``upkeep`` (augment settled B-T signatures to B-LTA,
renew evidence about to expire; only with ``tsa_url``), ``sweep`` (propose what is due for
disposal) and ``disposal`` (execute approved proposals, resume interrupted ones). Intervals,
the lease ttl and the batch sizes come from ``[scheduler]`` in the settings
(``reconcile_interval_seconds`` for reconcile).

Every run takes the job's lease in storage first (:mod:`archive.leases`), so several replicas
on one store never run the same job at once: a replica that finds the lease taken skips that
run. The holder renews the lease from a heartbeat while the job runs; a replica that is
killed stops renewing and another takes the job over once the lease has expired (ttl plus the
skew margin). Jobs keep checkpoints in storage, so the new holder resumes where the old one
stopped. Shutdown interrupts running jobs before their next unit of work and releases their
leases. ``kluis jobs run NAME`` runs one job once under the same lease (cron deployments).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import undefined
from prometheus_client import CollectorRegistry, Counter

from archive.errors import LeaseBusyError, LeaseLostError
from archive.leases import Lease, Leases
from kluis.maintenance import Job, build_leases, job_table, run_job
from kluis.wiring import Services

log = logging.getLogger("kluis.scheduler")


class JobMetrics:
    """Prometheus counters of the scheduled jobs (registered on the app's registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Counter(
            "kluis_job_runs",
            "Scheduled job runs by outcome (ok, problems, busy, lost, failed)",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.problems = Counter(
            "kluis_job_problems",
            "Problems jobs found: corrupt packages (fixity), failed renewals (upkeep)",
            ["job"],
            registry=self.registry,
        )


class _Running:
    """The leases of the jobs running now, so shutdown can interrupt them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: set[Lease] = set()
        self._stopping: str | None = None

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._stopping is not None:  # started while shutting down: stop at once
                lease.interrupt(self._stopping)

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def interrupt(self, reason: str) -> None:
        with self._lock:
            self._stopping = reason
            for lease in self._leases:
                lease.interrupt(reason)


class JobScheduler:
    """The running scheduler of one instance."""

    def __init__(self, scheduler: BackgroundScheduler, running: _Running, holder: str) -> None:
        self.scheduler = scheduler
        self.holder = holder
        self._running = running

    def shutdown(self, wait: bool = True) -> None:
        """Stop scheduling; running jobs stop before their next unit of work (their
        checkpoints let the next holder resume) and release their leases."""
        self._running.interrupt("the instance is shutting down")
        self.scheduler.shutdown(wait=wait)


def run_scheduled(
    job: Job, leases: Leases, ttl: timedelta, metrics: JobMetrics, running: _Running
) -> str:
    """One scheduled run: never raises (the scheduler would only log it); returns the outcome."""
    try:
        summary = run_job(job, leases, ttl, started=running.add, finished=running.discard)
    except LeaseBusyError as exc:
        log.debug("%s: skipped, %s", job.name, exc)
        outcome = "busy"
    except LeaseLostError as exc:
        log.warning("%s stopped: %s; it resumes from its checkpoint", job.name, exc)
        outcome = "lost"
    except Exception:
        log.exception("%s failed; retrying at the next interval", job.name)
        outcome = "failed"
    else:
        if summary.problems:
            metrics.problems.labels(job.name).inc(summary.problems)
            log.error("%s: %s", job.name, summary.text)
            outcome = "problems"
        else:
            log.info("%s: %s", job.name, summary.text)
            outcome = "ok"
    metrics.runs.labels(job.name, outcome).inc()
    return outcome


def start_scheduler(
    services: Services,
    *,
    jobs: Mapping[str, Job] | None = None,
    metrics: JobMetrics | None = None,
    leases: Leases | None = None,
) -> JobScheduler:
    """Start every job with an interval > 0 (those marked ``run_at_start`` run at once too).

    Call ``shutdown()`` when done.

    ``jobs`` defaults to :func:`kluis.maintenance.job_table` (tests pass their own).
    """
    table = job_table(services) if jobs is None else jobs
    leases = leases or build_leases(services)
    metrics = metrics or JobMetrics()
    ttl = timedelta(seconds=services.settings.scheduler.lease_ttl_seconds)
    running = _Running()
    scheduler = BackgroundScheduler(timezone=UTC)
    for job in table.values():
        if job.interval_seconds <= 0:
            continue
        scheduler.add_job(
            run_scheduled,
            "interval",
            seconds=job.interval_seconds,
            args=(job, leases, ttl, metrics, running),
            id=job.name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) if job.run_at_start else undefined,
        )
    scheduler.start()
    log.info("scheduler started as %s", leases.holder)
    return JobScheduler(scheduler, running, leases.holder)
