"""Every process's logs, from a full pipeline at debug level: JSON lines that name the
event, batch, priority, stage and the producer's trace id — and not one of the run's
secrets (keys, tokens, addresses, provider credentials)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from clarion import channels
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.fakes.suite import FakeProviders
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Platform, Priority, Routing, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import Device, UserProfile
from clarion.supervisor import standard_workers
from clarion.types import UserId

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
ANN = UserId("ann")
EMAIL = "ann.secret-address@example.org"
PHONE_TOKEN = "ab" * 32


async def _prepare(settings: Settings, fakes: FakeProviders) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        config = fakes.clarion_config()
        for name in ("apns", "smtp"):
            await runtime.stores.providers.put(
                name, stored(channels.parse(name, config[name])), now
            )
        await runtime.stores.types.put(
            TypeSpec(
                "reply",
                Priority.P1,
                (Channel.IN_APP, Channel.PUSH, Channel.EMAIL),
                routing=Routing.ALL,
            ),
            now,
        )
        await runtime.stores.users.put(UserProfile(ANN, email=EMAIL, email_verified=True))
        phone = Device(ANN, "phone", Platform.IOS, PHONE_TOKEN, registered_at=now, last_seen=now)
        await runtime.stores.devices.register(phone, max_per_user=5)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


def test_logs_name_the_trace_and_hold_no_secret(tmp_path: Path, fakes: FakeProviders) -> None:
    settings = Settings(
        db=tmp_path / "logs.db",
        allow_private_targets=True,
        public_url="https://clarion.example",
        signing_keys="k1:" + "s" * 32,
        user_token_keys="u1:" + "t" * 32,
    )
    key = asyncio.run(_prepare(settings, fakes))
    logs = tmp_path / "logs"
    local = LocalClarion(settings, standard_workers(2, 0), log_dir=logs, log_level="debug")
    with local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        token = api.post(f"/v1/users/{ANN}/tokens", json={}).json()["token"]
        inbox = api.get("/v1/me/inbox", headers={"Authorization": f"Bearer {token}"})
        assert inbox.status_code == 200
        sent = api.post(
            "/v1/notifications",
            json={"type": "reply", "target": ANN, "payload": {"title": "Hi", "body": "there"}},
            headers={"traceparent": TRACEPARENT},
        )
        assert sent.status_code == 202
        event_id = sent.json()["event_id"]
        deadline = time.monotonic() + 60
        while len(fakes.apns.received) < 1 or len(fakes.smtp.received) < 1:
            assert time.monotonic() < deadline, "push and email delivered"
            time.sleep(0.1)
        refused = api.post("/v1/notifications", json={"type": "reply", "target": 7})
        assert refused.status_code == 400
        api.get("/v1/me/inbox", headers={"Authorization": f"Bearer {token}x"})  # forged
        trail = api.get(f"/v1/users/{ANN}/deliveries", params={"event_id": event_id}).json()
        api.close()
    assert {item["trace_id"] for item in trail["items"]} == {TRACE}

    lines = [line for f in sorted(logs.glob("*.log")) for line in f.read_text().splitlines()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "the processes logged"
    about = [r for r in records if r.get("trace_id") == TRACE]
    stages = {r.get("stage") for r in about}
    assert {"evaluate", "push", "email"} <= stages, stages
    for record in about:
        assert record["event_id"] == event_id
        assert record["priority"] == "P1"
        assert record["batch_key"]

    secrets = {
        "the admin key": key,
        "the user token": token,
        "the email address": EMAIL,
        "the device token": PHONE_TOKEN,
        "the unsubscribe signing key": "s" * 32,
        "the user token key": "t" * 32,
        "the APNs private key": fakes.clarion_config()["apns"]["private_key"].splitlines()[1],
    }
    text = "\n".join(lines)
    for what, secret in secrets.items():
        assert secret not in text, f"{what} is in a log line"
