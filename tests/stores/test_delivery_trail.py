"""A person's delivery trail, on every backend: the newest event first, a late retry
under its own event."""

from __future__ import annotations

from clarion.runtime import Runtime
from clarion.types import EventId, UserId
from tests.backends import rows


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


async def test_a_trail_is_read_newest_event_first(runtime: Runtime) -> None:
    for seq in (1, 2, 3):
        await _event(runtime, seq)
    await _logged(runtime, 5, "ann", 1, "failed")
    await _logged(runtime, 6, "bob", 1, "delivered")
    await _logged(runtime, 7, "ann", 2, "delivered")
    await _logged(runtime, 8, "ann", 3, "suppressed")
    await _logged(runtime, 9, "ann", 1, "delivered")  # a late retry of event 1
    await _logged(runtime, 10, "bob", 3, "delivered")
    trail = await runtime.stores.deliveries.for_user(UserId("ann"), event_id=None, limit=10)
    assert [(r.event_id, r.outcome) for r in trail] == [
        ("evt_3", "suppressed"),
        ("evt_2", "delivered"),
        ("evt_1", "delivered"),
        ("evt_1", "failed"),
    ]
    newest = await runtime.stores.deliveries.for_user(UserId("ann"), event_id=None, limit=2)
    assert [r.event_id for r in newest] == ["evt_3", "evt_2"]
    one = await runtime.stores.deliveries.for_user(
        UserId("ann"), event_id=EventId("evt_1"), limit=10
    )
    assert [r.outcome for r in one] == ["delivered", "failed"]
    assert await runtime.stores.deliveries.for_user(UserId("cy"), event_id=None, limit=10) == []
