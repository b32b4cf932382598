"""Campaigns on both backends: audiences uploaded and folded, segments over attribute
types (bad filters refused by their part), expansion in fenced pages (a stale holder's
write is refused), a rollout raised without repeating anyone, pause / resume / cancel,
local hours, progress."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections import Counter
from typing import Any

import pytest

from clarion.api.routes import audiences as audience_routes
from clarion.campaigns.expansion import Expansion, local_wait
from clarion.runtime import open_runtime
from clarion.scheduling import scheduler as scheduling
from clarion.worker import build_runner
from tests.conftest import Api, unique


def _users(api: Api, prefix: str, count: int, **attributes: Any) -> list[str]:
    users = [f"{prefix}{n:05d}" for n in range(count)]
    for n, user in enumerate(users):
        attrs = {k: v(n) if callable(v) else v for k, v in attributes.items()}
        made = api.call("PUT", f"/v1/users/{user}", json={"attributes": attrs})
        assert made.status_code == 200, made.text
    return users


def _campaign(api: Api, audience: dict[str, Any], **fields: Any) -> dict[str, Any]:
    kind = fields.pop("type", None) or api.register_type(unique("promo_"), priority="P2",
                                                         default_enabled=True)  # fmt: skip
    body = {"name": "spring", "type": kind, "audience": audience, "payload": {"title": "Hi"}}
    made = api.call("POST", "/v1/campaigns", json=body | fields)
    assert made.status_code == 201, made.text
    return dict(made.json())


def _expand(api: Api, rounds: int = 20) -> None:
    async def expand() -> None:
        expansion = Expansion(api.runtime, unique("scheduler-"))
        for _ in range(rounds):
            if not await expansion.tick():
                return

    api.run(expand())
    api.drain()


def promo_with_opt_outs(api: Api, people: int, opted_out: int) -> tuple[str, list[str]]:
    """A P2 type on by default, and ``people`` new people of whom the first ``opted_out``
    switched it off."""
    kind = api.register_type(unique("promo_"), priority="P2", default_enabled=True)
    crowd = [unique("reader") for _ in range(people)]
    for person in crowd[:opted_out]:
        off = {"types": {kind: {"enabled": False}}}
        assert api.call("PUT", f"/v1/users/{person}/preferences", json=off).is_success
    return kind, crowd


def _inboxes(api: Api, users: list[str]) -> Counter[str]:
    got: Counter[str] = Counter()
    for user in users:
        items = api.call("GET", f"/v1/users/{user}/inbox").json()["items"]
        got[user] = len(items)
    return got


def test_an_uploaded_audience_gets_it_once_each(api: Api) -> None:
    people = [unique("fan") for _ in range(30)]
    body = "\n".join(people + people[:10]) + "\n"  # repeats fold
    made = api.call(
        "POST", "/v1/audiences", params={"name": "fans"}, content=body,
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    audience = made.json()
    assert audience["size"] == 30
    campaign = _campaign(api, {"audience": audience["id"]})
    assert campaign["state"] == "scheduled"
    _expand(api)
    assert set(_inboxes(api, people).values()) == {1}
    shown = api.call("GET", f"/v1/campaigns/{campaign['id']}").json()
    assert (shown["state"], shown["targeted"], shown["delivered"]) == ("completed", 30, 30)
    assert shown["pending"] == 0


def test_repeats_across_an_uploads_chunks_fold(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload is stored a chunk at a time: a person repeated in a later chunk is still
    one member (PostgreSQL inserts a chunk plainly first, and folds a refused one)."""
    monkeypatch.setattr(audience_routes, "_CHUNK", 10)
    people = sorted(unique("chunked") for _ in range(30))
    body = "\n".join(people + people[25:] + people[:12]) + "\n"  # repeats in later chunks
    made = api.call(
        "POST", "/v1/audiences", params={"name": "chunked"}, content=body,
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["size"] == 30
    campaign = _campaign(api, {"audience": made.json()["id"]})
    _expand(api)
    assert set(_inboxes(api, people).values()) == {1}
    shown = api.call("GET", f"/v1/campaigns/{campaign['id']}").json()
    assert (shown["targeted"], shown["delivered"]) == (30, 30)


def test_a_segment_selects_by_attribute_types(api: Api) -> None:
    prefix = unique("seg")
    users = _users(
        api, prefix, 40,
        plan=lambda n: "premium" if n % 2 else "free",
        country=lambda n: ["FR", "BE", "US", "DE"][n % 4],
        age_days=lambda n: n,
        interests=lambda n: ["music", "film"] if n % 5 == 0 else ["film"],
    )  # fmt: skip
    segment = {
        "plan": "premium",
        "country": {"in": ["FR", "BE"]},
        "age_days": {"gte": 10, "lt": 30},
        "all": [{"interests": "film"}],
    }
    campaign = _campaign(api, {"segment": segment})
    _expand(api)
    got = _inboxes(api, users)
    wanted = {u for n, u in enumerate(users) if n % 2 and n % 4 in (0, 1) and 10 <= n < 30}
    assert {u for u, n in got.items() if n} == wanted
    assert api.call("GET", f"/v1/campaigns/{campaign['id']}").json()["targeted"] >= len(wanted)


@pytest.mark.parametrize(
    ("segment", "field"),
    [
        ({"plan": {"between": [1, 2]}}, "audience.segment.plan.between"),
        ({"age": {"gte": "ten"}}, "audience.segment.age.gte"),
        ({"country": {"in": []}}, "audience.segment.country.in"),
        ({"Bad-Name": 1}, "audience.segment.Bad-Name"),
        ({"all": [{"x": {"exists": "yes"}}]}, "audience.segment.all[0].x.exists"),
    ],
)
def test_a_bad_segment_is_refused_naming_the_part(
    api: Api, segment: dict[str, Any], field: str
) -> None:
    kind = api.register_type(unique("promo_"), priority="P2")
    body = {"name": "x", "type": kind, "audience": {"segment": segment}, "payload": {}}
    refused = api.call("POST", "/v1/campaigns", json=body)
    assert refused.status_code == 400
    assert field in {e["field"] for e in refused.json()["errors"]}


def test_a_rollout_raised_from_10_to_100_repeats_no_one(api: Api) -> None:
    people = [unique("roll") for _ in range(200)]
    audience = api.call(
        "POST", "/v1/audiences", json={"user_ids": people}
    ).json()  # fmt: skip
    campaign = _campaign(api, {"audience": audience["id"]}, rollout_percent=10)
    _expand(api)
    first = _inboxes(api, people)
    assert 5 <= sum(first.values()) <= 45  # about a tenth
    raised = api.call("PATCH", f"/v1/campaigns/{campaign['id']}", json={"rollout_percent": 100})
    assert raised.status_code == 200, raised.text
    _expand(api)
    assert set(_inboxes(api, people).values()) == {1}
    lower = api.call("PATCH", f"/v1/campaigns/{campaign['id']}", json={"rollout_percent": 50})
    assert lower.status_code == 409


def test_pause_resume_and_cancel(api: Api) -> None:
    people = [unique("pr") for _ in range(30)]
    audience = api.call("POST", "/v1/audiences", json={"user_ids": people}).json()
    paused = _campaign(api, {"audience": audience["id"]})
    assert api.call("POST", f"/v1/campaigns/{paused['id']}/pause").json()["state"] == "paused"
    _expand(api)
    assert sum(_inboxes(api, people).values()) == 0
    again = api.call("POST", f"/v1/campaigns/{paused['id']}/pause")
    assert again.status_code == 409
    assert api.call("POST", f"/v1/campaigns/{paused['id']}/resume").json()["state"] == "running"
    _expand(api)
    assert set(_inboxes(api, people).values()) == {1}

    others = [unique("cx") for _ in range(30)]
    second = api.call("POST", "/v1/audiences", json={"user_ids": others}).json()
    cancelled = _campaign(api, {"audience": second["id"]})
    api.run(Expansion(api.runtime, "one-page").tick())  # queued, not yet evaluated
    shown = api.call("POST", f"/v1/campaigns/{cancelled['id']}/cancel").json()
    assert shown["state"] == "cancelled"
    api.clock.advance(2)
    api.drain()  # the campaign's kill switch stops what was queued
    assert sum(_inboxes(api, others).values()) == 0


def test_a_stale_holder_cannot_write(api: Api) -> None:
    people = [unique("st") for _ in range(5)]
    audience = api.call("POST", "/v1/audiences", json={"user_ids": people}).json()
    made = _campaign(api, {"audience": audience["id"]})
    store = api.runtime.stores.campaigns
    now = api.clock.now()
    (held,) = [c for c in api.run(store.claim("old", now, 1.0, 10)) if c.id == made["id"]]
    api.clock.advance(2)  # the lease ran out: someone else takes over
    (taken,) = [
        c for c in api.run(store.claim("new", api.clock.now(), 30.0, 10)) if c.id == made["id"]
    ]
    assert taken.token > held.token
    ready = dataclasses.replace(held, seq=1)
    refused = api.run(
        store.advance(
            ready, [], cursor="x", band=(0, 100), targeted=1, finished=False,
            paced_until=0.0, lease_until=now + 30, now=api.clock.now(),
        )
    )  # fmt: skip
    assert refused is False


def test_local_hours_across_zones_and_a_dst_change() -> None:
    def utc(text: str) -> float:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()

    now = utc("2026-03-28T20:00:00")  # Saturday evening; Paris springs forward tonight
    assert local_wait(now, "Europe/Paris", 9, 0) == utc("2026-03-29T07:00:00") - now
    assert local_wait(now, "Asia/Tokyo", 9, 0) == utc("2026-03-29T00:00:00") - now
    assert local_wait(now, "America/New_York", 9, 0) == utc("2026-03-29T13:00:00") - now
    assert local_wait(utc("2026-10-24T20:00:00"), "Europe/Paris", 9, 0) == 12 * 3600  # falls back


def test_local_time_campaigns_wait_for_each_zone(api: Api) -> None:
    prefix = unique("tz")
    zones = ["Europe/Paris", "Asia/Tokyo"]
    people = [f"{prefix}{n}" for n in range(4)]
    for n, user in enumerate(people):
        api.call("PUT", f"/v1/users/{user}", json={"timezone": zones[n % 2]})
    audience = api.call("POST", "/v1/audiences", json={"user_ids": people}).json()
    _campaign(api, {"audience": audience["id"]}, local_time="09:00", ttl_seconds=3600)
    _expand(api)
    assert sum(_inboxes(api, people).values()) == 0  # nobody's 09:00 yet
    for _ in range(48):
        api.clock.advance(1800)
        api.drain()
    assert set(_inboxes(api, people).values()) == {1}


def test_progress_and_listing(api: Api) -> None:
    campaigns = api.call("GET", "/v1/campaigns").json()["items"]
    assert all({"targeted", "delivered", "pending", "rate_per_s"} <= c.keys() for c in campaigns)


def test_progress_shows_suppressions_by_reason(api: Api) -> None:
    kind = api.register_type(unique("promo_"), priority="P2", default_enabled=True,
                             channels=["push", "in_app"])  # fmt: skip
    people = [unique("reader") for _ in range(12)]
    choices = (
        [{"types": {kind: {"enabled": False}}}] * 3
        + [{"enabled": False}] * 2
        + [{"quiet_hours": _quiet_now()}] * 4
    )
    for person, doc in zip(people, choices, strict=False):
        put = api.call("PUT", f"/v1/users/{person}/preferences", json=doc)
        assert put.status_code == 200, put.text
    made = api.call(
        "POST", "/v1/audiences", params={"name": "readers"}, content="\n".join(people),
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    campaign = _campaign(api, {"audience": made.json()["id"]}, type=kind)
    _expand(api)
    shown = api.call("GET", f"/v1/campaigns/{campaign['id']}").json()
    assert shown["suppressed_by"] == {
        "disabled_type": 3,
        "master_off": 2,
        "quiet_hours_dropped": 4,
    }
    assert (shown["suppressed"], shown["delivered"], shown["pending"]) == (9, 3, 0)
    status = api.call("GET", f"/v1/notifications/{shown['event_id']}").json()
    assert status["suppressed_by"] == shown["suppressed_by"]


def _quiet_now() -> dict[str, str]:
    """Quiet hours that began an hour ago (UTC) and end in two."""
    hour = dt.datetime.now(dt.UTC).hour
    return {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00",
            "timezone": "UTC"}  # fmt: skip


def test_expansion_waits_out_backpressure_inside_its_round(api: Api) -> None:
    """Evaluation behind: the holder waits for the queue to drain and goes on in the same
    round, so the queue is fed again the moment it can take more (not a round later)."""
    people = [unique("bp") for _ in range(6_000)]  # a page of 50 batches, then 10 more
    made = api.call(
        "POST", "/v1/audiences", params={"name": "crowd"}, content="\n".join(people),
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    campaign = _campaign(api, {"audience": made.json()["id"]})
    tight = dataclasses.replace(
        api.runtime, settings=dataclasses.replace(api.runtime.settings, fanout_pause_depth=10)
    )
    runner = build_runner(api.runtime, name="behind")

    async def expand_while_evaluating() -> tuple[int, bool]:
        expanding = asyncio.create_task(Expansion(tight, unique("scheduler-")).tick())
        await asyncio.sleep(0.3)
        waited = not expanding.done()  # 50 batches queued: the next page waits
        await runner.drain()
        return await expanding, waited

    try:
        written, waited = api.run(expand_while_evaluating())
    finally:
        api.run(runner.close())
    assert (written, waited) == (6_000, True)
    api.drain()
    shown = api.call("GET", f"/v1/campaigns/{campaign['id']}").json()
    assert (shown["state"], shown["delivered"]) == ("completed", 6_000)


def test_a_campaign_starts_when_it_is_created_not_a_tick_later(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a resting scheduler hears another process's commit: with a minute between
    its rounds, a campaign created to start now still starts at once."""
    if api.runtime.settings.store is not None:
        pytest.skip("PostgreSQL has no cheap commit probe: its schedulers look every tick")
    monkeypatch.setattr(scheduling, "TICK_S", 60.0)
    elsewhere = open_runtime(api.runtime.settings, clock=api.clock)  # another connection
    stop = asyncio.Event()

    async def start() -> asyncio.Task[None]:
        running = asyncio.create_task(scheduling.Scheduler(elsewhere, "elsewhere").run(stop))
        await asyncio.sleep(0.1)  # its first round found nothing: it rests
        return running

    running = api.run(start())
    try:
        people = [unique("soon") for _ in range(50)]
        audience = api.call("POST", "/v1/audiences", json={"user_ids": people}).json()
        made = _campaign(api, {"audience": audience["id"]})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            shown = api.call("GET", f"/v1/campaigns/{made['id']}").json()
            if shown["targeted"] == 50:
                break
            time.sleep(0.02)
        assert shown["targeted"] == 50, shown
    finally:
        stop.set()

        async def finish() -> None:
            await running
            await elsewhere.close()

        api.run(finish())
