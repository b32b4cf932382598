"""The preference record over HTTP: every field, PUT / PATCH / GET, refusals, audit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, unique

FULL = {
    "enabled": True,
    "types": {"like": {"enabled": False}, "comment": {"channels": ["push", "in_app"]}},
    "channels": {"email": {"enabled": True, "digest": "daily"}, "sms": {"enabled": False}},
    "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "America/New_York"},
    "frequency_caps": {"per_hour": 10, "per_day": 50},
}


@pytest.fixture(scope="module")
def types(api: Api) -> dict[str, str]:
    return {
        "like": api.register_type("like", priority="P1"),
        "comment": api.register_type("comment", priority="P1", channels=["push", "in_app"]),
        "promo": api.register_type("promo", priority="P2"),
        "otp": api.register_type("otp", priority="P0", mandatory=True),
    }


def prefs_url(user: str) -> str:
    return f"/v1/users/{user}/preferences"


def test_default_preferences_show_every_type_with_its_default(
    api: Api, types: dict[str, str]
) -> None:
    user = unique("u")
    body = api.call("GET", prefs_url(user)).json()
    assert (body["version"], body["enabled"], body["types"], body["quiet_hours"]) == (
        0,
        True,
        {},
        None,
    )
    effective = body["effective_types"]
    assert effective["like"] == {
        "enabled": True,
        "channels": ["in_app"],
        "mandatory": False,
        "available": ["in_app"],
        "description": "",
        "category": "Activity",
    }
    assert effective["promo"]["enabled"] is False  # P2 marketing: off unless chosen
    assert effective["promo"]["category"] == "News and offers"
    otp = effective["otp"]
    assert (otp["enabled"], otp["mandatory"], otp["category"]) == (
        True,
        True,
        "Account and security",
    )


def test_put_stores_the_whole_record_and_get_returns_it(api: Api, types: dict[str, str]) -> None:
    user = unique("u")
    put = api.call("PUT", prefs_url(user), json=FULL)
    assert put.status_code == 200, put.text
    body = api.call("GET", prefs_url(user)).json()
    assert body["version"] == 1
    assert body["quiet_hours"] == FULL["quiet_hours"]
    assert body["frequency_caps"] == FULL["frequency_caps"]
    assert body["channels"]["email"] == {
        "enabled": True,
        "digest": "daily",
        "digest_at": None,  # 08:00
        "digest_day": None,  # Monday (weekly)
    }
    assert body["effective_types"]["like"]["enabled"] is False
    assert body["effective_types"]["comment"]["channels"] == ["push", "in_app"]
    again = api.call("PUT", prefs_url(user), json=body)  # what GET returned goes back in
    assert again.status_code == 200
    assert again.json()["version"] == 2


def test_patch_merges_into_the_stored_record(api: Api, types: dict[str, str]) -> None:
    user = unique("u")
    api.call("PUT", prefs_url(user), json=FULL)
    patch = {
        "types": {"like": {"enabled": True}},
        "quiet_hours": None,
        "frequency_caps": {"per_hour": 3},
    }
    body = api.call("PATCH", prefs_url(user), json=patch).json()
    assert body["types"]["like"] == {"enabled": True, "channels": None}
    assert body["types"]["comment"]["channels"] == ["push", "in_app"]  # untouched
    assert body["quiet_hours"] is None
    assert body["frequency_caps"] == {"per_hour": 3, "per_day": 50}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "8am"}}, "quiet_hours.end"),
        (
            {"quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Mars/Base"}},
            "quiet_hours.timezone",
        ),
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours"),
        ({"frequency_caps": {"per_hour": 0}}, "frequency_caps.per_hour"),
        ({"channels": {"pigeon": {"enabled": True}}}, "channels.pigeon.[key]"),
        ({"channels": {"email": {"digest": "hourly"}}}, "channels.email.digest"),
        ({"channels": {"email": {"digest_at": "25:00"}}}, "channels.email.digest_at"),
        ({"channels": {"email": {"digest_day": "someday"}}}, "channels.email.digest_day"),
        ({"types": {"like": {"channels": ["fax"]}}}, "types.like.channels[0]"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_preferences_are_refused_naming_the_field(
    api: Api, doc: dict[str, Any], field: str
) -> None:
    user = unique("u")
    for method in ("PUT", "PATCH"):
        response = api.call(method, prefs_url(user), json=doc)
        assert response.status_code == 400, response.text
        assert field in {e["field"] for e in response.json()["errors"]}
    assert api.call("GET", prefs_url(user)).json()["version"] == 0  # nothing half-applied


def test_mandatory_types_cannot_be_disabled(api: Api, types: dict[str, str]) -> None:
    user = unique("u")
    for method in ("PUT", "PATCH"):
        response = api.call(method, prefs_url(user), json={"types": {"otp": {"enabled": False}}})
        assert response.status_code == 409
        assert "'otp' is mandatory" in response.json()["message"]
    assert api.call("GET", prefs_url(user)).json()["version"] == 0


def test_every_change_is_audited_with_who_and_before_after(api: Api, types: dict[str, str]) -> None:
    user = unique("u")
    api.call("PUT", prefs_url(user), json={"enabled": False})
    api.call("PATCH", prefs_url(user), json={"enabled": True})
    history = api.call("GET", f"{prefs_url(user)}/history").json()["items"]
    assert [h["after"]["enabled"] for h in history] == [True, False]  # newest first
    assert history[1]["before"] is None
    assert history[0]["before"]["enabled"] is False
    assert history[0]["actor"].startswith("admin (key ")
    assert history[0]["at"].endswith("Z")


def test_kill_switches_create_list_and_lift(api: Api, types: dict[str, str]) -> None:
    created = api.call("POST", "/v1/kill-switches", json={"type": "promo", "reason": "wrong copy"})
    assert created.status_code == 201
    switch = created.json()
    assert (switch["kind"], switch["value"], switch["reason"]) == ("type", "promo", "wrong copy")
    assert switch["created_by"].startswith("admin")
    listed = api.call("GET", "/v1/kill-switches").json()["items"]
    assert switch["id"] in {s["id"] for s in listed}
    lifted = api.call("DELETE", f"/v1/kill-switches/{switch['id']}")
    assert lifted.json()["lifted_at"] is not None
    assert switch["id"] not in {
        s["id"] for s in api.call("GET", "/v1/kill-switches").json()["items"]
    }
    everything = api.call("GET", "/v1/kill-switches", params={"all": "true"}).json()["items"]
    assert switch["id"] in {s["id"] for s in everything}
    assert api.call("DELETE", f"/v1/kill-switches/{switch['id']}").status_code == 404


@pytest.mark.parametrize(
    "body", [{}, {"type": "a", "sender": "b"}, {"channel": "pigeon"}, {"type": "has space"}]
)
def test_kill_switch_needs_exactly_one_valid_target(api: Api, body: dict[str, Any]) -> None:
    assert api.call("POST", "/v1/kill-switches", json=body).status_code == 400


def test_kill_switches_need_admin(api: Api) -> None:
    key = api.sender_key()
    assert api.call("POST", "/v1/kill-switches", key=key, json={"type": "x"}).status_code == 403
