"""``clarion queues``, ``clarion dlq`` and ``clarion senders``: what is waiting, what the
pipeline gave up on, and who was cut off."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from clarion.broker import DeadLetter
from clarion.cli.common import (
    BrokerOption,
    Commands,
    DbOption,
    JsonOption,
    settings_for,
    with_runtime,
)
from clarion.errors import InputError, NotFoundError
from clarion.models import Priority
from clarion.pipeline.messages import summarize
from clarion.resilience.load import measure
from clarion.runtime import Runtime
from clarion.topics import STAGES, topic

dlq = typer.Typer(
    cls=Commands,
    help="Dead letters: messages given up on (a crashing event, a spent retry budget).",
    no_args_is_help=True,
)
senders = typer.Typer(
    cls=Commands,
    help="Senders cut off because their events kept being dead-lettered.",
    no_args_is_help=True,
)
_out = Console()


def queues(db: DbOption = None, broker: BrokerOption = None, as_json: JsonOption = False) -> None:
    """Messages waiting in each queue (per stage and priority), those held for later (quiet
    hours, caps, retry backoff), and the load level ingest sees."""
    settings = settings_for(db, broker=broker)

    async def read(rt: Runtime) -> tuple[dict[str, int], dict[str, int]]:
        return await rt.broker.depths(), await rt.broker.held()

    depths, held = with_runtime(settings, read)
    load = measure(depths, shed_p2=settings.load_shed_p2, shed_p1=settings.load_shed_p1)
    if as_json:
        doc = {"depths": depths, "held": held, "level": load.level.value, "backlog": load.backlog}
        typer.echo(json.dumps(doc, indent=2))
        return
    where = f"Redis at {settings.broker}" if settings.broker else f"the database {settings.db}"
    table = Table("stage", *(p.value for p in Priority), "held for later", title="Messages waiting")
    for stage in STAGES:
        later = sum(held.get(topic(stage, p), 0) for p in Priority)
        table.add_row(
            stage, *(f"{depths.get(topic(stage, p), 0):,}" for p in Priority), f"{later:,}"
        )
    _out.print(table)
    _out.print(
        f"Queues in {where}. Load: {load.level.value} ({load.backlog:,} batches waiting for"
        f" evaluation or delivery; P2 is refused from {settings.load_shed_p2:,}, P1 from"
        f" {settings.load_shed_p1:,})."
    )


def _summary(dead: DeadLetter) -> dict[str, Any]:
    found = summarize(dead.topic, dead.body)
    return {
        "id": dead.id,
        "topic": dead.topic,
        "error": dead.error,
        "attempts": dead.attempts,
        "failed_at": dead.failed_at,
        "event_ids": found.event_ids if found else [],
        "senders": found.senders if found else [],
        "recipients": found.recipients if found else 0,
    }


@dlq.command("list")
def list_letters(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    db: DbOption = None,
    broker: BrokerOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dead letters."""
    letters: list[DeadLetter] = with_runtime(
        settings_for(db, broker=broker), lambda rt: rt.broker.dead_letters(limit=limit)
    )
    rows = [_summary(d) for d in letters]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "queue", "events", "senders", "recipients", "attempts", "error")
    for r in rows:
        table.add_row(
            r["id"],
            r["topic"],
            ", ".join(r["event_ids"][:3]) + (" …" if len(r["event_ids"]) > 3 else ""),
            ", ".join(r["senders"]),
            str(r["recipients"]),
            str(r["attempts"]),
            r["error"][:80],
        )
    _out.print(table if rows else "No dead letters.")


@dlq.command("show")
def show(
    dead_id: Annotated[str, typer.Argument(help="The id from `clarion dlq list`.")],
    db: DbOption = None,
    broker: BrokerOption = None,
) -> None:
    """Print one dead letter, message included (JSON)."""
    dead = with_runtime(settings_for(db, broker=broker), lambda rt: _find(rt, dead_id))
    try:
        body: Any = orjson.loads(dead.body)
    except orjson.JSONDecodeError:
        body = dead.body.decode("utf-8", "replace")
    typer.echo(json.dumps(_summary(dead) | {"body": body}, indent=2))


@dlq.command("replay")
def replay(
    dead_ids: Annotated[list[str], typer.Argument(help="Ids to put back on their queues.")],
    db: DbOption = None,
    broker: BrokerOption = None,
) -> None:
    """Put dead letters back on their queues — after fixing what killed them."""

    async def put_back(rt: Runtime) -> list[str]:
        return [d for d in dead_ids if await rt.broker.replay(d)]

    done = with_runtime(settings_for(db, broker=broker), put_back)
    missing = [d for d in dead_ids if d not in done]
    _out.print(f"Replayed {len(done)} dead letter(s).")
    if missing:
        raise NotFoundError(f"no dead letter {', '.join(missing)} (see `clarion dlq list`)")


@dlq.command("purge")
def purge(
    dead_id: Annotated[str | None, typer.Argument(help="One id; omit with --all.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    db: DbOption = None,
    broker: BrokerOption = None,
) -> None:
    """Delete a dead letter for good (or all of them with --all)."""
    if (dead_id is None) == (not everything):
        raise InputError.single("id", "give one dead letter id, or --all")
    gone = with_runtime(settings_for(db, broker=broker), lambda rt: rt.broker.purge(dead_id))
    if dead_id is not None and not gone:
        raise NotFoundError(f"no dead letter {dead_id} (see `clarion dlq list`)")
    _out.print(f"Purged {gone} dead letter(s).")


async def _find(rt: Runtime, dead_id: str) -> DeadLetter:
    found = await rt.broker.dead_letter_by_id(dead_id)
    if found is None:
        raise NotFoundError(f"no dead letter {dead_id} (see `clarion dlq list`)")
    return found


@senders.command("list")
def list_blocked(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Senders currently blocked."""
    blocked = with_runtime(settings_for(db), lambda rt: rt.stores.senders.blocked())
    rows: list[dict[str, Any]] = [
        {"sender": s, "blocked_at": at, "reason": r} for s, (at, r) in sorted(blocked.items())
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("sender", "reason")
    for row in rows:
        table.add_row(row["sender"], row["reason"])
    _out.print(table if rows else "No sender is blocked.")


@senders.command("unblock")
def unblock(
    sender: Annotated[str, typer.Argument(help="The sender to let back in.")],
    db: DbOption = None,
) -> None:
    """Let a blocked sender send again (its strikes are forgotten)."""
    if not with_runtime(settings_for(db), lambda rt: rt.stores.senders.unblock(sender)):
        raise NotFoundError(f"sender {sender!r} is not blocked")
    _out.print(f"Sender {sender} may send again.")
