"""``kluis serve --workers 2``: real uvicorn worker processes on loopback.

What must hold with several processes: a deposit made through one worker becomes listable
through any (one index writer, the outbox), ``/metrics`` counts every worker's requests,
and a replica admits no more than the configured rate limit in total.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from kluis.api.app import create_app
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from tests.support.pdfs import make_pdf

OWNER = "85073003328"
KLUIS = str(Path(sys.executable).with_name("kluis"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, **kw: object) -> httpx.Response:
    # A new connection per request, so the kernel may hand it to either worker.
    with httpx.Client(timeout=30) as client:
        return client.get(url, **kw)  # type: ignore[arg-type]


@contextmanager
def _serving(
    data_dir: Path, tmp_path: Path, **env_extra: str
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {
        **os.environ,
        "KLUIS_DATA_DIR": str(data_dir),
        "KLUIS_MODE": "development",
        "KLUIS_RATE_LIMIT_PER_SECOND": "0.5",
        "KLUIS_RATE_LIMIT_BURST": "6",
        "KLUIS_RECONCILE_INTERVAL_SECONDS": "0",
        **env_extra,
    }
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [KLUIS, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)
        started = (tmp_path / "server.log").read_text()
        while started.count("Application startup complete") < 2:
            assert time.monotonic() < deadline, "both workers did not start"
            time.sleep(0.3)
            started = (tmp_path / "server.log").read_text()
        yield base, tmp_path / "server.log", proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


@pytest.fixture
def server(data_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with _serving(data_dir, tmp_path) as (base, log_path, _):
        yield base, log_path


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(b")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _bearer(data_dir: Path, role: str, sub: str) -> dict[str, str]:
    jwt = mint_dev_token(
        data_dir,
        role=role,
        subject=sub,
        issuer="kluis-dev",
        audience="kluis",  # type: ignore[arg-type]
    )
    return {"Authorization": f"Bearer {jwt}"}


def test_workers_share_one_pool_of_ingest_processes(data_dir: Path, tmp_path: Path) -> None:
    with _serving(data_dir, tmp_path, KLUIS_INGEST_PROCESSES="2") as (base, log_path, proc):
        below = _children(proc.pid)
        pool = [pid for pid in below if _comm(pid) == "kluis-ingest"]
        workers = [pid for pid in below if pid not in pool]
        assert len(pool) == 2, [(pid, _comm(pid)) for pid in below]
        assert all(_comm(c) != "kluis-ingest" for w in workers for c in _children(w))
        agency = _bearer(data_dir, "agency", "OVO000001")
        ids = set()
        for n in range(4):  # fresh connections: the kernel may hand each to either worker
            with httpx.Client(timeout=60) as client:
                created = client.post(
                    f"{base}/v1/documents",
                    headers=agency,
                    files={"file": ("a.pdf", make_pdf(["Attest", f"pool {n}"]), "application/pdf")},
                    data={
                        "metadata": json.dumps(
                            {"owner": OWNER, "type": "attest", "title": "P", "ref": f"p{n}"}
                        )
                    },
                )
            assert created.status_code == 201, created.text
            assert created.headers.get("connection") != "close"  # kept: any worker can hand over
            ids.add(created.json()["aip_id"])
        assert len(ids) == 4
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in pool):  # they left with the server
        assert time.monotonic() < deadline, "ingest processes outlived the server"
        time.sleep(0.2)
    assert "Traceback" not in log_path.read_text()


def test_each_worker_takes_its_share_of_the_rate_limit(data_dir: Path) -> None:
    settings = KluisSettings(
        data_dir=data_dir, rate_limit_per_second=10, rate_limit_burst=7, workers=2
    )
    limiter = create_app(settings).state.rate_limiter
    assert (limiter.rate, limiter.burst) == (5, 3)


@pytest.mark.slow
@pytest.mark.integration
def test_workers_share_index_metrics_and_rate_limit(
    server: tuple[str, Path], data_dir: Path, pdf: bytes
) -> None:
    base, log_path = server

    def bearer(role: str, sub: str) -> dict[str, str]:
        return _bearer(data_dir, role, sub)

    # 1. A deposit through whichever worker answers is listed through any worker.
    agency = bearer("agency", "OVO000001")
    with httpx.Client(timeout=60) as client:
        created = client.post(
            f"{base}/v1/documents",
            headers=agency,
            files={"file": ("a.pdf", make_pdf(["Attest", "workers"]), "application/pdf")},
            data={
                "metadata": json.dumps(
                    {"owner": OWNER, "type": "attest", "title": "W", "ref": "w1"}
                )
            },
        )
    assert created.status_code == 201, created.text
    assert created.headers["connection"] == "close"  # the next deposit may go to another worker
    aip_id = created.json()["aip_id"]
    citizen = bearer("citizen", OWNER)
    in_a_row = 0
    deadline = time.monotonic() + 60
    while in_a_row < 3:  # three fresh connections in a row: not one lucky worker
        assert time.monotonic() < deadline, "the deposit never became listable"
        listed = _get(f"{base}/v1/me/documents", headers=citizen)
        if listed.status_code == 429:
            time.sleep(1)
            continue
        assert listed.status_code == 200, listed.text
        found = [d["id"] for d in listed.json()["items"]]
        in_a_row = in_a_row + 1 if aip_id in found else 0
        time.sleep(0.5)

    # 2. /metrics sums over both workers: exactly the readyz calls made, whoever answered.
    for _ in range(12):
        assert _get(f"{base}/readyz").status_code == 200
    text = _get(f"{base}/metrics").text
    counted = sum(
        float(m.group(1))
        for m in re.finditer(
            r'kluis_http_requests_total\{method="GET",route="/readyz",status="200"\} (\S+)', text
        )
    )
    assert counted == 12

    # 3. Burst 6 over 2 workers: 3 each. A fresh token (own bucket), fresh connections.
    other = bearer("agency", "OVO000009")  # not its document: 404 while admitted
    started = time.monotonic()
    answers = [
        _get(f"{base}/v1/documents/{aip_id}/receipt", headers=other).status_code for _ in range(14)
    ]
    elapsed = time.monotonic() - started
    admitted = sum(1 for s in answers if s != 429)
    assert 429 in answers
    assert admitted <= 6 + int(elapsed * 0.5) + 1, answers
    assert "Traceback" not in log_path.read_text()
