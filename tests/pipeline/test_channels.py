"""Channels through the whole pipeline: routing, every provider, feedback, retries, templates
and status webhooks — against the look-alikes, with a clock the test moves."""

from __future__ import annotations

from clarion.channels import signing
from clarion.clock import ManualClock
from clarion.fakes.apns import unregistered
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Platform, Priority
from clarion.runtime import Runtime
from clarion.stores.records import StatusHook, UserProfile
from clarion.types import UserId
from clarion.unsubscribe import read_token
from clarion.worker import build_runner
from tests.pipeline.channel_steps import ANN, IOS, KEYS, deliver, device, send, trail


async def test_three_devices_get_three_pushes_and_one_inbox_entry(
    rt: Runtime, fakes: FakeProviders
) -> None:
    subscription = fakes.webpush.subscribe()
    await device(rt, ANN, "iphone", Platform.IOS, IOS)
    await device(rt, ANN, "pixel", Platform.ANDROID, "fcm-token-ann")
    await device(
        rt, ANN, "laptop", Platform.WEB, subscription["endpoint"], {"keys": subscription["keys"]}
    )
    event_id = await send(rt, (Channel.PUSH, Channel.IN_APP), payload={"title": "Hi", "body": "B"})
    await deliver(rt)
    assert [len(f.received) for f in (fakes.apns, fakes.fcm, fakes.webpush)] == [1, 1, 1]
    assert await rt.stores.inbox.count_for_event(event_id) == 1
    assert await trail(rt, event_id, "push") == [(1, "delivered", None)]
    status = await rt.stores.events.status(event_id)
    assert status is not None
    assert (status.delivered, status.failed) == (2, 0)  # in-app + push, one person


async def test_push_only_goes_to_people_with_an_active_device(
    rt: Runtime, fakes: FakeProviders
) -> None:
    event_id = await send(rt, (Channel.PUSH,), target="nobody_with_a_phone")
    await deliver(rt)
    assert len(fakes.apns.received) == 0
    rows = await rt.stores.deliveries.for_user(
        UserId("nobody_with_a_phone"), event_id=event_id, limit=5
    )
    assert [(r.channel, r.outcome, r.reason) for r in rows] == [
        ("push", "suppressed", "no_channel: no active push device")
    ]


async def test_email_to_verified_addresses_with_a_working_unsubscribe_link(
    rt: Runtime, fakes: FakeProviders
) -> None:
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", email_verified=True))
    await rt.stores.users.put(UserProfile(UserId("bob"), email="bob@example.com"))  # unverified
    await send(rt, (Channel.EMAIL,), recipients=[ANN, "bob"], target=None)
    await deliver(rt)
    (mail,) = fakes.smtp.received.all()
    assert mail["to"] == ["ann@example.com"]
    link = mail["headers"]["list-unsubscribe"].strip("<>")
    assert link.startswith("https://clarion.example/v1/unsubscribe/")
    scope = read_token(link.rsplit("/", 1)[1], KEYS)
    assert (scope.user_id, scope.type, scope.sender) == (ANN, "comment", "tests")


async def test_transactional_email_has_no_unsubscribe_link(
    rt: Runtime, fakes: FakeProviders
) -> None:
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", email_verified=True))
    await send(rt, (Channel.EMAIL,), Priority.P0)
    await deliver(rt)
    (mail,) = fakes.smtp.received.all()
    assert "list-unsubscribe" not in mail["headers"]


async def test_a_bounce_retires_the_address(rt: Runtime, fakes: FakeProviders) -> None:
    await rt.stores.users.put(UserProfile(ANN, email="gone@example.com", email_verified=True))
    fakes.smtp.behaviour.add(Rule(match="gone@", status=550))
    first = await send(rt, (Channel.EMAIL, Channel.IN_APP))
    await deliver(rt)
    assert (await trail(rt, first, "email"))[0][2].startswith("invalid_address: bounced: 550")
    profile = await rt.stores.users.get(ANN)
    assert profile is not None
    assert profile.email_bounced_at is not None
    second = await send(rt, (Channel.EMAIL, Channel.IN_APP))
    await deliver(rt)
    assert await trail(rt, second, "email") == [  # not even tried
        (1, "suppressed", "no_channel: email address bounced")
    ]
    assert await rt.stores.inbox.count_for_event(second) == 1
    # Saving the same address again keeps the bounce; a new address starts clean.
    await rt.stores.users.put(UserProfile(ANN, email="gone@example.com", email_verified=True))
    (reach,) = (await rt.stores.devices.reachable([ANN], rt.clock.now())).values()
    assert (reach.channels, reach.why_not[Channel.EMAIL]) == (frozenset(), "email address bounced")
    await rt.stores.users.put(UserProfile(ANN, email="new@example.com", email_verified=True))
    (reach,) = (await rt.stores.devices.reachable([ANN], rt.clock.now())).values()
    assert reach.channels == {Channel.EMAIL}


async def test_apns_410_retires_a_token_registered_before_it_died(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "old", Platform.IOS, IOS)
    fakes.apns.behaviour.add(Rule(match=IOS, status=410, body=unregistered(clock.now() + 60)))
    event_id = await send(rt, (Channel.PUSH,))
    await deliver(rt)
    (old,) = await rt.stores.devices.of_user(ANN)
    assert (old.state, old.reason) == ("invalid", "Unregistered")
    assert (await trail(rt, event_id, "push"))[0][1] == "failed"


async def test_apns_410_keeps_a_token_registered_again_since(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)  # registered now …
    fakes.apns.behaviour.add(Rule(match=IOS, status=410, body=unregistered(clock.now() - 3600)))
    await send(rt, (Channel.PUSH,))  # … after the moment Apple says it died
    await deliver(rt)
    (phone,) = await rt.stores.devices.of_user(ANN)
    assert phone.state == "active"


async def test_credential_errors_never_touch_tokens_and_pause_the_provider(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    fakes.apns.behaviour.add(Rule(status=403, body={"reason": "InvalidProviderToken"}, times=1))
    runner = build_runner(rt, keys=KEYS)
    try:
        event_id = await send(rt, (Channel.PUSH,))
        await runner.drain()
        (phone,) = await rt.stores.devices.of_user(ANN)
        assert phone.state == "active"
        assert len(fakes.apns.received) == 0
        later = await send(rt, (Channel.PUSH,))
        await runner.drain()
        assert await trail(rt, later, "push") == [
            (1, "failed", "retrying: provider paused: credentials refused")
        ]
        assert len(fakes.apns.received) == 0  # paused: not even tried
        clock.advance(73)  # the operator fixed the key; the pause (and its spread) is over
        await runner.drain()
    finally:
        await runner.close()
    assert await trail(rt, event_id, "push") == [
        (1, "failed", "retrying: credentials: InvalidProviderToken"),
        (2, "delivered", None),
    ]
    assert len(fakes.apns.received) == 2


async def test_retry_after_is_honoured_then_the_push_goes_out(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    fakes.apns.behaviour.add(
        Rule(status=429, body={"reason": "TooManyRequests"}, retry_after_s=30, times=1)
    )
    event_id = await send(rt, (Channel.PUSH,))
    await deliver(rt)
    assert len(fakes.apns.received) == 0
    clock.advance(29)
    await deliver(rt)
    assert len(fakes.apns.received) == 0  # not before Retry-After
    clock.advance(7)  # Retry-After plus at most a fifth more
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    assert await trail(rt, event_id, "push") == [
        (1, "failed", "retrying: TooManyRequests"),
        (2, "delivered", None),
    ]
    status = await rt.stores.events.status(event_id)
    assert status is not None
    assert (status.delivered, status.failed) == (1, 0)


async def test_a_provider_that_keeps_failing_is_given_up_on_within_the_budget(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await device(rt, ANN, "phone", Platform.ANDROID, "fcm-x")
    fakes.fcm.behaviour.add(Rule(status=503))
    event_id = await send(rt, (Channel.PUSH,))  # P1: two retries within two minutes
    for _ in range(5):
        await deliver(rt)
        clock.advance(10)
    rows = await trail(rt, event_id, "push")
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[-1][2].startswith("gave up after 3 attempts")
    status = await rt.stores.events.status(event_id)
    assert status is not None
    assert status.failed == 1
    (dead,) = await rt.broker.dead_letters()
    assert dead.error == "retry budget spent on push after 3 attempts"
    fakes.fcm.behaviour.clear()  # the provider is back: an operator replays the letter
    assert await rt.broker.replay(dead.id)
    await deliver(rt)
    assert len(fakes.fcm.received) == 1
    assert (1, "delivered", None) in await trail(rt, event_id, "push")


async def test_a_webhook_device_gets_signed_json(rt: Runtime, fakes: FakeProviders) -> None:
    secret = signing.new_secret()
    fakes.webhooks.secrets["ann-crm"] = secret
    await device(
        rt, ANN, "crm", Platform.WEBHOOK, fakes.webhooks.url("ann-crm"), {"secrets": [secret]}
    )
    await send(rt, (Channel.WEBHOOK,), payload={"title": "T", "body": "B"})
    await deliver(rt)
    (hook,) = fakes.webhooks.received.all()
    assert hook["genuine"] is True
    assert (hook["body"]["data"]["title"], hook["body"]["data"]["user_id"]) == ("T", "ann")


async def test_the_webhook_channel_needs_no_provider_configuration(
    rt: Runtime, fakes: FakeProviders
) -> None:
    await rt.stores.providers.delete("webhook")  # nothing configured: the built-in sender
    secret = signing.new_secret()
    fakes.webhooks.secrets["ann-bot"] = secret
    url = fakes.plain_url("/hooks/ann-bot")
    await device(rt, ANN, "bot", Platform.WEBHOOK, url, {"secrets": [secret]})
    event_id = await send(rt, (Channel.WEBHOOK,))
    await deliver(rt)
    (hook,) = fakes.webhooks.received.all()
    assert hook["genuine"] is True
    assert await trail(rt, event_id, "webhook") == [(1, "delivered", None)]


async def test_every_channel_that_cannot_reach_someone_is_in_the_trail_with_why(
    rt: Runtime, fakes: FakeProviders
) -> None:
    await rt.stores.users.put(UserProfile(ANN, email="ann@example.com", phone="+15551230000"))
    channels_ = (Channel.PUSH, Channel.EMAIL, Channel.SMS, Channel.WEBHOOK, Channel.IN_APP)
    event_id = await send(rt, channels_)
    await deliver(rt)
    assert await rt.stores.inbox.count_for_event(event_id) == 1  # in-app still goes
    rows = await rt.stores.deliveries.for_user(ANN, event_id=event_id, limit=10)
    assert sorted((r.channel, r.outcome, r.reason) for r in rows) == [
        ("email", "suppressed", "no_channel: email address not verified"),
        ("in_app", "delivered", None),
        ("push", "suppressed", "no_channel: no active push device"),
        ("sms", "suppressed", "no_channel: phone number not verified"),
        ("webhook", "suppressed", "no_channel: no webhook endpoint registered"),
    ]
    status = await rt.stores.events.status(event_id)
    assert status is not None
    assert (status.delivered, status.suppressed) == (1, 0)  # the person was reached


async def test_sms_to_verified_phones(rt: Runtime, fakes: FakeProviders) -> None:
    await rt.stores.users.put(UserProfile(ANN, phone="+15551230000", phone_verified=True))
    event_id = await send(rt, (Channel.SMS,), Priority.P0, payload={"body": "Code: 424242"})
    await deliver(rt)
    (sms,) = fakes.twilio.received.all()
    assert (sms["form"]["To"], sms["form"]["Body"]) == ("+15551230000", "Code: 424242")
    ((_, outcome, _),) = await trail(rt, event_id, "sms")
    assert outcome == "delivered"


async def test_templates_render_in_each_persons_locale(rt: Runtime, fakes: FakeProviders) -> None:
    await rt.stores.templates.put(
        "comment",
        {
            "default_locale": "en",
            "variants": {
                "en": {"email": {"subject": "{{ actor }} commented", "text": "{{ text }}"}},
                "fr": {"email": {"subject": "{{ actor }} a commenté", "text": "{{ text }}"}},
            },
        },
        rt.clock.now(),
        "test",
    )
    for user, locale in (("ann", "fr-CA"), ("bob", "de")):
        await rt.stores.users.put(
            UserProfile(
                UserId(user), email=f"{user}@example.com", email_verified=True, locale=locale
            )
        )
    await send(
        rt,
        (Channel.EMAIL,),
        recipients=["ann", "bob"],
        target=None,
        actor="Zoé",
        template="comment",
        template_version=1,
        payload={"text": "Bravo"},
    )
    await deliver(rt)
    subjects = {m["to"][0]: m["subject"] for m in fakes.smtp.received.all()}
    assert subjects == {"ann@example.com": "Zoé a commenté", "bob@example.com": "Zoé commented"}


async def test_a_push_waits_for_a_provider_configured_after_it_was_sent(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    apns = await rt.stores.providers.get("apns")
    assert apns is not None
    await rt.stores.providers.delete("apns")
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    event_id = await send(rt, (Channel.PUSH,))
    await deliver(rt)
    ((_, outcome, reason),) = await trail(rt, event_id, "push")
    assert (outcome, reason) == (
        "held",
        "waiting: no provider configured for apns: PUT /v1/providers/apns",
    )
    await rt.stores.providers.put("apns", apns, clock.now())  # what PUT /v1/providers does
    clock.advance(5)
    await deliver(rt)
    assert len(fakes.apns.received) == 1
    assert [r[:2] for r in await trail(rt, event_id, "push")] == [(1, "delivered"), (1, "held")]


async def test_a_missing_provider_waits_no_longer_than_the_ttl(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    await rt.stores.providers.delete("apns")
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    event_id = await send(rt, (Channel.PUSH,), ttl=60)
    for _ in range(8):  # 5, 10, 20, 40 s … : it looks again less and less often
        await deliver(rt)
        clock.advance(30)
    assert [r[1:] for r in await trail(rt, event_id, "push")] == [
        ("held", "waiting: no provider configured for apns: PUT /v1/providers/apns"),
        ("suppressed", "expired"),
    ]


async def test_status_webhooks_hear_about_outcomes(rt: Runtime, fakes: FakeProviders) -> None:
    secret = signing.new_secret()
    fakes.webhooks.secrets["status"] = secret
    await rt.stores.status_hooks.create(
        StatusHook(
            "wh_1",
            "tests",
            fakes.plain_url("/hooks/status"),
            frozenset({"delivered", "failed"}),
            (secret,),
            rt.clock.now(),
        )
    )
    await device(rt, ANN, "phone", Platform.IOS, IOS)
    await device(rt, UserId("bob"), "dead", Platform.IOS, "cd" * 32)
    fakes.apns.behaviour.add(Rule(match="cd" * 32, status=400, body={"reason": "BadDeviceToken"}))
    event_id = await send(rt, (Channel.PUSH,), recipients=["ann", "bob"], target=None)
    await deliver(rt)
    (call,) = fakes.webhooks.received.all()
    assert call["genuine"] is True
    records = {r["user_id"]: r["type"] for r in call["body"]["data"]}
    assert records == {"ann": "delivered", "bob": "failed"}
    assert {r["event_id"] for r in call["body"]["data"]} == {event_id}
