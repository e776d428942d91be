"""The S3 server of the tests (Ceph RGW from ``deploy/ceph/start.sh``): fresh buckets on it.

``KLUIS_TEST_S3_ENDPOINT``, ``KLUIS_TEST_S3_ACCESS_KEY`` and ``KLUIS_TEST_S3_SECRET_KEY``
name the server (``make test`` sets them). Without them S3 tests skip, unless
``KLUIS_REQUIRE_BACKENDS`` lists ``s3`` (as ``make test`` and CI do): then they fail, so a
server that did not come up can never pass silently.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
from minio import Minio

from archive.storage.s3 import S3Storage


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def client(self) -> Minio:
        url = urllib.parse.urlparse(self.endpoint)
        return Minio(
            url.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=url.scheme == "https",
        )

    def new_bucket(self) -> str:
        """A fresh bucket with Object Lock (so versioning too). Locked objects outlive tests:
        the test cluster is wiped by ``S3_WIPE=1 deploy/ceph/stop.sh``."""
        name = f"kluis-t-{uuid.uuid4().hex[:16]}"
        self.client().make_bucket(name, object_lock=True)
        return name

    def new_guard_bucket(self) -> str:
        """A fresh unversioned bucket for create guards (Ceph ignores If-None-Match in
        versioned buckets, see archive.storage.s3)."""
        name = f"kluis-g-{uuid.uuid4().hex[:16]}"
        self.client().make_bucket(name)
        return name

    def storage(self, bucket: str | None = None, **kwargs: object) -> S3Storage:
        kwargs.setdefault("guard_bucket", self.new_guard_bucket())
        return S3Storage(
            self.endpoint,
            self.access_key,
            self.secret_key,
            bucket or self.new_bucket(),
            **kwargs,  # type: ignore[arg-type]
        )


def required_backends() -> set[str]:
    return {b.strip() for b in os.environ.get("KLUIS_REQUIRE_BACKENDS", "").split(",") if b}


def s3_server() -> S3Server:
    """The configured server, or skip (fail when s3 is a required backend)."""
    endpoint = os.environ.get("KLUIS_TEST_S3_ENDPOINT")
    if not endpoint:
        reason = "no S3 server: set KLUIS_TEST_S3_ENDPOINT (make test starts Ceph RGW)"
        if "s3" in required_backends():
            pytest.fail(f"KLUIS_REQUIRE_BACKENDS has s3 but {reason}")
        pytest.skip(reason)
    server = S3Server(
        endpoint,
        os.environ.get("KLUIS_TEST_S3_ACCESS_KEY", "kluis-test-access"),
        os.environ.get("KLUIS_TEST_S3_SECRET_KEY", "kluis-test-secret-0123456789"),
    )
    try:
        server.client().list_buckets()
    except Exception as exc:
        pytest.fail(f"S3 server {endpoint} is configured but does not answer: {exc}")
    return server
