"""A PostgreSQL database shared by every Clarion process, on any number of machines.

Each process keeps a small connection pool, opened on first use (in the event loop that
uses it) after bringing the schema up to date. Store methods take one connection for one
transaction; bulk paths pass whole batches as arrays (``unnest``) so a 1,000-recipient
batch is a handful of statements, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg import Connection

from clarion.backends.postgres.schema import ensure_log_partitions, migrate
from clarion.errors import ConfigError

SESSION_SETTINGS = {
    # Clarion's hot tables are read by id lists (``= ANY($1)``, 1,000 ids a batch) and sit in
    # memory. At the default cost of 4 for a random page, the planner preferred scanning a
    # 200,000-row table whole to 1,000 index probes: 11.4 ms against 1.5 ms per lookup,
    # which made batch ingest six times slower. 1.1 is the usual setting for SSDs.
    "random_page_cost": "1.1",
    # Compiling a big batch statement costs more than it saves on short transactions.
    "jit": "off",
}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a pool connection is reset with when it is handed back: nothing beyond what
    asyncpg always does (roll back a transaction left open).

    The default also runs ``RESET ALL; UNLISTEN *; CLOSE ALL; pg_advisory_unlock_all()``: a
    round trip on every release, a tenth of an API process's time in a reconnect storm. No
    pool connection here keeps session state: locks are transaction-scoped, settings are
    the pool's own (``SESSION_SETTINGS``) and LISTEN has a connection of its own."""


class PostgresDatabase:
    def __init__(self, dsn: str, *, now: Callable[[], float], max_connections: int = 4) -> None:
        self.dsn = dsn
        self._now = now
        self._max = max_connections
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self.outbox_commits = 0
        """Commits of this process that added outbox messages (other processes' arrive as
        NOTIFY): with it a relay here sees its own ingest at once."""

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open()
        return self._pool

    async def _open(self) -> asyncpg.Pool:
        async with connect(self.dsn) as first:
            await migrate(first)
            await ensure_log_partitions(first, self._now())
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self._max,
            server_settings=SESSION_SETTINGS,
            reset=_keep_session,
        )
        assert pool is not None
        return pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """One connection, one transaction: all of it commits, or none of it."""
        async with (await self.pool()).acquire() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await (await self.pool()).fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await (await self.pool()).fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await (await self.pool()).fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement in its own transaction; returns the rows it touched."""
        return rowcount(await (await self.pool()).execute(sql, *args))

    async def listen(
        self, channel: str, callback: Callable[..., object]
    ) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` on every NOTIFY on ``channel``; returns how to stop."""
        conn = await _connect(self.dsn)
        await conn.add_listener(channel, callback)

        async def stop() -> None:
            await conn.close()

        return stop

    async def upkeep(self) -> list[str]:
        """The delivery log's partitions for the coming days (workers call this hourly, so
        a long-lived deployment needs no cron); returns those it created."""
        async with (await self.pool()).acquire() as conn:
            return await ensure_log_partitions(conn, self._now())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _connect(dsn: str) -> Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(
            f"cannot reach the store at {dsn}: {str(exc).rstrip('.')}."
            " Is PostgreSQL running there, and does the database exist?"
        ) from None


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[Connection]:
    """One connection outside any pool (schema work, benchmarks); an unreachable server is
    a ``ConfigError`` that says what to check."""
    conn = await _connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


def rowcount(status: str) -> int:
    """The row count in a command tag such as ``UPDATE 3`` or ``INSERT 0 5``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
