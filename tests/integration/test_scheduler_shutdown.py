"""Shutting the scheduler down stops a running job before its next unit of work and
releases its lease, so another instance can take the job over at once."""

from __future__ import annotations

import threading
import time

from archive.leases import Lease
from kluis.maintenance import Job, JobSummary, build_leases
from kluis.scheduler import start_scheduler
from kluis.wiring import Services


def test_shutdown_interrupts_a_running_job_and_releases_its_lease(services: Services) -> None:
    running = threading.Event()
    units: list[float] = []

    def endless(lease: Lease) -> JobSummary:
        while True:
            lease.keep()
            running.set()
            units.append(time.monotonic())
            time.sleep(0.05)

    scheduler = start_scheduler(
        services, jobs={"endless": Job("endless", 60, endless, run_at_start=True)}
    )
    assert running.wait(10)
    asked = time.monotonic()
    scheduler.shutdown(wait=True)
    assert time.monotonic() - asked < 2
    assert units[-1] < asked + 0.2  # no unit started after the interrupt was seen
    record = build_leases(services).current("endless")
    assert record is not None and record.released
