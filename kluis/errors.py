"""Errors of the HTTP edge itself (not of a domain package); mapped in :mod:`kluis.problems`."""

from __future__ import annotations


class ApiError(Exception):
    """Root of the errors the API raises on purpose."""


class BadRequestError(ApiError):
    """A malformed header or parameter."""


class DigestMismatchError(ApiError):
    """``Content-Digest`` does not match the content received."""


class PayloadTooLargeError(ApiError):
    """The request body is larger than the configured limit."""


class UnsupportedMediaTypeError(ApiError):
    """The request body is not of a type the endpoint accepts."""


class RangeNotSatisfiableError(ApiError):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range is not satisfiable; the document has {size} bytes")
        self.size = size


class RateLimitedError(ApiError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests from this client; retry after {retry_after} s")
        self.retry_after = retry_after


class AuditUnavailableError(ApiError):
    """The access log could not be written, so the read is refused (fail closed)."""
