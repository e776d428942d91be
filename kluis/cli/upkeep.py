"""Commands that keep the archive sound: renew, fixity, reindex, reconcile."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kluis.cli.app import app, load_settings, open_services, out
from kluis.cli.errors import cli_errors
from kluis.maintenance import reconcile as run_reconcile
from kluis.wiring import build_services
from search.reindex import reindex as reindex_all


@app.command()
def renew(document_id: Annotated[str, typer.Argument(help="Document id")]) -> None:
    """Renew a document's signature evidence (revocation data and a document time-stamp)
    and store it as the document's next version; print the new version's package id."""
    from retention.upkeep import renew_document
    from signing.upkeep import renew as renew_pdf

    with cli_errors():
        settings = load_settings()
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
        services = open_services()
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
    processes: Annotated[
        int, typer.Option(min=1, help="Processes reading packages (helps on fs: CPU-bound)")
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
        services = open_services()
        checkpoint = services.settings.data_dir / "reindex.checkpoint"
        # Holds and recorded retention ends: two storage listings now, not two per document.
        source = services.projection.snapshot()
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
                        projected(source, services.keyer, ids, read_workers=read_workers),
                        progress=lambda n: progress.update(task, completed=n),
                    )
                    out.print(f"indexed {count} packages into a new index; alias swapped")
                    return
                stats = reindex_all(
                    source,
                    services.index,
                    services.keyer,
                    progress=lambda n: progress.update(task, completed=n),
                    on_total=lambda total, done: progress.update(task, total=total, completed=done),
                    checkpoint=checkpoint,
                    read_workers=read_workers,
                    processes=processes,
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
        services = open_services()
        try:
            report = reconcile_index(
                services.projection.snapshot(),
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
        services = open_services()
        try:
            summary = run_reconcile(services)
            services.index.refresh()
        finally:
            services.close()
        report = summary.ingest
        out.print(
            f"discarded {len(report.discarded_packages)} incomplete packages, "
            f"released {len(report.released_claims)} stale claims, "
            f"removed {report.removed_leftovers} staging leftovers, "
            f"indexed {len(summary.indexed)} documents"
        )
