"""``clarion campaigns`` and ``clarion audiences``: a client of a running Clarion's API
(``--url``, ``--key`` or ``CLARION_URL``, ``CLARION_KEY``), as an operator at a terminal
uses it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clarion.cli.common import Commands, JsonOption
from clarion.errors import BackendError, InputError

campaigns = typer.Typer(
    cls=Commands, help="Campaigns: one message to an audience, at a rate.", no_args_is_help=True
)
audiences = typer.Typer(
    cls=Commands, help="Audiences: uploaded lists of people.", no_args_is_help=True
)
_out = Console()

UrlOption = Annotated[
    str,
    typer.Option(envvar="CLARION_URL", help="The Clarion API to talk to."),
]
KeyOption = Annotated[
    str,
    typer.Option(
        envvar="CLARION_KEY", help="An API key (clarion keys create).", show_default=False
    ),
]


def _client(url: str, key: str) -> httpx.Client:
    if not key:
        raise InputError.single("key", "give --key or set CLARION_KEY")
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> dict[str, Any]:
    try:
        answer = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        raise BackendError(f"cannot reach {client.base_url}: {exc}") from None
    doc: dict[str, Any] = answer.json() if answer.content else {}
    if answer.status_code >= 400:
        errors = doc.get("errors") or []
        if errors:
            raise InputError.single(errors[0]["field"], errors[0]["reason"])
        raise BackendError(f"{answer.status_code}: {doc.get('message', answer.text)}")
    return doc


@campaigns.command("create")
def create(
    name: Annotated[str, typer.Option(help="What people on your team call it.")],
    type_name: Annotated[str, typer.Option("--type", help="A registered P1/P2 type.")],
    title: Annotated[str, typer.Option(help="The notification's title.")] = "",
    body: Annotated[str, typer.Option(help="The notification's text.")] = "",
    followers_of: Annotated[str | None, typer.Option(help="Everyone following this id.")] = None,
    audience: Annotated[str | None, typer.Option(help="An uploaded audience's id.")] = None,
    segment: Annotated[
        str | None, typer.Option(help='Attributes as JSON, e.g. \'{"plan": "premium"}\'.')
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Everyone Clarion knows.")] = False,
    start_at: Annotated[str | None, typer.Option(help="RFC 3339; default now.")] = None,
    local_time: Annotated[str | None, typer.Option(help="HH:MM in each person's zone.")] = None,
    throttle: Annotated[float | None, typer.Option(help="At most this many people/s.")] = None,
    rollout: Annotated[int, typer.Option(min=1, max=100, help="Percent of the audience.")] = 100,
    draft: Annotated[bool, typer.Option(help="Keep it as a draft.")] = False,
    url: UrlOption = "http://127.0.0.1:8080",
    key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """Create a campaign (it starts at --start-at, or now)."""
    chosen = [
        (k, v)
        for k, v in (
            ("followers_of", followers_of),
            ("audience", audience),
            ("segment", None if segment is None else _json("segment", segment)),
            ("all", True if everyone else None),
        )
        if v is not None
    ]
    if len(chosen) != 1:
        raise InputError.single(
            "audience", "give one of --followers-of, --audience, --segment, --all"
        )
    doc: dict[str, Any] = {
        "name": name,
        "type": type_name,
        "audience": dict(chosen),
        "payload": {"title": title, "body": body},
        "rollout_percent": rollout,
        "draft": draft,
    }
    for field, value in (("start_at", start_at), ("local_time", local_time),
                         ("throttle_per_s", throttle)):  # fmt: skip
        if value is not None:
            doc[field] = value
    with _client(url, key) as client:
        made = _call(client, "POST", "/v1/campaigns", json=doc)
    _show(made, as_json)


def _json(field: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError.single(field, f"not valid JSON ({exc})") from None


@campaigns.command("list")
def listed(
    url: UrlOption = "http://127.0.0.1:8080", key: KeyOption = "", as_json: JsonOption = False
) -> None:
    """Campaigns, newest first, with their progress."""
    with _client(url, key) as client:
        items = _call(client, "GET", "/v1/campaigns")["items"]
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        _out.print("No campaigns yet: clarion campaigns create --help shows how to make one.")
        return
    table = Table("id", "name", "state", "targeted", "delivered", "pending", "rate/s")
    for c in items:
        table.add_row(
            c["id"], c["name"], c["state"], f"{c['targeted']:,}", f"{c['delivered']:,}",
            f"{c['pending']:,}", f"{c['rate_per_s']:,.0f}",
        )  # fmt: skip
    _out.print(table)


@campaigns.command("show")
def show(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
    watch: Annotated[
        bool, typer.Option(help="Follow it with a progress bar until it is done.")
    ] = False,
    url: UrlOption = "http://127.0.0.1:8080",
    key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """One campaign's state and progress."""
    with _client(url, key) as client:
        found = _call(client, "GET", f"/v1/campaigns/{campaign_id}")
        if watch:
            found = _watch(client, found)
    _show(found, as_json)


def _watch(client: httpx.Client, found: dict[str, Any]) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(found["name"], total=max(found["targeted"], 1))
        while True:
            done = found["delivered"] + found["suppressed"] + found["failed"] + found["held"]
            total = max(found["targeted"], done, 1)
            bar.update(
                task, completed=done, total=total, description=f"{found['name']} ({found['state']})"
            )
            if found["state"] in ("cancelled", "paused", "draft", "awaiting_approval") or (
                found["state"] == "completed" and found["pending"] == 0
            ):
                return found
            time.sleep(1.0)
            found = _call(client, "GET", f"/v1/campaigns/{found['id']}")


def _show(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    table = Table("", "", title=f"Campaign {found['id']}")
    for field in ("name", "type", "state", "start_at", "local_time", "throttle_per_s",
                  "rollout_percent", "targeted", "delivered", "suppressed", "held", "failed",
                  "pending", "rate_per_s"):  # fmt: skip
        value = found.get(field)
        table.add_row(
            field, "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        )
        if field == "suppressed":
            for reason, n in sorted((found.get("suppressed_by") or {}).items()):
                table.add_row(f"  {reason}", f"{n:,}")
    _out.print(table)


def _move(action: str) -> Any:
    def move(
        campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")],
        url: UrlOption = "http://127.0.0.1:8080",
        key: KeyOption = "",
        as_json: JsonOption = False,
    ) -> None:
        with _client(url, key) as client:
            _show(_call(client, "POST", f"/v1/campaigns/{campaign_id}/{action}"), as_json)

    move.__doc__ = {
        "approve": "Approve a campaign waiting for it (an admin key).",
        "pause": "Pause it: no one more is queued until it resumes.",
        "resume": "Resume a paused campaign where it stopped.",
        "cancel": "Cancel it: what is still queued is dropped within a second.",
    }[action]
    return move


for _action in ("approve", "pause", "resume", "cancel"):
    campaigns.command(_action)(_move(_action))


@audiences.command("upload")
def upload(
    file: Annotated[
        Path,
        typer.Argument(help="User ids: one per line, CSV or NDJSON.", exists=True, dir_okay=False),
    ],
    name: Annotated[str, typer.Option(help="What to call it.")] = "audience",
    url: UrlOption = "http://127.0.0.1:8080",
    key: KeyOption = "",
    as_json: JsonOption = False,
) -> None:
    """Upload an audience (streamed; repeats fold), with a progress bar."""
    kind = {".csv": "text/csv", ".ndjson": "application/x-ndjson", ".jsonl": "application/x-ndjson"}
    content_type = kind.get(file.suffix.lower(), "text/plain")
    size = file.stat().st_size
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with _client(url, key) as client, Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("upload", total=size)

        def chunks() -> Iterator[bytes]:
            with file.open("rb") as source:
                while chunk := source.read(1 << 20):
                    bar.advance(task, len(chunk))
                    yield chunk

        made = _call(
            client, "POST", "/v1/audiences", params={"name": name}, content=chunks(),
            headers={"Content-Type": content_type},
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(made, indent=2))
    else:
        _out.print(f"audience {made['id']} ({made['name']}): {made['size']:,} people")
