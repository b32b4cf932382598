"""The pages in Debian's Chromium: the inbox widget, the preference centre, the unsubscribe
page and the operator dashboard — loaded under their Content-Security-Policy with no
console error, and doing what they say against the real API."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

from clarion.broker import Outbound
from clarion.models import Channel
from clarion.runtime import signing_keys
from clarion.types import UserId
from clarion.unsubscribe import UnsubscribeScope, make_token
from tests.conftest import Api, unique

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
DEMO = "demo-reader"
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="module")
def api_settings() -> dict[str, Any]:
    return {"demo_user": DEMO}


class Watched:
    """A page whose console errors and CSP violations are collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(WATCH_CSP)

        def heard(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(message.text)

        page.on("console", heard)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def clean(self) -> None:
        assert self.errors == []
        assert self.page.evaluate("window.__csp") == []


@pytest.fixture
def watched(page: Page) -> Watched:
    return Watched(page)


@pytest.fixture
def second(browser: Browser) -> Iterator[Page]:
    context: BrowserContext = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def token_for(api: Api, user: str) -> str:
    return str(api.call("POST", f"/v1/users/{user}/tokens", json={}).json()["token"])


def send(api: Api, kind: str, user: str, **fields: Any) -> str:
    sent = api.call("POST", "/v1/notifications", json={"type": kind, "target": user, **fields})
    assert sent.status_code == 202, sent.text
    api.drain()
    return str(sent.json()["event_id"])


def badge(page: Page) -> Any:
    return page.locator("clarion-inbox").locator(".badge")


def test_every_page_loads_clean(api: Api, watched: Watched) -> None:
    user = unique("reader")
    keys = api.run(signing_keys(api.runtime))
    link = make_token(UnsubscribeScope(UserId(user), type="digest_news"), keys)
    for path in (
        "/ui/demo",
        f"/ui/preferences#token={token_for(api, user)}",
        "/ui/ops",
        f"/v1/unsubscribe/{link}",
    ):
        watched.page.goto(api.url + path)
        watched.page.wait_for_load_state("networkidle")
        watched.clean()
    headers = api.client.get("/ui/ops").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]


def test_the_widget_shows_a_notification_at_once_and_counts_it(api: Api, watched: Watched) -> None:
    kind = api.register_type(unique("comment_"))
    page = watched.page
    page.goto(f"{api.url}/ui/demo")
    expect(page.locator("clarion-inbox .bell")).to_be_visible()
    widget = page.locator("clarion-inbox")
    expect(widget).to_have_attribute("data-unread", re.compile(r"\d+"))
    before = int(widget.get_attribute("data-unread") or 0)
    sent = time.monotonic()
    send(api, kind, DEMO, actor="bob", payload={"title": "Bob replied", "body": "Nice one"})
    expect(widget).to_have_attribute("data-unread", str(before + 1), timeout=5000)
    assert time.monotonic() - sent < 1.0 + 0.5  # the drain's own time included
    expect(badge(page)).to_have_text(str(before + 1))
    page.locator("clarion-inbox .bell").click()
    expect(page.locator("clarion-inbox .item").first).to_contain_text("Bob replied")
    page.keyboard.press("Escape")
    expect(page.locator("clarion-inbox .panel")).to_be_hidden()
    watched.clean()


def test_a_notification_sent_while_the_widget_connects_is_not_missed(
    api: Api, watched: Watched
) -> None:
    kind = api.register_type(unique("comment_"))
    page = watched.page
    sent: list[str] = []

    def between(route: Route) -> None:
        # The inbox page is loaded; the stream is not open yet.
        if not sent:
            sent.append(send(api, kind, DEMO, payload={"title": "In between", "body": "b"}))
        route.continue_()

    page.route("**/v1/me/stream-tickets", between)
    page.goto(f"{api.url}/ui/demo")
    page.locator("clarion-inbox .bell").click()
    expect(page.locator("clarion-inbox .item").first).to_contain_text("In between")
    assert sent
    watched.clean()


def test_reading_in_one_tab_clears_the_badge_in_another(
    api: Api, watched: Watched, second: Page
) -> None:
    kind = api.register_type(unique("comment_"))
    send(api, kind, DEMO)
    first = watched.page
    for tab in (first, second):
        tab.goto(f"{api.url}/ui/demo")
        expect(tab.locator("clarion-inbox")).to_have_attribute(
            "data-unread", re.compile(r"[1-9]\d*"), timeout=5000
        )
    time.sleep(0.3)  # both streams open
    first.locator("clarion-inbox .bell").click()
    first.locator("clarion-inbox .all").click()
    expect(second.locator("clarion-inbox")).to_have_attribute("data-unread", "0", timeout=5000)
    expect(badge(second)).to_be_hidden()
    watched.clean()


def test_hostile_content_renders_inert(api: Api, watched: Watched) -> None:
    kind = api.register_type(unique("comment_"))
    page = watched.page
    page.goto(f"{api.url}/ui/demo")
    expect(page.locator("clarion-inbox")).to_have_attribute("data-unread", re.compile(r"\d+"))
    hostile = {
        "title": "<img src=x onerror=\"window.pwned='img'\">",
        "body": "<a href=\"javascript:window.pwned='link'\">go</a><script>window.pwned=1</script>",
    }
    send(api, kind, DEMO, payload=hostile)
    page.locator("clarion-inbox .bell").click()
    first = page.locator("clarion-inbox .item").first
    expect(first).to_contain_text("<img src=x")
    first.locator("p").click()
    assert page.evaluate("window.pwned") is None
    root = "document.querySelector('clarion-inbox').shadowRoot"
    inside = page.evaluate(f"{root}.querySelectorAll('img, a, script').length")
    assert inside == 0
    watched.clean()


def test_a_preference_change_survives_a_reload_and_changes_delivery(
    api: Api, watched: Watched
) -> None:
    kind = api.register_type(unique("digest_"), description="Weekly highlights")
    locked = api.register_type(unique("security_"), priority="P0", mandatory=True)
    user = unique("reader")
    page = watched.page
    page.goto(f"{api.url}/ui/preferences#token={token_for(api, user)}")
    row = page.locator(f"tr[data-type='{kind}']")
    expect(row).to_contain_text("Weekly highlights")
    expect(page.locator(f"tr[data-type='{locked}'] .type-on")).to_be_disabled()
    expect(page.locator(f"tr[data-type='{locked}']")).to_contain_text("cannot be turned off")
    row.locator(".type-on").uncheck()
    page.locator("#quiet").check()
    page.locator("#quiet-zone").select_option("Europe/Paris")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#saved")).to_have_text("Saved.")
    page.reload()
    expect(page.locator(f"tr[data-type='{kind}'] .type-on")).not_to_be_checked()
    expect(page.locator("#quiet-zone")).to_have_value("Europe/Paris")
    event_id = send(api, kind, user)
    trail = api.call("GET", f"/v1/users/{user}/deliveries", params={"event_id": event_id})
    assert [d["reason"] for d in trail.json()["items"]] == ["disabled_type"]
    watched.clean()


def test_bad_settings_are_shown_by_their_field(api: Api, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{api.url}/ui/preferences#token={token_for(api, unique('reader'))}")
    page.locator("#per-hour").fill("5000")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("[data-field='frequency_caps']")).to_contain_text("per_hour")


def test_the_unsubscribe_button_turns_email_off(api: Api, watched: Watched) -> None:
    user = unique("reader")
    keys = api.run(signing_keys(api.runtime))
    link = make_token(UnsubscribeScope(UserId(user), channel=Channel.EMAIL), keys)
    page = watched.page
    page.goto(f"{api.url}/v1/unsubscribe/{link}")
    expect(page.locator("h1")).to_have_text("Unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.locator("h1")).to_have_text("Done")
    prefs = api.call("GET", f"/v1/users/{user}/preferences").json()
    assert prefs["channels"]["email"]["enabled"] is False
    forged = page.goto(f"{api.url}/v1/unsubscribe/{link[:-4]}abcd")
    assert forged is not None
    assert forged.status == 400
    expect(page.locator("body")).to_contain_text("not valid")


def sign_in(page: Page, api: Api, key: str) -> None:
    page.goto(f"{api.url}/ui/ops")
    page.locator("#key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_the_dashboard_refuses_a_key_that_is_not_an_admins(api: Api, watched: Watched) -> None:
    sign_in(watched.page, api, api.sender_key())
    expect(watched.page.locator("#signin-problem")).to_contain_text("admin key")
    expect(watched.page.locator("#board")).to_be_hidden()
    cookies = watched.page.context.cookies()
    assert not [c for c in cookies if c["name"] == "clarion_ops"]


def test_the_dashboard_replays_a_dead_letter(api: Api, watched: Watched) -> None:
    topic = "email.p2"
    api.run(api.runtime.broker.publish([Outbound(topic, b"not a batch", dead_letter="boom")]))
    page = watched.page
    sign_in(page, api, api.admin_key)
    expect(page.locator("#board")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "clarion_ops")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert api.admin_key not in page.content()
    row = page.locator("#dead tbody tr").filter(has_text="boom")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Replay").click()
    expect(page.locator("#dead tbody tr").filter(has_text="boom")).to_have_count(0)
    replayed = page.locator("#queues tbody tr").filter(has_text="email")  # back in its queue
    expect(replayed.locator("td").nth(3)).to_have_text("1")
    watched.clean()


def test_a_kill_switch_from_the_dashboard_stops_delivery(api: Api, watched: Watched) -> None:
    kind = api.register_type(unique("promo_"))
    page = watched.page
    sign_in(page, api, api.admin_key)
    expect(page.locator("#board")).to_be_visible()
    page.locator("#kill-value").fill(kind)
    page.locator("#kill-reason").fill("wrong copy")
    page.get_by_role("button", name="Stop it").click()
    expect(page.locator("#kills")).to_contain_text(kind)
    user = unique("reader")
    event_id = send(api, kind, user)
    trail = api.call("GET", f"/v1/users/{user}/deliveries", params={"event_id": event_id})
    assert [d["reason"] for d in trail.json()["items"]] == ["killed"]
    page.locator("#kills tbody tr").filter(has_text=kind).get_by_role("button", name="Lift").click()
    expect(page.locator("#kills")).not_to_contain_text(kind)
    watched.clean()


def test_a_change_without_the_csrf_secret_is_refused(api: Api, watched: Watched) -> None:
    page = watched.page
    sign_in(page, api, api.admin_key)
    expect(page.locator("#board")).to_be_visible()
    forged = page.evaluate(
        """() => fetch('/v1/kill-switches', {method: 'POST',
             headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({type: 'anything'})}).then(r => r.status)"""
    )
    assert forged == 403


def test_the_dashboard_says_why_a_campaign_was_suppressed(api: Api, watched: Watched) -> None:
    from tests.api.test_campaigns import _expand, promo_with_opt_outs

    kind, people = promo_with_opt_outs(api, 3, opted_out=2)
    audience = api.call("POST", "/v1/audiences", json={"user_ids": people}).json()
    name = unique("sale")
    body = {"name": name, "type": kind, "audience": {"audience": audience["id"]},
            "payload": {"title": "Sale"}}  # fmt: skip
    assert api.call("POST", "/v1/campaigns", json=body).status_code == 201
    _expand(api)
    page = watched.page
    sign_in(page, api, api.admin_key)
    row = page.locator("#campaigns tbody tr").filter(has_text=name)
    expect(row).to_contain_text("2 — disabled_type 2")
    watched.clean()


def test_the_dashboard_pauses_a_campaign(api: Api, watched: Watched) -> None:
    kind = api.register_type(unique("promo_"), priority="P2")
    audience = api.call("POST", "/v1/audiences", json={"user_ids": ["a", "b"]}).json()
    name = unique("sale")
    body = {"name": name, "type": kind, "audience": {"audience": audience["id"]},
            "payload": {"title": "Sale"}}  # fmt: skip
    made = api.call("POST", "/v1/campaigns", json=body).json()
    page = watched.page
    sign_in(page, api, api.admin_key)
    row = page.locator("#campaigns tbody tr").filter(has_text=name)
    expect(row.locator("progress")).to_have_count(1)
    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("paused")
    assert api.call("GET", f"/v1/campaigns/{made['id']}").json()["state"] == "paused"
    watched.clean()
