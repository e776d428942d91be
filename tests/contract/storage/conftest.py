"""The ``storage`` fixture: one contract suite, run against every Storage backend.

Adding a backend is one line in ``BACKENDS`` (plus its ``Backend`` factory), e.g.
``"s3": Backend(make=_s3, breaks=_s3_stop, mark=pytest.mark.s3)``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archive.storage.base import Storage
from archive.storage.fs import FsStorage


@dataclass(frozen=True)
class Backend:
    make: Callable[[Path], Storage]
    """Build a fresh, empty backend (``tmp_path`` is the test's private directory)."""
    breaks: Callable[[Storage, Path], None]
    """Make the backend unreachable, for the "no foreign exception escapes" tests."""
    mark: Any = None


def _fs(tmp: Path) -> Storage:
    return FsStorage(tmp / "fs-root")


def _fs_break(storage: Storage, tmp: Path) -> None:
    # The storage root disappears and a plain file takes its place (a lost mount).
    shutil.rmtree(tmp / "fs-root")
    (tmp / "fs-root").write_bytes(b"not a directory")


BACKENDS: dict[str, Backend] = {
    "fs": Backend(make=_fs, breaks=_fs_break),
}


@pytest.fixture(
    params=[pytest.param(name, marks=b.mark or ()) for name, b in BACKENDS.items()],
)
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def storage(backend: Backend, tmp_path: Path) -> Iterator[Storage]:
    built = backend.make(tmp_path)
    try:
        yield built
    finally:
        built.close()
