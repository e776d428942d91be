"""``kluis retention sweep|proposals|review|approve|reject|execute|certificate``: disposal.

Who acts is taken from a verified archivist token (``--token`` or ``KLUIS_TOKEN``), checked
by the same verifier the API uses, never from a free-text name: the four-eyes rule is only
as strong as the identities it compares. ``kluis token --role archivist --sub ID`` mints one
in development.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from kluis.cli.app import load_settings, out
from kluis.cli.errors import cli_errors
from kluis.cli.identity import TokenOption, archivist
from kluis.cli.retention import retention_app
from kluis.wiring import Services, build_services
from retention.proposals import ProposalStatus

NoteOption = Annotated[str, typer.Option("--note", help="A remark kept with the decision")]


def _open(token: str) -> tuple[Services, str]:
    settings = load_settings()
    who = archivist(settings, token)
    return build_services(settings), who


def status_json(status: ProposalStatus) -> dict[str, Any]:
    proposal = status.proposal
    return {
        "id": proposal.proposal_id,
        "state": status.state,
        "created_at": proposal.created_at.isoformat(),
        "proposed_by": proposal.proposed_by,
        "due_before": proposal.due_before.isoformat(),
        "items": proposal.item_count,
        "counts": dict(proposal.counts),
        "reviewed_by": status.review.archivist if status.review else None,
        "decision": status.decision.kind if status.decision else None,
        "decided_by": status.decision.archivist if status.decision else None,
        "certificate_id": status.certificate_id,
    }


def _print(value: object) -> None:
    out.print_json(json.dumps(value))


@retention_app.command("sweep")
def sweep(
    token: TokenOption = "",
    index_only: Annotated[
        bool,
        typer.Option(
            "--index-only",
            help="Propose the index's candidates without reading storage (large backlogs; "
            "execution still checks every one against storage)",
        ),
    ] = False,
) -> None:
    """Propose every document whose retention ended and that is not held (checked against
    storage); prints the new proposal as JSON, or ``null`` when nothing is due."""
    with cli_errors():
        services, who = _open(token)
        try:
            with Progress(
                SpinnerColumn(),
                TextColumn("checking candidates against storage"),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:
                task = bar.add_task("sweep", total=None)
                result = services.disposal.sweep(
                    who, confirm=not index_only, progress=lambda n: bar.advance(task, n)
                )
            if result.proposal is None:
                _print(None)
                return
            _print(status_json(services.disposal.status(result.proposal.proposal_id)))
        finally:
            services.close()


@retention_app.command("proposals")
def proposals(
    proposal_id: Annotated[str | None, typer.Argument(help="Show this proposal")] = None,
    items: Annotated[bool, typer.Option("--items", help="Also print every item")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    token: TokenOption = "",
) -> None:
    """List disposal proposals, or show one (with ``--items``: one JSON line per item)."""
    with cli_errors():
        services, _ = _open(token)
        try:
            disposal = services.disposal
            if proposal_id is not None:
                _print(status_json(disposal.status(proposal_id)))
                if items:
                    for item in disposal.items(proposal_id):
                        until = item.retention_until
                        print(json.dumps({"document_id": item.document_id,
                                          "type": item.document_type, "action": item.action,
                                          "retention_until": until.isoformat() if until else None,
                                          "list_version": item.list_version}))  # fmt: skip
                return
            rows = [status_json(s) for s in disposal.statuses()]
            if as_json:
                _print(rows)
                return
            table = Table("id", "state", "created", "items", "reviewed by", "decided by")
            for row in rows:
                table.add_row(row["id"], row["state"], row["created_at"][:19], str(row["items"]),
                              row["reviewed_by"] or "", row["decided_by"] or "")  # fmt: skip
            out.print(table)
        finally:
            services.close()


def _decide(step: str, proposal_id: str, token: str, note: str) -> None:
    with cli_errors():
        services, who = _open(token)
        try:
            status = getattr(services.disposal, step)(proposal_id, who, note)
            _print(status_json(status))
        finally:
            services.close()


@retention_app.command("review")
def review(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id")],
    token: TokenOption = "",
    note: NoteOption = "",
) -> None:
    """First pair of eyes: record your review of the proposal."""
    _decide("review", proposal_id, token, note)


@retention_app.command("approve")
def approve(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id")],
    token: TokenOption = "",
    note: NoteOption = "",
) -> None:
    """Second pair of eyes: approve a proposal someone ELSE reviewed."""
    _decide("approve", proposal_id, token, note)


@retention_app.command("reject")
def reject(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id")],
    token: TokenOption = "",
    note: NoteOption = "",
) -> None:
    """Reject the proposal; its documents may be proposed again by a later sweep."""
    _decide("reject", proposal_id, token, note)


@retention_app.command("execute")
def execute(
    proposal_id: Annotated[str, typer.Argument(help="Proposal id (approved)")],
    token: TokenOption = "",
) -> None:
    """Execute an approved proposal (or resume an interrupted execution): re-check every
    document against storage, export transfers, delete, sign the destruction certificate."""
    with cli_errors():
        services, who = _open(token)
        try:
            total = services.disposal.status(proposal_id).proposal.item_count
            with Progress(
                TextColumn("disposing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as bar:
                task = bar.add_task("execute", total=total)
                result = services.disposal.execute(
                    proposal_id, who, progress=lambda n: bar.advance(task, n)
                )
            _print({"proposal_id": result.proposal_id, "certificate_id": result.certificate_id,
                    "destroyed": result.destroyed, "transferred": result.transferred,
                    "skipped": result.skipped})  # fmt: skip
        finally:
            services.close()


@retention_app.command("certificate")
def certificate(
    certificate_id: Annotated[str, typer.Argument(help="Certificate id")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write <id>.json and <id>.p7s into this dir")
    ] = None,
    token: TokenOption = "",
) -> None:
    """Print a destruction certificate and check its signature; exit 1 when it fails."""
    with cli_errors():
        services, _ = _open(token)
        try:
            stored = services.disposal.certificate(certificate_id)
            check = services.disposal.verify(stored)
        finally:
            services.close()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{certificate_id}.json").write_bytes(stored.document)
            (out_dir / f"{certificate_id}.p7s").write_bytes(stored.signature)
        _print({"certificate": stored.content, "signature": {
            "ok": check.ok, "intact": check.intact, "trusted": check.trusted,
            "signer": check.signer_subject,
            "timestamped_at": check.timestamped_at.isoformat() if check.timestamped_at else None,
        }})  # fmt: skip
        if not check.ok:
            raise typer.Exit(1)
