"""The runner: consume → decode → stage → settle (publish → records → ack).

Everything cross-cutting about running a stage lives here, once, above the broker seam:

* priority: topics are polled most-urgent first on every round, so a P0 message waits at
  most one claim behind bulk work (``topics.consumption_order``);
* refill before dry: within a bulk priority work already in flight goes first, except that
  a fan-out turn waiting is taken while its evaluation queue runs low, so the evaluators
  never drain it and wait for the next turn (measured: two workers were idle a quarter of
  a 1M fan-out, taking turns to produce the next 50,000);
* poison isolation: if a claim of several messages fails, each is retried alone so one bad
  message cannot hold back the others;
* retries: a failing message is nacked with jittered exponential backoff, and after
  ``max_attempts`` deliveries it is dead-lettered with the error — the worker never dies on
  one bad message; undecodable messages are dead-lettered at once;
* backend failures (the broker or a store is down) are not the message's fault: the round is
  abandoned, leases run out, and the work is redelivered once the backend is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from clarion import logs
from clarion.broker import Broker, Message
from clarion.broker.retry import backoff_s
from clarion.clock import Clock
from clarion.models import Priority
from clarion.pipeline import observe
from clarion.pipeline.base import Stage, StageResult
from clarion.pipeline.messages import MessageError, senders_of, summarize
from clarion.resilience.load import LoadMonitor
from clarion.resilience.senders import SenderGuard
from clarion.resilience.urgency import UrgentLane
from clarion.stores.base import StatsStore
from clarion.stores.records import StageStats
from clarion.topics import (
    EVALUATE,
    FANOUT,
    consumption_order,
    priority_of,
    reserved_for_p0,
    topic,
)

log = logging.getLogger(__name__)

_STATS_EVERY_S = 1.0
LOW_WATER = 25
"""Evaluation batches due below which a waiting fan-out turn goes first: half a turn
(``fanout_slice_batches``), which lasts while the other workers take a dozen more."""


@dataclass(slots=True)
class _Counter:
    messages: int = 0
    items: int = 0
    busy_s: float = 0.0


class Runner:
    def __init__(
        self,
        broker: Broker,
        stages: Sequence[Stage[Any]],
        # in pipeline order, upstream first
        clock: Clock,
        *,
        priorities: Sequence[Priority] = tuple(Priority),
        name: str = "worker",
        max_attempts: int = 5,
        stats: StatsStore | None = None,
        idle_wait_s: float = 0.25,
        guard: SenderGuard | None = None,
        load: LoadMonitor | None = None,
        lane: UrgentLane | None = None,
    ) -> None:
        self._broker = broker
        self._lane = lane
        self._p0_only = reserved_for_p0(priorities)
        self._guard = guard
        self._load = load
        self._clock = clock
        self._name = name
        self._max_attempts = max_attempts
        self._stats = stats
        self._idle_wait_s = idle_wait_s
        by_name = {s.name: s for s in stages}
        self._order = [
            (name, by_name[stage])
            for stage, name in consumption_order([s.name for s in stages], priorities)
        ]
        self._feeders = {
            topic(EVALUATE, p): (topic(FANOUT, p), by_name[FANOUT])
            for p in priorities
            if p is not Priority.P0 and {FANOUT, EVALUATE} <= by_name.keys()
        }
        """Per evaluation queue, the fan-out that fills it (bulk priorities only)."""
        self._counters = {s.name: _Counter() for s in stages}
        self._last_flush = time.monotonic()
        self._working_bulk = False

    @property
    def topics(self) -> list[str]:
        return [t for t, _ in self._order]

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; the batch in hand is always finished and acked first."""
        log.info("worker %s consuming %s", self._name, ", ".join(self.topics))
        while not stop.is_set():
            try:
                if not await self.run_once():
                    await self._broker.wait(self._idle_wait_s)
                await self._maybe_flush_stats()
            except Exception:
                # The broker or the store is away (a restart, a network cut): nothing held is
                # lost, it is redelivered when its lease runs out. Try again shortly.
                log.exception("worker %s: round failed; work will be redelivered", self._name)
                await asyncio.sleep(1.0)
        await self._maybe_flush_stats(force=True)

    async def run_once(self) -> int:
        """Claim from the most urgent non-empty topic and process it; returns messages handled."""
        lane = self._lane
        gave_way = False
        for name, stage in self._order:
            urgent = priority_of(name) is Priority.P0
            if lane is not None and not urgent and not gave_way:
                # No P0 work left here: stop holding the lane, and give way to P0 elsewhere.
                if lane.holding:
                    lane.release()
                await lane.give_way()
                gave_way = True
            messages = await self._refill(name)
            if messages:
                name, stage = self._feeders[name]
            else:
                messages = await self._broker.consume(name, limit=stage.claim_limit)
            if messages:
                if lane is not None and urgent and not lane.holding:
                    lane.hold()  # until a round finds no P0 work
                started = time.monotonic()
                self._working_bulk = not urgent
                try:
                    stage_name, _, level = name.rpartition(".")
                    with logs.bound(stage=stage_name, priority=level.upper(), worker=self._name):
                        await self._process(stage, messages)
                finally:
                    self._working_bulk = False
                await self._keep_pace(name, time.monotonic() - started)
                return len(messages)
        if lane is not None and lane.holding:
            lane.release()
        return 0

    async def _refill(self, name: str) -> list[Message]:
        """The fan-out turn feeding ``name``, claimed if one waits and ``name`` runs low."""
        feeder = self._feeders.get(name)
        if feeder is None or not await self._broker.running_low(name, LOW_WATER):
            return []
        fanout, stage = feeder
        return await self._broker.consume(fanout, limit=stage.claim_limit)

    def urgent(self) -> bool:
        """``WriteGate``: a P0-reserved worker's writes, and any worker's while it has P0
        work in hand, skip the store's write queue."""
        return self._p0_only or (self._lane is not None and self._lane.holding)

    async def wait_turn(self) -> None:
        """Called before each of this process's write transactions (``WriteGate``). While
        it works a less urgent batch and another process has P0 work in progress, the
        batch's commit waits (at most the lane's ``max_wait_s``), so the OTP's own commits
        do not queue behind it: before, an OTP crossing its stages waited for a bulk commit
        at nearly every one (measured: P0 p99 under a 1M flood 42 to 60 ms before, 18 to 30
        after)."""
        if self._working_bulk and self._lane is not None:
            await self._lane.give_way()

    def should_yield(self) -> bool:
        """Called with the write lock held: a bulk batch's commit that was already queued
        for the lock when P0 work began hands it back."""
        return self._working_bulk and self._lane is not None and self._lane.busy()

    async def _keep_pace(self, name: str, busy_s: float) -> None:
        """Under load, less urgent work gives way: after a batch of it, rest in proportion,
        leaving the processor and the store to P0 (``resilience.load``)."""
        if self._load is None:
            return
        pace = (await self._load.current()).pace(priority_of(name))
        if pace < 1.0:
            await asyncio.sleep(busy_s * (1.0 / pace - 1.0))

    async def close(self) -> None:
        """Let stages release what they hold (provider connections)."""
        for stage in {id(s): s for _, s in self._order}.values():
            closer = getattr(stage, "close", None)
            if closer is not None:
                await closer()

    async def drain(self, *, max_rounds: int = 100_000) -> int:
        """Run rounds until every topic is empty (or delayed); for tests and tools."""
        total = 0
        for _ in range(max_rounds):
            handled = await self.run_once()
            if not handled:
                return total
            total += handled
        return total

    async def _process(self, stage: Stage[Any], messages: list[Message]) -> None:
        started = time.perf_counter()
        decoded: list[tuple[Message, Any]] = []
        for message in messages:
            try:
                decoded.append((message, stage.decode(message)))
            except MessageError as exc:
                await self._give_up(stage, message, None, f"undecodable: {exc}")
        if decoded:
            try:
                async with self._holding(messages):
                    result = await stage.handle([item for _, item in decoded])
            except Exception as exc:
                if len(decoded) == 1:
                    await self._failed(stage, *decoded[0], exc)
                else:
                    await self._one_by_one(stage, decoded)
            else:
                await self._complete(stage, [m for m, _ in decoded], result)
        counter = self._counters[stage.name]
        counter.messages += len(messages)
        counter.busy_s += time.perf_counter() - started

    @contextlib.asynccontextmanager
    async def _holding(self, messages: list[Message]) -> AsyncIterator[None]:
        """Renew the leases every third of their length while the stage works, so a batch
        that takes long (a slow provider) is never handed to a second worker meanwhile."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._broker.lease_s / 3)
                with contextlib.suppress(Exception):  # the next round tries again
                    await self._broker.renew(messages)

        task = asyncio.create_task(renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _one_by_one(self, stage: Stage[Any], decoded: list[tuple[Message, Any]]) -> None:
        for message, item in decoded:
            try:
                async with self._holding([message]):
                    result = await stage.handle([item])
            except Exception as exc:
                await self._failed(stage, message, item, exc)
            else:
                await self._complete(stage, [message], result)

    async def _complete(
        self, stage: Stage[Any], messages: list[Message], result: StageResult
    ) -> None:
        await self._broker.settle(messages, result.outbound, result.records)
        if result.settled is not None:
            result.settled()
        self._counters[stage.name].items += result.items

    async def _failed(self, stage: Stage[Any], message: Message, item: Any, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        about = _about(message)
        if message.attempts >= self._max_attempts:
            log.error(
                "dead-lettering %s message %s: %s", message.topic, message.id, error, extra=about
            )
            await self._give_up(stage, message, item, error)
            return
        delay = backoff_s(message.attempts)
        log.warning(
            "%s message %s failed (attempt %d), retrying in %.1fs: %s",
            message.topic,
            message.id,
            message.attempts,
            delay,
            error,
            exc_info=exc,
            extra=about,
        )
        await self._broker.nack(message, delay_s=delay)

    async def _give_up(self, stage: Stage[Any], message: Message, item: Any, error: str) -> None:
        await self._broker.dead_letter(message, error=error)
        observe.dead_lettered(priority_of(message.topic))
        await stage.on_dead_letter(item, message, error)
        if self._guard is not None:
            await self._guard.strike(senders_of(item), error)

    async def _maybe_flush_stats(self, *, force: bool = False) -> None:
        if self._stats is None:
            return
        if not force and time.monotonic() - self._last_flush < _STATS_EVERY_S:
            return
        self._last_flush = time.monotonic()
        await self._stats.record(
            self._name,
            [
                StageStats(self._name, name, c.messages, c.items, c.busy_s)
                for name, c in self._counters.items()
                if c.messages
            ],
            self._clock.now(),
        )


def _about(message: Message) -> dict[str, Any]:
    """Log fields naming what a message carries: its events, batches and traces."""
    summary = summarize(message.topic, message.body)
    return {"fields": summary.log_fields() if summary else {}}
