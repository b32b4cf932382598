"""Templates, providers, status webhooks, one-click unsubscribe and SMS delivery receipts,
over HTTP — the provider look-alikes stand in for the outside world."""

from __future__ import annotations

import time
from typing import Any

import pytest

from clarion.channels.sms_twilio import callback_signature
from clarion.fakes.suite import FakeProviders
from clarion.keyring import SigningKeys
from clarion.models import Channel
from clarion.types import UserId
from clarion.unsubscribe import UnsubscribeScope, make_token
from tests.conftest import Api, unique

KEYS = "k2:" + "n" * 32 + ",k1:" + "o" * 32


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    return {"allow_private_targets": True, "signing_keys": KEYS}


TEMPLATE = {
    "default_locale": "en",
    "variants": {
        "en": {
            "push": {"title": "{{ actor }} commented", "body": "{{ comment }}"},
            "email": {
                "subject": "New comment from {{ actor }}",
                "text": "{{ actor }} wrote: {{ comment }}",
                "html": "<p><b>{{ actor }}</b> wrote: {{ comment }}</p>",
            },
        },
        "fr": {"push": {"title": "{{ actor }} a commenté", "body": "{{ comment }}"}},
    },
}


# ── templates ──────────────────────────────────────────────────────────────────────────


def test_templates_are_versioned_and_old_versions_stay_readable(api: Api) -> None:
    name = unique("tpl_")
    first = api.call("PUT", f"/v1/templates/{name}", json=TEMPLATE).json()
    changed = TEMPLATE | {"default_locale": "fr"}
    second = api.call("PUT", f"/v1/templates/{name}", json=changed).json()
    assert (first["version"], second["version"], second["versions"]) == (1, 2, [1, 2])
    old = api.call("GET", f"/v1/templates/{name}", params={"version": 1}).json()
    assert old["default_locale"] == "en"
    assert api.call("GET", f"/v1/templates/{name}").json()["default_locale"] == "fr"
    assert api.call("GET", f"/v1/templates/{name}", params={"version": 9}).status_code == 404


def test_broken_template_syntax_is_refused_naming_the_variant(api: Api) -> None:
    broken = {"variants": {"en": {"push": {"title": "{{ actor ", "body": "{% if %}"}}}}
    response = api.call("PUT", f"/v1/templates/{unique('tpl_')}", json=broken)
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"variants.en.push.title", "variants.en.push.body"}


def test_preview_renders_a_locale_with_fallback_and_escapes_hostile_values(api: Api) -> None:
    name = unique("tpl_")
    api.call("PUT", f"/v1/templates/{name}", json=TEMPLATE)
    hostile = {"actor": "<script>alert(1)</script>", "comment": "hi"}
    french = api.call(
        "POST",
        f"/v1/templates/{name}/preview",
        json={"channel": "push", "locale": "fr-CA", "params": hostile},
    ).json()
    assert french["fields"]["title"] == "a commenté"  # plain text: the script is dropped
    email = api.call(
        "POST",
        f"/v1/templates/{name}/preview",
        json={"channel": "email", "locale": "fr", "params": hostile},  # no French email: en
    ).json()["fields"]
    assert "<script>" not in email["html"]
    assert "&lt;script&gt;" in email["html"]
    missing = api.call(
        "POST", f"/v1/templates/{name}/preview", json={"channel": "push", "params": {}}
    )
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "params"
    no_sms = api.call("POST", f"/v1/templates/{name}/preview", json={"channel": "sms"})
    assert no_sms.json()["errors"][0]["field"] == "channel"


def test_an_event_naming_an_unknown_template_is_refused(api: Api) -> None:
    kind = api.register_type()
    response = api.call(
        "POST", "/v1/notifications", json={"type": kind, "target": "u", "template": "nope"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "template"


# ── providers ──────────────────────────────────────────────────────────────────────────


def test_provider_credentials_are_never_echoed_and_a_put_without_them_keeps_them(
    api: Api, fakes: FakeProviders
) -> None:
    doc = fakes.clarion_config()["sms_twilio"]
    name = unique("sms_")
    created = api.call("PUT", f"/v1/providers/{name}", json=doc | {"kind": "sms_twilio"})
    assert created.status_code == 200, created.text
    assert created.json()["channel"] == "sms"
    assert created.json()["config"]["auth_token"] == "**********"
    assert fakes.twilio.auth_token not in api.call("GET", "/v1/providers").text
    edited = {k: v for k, v in doc.items() if k != "auth_token"} | {"sender": "+15551112222"}
    assert api.call("PUT", f"/v1/providers/{name}", json=edited | {"kind": "sms_twilio"}).is_success
    stored = api.run(api.runtime.stores.providers.get(name))
    assert stored is not None
    assert (stored["auth_token"], stored["sender"]) == (fakes.twilio.auth_token, "+15551112222")
    assert api.call("DELETE", f"/v1/providers/{name}").status_code == 204
    assert api.call("GET", f"/v1/providers/{name}").status_code == 404


def test_a_bad_provider_config_names_the_field(api: Api) -> None:
    response = api.call("PUT", "/v1/providers/apns", json={"team_id": "T", "topic": "app"})
    assert response.status_code == 400
    assert {"key_id", "private_key"} <= {e["field"] for e in response.json()["errors"]}
    unknown = api.call("PUT", f"/v1/providers/{unique('p')}", json={"kind": "pigeon"})
    assert unknown.status_code == 400
    assert api.call("PUT", "/v1/providers/apns", content=b"[1]").status_code == 400


def test_providers_need_an_admin_key(api: Api) -> None:
    assert api.call("GET", "/v1/providers", key=api.sender_key()).status_code == 403


# ── status webhooks ────────────────────────────────────────────────────────────────────


def test_status_webhooks_belong_to_their_sender(api: Api) -> None:
    mine, theirs = api.sender_key(), api.sender_key()
    created = api.call(
        "POST",
        "/v1/webhooks",
        key=mine,
        json={"url": "http://127.0.0.1:9/hook", "events": ["delivered", "bounced"]},
    ).json()
    assert created["secret"].startswith("whsec_")
    assert [h["id"] for h in api.call("GET", "/v1/webhooks", key=mine).json()["items"]] == [
        created["id"]
    ]
    assert api.call("GET", "/v1/webhooks", key=theirs).json()["items"] == []
    assert api.call("DELETE", f"/v1/webhooks/{created['id']}", key=theirs).status_code == 404
    assert api.call("DELETE", f"/v1/webhooks/{created['id']}", key=mine).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["delivered"]}, "url"),
        ({"url": "https://example.com/x", "events": ["opened"]}, "events[0]"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"url": "https://example.com/x", "events": ["failed"], "secret": "s3cret"}, "secret"),
    ],
)
def test_bad_status_webhooks_name_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.call("POST", "/v1/webhooks", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


# ── unsubscribe ────────────────────────────────────────────────────────────────────────


def _link(user: str, **scope: Any) -> str:
    token = make_token(UnsubscribeScope(UserId(user), **scope), SigningKeys.parse(KEYS))
    return f"/v1/unsubscribe/{token}"


def _type_enabled(api: Api, user: str, kind: str) -> bool:
    prefs = api.call("GET", f"/v1/users/{user}/preferences").json()
    return bool(prefs["effective_types"][kind]["enabled"])


def test_get_shows_what_post_turns_off(api: Api) -> None:
    user, kind = unique("ann"), api.register_type()
    link = _link(user, type=kind)
    page = api.client.get(link)
    assert page.status_code == 200
    assert "<form method='post'>" in page.text
    assert _type_enabled(api, user, kind)  # a mail scanner following the link changes nothing
    assert api.client.post(link).status_code == 200
    assert not _type_enabled(api, user, kind)
    history = api.call("GET", f"/v1/users/{user}/preferences/history").json()["items"]
    assert history[0]["actor"] == "unsubscribe link"


def test_a_channel_link_turns_off_the_channel(api: Api) -> None:
    user = unique("ann")
    api.client.post(_link(user, channel=Channel.EMAIL))
    prefs = api.call("GET", f"/v1/users/{user}/preferences").json()
    assert prefs["channels"]["email"]["enabled"] is False


def test_forged_and_altered_links_are_refused(api: Api) -> None:
    user, kind = unique("ann"), api.register_type()
    genuine = _link(user, type=kind).rsplit("/", 1)[1]
    payload, signature = genuine.split(".")
    other = _link(unique("bob"), type=kind).rsplit("/", 1)[1].split(".")[0]
    forged = make_token(
        UnsubscribeScope(UserId(user), type=kind), SigningKeys.parse("k2:" + "x" * 32)
    )
    for token in (f"{other}.{signature}", f"{payload}.{signature[:-2]}AA", forged, "junk"):
        assert api.client.post(f"/v1/unsubscribe/{token}").status_code == 400
    assert _type_enabled(api, user, kind)
    old_key = make_token(
        UnsubscribeScope(UserId(user), type=kind), SigningKeys.parse("k1:" + "o" * 32)
    )
    assert api.client.post(f"/v1/unsubscribe/{old_key}").status_code == 200  # rotated, still valid


def test_a_mandatory_type_cannot_be_unsubscribed(api: Api) -> None:
    user, kind = unique("ann"), api.register_type(mandatory=True, priority="P0")
    assert api.client.post(_link(user, type=kind)).status_code == 409
    assert _type_enabled(api, user, kind)


def test_unsubscribe_is_rate_limited_per_client(api: Api) -> None:
    link = _link(unique("ann"), channel=Channel.SMS)
    api.clock.advance(60)  # a full bucket, whatever the tests before spent
    codes = [api.client.get(link).status_code for _ in range(12)]
    assert codes[:10] == [200] * 10
    assert codes[10:] == [429, 429]
    api.clock.advance(1)  # two more a second
    assert api.client.get(link).status_code == 200


# ── SMS delivery receipts ──────────────────────────────────────────────────────────────


def test_a_signed_sms_receipt_lands_in_the_delivery_log(api: Api, fakes: FakeProviders) -> None:
    api.call("PUT", "/v1/providers/sms_twilio", json=fakes.clarion_config()["sms_twilio"])
    user = unique("ann")
    api.call("PUT", f"/v1/users/{user}", json={"phone": "+14155550100", "phone_verified": True})
    kind = api.register_type(channels=["sms"])
    fakes.twilio.callback_status = "undelivered"
    sent = api.call(
        "POST", "/v1/notifications", json={"type": kind, "target": user, "payload": {"body": "X"}}
    )
    api.drain()
    event_id = sent.json()["event_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        trail = api.call("GET", f"/v1/users/{user}/deliveries", params={"event_id": event_id})
        outcomes = [(d["outcome"], d["reason"]) for d in trail.json()["items"]]
        if len(outcomes) == 2:
            break
        time.sleep(0.02)
    assert outcomes == [("failed", "carrier: undelivered"), ("delivered", None)]


def test_an_unsigned_sms_receipt_is_refused(api: Api, fakes: FakeProviders) -> None:
    api.call("PUT", "/v1/providers/sms_twilio", json=fakes.clarion_config()["sms_twilio"])
    path = "/v1/providers/sms_twilio/status"
    form = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    forged = callback_signature("not-the-token", api.url + path, form)
    response = api.client.post(path, data=form, headers={"X-Twilio-Signature": forged})
    assert response.status_code == 403
    genuine = callback_signature(fakes.twilio.auth_token, api.url + path, form)
    response = api.client.post(path, data=form, headers={"X-Twilio-Signature": genuine})
    assert response.status_code == 204
    assert api.client.post("/v1/providers/nope/status", data=form).status_code == 404


def test_the_sender_hears_about_an_unsubscribe(api: Api, fakes: FakeProviders) -> None:
    sender_key = api.sender_key("newsletter")
    hook = api.call(
        "POST",
        "/v1/webhooks",
        key=sender_key,
        json={"url": fakes.plain_url("/hooks/news"), "events": ["unsubscribed"]},
    ).json()
    fakes.webhooks.secrets["news"] = hook["secret"]
    user, kind = unique("ann"), api.register_type()
    api.clock.advance(60)
    assert api.client.post(_link(user, type=kind, sender="newsletter")).status_code == 200
    api.drain()
    (call,) = fakes.webhooks.received.all()
    assert call["genuine"] is True
    ((record),) = call["body"]["data"]
    assert (record["type"], record["user_id"], record["notification_type"]) == (
        "unsubscribed",
        user,
        kind,
    )


# ── the inbox renders templates for the reader ─────────────────────────────────────────


def test_the_inbox_shows_the_in_app_variant_in_the_readers_language(api: Api) -> None:
    name = unique("tpl_")
    variants = {
        "en": {"in_app": {"title": "{{ actor }} liked your photo", "body": ""}},
        "fr": {"in_app": {"title": "{{ actor }} a aimé votre photo", "body": ""}},
    }
    api.call("PUT", f"/v1/templates/{name}", json={"variants": variants})
    french, english = unique("amelie"), unique("bob")
    api.call("PUT", f"/v1/users/{french}", json={"locale": "fr-FR"})
    kind = api.register_type(template=name)
    for user in (french, english):
        sent = api.call(
            "POST", "/v1/notifications", json={"type": kind, "target": user, "actor": "Zoé"}
        )
        assert sent.status_code == 202, sent.text
    api.drain()
    titles = {
        user: api.call("GET", f"/v1/users/{user}/inbox").json()["items"][0]["title"]
        for user in (french, english)
    }
    assert titles == {french: "Zoé a aimé votre photo", english: "Zoé liked your photo"}
