"""Factories for tests (ours and anyone embedding Clarion): events, types, accepting."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from clarion.ingest.validation import EventRequest, Limits, build_event
from clarion.models import Channel, Event, FanOut, Priority, SenderKey, TypeSpec
from clarion.pipeline.evaluate import EvaluateStage
from clarion.pipeline.fanout import FanoutStage
from clarion.pipeline.messages import plan_first_steps
from clarion.pipeline.switches import KillSwitchCache
from clarion.runtime import Runtime
from clarion.stores.records import Accepted, IngestOutcome, IngestRequest
from clarion.types import EventId, UserId

TEST_LIMITS = Limits(
    max_payload_bytes=8192, max_direct_recipients=10_000, idempotency_window_s=3600
)
TEST_KEY = SenderKey(key_id="test", sender="tests", admin=True)


def type_spec(
    name: str = "like",
    priority: Priority = Priority.P1,
    channels: Sequence[Channel] = (Channel.IN_APP,),
    **kw: Any,
) -> TypeSpec:
    return TypeSpec(name, priority, tuple(channels), **kw)


def event(
    spec: TypeSpec,
    *,
    now: float,
    key: SenderKey = TEST_KEY,
    **fields: Any,
) -> Event:
    """An event built by the real validation rules (defaults to a direct event to ``u1``)."""
    if "recipients" in fields:
        fields["recipients"] = tuple(fields["recipients"])
    if fields.get("fan_out") not in (FanOut.FOLLOWERS, "followers") and not (
        {"target", "recipients"} & fields.keys()
    ):
        fields["target"] = "u1"
    if "fan_out" in fields:
        fields["fan_out"] = FanOut(fields["fan_out"])
    return build_event(
        EventRequest(type=spec.name, **fields), spec, key, limits=TEST_LIMITS, now=now
    )


async def accept(
    runtime: Runtime, *events: Event, sender: str = "tests", rate_per_s: float | None = None
) -> IngestOutcome:
    (outcome,) = await runtime.stores.events.accept(
        [IngestRequest(sender, rate_per_s, 1.0, list(events))],
        functools.partial(plan_first_steps, batch_size=runtime.settings.batch_size),
        runtime.clock.now(),
    )
    return outcome


async def accept_ids(runtime: Runtime, *events: Event) -> list[EventId]:
    outcome = await accept(runtime, *events)
    assert isinstance(outcome, list)
    return [a.event_id for a in outcome if isinstance(a, Accepted)]


def users(count: int, prefix: str = "u") -> list[UserId]:
    """Zero-padded ids, so id order is numeric order."""
    return [UserId(f"{prefix}{i:07d}") for i in range(count)]


def fanout_stage(runtime: Runtime, *, batch_size: int = 100, slice_batches: int = 2) -> FanoutStage:
    return FanoutStage(
        runtime.stores.events,
        runtime.stores.followers,
        KillSwitchCache(runtime.stores.kill_switches, refresh_s=0),
        runtime.clock,
        batch_size=batch_size,
        slice_batches=slice_batches,
    )


def evaluate_stage(runtime: Runtime, *, worker: str = "test") -> EvaluateStage:
    s = runtime.stores
    return EvaluateStage(
        s.preferences,
        s.deliveries,
        s.users,
        s.devices,
        s.frequency,
        s.aggregates,
        s.digests,
        KillSwitchCache(s.kill_switches, refresh_s=0),
        runtime.clock,
        worker=worker,
    )
