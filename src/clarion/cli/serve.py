"""``clarion serve`` (API + workers in one command) and ``clarion worker`` (workers alone)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from clarion import collector, logs, metrics
from clarion.api import listeners
from clarion.cli.common import (
    BrokerOption,
    DbOption,
    LogFormatOption,
    LogLevelOption,
    StoreOption,
    configure_logging,
    settings_for,
)
from clarion.errors import InputError
from clarion.models import Priority
from clarion.runtime import check_backends
from clarion.supervisor import Supervisor, standard_workers
from clarion.topics import STAGES
from clarion.worker import run_worker

_out = Console(stderr=True)


STREAMS_GRACE_S = 3
"""How long open live streams get to finish when the server stops."""


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    db: DbOption = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    workers: Annotated[
        int | None,
        typer.Option(help="General worker processes. \\[default: 2]", show_default=False),
    ] = None,
    p0_workers: Annotated[
        int | None,
        typer.Option(help="Worker processes reserved for P0. \\[default: 1]", show_default=False),
    ] = None,
    api_processes: Annotated[
        int, typer.Option(min=1, max=64, help="HTTP server processes sharing the port.")
    ] = 1,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the HTTP API and the pipeline workers (on the embedded SQLite backend unless
    --broker names a Redis server and --store a PostgreSQL database)."""
    settings = settings_for(db, broker=broker, store=store, workers=workers, p0_workers=p0_workers)
    configure_logging(log_level, log_format)
    asyncio.run(check_backends(settings))
    os.environ["CLARION_DB"] = str(settings.db.resolve())
    if settings.broker:
        os.environ["CLARION_BROKER"] = settings.broker
    if settings.store:
        os.environ["CLARION_STORE"] = settings.store
    specs = standard_workers(
        settings.workers, settings.p0_workers, bulk_nice=settings.bulk_worker_nice
    )
    # Every process started from here counts into one directory the API adds up on scrape.
    chosen = os.environ.get(metrics.MULTIPROCESS_ENV)
    counted = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="clarion-metrics-"))
    metrics.use_directory(counted)
    supervisor = Supervisor(specs, os.environ)
    queues = f"queues in {settings.broker}" if settings.broker else "queues in the database"
    stores = f"stores in {settings.store}" if settings.store else f"database {settings.db}"
    _out.print(
        f"Clarion on http://{host}:{port} ({stores}, {queues}); {api_processes} API"
        f" process(es), {settings.workers} workers + {settings.p0_workers} reserved for P0"
    )
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down, restoring the handlers it found.
    # With the default handlers that would kill us before the workers are stopped; these
    # make the re-raised signal a no-op, so shutdown continues below and exits cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    supervisor.start()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(supervisor, stop), daemon=True)
    watcher.start()
    try:
        _serve_api(
            uvicorn.Config(
                "clarion.api.app:app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=api_processes,
                log_level=os.environ[logs.LEVEL_ENV],
                log_config=None,  # our handler and format (clarion.logs), not uvicorn's
                access_log=False,
                # Live streams never end on their own: give them a moment, then close them
                # (devices reconnect, to this server once it is back or to another one).
                timeout_graceful_shutdown=STREAMS_GRACE_S,
            )
        )
    finally:
        stop.set()
        watcher.join()
        supervisor.stop()
        if not chosen:
            shutil.rmtree(counted, ignore_errors=True)


def _serve_api(config: uvicorn.Config) -> None:
    """Run the API processes until a signal stops them (``uvicorn.run`` but for the sockets:
    several processes each listen on their own, ``api.listeners``)."""
    if config.workers == 1:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:  # the port is taken, or the app failed to load
            raise typer.Exit(STARTUP_FAILURE)
        return
    try:
        reservation = listeners.reserve_port(config.host, config.port)
    except OSError as exc:
        _out.print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}")
        raise typer.Exit(STARTUP_FAILURE) from None
    try:
        Multiprocess(config, sockets=[reservation]).run()
    finally:
        reservation.close()


def _watch(supervisor: Supervisor, stop: threading.Event) -> None:
    """Restart any worker that died (its unacked work is redelivered to whoever is left)."""
    while not stop.wait(0.5):
        supervisor.check()


def worker(
    db: DbOption = None,
    broker: BrokerOption = None,
    store: StoreOption = None,
    stages: Annotated[str, typer.Option(help="Comma-separated stages to run.")] = ",".join(STAGES),
    priorities: Annotated[str, typer.Option(help="Comma-separated priorities to take.")] = (
        "P0,P1,P2"
    ),
    name: Annotated[str, typer.Option(help="Name in logs and statistics.")] = "worker",
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
    nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="Lower this process's CPU priority by so much (a bulk worker beside"
            " P0-reserved ones, so that the OS runs the urgent path first).",
        ),
    ] = 0,
) -> None:
    """Run pipeline workers alone. Start as many as you like against one database: they
    share the work (competing consumers), through its queues or, with --broker, Redis's."""
    chosen_stages = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in chosen_stages if s not in STAGES]
    if unknown or not chosen_stages:
        raise InputError.single("stages", f"choose from {', '.join(STAGES)}")
    try:
        chosen = [Priority(p.strip().upper()) for p in priorities.split(",") if p.strip()]
    except ValueError:
        raise InputError.single("priorities", "choose from P0, P1, P2") from None
    settings = settings_for(db, broker=broker, store=store)
    configure_logging(log_level, log_format)
    asyncio.run(check_backends(settings))
    if nice:
        os.nice(nice)
    collector.settle()
    asyncio.run(
        run_worker(settings, stages=chosen_stages, priorities=chosen or list(Priority), name=name)
    )
