"""``kluis jobs``: run one maintenance job once under its lease, list the leases."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from kluis.cli.app import app, open_services, out
from kluis.cli.errors import cli_errors

jobs_app = typer.Typer(
    help="Scheduled maintenance jobs (what `kluis serve` runs), each under a storage lease.",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Job name (see `kluis jobs list`)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Run one job once under its lease (for cron-style deployments).

    Exits 75 when another instance holds the job's lease, 1 when the job found problems
    (corrupt packages, failed renewals)."""
    from kluis.maintenance import build_leases, job_table, run_job

    with cli_errors():
        services = open_services()
        try:
            table = job_table(services)
            if name not in table:
                Console(stderr=True).print(
                    f"[red]error:[/red] no job {name!r}; jobs: {', '.join(sorted(table))}"
                )
                raise typer.Exit(2)
            ttl = timedelta(seconds=services.settings.scheduler.lease_ttl_seconds)
            summary = run_job(table[name], build_leases(services), ttl)
            services.index.refresh()
        finally:
            services.close()
        if as_json:
            print(json.dumps({"job": name, "summary": summary.text, **summary.details}))
        else:
            out.print(f"{name}: {summary.text}")
        if summary.problems:
            raise typer.Exit(1)


@jobs_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines")] = False,
) -> None:
    """Every job with its interval and who holds its lease until when."""
    from kluis.maintenance import build_leases, job_table

    with cli_errors():
        services = open_services()
        try:
            leases = build_leases(services, holder="kluis-jobs-list")
            records = {r.job: r for r in leases.all()}
            table = job_table(services)
        finally:
            services.close()
        rows = []
        for name in sorted(set(table) | set(records)):
            record = records.get(name)
            state = "free"
            if record is not None and not leases.is_free(record):
                state = "held"
            rows.append(
                {
                    "job": name,
                    "interval_seconds": table[name].interval_seconds if name in table else None,
                    "state": state,
                    "holder": record.holder if record and not record.released else None,
                    "acquired": record.acquired.isoformat() if record else None,
                    "expires": record.expires.isoformat() if record else None,
                    "released": record.released if record else None,
                }
            )
        if as_json:
            for row in rows:
                print(json.dumps(row))
            return
        view = Table("job", "every", "state", "holder", "until")
        for row in rows:
            every = row["interval_seconds"]
            view.add_row(
                str(row["job"]),
                f"{every:g} s" if isinstance(every, float) and every > 0 else "off",
                str(row["state"]),
                str(row["holder"] or "-"),
                str(row["expires"] if row["state"] == "held" else "-"),
            )
        out.print(view)
