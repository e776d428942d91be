"""How ``kluis serve`` runs the API under uvicorn: one process, or N worker processes.

One Python process answers on one core (the GIL), and signing, METS building and the
framework are Python; ``workers`` > 1 lets uvicorn spawn that many processes sharing the
listening socket, so the API uses every core as a batch ingest does. This is safe because no
state that matters lives in one process:

* the tantivy index has one writer across processes: every worker submits to the durable
  outbox, the one holding the writer applies it, every reader reloads before searching;
* storage decides ingest idempotency (conditional creates) and the access log;
* scheduled jobs run under storage leases, so N workers never run a job twice at once;
* Prometheus counters go to a per-run directory (``PROMETHEUS_MULTIPROC_DIR``) that
  ``/metrics`` aggregates over every worker;
* deposits compute in one pool of ingest processes that this process starts before the
  workers (``ingest_processes``; :mod:`kluis.api.ingest_pool`), shared by every worker;
* rate limits are per process: each worker gets ``1/N`` of the configured rate and burst,
  so a replica never admits more than configured (a client whose connections all land on one
  worker gets less, never more).

uvicorn picks uvloop and httptools when they are installed (they are dependencies): on one
process they took a closed-loop citizen list from 393 to 699 requests/s here (h11/asyncio).
"""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from kluis.api.ingest_pool import ADDRESS_ENV as INGEST_ADDRESS_ENV
from kluis.api.ingest_pool import IngestProcesses
from kluis.settings import KluisSettings

PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKERS_ENV = "KLUIS_WORKERS"


def metrics_dir(settings: KluisSettings) -> Path:
    return settings.data_dir / "run" / f"prometheus-{os.getpid()}"


def serve_api(
    settings: KluisSettings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    http: str = "auto",
    loop: str = "auto",
) -> None:
    """Run uvicorn until it is stopped. Worker processes read their settings from the same
    environment and ``kluis.toml`` as this one, with ``KLUIS_WORKERS`` set to ``workers``."""
    import uvicorn

    from kluis.observability import configure_logging

    configure_logging()  # one JSON line per record, with the request id
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,  # our edge middleware logs the route template, never a query
        "http": http,
        "loop": loop,
    }
    with ExitStack() as cleanup:
        if settings.ingest_processes:
            # One pool for the server, before the workers: each hands its deposits to it.
            pool = IngestProcesses(settings, settings.ingest_processes)
            cleanup.callback(pool.close)
            pool.start()
            os.environ[INGEST_ADDRESS_ENV] = pool.address
        if workers <= 1:
            one = settings.model_copy(update={"workers": 1})
            uvicorn.run(create_worker_app(one), **options)  # type: ignore[arg-type]
            return
        shared = metrics_dir(settings)
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        cleanup.callback(shutil.rmtree, shared, ignore_errors=True)
        os.environ[PROMETHEUS_DIR_ENV] = str(shared)
        os.environ[WORKERS_ENV] = str(workers)
        uvicorn.run(
            "kluis.api.serve:create_worker_app",
            factory=True,
            workers=workers,
            **options,  # type: ignore[arg-type]
        )


def create_worker_app(settings: KluisSettings | None = None) -> FastAPI:
    """The app of one uvicorn process (the factory each spawned worker calls)."""
    from kluis.api.app import create_app
    from kluis.observability import configure_logging

    configure_logging()
    address = os.environ.get(INGEST_ADDRESS_ENV)
    app = create_app(settings or KluisSettings(), ingest_address=address)
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with started(app):
            # What exists once the backends are open lives as long as the process: keep it
            # out of the collector's full passes, which would walk it all (latency spikes).
            gc.collect()
            gc.freeze()
            yield

    app.router.lifespan_context = lifespan
    return app
