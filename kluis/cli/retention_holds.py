"""``kluis retention holds place|lift|list|show|resume``: legal holds.

Who places or lifts a hold is the subject of a verified archivist token (``--token`` or
``KLUIS_TOKEN``, see :mod:`kluis.cli.identity`): lifting a hold is what allows destruction.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kluis.cli.app import load_settings, open_services, out
from kluis.cli.errors import cli_errors
from kluis.cli.identity import TokenOption, archivist
from kluis.cli.retention import retention_app
from kluis.wiring import build_services
from search.model import Query

holds_app = typer.Typer(name="holds", help="Legal holds: place, lift, list.", no_args_is_help=True)
retention_app.add_typer(holds_app)


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


@holds_app.command("place")
def place(
    document_ids: Annotated[
        list[str] | None, typer.Argument(help="Document ids to hold", show_default=False)
    ] = None,
    reason: Annotated[str, typer.Option(help="Why the documents are held")] = "",
    mandate: Annotated[str, typer.Option(help="The legal authority (order, reference)")] = "",
    token: TokenOption = "",
    query: Annotated[
        str | None, typer.Option("--query", help="Also hold every document this text finds")
    ] = None,
    agency: Annotated[str | None, typer.Option(help="Query filter: agency id")] = None,
    type: Annotated[str | None, typer.Option("--type", help="Query filter: type")] = None,
    issued_from: Annotated[str | None, typer.Option(help="Query filter: YYYY-MM-DD")] = None,
    issued_to: Annotated[str | None, typer.Option(help="Query filter: YYYY-MM-DD")] = None,
    hold_id: Annotated[
        str | None, typer.Option("--id", help="Hold id (repeat an interrupted placement)")
    ] = None,
) -> None:
    """Place a legal hold on ids and/or the documents a query finds now (the ids found are
    what is recorded); prints the hold as JSON."""
    with cli_errors():
        search = None
        if query or agency or type or issued_from or issued_to:
            search = Query(
                text=query or None,
                agency_id=agency,
                document_type=type,
                issued_from=_date(issued_from),
                issued_to=_date(issued_to),
            )
        settings = load_settings()
        by = archivist(settings, token)
        services = build_services(settings)
        try:
            with _progress("hold") as progress:
                task = progress.add_task("hold", total=None)
                hold = services.holds.place(
                    reason=reason,
                    mandate=mandate,
                    placed_by=by,
                    document_ids=document_ids or [],
                    query=search,
                    hold_id=hold_id,
                    progress=lambda n: progress.update(task, completed=n),
                )
            services.index.refresh()
        finally:
            services.close()
        print(json.dumps(hold.to_dict()))


@holds_app.command("lift")
def lift(
    hold_id: Annotated[str, typer.Argument(help="The hold to lift")],
    reason: Annotated[str, typer.Option(help="Why the hold is lifted")] = "",
    token: TokenOption = "",
) -> None:
    """Lift a hold; documents keep their S3 legal hold while another hold applies."""
    with cli_errors():
        settings = load_settings()
        by = archivist(settings, token)
        services = build_services(settings)
        try:
            with _progress("lift") as progress:
                task = progress.add_task("lift", total=None)
                hold = services.holds.lift(
                    hold_id,
                    lifted_by=by,
                    reason=reason,
                    progress=lambda n: progress.update(task, completed=n),
                )
            services.index.refresh()
        finally:
            services.close()
        print(json.dumps(hold.to_dict()))


@holds_app.command("list")
def list_holds(
    active: Annotated[bool, typer.Option("--active", help="Only holds in force")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """Every hold, oldest first."""
    with cli_errors():
        services = open_services()
        try:
            holds = services.holds.all(active_only=active)
        finally:
            services.close()
        if as_json:
            for hold in holds:
                print(json.dumps(hold.to_dict()))
            return
        table = Table("id", "placed", "by", "documents", "mandate", "reason", "lifted")
        for h in holds:
            table.add_row(
                h.hold_id,
                h.placed_at.date().isoformat(),
                h.placed_by,
                str(len(h.document_ids)),
                h.mandate,
                h.reason,
                "" if h.lifted_at is None else f"{h.lifted_at.date()} by {h.lifted_by}",
            )
        out.print(table)


@holds_app.command("show")
def show(hold_id: Annotated[str, typer.Argument(help="Hold id")]) -> None:
    """One hold as JSON, with its document ids."""
    with cli_errors():
        services = open_services()
        try:
            hold = services.holds.get(hold_id)
        finally:
            services.close()
        print(json.dumps(hold.to_dict()))


@holds_app.command("resume")
def resume() -> None:
    """Finish placements and liftings a crash interrupted."""
    with cli_errors():
        services = open_services()
        try:
            finished = services.holds.resume()
            services.index.refresh()
        finally:
            services.close()
        out.print(f"finished {len(finished)} interrupted hold operation(s)")


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None
