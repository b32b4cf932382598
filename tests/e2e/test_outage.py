"""APNs goes down in the middle of a 100,000-follower fan-out.

Real API and worker processes, the look-alikes in this process. The APNs look-alike answers
503 for a few seconds once pushes are flowing. What must hold: the shared breaker opens and
the workers stop hammering it; people whose push could not go get the email instead (their
next channel), everyone gets the in-app entry; push resumes once APNs is back; and every
follower ends with exactly one push or one fallback email — never both, never two.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

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
from clarion.pipeline.dispatch import SEND_CHUNK
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers
from clarion.testing import users
from clarion.types import UserId
from tests.backends import insert_many, query

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.usefixtures("untraced_processes"),
]
FOLLOWERS = 100_000
OUTAGE_S = 4.0
OUTAGE_AFTER_PUSHES = 10_000


async def _prepare(settings: Settings, fakes: FakeProviders) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        for name, doc in fakes.clarion_config().items():
            if name in ("apns", "smtp"):
                await runtime.stores.providers.put(name, stored(channels.parse(name, doc)), now)
        await runtime.stores.types.put(
            TypeSpec("new_post", Priority.P1, (Channel.PUSH, Channel.EMAIL, Channel.IN_APP)), now
        )
        fans = users(FOLLOWERS, "fan")
        await insert_many(
            runtime,
            "INSERT INTO users (user_id, email, email_verified, updated_at) VALUES (?, ?, ?, ?)",
            [(fan, f"{fan}@example.org", True, now) for fan in fans],
        )
        await insert_many(
            runtime,
            "INSERT INTO devices (user_id, device_id, platform, token, state, registered_at,"
            " last_seen) VALUES (?, 'phone', ?, ?, 'active', ?, ?)",
            [(fan, Platform.IOS.value, f"{i:064x}", now, now) for i, fan in enumerate(fans)],
        )
        await runtime.stores.followers.add(UserId("star"), fans)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_apns_outage_during_a_large_fanout(
    tmp_path: Path, fakes: FakeProviders, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(
        db=tmp_path / "outage.db",
        broker=broker_url,
        store=store_url,
        batch_size=100,
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "k" * 32,
        breaker_probe_s=1.0,
    )
    key = asyncio.run(_prepare(settings, fakes))
    with (
        LocalClarion(settings, standard_workers(2, 0), log_dir=tmp_path / "logs") as local,
        httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"}) as api,
    ):
        event_id = api.post(
            "/v1/notifications", json={"type": "new_post", "actor": "star", "fan_out": "followers"}
        ).json()["event_id"]
        deadline = time.monotonic() + 120
        while len(fakes.apns.received) < OUTAGE_AFTER_PUSHES:
            assert time.monotonic() < deadline, "pushes never started flowing"
            time.sleep(0.01)
        outage = Rule(status=503, body={"reason": "ServiceUnavailable"}, for_s=OUTAGE_S)
        fakes.apns.behaviour.add(outage)
        outage_began = time.time()
        while (breaker := _provider(api, "apns")["health"])["state"] == "closed":
            assert time.time() < outage_began + OUTAGE_S, f"never opened: {breaker}"
            time.sleep(0.05)
        deadline = time.monotonic() + 240  # inside the test's timeout: say what is left
        while (status := api.get(f"/v1/notifications/{event_id}").json())["state"] != "completed":
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        _wait_for_outcomes(settings, FOLLOWERS * 2, deadline)
        health = _provider(api, "apns")["health"]

    outage_ended = outage_began + OUTAGE_S
    refused = fakes.apns.behaviour.misbehaved
    received = fakes.apns.received.all()
    pushed_during = sum(1 for r in received if outage_began <= r["at"] < outage_ended)
    # At its pace the outage would have cost about 10,000 refused pushes. What is in flight
    # when it starts still goes: at most two chunks of sends per worker — one that straddles
    # the start, one that fails outright and opens the breaker — and the probes; the rest
    # of the worker's claim waits for the breaker.
    in_flight = 2 * 2 * SEND_CHUNK
    assert 20 <= refused <= in_flight + 10, refused
    assert pushed_during == 0
    assert any(r["at"] > outage_ended for r in received), "push never resumed"
    assert health["state"] == "closed", health

    pushed = _delivered(settings, "push")
    mailed = _delivered(settings, "email")
    assert len(pushed) == len({r["token"] for r in received}) == len(received)
    assert len(mailed) == len(fakes.smtp.received)
    assert not pushed & mailed, "someone got both"
    assert len(pushed) + len(mailed) == FOLLOWERS, "someone got neither"
    assert len(mailed) >= refused  # each refused push fell back to an email
    ((fell_back,),) = query(
        settings,
        "SELECT count(DISTINCT user_id) FROM deliveries WHERE channel = 'push'"
        " AND outcome = 'failed' AND reason LIKE '%falling back to email'",
    )
    assert fell_back == len(mailed)
    assert len(_delivered(settings, "in_app")) == FOLLOWERS


def _provider(api: httpx.Client, name: str) -> dict[str, Any]:
    found: dict[str, Any] = api.get(f"/v1/providers/{name}").json()
    return found


def _wait_for_outcomes(settings: Settings, expected: int, deadline: float) -> None:
    """Channel sends finish after the event's batches are evaluated."""
    while True:
        ((count,),) = query(settings, "SELECT count(*) FROM deliveries WHERE outcome = 'delivered'")
        if count >= expected:
            return
        assert time.monotonic() < deadline, f"{count} of {expected} deliveries"
        time.sleep(0.2)


def _delivered(settings: Settings, channel: str) -> set[str]:
    rows = query(
        settings,
        "SELECT user_id FROM deliveries WHERE channel = ? AND outcome = 'delivered'",
        channel,
    )
    found = {r[0] for r in rows}
    assert len(found) == len(rows), f"duplicate {channel} deliveries"
    return found
