"""What each ingest process of the server's pool runs (:mod:`kluis.api.ingest_pool`).

It opens its own backends from the server's settings (this module is the process's
composition root), says it is ready, then takes one deposit per connection from the shared
listening socket: :func:`kluis.api.deposits.deposit` (the ingest and its audit record), the
outcome or the domain error sent back as one frame. It leaves when its owner's pipe ends (a
close, or the owner's death), after the deposit in hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import socket
import threading
from multiprocessing.connection import Connection
from typing import Any, BinaryIO, cast

from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.api.deposits import deposit
from kluis.api.ingest_frames import PROCESS_NAME, Failure, failure, frame, read_frame
from kluis.audit import AuditLog
from kluis.settings import KluisSettings

_services: Any = None
"""This process's backends."""
_audit: AuditLog | None = None
"""This process's audit log (over its own storage backend, the same store)."""
_PR_SET_NAME = 15


def serve(
    settings: KluisSettings, listener: socket.socket, lifeline: Connection, ready: Connection
) -> None:
    """Open the backends, say so on ``ready``, then take deposits from ``listener`` until
    ``lifeline`` ends (the deposit in hand is finished first)."""
    global _services, _audit
    # A terminal's ^C reaches the whole process group: the owner decides when this stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _name_process(PROCESS_NAME)
    try:
        from kluis.wiring import build_services

        _services = build_services(settings)
        _audit = AuditLog(_services.storage)
    except BaseException as exc:
        ready.send(failure(exc))
        raise
    ready.send(None)
    ready.close()
    busy = threading.Lock()

    def leave_when_told() -> None:
        with contextlib.suppress(EOFError, OSError):
            lifeline.recv()
        with busy:  # never in the middle of a deposit
            _services.close()
            os._exit(0)

    threading.Thread(target=leave_when_told, name="kluis-ingest-lifeline", daemon=True).start()
    with listener:
        while True:
            connection, _ = listener.accept()
            with busy, connection, connection.makefile("rwb") as stream:
                _serve_one(cast(BinaryIO, stream))


def _name_process(name: str) -> None:
    """Show this process as ``name`` in ``ps``, ``top`` and ``/proc/<pid>/comm`` (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, name.encode(), 0, 0, 0)


def _serve_one(stream: BinaryIO) -> None:
    try:
        request = read_frame(stream)
    except (EOFError, OSError):
        return  # the worker went away before handing the deposit over
    submission, pdf, client_id = pickle.loads(request)
    outcome = _deposit(submission, pdf, client_id)
    try:
        raw = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception carrying something unpicklable: a plain 500
        raw = pickle.dumps(Failure(RuntimeError, (f"unpicklable outcome: {exc}",), {}, ""))
    try:
        stream.write(frame(raw))
        stream.flush()
    except OSError:
        pass  # the worker went away (its client left): the deposit is done all the same


def _deposit(submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult | Failure:
    assert _audit is not None, "serve opens the audit log first"
    try:
        return deposit(_services.ingestor, _audit, _services.keyer, submission, pdf, client_id)
    except Exception as exc:
        return failure(exc)
