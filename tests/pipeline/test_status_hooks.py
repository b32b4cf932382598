"""Status webhooks for senders: signed, retried with the same id, retired on 410."""

from __future__ import annotations

from clarion.channels import signing
from clarion.clock import ManualClock
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform
from clarion.runtime import Runtime
from clarion.stores.records import StatusHook, UserProfile
from tests.pipeline.channel_steps import ANN, IOS, deliver, device, send


async def _hook(rt: Runtime, fakes: FakeProviders, events: set[str]) -> StatusHook:
    secret = signing.new_secret()
    fakes.webhooks.secrets["status"] = secret
    hook = StatusHook(
        "wh_1",
        "tests",
        fakes.plain_url("/hooks/status"),
        frozenset(events),
        (secret,),
        rt.clock.now(),
    )
    await rt.stores.status_hooks.create(hook)
    return hook


async def test_a_failing_endpoint_gets_the_same_message_again_later(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await _hook(rt, fakes, {"delivered"})
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    fakes.webhooks.behaviour.add(Rule(match="status", status=503, times=1))
    await send(rt, (Channel.PUSH,))
    await deliver(rt)
    (refused,) = fakes.webhooks.received.all()
    assert refused["refused"] == 503
    clock.advance(60)  # past the retry's backoff
    await deliver(rt)
    refused, accepted = fakes.webhooks.received.all()
    assert accepted["genuine"] is True
    assert accepted["headers"]["webhook-id"] == refused["headers"]["webhook-id"]
    assert [r["type"] for r in accepted["body"]["data"]] == ["delivered"]


async def test_410_retires_the_endpoint(rt: Runtime, fakes: FakeProviders) -> None:
    await _hook(rt, fakes, {"delivered"})
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    fakes.webhooks.behaviour.add(Rule(match="status", status=410))
    await send(rt, (Channel.PUSH,))
    await deliver(rt)
    (hook,) = await rt.stores.status_hooks.list("tests")
    assert hook.disabled_at is not None
    await send(rt, (Channel.PUSH,))
    await deliver(rt)
    assert len(fakes.webhooks.received.all()) == 1  # nothing more was posted


async def test_a_bounce_is_reported_as_bounced(rt: Runtime, fakes: FakeProviders) -> None:
    await _hook(rt, fakes, {"bounced"})
    await rt.stores.users.put(UserProfile(ANN, email="gone@example.com", email_verified=True))
    fakes.smtp.behaviour.add(Rule(match="gone@", status=550))
    event_id = await send(rt, (Channel.EMAIL,))
    await deliver(rt)
    (call,) = fakes.webhooks.received.all()
    ((record),) = call["body"]["data"]
    assert (record["type"], record["user_id"], record["event_id"]) == ("bounced", ANN, event_id)
    assert record["reason"].startswith("bounced: 550")
