"""Fixtures of the archive unit tests: a package input, its built AIP, fs and S3 storage, a
clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.storage.s3 import S3Storage
from archive.store import AipStore
from tests.support.eark import T0, make_input
from tests.support.s3 import S3Server, s3_server


class Clock:
    """A settable clock for retention tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def inp() -> PackageInput:
    return make_input()


@pytest.fixture
def pkg(inp: PackageInput) -> BuiltPackage:
    return build_aip(inp, software_version="1.2.3")


@pytest.fixture
def fs(tmp_path: Path, clock: Clock) -> Iterator[FsStorage]:
    storage = FsStorage(tmp_path / "store", clock=clock)
    yield storage
    storage.close()


@pytest.fixture
def store(fs: FsStorage, clock: Clock) -> AipStore:
    return AipStore(fs, clock=clock)


@pytest.fixture(scope="module")
def server() -> S3Server:
    """The test S3 server (skips, or fails when s3 is required, without one)."""
    return s3_server()


@pytest.fixture
def s3(server: S3Server) -> Iterator[S3Storage]:
    """S3 storage on the test server, without retry backoff."""
    storage = server.storage(backoff=0.0)
    try:
        yield storage
    finally:
        storage.close()
