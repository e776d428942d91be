"""Structured JSON logs with a request id, redaction of owner numbers, Prometheus metrics.

No national number may reach a log line: every formatted message passes through
:func:`redact`, which masks anything shaped like a national register number (11 digits,
with or without the usual dots and dash) or an enterprise number (10 digits).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kluis_request_id", default=None
)

_OWNER_NUMBER = re.compile(
    r"(?<![0-9])(?:\d{2}[.]?\d{2}[.]?\d{2}[-.]?\d{3}[.]?\d{2}|\d{4}[.]?\d{3}[.]?\d{3})(?![0-9])"
)


def redact(text: str) -> str:
    """Mask anything that looks like a national register or enterprise number."""
    return _OWNER_NUMBER.sub("[redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    _STANDARD = frozenset(
        logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
        | {"message", "asctime", "taskName"}
    )

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "pid": record.process,  # which worker of `kluis serve --workers N`
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record to stderr as one JSON line (``kluis serve``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log carries the route template, never a query string.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """The Prometheus metrics of one app (its own registry, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kluis_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kluis_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.errors = Counter(
            "kluis_http_errors",
            "Error responses (status >= 400) by route",
            ["route", "status"],
            registry=self.registry,
        )
        self.ingests = Counter(
            "kluis_ingests",
            "Documents submitted over HTTP by outcome (created, replayed, rejected, failed)",
            ["outcome"],
            registry=self.registry,
        )
