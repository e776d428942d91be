"""``kluis retention recompute|trigger|state``: retention records of documents."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kluis.cli.app import load_settings, open_services, out
from kluis.cli.errors import cli_errors
from kluis.cli.identity import TokenOption, archivist
from kluis.cli.retention import retention_app
from kluis.wiring import build_services
from retention.selection_list import load_selection_list
from retention.state import RetentionState


def state_dict(state: RetentionState) -> dict[str, Any]:
    def iso(value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": state.document_id,
        "type": state.document_type,
        "action": state.action,
        "list_version": state.list_version,
        "trigger_date": iso(state.trigger_date),
        "retention_until": iso(state.retention_until),
        "locked_until": iso(state.locked_until),
        "holds": list(state.holds),
        "disposable_on": iso(state.disposable_on()),
    }


@retention_app.command("recompute")
def recompute(
    selection_list: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The new selection list (TOML)")
    ],
    after: Annotated[
        str | None, typer.Option(help="Resume after this document id (ids run ascending)")
    ] = None,
    token: TokenOption = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON")] = False,
) -> None:
    """Apply a new edition of the selection list to every document: record the new ends,
    extend object locks (never shorten them) and report the differences. Safe to repeat.

    Then point KLUIS_SELECTION_LIST at the new file so ingest uses it too."""
    with cli_errors():
        new_list = load_selection_list(selection_list)
        settings = load_settings()
        by = archivist(settings, token)
        services = build_services(settings)
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("recompute {task.completed} documents"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as progress:
                task = progress.add_task("recompute", total=None)
                report = services.records.recompute(
                    new_list,
                    after=after,
                    by=by,
                    progress=lambda n: progress.update(task, completed=n),
                )
            services.index.refresh()
        finally:
            services.close()
        if as_json:
            print(json.dumps(report.to_dict()))
            return
        counts = report.counts()
        out.print(
            f"selection list {report.list_version}: {report.total} documents; "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
        )
        for change in report.extended:
            out.print(f"  extended  {change.document_id}: {change.old_until} -> {change.new_until}")
        for change in report.shortened:
            out.print(
                f"  shortened {change.document_id}: {change.old_until} -> {change.new_until} "
                f"(object lock kept until {change.locked_until})"
            )
        for document_id in report.unknown_type:
            out.print(f"  no rule   {document_id}: its type is not in the new list; unchanged")


@retention_app.command("trigger")
def trigger(
    document_id: Annotated[str, typer.Argument(help="Document id")],
    event: Annotated[str, typer.Argument(help="Event name of the rule, e.g. closure")],
    on: Annotated[str, typer.Argument(help="Event date YYYY-MM-DD")],
    by: Annotated[str, typer.Option("--by", help="Who delivers the date")] = "kluis",
) -> None:
    """Record the date of the event a document's retention counts from; prints its state."""
    with cli_errors():
        try:
            day = date.fromisoformat(on)
        except ValueError:
            raise typer.BadParameter(f"{on!r} is not a date YYYY-MM-DD") from None
        services = open_services()
        try:
            state = services.records.record_trigger(document_id, event, day, by=by)
            services.index.refresh()
        finally:
            services.close()
        print(json.dumps(state_dict(state)))


@retention_app.command("state")
def state(document_id: Annotated[str, typer.Argument(help="Document id")]) -> None:
    """A document's retention as storage records it (rule, list version, ends, holds)."""
    with cli_errors():
        services = open_services()
        try:
            current = services.records.state(document_id)
        finally:
            services.close()
        print(json.dumps(state_dict(current)))
