"""A worker process: build the runtime, the chosen stages and a runner; stop on SIGTERM.

SIGTERM (or SIGINT) lets the batch in hand finish and be acked before the process exits;
SIGKILL loses nothing either — the unacked batch is redelivered when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from clarion.channels.config import ProviderDeps
from clarion.channels.providers import ProviderSet, read_file
from clarion.clock import Clock, SystemClock
from clarion.config import Settings
from clarion.keyring import SigningKeys
from clarion.models import Channel, Priority
from clarion.pipeline.base import Stage
from clarion.pipeline.deliver import DeliverStage
from clarion.pipeline.digests import DigestComposer
from clarion.pipeline.dispatch import Dispatcher
from clarion.pipeline.evaluate import EvaluateStage
from clarion.pipeline.fanout import FanoutStage
from clarion.pipeline.partitions import PartitionPlanner, PartitionReader
from clarion.pipeline.runner import Runner
from clarion.pipeline.statuses import StatusOutbox, StatusStage
from clarion.pipeline.switches import KillSwitchCache
from clarion.resilience.health import ProviderHealth
from clarion.resilience.senders import SenderGuard
from clarion.runtime import Runtime, load_monitor, open_runtime, signing_keys, urgent_lane
from clarion.scheduling.scheduler import Scheduler
from clarion.topics import CHANNEL_STAGES, EVALUATE, FANOUT, STAGES, STATUS, reserved_for_p0

log = logging.getLogger(__name__)


def build_stages(
    runtime: Runtime, names: Sequence[str], *, worker: str, keys: SigningKeys
) -> list[Stage[Any]]:
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
                    load=load_monitor(runtime),
                    pause_depth=settings.fanout_pause_depth,
                    partitions=PartitionPlanner(
                        stores.partitions, clock.now, max_age_s=settings.partition_max_age_s
                    ),
                )
            )
        elif name == EVALUATE:
            stages.append(
                EvaluateStage(
                    stores.preferences,
                    stores.deliveries,
                    stores.users,
                    stores.devices,
                    stores.frequency,
                    stores.aggregates,
                    stores.digests,
                    switches,
                    clock,
                    worker=worker,
                    partitions=PartitionReader(stores.partitions, stores.followers),
                )
            )
        elif name in CHANNEL_STAGES:
            stages.append(deliver_stage(runtime, Channel(name), worker=worker, keys=keys))
        elif name == STATUS:
            stages.append(
                StatusStage(
                    stores.status_hooks, clock, allow_private=settings.allow_private_targets
                )
            )
        else:
            raise ValueError(f"unknown stage {name!r}")
    return stages


def deliver_stage(
    runtime: Runtime, channel: Channel, *, worker: str, keys: SigningKeys
) -> DeliverStage:
    settings, stores = runtime.settings, runtime.stores
    deps = ProviderDeps(
        clock=SystemClock(),  # providers sign with real time: the services they call check it
        tokens=stores.provider_tokens,
        allow_private_targets=settings.allow_private_targets,
        public_url=settings.public_url,
    )
    providers = ProviderSet(stores.providers, deps, file_docs=read_file(settings.providers_file))
    health = ProviderHealth(stores.provider_health, runtime.clock.now, settings.breaker())
    return DeliverStage(
        channel,
        devices=stores.devices,
        users=stores.users,
        events=stores.events,
        templates=stores.templates,
        deliveries=stores.deliveries,
        dispatcher=Dispatcher(providers, health, runtime.clock.now),
        statuses=StatusOutbox(stores.status_hooks),
        composer=DigestComposer(
            stores.digests,
            stores.events,
            stores.inbox,
            stores.templates,
            template_id=settings.digest_template,
        )
        if channel is Channel.EMAIL
        else None,
        acks=stores.states if channel is Channel.PUSH else None,
        signing_keys=keys,
        clock=runtime.clock,
        worker=worker,
        public_url=settings.public_url,
    )


def build_runner(
    runtime: Runtime,
    *,
    stages: Sequence[str] = STAGES,
    priorities: Sequence[Priority] = tuple(Priority),
    name: str = "worker",
    keys: SigningKeys | None = None,
) -> Runner:
    keys = keys or SigningKeys.parse(runtime.settings.signing_keys or "k0:" + "x" * 32)
    runner = Runner(
        runtime.broker,
        build_stages(runtime, stages, worker=name, keys=keys),
        runtime.clock,
        priorities=priorities,
        name=name,
        max_attempts=runtime.settings.max_attempts,
        stats=runtime.stores.stats,
        guard=SenderGuard(
            runtime.stores.senders,
            runtime.clock.now,
            limit=runtime.settings.sender_strikes,
            window_s=runtime.settings.sender_strike_window_s,
        ),
        load=load_monitor(runtime),
        lane=urgent_lane(runtime),
    )
    runtime.gate_writes(runner)
    return runner


UPKEEP_EVERY_S = 3600.0


async def _upkeep(runtime: Runtime, stop: asyncio.Event) -> None:
    """The stores' chores, hourly, for as long as the worker runs."""
    while not stop.is_set():
        try:
            created = await runtime.upkeep()
            if created:
                log.info("created %s", ", ".join(created))
        except Exception:
            log.exception("store upkeep failed; trying again in an hour")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), UPKEEP_EVERY_S)


async def run_worker(
    settings: Settings,
    *,
    stages: Sequence[str] = STAGES,
    priorities: Sequence[Priority] = tuple(Priority),
    name: str = "worker",
    clock: Clock | None = None,
) -> None:
    runtime = open_runtime(settings, clock=clock, urgent=reserved_for_p0(priorities))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = build_runner(
        runtime, stages=stages, priorities=priorities, name=name, keys=await signing_keys(runtime)
    )
    chores = asyncio.create_task(_upkeep(runtime, stop))
    scheduling = asyncio.create_task(Scheduler(runtime, name).run(stop), name="scheduler")
    try:
        await runner.run(stop)
    finally:
        chores.cancel()
        await scheduling
        await runner.close()
        await runtime.close()
        log.info("worker %s stopped", name)
