"""A producer's W3C ``traceparent`` is kept with its event, carried through the queues, and
shown on the event, on every trail row, and found by its trace id; an invalid one is
ignored (never a refusal)."""

from __future__ import annotations

from tests.conftest import Api, unique

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_a_trace_id_round_trips_to_the_delivery_log(api: Api) -> None:
    kind = api.register_type(unique("note_"))
    user = unique("reader")
    parent = f"00-{TRACE}-b7ad6b7169203331-01"
    sent = api.call(
        "POST", "/v1/notifications", json={"type": kind, "target": user},
        headers={"traceparent": parent},
    )  # fmt: skip
    assert sent.status_code == 202
    event_id = sent.json()["event_id"]
    second = {"type": kind, "target": user, "object": "b"}
    batch = api.call(
        "POST", "/v1/notifications/batch", json={"events": [second]},
        headers={"traceparent": parent.upper()},
    )  # fmt: skip
    assert batch.json()["accepted"] == 1
    api.drain()
    assert api.call("GET", f"/v1/notifications/{event_id}").json()["trace_id"] == TRACE
    trail = api.call("GET", f"/v1/users/{user}/deliveries", params={"event_id": event_id})
    assert [(d["channel"], d["trace_id"]) for d in trail.json()["items"]] == [("in_app", TRACE)]
    found = api.call("GET", "/v1/notifications", params={"trace_id": TRACE}).json()["items"]
    assert event_id in {e["event_id"] for e in found}
    assert len(found) == 2  # the batch's event carries the request's trace too


def test_an_invalid_traceparent_is_ignored(api: Api) -> None:
    kind = api.register_type(unique("note_"))
    for bad in ("garbage", f"00-{'0' * 32}-b7ad6b7169203331-01", f"00-{TRACE}-short-01"):
        sent = api.call(
            "POST", "/v1/notifications", json={"type": kind, "target": unique("reader")},
            headers={"traceparent": bad},
        )  # fmt: skip
        assert sent.status_code == 202
        status = api.call("GET", f"/v1/notifications/{sent.json()['event_id']}").json()
        assert status["trace_id"] is None
    refused = api.call("GET", "/v1/notifications", params={"trace_id": "not-hex"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "trace_id"
