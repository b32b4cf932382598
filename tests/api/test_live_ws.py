"""The WebSocket stream, ``/v1/me/ws``, over a real server on both backends: the same
messages as SSE, resume with ``since``, a device's own state heard by its other devices and
not itself, acknowledgements, and refusals with a reason."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from clarion.types import UserId
from tests.api.test_live import as_user, token_for
from tests.conftest import Api, unique
from tests.live_helpers import SseDevice


def ws_url(api: Api, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.url.replace("http://", "ws://") + "/v1/me/ws" + (f"?{query}" if query else "")


def receive(socket: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next ``count`` messages, heartbeats left out."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = json.loads(socket.recv(timeout=10))
        if message["type"] != "ping":
            got.append(message)
    return got


@pytest.fixture
def sockets() -> Iterator[contextlib.ExitStack]:
    """Sockets opened with ``sockets.enter_context(connect(...))`` close after the test."""
    with contextlib.ExitStack() as opened:
        yield opened


def test_a_websocket_gets_what_sse_gets_and_resumes_with_since(
    api: Api, sockets: contextlib.ExitStack
) -> None:
    like = api.register_type(unique("like_"))
    user = unique("viewer")
    token = token_for(api, user)
    headers = {"Authorization": f"Bearer {token}"}
    phone = sockets.enter_context(connect(ws_url(api), additional_headers=headers))
    ready = receive(phone, 1)[0]
    assert ready["type"] == "ready"
    api.call("POST", "/v1/notifications", json={"type": like, "target": user, "object": "p0"})
    api.drain()
    (entry,) = receive(phone, 1)
    assert (entry["type"], entry["data"]["item"]["object"]) == ("inbox", "p0")
    phone.close()
    api.call("POST", "/v1/notifications", json={"type": like, "target": user, "object": "p1"})
    api.drain()
    # Browsers cannot set headers on a WebSocket: the token comes as the first message.
    again = sockets.enter_context(connect(ws_url(api)))
    again.send(json.dumps({"type": "auth", "token": token, "since": entry["id"]}))
    caught = receive(again, 2)
    assert [m["type"] for m in caught] == ["ready", "inbox"]
    assert caught[1]["data"]["item"]["object"] == "p1"


def test_a_devices_own_state_reaches_its_other_devices_not_itself(
    api: Api, sockets: contextlib.ExitStack
) -> None:
    user = unique("viewer")
    token = token_for(api, user)
    headers = {"Authorization": f"Bearer {token}"}
    phone = sockets.enter_context(
        connect(ws_url(api, device_id="phone"), additional_headers=headers)
    )
    tv = SseDevice(api.url, token)
    try:
        receive(phone, 1), tv.wait_for(1)
        update = {"type": "state", "key": "playback:show_42", "value": {"s": 61}, "version": 4}
        phone.send(json.dumps(update))
        heard = tv.wait_for(2)[1]
        assert (heard["type"], heard["data"]["value"], heard["data"]["version"]) == (
            "state",
            {"s": 61},
            4,
        )
        phone.send(json.dumps({"type": "ack", "position": heard["id"]}))
        phone.send("not json")
        (error,) = receive(phone, 1)  # the error is the first thing it hears: not its own state
        assert (error["type"], error["data"]["reason"]) == ("error", "bad message")
    finally:
        tv.close()
    epoch, pos = heard["id"].split(":")
    assert api.run(api.runtime.stores.states.acked(UserId(user))) == {"phone": (epoch, int(pos))}
    snapshot = as_user(api, token, "GET", "/v1/me/state").json()["items"]
    assert [(s["key"], s["value"]) for s in snapshot] == [("playback:show_42", {"s": 61})]


def test_a_websocket_without_a_valid_token_is_closed_with_the_reason(api: Api) -> None:
    with connect(ws_url(api)) as socket:
        socket.send(json.dumps({"type": "hello"}))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert "auth" in closed.value.rcvd.reason
    with (
        connect(ws_url(api, ticket="not-a-ticket")) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
