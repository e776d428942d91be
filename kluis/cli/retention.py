"""The ``kluis retention`` command group. Its commands live in ``retention_*`` modules
(holds, records, disposal), which ``kluis.cli.main`` imports to register them."""

from __future__ import annotations

import typer

from kluis.cli.app import app

retention_app = typer.Typer(
    name="retention",
    help="Retention: selection lists, legal holds, disposal.",
    no_args_is_help=True,
)
app.add_typer(retention_app)
