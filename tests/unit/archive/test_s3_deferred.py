"""``DeferredDeletes``: S3's background deletions (batched, bounded, drained, logged)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from archive.storage._s3_deferred import DeferredDeletes, Victim


class _Deleter:
    """Records each batch; blocks while ``gate`` is clear; fails on a key named ``bad``."""

    def __init__(self) -> None:
        self.batches: list[list[Victim]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: Sequence[Victim]) -> None:
        self.gate.wait(10)
        self.batches.append(list(batch))
        if any(key == "bad" for key, _ in batch):
            raise RuntimeError("injected")


def test_deletions_within_the_linger_go_out_together() -> None:
    deleter = _Deleter()
    deferred = DeferredDeletes("t-del", deleter, linger=5)
    for i in range(3):
        deferred.submit(f"intents/{i}", f"v{i}")
    deferred.drain()  # sends at once: no waiting for the linger
    assert deleter.batches == [[("intents/0", "v0"), ("intents/1", "v1"), ("intents/2", "v2")]]
    deferred.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("t-del")]


def test_a_full_queue_sends_at_once_and_makes_the_writer_wait() -> None:
    deleter = _Deleter()
    deferred = DeferredDeletes("t-del", deleter, limit=2, linger=30)
    deferred.submit("a", None)
    deferred.submit("b", None)
    deferred.submit("c", None)  # full: a and b are sent now (not after 30 s), then c waits
    deferred.close()
    assert deleter.batches == [[("a", None), ("b", None)], [("c", None)]]


def test_wait_for_concerns_matching_keys_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deleter = _Deleter()
    deferred = DeferredDeletes("t-del", deleter, linger=30)
    with caplog.at_level(logging.WARNING, logger="archive.storage.s3"):
        deferred.wait_for("intents/")  # nothing pending: returns at once
        deferred.submit("bad", None)
        deferred.wait_for("intents/")  # nothing pending there: returns at once
        assert deleter.batches == []
        deferred.wait_for("ba")
        assert deleter.batches == [[("bad", None)]]
        deferred.close()
    assert "deferred delete of bad failed" in caplog.text
    assert "injected" in caplog.text
