"""``clarion demo``: seed 000's creator upload, end to end, through the real API and workers.

It starts an API server and worker processes on a fresh database, registers the type, seeds
creator_A's followers through the API, publishes one ``video_uploaded`` event, shows the
fan-out and delivery progress, and finishes with the number of inbox entries actually
written — counted in the inbox store, not taken from a counter the workers keep.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clarion.cli.common import settings_for
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers
from clarion.types import EventId

_out = Console()
CREATOR = "creator_A"
TYPE = "video_uploaded"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    followers: Annotated[int, typer.Option(help="How many followers creator_A has.")] = 10_000,
    batch_size: Annotated[int, typer.Option(help="Recipients per fan-out batch.")] = 500,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the batches.")] = 3,
    db: Annotated[
        Path | None, typer.Option(help="Database file. \\[default: a fresh temporary one]")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 300.0,
    ui: Annotated[
        bool,
        typer.Option(
            "--ui",
            help="Then keep the server running and print the inbox widget's and the"
            " dashboard's addresses (Ctrl-C stops it).",
        ),
    ] = False,
) -> None:
    """Creator upload → followers' inboxes, through the real API and worker processes."""
    with tempfile.TemporaryDirectory(prefix="clarion-demo-") as scratch:
        path = db or Path(scratch) / "clarion.db"
        settings = settings_for(path, batch_size=batch_size).replace(demo_user=DEMO_USER)
        key = _admin_key(settings)
        _out.rule("[bold]Clarion demo: creator upload notification[/bold]")
        _out.print(f"  database  {path}")
        with LocalClarion(settings, standard_workers(workers, 0)) as local:
            _out.print(f"  API       {local.url}   workers: {workers} processes")
            delivered = asyncio.run(_run(local, key, followers, timeout))
            if ui:
                _stay_up(local.url, key)
        _out.print(_worker_table(settings))
        _out.rule()
        _out.print(f"  Total notifications delivered: {delivered:,} / {followers:,}")
        _out.rule()
        if delivered != followers:
            raise typer.Exit(1)


DEMO_USER = "fan_0000000"
"""The follower whose inbox ``/ui/demo`` shows."""


def _stay_up(url: str, key: str) -> None:
    _out.rule("[bold]Look at it[/bold]")
    _out.print(f"  Inbox widget  {url}/ui/demo   ({DEMO_USER}'s inbox, live)")
    _out.print(f"  Dashboard     {url}/ui/ops    (sign in with the admin key {key})")
    _out.print("  Ctrl-C stops the server.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _out.print("  stopping")


def _admin_key(settings: Any) -> str:
    async def make() -> str:
        runtime = open_runtime(settings, durable_commits=True)
        try:
            _, secret = await create_key(
                runtime.stores.keys, runtime.clock, sender="demo", admin=True
            )
            return secret
        finally:
            await runtime.close()

    return asyncio.run(make())


async def _run(local: LocalClarion, key: str, followers: int, timeout_s: float) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=local.url, headers=headers, timeout=60) as api:
        await _call(
            api.put(
                f"/v1/types/{TYPE}",
                json={
                    "priority": "P1",
                    "channels": ["in_app"],
                    "ttl_seconds": 3600,
                    "description": "New video",
                },
            )
        )
        _out.print(f"  [green][+][/green] type registered: {TYPE} (P1, in_app)")
        ids = "".join(f"fan_{i:07d}\n" for i in range(followers)).encode()
        seeded = await _call(
            api.post(
                f"/v1/users/{CREATOR}/followers",
                content=ids,
                headers={"content-type": "text/plain"},
            )
        )
        _out.print(f"  \\[Main] Seeded {seeded['count']:,} followers for {CREATOR}")
        accepted = await _call(
            api.post(
                "/v1/notifications",
                json={
                    "type": TYPE,
                    "actor": CREATOR,
                    "fan_out": "followers",
                    "object": "vid_001",
                    "payload": {
                        "title": "My Awesome New Video 🎬",
                        "body": f"{CREATOR} uploaded a video",
                    },
                },
            )
        )
        event_id = EventId(accepted["event_id"])
        _out.print(f"  \\[VideoUploadService] Published event → creator={CREATOR} video=vid_001")
        _out.print(f"                       event id {event_id}")
        await _follow(api, event_id, followers, timeout_s)
    runtime = open_runtime(local.settings)
    try:
        return await runtime.stores.inbox.count_for_event(event_id)
    finally:
        await runtime.close()


async def _call(request: Any) -> Any:
    response: httpx.Response = await request
    if response.status_code >= 400:
        raise BackendError(f"{response.request.url.path}: {response.status_code} {response.text}")
    return response.json()


async def _follow(
    api: httpx.AsyncClient, event_id: EventId, followers: int, timeout_s: float
) -> None:
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, console=_out) as progress:
        fanned = progress.add_task("fan-out batches", total=None)
        done = progress.add_task("delivered to inboxes", total=followers)
        while time.monotonic() < deadline:
            status = await _call(api.get(f"/v1/notifications/{event_id}"))
            progress.update(fanned, completed=status["batches_done"], total=status["batches_total"])
            progress.update(done, completed=status["delivered"] + status["suppressed"])
            if status["state"] in ("completed", "failed"):
                return
            await asyncio.sleep(0.1)
    raise BackendError(f"the event did not complete within {timeout_s:.0f}s")


def _worker_table(settings: Any) -> Table:
    async def load() -> list[Any]:
        runtime = open_runtime(settings)
        try:
            return await runtime.stores.stats.all()
        finally:
            await runtime.close()

    table = Table("worker", "stage", "messages", "recipients", "busy (s)", title="Who did what")
    for s in asyncio.run(load()):
        table.add_row(s.worker, s.stage, f"{s.messages:,}", f"{s.items:,}", f"{s.busy_s:.2f}")
    return table
