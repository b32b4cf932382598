"""Read-your-writes across processes: once PUT /preferences returns, nothing evaluated
afterwards uses the old settings, while two worker processes deliver a steady stream."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest

from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers

pytestmark = pytest.mark.slow


async def _admin(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_preference_change_racing_delivery_across_two_workers(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(db=tmp_path / "race.db", broker=broker_url, store=store_url)
    key = asyncio.run(_admin(settings))
    with LocalClarion(settings, standard_workers(2, 0)) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        api.put("/v1/types/like", json={"priority": "P1"})
        # (when the POST was sent, event id): a request already in flight when the PUT
        # returned may have been accepted — and evaluated — before it, so only requests
        # started afterwards must see the new settings.
        sent: list[tuple[float, str]] = []
        stop = threading.Event()

        def producer() -> None:
            with httpx.Client(
                base_url=local.url, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    started = time.time()
                    reply = client.post(
                        "/v1/notifications",
                        json={"type": "like", "target": "ann", "object": f"p{n}"},
                    )
                    assert reply.status_code == 202
                    sent.append((started, reply.json()["event_id"]))

        thread = threading.Thread(target=producer)
        thread.start()
        time.sleep(0.7)  # real workers, real traffic: let deliveries flow before the change
        api.put("/v1/users/ann/preferences", json={"types": {"like": {"enabled": False}}})
        changed = time.time()
        time.sleep(0.7)
        stop.set()
        thread.join()

        deadline = time.monotonic() + 60
        for _, event_id in sent:
            while api.get(f"/v1/notifications/{event_id}").json()["state"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.02)
        outcome = {}
        for _, event_id in sent:
            (row,) = api.get("/v1/users/ann/deliveries", params={"event_id": event_id}).json()[
                "items"
            ]
            outcome[event_id] = (row["outcome"], row["reason"])
        api.close()

    before = [e for at, e in sent if at < changed]
    after = [e for at, e in sent if at > changed]
    assert len(after) > 10, "the stream kept going after the change"
    assert {outcome[e] for e in after} == {("suppressed", "disabled_type")}
    assert ("delivered", None) in {outcome[e] for e in before}
