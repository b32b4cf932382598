"""A page's EventSource in Debian's Chromium gets a notification at once; its API process
restarts; the page reconnects by itself from its last event and misses nothing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page

from clarion.config import Settings
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.supervisor import standard_workers
from tests.backends import prepared
from tests.live_helpers import SecondApi

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# What an app does: a ticket for each connection (EventSource cannot send headers), and on
# an error a new connection from the last event it saw.
_LISTEN = """
token => {
  window.got = [];
  window.last = null;
  const connect = async () => {
    try {
      const answer = await fetch('/v1/me/stream-tickets',
        {method: 'POST', headers: {Authorization: 'Bearer ' + token}});
      const ticket = (await answer.json()).ticket;
      const query = new URLSearchParams({ticket});
      if (window.last) query.set('since', window.last);
      const source = new EventSource('/v1/me/stream?' + query);
      for (const type of ['ready', 'inbox', 'reset', 'state']) {
        source.addEventListener(type, e => {
          window.last = e.lastEventId;
          window.got.push({type, id: e.lastEventId, data: JSON.parse(e.data)});
        });
      }
      source.onerror = () => { source.close(); setTimeout(connect, 200); };
    } catch (error) {
      setTimeout(connect, 200);
    }
  };
  connect();
}
"""

LIKE = TypeSpec("like", Priority.P1, (Channel.IN_APP,))


def _objects(page: Page) -> list[str]:
    got = page.evaluate("window.got")
    return [m["data"]["item"]["object"] for m in got if m["type"] == "inbox"]


def test_an_event_source_catches_up_after_the_server_restarts(page: Page, tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "page.db")
    with ThreadPoolExecutor(1) as aside:  # Playwright's sync API holds this thread's loop
        key = aside.submit(prepared, settings, LIKE).result()
    with LocalClarion(settings, standard_workers(1, 0)) as local:
        served = SecondApi(local)  # the page's server: restarted under it
        served.start()
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        try:
            token = api.post("/v1/users/ann/tokens", json={}).json()["token"]
            page.goto(f"{served.url}/healthz")
            page.evaluate(_LISTEN, token)
            page.wait_for_function("window.got.length >= 1")
            sent = time.monotonic()
            api.post("/v1/notifications", json={"type": "like", "target": "ann", "object": "p0"})
            page.wait_for_function("window.got.some(m => m.type === 'inbox')", timeout=5000)
            assert time.monotonic() - sent < 1.0  # the notification reached the page at once
            served.stop()
            for n in (1, 2):  # while the page's server is down
                like = {"type": "like", "target": "ann", "object": f"p{n}"}
                api.post("/v1/notifications", json=like)
            time.sleep(1.0)
            served.start()
            page.wait_for_function(
                "window.got.filter(m => m.type === 'inbox').length >= 3", timeout=20_000
            )
            page.wait_for_timeout(500)  # anything doubled would show up by now
            assert _objects(page) == ["p0", "p1", "p2"]
            got = page.evaluate("window.got")
            assert [m["type"] for m in got].count("reset") == 0
        finally:
            api.close()
            served.stop()
