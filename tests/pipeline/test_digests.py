"""Email digests through the pipeline, on every backend, with a clock the test moves: what a
person asked to get daily is collected and sent once at their local 08:00 — across a DST
change too — while P0 goes at once, and a type's cap overflow lands in the digest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clarion.clock import ManualClock
from clarion.fakes.suite import FakeProviders
from clarion.models import Channel, Overflow, Priority, TypeSpec
from clarion.runtime import Runtime
from clarion.stores.records import UserProfile
from clarion.testing import accept_ids, event
from clarion.types import EventId
from tests.pipeline.channel_steps import ANN, deliver

COMMENT = TypeSpec("comment", Priority.P1, (Channel.EMAIL, Channel.IN_APP), 7 * 86_400)
OTP = TypeSpec("otp", Priority.P0, (Channel.EMAIL,), 600, mandatory=True)
PROMO = TypeSpec(
    "promo", Priority.P2, (Channel.IN_APP, Channel.EMAIL), 7 * 86_400,
    default_enabled=True, overflow=Overflow.DIGEST,
)  # fmt: skip


def at(clock: ManualClock, year: int, month: int, day: int, hour: int, minute: int) -> None:
    clock.set(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


async def person(rt: Runtime, zone: str = "Europe/Paris", **prefs: Any) -> None:
    await rt.stores.users.put(
        UserProfile(ANN, email="ann@example.com", email_verified=True, timezone=zone)
    )
    await rt.stores.preferences.put(ANN, prefs, rt.clock.now(), "test")


async def send(rt: Runtime, spec: TypeSpec = COMMENT, **fields: Any) -> EventId:
    fields.setdefault("payload", {"title": "Zoé commented", "body": "Nice photo"})
    (event_id,) = await accept_ids(rt, event(spec, now=rt.clock.now(), target=ANN, **fields))
    return event_id


def mails(fakes: FakeProviders) -> list[dict[str, Any]]:
    return fakes.smtp.received.all()


async def trail(rt: Runtime, event_id: EventId) -> list[tuple[str, str | None]]:
    rows = await rt.stores.deliveries.for_user(ANN, event_id=event_id, limit=10)
    return sorted(((r.outcome, r.reason) for r in rows if r.channel == "email"), key=str)


DAILY: dict[str, Any] = {"channels": {"email": {"digest": "daily"}}}


async def test_a_daily_digest_goes_out_once_at_the_local_hour(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 10, 12, 0)  # 14:00 in Paris
    await person(rt, **DAILY)
    sent = [await send(rt, object=f"p{n}") for n in range(3)]
    await deliver(rt)
    assert mails(fakes) == []
    assert await trail(rt, sent[0]) == [("held", "digest")]
    assert await rt.stores.inbox.page(ANN, before=None, limit=10) is not None
    at(clock, 2026, 6, 11, 5, 59)  # 07:59 in Paris
    await deliver(rt)
    assert mails(fakes) == []
    at(clock, 2026, 6, 11, 6, 0)  # 08:00 in Paris
    await deliver(rt)
    (mail,) = mails(fakes)
    assert mail["subject"] == "Your digest: 3 notifications"
    assert mail["text"].count("Zoé commented: Nice photo") == 3
    reasons = {r for e in sent for r in await trail(rt, e)}
    (delivered,) = (r for r in reasons if r[0] == "delivered")  # one digest id for all three
    assert str(delivered[1]).startswith("digest dg_")
    assert reasons == {("held", "digest"), delivered}
    clock.advance(3600)
    await deliver(rt)
    assert len(mails(fakes)) == 1  # never twice


async def test_the_daily_digest_follows_the_local_clock_across_a_dst_change(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    at(clock, 2026, 10, 24, 10, 0)  # Saturday, 12:00 CEST; clocks go back on Sunday 03:00
    await person(rt, **DAILY)
    await send(rt)
    await deliver(rt)
    at(clock, 2026, 10, 25, 6, 0)  # 07:00 CET: was 08:00 the day before, not today
    await deliver(rt)
    assert mails(fakes) == []
    at(clock, 2026, 10, 25, 7, 0)  # 08:00 CET, 25 hours after Saturday's 08:00 CEST
    await deliver(rt)
    assert len(mails(fakes)) == 1


async def test_p0_is_never_digested(rt: Runtime, fakes: FakeProviders, clock: ManualClock) -> None:
    at(clock, 2026, 6, 10, 12, 0)
    await person(rt, **DAILY)
    code = await send(rt, OTP, payload={"title": "Your code", "body": "424242"})
    await send(rt)
    await deliver(rt)
    (mail,) = mails(fakes)
    assert mail["subject"] == "Your code"
    assert await trail(rt, code) == [("delivered", None)]


async def test_a_weekly_digest_waits_for_the_chosen_day_and_hour(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 10, 12, 0)  # a Wednesday
    weekly = {"digest": "weekly", "digest_day": "friday", "digest_at": "18:30"}
    await person(rt, "UTC", channels={"email": weekly})
    await send(rt)
    await deliver(rt)
    at(clock, 2026, 6, 11, 18, 30)  # Thursday
    await deliver(rt)
    assert mails(fakes) == []
    at(clock, 2026, 6, 12, 18, 30)  # Friday 18:30
    await deliver(rt)
    assert len(mails(fakes)) == 1


async def test_what_a_cap_would_drop_lands_in_the_next_digest(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    at(clock, 2026, 6, 10, 12, 0)
    await person(rt, "UTC", frequency_caps={"per_day": 1})
    first = await send(rt, PROMO, payload={"title": "Sale", "body": "Shoes -20%"})
    second = await send(rt, PROMO, payload={"title": "Sale", "body": "Hats -30%"})
    await deliver(rt)
    assert [m["subject"] for m in mails(fakes)] == ["Sale"]  # the first, in the cap
    assert await trail(rt, second) == [("held", "digest: over frequency cap")]
    at(clock, 2026, 6, 11, 8, 0)  # the default: daily at 08:00
    await deliver(rt)
    digest = mails(fakes)[1]
    assert "Hats -30%" in digest["text"]
    assert "Shoes" not in digest["text"]
    assert await trail(rt, first) == [("delivered", None)]


async def test_the_digest_template_writes_the_email(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    text = "{% for i in items %}{{ i.title }} ({{ i.count }})\n{% endfor %}"
    doc = {"variants": {"en": {"digest": {"subject": "{{ count }} new", "text": text}}}}
    await rt.stores.templates.put("digest", doc, clock.now(), "test")
    at(clock, 2026, 6, 10, 12, 0)
    await person(rt, "UTC", **DAILY)
    await send(rt)
    await send(rt, object="other")
    await deliver(rt)
    at(clock, 2026, 6, 11, 8, 0)
    await deliver(rt)
    (mail,) = mails(fakes)
    assert mail["subject"] == "2 new"
    assert mail["text"].strip().splitlines() == ["Zoé commented (1)", "Zoé commented (1)"]


async def test_an_aggregate_is_one_item_of_the_digest(
    rt: Runtime, fakes: FakeProviders, clock: ManualClock
) -> None:
    like = TypeSpec("like", Priority.P1, (Channel.EMAIL, Channel.IN_APP), 86_400, aggregate_s=60)
    at(clock, 2026, 6, 10, 12, 0)
    await person(rt, "UTC", **DAILY)
    for fan in ("alice", "bob", "carol", "dan", "eve"):
        await send(rt, like, actor=fan, object="photo", payload={"title": "Likes"})
    await deliver(rt)
    clock.advance(61)  # the window's summary: to the digest too, as the same item
    await deliver(rt)
    at(clock, 2026, 6, 11, 8, 0)
    await deliver(rt)
    (mail,) = mails(fakes)
    assert mail["subject"] == "Your digest: 1 notification"
    assert mail["text"] == "• Likes: eve, dan, carol and 2 others"
