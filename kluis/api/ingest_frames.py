"""The frames between an HTTP worker and an ingest process (:mod:`kluis.api.ingest_pool`):
one connection per deposit, one frame each way, each an 8-byte length and a pickle.

Only the server's own processes speak this (the socket is private to its user): pickles are
trusted here, never on any interface a client reaches.
"""

from __future__ import annotations

import struct
import traceback
from dataclasses import dataclass
from typing import Any, BinaryIO

HEADER = struct.Struct("!Q")
PROCESS_NAME = "kluis-ingest"
"""The ingest processes' name in ``ps`` and ``/proc/<pid>/comm``."""


@dataclass(frozen=True)
class Failure:
    """A domain exception from an ingest process, in a form that always pickles."""

    cls: type[BaseException]
    args: tuple[Any, ...]
    state: dict[str, Any]
    trace: str

    def rebuild(self) -> BaseException:
        """The exception again, without calling ``__init__`` (whose signature differs from
        ``args`` for most domain errors)."""
        exc = self.cls.__new__(self.cls)
        exc.args = self.args
        exc.__dict__.update(self.state)
        return exc


def failure(exc: BaseException) -> Failure:
    """``exc`` (being handled now) as a :class:`Failure`, with its traceback's text."""
    return Failure(type(exc), exc.args, dict(exc.__dict__), traceback.format_exc())


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO) -> bytes:
    """One frame's body.

    Raises:
        EOFError: the other side closed the connection before a whole frame.
    """
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("the other side closed the connection")
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the other side closed the connection")
    return body
