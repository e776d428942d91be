"""The ``storage`` fixture: one contract suite, run against every Storage backend.

Adding a backend is one line in ``BACKENDS`` (plus its ``Backend`` factory). ``s3`` runs on
the server named by ``KLUIS_TEST_S3_ENDPOINT`` (a fresh Object Lock bucket per test); see
:mod:`tests.support.s3` for when it skips and when it fails.
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
from archive.storage.s3 import S3Storage
from tests.support.s3 import s3_server


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


def _s3(tmp: Path) -> Storage:
    return s3_server().storage(backoff=0.01)


def _s3_break(storage: Storage, tmp: Path) -> None:
    # The server goes away: point the client at a closed port (and do not wait to retry).
    assert isinstance(storage, S3Storage)
    storage._client._base_url._url = storage._client._base_url._url._replace(netloc="127.0.0.1:9")
    storage._sleep = lambda seconds: None


BACKENDS: dict[str, Backend] = {
    "fs": Backend(make=_fs, breaks=_fs_break),
    "s3": Backend(make=_s3, breaks=_s3_break, mark=pytest.mark.s3),
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
