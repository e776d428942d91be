"""Fixtures of the archive unit tests: a package input, its built AIP, fs storage, a clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from tests.support.eark import T0, make_input


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
