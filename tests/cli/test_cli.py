"""The `kluis` command as a person runs it: real processes, real data directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AGENCY_X, OWNER_A, OWNER_B
from tests.support import pdfs

ROOT = Path(__file__).parents[2]
KLUIS = str(Path(sys.executable).parent / "kluis")


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KLUIS_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run(
        [KLUIS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def ingest(data_dir: Path, pdf_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        data_dir,
        "ingest",
        str(pdf_file),
        "--agency",
        AGENCY_X,
        "--owner",
        OWNER_A,
        "--type",
        "attest",
        "--title",
        "Attest studietoelage",
        *extra,
    )


@pytest.fixture
def pdf_file(tmp_path: Path, pdf: bytes) -> Path:
    path = tmp_path / "attest.pdf"
    path.write_bytes(pdf)
    return path


def test_ingest_prints_a_receipt_and_is_idempotent(data_dir: Path, pdf_file: Path) -> None:
    first = ingest(data_dir, pdf_file, "--ref", "R1")
    assert first.returncode == 0, first.stderr
    receipt = json.loads(first.stdout)
    assert set(receipt) >= {"aip_id", "sha256", "signature_level", "stored_at"}
    again = ingest(data_dir, pdf_file, "--ref", "R1")
    assert json.loads(again.stdout) == receipt

    other = pdf_file.with_name("other.pdf")
    other.write_bytes(pdfs.make_pdf(["Iets anders"]))
    conflict = ingest(data_dir, other, "--ref", "R1")
    assert conflict.returncode == 4
    assert "already used" in conflict.stderr

    found = run(data_dir, "search", "studietoelage", "--json")
    assert found.returncode == 0, found.stderr
    assert [h["id"] for h in json.loads(found.stdout)["hits"]] == [receipt["aip_id"]]

    verified = run(data_dir, "verify", receipt["aip_id"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["signature"]["signatures"][0]["level"] == "B-B"


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (pdfs.encrypted_pdf, (), "encrypted"),
        (pdfs.javascript_pdf, (), "JavaScript"),
        (pdfs.not_a_pdf, (), "not a PDF"),
        (pdfs.make_pdf, ("--owner", "85073003329"), "national register number"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    data_dir: Path,
    tmp_path: Path,
    make,
    args: tuple[str, ...],
    needle: str,  # type: ignore[no-untyped-def]
) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(make())
    result = ingest(data_dir, bad, *args)
    assert result.returncode == 2
    assert needle in result.stderr
    assert not list((data_dir / "storage").rglob("METS.xml"))


def test_unknown_package_exits_3(data_dir: Path) -> None:
    result = run(data_dir, "get", "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 3
    assert "no archived package" in result.stderr


def test_commands_print_no_third_party_warnings(data_dir: Path) -> None:
    # Not inherited from this process: importing the CLI here extends PYTHONWARNINGS.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["KLUIS_DATA_DIR"] = str(data_dir)
    result = subprocess.run(
        [KLUIS, "get", "00000000-0000-4000-8000-000000000000"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3
    assert "Warning" not in result.stderr, result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(data_dir: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, KLUIS_DATA_DIR=str(data_dir))
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [KLUIS, "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.integration
def test_cli_ingest_while_the_server_runs(server: str, data_dir: Path, pdf_file: Path) -> None:
    token = run(data_dir, "token", "--role", "citizen", "--sub", OWNER_A).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    result = ingest(data_dir, pdf_file, "--ref", "LIVE")
    assert result.returncode == 0, result.stderr
    aip_id = json.loads(result.stdout)["aip_id"]

    # The server holds the index writer; the CLI's update reaches it through the outbox.
    deadline = time.monotonic() + 5
    while True:
        listing = httpx.get(server + "/v1/me/documents", headers=headers).json()
        if listing["total"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [d["id"] for d in listing["items"]] == [aip_id]
    content = httpx.get(f"{server}/v1/me/documents/{aip_id}/content", headers=headers)
    assert content.status_code == 200
    assert content.content.startswith(pdf_file.read_bytes())

    stranger = run(data_dir, "token", "--role", "citizen", "--sub", OWNER_B).stdout.strip()
    denied = httpx.get(
        f"{server}/v1/me/documents/{aip_id}/content",
        headers={"Authorization": f"Bearer {stranger}"},
    )
    assert denied.status_code == 404
    assert denied.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{server}/v1/me/documents").status_code == 401
