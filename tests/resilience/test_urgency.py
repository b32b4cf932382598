"""The urgent lane, between two handles on one lock file (as two processes would hold)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clarion.resilience.urgency import LaneGate, UrgentLane


async def test_bulk_gives_way_while_p0_holds_and_not_longer(tmp_path: Path) -> None:
    p0 = UrgentLane(tmp_path / "db.urgent")
    bulk = UrgentLane(tmp_path / "db.urgent", max_wait_s=5)
    assert not bulk.busy()
    p0.hold()
    p0.hold()  # nested: released only by the last release
    assert bulk.busy()
    assert not p0.busy()  # its own work is nothing to wait for
    asyncio.get_running_loop().call_later(0.05, p0.release)
    asyncio.get_running_loop().call_later(0.1, p0.release)
    waited = await bulk.give_way()
    assert 0.09 <= waited < 1
    assert not bulk.busy()


async def test_a_steady_stream_of_p0_only_slows_bulk_down(tmp_path: Path) -> None:
    p0 = UrgentLane(tmp_path / "db.urgent")
    bulk = UrgentLane(tmp_path / "db.urgent", max_wait_s=0.05)
    p0.hold()
    waited = await bulk.give_way()
    assert 0.05 <= waited < 0.5  # gave up waiting: bulk work is never starved
    p0.release()


async def test_the_apis_writes_are_urgent_while_it_holds_the_lane(tmp_path: Path) -> None:
    lane = UrgentLane(tmp_path / "db.urgent")
    gate = LaneGate(lane)
    assert not gate.urgent()
    lane.hold()  # accepting a P0 event
    assert gate.urgent()
    lane.release()
    assert not gate.urgent()
    await asyncio.wait_for(gate.wait_turn(), 1)  # the API never gives way: no bulk work
    assert not gate.should_yield()
