"""POST /v1/notifications, the batch endpoint and the status endpoint, over HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import Api, unique


@pytest.fixture(scope="module")
def like(api: Api) -> str:
    return api.register_type("like", priority="P1")


def queued(api: Api) -> int:
    """Messages waiting anywhere in the pipeline."""
    return sum(
        api.run(api.runtime.broker.depth(f"{stage}.{p}"))
        for stage in ("fanout", "evaluate")
        for p in ("p0", "p1", "p2")
    )


def send(api: Api, body: dict[str, Any], key: str | None = None):
    return api.call("POST", "/v1/notifications", key=key, json=body)


def test_send_accepts_with_202_and_the_event_reaches_the_inbox(api: Api, like: str) -> None:
    user = unique("bob")
    response = send(api, {"type": like, "actor": "alice", "target": user, "object": "photo_1"})
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert event_id.startswith("evt_")
    api.drain()
    inbox = api.call("GET", f"/v1/users/{user}/inbox").json()
    assert [i["event_id"] for i in inbox["items"]] == [event_id]
    status = api.call("GET", f"/v1/notifications/{event_id}").json()
    assert status["state"] == "completed"
    assert (status["recipients"], status["delivered"], status["suppressed"]) == (1, 1, 0)
    assert (status["batches_total"], status["batches_done"]) == (1, 1)


def test_send_repeat_returns_200_with_the_original_id_and_no_second_entry(
    api: Api, like: str
) -> None:
    user = unique("carol")
    body = {"type": like, "actor": "alice", "target": user, "object": "photo_2"}
    first = send(api, body)
    again = send(api, body)  # no idempotency_key: computed from everything sent
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    explicit = {"type": like, "target": user, "idempotency_key": "k-1"}
    assert send(api, explicit).status_code == 202
    assert send(api, explicit | {"object": "changed"}).status_code == 200
    api.drain()
    assert len(api.call("GET", f"/v1/users/{user}/inbox").json()["items"]) == 2


def test_distinct_payloads_are_distinct_events_and_a_byte_identical_retry_is_not(
    api: Api, like: str
) -> None:
    user = unique("viewer")
    updates = [
        {"type": like, "target": user, "object": "show_42", "payload": {"position_s": s}}
        for s in (60, 120, 180)
    ]
    answers = [send(api, u) for u in updates]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["event_id"] for a in answers}) == 3
    retry = api.call("POST", "/v1/notifications", content=orjson.dumps(updates[1]))
    assert (retry.status_code, retry.json()["event_id"]) == (200, answers[1].json()["event_id"])
    collapsing = updates[0] | {"collapse_key": "playback"}
    assert send(api, collapsing).status_code == 202


def test_send_repeat_after_the_window_is_a_new_event(api: Api, like: str) -> None:
    body = {"type": like, "target": unique("dan"), "object": "p"}
    assert send(api, body).status_code == 202
    api.clock.advance(3601)
    assert send(api, body).status_code == 202


def test_send_lists_every_field_error_and_enqueues_nothing(api: Api, like: str) -> None:
    before = queued(api)
    response = send(
        api,
        {
            "type": like,
            "target": "has space",
            "recipents": ["typo"],
            "ttl_seconds": "soon",
            "priority": "P9",
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"target", "recipents", "ttl_seconds", "priority"}
    assert {e["reason"] for e in body["errors"] if e["field"] == "recipents"} == {"unknown field"}
    assert queued(api) == before


def test_shape_and_meaning_errors_come_in_one_answer(api: Api, like: str) -> None:
    response = send(api, {"actor": "x", "fan_out": "direct"})
    assert response.status_code == 400
    assert [(e["field"], e["reason"]) for e in response.json()["errors"]] == [
        ("type", "required"),
        ("target", "give target or recipients for a direct event"),
    ]
    big = {"type": like, "ttl_seconds": "soon", "payload": {"x": "y" * 20_000}}
    found = {e["field"] for e in send(api, big).json()["errors"]}
    assert found == {"ttl_seconds", "target", "payload"}
    batch = api.call(
        "POST",
        "/v1/notifications/batch",
        json={"events": [{"actor": "x"}, {"type": "nope", "target": "u", "priority": "P7"}]},
    ).json()
    assert [{e["field"] for e in r["errors"]} for r in batch["results"]] == [
        {"type", "target"},
        {"type", "priority"},
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": "u"}, "type"),
        ({"type": "never_registered", "target": "u"}, "type"),
        ({"type": "like"}, "target"),
        ({"type": "like", "target": "u", "recipients": ["v"]}, "recipients"),
        ({"type": "like", "fan_out": "followers"}, "actor"),
        ({"type": "like", "fan_out": "segment"}, "fan_out"),
        ({"type": "like", "target": "u", "priority": "P0"}, "priority"),
        ({"type": "like", "target": "u", "payload": {"x": "y" * 9000}}, "payload"),
        ({"type": "like", "target": "u", "payload": ["not", "an", "object"]}, "payload"),
    ],
)
def test_send_refuses_bad_events_with_400_naming_the_field(
    api: Api, like: str, body: dict[str, Any], field: str
) -> None:
    before = queued(api)
    response = send(api, body)
    assert response.status_code == 400, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert queued(api) == before


def test_send_refuses_a_body_that_is_not_json(api: Api) -> None:
    response = api.call(
        "POST", "/v1/notifications", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"].startswith("not valid JSON")


@pytest.mark.parametrize("header", [None, "Bearer clk_nope_nope", "Basic abc"])
def test_send_without_a_valid_key_is_401(api: Api, like: str, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = api.client.post(
        "/v1/notifications", json={"type": like, "target": "u"}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "message" in response.json()


def test_revoked_key_stops_working(api: Api, like: str) -> None:
    from clarion.keys import create_key

    key, secret = api.run(create_key(api.runtime.stores.keys, api.clock, sender="temp"))
    assert send(api, {"type": like, "target": unique("u")}, key=secret).status_code == 202
    api.run(api.runtime.stores.keys.revoke(key.key_id, api.clock.now()))
    api.clock.advance(6)  # past the key cache
    assert send(api, {"type": like, "target": unique("u")}, key=secret).status_code == 401


def test_send_of_a_type_the_key_may_not_send_is_403(api: Api, like: str) -> None:
    other = api.register_type()
    key = api.sender_key(types=[other])
    before = queued(api)
    response = send(api, {"type": like, "target": "u"}, key=key)
    assert response.status_code == 403
    assert like in response.json()["message"]
    assert send(api, {"type": other, "target": "u"}, key=key).status_code == 202
    assert queued(api) == before + 1


def test_send_over_the_sender_rate_is_429_with_retry_after(api: Api, like: str) -> None:
    key = api.sender_key(rate_per_s=2)
    codes = [
        send(api, {"type": like, "target": unique("u")}, key=key).status_code for _ in range(2)
    ]
    assert codes == [202, 202]
    before = queued(api)
    refused = send(api, {"type": like, "target": unique("u")}, key=key)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert queued(api) == before
    api.clock.advance(1)
    assert send(api, {"type": like, "target": unique("u")}, key=key).status_code == 202


def test_batch_answers_each_event_in_order(api: Api, like: str) -> None:
    forbidden_type = api.register_type()
    key = api.sender_key(types=[like])
    user = unique("eve")
    repeat = {"type": like, "target": user, "object": "same"}
    response = api.call(
        "POST",
        "/v1/notifications/batch",
        key=key,
        json={
            "events": [
                repeat,
                {"type": like},
                repeat,
                {"type": forbidden_type, "target": user},
                "not an object",
                {"type": like, "target": user, "object": "other"},
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    results = body["results"]
    assert [r["status"] for r in results] == [202, 400, 200, 403, 400, 202]
    assert results[2]["event_id"] == results[0]["event_id"]
    assert results[1]["errors"] == [
        {"field": "target", "reason": "give target or recipients for a direct event"}
    ]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 3)
    api.drain()
    assert len(api.call("GET", f"/v1/users/{user}/inbox").json()["items"]) == 2


def test_batch_over_the_limit_is_refused_whole(api: Api, like: str) -> None:
    before = queued(api)
    events = [{"type": like, "target": f"u{i}"} for i in range(1001)]
    response = api.call("POST", "/v1/notifications/batch", json={"events": events})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "events"
    assert queued(api) == before


def test_batch_over_the_rate_is_refused_whole(api: Api, like: str) -> None:
    key = api.sender_key(rate_per_s=5)
    events = [{"type": like, "target": unique("u")} for _ in range(4)]
    ok = api.call("POST", "/v1/notifications/batch", key=key, json={"events": events})
    assert ok.status_code == 200
    again = [{"type": like, "target": unique("u")} for _ in range(4)]
    refused = api.call("POST", "/v1/notifications/batch", key=key, json={"events": again})
    assert refused.status_code == 429
    too_big = [{"type": like, "target": unique("u")} for _ in range(6)]
    api.clock.advance(10)
    never = api.call("POST", "/v1/notifications/batch", key=key, json={"events": too_big})
    assert never.status_code == 400
    assert "burst" in never.json()["errors"][0]["reason"]


def test_status_is_private_to_the_sender_and_admins(api: Api, like: str) -> None:
    key = api.sender_key()
    event_id = send(api, {"type": like, "target": unique("u")}, key=key).json()["event_id"]
    assert api.call("GET", f"/v1/notifications/{event_id}", key=key).status_code == 200
    assert api.call("GET", f"/v1/notifications/{event_id}").status_code == 200  # admin
    stranger = api.sender_key()
    assert api.call("GET", f"/v1/notifications/{event_id}", key=stranger).status_code == 404
    missing = api.call("GET", "/v1/notifications/evt_missing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_status_reports_progress_of_a_follower_fanout(api: Api, like: str) -> None:
    creator = unique("creator")
    ids = "\n".join(f"{creator}_f{i}" for i in range(250))
    added = api.call(
        "POST",
        f"/v1/users/{creator}/followers",
        content=ids,
        headers={"content-type": "text/plain"},
    )
    assert added.json() == {"added": 250, "removed": 0, "count": 250}
    response = send(api, {"type": like, "actor": creator, "fan_out": "followers"})
    event_id = response.json()["event_id"]
    assert api.call("GET", f"/v1/notifications/{event_id}").json()["state"] == "accepted"
    api.drain()
    status = api.call("GET", f"/v1/notifications/{event_id}").json()
    assert status["state"] == "completed"
    assert (status["recipients"], status["batches_total"], status["delivered"]) == (250, 3, 250)
    assert status["completed_at"] is not None
