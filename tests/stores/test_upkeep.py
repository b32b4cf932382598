"""The delivery log is partitioned by day on PostgreSQL; a long-lived deployment keeps the
coming days' partitions without anyone running a command."""

from __future__ import annotations

import pytest

from clarion.clock import ManualClock
from clarion.runtime import Runtime
from clarion.stores.records import BatchResult
from clarion.types import Seq, UserId
from tests.backends import rows


@pytest.fixture
def backend() -> str:
    return "postgres"


async def test_upkeep_creates_the_coming_days_and_rows_land_in_their_day(
    runtime: Runtime, clock: ManualClock
) -> None:
    assert await runtime.upkeep() == []  # opening the store made this week's already
    clock.advance(30 * 86_400)
    created = await runtime.upkeep()
    assert len(created) == 8  # that day and the next seven
    assert await runtime.upkeep() == []

    await runtime.stores.deliveries.record_batches(
        [BatchResult(Seq(1), "0", recipients=1, inbox=[UserId("ann")], completes_batch=True)],
        "w",
        clock.now(),
    )
    ((where,),) = await rows(runtime, "SELECT tableoid::regclass::text FROM deliveries")
    assert where == created[0]  # the in-app delivery's log row is in its day's partition


async def test_rows_written_before_their_day_had_a_partition_move_into_it(
    runtime: Runtime, clock: ManualClock
) -> None:
    later = clock.now() + 60 * 86_400  # far beyond the partitions made so far
    batch = BatchResult(Seq(1), "0", recipients=1, inbox=[UserId("bob")])
    await runtime.stores.deliveries.record_batches([batch], "w", later)
    ((where,),) = await rows(runtime, "SELECT tableoid::regclass::text FROM deliveries")
    assert where == "deliveries_default"
    clock.advance(60 * 86_400)
    created = await runtime.upkeep()
    ((moved,),) = await rows(runtime, "SELECT tableoid::regclass::text FROM deliveries")
    assert moved == created[0]  # moved, once: still exactly one row
