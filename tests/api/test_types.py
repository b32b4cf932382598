from tests.conftest import Api, unique


def test_put_type_requires_admin(api: Api) -> None:
    key = api.sender_key()
    response = api.call("PUT", f"/v1/types/{unique('t')}", key=key, json={"priority": "P1"})
    assert response.status_code == 403


def test_put_get_and_list_types(api: Api) -> None:
    name = unique("otp_")
    body = {
        "priority": "P0",
        "channels": ["sms", "push", "sms"],
        "ttl_seconds": 300,
        "mandatory": True,
    }
    put = api.call("PUT", f"/v1/types/{name}", json=body)
    assert put.status_code == 200
    assert put.json()["channels"] == ["sms", "push"]
    got = api.call("GET", f"/v1/types/{name}").json()
    assert (got["priority"], got["mandatory"], got["ttl_seconds"]) == ("P0", True, 300)
    listed = api.call("GET", "/v1/types").json()["items"]
    assert name in {t["name"] for t in listed}
    changed = api.call("PUT", f"/v1/types/{name}", json=body | {"ttl_seconds": 60})
    assert changed.json()["ttl_seconds"] == 60


def test_put_type_refuses_bad_specs(api: Api) -> None:
    response = api.call(
        "PUT",
        "/v1/types/ok_name",
        json={"priority": "P5", "channels": ["pigeon"], "ttl_seconds": -1, "colour": "red"},
    )
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"priority", "channels[0]", "ttl_seconds", "colour"}
    bad_name = api.call("PUT", "/v1/types/has%20space", json={"priority": "P1"})
    assert bad_name.status_code == 400
    assert bad_name.json()["errors"][0]["field"] == "type"


def test_get_unknown_type_is_404(api: Api) -> None:
    assert api.call("GET", "/v1/types/nothing_here").status_code == 404


def test_a_type_listing_a_channel_no_provider_serves_is_registered_with_a_warning(
    api: Api,
) -> None:
    body = {"priority": "P1", "channels": ["push", "email", "webhook", "in_app"]}
    answer = api.call("PUT", "/v1/types/announce", json=body)
    assert answer.status_code == 200
    warnings = answer.json()["warnings"]
    assert [w.split(":")[0] for w in warnings] == [
        "no provider is configured for push",
        "no provider is configured for email",
    ]
    assert "of kind apns or fcm or webpush" in warnings[0]
    smtp = {"host": "mail.example.com", "sender": "a@example.com"}
    assert api.call("PUT", "/v1/providers/mailer", json=smtp | {"kind": "smtp"}).status_code == 200
    try:
        again = api.call("GET", "/v1/types/announce").json()["warnings"]
        assert [w.split(":")[0] for w in again] == ["no provider is configured for push"]
    finally:
        api.call("DELETE", "/v1/providers/mailer")
