"""Secrets that embedded mode generates on first use under the data directory.

Files are created atomically (written to a temp file, then hard-linked into place), so two
processes starting at once agree on one secret; both read back the winner's file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path


def ensure_secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Return the file's bytes, creating it with ``make()`` (mode 0600) if it is missing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, make())
        os.fsync(fd)
        os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won: use its secret
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def ensure_random_secret(path: Path, nbytes: int = 32) -> bytes:
    return ensure_secret_file(path, lambda: secrets.token_bytes(nbytes))
