"""Scheduled sends on both backends: ``send_at`` holds an event until its time (its TTL
counting from then), ``DELETE /v1/notifications/{id}`` calls it off before then, and
what cannot be scheduled is refused naming the field."""

from __future__ import annotations

import datetime as dt

from tests.conftest import Api, unique


def _at(api: Api, seconds: float) -> str:
    return dt.datetime.fromtimestamp(api.clock.now() + seconds, dt.UTC).isoformat()


def _inbox(api: Api, user: str) -> int:
    return len(api.call("GET", f"/v1/users/{user}/inbox").json()["items"])


def test_a_scheduled_event_waits_for_its_time(api: Api) -> None:
    kind = api.register_type(unique("reminder_"), ttl_seconds=60)
    user = unique("reader")
    sent = api.call(
        "POST", "/v1/notifications", json={"type": kind, "target": user, "send_at": _at(api, 600)}
    )
    assert sent.status_code == 202, sent.text
    api.drain()
    assert _inbox(api, user) == 0
    api.clock.advance(599)
    api.drain()
    assert _inbox(api, user) == 0
    api.clock.advance(2)  # its time, and its 60 s TTL counts from here
    api.drain()
    assert _inbox(api, user) == 1
    status = api.call("GET", f"/v1/notifications/{sent.json()['event_id']}").json()
    assert (status["state"], status["delivered"]) == ("completed", 1)


def test_a_scheduled_event_can_be_cancelled_before_its_time(api: Api) -> None:
    kind = api.register_type(unique("reminder_"))
    user = unique("reader")
    body = {"type": kind, "recipients": [user, unique("other")], "send_at": _at(api, 60)}
    event_id = api.call("POST", "/v1/notifications", json=body).json()["event_id"]
    assert api.call("DELETE", f"/v1/notifications/{event_id}").status_code == 204
    api.clock.advance(61)
    api.drain()
    assert _inbox(api, user) == 0
    status = api.call("GET", f"/v1/notifications/{event_id}").json()
    assert (status["state"], status["delivered"]) == ("cancelled", 0)
    again = api.call("DELETE", f"/v1/notifications/{event_id}")
    assert again.status_code == 409
    assert "too late" in again.json()["message"]


def test_an_event_on_its_way_cannot_be_cancelled(api: Api) -> None:
    kind = api.register_type(unique("note_"))
    event_id = api.call(
        "POST", "/v1/notifications", json={"type": kind, "target": unique("reader")}
    ).json()["event_id"]
    assert api.call("DELETE", f"/v1/notifications/{event_id}").status_code == 409
    assert api.call("DELETE", "/v1/notifications/evt_nope").status_code == 404
    other = api.sender_key()
    assert api.call("DELETE", f"/v1/notifications/{event_id}", key=other).status_code == 404


def test_what_cannot_be_scheduled_is_refused_by_field(api: Api) -> None:
    kind = api.register_type(unique("note_"))
    for when, said in ((_at(api, 31 * 86_400), "30 days"), ("2026-01-01T10:00:00", "timezone")):
        sent = api.call(
            "POST", "/v1/notifications",
            json={"type": kind, "target": unique("reader"), "send_at": when},
        )  # fmt: skip
        assert sent.status_code == 400
        (problem,) = sent.json()["errors"]
        assert problem["field"] == "send_at"
        assert said in problem["reason"]
