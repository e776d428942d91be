"""The selection list (selectielijst): per document type, how long and what then.

A selection list is a versioned TOML file::

    version = "2026-1"
    [types.attest]
    title = "Attest"
    retention = "P10Y"          # ISO 8601 duration in years, months, days
    trigger = "issued_on"       # the date the period counts from
    action = "destroy"          # destroy | transfer | keep

    [types.dossier]
    retention = "P5Y"
    trigger = "event:closure"   # counts from an event date the agency delivers later
    action = "destroy"

``action = "keep"`` keeps the document permanently: its retention end is None.

``trigger = "event:<name>"``: the period counts from the date of event ``<name>`` (e.g. the
closure of a case), which the agency delivers after ingest. Until then the retention end is
unknown (None) and the document is never due; its object lock is set to the lower bound,
the period after the issue date (the event cannot precede the issue).

Versions: ``version`` names one edition of the list (a key segment: letters, digits, ``.``,
``_``, ``-``). A new edition must carry a new version string; :meth:`SelectionList.canonical`
gives the bytes by which a reused version string with other rules is detected.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from archive.model import RetentionTerms
from retention.errors import InvalidSelectionListError

Action = Literal["destroy", "transfer", "keep"]
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?$")
_TYPE_CODE = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ISSUED_ON = "issued_on"
EVENT_PREFIX = "event:"


@dataclass(frozen=True)
class Period:
    years: int = 0
    months: int = 0
    days: int = 0

    def __str__(self) -> str:
        parts = [f"{n}{u}" for n, u in ((self.years, "Y"), (self.months, "M"), (self.days, "D"))]
        return "P" + ("".join(p for p in parts if not p.startswith("0")) or "0D")

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
    trigger: str
    """``issued_on`` or ``event:<name>``."""
    action: Action

    @property
    def event(self) -> str | None:
        """The event name of an ``event:<name>`` trigger; None for ``issued_on``."""
        return self.trigger.removeprefix(EVENT_PREFIX) if self.trigger != ISSUED_ON else None

    def trigger_date(self, issued_on: date, event_on: date | None = None) -> date | None:
        """The date the period counts from; None while an event date is still pending."""
        return issued_on if self.event is None else event_on

    def retention_end(self, issued_on: date, event_on: date | None = None) -> date | None:
        """End of retention; None when kept permanently or the event date is pending."""
        start = self.trigger_date(issued_on, event_on)
        if self.action == "keep" or self.period is None or start is None:
            return None
        return self.period.after(start)

    def lock_floor(self, issued_on: date, event_on: date | None = None) -> date | None:
        """The object-lock retention to set: the end when known, else (event pending) the
        period after the issue date, a lower bound of the end. None when kept permanently."""
        if self.action == "keep" or self.period is None:
            return None
        return self.retention_end(issued_on, event_on) or self.period.after(issued_on)

    def terms(self, version: str, issued_on: date) -> RetentionTerms:
        """What ingest records: the rule, the list version and the computed end."""
        return RetentionTerms(
            list_version=version,
            trigger=self.trigger,
            action=self.action,
            period=None if self.period is None else str(self.period),
            retention_until=self.retention_end(issued_on),
            lock_until=self.lock_floor(issued_on),
        )


@dataclass(frozen=True)
class SelectionList:
    version: str
    rules: Mapping[str, RetentionRule]

    def rule(self, document_type: str) -> RetentionRule:
        """Raises: KeyError for an unknown type."""
        return self.rules[document_type]

    def retention_end(self, document_type: str, issued_on: date) -> date | None:
        return self.rules[document_type].retention_end(issued_on)

    def terms(self, document_type: str, issued_on: date) -> RetentionTerms:
        """The retention terms a new document of this type gets (ingest).

        Raises: KeyError for an unknown type."""
        return self.rules[document_type].terms(self.version, issued_on)

    def canonical(self) -> bytes:
        """A canonical serialisation of the list (version and rules), to detect a version
        string reused for other rules."""
        body = {
            "version": self.version,
            "types": {
                code: {
                    "title": r.title,
                    "retention": None if r.period is None else str(r.period),
                    "trigger": r.trigger,
                    "action": r.action,
                }
                for code, r in sorted(self.rules.items())
            },
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()


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
    if not isinstance(version, str) or not _VERSION.match(version):
        problems.append(
            "'version' must be a non-empty string of letters, digits, '.', '_' or '-' (at most 64)"
        )
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
        trigger = entry.get("trigger", ISSUED_ON)
        event = trigger.removeprefix(EVENT_PREFIX) if isinstance(trigger, str) else ""
        if trigger != ISSUED_ON and (
            not str(trigger).startswith(EVENT_PREFIX) or not _EVENT_NAME.match(event)
        ):
            problems.append(
                f"{where}.trigger: 'issued_on' or 'event:<name>' (name: lowercase letters, "
                f"digits, '_' or '-'), not {trigger!r}"
            )
            continue
        rules[code] = RetentionRule(code, str(entry.get("title", code)), period, trigger, action)
    if problems:
        raise InvalidSelectionListError(source, problems)
    assert isinstance(version, str)
    return SelectionList(version=version, rules=rules)
