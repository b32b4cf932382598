"""Start a real Clarion on this machine: an API server process plus worker processes.

Used by ``clarion demo``, the benchmarks and the end-to-end tests, so all three exercise the
same processes a user runs. The API is ``clarion serve`` with no workers of its own; the
workers are ``clarion worker`` processes under a :class:`Supervisor`, which lets the caller
see their pids (peak memory) and kill one (fault tests).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from clarion.config import Settings
from clarion.errors import BackendError
from clarion.logs import FORMAT_ENV, LEVEL_ENV
from clarion.metrics import MULTIPROCESS_ENV
from clarion.supervisor import Supervisor, WorkerSpec, standard_workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalClarion:
    settings: Settings
    workers: Sequence[WorkerSpec] = field(default_factory=lambda: standard_workers(2, 0))
    port: int = field(default_factory=free_port)
    quiet: bool = True
    log_dir: Path | None = None
    api_processes: int = 1
    log_level: str = "warning"
    log_format: str = "json"
    """Every process's logs (with ``log_dir``: one file each)."""
    server: subprocess.Popen[bytes] | None = None
    supervisor: Supervisor | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)
    _metrics_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.to_env())
        env["CLARION_DB"] = str(self.settings.db.resolve())
        if self._metrics_dir is not None:  # the API adds up the workers' metrics from here
            env[MULTIPROCESS_ENV] = str(self._metrics_dir)
        env[LEVEL_ENV], env[FORMAT_ENV] = self.log_level, self.log_format
        return env

    def start(self, *, timeout_s: float = 30.0) -> LocalClarion:
        self._metrics_dir = Path(tempfile.mkdtemp(prefix="clarion-metrics-"))
        env = self.env()
        self.server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "clarion",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                "0",
                "--p0-workers",
                "0",
                "--api-processes",
                str(self.api_processes),
                "--log-level",
                self.log_level,
            ],
            env=env,
            stdout=self._log("server"),
            stderr=subprocess.STDOUT,
        )
        self.supervisor = Supervisor(self.workers, env, quiet=self.quiet, log_dir=self.log_dir)
        self.supervisor.start()
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()  # a server that never came up leaves no workers behind
            raise
        return self

    def _log(self, name: str) -> IO[bytes] | int | None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            handle = (self.log_dir / f"{name}.log").open("ab")
            self._logs.append(handle)
            return handle
        return subprocess.DEVNULL if self.quiet else None

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise BackendError(f"the API server exited with {self.server.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise BackendError(f"the API server did not answer on {self.url} in {timeout_s:.0f}s")

    def pids(self) -> dict[str, int]:
        found = dict(self.supervisor.pids()) if self.supervisor else {}
        if self.server is not None:
            found["api"] = self.server.pid
        return found

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        if self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
            self._metrics_dir = None

    def __enter__(self) -> LocalClarion:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def peak_rss_mb(pids: Sequence[int]) -> float:
    """Sum of each process's peak resident set (VmHWM): an upper bound of the joint peak."""
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        total_kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kb / 1024


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) each named process has used so far (``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        used[name] = round((int(fields[11]) + int(fields[12])) / tick, 2)  # utime, stime
    return used
