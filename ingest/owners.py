"""Owner numbers: Belgian national register numbers and enterprise numbers.

A national register number (rijksregisternummer, also BIS numbers) has 11 digits:
``YYMMDD`` + a 3-digit serial + a 2-digit check. The check is ``97 - (n mod 97)`` over the
first nine digits, or over ``2`` followed by them for people born from 2000 on.
An enterprise number (KBO/BCE) has 10 digits starting with 0 or 1: the last two are
``97 - (first eight mod 97)``. Separators (dots, dashes, spaces) are accepted and dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from archive.model import OwnerKind

_SEPARATORS = re.compile(r"[\s.\-/]")


@dataclass(frozen=True)
class Owner:
    id: str
    """Digits only."""
    kind: OwnerKind


class InvalidOwnerNumber(ValueError):
    """Not a valid national register or enterprise number (message says why)."""


def _check(digits: str, prefix: str = "") -> bool:
    body, check = digits[:-2], int(digits[-2:])
    return 97 - int(prefix + body) % 97 == check


def parse_owner(value: str) -> Owner:
    """Normalise and validate an owner number.

    Raises:
        InvalidOwnerNumber: with a message fit to show the submitter.
    """
    digits = _SEPARATORS.sub("", value or "")
    if not digits.isdigit():
        raise InvalidOwnerNumber("an owner number has only digits (and optional separators)")
    if len(digits) == 11:
        if _check(digits) or _check(digits, "2"):
            return Owner(digits, "person")
        raise InvalidOwnerNumber("not a valid national register number (check digits do not match)")
    if len(digits) == 10:
        if digits[0] not in "01":
            raise InvalidOwnerNumber("an enterprise number starts with 0 or 1")
        if _check(digits):
            return Owner(digits, "enterprise")
        raise InvalidOwnerNumber("not a valid enterprise number (check digits do not match)")
    raise InvalidOwnerNumber("a national register number has 11 digits and an enterprise number 10")
