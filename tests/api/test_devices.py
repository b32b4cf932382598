"""The device registry over HTTP: every platform, masking, the per-user limit, token moves,
and the private-network guard on user-supplied endpoints (this module's server keeps it on)."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.channels import signing
from tests.conftest import Api, unique

IOS = "a1b2" * 16


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    return {"max_devices_per_user": 4}


def register(api: Api, user: str, **body: Any) -> Any:
    return api.call("POST", f"/v1/users/{user}/devices", json=body)


def test_each_platform_registers_and_tokens_are_shown_masked(api: Api) -> None:
    user = unique("ann")
    subscription = {
        "endpoint": "https://push.example.com/send/abc123",
        "keys": {"p256dh": "B" * 87, "auth": "A" * 22},
    }
    assert register(api, user, platform="ios", token=IOS, device_id="phone").status_code == 201
    assert register(api, user, platform="android", token="fcm:" + "x" * 40).status_code == 201
    assert register(api, user, platform="web", subscription=subscription).status_code == 201
    hook = register(api, user, platform="webhook", url="https://hooks.example.com/in")
    assert hook.status_code == 201
    assert signing.is_secret(hook.json()["secret"])  # generated and shown this once
    listed = api.call("GET", f"/v1/users/{user}/devices").json()["items"]
    assert sorted(d["platform"] for d in listed) == ["android", "ios", "web", "webhook"]
    assert all(d["secret"] is None for d in listed)
    ios = next(d for d in listed if d["device_id"] == "phone")
    assert ios["token"] == f"{IOS[:6]}…{IOS[-4:]}"
    assert ios["state"] == "active"
    assert IOS not in api.call("GET", f"/v1/users/{user}/devices").text


def test_the_oldest_device_makes_room_past_the_limit(api: Api) -> None:
    user = unique("ann")
    for n in range(4):
        register(api, user, platform="android", token=f"token-{n:04d}", device_id=f"d{n}")
        api.clock.advance(1)
    response = register(api, user, platform="android", token="token-0004", device_id="d4")
    assert response.json()["replaced"] == ["d0"]
    listed = api.call("GET", f"/v1/users/{user}/devices").json()["items"]
    assert sorted(d["device_id"] for d in listed) == ["d1", "d2", "d3", "d4"]


def test_a_token_moves_to_whoever_registers_it_last(api: Api) -> None:
    first, second = unique("ann"), unique("bob")
    register(api, first, platform="ios", token=IOS, device_id="shared")
    register(api, second, platform="ios", token=IOS, device_id="shared")
    assert api.call("GET", f"/v1/users/{first}/devices").json()["items"] == []
    assert len(api.call("GET", f"/v1/users/{second}/devices").json()["items"]) == 1


def test_delete_forgets_a_device_and_says_when_there_was_none(api: Api) -> None:
    user = unique("ann")
    register(api, user, platform="android", token="token-gone", device_id="d1")
    assert api.call("DELETE", f"/v1/users/{user}/devices/d1").status_code == 204
    assert api.call("DELETE", f"/v1/users/{user}/devices/d1").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"platform": "ios"}, "token", "required for platform ios"),
        ({"platform": "ios", "token": "not-hex-at-all"}, "token", "hexadecimal"),
        ({"platform": "android", "token": "t" * 20, "url": "https://x"}, "url", "not used"),
        ({"platform": "android", "token": "t" * 20, "secret": "whsec_x"}, "secret", "only"),
        ({"platform": "webhook", "url": "http://127.0.0.1:9/in"}, "url", "refused"),
        ({"platform": "webhook", "url": "https://10.0.0.8/in"}, "url", "private address"),
        ({"platform": "webhook", "url": "https://metadata.internal/"}, "url", "private host"),
        (
            {"platform": "webhook", "url": "https://h.example.com", "secret": "x"},
            "secret",
            "whsec_",
        ),
        ({"platform": "fax", "token": "t" * 20}, "platform", ""),
    ],
)
def test_bad_registrations_name_the_field(
    api: Api, body: dict[str, Any], field: str, reason: str
) -> None:
    response = register(api, unique("ann"), **body)
    assert response.status_code == 400
    errors = {e["field"]: e["reason"] for e in response.json()["errors"]}
    assert field in errors
    assert reason in errors[field]


def test_a_web_push_endpoint_on_a_private_network_is_refused(api: Api) -> None:
    subscription = {
        "endpoint": "https://192.168.1.10/push",
        "keys": {"p256dh": "B" * 87, "auth": "A" * 22},
    }
    response = register(api, unique("ann"), platform="web", subscription=subscription)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "subscription.endpoint"
