"""The runner's cross-cutting behaviour, with a scripted stage on the memory broker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clarion.backends.sqlite import SqliteDatabase
from clarion.broker import Message, Outbound
from clarion.broker.memory import MemoryBroker
from clarion.clock import ManualClock
from clarion.models import EventState, Priority
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import MessageError
from clarion.pipeline.runner import Runner
from clarion.resilience.senders import SenderGuard
from clarion.resilience.urgency import UrgentLane
from clarion.runtime import Runtime
from clarion.testing import accept_ids, event, type_spec
from clarion.types import UserId
from clarion.worker import build_runner


@dataclass
class Scripted:
    """Echoes bodies to ``done.p1``; raises on any body listed in ``poison``."""

    name: str = "echo"
    claim_limit: int = 10
    poison: set[bytes] = field(default_factory=set)
    handled: list[bytes] = field(default_factory=list)
    given_up: list[tuple[bytes, str]] = field(default_factory=list)

    def decode(self, message: Message) -> bytes:
        if message.body == b"garbage":
            raise MessageError("not ours")
        return message.body

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
    assert await broker.depth("echo.p1") == 0  # only the poison waits, for its retry
    clock.advance(5)
    assert await broker.depth("echo.p1") == 1


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


async def test_a_poison_event_is_dead_lettered_the_queue_moves_on_and_replay_delivers(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await runtime.stores.followers.add(UserId("broken"), [UserId("f1"), UserId("f2")])
    real_page = runtime.stores.followers.page

    async def buggy(actor: UserId, *, after: UserId | None, limit: int) -> list[UserId]:
        if actor == "broken":  # the bug: this actor's events make fan-out raise
            raise ValueError("follower lookup blew up")
        return await real_page(actor, after=after, limit=limit)

    monkeypatch.setattr(runtime.stores.followers, "page", buggy)
    now = clock.now()
    spec = type_spec()
    (poison,) = await accept_ids(runtime, event(spec, now=now, actor="broken", fan_out="followers"))
    (fine,) = await accept_ids(runtime, event(spec, now=now, target="bob", object="ok"))
    runner = build_runner(runtime)
    for _ in range(runtime.settings.max_attempts):
        await runner.drain()
        clock.advance(120)  # past each retry's backoff
    assert await runtime.stores.inbox.count_for_event(fine) == 1  # the queue kept moving
    (dead,) = await runtime.broker.dead_letters()
    assert "follower lookup blew up" in dead.error
    status = await runtime.stores.events.status(poison)
    assert status is not None
    assert status.state is EventState.DEAD_LETTERED
    assert "replay" in (status.error or "")
    monkeypatch.setattr(runtime.stores.followers, "page", real_page)  # the fix ships
    assert await runtime.broker.replay(dead.id)
    await runner.drain()
    status = await runtime.stores.events.status(poison)
    assert status is not None
    assert (status.state, status.error) == (EventState.COMPLETED, None)
    assert await runtime.stores.inbox.count_for_event(poison) == 2


async def test_a_sender_whose_events_keep_dying_is_blocked(
    runtime: Runtime, clock: ManualClock
) -> None:
    guard = SenderGuard(runtime.stores.senders, clock.now, limit=3, window_s=60)
    for n in range(2):
        await guard.strike({"buggy"}, f"boom {n}")
    assert await runtime.stores.senders.blocked() == {}
    clock.advance(61)  # old strikes fall out of the window
    for n in range(3):
        await guard.strike({"buggy", "other"} if n == 0 else {"buggy"}, f"boom {n}")
    blocked = await runtime.stores.senders.blocked()
    assert list(blocked) == ["buggy"]
    assert "3 events dead-lettered within 60s" in blocked["buggy"][1]
    assert await runtime.stores.senders.unblock("buggy")
    assert await runtime.stores.senders.blocked() == {}


def test_runner_looks_at_priorities_then_downstream_stages_first(clock: ManualClock) -> None:
    from clarion.topics import consumption_order

    order = [t for _, t in consumption_order(["fanout", "evaluate"], [Priority.P2, Priority.P0])]
    assert order == ["evaluate.p0", "fanout.p0", "evaluate.p2", "fanout.p2"]


async def test_a_waiting_fan_out_turn_goes_first_once_its_evaluation_queue_runs_low(
    clock: ManualClock,
) -> None:
    from clarion.pipeline.runner import LOW_WATER

    fanout, evaluate = Scripted(name="fanout", claim_limit=1), Scripted(name="evaluate")
    broker = MemoryBroker(clock)
    runner = Runner(broker, [fanout, evaluate], clock, priorities=[Priority.P1, Priority.P0])
    batches = [Outbound("evaluate.p1", b"batch %d" % i) for i in range(LOW_WATER)]
    await broker.publish([Outbound("fanout.p1", b"turn"), *batches])
    await runner.run_once()
    assert (fanout.handled, len(evaluate.handled)) == ([], 10)  # deep enough: work in flight
    await runner.run_once()
    assert fanout.handled == [b"turn"]  # now low: the next turn before the evaluators run dry
    await broker.publish([Outbound("fanout.p0", b"otp turn"), Outbound("evaluate.p0", b"otp")])
    await runner.run_once()
    assert evaluate.handled[-1] == b"otp"  # P0 keeps downstream first: latency over refill


@dataclass
class Slow:
    """Holds its batch until ``release`` is set, like a stage waiting on a slow provider."""

    name: str = "slow"
    claim_limit: int = 1
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def decode(self, message: Message) -> bytes:
        return message.body

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


def on_the_lane(
    clock: ManualClock, tmp_path: Path, *, max_wait_s: float = 0.2
) -> tuple[MemoryBroker, Slow, Runner, UrgentLane]:
    """A runner for every priority on the urgent lane, with a slow stage, and another
    process's handle on the same lane (the API, a P0 worker or a bulk worker)."""
    broker = MemoryBroker(clock)
    stage = Slow()
    lane = UrgentLane(tmp_path / "db.urgent", max_wait_s=max_wait_s)
    runner = Runner(broker, [stage], clock, priorities=list(Priority), lane=lane)
    return broker, stage, runner, UrgentLane(tmp_path / "db.urgent")


async def test_p0_work_holds_the_urgent_lane_and_bulk_work_gives_way(
    clock: ManualClock, tmp_path: Path
) -> None:
    broker, stage, runner, bulk = on_the_lane(clock, tmp_path)  # bulk: another worker
    await broker.publish([Outbound("slow.p0", b"otp"), Outbound("slow.p2", b"promo")])
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()
    assert bulk.busy()  # P0 in hand
    stage.release.set()
    assert await working == 1
    assert bulk.busy()  # still held: the round found P0 work, the next may too
    assert await runner.run_once() == 1  # no P0 left: lets go, then takes the P2 message
    assert not bulk.busy()
    assert await broker.depth("slow.p2") == 0


async def test_a_bulk_batch_commits_only_after_p0_work_elsewhere_lets_go(
    clock: ManualClock, tmp_path: Path
) -> None:
    broker, stage, runner, otp = on_the_lane(clock, tmp_path, max_wait_s=30)
    await broker.publish([Outbound("slow.p2", b"promo")])
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()  # claimed while nobody had P0 work
    otp.hold()  # an OTP arrives while the batch is in hand
    commit = asyncio.create_task(runner.wait_turn())  # the store calls it to commit
    await asyncio.sleep(0.05)
    assert not commit.done()  # the batch's commit waits for the OTP
    otp.release()
    await asyncio.wait_for(commit, 5)
    stage.release.set()
    assert await working == 1


async def test_bulk_work_hands_the_write_lock_back_to_p0_work_and_p0_work_skips_the_queue(
    clock: ManualClock, tmp_path: Path
) -> None:
    broker, stage, runner, otp = on_the_lane(clock, tmp_path)
    await broker.publish([Outbound("slow.p2", b"promo")])
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()
    assert not runner.should_yield()
    assert not runner.urgent()
    otp.hold()
    assert runner.should_yield()  # a bulk batch's commit gives the lock back
    otp.release()
    stage.release.set()
    assert await working == 1

    await broker.publish([Outbound("slow.p0", b"otp")])
    stage.started.clear()
    stage.release.clear()
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()
    otp.hold()
    assert runner.urgent()  # P0 in hand: first in line
    assert not runner.should_yield()
    otp.release()
    stage.release.set()
    assert await working == 1
    reserved = Runner(broker, [stage], clock, priorities=[Priority.P0])
    assert reserved.urgent()  # a P0-reserved worker's every write is P0 work


async def test_p0_work_never_waits_to_commit(clock: ManualClock, tmp_path: Path) -> None:
    broker, stage, runner, other_otp = on_the_lane(clock, tmp_path, max_wait_s=30)
    other_otp.hold()
    await broker.publish([Outbound("slow.p0", b"otp")])
    # Claiming it writes too (the SQLite queue), before this worker holds the lane itself.
    await asyncio.wait_for(runner.wait_turn(), 1)
    working = asyncio.create_task(runner.run_once())
    await stage.started.wait()
    await asyncio.wait_for(runner.wait_turn(), 1)  # no waiting for another OTP
    stage.release.set()
    assert await working == 1
    other_otp.release()


@pytest.mark.parametrize("backend", ["sqlite"])  # one shared write lock: SQLite's alone
async def test_a_worker_gives_way_before_each_of_its_store_writes(runtime: Runtime) -> None:
    runner = build_runner(runtime)
    db = runtime._sqlite
    assert db is not None
    assert db.gate is runner
    store: SqliteDatabase = db
    seen = []

    class Recording:
        def urgent(self) -> bool:
            return False

        async def wait_turn(self) -> None:
            seen.append(("turn", await store.read(lambda c: c.in_transaction)))

        def should_yield(self) -> bool:
            seen.append(("yield?", store._conn.in_transaction))
            return False

    runtime.gate_writes(Recording())
    await runtime.stores.types.put(type_spec("like"), runtime.clock.now())
    # Its turn awaited before the transaction began; asked to yield with the lock held,
    # still before the transaction began.
    assert seen == [("turn", False), ("yield?", False)]
    await runner.close()
