"""The ``kluis`` command line. Commands are thin: parse, call the domain, print."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.submission import Submission
from kluis.auth import Role, mint_dev_token
from kluis.cli.errors import cli_errors
from kluis.maintenance import reconcile as run_reconcile
from kluis.settings import KluisSettings
from kluis.wiring import Services, build_services
from search.model import Query
from search.reindex import reindex as reindex_all
from signing.validation import validate

app = typer.Typer(
    name="kluis",
    help="Kluis: government digital archive and document delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)


def _settings() -> KluisSettings:
    return KluisSettings()


def _open() -> Services:
    return build_services(_settings())


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
) -> None:
    """Run the HTTP API (and the index writer) on the configured backends."""
    import uvicorn

    from kluis.api.app import create_app

    with cli_errors():
        settings = _settings()
        host = host or settings.host
        port = port or settings.port
        out.print(f"Kluis ({settings.mode}) on http://{host}:{port}")
        out.print(f"OpenAPI docs: http://{host}:{port}/docs")
        from kluis.observability import configure_logging

        configure_logging()  # one JSON line per record, with the request id
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


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
        services = _open()
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
        services = _open()
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
        services = _open()
        try:
            aip_id = services.store.resolve(aip_id, version)
            manifest = services.store.manifest(aip_id)
            if out_file is not None:
                with services.store.open_file(aip_id, manifest.pdf_path) as src:
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
        services = _open()
        try:
            fixity = services.store.verify(aip_id)
            manifest = services.store.manifest(aip_id)
            with services.store.open_file(aip_id, manifest.pdf_path) as f:
                report = validate(f.read(), trust_roots=services.trust_roots)
        finally:
            services.close()
        out.print_json(json.dumps({"fixity": fixity.to_dict(), "signature": report.to_dict()}))
        if not (fixity.ok and report.valid):
            raise typer.Exit(1)


@app.command()
def renew(document_id: Annotated[str, typer.Argument(help="Document id")]) -> None:
    """Renew a document's signature evidence (revocation data and a document time-stamp)
    and store it as the document's next version; print the new version's package id."""
    from retention.upkeep import renew_document
    from signing.upkeep import renew as renew_pdf

    with cli_errors():
        settings = _settings()
        tsa_url = settings.tsa_url
        if not tsa_url:
            why = "the development PKI has no TSA; " if settings.signer == "dev" else ""
            Console(stderr=True).print(
                f"[red]error:[/red] renewal needs a time-stamp authority: {why}set tsa_url "
                "(KLUIS_TSA_URL)"
            )
            raise typer.Exit(2)
        services = build_services(settings)
        try:
            roots = services.trust_roots
            new_id = renew_document(
                services.store,
                document_id,
                renew=lambda pdf: renew_pdf(pdf, trust_roots=roots, tsa_url=tsa_url),
                trust_roots=roots,
            )
        finally:
            services.close()
        print(new_id)


@app.command()
def fixity(
    sample: Annotated[
        int | None, typer.Option(min=1, help="Check N packages picked at random (default: all)")
    ] = None,
    aip_id: Annotated[str | None, typer.Option("--aip", help="Check only this package")] = None,
) -> None:
    """Stream packages, recompute SHA-256 against the METS, record a PREMIS fixity event.

    Prints one JSON line per package; exits 1 when any file is corrupt or missing.
    """
    import random
    import uuid

    from archive.events import EventLog, check_fixity

    with cli_errors():
        services = _open()
        bad = 0
        try:
            ids = [aip_id] if aip_id else list(services.store.aip_ids())
            if sample is not None and sample < len(ids):
                ids = random.SystemRandom().sample(ids, sample)
            log = EventLog(services.storage)
            for one in ids:
                outcome = check_fixity(
                    services.store,
                    log,
                    services.storage,
                    one,
                    new_id=lambda: str(uuid.uuid4()),
                )
                bad += not outcome.report.ok
                line = {**outcome.report.to_dict(), "event": outcome.record_key}
                if not outcome.report.ok:
                    line = {k: v for k, v in line.items() if k != "files"}
                    line["problems"] = [
                        {
                            "path": f.path,
                            "status": f.status,
                            "expected": f.expected_sha256,
                            "actual": f.actual_sha256,
                        }
                        for f in outcome.report.problems
                    ]
                    Console(stderr=True).print(
                        f"[red]CORRUPT[/red] {one}: "
                        + ", ".join(f"{f.path} {f.status}" for f in outcome.report.problems)
                    )
                print(json.dumps(line))
        finally:
            services.close()
        if bad:
            raise typer.Exit(1)


@app.command()
def reindex(
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore the checkpoint of an interrupted run")
    ] = False,
    read_workers: Annotated[
        int, typer.Option(min=1, help="Threads reading packages (helps on S3; 1 is fastest on fs)")
    ] = 1,
    swap: Annotated[
        bool,
        typer.Option(
            "--swap", help="OpenSearch: build a new index, then move the alias (no resume)"
        ),
    ] = False,
) -> None:
    """Rebuild the search index from storage alone (resumes an interrupted run)."""
    from search.opensearch import OpenSearchIndex
    from search.reindex import projected

    with cli_errors():
        services = _open()
        checkpoint = services.settings.data_dir / "reindex.checkpoint"
        if fresh:
            checkpoint.unlink(missing_ok=True)
        try:
            with Progress(
                TextColumn("reindex"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            ) as progress:
                task = progress.add_task("reindex", total=None)
                if swap and isinstance(services.index, OpenSearchIndex):
                    ids = sorted(services.store.document_ids())
                    progress.update(task, total=len(ids))
                    count = services.index.rebuild(
                        projected(services.store, services.keyer, ids, read_workers=read_workers),
                        progress=lambda n: progress.update(task, completed=n),
                    )
                    out.print(f"indexed {count} packages into a new index; alias swapped")
                    return
                stats = reindex_all(
                    services.store,
                    services.index,
                    services.keyer,
                    progress=lambda n: progress.update(task, completed=n),
                    on_total=lambda total, done: progress.update(task, total=total, completed=done),
                    batch_size=2000,
                    checkpoint=checkpoint,
                    read_workers=read_workers,
                )
            services.index.refresh()
        finally:
            services.close()
        resumed = f" (resumed after {stats.resumed_after})" if stats.resumed_after else ""
        out.print(
            f"indexed {stats.indexed} packages{resumed}, removed {stats.removed} stale entries"
        )


@app.command("reconcile-index")
def reconcile_index_command(
    check_only: Annotated[
        bool, typer.Option("--check", help="Report drift without repairing it")
    ] = False,
    read_workers: Annotated[
        int, typer.Option(min=1, help="Threads reading packages (helps on S3; 1 is fastest on fs)")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Prove index == storage (count and digest per id range) and repair the drift.

    Exits 1 when drift remains (with --check: when there is any)."""
    from search.reconcile import reconcile_index

    with cli_errors():
        services = _open()
        try:
            report = reconcile_index(
                services.store,
                services.index,
                services.keyer,
                repair=not check_only,
                read_workers=read_workers,
                progress=lambda line: Console(stderr=True).print(line),
            )
        finally:
            services.close()
        body = {
            "ranges": report.ranges,
            "drifted_ranges": list(report.drifted_ranges),
            "missing": list(report.missing),
            "corrupt": list(report.corrupt),
            "stale": list(report.stale),
            "repaired": not check_only and not report.in_sync,
            "verified": report.verified,
        }
        if as_json:
            print(json.dumps(body))
        else:
            state = "in sync" if report.verified else "NOT in sync"
            out.print(
                f"{report.ranges} id ranges, {len(report.drifted_ranges)} drifted: "
                f"{len(report.missing)} missing, {len(report.corrupt)} corrupt, "
                f"{len(report.stale)} stale; {state}"
            )
        if not report.verified:
            raise typer.Exit(1)


@app.command()
def reconcile() -> None:
    """Remove leftovers of crashed ingests and index packages the index is missing."""
    with cli_errors():
        services = _open()
        try:
            summary = run_reconcile(services)
            services.index.refresh()
        finally:
            services.close()
        report = summary.ingest
        out.print(
            f"discarded {len(report.discarded_packages)} incomplete packages, "
            f"released {len(report.released_claims)} stale claims, "
            f"indexed {len(summary.indexed)} documents"
        )


@app.command()
def token(
    role: Annotated[Literal["agency", "citizen", "archivist"], typer.Option(help="Who")],
    sub: Annotated[str, typer.Option(help="Agency id, owner number or archivist id")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds", min=1)] = 3600,
) -> None:
    """Mint a development token (accepted only by a server in development mode)."""
    with cli_errors():
        settings = _settings()
        if not settings.development:
            out.print("[red]error:[/red] development tokens exist only in development mode")
            raise typer.Exit(77)
        r: Role = role
        print(
            mint_dev_token(
                settings.data_dir,
                role=r,
                subject=sub,
                issuer=settings.auth.issuer,
                audience=settings.auth.audience,
                ttl_seconds=ttl,
            )
        )


@app.command("config")
def show_config() -> None:
    """Print the effective configuration (secrets masked)."""
    with cli_errors():
        out.print_json(json.dumps(_settings().redacted()))
