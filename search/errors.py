"""Errors of the search package."""

from __future__ import annotations


class SearchError(Exception):
    """Root of everything the search package raises."""


class IndexUnavailableError(SearchError):
    """The index cannot be opened or reached; retrying may succeed."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} index unavailable: {detail}")
        self.backend = backend


class InvalidQueryError(SearchError):
    """The query cannot be run (bad cursor, bad syntax, limit out of range)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid query: {reason}")
        self.reason = reason
