"""A worker process: build the runtime, the chosen stages and a runner; stop on SIGTERM.

SIGTERM (or SIGINT) lets the batch in hand finish and be acked before the process exits;
SIGKILL loses nothing either — the unacked batch is redelivered when its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any

from clarion.clock import Clock
from clarion.config import Settings
from clarion.models import Priority
from clarion.pipeline.base import Stage
from clarion.pipeline.evaluate import EvaluateStage
from clarion.pipeline.fanout import FanoutStage
from clarion.pipeline.runner import Runner
from clarion.pipeline.switches import KillSwitchCache
from clarion.runtime import Runtime, open_runtime
from clarion.topics import EVALUATE, FANOUT, STAGES

log = logging.getLogger(__name__)


def build_stages(runtime: Runtime, names: Sequence[str], *, worker: str) -> list[Stage[Any]]:
    settings, stores, clock = runtime.settings, runtime.stores, runtime.clock
    switches = KillSwitchCache(stores.kill_switches)
    stages: list[Stage[Any]] = []
    for name in sorted(names, key=STAGES.index):  # pipeline order, whatever the caller gave
        if name == FANOUT:
            stages.append(
                FanoutStage(
                    stores.events,
                    stores.followers,
                    switches,
                    clock,
                    batch_size=settings.batch_size,
                    slice_batches=settings.fanout_slice_batches,
                )
            )
        elif name == EVALUATE:
            stages.append(
                EvaluateStage(
                    stores.preferences,
                    stores.deliveries,
                    stores.users,
                    stores.frequency,
                    switches,
                    clock,
                    worker=worker,
                )
            )
        else:
            raise ValueError(f"unknown stage {name!r}")
    return stages


def build_runner(
    runtime: Runtime,
    *,
    stages: Sequence[str] = STAGES,
    priorities: Sequence[Priority] = tuple(Priority),
    name: str = "worker",
) -> Runner:
    return Runner(
        runtime.broker,
        build_stages(runtime, stages, worker=name),
        runtime.clock,
        priorities=priorities,
        name=name,
        max_attempts=runtime.settings.max_attempts,
        stats=runtime.stores.stats,
    )


async def run_worker(
    settings: Settings,
    *,
    stages: Sequence[str] = STAGES,
    priorities: Sequence[Priority] = tuple(Priority),
    name: str = "worker",
    clock: Clock | None = None,
) -> None:
    runtime = open_runtime(settings, clock=clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await build_runner(runtime, stages=stages, priorities=priorities, name=name).run(stop)
    finally:
        await runtime.close()
        log.info("worker %s stopped", name)
