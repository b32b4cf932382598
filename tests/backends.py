"""Looking into a runtime's database directly, whichever backend holds it: what a test needs
to check that no store method exposes (who got an entry for an event) or to tamper with;
and preparing one for processes a test starts."""

from __future__ import annotations

import asyncio
from typing import Any

from clarion.config import Settings
from clarion.keys import create_key
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import Runtime, open_runtime


async def rows(runtime: Runtime, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``?`` placeholders) on the runtime's store; committed at once."""
    if runtime._postgres is not None:
        numbered = sql
        for n in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        async with runtime._postgres.transaction() as c:
            return [tuple(r) for r in await c.fetch(numbered, *args)]
    db = runtime._sqlite
    assert db is not None
    return await db.write(lambda c: c.execute(sql, args).fetchall())


async def insert_many(runtime: Runtime, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Run one ``INSERT`` (``?`` placeholders) for every row, in one transaction: seeding
    100,000 people through the stores' one-at-a-time methods is minutes on PostgreSQL."""
    if runtime._postgres is not None:
        numbered = sql
        for n in range(1, sql.count("?") + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        async with runtime._postgres.transaction() as c:
            await c.executemany(numbered, rows)
        return
    db = runtime._sqlite
    assert db is not None
    await db.write(lambda c: c.executemany(sql, rows))


async def inbox_users(runtime: Runtime, event_id: str) -> list[str]:
    """Who has an inbox entry for the event, in id order."""
    found = await rows(
        runtime,
        "SELECT user_id FROM inbox JOIN events USING (seq) WHERE event_id = ? ORDER BY user_id",
        event_id,
    )
    return [r[0] for r in found]


def query(settings: Settings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """``rows`` from outside any event loop, on a runtime of its own (end-to-end tests)."""

    async def run() -> list[tuple[Any, ...]]:
        runtime = open_runtime(settings)
        try:
            return await rows(runtime, sql, *args)
        finally:
            await runtime.close()

    return asyncio.run(run())


def prepared(settings: Settings, *types: TypeSpec) -> str:
    """``types`` (or a ``note`` type: P1, in-app) and an admin key, made before the
    processes a test starts; returns the key's secret."""

    async def prepare() -> str:
        runtime = open_runtime(settings)
        try:
            for spec in types or (TypeSpec("note", Priority.P1, (Channel.IN_APP,)),):
                await runtime.stores.types.put(spec, runtime.clock.now())
            _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
            return secret
        finally:
            await runtime.close()

    return asyncio.run(prepare())
