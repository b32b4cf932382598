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
  lock wakes the next writer the moment the previous one commits.
* P0 work goes first (``WriteGate``). A process with P0 work in hand (the API accepting an
  OTP, a worker delivering one) does not queue for the ``flock`` at all: it polls SQLite's
  own write lock every millisecond and so waits only for the bulk transaction in progress,
  not for the checkpoint that transaction's commit may run (SQLite releases its lock before
  checkpointing, the ``flock`` is held through it) nor for the bulk writers queued behind
  it. A bulk writer that was already queued when P0 work began hands the ``flock`` back once.
* Durability is chosen per database handle: the ingest path opens with
  ``synchronous=FULL`` (a 202 means the event is fsynced in the WAL); workers use
  ``NORMAL``, which survives any process crash. Because WAL frames are ordered, losing a
  worker's tail on power loss can only lose acks *with* the effects before them, never
  effects without a later ack, so redelivery plus dedup repairs it.
* WAL checkpoints are the bulk writers' chore. SQLite runs one inside the commit that
  takes the WAL past ``wal_autocheckpoint`` pages: bulk handles checkpoint at 1,000 pages
  (4 MiB), the urgent path's handles (the API, P0-reserved workers: ``checkpoints=False``)
  only at 16,000, a backstop for when no worker runs. Bulk handles also fsync their own WAL
  frames after each commit, off the event loop (``walflush``).

Measured on this machine, P0 OTP p99 under three 1M-recipient P2 campaigns
(``clarion bench isolation``): 33.8 to 35.6 ms (4.9 to 5.9x its idle p99) with every writer
in one ``flock`` queue and checkpoints every 4,000 pages by whoever crossed the line; 19.6
to 28.0 ms with the checkpoints split as above; 14.8 to 16.6 ms once queued bulk writers
hand the lock back; 12.0 to 15.5 ms with P0 writes outside the queue; 9.7 to 13.3 ms (1.5
to 2.3x idle, median 1.9x over 11 runs) with the WAL flushes too; 10.1 to 13.4 ms (1.6 to
2.4x, median 1.85x over 8 runs) once P0 commits stopped running checkpoints of their own;
1.2 to 2.5x (median 1.67x over 12 runs) once an evaluation commit held one 1,000-recipient
batch, not up to four (``pipeline.evaluate._RECIPIENTS_PER_COMMIT``).
The price is paid by bulk work: campaigns meanwhile ran at 343 to 403K recipients/s against
453 to 469K, fan-out alone is 7 to 9% slower and single-event ingest about 7% (9.3K against
10K events/s, p99 12.6 ms against 17 ms).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from clarion.backends.sqlite.schema import migrate
from clarion.backends.sqlite.walflush import WalFlusher

T = TypeVar("T")
Synchronous = Literal["NORMAL", "FULL"]

_BUSY_TIMEOUT_MS = 60_000
_URGENT_POLL_S = 0.001
"""How often an urgent writer retries a taken lock (an event loop sleeps no shorter)."""
URGENT_WAIT_S = _BUSY_TIMEOUT_MS / 1000
_CACHE_KIB = 131_072  # 128 MiB page cache; bulk fan-out touches a lot
BULK_CHECKPOINT_PAGES = 1_000
BACKSTOP_CHECKPOINT_PAGES = 16_000


def _connect(path: Path, synchronous: Synchronous, checkpoint_pages: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


class WriteGate(Protocol):
    """Orders this process's writes against other processes' by urgency."""

    def urgent(self) -> bool:
        """Whether this process has P0 work in hand: its writes then skip the queue."""

    async def wait_turn(self) -> None:
        """Awaited before each write transaction; returns when this process may write."""

    def should_yield(self) -> bool:
        """Asked once the write lock is held: whether to hand it back and wait again."""


class SqliteDatabase:
    """The shared file: one connection per process, and the cross-process write lock."""

    def __init__(
        self, path: Path | str, *, synchronous: Synchronous = "NORMAL", checkpoints: bool = True
    ) -> None:
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
        bulk = checkpoints and synchronous == "NORMAL"
        self._flusher = WalFlusher(self.path) if bulk else None
        self._checkpoint_pages = BULK_CHECKPOINT_PAGES if checkpoints else BACKSTOP_CHECKPOINT_PAGES
        self._conn = _connect(self.path, synchronous, self._checkpoint_pages)
        self._guard = threading.RLock()
        self._closed = False
        self._unit: asyncio.Task[object] | None = None
        """The task whose ``together`` block is open, if any."""
        self._unit_over: asyncio.Event | None = None
        """Set when that block ends."""
        self.gate: WriteGate | None = None
        """Consulted around each write transaction: a worker gives way to P0 work there
        (``Runner``), so an OTP's commits do not queue behind its batches."""

    @contextmanager
    def _file_locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in autocommit mode: each statement sees the latest commit."""
        await self._outside_unit()
        with self._guard:
            return fn(self._conn)

    async def snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside one read transaction, so all its statements see the same state."""
        await self._outside_unit()
        with self._guard:
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn)
            finally:
                self._conn.execute("COMMIT")

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction: all of it commits, or none of it. Inside
        ``together``, the calling task's ``fn`` joins the transaction open there."""
        if self._unit is not None and self._unit is asyncio.current_task():
            return fn(self._conn)
        await self._outside_unit()
        gate = self.gate
        if gate is not None and gate.urgent():
            return await self._write_unqueued(fn)
        async with self._locked():
            result = self._transaction(fn)
        if self._flusher is not None:
            self._flusher.after_commit()
        return result

    @asynccontextmanager
    async def together(self) -> AsyncIterator[None]:
        """The calling task's writes inside the block are one transaction: they commit
        together when it ends, or not at all if it raises, and the write lock is taken
        once. A worker completes a claim so (its outbound messages, records and ack): each
        write it saves is a wait for the lock saved, and under a fan-out the lock is busy
        most of the time. The block must not wait for anything but its own writes: the
        process's other tasks wait for it to end before they read or write."""
        await self._outside_unit()
        gate = self.gate
        urgent = gate is not None and gate.urgent()
        async with self._begun_unqueued() if urgent else self._locked():
            if not urgent:
                self._conn.execute("BEGIN IMMEDIATE")
            self._unit, self._unit_over = asyncio.current_task(), asyncio.Event()
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._unit = None
                self._unit_over.set()
        if self._flusher is not None and not urgent:
            self._flusher.after_commit()

    async def _outside_unit(self) -> None:
        """Another task's ``together`` block is open: wait for its end (its changes are
        not committed yet, and this connection would see them or join them)."""
        while self._unit is not None and self._unit is not asyncio.current_task():
            assert self._unit_over is not None
            await self._unit_over.wait()

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The cross-process write lock, taken in turn (``WriteGate``)."""
        gate = self.gate
        handed_back = False
        while True:
            if gate is not None:
                await gate.wait_turn()
            with self._guard, self._file_locked():
                # A writer that was already queued for the lock when P0 work began gets it
                # before the P0 writer does; it hands the lock straight back (once, so a
                # steady stream of P0 slows it but never stops it).
                if gate is not None and not handed_back and gate.should_yield():
                    handed_back = True
                    continue
                yield
                return

    @asynccontextmanager
    async def _begun_unqueued(self) -> AsyncIterator[None]:
        """SQLite's write lock taken without queueing for the ``flock`` (P0 work), the
        transaction begun, and no checkpoint at its commit (``_write_unqueued``)."""
        deadline = time.monotonic() + URGENT_WAIT_S
        while True:
            with self._guard:
                if self._begin_now():
                    self._conn.execute("PRAGMA wal_autocheckpoint=0")
                    try:
                        yield
                        return
                    finally:
                        self._conn.execute(f"PRAGMA wal_autocheckpoint={self._checkpoint_pages}")
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError("database is locked")
            await asyncio.sleep(_URGENT_POLL_S)

    async def _write_unqueued(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """P0 work's writes do not queue for the ``flock``: they take SQLite's write lock as
        soon as it is free. The ``flock`` holder keeps the ``flock`` through the WAL
        checkpoint its commit may run, and other bulk writers queue behind it, but SQLite's
        lock is released before the checkpoint, so an OTP waits at most for the bulk
        transaction in progress. Nor does a P0 commit run a WAL checkpoint: that is bulk
        work's chore."""
        async with self._begun_unqueued():
            return self._transaction(fn, begun=True)

    def _begin_now(self) -> bool:
        """``BEGIN IMMEDIATE`` without the busy handler's sleeps; whether it began."""
        conn = self._conn
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return True

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], *, begun: bool = False) -> T:
        conn = self._conn
        if not begun:
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
        if self._flusher is not None:
            self._flusher.close()
        with self._guard:
            self._conn.close()
        os.close(self._lock_fd)
