"""A package commit on S3: its requests, their order, and the intent's deferred deletion.

``AipStore.commit`` on ``S3Storage.put_batches``: the marker's key is claimed (its guard)
at once with the intent's PUT, instead of a HEAD before it; the files go at once; the root
METS last; the intent is deleted by its version id in the background. These tests pin that
request sequence and what happens when the background deletion fails or never runs.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3

from archive.commit_intent import intent_key
from archive.errors import ObjectExistsError
from archive.package import build_aip
from archive.storage.s3 import S3Storage
from archive.store import AipStore
from tests.support.eark import make_input
from tests.support.s3 import S3Server

pytestmark = pytest.mark.s3

UNTIL = datetime.now(UTC) + timedelta(days=1)


class _Recording(urllib3.PoolManager):
    """Records (method, bucket, key, query) of every request, then sends it."""

    def __init__(self) -> None:
        super().__init__(retries=urllib3.Retry(total=0), maxsize=16)
        self.sent: list[tuple[str, str, str, str]] = []
        self._lock = threading.Lock()

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urllib.parse.urlsplit(url)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        with self._lock:
            self.sent.append((method, bucket, urllib.parse.unquote(key), parts.query))
        return super().urlopen(method, url, *args, **kwargs)


def _package() -> Any:
    return build_aip(make_input(str(uuid.uuid4())))


def test_a_commit_claims_with_the_intent_and_deletes_it_by_version_afterwards(
    s3: S3Storage,
) -> None:
    store = AipStore(s3)
    store.commit(_package(), retain_until=UNTIL)  # connections and bucket region warm
    pkg = _package()
    recording = _Recording()
    s3._client._http = recording
    store.commit(pkg, retain_until=UNTIL)
    s3.drain()
    sent = recording.sent
    root = f"aips/{pkg.aip_id}/METS.xml"
    intent = intent_key(pkg.aip_id)
    # 1 guard + 1 intent + the files + the root METS + the intent's share of one
    # DeleteObjects (sent here at once by drain): no HEAD, no listing.
    assert len(sent) == len(pkg.files) + 4
    assert {(m, b, k) for m, b, k, _ in sent[:2]} == {
        ("PUT", s3.guard_bucket, root),
        ("PUT", s3.bucket, intent),
    }
    files = {(m, b, k) for m, b, k, _ in sent[2 : 2 + len(pkg.files)]}
    assert files == {("PUT", s3.bucket, f"aips/{pkg.aip_id}/{p}") for p in pkg.files}
    assert sent[-2][:3] == ("PUT", s3.bucket, root)
    assert sent[-1] == ("POST", s3.bucket, "", "delete=")
    assert list(s3.keys("commit-intents/")) == []
    assert store.verify(pkg.aip_id).ok


def test_a_failed_deferred_delete_is_logged_and_reconcile_removes_the_intent(
    s3: S3Storage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise urllib3.exceptions.ProtocolError("injected")

    monkeypatch.setattr(s3._client, "remove_objects", fail)
    store = AipStore(s3)
    pkg = _package()
    with caplog.at_level(logging.WARNING, logger="archive.storage.s3"):
        store.commit(pkg, retain_until=UNTIL)
        s3.drain()
    assert f"deferred delete of {intent_key(pkg.aip_id)} failed" in caplog.text
    assert "injected" in caplog.text
    assert list(store.commit_intents()) == [pkg.aip_id]  # left for reconcile
    monkeypatch.undo()
    assert store.complete(pkg.aip_id) is False  # committed already: only its intent goes
    assert list(store.commit_intents()) == []
    assert store.verify(pkg.aip_id).ok


def test_an_intent_whose_deletion_never_ran_is_removed_by_complete(server: S3Server) -> None:
    # A writer killed after the root METS and before its background DELETE: modelled by a
    # storage whose deferred deletions are dropped.
    writer = server.storage(backoff=0.0)
    writer._deferred.submit = lambda key, version: None  # type: ignore[method-assign]
    pkg = _package()
    AipStore(writer).commit(pkg, retain_until=UNTIL)
    writer.close()
    reader = server.storage(bucket=writer.bucket, guard_bucket=writer.guard_bucket)
    try:
        store = AipStore(reader)
        assert store.is_committed(pkg.aip_id)
        assert list(store.commit_intents()) == [pkg.aip_id]
        assert store.complete(pkg.aip_id, written_before=datetime.now(UTC)) is False
        assert list(store.commit_intents()) == []
        assert store.verify(pkg.aip_id).ok
    finally:
        reader.close()


def test_close_finishes_the_deferred_deletions_and_stops_their_thread(server: S3Server) -> None:
    writer = server.storage(backoff=0.0)
    pkgs = [_package() for _ in range(3)]
    for pkg in pkgs:
        AipStore(writer).commit(pkg, retain_until=UNTIL)
    writer.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("s3-")]
    reader = server.storage(bucket=writer.bucket, guard_bucket=writer.guard_bucket)
    try:
        assert list(AipStore(reader).commit_intents()) == []
    finally:
        reader.close()


@pytest.mark.parametrize("guard", [True, False], ids=["guard", "no-guard"])
def test_a_second_commit_stores_nothing(server: S3Server, guard: bool) -> None:
    # Without a guard bucket the claim is a HEAD (stores that honour If-None-Match need no
    # guard); either way the intent sent with it is removed again, every version of it.
    storage = server.storage(backoff=0.0, **({} if guard else {"guard_bucket": None}))
    try:
        store = AipStore(storage)
        pkg = _package()
        store.commit(pkg, retain_until=UNTIL)
        storage.drain()
        recording = _Recording()
        storage._client._http = recording
        with pytest.raises(ObjectExistsError):
            store.commit(pkg, retain_until=UNTIL)
        stored = [k for m, b, k, _ in recording.sent if m == "PUT" and b == storage.bucket]
        assert stored == [intent_key(pkg.aip_id)]  # with the claim, then removed again:
        assert storage._versions(intent_key(pkg.aip_id)) == []
        assert store.verify(pkg.aip_id).ok
    finally:
        storage.close()


def test_deferred_deletions_share_one_request(s3: S3Storage) -> None:
    store = AipStore(s3)
    recording = _Recording()
    s3._client._http = recording
    pkgs = [_package() for _ in range(3)]
    for pkg in pkgs:
        store.commit(pkg, retain_until=UNTIL)  # within the linger of the first one's
    s3.drain()
    assert [s for s in recording.sent if s[0] in ("POST", "DELETE")] == [
        ("POST", s3.bucket, "", "delete=")
    ]
    assert list(store.commit_intents()) == []
