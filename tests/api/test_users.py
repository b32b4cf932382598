"""Profiles, followers, preferences, the inbox and the delivery trail, over HTTP."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import Api, unique


@pytest.fixture(scope="module")
def like(api: Api) -> str:
    return api.register_type("like_u", priority="P1")


def test_put_and_get_a_user_profile(api: Api) -> None:
    user = unique("ann")
    body = {
        "email": "ann@example.com",
        "phone": "+14155550100",
        "timezone": "Europe/Paris",
        "locale": "fr-FR",
        "email_verified": True,
        "phone_verified": False,
    }
    assert api.call("PUT", f"/v1/users/{user}", json=body).status_code == 200
    shown = api.call("GET", f"/v1/users/{user}").json()
    assert shown == {"user_id": user, "email_bounced": False, "attributes": {}} | body
    # Verification belongs to an address: dropping the address drops the flag.
    api.call("PUT", f"/v1/users/{user}", json={"phone_verified": True})
    shown = api.call("GET", f"/v1/users/{user}").json()
    assert (shown["email"], shown["email_verified"], shown["phone_verified"]) == (
        None,
        False,
        False,
    )
    assert api.call("GET", f"/v1/users/{unique('ghost')}").status_code == 404


def test_put_user_names_each_bad_field(api: Api) -> None:
    response = api.call(
        "PUT",
        f"/v1/users/{unique('u')}",
        json={"email": "nope", "phone": "555-1234", "locale": "!!"},
    )
    assert {e["field"] for e in response.json()["errors"]} == {"email", "phone", "locale"}
    zone = api.call("PUT", f"/v1/users/{unique('u')}", json={"timezone": "Mars/Olympus"})
    assert zone.status_code == 400
    assert zone.json()["errors"][0]["field"] == "timezone"


def test_user_endpoints_need_an_admin_key(api: Api) -> None:
    key = api.sender_key()
    assert api.call("GET", f"/v1/users/{unique('u')}/inbox", key=key).status_code == 403


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"followers": ["f1", "f2", "f3"]}'),
        ("application/x-ndjson", b'"f1"\n{"id": "f2"}\n"f3"\n'),
        ("text/csv", b"follower_id\nf1\nf2\nf3\n"),
        ("text/plain", b"f1\nf2\n\nf3"),
    ],
)
def test_followers_bulk_add_in_every_format(api: Api, content_type: str, body: bytes) -> None:
    creator = unique("c")
    response = api.call(
        "POST",
        f"/v1/users/{creator}/followers",
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"added": 3, "removed": 0, "count": 3}


def test_followers_remove_and_count(api: Api) -> None:
    creator = unique("c")
    api.call("POST", f"/v1/users/{creator}/followers", json={"followers": ["a", "b", "c"]})
    removed = api.call("DELETE", f"/v1/users/{creator}/followers", json={"followers": ["a", "x"]})
    assert removed.json() == {"added": 0, "removed": 1, "count": 2}
    assert api.call("GET", f"/v1/users/{creator}/followers/count").json() == {"count": 2}


def test_followers_bad_line_refuses_the_whole_upload(api: Api) -> None:
    creator = unique("c")
    body = b'"ok1"\n"ok2"\n{"nope": true}\n"ok3"\n'
    response = api.call(
        "POST",
        f"/v1/users/{creator}/followers",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body (line 3)"
    assert api.call("GET", f"/v1/users/{creator}/followers/count").json() == {"count": 0}
    bad_json = api.call("POST", f"/v1/users/{creator}/followers", json={"followers": ["a b"]})
    assert bad_json.status_code == 400
    assert bad_json.json()["errors"][0]["field"] == "followers[0]"


def test_inbox_items_pages_and_read_state(api: Api, like: str) -> None:
    user = unique("ivy")
    sent = [
        api.call(
            "POST",
            "/v1/notifications",
            json={
                "type": like,
                "actor": "zed",
                "target": user,
                "object": f"photo_{i}",
                "payload": {"title": f"T{i}", "body": f"B{i}"},
            },
        ).json()["event_id"]
        for i in range(3)
    ]
    api.drain()
    first = api.call("GET", f"/v1/users/{user}/inbox", params={"limit": 2}).json()
    assert [i["event_id"] for i in first["items"]] == sent[::-1][:2]
    item = first["items"][0]
    assert (
        item["type"],
        item["actor"],
        item["object"],
        item["title"],
        item["body"],
        item["read"],
    ) == (like, "zed", "photo_2", "T2", "B2", False)
    assert item["created_at"].endswith("Z")
    assert first["unread_count"] == 3
    rest = api.call(
        "GET", f"/v1/users/{user}/inbox", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [i["event_id"] for i in rest["items"]] == [sent[0]]
    assert rest["next_cursor"] is None

    read = api.call("POST", f"/v1/users/{user}/inbox/read", json={"ids": [item["id"]]})
    assert read.json() == {"updated": 1, "unread_count": 2}
    assert api.call("POST", f"/v1/users/{user}/inbox/read", json={"all": True}).json() == {
        "updated": 2,
        "unread_count": 0,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ids"),
        ({"ids": ["x"], "all": True}, "ids"),
        ({"ids": ["ntf_x"]}, "ids[0]"),
        ({"all": False}, "all"),
    ],
)
def test_mark_read_refuses_bad_bodies(api: Api, body: dict[str, object], field: str) -> None:
    response = api.call("POST", f"/v1/users/{unique('u')}/inbox/read", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_inbox_refuses_a_bad_cursor_and_limit(api: Api) -> None:
    user = unique("u")
    assert api.call("GET", f"/v1/users/{user}/inbox", params={"cursor": "abc"}).status_code == 400
    too_many = api.call("GET", f"/v1/users/{user}/inbox", params={"limit": 1000})
    assert too_many.json()["errors"][0]["field"] == "limit"


def test_openapi_document_lists_the_api(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    for path in (
        "/v1/notifications",
        "/v1/notifications/batch",
        "/v1/types/{type_name}",
        "/v1/users/{creator_id}/followers",
        "/v1/users/{user_id}/inbox",
    ):
        assert path in doc["paths"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]


def test_unknown_route_is_a_json_404(api: Api) -> None:
    response = api.client.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_openapi_documents_the_ingest_endpoints(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    send = doc["paths"]["/v1/notifications"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("EventIn")
    assert {"202", "200", "400", "401", "403", "429"} <= send["responses"].keys()
    assert "EventIn" in doc["components"]["schemas"]
    assert "FanOut" in doc["components"]["schemas"]  # nested definitions come along
    batch = doc["paths"]["/v1/notifications/batch"]["post"]
    assert batch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "BatchOut"
    )
    states = doc["paths"]["/v1/state"]["post"]  # served ahead of FastAPI too
    assert states["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "StateBatchIn"
    )


def test_openapi_document_is_valid_and_every_reference_resolves(api: Api) -> None:
    from openapi_spec_validator import validate

    doc = api.client.get("/openapi.json").json()
    validate(doc)  # OpenAPI 3.1, references included
    text = json.dumps(doc)
    refs = set(re.findall(r'"\$ref": "([^"]+)"', text))
    schemas = doc["components"]["schemas"]
    assert {r for r in refs if r.rpartition("/")[2] not in schemas} == set()
    assert {r.rpartition("/")[0] for r in refs} == {"#/components/schemas"}
