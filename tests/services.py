"""Real Redis and PostgreSQL servers for the tests, started on loopback ports of their own.

``make test`` installs the Debian packages (``scripts/ensure-test-services.sh``); the
servers live in a temporary directory and die with the test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import redis

from clarion.backends.postgres.schema import empty_all, migrate
from clarion.launch import free_port


class RedisServer:
    """``redis-server`` with an append-only file, so a restart keeps what it acknowledged."""

    def __init__(self, state: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        self._binary = binary
        self._state = state
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._state.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self._state),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--logfile", str(self._state / "redis.log"),
            ],
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start; see {self._state}") from None
                time.sleep(0.01)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown save, only what the append-only file already holds survives."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def flush(self) -> None:
        client = redis.Redis(port=self.port)
        try:
            client.flushall()
        finally:
            client.close()


class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth, loopback only) from the Debian package.

    ``initdb`` refuses to run as root, so under root the cluster belongs to the package's
    ``postgres`` user and lives in a directory that user can reach.
    """

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs it)")
        self._bin = found[-1].parent
        self._as_root = os.geteuid() == 0
        self._state = Path(tempfile.mkdtemp(prefix="clarion-pg-"))
        self._state.chmod(0o755)
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self._bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        data = self._state / "data"
        if self._as_root:
            shutil.chown(self._state, "postgres", "postgres")
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        # Tests never pull the plug on PostgreSQL: durability settings off, for speed.
        self.resume()

    def stop(self) -> None:
        try:
            self.pause()
        finally:
            shutil.rmtree(self._state, ignore_errors=True)

    def pause(self) -> None:
        """Stop the server, keeping its data (``resume`` starts it again)."""
        self._run("pg_ctl", "-D", str(self._state / "data"), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        data = self._state / "data"
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._state} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(data), "-l", str(self._state / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip


async def empty_postgres(dsn: str) -> None:
    """Clarion's schema in place, every table empty and every counter back at its start."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await empty_all(conn)
    finally:
        await conn.close()
