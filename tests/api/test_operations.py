"""Operators over HTTP: dead letters, blocked senders, the load level and provider health."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from clarion.broker import Outbound
from tests.conftest import Api, unique


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    return {"load_shed_p2": 3, "load_shed_p1": 6, "sender_strikes": 2}


def _bury(api: Api, body: bytes, error: str) -> str:
    api.run(api.runtime.broker.publish([Outbound("evaluate.p1", body).as_dead_letter(error)]))
    (newest, *_) = api.run(api.runtime.broker.dead_letters(limit=1))
    return newest.id


def test_dead_letters_are_listed_shown_replayed_and_purged(api: Api) -> None:
    api.run(api.runtime.broker.purge())
    first = _bury(api, b'{"batches": []}', "ValueError: boom")
    second = _bury(api, b"not json", "undecodable")
    listed = api.call("GET", "/v1/dead-letters").json()["items"]
    assert [d["id"] for d in listed] == [second, first]
    shown = api.call("GET", f"/v1/dead-letters/{first}").json()
    assert (shown["error"], shown["body"]) == ("ValueError: boom", {"batches": []})
    assert api.call("GET", f"/v1/dead-letters/{second}").json()["body"] == "not json"
    depth = api.run(api.runtime.broker.depth("evaluate.p1"))
    assert api.call("POST", f"/v1/dead-letters/{first}/replay").status_code == 200
    assert api.run(api.runtime.broker.depth("evaluate.p1")) == depth + 1
    assert api.call("POST", f"/v1/dead-letters/{first}/replay").status_code == 404
    assert api.call("DELETE", f"/v1/dead-letters/{second}").status_code == 204
    assert api.call("DELETE", f"/v1/dead-letters/{second}").status_code == 404
    _bury(api, b"{}", "again")
    assert api.call("DELETE", "/v1/dead-letters").json() == {"purged": 1}
    assert api.call("GET", "/v1/dead-letters", key=api.sender_key()).status_code == 403


def test_a_blocked_sender_is_refused_until_unblocked(api: Api) -> None:
    sender = unique("buggy")
    key = api.sender_key(sender)
    kind = api.register_type(priority="P0")
    for n in range(2):
        api.run(
            api.runtime.stores.senders.strike(
                sender, f"boom {n}", api.clock.now(), limit=2, window_s=60
            )
        )
    api.clock.advance(2)  # past the API's one-second cache
    body = {"type": kind, "target": "u1"}
    refused = api.call("POST", "/v1/notifications", key=key, json=body)
    assert refused.status_code == 403
    assert "unblock" in refused.json()["message"]
    blocked = api.call("GET", "/v1/senders/blocked").json()["items"]
    assert sender in [b["sender"] for b in blocked]
    assert api.call("POST", f"/v1/senders/{sender}/unblock").status_code == 204
    assert api.call("POST", f"/v1/senders/{sender}/unblock").status_code == 404
    api.clock.advance(2)
    assert api.call("POST", "/v1/notifications", key=key, json=body).status_code == 202


def test_ingest_sheds_p2_then_p1_and_never_p0(api: Api) -> None:
    api.drain()
    bulk, social, otp = (api.register_type(priority=p) for p in ("P2", "P1", "P0"))

    def post(kind: str) -> int:
        return api.call(
            "POST", "/v1/notifications", json={"type": kind, "target": unique("u")}
        ).status_code

    for _ in range(3):
        assert post(bulk) == 202  # queued, not drained: the backlog grows
    api.clock.advance(2)
    assert api.call("GET", "/v1/load").json()["level"] == "shed_p2"
    shed = api.call("POST", "/v1/notifications", json={"type": bulk, "target": "x"})
    assert shed.status_code == 429
    assert shed.headers["retry-after"] == "5"
    assert post(social) == 202
    for _ in range(3):
        post(social)
    api.clock.advance(2)
    load = api.call("GET", "/v1/load").json()
    assert (load["level"], load["by_priority"]["P1"]) == ("shed_p1", 4)
    assert post(social) == 429
    assert post(otp) == 202  # P0 always gets in
    api.drain()
    api.clock.advance(2)
    assert api.call("GET", "/v1/load").json()["level"] == "normal"
    assert post(bulk) == 202


def test_load_shows_what_is_held_for_later_apart_from_the_backlog(api: Api) -> None:
    api.drain()
    kind = api.register_type(priority="P1")
    person = unique("sleeper")
    hour = dt.datetime.now(dt.UTC).hour
    quiet = {"start": f"{(hour - 1) % 24:02d}:00", "end": f"{(hour + 2) % 24:02d}:00",
             "timezone": "UTC"}  # fmt: skip
    put = api.call("PUT", f"/v1/users/{person}/preferences", json={"quiet_hours": quiet})
    assert put.status_code == 200, put.text
    assert api.call("POST", "/v1/notifications", json={"type": kind, "target": person}).is_success
    api.drain()
    load = api.call("GET", "/v1/load").json()
    assert load["held"] == {"evaluate.p1": 1}  # until their quiet hours end
    assert load["backlog"] == 0


def test_provider_health_is_visible(api: Api) -> None:
    api.call(
        "PUT",
        "/v1/providers/sms_twilio",
        json={"account_sid": "AC" + "0" * 32, "auth_token": "t", "sender": "+15550000000"},
    )
    health = api.call("GET", "/v1/providers/sms_twilio").json()["health"]
    assert (health["state"], health["window_sent"], health["next_probe_at"]) == ("closed", 0, None)
