"""The ceilings to compare against, measured in the same run: raw SQLite bulk inserts, raw
Redis pipelines, raw PostgreSQL COPY."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import redis

from clarion.backends.postgres import connect


def sqlite_insert_rows_per_s(rows: int = 1_000_000, chunk: int = 1000) -> float:
    """Rows/s for ``executemany`` of (text, integer) rows in ``chunk``-row transactions, with
    the same WAL / synchronous=NORMAL settings the workers use, into a fresh file."""
    with tempfile.TemporaryDirectory(prefix="clarion-raw-") as scratch:
        conn = sqlite3.connect(Path(scratch) / "raw.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE raw (user_id TEXT NOT NULL, seq INTEGER NOT NULL)")
            ids = [f"u{i:08d}" for i in range(chunk)]
            started = time.perf_counter()
            for _ in range(rows // chunk):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO raw VALUES (?, 7)", [(u,) for u in ids])
                conn.execute("COMMIT")
            return rows / (time.perf_counter() - started)
        finally:
            conn.close()


def redis_pipeline_ops_per_s(url: str, ops: int = 200_000, chunk: int = 1000) -> float:
    """Commands/s for pipelined ``XADD`` of 100-byte entries, ``chunk`` per round trip, into a
    scratch stream that is deleted afterwards: the broker's publish path without Clarion."""
    client = redis.Redis.from_url(url)
    key = f"clarion-raw:{uuid.uuid4().hex}"
    body = b"x" * 100
    try:
        started = time.perf_counter()
        for _ in range(ops // chunk):
            pipe = client.pipeline(transaction=False)
            for _ in range(chunk):
                pipe.xadd(key, {"b": body})
            pipe.execute()
        return ops / (time.perf_counter() - started)
    finally:
        client.delete(key)
        client.close()


def postgres_copy_rows_per_s(dsn: str, rows: int = 200_000, chunk: int = 1000) -> float:
    """Rows/s for ``COPY`` of inbox-shaped rows (user, event, time) into a table keyed like
    the inbox — primary key (user_id, seq) — one transaction per ``chunk`` rows, as the
    pipeline would commit a batch. The scratch table is dropped afterwards."""

    async def measure() -> float:
        table = f"clarion_raw_{uuid.uuid4().hex[:12]}"
        async with connect(dsn) as conn:
            await conn.execute(
                f"CREATE TABLE {table} (user_id text NOT NULL, seq bigint NOT NULL,"
                " created_at double precision NOT NULL, PRIMARY KEY (user_id, seq))"
            )
            batch = [(f"u{i:08d}", 0, 0.0) for i in range(chunk)]
            started = time.perf_counter()
            for n in range(rows // chunk):
                records = [(u, n, 1.0) for u, _, _ in batch]
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=records)
            elapsed = time.perf_counter() - started
            await conn.execute(f"DROP TABLE {table}")
        return rows / elapsed

    return asyncio.run(measure())
