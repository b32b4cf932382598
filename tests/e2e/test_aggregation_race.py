"""Aggregation with real worker processes: 5,000 likes on one photo decided by four
workers at once are two pushes and one inbox entry; a worker SIGKILLed while sending the
summary loses nothing and sends no second summary of its own."""

from __future__ import annotations

import asyncio
import os
import signal
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
from clarion.supervisor import Supervisor, WorkerSpec, standard_workers
from clarion.types import UserId
from tests.backends import query

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ANN = UserId("ann")
TOKEN = "a1" * 32


async def _prepare(settings: Settings, fakes: FakeProviders, window_s: int) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        apns = fakes.clarion_config()["apns"]
        await runtime.stores.providers.put("apns", stored(channels.parse("apns", apns)), now)
        like = TypeSpec("like", Priority.P1, (Channel.PUSH, Channel.IN_APP), aggregate_s=window_s)
        await runtime.stores.types.put(like, now)
        phone = Device(ANN, "phone", Platform.IOS, TOKEN, registered_at=now, last_seen=now)
        await runtime.stores.devices.register(phone, max_per_user=5)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


def _likes(api: httpx.Client, fans: range) -> None:
    events = [{"type": "like", "target": ANN, "actor": f"fan{n}", "object": "photo"} for n in fans]
    for start in range(0, len(events), 1000):
        reply = api.post("/v1/notifications/batch", json={"events": events[start : start + 1000]})
        assert reply.json()["accepted"] == len(events[start : start + 1000]), reply.text


def _settings(tmp_path: Path, broker_url: str | None, store_url: str | None) -> Settings:
    return Settings(
        db=tmp_path / "agg.db",
        broker=broker_url,
        store=store_url,
        batch_size=20,  # small messages: many claims, spread over the workers
        lease_s=3.0,
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "k" * 32,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_five_thousand_likes_from_four_workers_are_two_pushes_and_one_entry(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> None:
    settings = _settings(tmp_path, broker_url, store_url)
    key = asyncio.run(_prepare(settings, fakes, window_s=15))
    with LocalClarion(settings, standard_workers(4, 0)) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        _likes(api, range(5000))
        deadline = time.monotonic() + 90
        while len(fakes.apns.received) < 2:
            assert time.monotonic() < deadline, f"{len(fakes.apns.received)} pushes"
            time.sleep(0.1)
        time.sleep(2.0)  # a second summary, or a straggler's push, would arrive by now
        inbox = api.get(f"/v1/users/{ANN}/inbox").json()
        api.close()
    workers = query(settings, "SELECT count(DISTINCT worker) FROM batches")[0][0]
    assert workers >= 2, "the race needs several workers deciding"
    first, summary = (r["payload"]["aps"]["alert"]["body"] for r in fakes.apns.received.all())
    assert first.endswith(" · photo")
    assert summary.endswith(" and 4,997 others")  # two named: 4,999 new since the first
    (entry,) = inbox["items"]
    assert entry["aggregate"]["count"] == 5000
    assert inbox["unread_count"] == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_worker_killed_while_sending_the_summary_loses_nothing(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> None:
    settings = _settings(tmp_path, broker_url, store_url)
    key = asyncio.run(_prepare(settings, fakes, window_s=2))
    with LocalClarion(settings, [WorkerSpec("doomed")]) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        _likes(api, range(3))
        deadline = time.monotonic() + 60
        while len(fakes.apns.received) < 1:
            assert time.monotonic() < deadline, "the first like never went out"
            time.sleep(0.05)
        # The summary's push hangs at the provider: the worker is mid-send when it dies.
        fakes.apns.behaviour.add(Rule(match=TOKEN, status=200, latency_s=4.0, times=1))
        while fakes.apns.behaviour.misbehaved < 1:
            assert time.monotonic() < deadline, "the summary never started"
            time.sleep(0.02)
        os.kill(local.pids()["doomed"], signal.SIGKILL)
        assert local.supervisor is not None
        local.supervisor.processes["doomed"].wait(10)
        rescuer = Supervisor([WorkerSpec("rescuer")], local.env(), quiet=True)
        rescuer.start()
        try:
            while len(_summaries(settings)) < 1:
                assert time.monotonic() < deadline, "the summary was dropped"
                time.sleep(0.1)
            time.sleep(1.0)
        finally:
            rescuer.stop()
        api.close()
    assert len(_summaries(settings)) == 1  # one summary in the trail, whoever sent it
    received = fakes.apns.received.all()
    copies = [r for r in received if r["payload"]["aps"]["alert"]["body"] == "fan2 and fan1"]
    assert 1 <= len(copies) <= 2
    assert len({r["headers"]["apns-id"] for r in copies}) == 1  # a resend is dedupable
    collapse = {r["headers"]["apns-collapse-id"] for r in received}
    assert len(collapse) == 1  # and replaces the first on the phone


def _summaries(settings: Settings) -> list[tuple[str, ...]]:
    return query(
        settings,
        "SELECT reason FROM deliveries WHERE channel = 'push' AND outcome = 'delivered'"
        " AND seq <> (SELECT min(seq) FROM events)",
    )
