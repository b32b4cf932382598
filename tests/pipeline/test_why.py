"""``clarion why``'s sentences from real trails, on every backend: held then sent, opted
out, a channel that cannot reach them, a kill switch, an expired event, a frequency cap."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clarion.cli.why import _explain
from clarion.clock import ManualClock
from clarion.models import Channel, Priority, TypeSpec
from clarion.policy.killswitch import KillKind, KillSwitch
from clarion.runtime import Runtime
from clarion.stores.records import UserProfile
from clarion.testing import accept_ids, event, type_spec
from clarion.types import EventId, UserId
from clarion.worker import build_runner

ANN = UserId("ann")
LIKE = type_spec("like", Priority.P1, channels=(Channel.IN_APP, Channel.EMAIL))
PROMO = type_spec("promo", Priority.P2)


async def _send(runtime: Runtime, spec: TypeSpec, **fields: Any) -> EventId:
    fields.setdefault("target", ANN)
    (event_id,) = await accept_ids(runtime, event(spec, now=runtime.clock.now(), **fields))
    return event_id


async def _why(runtime: Runtime, event_id: EventId) -> str:
    (told,) = await _explain(runtime, ANN, event_id, 1)
    return told[1]


async def test_sentences_for_each_outcome(runtime: Runtime, clock: ManualClock) -> None:
    clock.set(datetime(2026, 6, 1, 21, 30, tzinfo=UTC).timestamp())  # 23:30 in Paris
    for spec in (LIKE, PROMO):
        await runtime.stores.types.put(spec, clock.now())
    await runtime.stores.users.put(
        UserProfile(ANN, email="ann@example.org", email_verified=False, timezone="Europe/Paris")
    )
    quiet = {"start": "22:00", "end": "08:00"}
    prefs = {"quiet_hours": quiet, "types": {"promo": {"enabled": False}}}
    await runtime.stores.preferences.put(ANN, prefs, clock.now(), "test")
    runner = build_runner(runtime)
    liked = await _send(runtime, LIKE, actor="bob")
    promo = await _send(runtime, PROMO)
    await runner.drain()
    clock.set(datetime(2026, 6, 2, 6, 1, tzinfo=UTC).timestamp())  # 08:01 in Paris
    await runner.drain()
    said = await _why(runtime, liked)
    assert said.startswith(f"{liked}: like from bob at 2026-06-01 23:30 Europe/Paris — ")
    assert "held by quiet hours, then put in the inbox at 2026-06-02 08:01" in said
    assert "email skipped: there was no way to reach them (email address not verified)" in said
    assert (await _why(runtime, promo)).endswith(
        "not sent: they turned this kind of notification off"
    )

    await runner.close()
    await runtime.stores.kill_switches.create(
        KillSwitch("k1", KillKind.TYPE, "like", "bad copy", clock.now(), "ops")
    )
    killed = await _send(runtime, LIKE)
    runner = build_runner(runtime)  # a fresh worker sees the switch at once
    await runner.drain()
    await runner.close()
    assert (await _why(runtime, killed)).endswith("not sent: a kill switch was on")
