"""A runtime wired to the provider look-alikes, and the steps channel tests take with it:
register a device, send, deliver (every stage, in this process), read the delivery trail."""

from __future__ import annotations

import secrets
from typing import Any

from clarion.keyring import SigningKeys
from clarion.models import Channel, Platform, Priority, Routing, TypeSpec
from clarion.runtime import Runtime
from clarion.stores.records import Device
from clarion.testing import accept_ids, event
from clarion.types import EventId, UserId
from clarion.worker import build_runner

KEYS = SigningKeys.parse("k1:" + "k" * 32)
ANN = UserId("ann")
IOS = "ab" * 32


async def deliver(runtime: Runtime) -> None:
    runner = build_runner(runtime, keys=KEYS)
    try:
        await runner.drain()
    finally:
        await runner.close()


async def send(
    runtime: Runtime,
    channels_: tuple[Channel, ...],
    priority: Priority = Priority.P1,
    routing: Routing = Routing.FIRST,
    ttl: int = 86_400,
    **fields: Any,
) -> EventId:
    spec = TypeSpec("comment", priority, channels_, ttl, routing=routing)
    fields.setdefault("target", ANN)
    fields.setdefault("object", secrets.token_hex(3))
    (event_id,) = await accept_ids(runtime, event(spec, now=runtime.clock.now(), **fields))
    return event_id


async def device(
    runtime: Runtime,
    user: UserId,
    device_id: str,
    platform: Platform,
    token: str,
    meta: dict[str, Any] | None = None,
) -> None:
    now = runtime.clock.now()
    await runtime.stores.devices.register(
        Device(user, device_id, platform, token, meta or {}, registered_at=now, last_seen=now),
        max_per_user=10,
    )


async def trail(runtime: Runtime, event_id: EventId, channel: str, user: UserId = ANN) -> list[Any]:
    rows = await runtime.stores.deliveries.for_user(user, event_id=event_id, limit=20)
    return sorted([(r.attempt, r.outcome, r.reason) for r in rows if r.channel == channel])
