"""Every piece of hot state has the store behind it: with Redis unreachable, each keeps
working from the store (slower, never wrong)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clarion.launch import free_port
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.runtime import Runtime, Stores, hot_state_client, with_hot_state
from clarion.stores.records import BatchResult
from clarion.testing import accept, event, type_spec
from clarion.types import Seq, UserId
from tests.backends import rows


@pytest.fixture
def backend() -> str:
    return "sqlite"  # plain stores, to put an unreachable Redis in front of


@pytest.fixture
async def cut_off(runtime: Runtime) -> AsyncIterator[Stores]:
    client = hot_state_client(f"redis://127.0.0.1:{free_port()}")
    try:
        yield with_hot_state(runtime.stores, client)
    finally:
        await client.aclose()


async def test_preferences_come_from_the_store(runtime: Runtime, cut_off: Stores) -> None:
    ann = UserId("ann")
    stored = await cut_off.preferences.put(ann, {"enabled": False}, 1.0, "ann")
    assert (await cut_off.preferences.load_many([ann]))[ann].version == stored.version


async def test_kill_switches_are_stored_and_seen_at_the_periodic_re_read(
    cut_off: Stores,
) -> None:
    from clarion.pipeline.switches import AnnouncesChanges

    switch = KillSwitch("ks_1", KillKind.TYPE, "promo", "bad copy", 1.0, "ops")
    await cut_off.kill_switches.create(switch)
    assert [s.id for s in await cut_off.kill_switches.list(include_lifted=False)] == ["ks_1"]
    assert isinstance(cut_off.kill_switches, AnnouncesChanges)
    assert await cut_off.kill_switches.version() is None  # "unknown": re-read periodically


async def test_batches_are_recorded_and_looked_up_in_the_store(
    runtime: Runtime, cut_off: Stores
) -> None:
    e = event(type_spec(), now=runtime.clock.now(), object="p")
    await accept(runtime, e)
    ((seq,),) = await rows(runtime, "SELECT seq FROM events WHERE event_id = ?", e.event_id)
    result = BatchResult(Seq(seq), "b0", 1, inbox=[UserId("ann")])
    assert (await cut_off.deliveries.record_batches([result], "w", 1.0)).batches == 1
    assert await cut_off.deliveries.recorded([(Seq(seq), "b0"), (Seq(seq), "b1")]) == {
        (Seq(seq), "b0")
    }
