"""A person's delivery trail, newest first, on every backend; on the embedded one the
per-person index is by block of the log (schema version 12), so the rows below lie in
blocks far apart, some with nothing of the person's."""

from __future__ import annotations

from clarion.runtime import Runtime
from clarion.types import EventId, UserId
from tests.backends import rows

BLOCK = 1 << 14


async def _event(runtime: Runtime, seq: int) -> None:
    await rows(
        runtime,
        "INSERT INTO events (seq, event_id, sender, type, priority, fan_out, title, body,"
        " payload, created_at, expires_at, state)"
        " VALUES (?, ?, 'app', 'like', 'P1', 'direct', '', '', '{}', 0, 9e9, 'done')",
        seq,
        f"evt_{seq}",
    )


async def _logged(runtime: Runtime, row_id: int, user: str, seq: int, outcome: str) -> None:
    await rows(
        runtime,
        "INSERT INTO deliveries (id, user_id, seq, channel, attempt, outcome, at)"
        " VALUES (?, ?, ?, 'push', 1, ?, ?)",
        row_id,
        user,
        seq,
        outcome,
        float(row_id),
    )


async def test_a_trail_is_read_newest_first_across_blocks(runtime: Runtime) -> None:
    for seq in (1, 2, 3):
        await _event(runtime, seq)
    await _logged(runtime, 5, "ann", 1, "failed")  # block 0
    await _logged(runtime, 6, "bob", 1, "delivered")
    await _logged(runtime, 2 * BLOCK + 1, "ann", 2, "delivered")  # block 2 (1 has none)
    await _logged(runtime, 5 * BLOCK, "ann", 3, "suppressed")  # block 5
    await _logged(runtime, 5 * BLOCK + 1, "ann", 1, "delivered")  # a late retry of event 1
    await _logged(runtime, 7 * BLOCK, "bob", 3, "delivered")  # the newest row is bob's
    trail = await runtime.stores.deliveries.for_user(UserId("ann"), event_id=None, limit=10)
    assert [(r.event_id, r.outcome) for r in trail] == [
        ("evt_1", "delivered"),
        ("evt_3", "suppressed"),
        ("evt_2", "delivered"),
        ("evt_1", "failed"),
    ]
    newest = await runtime.stores.deliveries.for_user(UserId("ann"), event_id=None, limit=3)
    assert [r.event_id for r in newest] == ["evt_1", "evt_3", "evt_2"]
    one = await runtime.stores.deliveries.for_user(
        UserId("ann"), event_id=EventId("evt_1"), limit=10
    )
    assert [r.outcome for r in one] == ["delivered", "failed"]
    assert await runtime.stores.deliveries.for_user(UserId("cy"), event_id=None, limit=10) == []
