"""End-user access and live sync over a real HTTP server, on both backends: user tokens and
tickets, the SSE stream with replay and resets, keyed state, and that a token reaches only
its own person's data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from clarion.api.ingest import IngestFront
from clarion.keyring import SigningKeys
from clarion.live import tokens
from clarion.types import UserId
from tests.conftest import Api, unique
from tests.live_helpers import SseDevice


def token_for(api: Api, user: str) -> str:
    answer = api.call("POST", f"/v1/users/{user}/tokens", json={})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def as_user(api: Api, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return api.client.request(method, path, headers=headers, **kw)


def Listener(api: Api, token: str, **params: str) -> SseDevice:
    """A device's SSE stream on this module's API."""
    return SseDevice(api.url, token, **params)


@pytest.fixture
def listeners() -> Iterator[list[SseDevice]]:
    opened: list[SseDevice] = []
    yield opened
    for listener in opened:
        listener.close()


def test_two_devices_get_every_message_in_order(api: Api, listeners: list[SseDevice]) -> None:
    like = api.register_type(unique("like_"))
    user = unique("viewer")
    token = token_for(api, user)
    phone, tv = Listener(api, token), Listener(api, token)
    listeners += [phone, tv]
    for device in (phone, tv):
        assert device.wait_for(1)[0]["type"] == "ready"
    front = api.server.server.config.app
    assert isinstance(front, IngestFront)
    hub = front.api.state.services.hub
    # Under the server Clarion runs, the hub writes each message to the socket itself
    # (``api.chunks``): if uvicorn changes what that reaches for, this says so.
    assert [c.sink is not None for c in hub.connections_of(UserId(user))] == [True, True]
    for n in range(3):
        api.call(
            "POST", "/v1/notifications", json={"type": like, "target": user, "object": f"p{n}"}
        )
        api.drain()
    for device in (phone, tv):
        got = device.wait_for(4)[1:]
        assert [m["type"] for m in got] == ["inbox"] * 3
        assert [m["data"]["item"]["object"] for m in got] == ["p0", "p1", "p2"]
        assert [int(m["id"].split(":")[1]) for m in got] == [1, 2, 3]
    read = as_user(api, token, "POST", "/v1/me/inbox/read", json={"all": True})
    assert read.json()["unread_count"] == 0
    for device in (phone, tv):  # read on one: the other's badge clears
        last = device.wait_for(5)[4]
        assert (last["type"], last["data"]["unread_count"]) == ("read", 0)


def test_a_device_resumes_from_its_last_event_and_resets_when_too_far(
    api: Api, listeners: list[SseDevice]
) -> None:
    like = api.register_type(unique("like_"))
    user = unique("viewer")
    token = token_for(api, user)
    first = Listener(api, token)
    listeners.append(first)
    ready = first.wait_for(1)[0]
    api.call("POST", "/v1/notifications", json={"type": like, "target": user, "object": "a"})
    api.drain()
    seen = first.wait_for(2)[1]
    first.close()
    for n in range(2):  # missed while away
        api.call(
            "POST", "/v1/notifications", json={"type": like, "target": user, "object": f"b{n}"}
        )
        api.drain()
    again = Listener(api, token, last_event_id=seen["id"])
    listeners.append(again)
    caught = again.wait_for(3)
    assert [m["type"] for m in caught] == ["ready", "inbox", "inbox"]
    assert [m["data"]["item"]["object"] for m in caught[1:]] == ["b0", "b1"]
    stale = Listener(api, token, since="ffffffff:3")  # an epoch that is not this stream's
    listeners.append(stale)
    assert [m["type"] for m in stale.wait_for(2)] == ["ready", "reset"]
    assert ready["id"].split(":")[0] == seen["id"].split(":")[0]


def test_a_device_streaming_from_its_inbox_page_position_misses_nothing_in_between(
    api: Api, listeners: list[SseDevice]
) -> None:
    like = api.register_type(unique("like_"))
    user = unique("viewer")
    token = token_for(api, user)
    assert as_user(api, token, "GET", "/v1/me/inbox").json()["position"].endswith(":0")
    api.call("POST", "/v1/notifications", json={"type": like, "target": user, "object": "a"})
    api.drain()
    page = as_user(api, token, "GET", "/v1/me/inbox").json()
    assert [i["object"] for i in page["items"]] == ["a"]
    assert page["position"].endswith(":1")  # where the stream is now, not when it started
    api.call("POST", "/v1/notifications", json={"type": like, "target": user, "object": "b"})
    api.drain()  # after the page was read, before the stream opens
    device = Listener(api, token, since=page["position"])
    listeners.append(device)
    caught = device.wait_for(2)
    assert [m["type"] for m in caught] == ["ready", "inbox"]
    assert caught[1]["data"]["item"]["object"] == "b"
    state = as_user(api, token, "GET", "/v1/me/state").json()
    assert state["position"] == caught[1]["id"]


def test_state_is_latest_wins_and_reaches_every_device(
    api: Api, listeners: list[SseDevice]
) -> None:
    user = unique("viewer")
    token = token_for(api, user)
    tv = Listener(api, token)
    listeners.append(tv)
    tv.wait_for(1)
    put = lambda v, pos: api.call(  # noqa: E731
        "PUT",
        f"/v1/users/{user}/state/playback:show_42",
        json={"value": {"position_s": pos}, "version": v},
    )
    assert put(2, 120).json()["applied"] is True
    assert put(1, 60).json()["applied"] is False  # older: ignored
    assert put(3, 180).json()["applied"] is True
    got = tv.wait_for(3)[1:]
    assert [m["data"]["value"]["position_s"] for m in got] == [120, 180]
    snapshot = as_user(api, token, "GET", "/v1/me/state").json()
    assert [(i["key"], i["value"], i["version"]) for i in snapshot["items"]] == [
        ("playback:show_42", {"position_s": 180}, 3)
    ]


def test_a_device_that_hangs_up_is_let_go(api: Api, listeners: list[SseDevice]) -> None:
    user = UserId(unique("viewer"))
    phone = Listener(api, token_for(api, user))
    listeners.append(phone)
    phone.wait_for(1)
    front = api.server.server.config.app
    assert isinstance(front, IngestFront)
    hub = front.api.state.services.hub
    assert user in hub.people()
    phone.close()
    deadline = time.monotonic() + 10
    while user in hub.people():  # noticed at once: nothing had to be written to find out
        assert time.monotonic() < deadline, "the hung-up stream is still held"
        time.sleep(0.02)


def test_a_state_batch_applies_newer_versions_and_names_every_bad_field(
    api: Api, listeners: list[SseDevice]
) -> None:
    ann, bob = unique("viewer"), unique("viewer")
    tv = Listener(api, token_for(api, ann))
    listeners.append(tv)
    tv.wait_for(1)
    api.call("PUT", f"/v1/users/{bob}/state/plan", json={"value": "gold", "version": 5})
    updates = [
        {"user_id": ann, "key": "playback:show_42", "value": {"position_s": 60}, "version": 1},
        {"user_id": bob, "key": "plan", "value": "basic", "version": 4},  # older: ignored
    ]
    answer = api.call("POST", "/v1/state", json={"updates": updates})
    assert (answer.status_code, answer.json()) == (200, {"applied": 1, "ignored": 1})
    assert tv.wait_for(2)[1]["data"]["value"] == {"position_s": 60}

    bad = [
        {"user_id": ann, "key": "k", "value": 1, "version": 0},
        {"user_id": ann, "key": "k2", "value": "x" * 17_000, "version": 1},
    ]
    refused = api.call("POST", "/v1/state", json={"updates": bad[:1] + updates})
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["updates[0].version"]
    too_big = api.call("POST", "/v1/state", json={"updates": bad[1:]})
    assert too_big.json()["errors"][0]["field"] == "updates[0].value"
    assert api.call("POST", "/v1/state", content=b"{not json").status_code == 400
    assert api.call("POST", "/v1/state", key="nope", json={"updates": []}).status_code == 401
    snapshot = as_user(api, token_for(api, bob), "GET", "/v1/me/state").json()["items"]
    assert [(i["value"], i["version"]) for i in snapshot] == [("gold", 5)]  # nothing half-done


def test_the_live_channel_reaches_listening_devices_latest_wins(
    api: Api, listeners: list[SseDevice]
) -> None:
    typing = api.register_type(unique("typing_"), channels=["live"], ttl_seconds=60)
    here, away = unique("viewer"), unique("viewer")
    token = token_for(api, here)
    device = Listener(api, token)
    listeners.append(device)
    ready = device.wait_for(1)[0]

    def send(n: int) -> str:
        event = {
            "type": typing,
            "recipients": [here, away],
            "object": f"chat_1:{n}",
            "collapse_key": "typing:chat_1",
            "payload": {"title": "Ann is typing"},
        }
        return str(api.call("POST", "/v1/notifications", json=event).json()["event_id"])

    def trail(user: str, event_id: str) -> list[tuple[str, str, str | None]]:
        answer = api.call("GET", f"/v1/users/{user}/deliveries", params={"event_id": event_id})
        return [(d["channel"], d["outcome"], d["reason"]) for d in answer.json()["items"]]

    first = send(0)
    api.drain()
    got = device.wait_for(2)[1]
    assert (got["type"], got["data"]["object"]) == ("live", "chat_1:0")
    assert (got["data"]["title"], got["data"]["collapse_key"]) == ("Ann is typing", "typing:chat_1")
    assert trail(here, first) == [("live", "delivered", None)]
    assert trail(away, first) == [("live", "suppressed", "no_channel: no device listening")]
    send(1), send(2)
    api.drain()
    deadline = time.monotonic() + 10
    while device.messages[-1]["data"].get("object") != "chat_1:2":
        assert time.monotonic() < deadline, device.messages
        time.sleep(0.01)
    assert {m["type"] for m in device.messages[1:]} == {"live"}
    # Coming back from before all three, the device hears only the newest of the key.
    again = Listener(api, token, last_event_id=ready["id"])
    listeners.append(again)
    again.wait_for(2)
    time.sleep(0.2)
    assert [(m["type"], m["data"].get("object")) for m in again.messages] == [
        ("ready", None),
        ("live", "chat_1:2"),
    ]
    switch = api.call("POST", "/v1/kill-switches", json={"channel": "live"}).json()["id"]
    try:
        killed = send(3)
        api.drain()
        assert trail(here, killed) == [("all", "suppressed", "killed")]
    finally:
        api.call("DELETE", f"/v1/kill-switches/{switch}")


def test_tickets_are_single_use(api: Api) -> None:
    user = unique("viewer")
    token = token_for(api, user)
    ticket = as_user(api, token, "POST", "/v1/me/stream-tickets").json()["ticket"]
    with api.client.stream("GET", "/v1/me/stream", params={"ticket": ticket}) as first:
        assert first.status_code == 200
    again = api.client.get("/v1/me/stream", params={"ticket": ticket})
    assert again.status_code == 401


def test_a_token_reads_only_its_own_person(api: Api) -> None:
    like = api.register_type(unique("like_"))
    ann, bob = unique("ann"), unique("bob")
    api.call("POST", "/v1/notifications", json={"type": like, "target": ann, "object": "x"})
    api.drain()
    bobs = token_for(api, bob)
    assert as_user(api, bobs, "GET", "/v1/me/inbox").json()["items"] == []
    for method, path in (
        ("GET", f"/v1/users/{ann}/inbox"),
        ("GET", f"/v1/users/{ann}/preferences"),
    ):
        assert as_user(api, bobs, method, path).status_code == 401  # not an API key


def test_expired_and_forged_tokens_are_refused(api: Api) -> None:
    user = unique("viewer")
    token = token_for(api, user)
    assert as_user(api, token, "GET", "/v1/me/inbox").status_code == 200
    forged = tokens.mint(UserId(user), SigningKeys.parse("k1:" + "f" * 32), api.clock.now())
    assert as_user(api, forged, "GET", "/v1/me/inbox").status_code == 401
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert as_user(api, tampered, "GET", "/v1/me/inbox").status_code == 401
    api.clock.advance(tokens.TOKEN_LIFETIME_S + 1)
    expired = as_user(api, token, "GET", "/v1/me/inbox")
    assert (expired.status_code, expired.json()["error"]) == (401, "unauthenticated")


def test_a_device_too_far_behind_the_kept_log_is_told_to_reset(
    api: Api, listeners: list[SseDevice]
) -> None:
    user = unique("viewer")
    token = token_for(api, user)
    first = Listener(api, token)
    listeners.append(first)
    start = first.wait_for(1)[0]["id"]
    first.close()
    for batch in range(3):  # 1,500 messages while it is away
        updates = [
            {"user_id": user, "key": f"k{n}", "value": n, "version": 1}
            for n in range(batch * 500, batch * 500 + 500)
        ]
        assert api.call("POST", "/v1/state", json={"updates": updates}).status_code == 200
    pruned = api.run(api.runtime.stores.streams.prune(api.clock.now() + 25 * 3600))
    assert pruned == 500  # a day on: only the last 1,000 are kept
    back = Listener(api, token, last_event_id=start)
    listeners.append(back)
    ready, reset = back.wait_for(2)[:2]
    assert reset["type"] == "reset"
    assert "too far behind" in reset["data"]["reason"]
    assert reset["id"] == ready["id"]  # resume from the head once refetched


def test_every_me_route_serves_only_the_tokens_person(api: Api) -> None:
    like = api.register_type(unique("like_"))
    ann, bob = unique("ann"), unique("bob")
    api.call("POST", "/v1/notifications", json={"type": like, "target": ann, "object": "x"})
    api.drain()
    api.call("PUT", f"/v1/users/{ann}/preferences", json={"enabled": False})
    device = {"platform": "android", "token": "ann-token", "device_id": "ann-phone"}
    assert api.call("POST", f"/v1/users/{ann}/devices", json=device).status_code == 201
    api.call("PUT", f"/v1/users/{ann}/state/plan", json={"value": "gold", "version": 1})
    bobs = token_for(api, bob)

    def mine(method: str, path: str, **kw: Any) -> httpx.Response:
        return as_user(api, bobs, method, path, **kw)

    inbox = mine("GET", "/v1/me/inbox").json()
    assert inbox.get("items") == [], inbox
    assert mine("GET", "/v1/me/preferences").json()["enabled"] is True
    assert mine("GET", "/v1/me/devices").json()["items"] == []
    assert mine("GET", "/v1/me/state").json()["items"] == []
    assert mine("DELETE", "/v1/me/devices/ann-phone").status_code == 404
    assert mine("POST", "/v1/me/inbox/read", json={"all": True}).json()["updated"] == 0
    assert mine("PATCH", "/v1/me/preferences", json={"enabled": False}).status_code == 200
    ack = {"position": "x:1", "device_id": "ann-phone"}
    assert mine("POST", "/v1/me/acks", json=ack).status_code == 204
    ticket = mine("POST", "/v1/me/stream-tickets").json()["ticket"]
    assert api.run(api.runtime.stores.tickets.redeem(tokens.ticket_hash(ticket), 0.0)) == bob
    anns = api.call("GET", f"/v1/users/{ann}/inbox").json()
    assert anns["unread_count"] == 1  # untouched by bob
    assert api.call("GET", f"/v1/users/{ann}/preferences").json()["enabled"] is False
    assert api.run(api.runtime.stores.states.acked(UserId(ann))) == {}
    assert len(api.call("GET", f"/v1/users/{ann}/devices").json()["items"]) == 1
