"""Fan-out turns, checkpoints, and what happens when a turn is redelivered."""

from __future__ import annotations

import orjson

from clarion.broker import Outbound
from clarion.clock import ManualClock
from clarion.models import EventState
from clarion.pipeline.fanout import PAUSE_S, FanoutStage
from clarion.pipeline.messages import FanoutTask, RecipientBatch, decode_batches
from clarion.pipeline.switches import KillSwitchCache
from clarion.runtime import Runtime, load_monitor
from clarion.testing import accept_ids, event, fanout_stage, type_spec, users
from clarion.types import UserId
from clarion.worker import build_runner

LIKE = type_spec("new_post")
CREATOR = UserId("creator")


def stage(runtime: Runtime, slice_batches: int = 2) -> FanoutStage:
    return fanout_stage(runtime, slice_batches=slice_batches)


def paced_stage(runtime: Runtime) -> FanoutStage:
    """A fan-out that pauses while two evaluation batches are waiting."""
    return FanoutStage(
        runtime.stores.events,
        runtime.stores.followers,
        KillSwitchCache(runtime.stores.kill_switches, refresh_s=0),
        runtime.clock,
        batch_size=100,
        slice_batches=2,
        load=load_monitor(runtime),
        pause_depth=2,
    )


async def _followers_event(runtime: Runtime, followers: int) -> FanoutTask:
    await runtime.stores.followers.add(CREATOR, users(followers))
    await accept_ids(
        runtime, event(LIKE, now=runtime.clock.now(), actor=CREATOR, fan_out="followers")
    )
    (message,) = await runtime.broker.consume("fanout.p1", limit=1)
    return FanoutTask.decode(message.body)


def batches(result_outbound: list[Outbound]) -> list[RecipientBatch]:
    return [
        batch
        for o in result_outbound
        if o.topic.startswith("eval")
        for batch in decode_batches(o.body)
    ]


async def test_fanout_turn_produces_bounded_batches_and_a_continuation(runtime: Runtime) -> None:
    task = await _followers_event(runtime, 250)
    result = await stage(runtime).handle([task])
    produced = batches(result.outbound)
    assert [b.batch_key for b in produced] == ["0", "1"]
    assert [len(b.recipients) for b in produced] == [100, 100]
    (continuation,) = [FanoutTask.decode(o.body) for o in result.outbound if o.topic == "fanout.p1"]
    assert (continuation.batch_no, continuation.cursor) == (2, users(250)[199])
    (record,) = result.records
    await record()

    last = await stage(runtime).handle([continuation])
    assert [b.batch_key for b in batches(last.outbound)] == ["2"]
    assert all(o.topic != "fanout.p1" for o in last.outbound)


async def test_fanout_ignores_a_stale_copy_of_a_turn(runtime: Runtime) -> None:
    task = await _followers_event(runtime, 250)
    result = await stage(runtime).handle([task])
    (record,) = result.records
    await record()
    again = await stage(runtime).handle([task])  # redelivered after its checkpoint
    assert again.outbound == []
    assert not again.records


async def test_fanout_redone_before_checkpoint_republishes_the_same_batch_keys(
    runtime: Runtime,
) -> None:
    task = await _followers_event(runtime, 150)
    first = await stage(runtime).handle([task])  # crash: published, never checkpointed
    second = await stage(runtime).handle([task])
    assert [b.batch_key for b in batches(first.outbound)] == ["0", "1"]
    assert [(b.batch_key, b.recipients) for b in batches(second.outbound)] == [
        (b.batch_key, b.recipients) for b in batches(first.outbound)
    ]


async def test_fanout_of_an_actor_without_followers_completes_empty(runtime: Runtime) -> None:
    (event_id,) = await accept_ids(
        runtime, event(LIKE, now=runtime.clock.now(), actor="lonely", fan_out="followers")
    )
    await build_runner(runtime).drain()
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.state, status.recipients, status.batches_total) == (EventState.COMPLETED, 0, 0)


async def test_pipeline_delivers_every_follower_once_across_redeliveries(
    runtime: Runtime, clock: ManualClock
) -> None:
    await runtime.stores.followers.add(CREATOR, users(1234))
    (event_id,) = await accept_ids(
        runtime, event(LIKE, now=clock.now(), actor=CREATOR, fan_out="followers")
    )
    runner = build_runner(runtime)
    for _ in range(6):  # some progress, then a "crash": claimed work is simply dropped
        await runner.run_once()
    for topic in ("fanout.p1", "evaluate.p1"):
        await runtime.broker.consume(topic, limit=5)
    clock.advance(runtime.settings.lease_s + 1)
    await runner.drain()

    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.COMPLETED
    assert (status.recipients, status.batches_total, status.delivered) == (1234, 13, 1234)
    assert await runtime.stores.inbox.count_for_event(event_id) == 1234


async def test_direct_event_with_many_recipients_is_split_into_batches(runtime: Runtime) -> None:
    (event_id,) = await accept_ids(
        runtime, event(LIKE, now=runtime.clock.now(), recipients=users(250))
    )
    await build_runner(runtime).drain()
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert (status.batches_total, status.delivered, status.state) == (3, 250, EventState.COMPLETED)


async def test_fanout_messages_carry_the_event_header(runtime: Runtime) -> None:
    task = await _followers_event(runtime, 5)
    result = await stage(runtime).handle([task])
    body = orjson.loads(result.outbound[0].body)
    (batch,) = body["batches"]  # a fan-out batch travels alone
    assert batch["header"]["type"] == "new_post"
    assert batch["header"]["priority"] == "P1"


async def test_fanout_hands_its_turn_back_while_evaluation_is_backed_up(
    runtime: Runtime, clock: ManualClock
) -> None:
    task = await _followers_event(runtime, 250)
    paced = paced_stage(runtime)
    await runtime.broker.publish([Outbound("evaluate.p1", b"{}") for _ in range(2)])
    held = await paced.handle([task])
    (again,) = held.outbound  # no batches: the same turn, later
    assert (again.topic, again.delay_s) == ("fanout.p1", PAUSE_S)
    assert FanoutTask.decode(again.body) == task
    assert not held.records  # the checkpoint does not move

    await runtime.broker.ack(await runtime.broker.consume("evaluate.p1", limit=2))  # drained
    clock.advance(2)  # past the cached load reading
    resumed = await paced.handle([task])
    assert [b.batch_key for b in batches(resumed.outbound)] == ["0", "1"]


async def test_batches_held_until_later_do_not_hold_the_fanout_back(
    runtime: Runtime, clock: ManualClock
) -> None:
    """Batches re-queued for when people's quiet hours end are not a backlog: a celebrity
    post at night, with a tenth of the followers asleep, must not stall behind them."""
    task = await _followers_event(runtime, 250)
    paced = paced_stage(runtime)
    asleep = [Outbound("evaluate.p1", b"{}", delay_s=8 * 3600) for _ in range(50)]
    await runtime.broker.publish(asleep)
    goes_on = await paced.handle([task])
    assert [b.batch_key for b in batches(goes_on.outbound)] == ["0", "1"]
    clock.advance(8 * 3600 + 2)  # they are due now: that is a backlog again
    paused = await paced.handle([task])
    assert [o.topic for o in paused.outbound] == ["fanout.p1"]
