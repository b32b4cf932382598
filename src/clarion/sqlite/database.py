"""One SQLite file shared by every Clarion process on a machine.

Invariants:

* WAL mode: readers never block the writer and the writer never blocks readers.
* Every process talks to the file through two connections, each owned by one thread
  (``read`` and ``write`` lanes), so a slow statement never blocks an event loop.
* Writers serialize on an ``flock`` of ``<db>.lock`` around ``BEGIN IMMEDIATE … COMMIT``.
  SQLite's own busy handler sleeps in growing steps (up to 100 ms) while it waits; a kernel
  lock wakes the next writer the moment the previous one commits, which keeps P0 latency
  flat when bulk work is writing.
* Durability is chosen per database handle: the ingest path opens with
  ``synchronous=FULL`` (a 202 means the event is fsynced in the WAL); workers use
  ``NORMAL``, which survives any process crash. Because WAL frames are ordered, losing a
  worker's tail on power loss can only lose acks *with* the effects before them, never
  effects without a later ack, so redelivery plus dedup repairs it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

from clarion.sqlite.schema import migrate

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]

_BUSY_TIMEOUT_MS = 60_000
_CACHE_KIB = 131_072  # 128 MiB page cache per connection; bulk fan-out touches a lot


class _Lane:
    """A connection and the single thread allowed to use it."""

    def __init__(self, path: Path, name: str, synchronous: Synchronous) -> None:
        self._path = path
        self._synchronous = synchronous
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{name}")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path, self._synchronous)
            self._local.conn = conn
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    def close(self) -> None:
        def _close() -> None:
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)


def _connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA wal_autocheckpoint=4000")
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


class SqliteDatabase:
    """The shared file, with a read lane, a write lane and the cross-process write lock."""

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._prepare()
        self._reader = _Lane(self.path, "read", synchronous)
        self._writer = _Lane(self.path, "write", synchronous)
        self._closed = False

    def _prepare(self) -> None:
        with self._locked():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn)
            finally:
                conn.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the read connection (autocommit: each statement sees the latest commit)."""
        return await self._reader.run(fn)

    async def snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one read transaction, so all its statements see the same state."""

        def _in_snapshot(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return await self._reader.run(_in_snapshot)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction: all of it commits, or none of it."""
        return await self._writer.run(self._transaction(fn))

    def _transaction(
        self, fn: Callable[[sqlite3.Connection], T]
    ) -> Callable[[sqlite3.Connection], T]:
        def _in_transaction(conn: sqlite3.Connection) -> T:
            with self._locked():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        return _in_transaction

    async def data_version(self) -> int:
        """Changes whenever another connection commits; a cheap "is there news?" probe."""
        return await self._reader.run(lambda c: int(c.execute("PRAGMA data_version").fetchone()[0]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reader.close()
        self._writer.close()
        os.close(self._lock_fd)
