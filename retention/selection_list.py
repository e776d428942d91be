"""The selection list (selectielijst): per document type, how long and what then.

A selection list is a versioned TOML file::

    version = "2026-1"
    [types.attest]
    title = "Attest"
    retention = "P10Y"          # ISO 8601 duration in years, months, days
    trigger = "issued_on"       # the date the period counts from
    action = "destroy"          # destroy | transfer | keep

``action = "keep"`` keeps the document permanently: its retention end is None.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from retention.errors import InvalidSelectionListError

Action = Literal["destroy", "transfer", "keep"]
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")
_TYPE_CODE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")


@dataclass(frozen=True)
class Period:
    years: int = 0
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """Raises: ValueError for anything but PnYnMnD."""
        match = _DURATION.match(text)
        if not match or text == "P":
            raise ValueError(f"{text!r} is not an ISO 8601 duration like P10Y or P6M")
        y, m, d = (int(g) if g else 0 for g in match.groups())
        return cls(y, m, d)

    def after(self, start: date) -> date:
        """``start`` plus this period; 29 February falls back to 28 February."""
        month_index = start.month - 1 + self.months
        year = start.year + self.years + month_index // 12
        month = month_index % 12 + 1
        day = start.day
        while True:
            try:
                end = date(year, month, day)
                break
            except ValueError:
                day -= 1
        return date.fromordinal(end.toordinal() + self.days)


@dataclass(frozen=True)
class RetentionRule:
    document_type: str
    title: str
    period: Period | None
    trigger: Literal["issued_on"]
    action: Action

    def retention_end(self, issued_on: date) -> date | None:
        if self.action == "keep" or self.period is None:
            return None
        return self.period.after(issued_on)


@dataclass(frozen=True)
class SelectionList:
    version: str
    rules: Mapping[str, RetentionRule]

    def rule(self, document_type: str) -> RetentionRule:
        """Raises: KeyError for an unknown type."""
        return self.rules[document_type]

    def retention_end(self, document_type: str, issued_on: date) -> date | None:
        return self.rules[document_type].retention_end(issued_on)


def load_selection_list(path: Path) -> SelectionList:
    """Read and validate a selection list; every problem is reported at once.

    Raises:
        InvalidSelectionListError.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidSelectionListError(str(path), [str(exc)]) from exc
    return parse_selection_list(raw, source=str(path))


def parse_selection_list(raw: Mapping[str, object], *, source: str) -> SelectionList:
    """Raises: InvalidSelectionListError."""
    problems: list[str] = []
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        problems.append("'version' must be a non-empty string")
    types = raw.get("types")
    if not isinstance(types, dict) or not types:
        problems.append("'types' must be a table with at least one document type")
        types = {}
    rules: dict[str, RetentionRule] = {}
    for code, entry in types.items():
        where = f"types.{code}"
        if not _TYPE_CODE.match(code):
            problems.append(f"{where}: type codes are lowercase letters, digits, '_' or '-'")
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table")
            continue
        unknown = set(entry) - {"title", "retention", "trigger", "action"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        action = entry.get("action")
        if action not in ("destroy", "transfer", "keep"):
            problems.append(f"{where}.action: one of destroy, transfer, keep")
            continue
        period = None
        if action != "keep":
            try:
                period = Period.parse(str(entry.get("retention", "")))
            except ValueError as exc:
                problems.append(f"{where}.retention: {exc}")
                continue
        trigger = entry.get("trigger", "issued_on")
        if trigger != "issued_on":
            problems.append(f"{where}.trigger: only 'issued_on' is supported")
            continue
        rules[code] = RetentionRule(
            code, str(entry.get("title", code)), period, "issued_on", action
        )
    if problems:
        raise InvalidSelectionListError(source, problems)
    assert isinstance(version, str)
    return SelectionList(version=version, rules=rules)
