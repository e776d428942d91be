"""Errors of the retention package."""

from __future__ import annotations


class RetentionError(Exception):
    """Root of everything the retention package raises."""


class InvalidSelectionListError(RetentionError):
    """The selection list file cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"selection list {source}: " + "; ".join(problems))
        self.source = source
        self.problems = tuple(problems)
