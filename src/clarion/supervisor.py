"""Starting, watching and stopping worker processes for ``clarion serve`` and the demo.

Workers are plain ``clarion worker`` subprocesses sharing the database named in the
environment. A worker that dies unexpectedly is restarted (its unacked work is redelivered
to whoever claims it next); stopping sends SIGTERM so each finishes the batch in hand.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clarion import metrics
from clarion.models import Priority
from clarion.topics import STAGES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    stages: Sequence[str] = STAGES
    priorities: Sequence[Priority] = tuple(Priority)
    nice: int = 0

    def command(self) -> list[str]:
        nice = ["--nice", str(self.nice)] if self.nice else []
        return [
            sys.executable,
            "-m",
            "clarion",
            "worker",
            "--name",
            self.name,
            "--stages",
            ",".join(self.stages),
            "--priorities",
            ",".join(p.value for p in self.priorities),
            *nice,
        ]


def standard_workers(general: int, p0_reserved: int, *, bulk_nice: int = 0) -> list[WorkerSpec]:
    """``general`` workers for everything plus ``p0_reserved`` that only ever take P0.

    With reserved workers, the general ones may run at a lower CPU priority (``bulk_nice``):
    when a campaign saturates the machine, the OS then gives the P0 path the CPU first.
    """
    nice = bulk_nice if p0_reserved else 0
    specs = [WorkerSpec(f"worker-{i + 1}", nice=nice) for i in range(general)]
    specs += [
        WorkerSpec(f"p0-worker-{i + 1}", priorities=(Priority.P0,)) for i in range(p0_reserved)
    ]
    return specs


@dataclass(slots=True)
class Supervisor:
    specs: Sequence[WorkerSpec]
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    restart: bool = True
    quiet: bool = False
    log_dir: Path | None = None
    """Set: each worker's output goes to ``<name>.log`` there (appended across restarts)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts: int = 0

    def start(self) -> None:
        for spec in self.specs:
            self._spawn(spec)

    def _spawn(self, spec: WorkerSpec) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with (self.log_dir / f"{spec.name}.log").open("ab") as output:
                self.processes[spec.name] = subprocess.Popen(  # noqa: S603 - our interpreter
                    spec.command(), env=dict(self.env), stdout=output, stderr=output
                )
            return
        quiet = subprocess.DEVNULL if self.quiet else None
        self.processes[spec.name] = subprocess.Popen(  # noqa: S603 - our own interpreter
            spec.command(), env=dict(self.env), stdout=quiet, stderr=quiet
        )

    def check(self) -> None:
        """Restart any worker that exited on its own."""
        for spec in self.specs:
            process = self.processes.get(spec.name)
            if process is not None and process.poll() is not None and self.restart:
                log.warning("%s exited with %s; restarting", spec.name, process.returncode)
                metrics.process_gone(process.pid)
                self.restarts += 1
                self._spawn(spec)

    def stop(self, timeout_s: float = 15.0) -> None:
        self.restart = False
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", name, timeout_s)
                process.kill()
                process.wait()

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}
