"""The ``kluis`` Typer application, its shared console and how commands open the backends."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

from kluis.settings import KluisSettings
from kluis.wiring import Services, build_services

app = typer.Typer(
    name="kluis",
    help="Kluis: government digital archive and document delivery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)


def load_settings() -> KluisSettings:
    return KluisSettings()


def open_services() -> Services:
    return build_services(load_settings())


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
