"""The cached corpus file of ``bench/search.py`` (shared with the reindex bench)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def corpus_path(work: Path, n: int) -> Path:
    path = work / f"corpus-{n}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        here = Path(__file__).resolve().parent
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(here / "search_corpus.py"), "--n", str(n), "--out", str(tmp),
             "--workers", "2"],
            check=True,
        )  # fmt: skip
        tmp.rename(path)
        print(f"generated {n:,} documents in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def index_cache_name(stem: str) -> str:
    """The directory name of a cached tantivy index: ``stem`` plus the schema and analysis
    versions, so a version bump builds a new cache instead of failing to open the old one."""
    from search._tantivy_schema import SCHEMA_VERSION
    from search.analysis import ANALYSIS_VERSION

    return f"{stem}-s{SCHEMA_VERSION}-{ANALYSIS_VERSION}"
