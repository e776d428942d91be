"""Commands to run and configure Kluis: serve, token, config."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer

from kluis.auth import Role, mint_dev_token
from kluis.cli.app import app, load_settings, out
from kluis.cli.errors import cli_errors


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes (default: the workers setting, 1)", min=1, max=64),
    ] = None,
) -> None:
    """Run the HTTP API (and the index writer) on the configured backends."""
    from kluis.api.serve import serve_api

    with cli_errors():
        settings = load_settings()
        host = host or settings.host
        port = port or settings.port
        workers = workers or settings.workers
        out.print(f"Kluis ({settings.mode}) on http://{host}:{port}, {workers} worker(s)")
        out.print(f"OpenAPI docs: http://{host}:{port}/docs")
        serve_api(settings, host=host, port=port, workers=workers)


@app.command()
def token(
    role: Annotated[Literal["agency", "citizen", "archivist"], typer.Option(help="Who")],
    sub: Annotated[str, typer.Option(help="Agency id, owner number or archivist id")],
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds", min=1)] = 3600,
) -> None:
    """Mint a development token (accepted only by a server in development mode)."""
    with cli_errors():
        settings = load_settings()
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
        out.print_json(json.dumps(load_settings().redacted()))
