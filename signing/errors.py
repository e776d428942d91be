"""The SigningError tree: every error the signing package lets escape.

Invariant: callers of :mod:`signing` only ever see these classes (plus ``ValueError`` /
``RuntimeError`` for programming errors, documented where they can occur). pyHanko,
asn1crypto and cryptography exceptions are translated at the adapter with ``from exc`` so
the cause chain stays available to operators.

Each error carries its data as attributes and builds its message in ``__init__``.
``__reduce__`` is defined so the errors survive pickling across a process pool.
"""

from __future__ import annotations

__all__ = [
    "KeySourceError",
    "SignatureFailedError",
    "SigningError",
    "UnreadablePdfError",
]


class SigningError(Exception):
    """Root of all errors raised by the signing package."""


class UnreadablePdfError(SigningError):
    """The input could not be parsed as a PDF, or its structure forbids signing it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"PDF cannot be read or signed: {reason}")

    def __reduce__(self) -> tuple[type[UnreadablePdfError], tuple[str]]:
        return (type(self), (self.reason,))


class KeySourceError(SigningError):
    """A signing key or its certificates could not be loaded from ``source``."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"key source {source!r} is unusable: {reason}")

    def __reduce__(self) -> tuple[type[KeySourceError], tuple[str, str]]:
        return (type(self), (self.source, self.reason))


class SignatureFailedError(SigningError):
    """Producing the signature failed although the input PDF was readable."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"signing failed: {reason}")

    def __reduce__(self) -> tuple[type[SignatureFailedError], tuple[str]]:
        return (type(self), (self.reason,))
