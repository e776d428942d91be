"""Turns domain errors into a message on stderr and an exit code, from the shared table."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from ingest.errors import InvalidSubmissionError
from kluis.problems import INTERNAL, problem_for

err = Console(stderr=True, highlight=False)
log = logging.getLogger("kluis.cli")


@contextmanager
def cli_errors(verbose: bool = False) -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        problem = problem_for(exc)
        if problem is None:
            log.exception("internal error")
            err.print(f"[red]error:[/red] internal error ({type(exc).__name__}); see the log")
            raise typer.Exit(INTERNAL.exit_code) from exc
        err.print(f"[red]error:[/red] {problem.title}: {exc}", markup=True, soft_wrap=True)
        if isinstance(exc, InvalidSubmissionError):
            for field_problem in exc.problems:
                err.print(f"  - {field_problem.field}: {field_problem.message}", markup=False)
        if verbose:
            cause = exc.__cause__
            while cause is not None:
                err.print(f"  caused by {type(cause).__name__}: {cause}", markup=False)
                cause = cause.__cause__
        raise typer.Exit(problem.exit_code) from exc
