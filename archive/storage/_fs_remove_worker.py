"""The removal worker process of the fs backend (private), and its client.

``FsStorage.delete_many`` hands a big batch, after checking every lock itself, to this
process as plain paths; it removes them with :func:`archive.storage._fs_remove.remove_checked`
(its own threads, its own GIL) and answers only after it synced the surviving directories,
so an answer means the removal is durable. Why a process: see
:mod:`archive.storage._fs_remove`.

Started with ``subprocess`` (``python -c``, calling :func:`main`), not
``multiprocessing``, whose spawn and forkserver start methods import the host program's
``__main__`` again. Protocol on stdin/stdout: length-prefixed JSON messages (4 bytes, big
endian). A request is ``{"root", "checked", "threads"}``; the reply ``{"removed": n}`` or
``{"error": message}``. The worker decides nothing: locks were checked by the caller with
the storage's clock, which the worker does not have.

Lifetime: end of stdin ends the worker, so a SIGKILLed parent leaves no worker behind (a
request in progress is finished first: every path in it passed the checks). It ignores
SIGINT (a Ctrl-C in the terminal reaches the whole process group), so an interrupted
parent still gets its answer or closes it. A worker that died (killed, out of memory) makes
the call that was waiting on it fail with :class:`StorageUnavailableError`; the next call
starts a new one. Removal is idempotent, so a retried or resumed deletion finishes the job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import IO, Any

from archive.errors import StorageUnavailableError
from archive.storage._fs_remove import Checked, remove_checked

__all__ = ["RemovalWorker"]

_HEADER = struct.Struct(">I")
_COMMAND = "from archive.storage._fs_remove_worker import main; main()"
"""Not ``-m``: the package imports this module first, and runpy would then run it twice."""


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _receive(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message; None at a clean end of the stream.

    Raises:
        EOFError: the stream ended inside a message.
    """
    header = stream.read(_HEADER.size)
    if not header:
        return None
    if len(header) < _HEADER.size:
        raise EOFError("truncated message header")
    (length,) = _HEADER.unpack(header)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError("truncated message")
    message: dict[str, Any] = json.loads(body)
    return message


class RemovalWorker:
    """A client of one worker process, started on first use; thread-safe (one request at a
    time) and fork-aware (a forked child starts its own)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._ender: weakref.finalize[Any, Any] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def remove(self, root: str, checked: Checked, threads: int) -> int:
        """:func:`remove_checked` in the worker; the signature of
        :data:`archive.storage._fs_remove.Offload`.

        Raises:
            StorageUnavailableError: the removal failed, or the worker died or cannot start.
        """
        request = {"root": root, "checked": checked, "threads": threads}
        self._forget_if_forked()
        with self._lock:
            process = self._running()
            assert process.stdin is not None and process.stdout is not None
            try:
                _send(process.stdin, request)
                reply = _receive(process.stdout)
            except (OSError, EOFError, ValueError) as exc:
                self._stop()
                raise StorageUnavailableError("fs", f"removal worker failed: {exc}") from exc
            if reply is None:
                code = self._stop()
                raise StorageUnavailableError("fs", f"removal worker died (exit {code})")
        if "error" in reply:
            raise StorageUnavailableError("fs", f"removal worker: {reply['error']}")
        return int(reply["removed"])

    def close(self) -> None:
        """Stop the worker (it finishes a request in progress); idempotent."""
        self._forget_if_forked()
        with self._lock:
            self._stop()

    def _forget_if_forked(self) -> None:
        """In a forked child: leave the parent's worker alone (the child starts its own when
        it needs one) and take a fresh lock (the parent's may have been held at the fork)."""
        if self._pid and self._pid != os.getpid():
            if self._ender is not None:
                self._ender.detach()
            self._process, self._ender, self._pid = None, None, 0
            self._lock = threading.Lock()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is not None:
            self._stop()  # died since the last call
        if self._process is None:
            package_root = str(Path(__file__).resolve().parents[2])
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _COMMAND],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,  # the worker runs this very code, whatever the host's sys.path
                )
            except OSError as exc:
                raise StorageUnavailableError("fs", f"cannot start removal worker: {exc}") from exc
            self._pid = os.getpid()
            # Ended with this client too (garbage collection, interpreter exit) when nobody
            # called close(): no worker outlives its storage.
            self._ender = weakref.finalize(self, _end, self._process)
        return self._process

    def _stop(self) -> int | None:
        """End the worker (see :func:`_end`); its exit code."""
        process, self._process = self._process, None
        if process is None or self._ender is None:
            return None
        code: int | None = self._ender()
        return code


def _end(process: subprocess.Popen[bytes]) -> int:
    """Close the worker's stdin (it ends after the request in progress) and wait for it;
    kill it if it does not end in time. Its exit code."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # a broken pipe: the worker is gone already
                stream.close()
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def main() -> None:
    """Serve removal requests from stdin until it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (request := _receive(stdin)) is not None:
        checked = [[(str(path), bool(legacy)) for path, legacy in g] for g in request["checked"]]
        try:
            reply: dict[str, Any] = {
                "removed": remove_checked(str(request["root"]), checked, int(request["threads"]))
            }
        except StorageUnavailableError as exc:
            reply = {"error": str(exc)}
        _send(stdout, reply)
