"""Third-party warnings that tell a Kluis user nothing, silenced before anything imports them.

cryptography 51 deprecates DSA, and pyHanko imports the DSA key types when it is imported:
every ``kluis`` command would start with that warning on stderr although Kluis never uses
DSA. Imported first by :mod:`kluis.cli.main`. The processes ``kluis serve`` starts (uvicorn
workers, ingest processes) are new interpreters: they take the filter from
``PYTHONWARNINGS``, which this module extends for them.
"""

from __future__ import annotations

import os
import warnings

_MESSAGE = "DSA is deprecated"

warnings.filterwarnings("ignore", message=_MESSAGE)
os.environ["PYTHONWARNINGS"] = ",".join(
    filter(None, (os.environ.get("PYTHONWARNINGS"), f"ignore:{_MESSAGE}"))
)
