"""A six-second APNs outage costs seconds and loses nothing.

100 people are each sent one P1 push (TTL 10 minutes) while the APNs look-alike (real
HTTP/2) answers 503. The breaker opens; what it turns away waits for it instead of spending
its retries; the first probe comes two seconds after opening and the next ones back off,
so pushes resume within seconds of the recovery — and every person gets exactly one.
"""

from __future__ import annotations

import asyncio
import time
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
from clarion.supervisor import standard_workers
from clarion.testing import users
from tests.backends import query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
PEOPLE = users(100, "viewer")
OUTAGE_S = 6.0


async def _prepare(settings: Settings, fakes: FakeProviders) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        apns = fakes.clarion_config()["apns"]
        await runtime.stores.providers.put("apns", stored(channels.parse("apns", apns)), now)
        spec = TypeSpec("episode", Priority.P1, (Channel.PUSH,), ttl_seconds=600)
        await runtime.stores.types.put(spec, now)
        for i, person in enumerate(PEOPLE):
            token = f"{i + 1:064x}"
            phone = Device(person, "phone", Platform.IOS, token, registered_at=now, last_seen=now)
            await runtime.stores.devices.register(phone, max_per_user=5)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_six_second_outage_loses_no_push_and_recovers_within_seconds(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(
        db=tmp_path / "blip.db",
        broker=broker_url,
        store=store_url,
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "k" * 32,
    )
    key = asyncio.run(_prepare(settings, fakes))
    with LocalClarion(settings, standard_workers(2, 0)) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        fakes.apns.behaviour.add(Rule(status=503, body={"reason": "ServiceUnavailable"}))
        began = time.time()
        for person in PEOPLE:
            reply = api.post("/v1/notifications", json={"type": "episode", "target": person})
            assert reply.status_code == 202
        while time.time() < began + OUTAGE_S:
            time.sleep(0.05)
        refused = fakes.apns.behaviour.misbehaved
        fakes.apns.behaviour.clear()
        recovered = time.time()
        deadline = time.monotonic() + 90
        while len(fakes.apns.received) < len(PEOPLE):
            assert time.monotonic() < deadline, f"{len(fakes.apns.received)} pushes arrived"
            time.sleep(0.1)
        time.sleep(1.0)  # anything extra would arrive now
        api.close()

    received = fakes.apns.received.all()
    assert refused >= 20, "the outage was felt (the breaker needs 20 sends to open)"
    assert sorted(r["token"] for r in received) == [f"{i + 1:064x}" for i in range(100)]
    first = min(r["at"] for r in received) - recovered
    assert first <= 10.0, f"the first push came {first:.1f}s after the recovery"
    rows = query(
        settings,
        "SELECT user_id, count(*) FROM deliveries WHERE channel = 'push'"
        " AND outcome = 'delivered' GROUP BY user_id",
    )
    assert sorted(rows) == [(person, 1) for person in PEOPLE]
    failed = query(
        settings,
        "SELECT count(*) FROM deliveries WHERE outcome = 'failed' AND reason LIKE 'gave up%'",
    )
    assert failed == [(0,)]
