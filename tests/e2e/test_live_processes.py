"""Live sync across real processes, on both backends: two API processes on two ports and a
worker. A person's two devices hold streams on different API processes and both get every
message, in order, whichever process the message came through; a device that reconnects
after its API process restarted catches up from where it was; a critical change that one
device does not acknowledge wakes that device with a background push; a device that stops
reading is cut off with a reason."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clarion import channels
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.fakes.suite import FakeProviders
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import Device
from clarion.supervisor import standard_workers
from clarion.types import UserId
from tests.live_helpers import SecondApi, SseDevice

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ANN = UserId("ann")
PHONE, TV = "a1" * 32, "b2" * 32


async def _prepare(settings: Settings, fakes: FakeProviders) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        apns = fakes.clarion_config()["apns"]
        await runtime.stores.providers.put("apns", stored(channels.parse("apns", apns)), now)
        await runtime.stores.types.put(TypeSpec("like", Priority.P1, (Channel.IN_APP,)), now)
        for name, token in (("phone", PHONE), ("tv", TV)):
            device = Device(ANN, name, Platform.IOS, token, registered_at=now, last_seen=now)
            await runtime.stores.devices.register(device, max_per_user=5)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.fixture
def clarion(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> Iterator[tuple[LocalClarion, SecondApi, httpx.Client]]:
    settings = Settings(
        db=tmp_path / "live.db", broker=broker_url, store=store_url, allow_private_targets=True
    )
    key = asyncio.run(_prepare(settings, fakes))
    with LocalClarion(settings, standard_workers(1, 0)) as local:
        second = SecondApi(local)
        second.start()
        api = httpx.Client(
            base_url=local.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        try:
            yield local, second, api
        finally:
            api.close()
            second.stop()


def _token(api: httpx.Client) -> str:
    return str(api.post(f"/v1/users/{ANN}/tokens", json={}).json()["token"])


def _like(api: httpx.Client, n: int) -> None:
    reply = api.post("/v1/notifications", json={"type": "like", "target": ANN, "object": f"p{n}"})
    assert reply.status_code == 202


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_devices_on_two_api_processes_get_every_message_in_order(
    clarion: tuple[LocalClarion, SecondApi, httpx.Client],
) -> None:
    local, second, api = clarion
    token = _token(api)
    phone, tv = SseDevice(local.url, token), SseDevice(second.url, token)
    try:
        for device in (phone, tv):
            device.wait_for(1)
        for n in range(5):
            _like(api, n)  # evaluated by the worker, recorded, announced to both APIs
        state = {"value": {"plan": "premium"}, "version": 1}
        with httpx.Client(base_url=second.url, headers=api.headers) as other:
            assert other.put(f"/v1/users/{ANN}/state/plan", json=state).status_code == 200
        seen = []
        for device in (phone, tv):
            got = device.wait_for(7)[1:]
            assert [int(m["id"].split(":")[1]) for m in got] == list(range(1, 7))  # in order
            assert sorted(m["type"] for m in got) == ["inbox"] * 5 + ["state"]
            objects = sorted(m["data"]["item"]["object"] for m in got if m["type"] == "inbox")
            assert objects == [f"p{n}" for n in range(5)]
            seen.append([(m["id"], m["type"]) for m in got])
        assert seen[0] == seen[1]  # the same stream on both processes
    finally:
        phone.close()
        tv.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_device_catches_up_after_its_api_process_restarts(
    clarion: tuple[LocalClarion, SecondApi, httpx.Client],
) -> None:
    _, second, api = clarion
    token = _token(api)
    tv = SseDevice(second.url, token)
    tv.wait_for(1)
    _like(api, 0)
    last = tv.wait_for(2)[1]["id"]
    tv.close()
    second.stop()
    for n in range(1, 4):  # while its API process is down
        _like(api, n)
    second.start()
    back = SseDevice(second.url, token, last_event_id=last)
    try:
        got = back.wait_for(4)
        assert [m["type"] for m in got] == ["ready", "inbox", "inbox", "inbox"]
        assert [m["data"]["item"]["object"] for m in got[1:]] == ["p1", "p2", "p3"]
    finally:
        back.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_critical_change_wakes_the_device_that_did_not_acknowledge(
    clarion: tuple[LocalClarion, SecondApi, httpx.Client], fakes: FakeProviders
) -> None:
    local, second, api = clarion
    token = _token(api)
    phone = SseDevice(local.url, token, device_id="phone")
    tv = SseDevice(second.url, token, device_id="tv")  # connected, but never acknowledges
    try:
        phone.wait_for(1)
        tv.wait_for(1)
        started = time.monotonic()
        change = {"value": {"can_stream": False}, "version": 7, "priority": "P0"}
        assert api.put(f"/v1/users/{ANN}/state/entitlements", json=change).json()["applied"]
        for device in (phone, tv):
            message = device.wait_for(2)[1]
            assert (message["type"], message["data"]["critical"]) == ("state", True)
        assert time.monotonic() - started < 1.0  # every connected device within a second
        ack = {"position": phone.messages[1]["id"], "device_id": "phone"}
        assert (
            api.post(
                "/v1/me/acks", json=ack, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 204
        )
        deadline = time.monotonic() + 30
        while not fakes.apns.received.all():
            assert time.monotonic() < deadline, "no background push"
            time.sleep(0.1)
        time.sleep(1.0)
        (woken,) = fakes.apns.received.all()
        assert woken["token"] == TV
        assert woken["headers"]["apns-push-type"] == "background"
        assert woken["payload"]["aps"] == {"content-available": 1}
    finally:
        phone.close()
        tv.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_device_that_stops_reading_is_cut_off_with_a_reason(
    clarion: tuple[LocalClarion, SecondApi, httpx.Client],
) -> None:
    local, _, api = clarion
    token = _token(api)
    sock = socket.create_connection(("127.0.0.1", local.port))
    request = f"GET /v1/me/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    sock.sendall(request.encode())
    time.sleep(0.5)
    big = "x" * 8000
    for start in range(0, 3000, 500):  # far more than a stalled reader's queue holds
        updates = [
            {"user_id": ANN, "key": f"k{n}", "value": big, "version": 1}
            for n in range(start, start + 500)
        ]
        assert api.post("/v1/state", json={"updates": updates}).status_code == 200
    time.sleep(1.0)
    sock.settimeout(10)
    received = b""
    with contextlib.suppress(TimeoutError, OSError):
        while (chunk := sock.recv(1 << 20)) and b"\r\n0\r\n\r\n" not in received[-16:] + chunk:
            received += chunk
        received += chunk
    sock.close()
    assert b"event: error" in received
    assert b"too slow" in received
