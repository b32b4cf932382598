"""One SQLite file shared by every Clarion process on a machine.

Invariants:

* WAL mode: readers never block the writer and the writer never blocks readers.
* Statements run inline on the calling thread (the event loop's). Clarion's statements are
  short and bulk (a batch is one ``INSERT … SELECT FROM json_each``), and handing them to a
  helper thread cost more than it saved: under load the helper waits for the GIL after every
  statement while the event loop holds it, which made a 1 ms transaction take 10 ms.
  A lock guards the connection so tests may share one runtime between threads.
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

import fcntl
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypeVar

from clarion.sqlite.schema import migrate

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]

_BUSY_TIMEOUT_MS = 60_000
_CACHE_KIB = 131_072  # 128 MiB page cache; bulk fan-out touches a lot


def _connect(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA wal_autocheckpoint=4000")
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


class SqliteDatabase:
    """The shared file: one connection per process, and the cross-process write lock."""

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        with self._file_locked():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn)
            finally:
                conn.close()
        self._conn = _connect(self.path, synchronous)
        self._guard = threading.RLock()
        self._closed = False
        self.before_write: Callable[[], Awaitable[None]] | None = None
        """Awaited before each write transaction: a worker gives way to P0 work there
        (``Runner.give_way_if_bulk``), so an OTP's commits do not queue behind its batches."""

    @contextmanager
    def _file_locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in autocommit mode: each statement sees the latest commit."""
        with self._guard:
            return fn(self._conn)

    async def snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one read transaction, so all its statements see the same state."""
        with self._guard:
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn)
            finally:
                self._conn.execute("COMMIT")

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction: all of it commits, or none of it."""
        if self.before_write is not None:
            await self.before_write()
        with self._guard, self._file_locked():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def data_version(self) -> int:
        """Changes whenever another connection commits; a cheap "is there news?" probe."""
        with self._guard:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def own_changes(self) -> int:
        """Rows this connection has changed so far (its own commits do not move
        ``data_version``)."""
        with self._guard:
            return self._conn.total_changes

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._guard:
            self._conn.close()
        os.close(self._lock_fd)
