"""Byte plumbing of ``S3Storage`` (private): S3 timestamps, exact reads, and the object
reader that resumes after a broken connection."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import urllib3

from archive.errors import StorageUnavailableError

log = logging.getLogger("archive.storage.s3")

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$")

Get = Callable[[str, int, "int | None", "str | None"], Any]
"""``(key, offset, length, version) -> response`` (None for zero bytes): a ranged GET."""


def parse_s3_time(value: str) -> datetime:
    """Parse an S3 timestamp with any number of fractional digits (Ceph sends 9).

    Fractions beyond microseconds are truncated; a missing zone means UTC.

    Raises:
        ValueError: not an ISO 8601 timestamp.
    """
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError(f"not an S3 timestamp: {value!r}")
    base, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    parsed = datetime.fromisoformat(base).replace(microsecond=micro)
    if zone in (None, "Z"):
        return parsed.replace(tzinfo=UTC)
    return parsed.replace(tzinfo=datetime.fromisoformat(f"2000-01-01T00:00:00{zone}").tzinfo)


def ceil_second(value: datetime) -> datetime:
    return value if value.microsecond == 0 else value.replace(microsecond=0) + timedelta(seconds=1)


def s3_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def read_exactly(data: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream), in one allocation if possible."""
    first = data.read(n)
    if not first or len(first) >= n:
        return first or b""
    pieces = [first]
    got = len(first)
    while got < n:
        more = data.read(n - got)
        if not more:
            break
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


class ObjectReader(io.RawIOBase):
    """Streams one object version; resumes with a ranged GET after a broken connection."""

    def __init__(self, get: Get, key: str, offset: int, length: int | None, attempts: int) -> None:
        self._get = get
        self._attempts = attempts
        self._key = key
        self._offset = offset
        self._left = length
        self._response = get(key, offset, length, None)
        self._version = (
            self._response.headers.get("x-amz-version-id") if self._response is not None else None
        )
        self._resumes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._response is None or self._left == 0 or len(buffer) == 0:
            return 0
        want = len(buffer) if self._left is None else min(len(buffer), self._left)
        while True:
            try:
                data = self._response.read(want)
                break
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self._resumes += 1
                if self._resumes > self._attempts:
                    raise StorageUnavailableError("s3", f"read {self._key}: {exc}") from exc
                self._release()
                self._response = self._get(self._key, self._offset, self._left, self._version)
        n = len(data)
        buffer[:n] = data
        self._offset += n
        if self._left is not None:
            self._left -= n
        return n

    def _release(self) -> None:
        if self._response is not None:
            try:
                self._response.close()
                self._response.release_conn()
            except Exception:  # closing a broken connection: nothing to report
                log.debug("closing s3 response of %s failed", self._key)

    def close(self) -> None:
        self._release()
        self._response = None
        super().close()
