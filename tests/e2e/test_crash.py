"""A worker SIGKILLed in the middle of a 100,000-follower fan-out loses nothing and
duplicates nothing: exactly one inbox entry and one delivery-log row per follower."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.supervisor import Supervisor, WorkerSpec
from clarion.testing import users
from clarion.types import UserId
from tests.backends import query

pytestmark = pytest.mark.slow
FOLLOWERS = 100_000


async def _prepare(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        await runtime.stores.types.put(
            TypeSpec("new_post", Priority.P1, (Channel.IN_APP,)), runtime.clock.now()
        )
        ids = users(FOLLOWERS, "fan")
        for start in range(0, FOLLOWERS, 20_000):
            await runtime.stores.followers.add(UserId("star"), ids[start : start + 20_000])
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


def _status(api: httpx.Client, event_id: str) -> dict[str, Any]:
    status: dict[str, Any] = api.get(f"/v1/notifications/{event_id}").json()
    return status


@pytest.mark.parametrize("backend", ["sqlite", "redis", "postgres"])
def test_worker_killed_mid_fanout_is_redelivered_without_duplicates(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    """On Redis the frozen worker's batches sit in the consumer group's pending entries;
    the rescuer claims them once their lease runs out."""
    settings = Settings(
        db=tmp_path / "crash.db",
        broker=broker_url,
        store=store_url,
        batch_size=100,
        fanout_slice_batches=5,
        lease_s=3.0,
    )
    key = asyncio.run(_prepare(settings))
    with LocalClarion(settings, [WorkerSpec("doomed")], log_dir=tmp_path / "logs") as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        event_id = api.post(
            "/v1/notifications", json={"type": "new_post", "actor": "star", "fan_out": "followers"}
        ).json()["event_id"]
        doomed = local.pids()["doomed"]
        deadline = time.monotonic() + 60
        while _status(api, event_id)["delivered"] < FOLLOWERS // 10:
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.002)
        os.kill(doomed, signal.SIGSTOP)  # freeze it wherever it is, holding its claims
        frozen = _status(api, event_id)
        assert frozen["state"] == "fanning_out"
        assert frozen["delivered"] < FOLLOWERS
        os.kill(doomed, signal.SIGKILL)
        assert local.supervisor is not None
        local.supervisor.processes["doomed"].wait(10)

        rescuer = Supervisor([WorkerSpec("rescuer")], local.env(), quiet=True)
        rescuer.start()
        try:
            deadline = time.monotonic() + 120
            while (status := _status(api, event_id))["state"] != "completed":
                assert status["state"] != "failed", status
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
        finally:
            rescuer.stop()
        api.close()

    assert status["recipients"] == FOLLOWERS
    assert status["delivered"] == FOLLOWERS
    assert status["batches_done"] == status["batches_total"] == FOLLOWERS // 100
    ((entries, distinct),) = query(
        settings,
        "SELECT count(*), count(DISTINCT user_id) FROM inbox"
        " WHERE seq = (SELECT seq FROM events WHERE event_id = ?)",
        event_id,
    )
    assert entries == distinct == FOLLOWERS
    ((logged, logged_users),) = query(
        settings,
        "SELECT count(*), count(DISTINCT user_id) FROM deliveries WHERE outcome = 'delivered'",
    )
    assert logged == logged_users == FOLLOWERS
    workers = {w for (w,) in query(settings, "SELECT DISTINCT worker FROM batches")}
    assert workers == {"doomed", "rescuer"}
