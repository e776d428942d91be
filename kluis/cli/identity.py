"""Who runs an archivist command: taken from a verified token, never from a free-text name.

Disposal's four-eyes rule and the record of who placed or lifted a legal hold are only as
strong as the identities they carry, so the CLI checks an archivist token (``--token`` or
``KLUIS_TOKEN``) with the same verifier the API uses. ``kluis token --role archivist --sub ID``
mints one in development.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kluis.auth import ForbiddenError
from kluis.settings import KluisSettings
from kluis.wiring import build_verifier

__all__ = ["TokenOption", "archivist"]

TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="KLUIS_TOKEN",
        help="An archivist token (JWT); default: $KLUIS_TOKEN",
        show_default=False,
    ),
]


def archivist(settings: KluisSettings, token: str) -> str:
    """The verified archivist id of ``token``.

    Raises:
        AuthenticationError: no usable token.
        ForbiddenError: not an archivist token.
    """
    principal = build_verifier(settings).verify(token.strip())
    if principal.role != "archivist":
        raise ForbiddenError("this command needs an archivist token")
    return principal.subject
