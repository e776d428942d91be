"""Commands on documents: ingest, search, get, verify."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ingest.submission import Submission
from kluis.cli.app import app, open_services, out
from kluis.cli.errors import cli_errors
from search.model import Query
from signing.validation import validate


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The PDF")],
    agency: Annotated[str, typer.Option(help="Agency id, e.g. OVO000001")],
    owner: Annotated[str, typer.Option(help="National register or enterprise number")],
    type: Annotated[str, typer.Option("--type", help="Document type from the selection list")],
    title: Annotated[str | None, typer.Option(help="Title; defaults to the file name")] = None,
    ref: Annotated[
        str | None, typer.Option(help="Agency reference; defaults to the PDF's SHA-256")
    ] = None,
    issued_on: Annotated[str | None, typer.Option(help="Issue date YYYY-MM-DD")] = None,
) -> None:
    """Archive one PDF and print its receipt as JSON. Safe to repeat."""
    import hashlib

    with cli_errors():
        data = file.read_bytes()
        submission = Submission(
            agency_id=agency,
            owner=owner,
            document_type=type,
            title=title or file.stem,
            agency_ref=ref or "sha256:" + hashlib.sha256(data).hexdigest(),
            issued_on=_date(issued_on),
            file_name=file.name if file.name.isascii() else "document.pdf",
        )
        services = open_services()
        try:
            result = services.ingestor.ingest(submission, data)
            services.index.refresh()
        finally:
            services.close()
        out.print_json(json.dumps(result.receipt.to_dict()))


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use YYYY-MM-DD", param_hint="--issued-on") from None


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Dutch full text; '' for everything")] = "",
    owner: Annotated[str | None, typer.Option(help="Only this owner's documents")] = None,
    agency: Annotated[str | None, typer.Option()] = None,
    type: Annotated[str | None, typer.Option("--type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Search the archive (as an archivist would)."""
    from ingest.owners import parse_owner

    with cli_errors():
        services = open_services()
        try:
            services.index.refresh()
            owner_key = services.keyer.key(parse_owner(owner).id) if owner else None
            page = services.index.search(
                Query(
                    text=query or None,
                    owner_key=owner_key,
                    agency_id=agency,
                    document_type=type,
                    sort="relevance" if query else "newest",
                    limit=limit,
                    facets=("agency_id", "document_type", "year"),
                )
            )
        finally:
            services.close()
        if as_json:
            out.print_json(
                json.dumps(
                    {
                        "total": page.total,
                        "hits": [
                            {
                                "id": h.aip_id,
                                "title": h.title,
                                "type": h.document_type,
                                "agency": h.agency_id,
                                "issued_on": h.issued_on.isoformat(),
                            }
                            for h in page.hits
                        ],
                        "facets": {k: dict(v) for k, v in page.facets.items()},
                    }
                )
            )
            return
        table = Table("id", "issued", "type", "agency", "title", title=f"{page.total} documents")
        for h in page.hits:
            table.add_row(h.aip_id, h.issued_on.isoformat(), h.document_type, h.agency_id, h.title)
        out.print(table)


@app.command()
def get(
    aip_id: Annotated[str, typer.Argument(help="Package id")],
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the PDF here")] = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="Version N (1 = first); default: the newest")
    ] = None,
) -> None:
    """Print a package's metadata, or write its signed PDF with --out."""
    with cli_errors():
        services = open_services()
        try:
            aip_id = services.store.resolve(aip_id, version)
            manifest = services.store.manifest(aip_id)
            if out_file is not None:
                with services.store.open_file(aip_id, manifest.pdf_path, manifest=manifest) as src:
                    out_file.write_bytes(src.read())
                out.print(f"wrote {out_file} ({manifest.pdf.size} bytes)")
                return
        finally:
            services.close()
        meta = manifest.metadata
        out.print_json(
            json.dumps(
                {
                    "aip_id": manifest.aip_id,
                    "title": meta.title,
                    "type": meta.document_type,
                    "agency": meta.agency_id,
                    "agency_ref": meta.agency_ref,
                    "issued_on": meta.issued_on.isoformat(),
                    "retention_until": meta.retention_until.isoformat()
                    if meta.retention_until
                    else None,
                    "archived_at": manifest.created_at.isoformat(),
                    "pdf": {"path": manifest.pdf_path, "sha256": manifest.pdf.sha256},
                    "signature_level": manifest.signature.level,
                    "manifest_sha256": manifest.root_mets_sha256,
                }
            )
        )


@app.command()
def verify(aip_id: Annotated[str, typer.Argument(help="Package id")]) -> None:
    """Check a package's fixity and its PDF's signature; exit 1 when either fails."""
    with cli_errors():
        services = open_services()
        try:
            fixity = services.store.verify(aip_id)
            manifest = services.store.manifest(aip_id)
            with services.store.open_file(aip_id, manifest.pdf_path, manifest=manifest) as f:
                report = validate(f.read(), trust_roots=services.trust_roots)
        finally:
            services.close()
        out.print_json(json.dumps({"fixity": fixity.to_dict(), "signature": report.to_dict()}))
        if not (fixity.ok and report.valid):
            raise typer.Exit(1)
