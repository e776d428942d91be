"""Pieces of the HTTP edge that need no server: digests, ranges, rate limits, redaction."""

from __future__ import annotations

import base64
import hashlib
import json
import logging

import pytest

from kluis.api.edge import RateLimiter, parse_content_digest
from kluis.api.routers.loket import parse_range
from kluis.errors import BadRequestError, RangeNotSatisfiableError
from kluis.observability import JsonFormatter, redact, request_id_var


def test_content_digest() -> None:
    digest = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    assert parse_content_digest(f"sha-256=:{digest}:") == {"sha-256": hashlib.sha256(b"x").digest()}
    both = parse_content_digest(f"md5=:AAAA:, sha-256=:{digest}:")
    assert list(both) == ["sha-256"]
    for bad in ("sha-256=abc", "md5=:AAAA:", "sha-256=:!!:", ""):
        with pytest.raises(BadRequestError):
            parse_content_digest(bad)


def test_ranges() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    assert parse_range("bytes=0-1,5-6", 100) is None
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=a-b", 100) is None
    for bad in ("bytes=100-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(bad, 100)


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == 1
    assert limiter.take("b") == 0  # per client
    now[0] += 0.5
    assert limiter.take("a") == 0


def test_owner_numbers_never_reach_a_log_line() -> None:
    for text in ("85073003328", "85.07.30-033.28", "owner=85073003328,", "0123456749"):
        assert "[redacted]" in redact(text)
    assert redact("aip 1d3f-42 status 201") == "aip 1d3f-42 status 201"
    record = logging.LogRecord("kluis", logging.INFO, "", 0, "owner %s", ("85073003328",), None)
    record.route = "/v1/x/85073003328"
    token = request_id_var.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-1"
    assert "85073003328" not in json.dumps(line)
