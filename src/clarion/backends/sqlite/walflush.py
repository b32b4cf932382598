"""Bulk writers flush their own WAL frames, off the event loop and outside the write lock.

Workers commit with ``synchronous=NORMAL``: their frames sit in the page cache until
something syncs the WAL. Left alone, that something is the next urgent commit (the API's
``FULL`` commit of an OTP), whose fsync then writes out everything the campaign appended
since — measured under a 1M-recipient flood: the API's commit p99 2.5 to 3.4 ms against
0.6 idle. So after each bulk commit a helper thread fdatasyncs the WAL (one flush at a
time; commits made meanwhile ride on the next), and an urgent fsync finds little to write.
The thread is the flusher's own, woken by a flag: the committing event loop does no more.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class WalFlusher:
    def __init__(self, db_path: Path) -> None:
        self._wal = db_path.with_name(db_path.name + "-wal")
        self._fd: int | None = None  # the helper thread's
        self._wanted = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="wal-flusher", daemon=True)
        self._thread.start()

    def after_commit(self) -> None:
        """Ask for a flush: one flag set, nothing else on the committing thread. (A flush
        handed to the event loop's executor cost a future and a wake-up of the loop per
        commit, measured at 2 % of a fan-out worker.)"""
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._closed:
                break
            self._wanted.clear()  # commits made from here on ask for the next flush
            self._flush()
        self._forget()

    def _flush(self) -> None:
        try:
            fd = self._open()
            if fd is not None:
                os.fdatasync(fd)
        except OSError as exc:  # the file went away under us: the next flush reopens it
            log.debug("WAL flush skipped: %s", exc)
            self._forget()

    def _open(self) -> int | None:
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            self._forget()  # the last connection closed and SQLite removed the WAL
        if self._fd is None and self._wal.exists():
            self._fd = os.open(self._wal, os.O_RDONLY)
        return self._fd

    def _forget(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Waits for a flush in progress (a few milliseconds at most)."""
        self._closed = True
        self._wanted.set()
        self._thread.join()
