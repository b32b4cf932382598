from typing import Any

from clarion.models import EventState, EventStatus, Priority
from clarion.runtime import Runtime
from clarion.testing import accept_ids, event, type_spec
from clarion.types import EventId, UserId
from clarion.worker import build_runner

LIKE = type_spec("like")


async def _deliver(runtime: Runtime, **kw: Any) -> tuple[EventId, EventStatus]:
    (event_id,) = await accept_ids(runtime, event(LIKE, now=runtime.clock.now(), **kw))
    await build_runner(runtime).drain()
    status = await runtime.stores.events.status(event_id)
    assert status is not None
    assert status.state is EventState.COMPLETED
    return event_id, status


async def test_evaluate_suppresses_and_logs_the_reason(runtime: Runtime) -> None:
    prefs = runtime.stores.preferences
    now = runtime.clock.now()
    await prefs.put(UserId("quiet"), {"enabled": False}, now)
    await prefs.put(UserId("nolikes"), {"types": {"like": {"enabled": False}}}, now)
    await prefs.put(UserId("other"), {"types": {"comment": {"enabled": False}}}, now)
    event_id, status = await _deliver(runtime, recipients=["quiet", "nolikes", "other", "plain"])
    assert (status.delivered, status.suppressed) == (2, 2)
    for user, reason in [("quiet", "master_off"), ("nolikes", "disabled_type")]:
        (record,) = await runtime.stores.deliveries.for_user(
            UserId(user), event_id=event_id, limit=5
        )
        assert (record.outcome, record.reason, record.channel) == ("suppressed", reason, "in_app")
    (delivered,) = await runtime.stores.deliveries.for_user(
        UserId("plain"), event_id=event_id, limit=5
    )
    assert delivered.outcome == "delivered"


async def test_evaluate_p0_bypasses_the_master_switch(runtime: Runtime) -> None:
    await runtime.stores.preferences.put(UserId("quiet"), {"enabled": False}, runtime.clock.now())
    otp = type_spec("otp", Priority.P0)
    (event_id,) = await accept_ids(runtime, event(otp, now=runtime.clock.now(), target="quiet"))
    await build_runner(runtime).drain()
    assert await runtime.stores.inbox.count_for_event(event_id) == 1


async def test_evaluate_types_without_in_app_are_logged_as_no_channel(runtime: Runtime) -> None:
    from clarion.models import Channel

    push_only = type_spec("ping", channels=[Channel.PUSH])
    (event_id,) = await accept_ids(runtime, event(push_only, now=runtime.clock.now(), target="u"))
    await build_runner(runtime).drain()
    (record,) = await runtime.stores.deliveries.for_user(UserId("u"), event_id=event_id, limit=5)
    assert record.reason == "no_channel"
