"""The runner's cross-cutting behaviour, with a scripted stage on the memory broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from clarion.broker import Message, Outbound
from clarion.broker.memory import MemoryBroker
from clarion.clock import ManualClock
from clarion.models import EventState, Priority
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import MessageError
from clarion.pipeline.runner import Runner
from clarion.runtime import Runtime
from clarion.testing import accept_ids, event, fanout_stage, type_spec
from clarion.worker import build_runner


@dataclass
class Scripted:
    """Echoes bodies to ``done.p1``; raises on any body listed in ``poison``."""

    name: str = "echo"
    claim_limit: int = 10
    poison: set[bytes] = field(default_factory=set)
    handled: list[bytes] = field(default_factory=list)
    given_up: list[tuple[bytes, str]] = field(default_factory=list)

    def decode(self, body: bytes) -> bytes:
        if body == b"garbage":
            raise MessageError("not ours")
        return body

    async def handle(self, items: Sequence[bytes]) -> StageResult:
        if self.poison & set(items):
            raise ValueError("boom")
        self.handled += items
        return StageResult([Outbound("done.p1", b) for b in items])

    async def on_dead_letter(self, item: bytes | None, message: Message, error: str) -> None:
        self.given_up.append((message.body, error))


def setup(clock: ManualClock, stage: Scripted) -> tuple[MemoryBroker, Runner]:
    broker = MemoryBroker(clock, max_attempts=3)
    return broker, Runner(broker, [stage], clock, max_attempts=3, priorities=[Priority.P1])


async def test_runner_isolates_a_poison_message_from_its_claim(clock: ManualClock) -> None:
    stage = Scripted(poison={b"bad"})
    broker, runner = setup(clock, stage)
    await broker.publish([Outbound("echo.p1", b) for b in (b"a", b"bad", b"c")])
    assert await runner.run_once() == 3
    assert stage.handled == [b"a", b"c"]
    assert await broker.depth("done.p1") == 2
    assert await broker.depth("echo.p1") == 1  # only the poison waits for its retry


async def test_runner_retries_with_backoff_then_dead_letters(clock: ManualClock) -> None:
    stage = Scripted(poison={b"bad"})
    broker, runner = setup(clock, stage)
    await broker.publish([Outbound("echo.p1", b"bad")])
    for _ in range(3):
        assert await runner.run_once() == 1
        assert await runner.run_once() == 0  # backing off, not spinning
        clock.advance(120)
    assert await broker.depth("echo.p1") == 0
    (dead,) = await broker.dead_letters()
    assert "ValueError: boom" in dead.error
    assert stage.given_up == [(b"bad", dead.error)]


async def test_runner_dead_letters_undecodable_messages_at_once(clock: ManualClock) -> None:
    stage = Scripted()
    broker, runner = setup(clock, stage)
    await broker.publish([Outbound("echo.p1", b"garbage"), Outbound("echo.p1", b"fine")])
    await runner.run_once()
    assert stage.handled == [b"fine"]
    (dead,) = await broker.dead_letters()
    assert dead.error.startswith("undecodable")


async def test_runner_takes_p0_before_anything_else(runtime: Runtime) -> None:
    now = runtime.clock.now()
    bulk = type_spec("promo", Priority.P2)
    otp = type_spec("otp", Priority.P0)
    await accept_ids(runtime, *[event(bulk, now=now, object=str(i)) for i in range(5)])
    (otp_id,) = await accept_ids(runtime, event(otp, now=now, target="u9"))
    assert await build_runner(runtime).run_once() == 1  # one round: the OTP, nothing else
    assert await runtime.stores.inbox.count_for_event(otp_id) == 1
    assert await runtime.broker.depth("evaluate.p2") == 1  # the five, packed, still waiting


async def test_failed_fanout_marks_the_event_failed(runtime: Runtime, clock: ManualClock) -> None:
    (event_id,) = await accept_ids(
        runtime, event(type_spec(), now=clock.now(), actor="star", fan_out="followers")
    )
    (message,) = await runtime.broker.consume("fanout.p1", limit=1)
    await runtime.broker.dead_letter(message, error="gave up")
    fanout = fanout_stage(runtime)
    await fanout.on_dead_letter(fanout.decode(message.body), message, "gave up")
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.FAILED
    assert "gave up" in (status.error or "")


def test_runner_looks_at_priorities_then_downstream_stages_first(clock: ManualClock) -> None:
    from clarion.topics import consumption_order

    order = [t for _, t in consumption_order(["fanout", "evaluate"], [Priority.P2, Priority.P0])]
    assert order == ["evaluate.p0", "fanout.p0", "evaluate.p2", "fanout.p2"]


@dataclass
class Slow:
    """Holds its batch until ``release`` is set, like a stage waiting on a slow provider."""

    name: str = "slow"
    claim_limit: int = 1
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def decode(self, body: bytes) -> bytes:
        return body

    async def handle(self, items: Sequence[bytes]) -> StageResult:
        self.started.set()
        await self.release.wait()
        return StageResult()

    async def on_dead_letter(self, item: bytes | None, message: Message, error: str) -> None:
        raise AssertionError("not expected")


async def test_a_slow_batch_keeps_its_lease_so_no_second_worker_takes_it(
    clock: ManualClock,
) -> None:
    broker = MemoryBroker(clock, lease_s=0.03)  # renewed every 10 ms of real time
    stage = Slow()
    runner = Runner(broker, [stage], clock, max_attempts=3, priorities=[Priority.P1])
    await broker.publish([Outbound("slow.p1", b"batch")])
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()
    clock.advance(60)  # far past the original lease …
    await asyncio.sleep(0.05)  # … but the runner has renewed it since
    assert await broker.consume("slow.p1", limit=1) == []
    stage.release.set()
    assert await working == 1
    assert await broker.depth("slow.p1") == 0  # acked under the renewed lease
