"""The benchmark's own Redis and PostgreSQL databases: it refuses ones that already hold
Clarion data, and empties them when it is done (also after a failure), so a benchmark can
never mix its traffic with anyone's and a second run starts clean."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from clarion.backends.postgres import connect
from clarion.backends.postgres.schema import clarion_rows, empty_all
from clarion.errors import ConfigError


@contextmanager
def owned_backends(broker: str | None, store: str | None) -> Iterator[None]:
    if broker is not None:
        claim_empty_redis(broker)
    if store is not None:
        asyncio.run(_claim_empty_postgres(store))
    try:
        yield
    finally:
        if broker is not None:
            release_redis(broker)
        if store is not None:
            asyncio.run(_release_postgres(store))


def claim_empty_redis(url: str) -> None:
    """The benchmark owns the Redis database it is given, so it must start empty of Clarion
    queues (it removes them when done)."""
    client = redis.Redis.from_url(url)
    try:
        if client.exists("clarion:topics"):
            raise ConfigError(
                f"{url} already holds Clarion queues; give the benchmark a database of its own"
                " (for example redis://host:6379/15)"
            )
    except redis.ConnectionError as exc:
        raise ConfigError(f"cannot reach the broker at {url}: {exc}") from None
    finally:
        client.close()


async def _claim_empty_postgres(dsn: str) -> None:
    """Like the Redis database, the PostgreSQL one must be the benchmark's own."""
    async with connect(dsn) as conn:
        if await clarion_rows(conn):
            raise ConfigError(
                f"{dsn} already holds Clarion data; give the benchmark a database of its own"
                " (createdb clarion_bench)"
            )


async def _release_postgres(dsn: str) -> None:
    async with connect(dsn) as conn:
        await empty_all(conn)


def release_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match="clarion:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
