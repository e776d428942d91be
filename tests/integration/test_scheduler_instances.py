"""Two scheduler instances (two processes) on one store, on fs and on S3 (Ceph RGW).

Each child runs the real scheduler (:func:`kluis.scheduler.start_scheduler`) with the real
jobs (reconcile, fixity, sweep, disposal) at sub-second intervals plus a ``probe`` job, every
job wrapped so that it records when it ran. Afterwards no two runs of one job overlap in time,
and both instances ran jobs. Then one instance runs a job that never ends and is SIGKILLed:
the other takes the job over only after the lease expired (ttl + skew), not before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archive.leases import Lease
from ingest.submission import Submission
from kluis.maintenance import Job, JobSummary, build_leases, job_table
from kluis.scheduler import start_scheduler
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from tests.conftest import AGENCY_X, OWNER_A
from tests.support.s3 import s3_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
TTL = 2.0
SKEW = 0.5


def _recorded(name: str, run: Callable[[Lease], JobSummary], out: str) -> Job:
    def wrapped(lease: Lease) -> JobSummary:
        start = time.time()
        try:
            return run(lease)
        finally:
            with open(out, "a") as log:
                log.write(json.dumps([name, lease.holder, start, time.time()]) + "\n")

    return Job(name, 0.1, wrapped)


def _probe(lease: Lease) -> JobSummary:
    for _ in range(3):
        lease.keep()
        time.sleep(0.05)
    return JobSummary("probed")


def _forever(out: str) -> Callable[[Lease], JobSummary]:
    def run(lease: Lease) -> JobSummary:
        with open(out, "a") as log:
            log.write(json.dumps(["forever", lease.holder, time.time()]) + "\n")
        while True:
            lease.keep()
            time.sleep(0.05)

    return run


def instance(out: str, forever: bool) -> None:
    """Child process: the scheduler with recorded jobs, on the settings in the environment."""
    services = build_services(KluisSettings())
    table = {
        name: _recorded(name, job.run, out)
        for name, job in job_table(services).items()
        if name != "upkeep"
    }
    table["probe"] = _recorded("probe", _probe, out)
    if forever:
        table = {"forever": Job("forever", 0.1, _forever(out))}
    holder = f"instance-{os.getpid()}"
    start_scheduler(services, jobs=table, leases=build_leases(services, holder=holder))
    print("started", flush=True)
    time.sleep(600)


def _env(backend: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env.update(
        KLUIS_DATA_DIR=str(data_dir),
        KLUIS_SCHEDULER__LEASE_TTL_SECONDS=str(TTL),
        KLUIS_SCHEDULER__LEASE_SKEW_SECONDS=str(SKEW),
        KLUIS_SCHEDULER__FIXITY_SAMPLE_SIZE="2",
    )
    if backend == "s3":
        server = s3_server()
        env.update(
            KLUIS_STORAGE="s3",
            KLUIS_S3__ENDPOINT=server.endpoint,
            KLUIS_S3__ACCESS_KEY=server.access_key,
            KLUIS_S3__SECRET_KEY=server.secret_key,
            KLUIS_S3__BUCKET=server.new_bucket(),
            KLUIS_S3__GUARD_BUCKET=server.new_guard_bucket(),
            KLUIS_S3__GUARD_TIMEOUT_SECONDS="2",
        )
    return env


def _settings(env: dict[str, str]) -> KluisSettings:
    values: dict[str, object] = {"data_dir": Path(env["KLUIS_DATA_DIR"])}
    if env.get("KLUIS_STORAGE") == "s3":
        values["storage"] = "s3"
        values["s3"] = {
            "endpoint": env["KLUIS_S3__ENDPOINT"],
            "access_key": env["KLUIS_S3__ACCESS_KEY"],
            "secret_key": env["KLUIS_S3__SECRET_KEY"],
            "bucket": env["KLUIS_S3__BUCKET"],
            "guard_bucket": env["KLUIS_S3__GUARD_BUCKET"],
        }
    return KluisSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    return _env(str(request.param), data_dir)


class Instance:
    def __init__(self, env: dict[str, str], out: Path, log: Path, *, forever: bool) -> None:
        call = f"instance({str(out)!r}, {forever})"
        self._log = open(log, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from tests.integration.test_scheduler_instances import instance; {call}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "started", log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    started: list[Instance] = []
    yield started
    for one in started:
        one.kill()


def _rows(out: Path) -> list[list[object]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_two_instances_never_run_the_same_job_at_once(
    env: dict[str, str], tmp_path: Path, instances: list[Instance], pdf: bytes
) -> None:
    env = {
        **env,
        "KLUIS_RECONCILE_INTERVAL_SECONDS": "0.1",
        "KLUIS_SCHEDULER__FIXITY_INTERVAL_SECONDS": "0.1",
    }
    services = build_services(_settings(env))
    try:
        for n in range(3):
            services.ingestor.ingest(Submission(AGENCY_X, OWNER_A, "attest", "A", f"S-{n}"), pdf)
    finally:
        services.close()
    out = tmp_path / "runs.jsonl"
    for n in range(2):
        instances.append(Instance(env, out, tmp_path / f"instance-{n}.log", forever=False))
    time.sleep(8)
    for one in instances:
        one.kill()
    rows = _rows(out)
    by_job: dict[str, list[tuple[float, float, str]]] = {}
    for job, holder, start, end in rows:
        by_job.setdefault(str(job), []).append((float(start), float(end), str(holder)))  # type: ignore[arg-type]
    assert set(by_job) == {"reconcile", "fixity", "sweep", "disposal", "probe"}
    for job, runs in by_job.items():
        runs.sort()
        overlaps = [(x, y) for x, y in zip(runs, runs[1:], strict=False) if y[0] < x[1]]
        assert overlaps == [], job
    assert len(by_job["probe"]) >= 5
    assert len({holder for runs in by_job.values() for _, _, holder in runs}) == 2


def test_a_killed_instances_job_is_taken_over_after_its_lease_expired(
    env: dict[str, str], tmp_path: Path, instances: list[Instance]
) -> None:
    out = tmp_path / "runs.jsonl"
    first = Instance(env, out, tmp_path / "first.log", forever=True)
    instances.append(first)
    deadline = time.monotonic() + 20
    while not _rows(out):
        assert time.monotonic() < deadline, "the first instance never started its job"
        time.sleep(0.05)
    instances.append(Instance(env, out, tmp_path / "second.log", forever=True))
    time.sleep(2 * TTL)  # the first keeps its lease alive: the second must wait
    assert len(_rows(out)) == 1
    services = build_services(_settings(env))
    try:
        held = build_leases(services).current("forever")
    finally:
        services.close()
    assert held is not None and held.holder == f"instance-{first.proc.pid}"

    first.kill()
    killed = time.time()
    deadline = time.monotonic() + TTL + SKEW + 15
    while len(_rows(out)) < 2:
        assert time.monotonic() < deadline, "no takeover"
        time.sleep(0.05)
    _, holder, started = _rows(out)[1]
    assert holder != held.holder
    assert isinstance(started, float)
    # Not before the lease ran out (it was renewed at most TTL before the kill) ...
    assert started > killed
    # ... and soon after it did (ttl + skew + the job interval; + a guard timeout on S3).
    assert started - killed < TTL + SKEW + 1.0 + 2.0
