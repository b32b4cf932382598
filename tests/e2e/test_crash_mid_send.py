"""A worker SIGKILLed while its pushes are in flight: nobody is lost, and the only second
copies the provider sees are of pushes the delivery log marks as resent after a claim was
taken over — with the same apns-id, so a receiver can drop them."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from clarion import channels
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.fakes.behaviour import Rule
from clarion.fakes.suite import FakeProviders
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import Device
from clarion.supervisor import Supervisor, WorkerSpec
from clarion.testing import users
from clarion.types import UserId
from tests.backends import query

pytestmark = pytest.mark.slow
FOLLOWERS = 2_000


async def _prepare(settings: Settings, fakes: FakeProviders) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        doc = fakes.clarion_config()["apns"]
        await runtime.stores.providers.put("apns", stored(channels.parse("apns", doc)), now)
        await runtime.stores.types.put(TypeSpec("new_post", Priority.P1, (Channel.PUSH,)), now)
        fans = users(FOLLOWERS, "fan")
        for i, fan in enumerate(fans):
            phone = Device(
                fan, "phone", Platform.IOS, f"{i:064x}", {}, registered_at=now, last_seen=now
            )
            await runtime.stores.devices.register(phone, max_per_user=10)
        await runtime.stores.followers.add(UserId("star"), fans)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_worker_killed_mid_send_loses_nothing_and_logs_every_resend(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(
        db=tmp_path / "crash.db",
        broker=broker_url,
        store=store_url,
        batch_size=100,
        lease_s=3.0,
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "k" * 32,
    )
    key = asyncio.run(_prepare(settings, fakes))
    # A slow APNs: every push takes half a second, so a claim is always in flight.
    fakes.apns.behaviour.add(Rule(status=200, latency_s=0.5))
    with LocalClarion(settings, [WorkerSpec("doomed")], log_dir=tmp_path / "logs") as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        event_id = api.post(
            "/v1/notifications", json={"type": "new_post", "actor": "star", "fan_out": "followers"}
        ).json()["event_id"]
        deadline = time.monotonic() + 60
        while len(fakes.apns.received) < FOLLOWERS // 5:
            assert time.monotonic() < deadline, "pushes never started flowing"
            time.sleep(0.01)
        time.sleep(0.2)  # into the next claim's sends
        os.kill(local.pids()["doomed"], signal.SIGKILL)
        assert local.supervisor is not None
        local.supervisor.processes["doomed"].wait(10)
        before_rescue = len(fakes.apns.received)
        assert before_rescue < FOLLOWERS

        rescuer = Supervisor([WorkerSpec("rescuer")], local.env(), quiet=True)
        rescuer.start()
        try:
            deadline = time.monotonic() + 120
            while (logged := _logged(settings)) < FOLLOWERS:
                assert time.monotonic() < deadline, f"{logged} of {FOLLOWERS} logged"
                time.sleep(0.1)
        finally:
            rescuer.stop()
        api.close()

    received = fakes.apns.received.all()
    copies = Counter(r["token"] for r in received)
    assert len(copies) == FOLLOWERS  # nobody lost
    twice = {token for token, n in copies.items() if n > 1}
    assert max(copies.values()) <= 2
    resent = {
        f"{int(user.removeprefix('fan')):064x}"
        for (user,) in query(
            settings,
            "SELECT user_id FROM deliveries WHERE channel = 'push' AND outcome = 'delivered'"
            " AND reason LIKE '%resent on claim%'",
        )
    }
    assert twice, "the kill should have caught pushes in flight"
    assert twice <= resent  # every second copy is in the trail
    ids: dict[str, set[str]] = {}
    for r in received:
        if r["token"] in twice:
            ids.setdefault(r["token"], set()).add(r["headers"]["apns-id"])
    assert all(len(v) == 1 for v in ids.values())  # the same apns-id: dedupable
    (delivered,) = query(
        settings,
        "SELECT count(*), count(DISTINCT user_id) FROM deliveries"
        " WHERE channel = 'push' AND outcome = 'delivered'",
    )
    assert delivered == (FOLLOWERS, FOLLOWERS)
    ((state,),) = query(settings, "SELECT state FROM events WHERE event_id = ?", event_id)
    assert state == "completed"


def _logged(settings: Settings) -> int:
    ((count,),) = query(
        settings,
        "SELECT count(DISTINCT user_id) FROM deliveries WHERE channel = 'push'"
        " AND outcome = 'delivered'",
    )
    return int(count)
