"""The ``kluis`` command line. Commands are thin: parse, call the domain, print.

Each command group lives in its own module; importing them registers their commands.
"""

from __future__ import annotations

import kluis.cli._quiet_warnings  # noqa: F401  (first: before anything imports pyHanko)
from kluis.cli import (
    admin,
    documents,
    jobs,
    retention,
    retention_disposal,
    retention_holds,
    retention_records,
    upkeep,
)
from kluis.cli.app import app

__all__ = [
    "app",
    "admin",
    "documents",
    "jobs",
    "retention",
    "retention_disposal",
    "retention_holds",
    "retention_records",
    "upkeep",
]
