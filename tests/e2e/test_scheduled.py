"""Scheduled sends with real processes and the real clock: each goes out within a second
of its time on an idle system, on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import httpx
import pytest

from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _prepare(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        spec = TypeSpec("reminder", Priority.P1, (Channel.IN_APP,))
        await runtime.stores.types.put(spec, runtime.clock.now())
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_scheduled_sends_go_out_within_a_second_of_their_time(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(db=tmp_path / "s.db", broker=broker_url, store=store_url)
    key = asyncio.run(_prepare(settings))
    with LocalClarion(settings, standard_workers(1, 0)) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        due = {f"u{n}": time.time() + 2 + n for n in range(3)}
        for user, at in due.items():
            when = dt.datetime.fromtimestamp(at, dt.UTC).isoformat()
            body = {"type": "reminder", "target": user, "send_at": when}
            assert api.post("/v1/notifications", json=body).status_code == 202
        arrived: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while len(arrived) < len(due):
            assert time.monotonic() < deadline, arrived
            for user in due.keys() - arrived.keys():
                if api.get(f"/v1/users/{user}/inbox").json()["items"]:
                    arrived[user] = time.time()
            time.sleep(0.02)
        api.close()
    for user, at in due.items():
        assert -0.05 <= arrived[user] - at <= 1.0, (user, arrived[user] - at)
