"""Push throughput: the whole pipeline sending to the APNs look-alike over HTTP/2, against
a bare HTTP/2 client hitting the same server in the same run.

The look-alikes run in their own process. For each worker count, a fresh database gets
``pushes`` followers with one iPhone each (not timed); one ``followers`` event then goes
through the real API and worker processes — fan-out, preferences, routing, rendering,
the JWT, HTTP/2, the delivery log — and we time the 202 to the last recorded delivery.
The ceiling (:mod:`clarion.bench.h2raw`) is bare HTTP/2 clients in as many processes.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clarion.bench.driver import (
    Progress,
    fake_providers_process,
    lookalike_control,
    send_event,
    wait_until_done,
)
from clarion.bench.h2raw import apns_config, device_token, raw_h2_rate
from clarion.channels import apns
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Platform, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import Device
from clarion.supervisor import standard_workers
from clarion.types import UserId

CREATOR = UserId("app")


@dataclass
class PushReport:
    pushes: int
    workers: int
    sends_per_s: float
    """With ``workers`` worker processes."""
    raw_h2_requests_per_s: float
    """With as many bare-client processes as ``workers``."""
    fraction_of_raw: float
    sends_per_s_by_workers: dict[int, float]
    raw_h2_requests_per_s_by_processes: dict[int, float]
    received_by_lookalike: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_push(pushes: int, *, workers: int = 2, progress: Progress | None = None) -> PushReport:
    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as scratch:
        folder = Path(scratch)
        with fake_providers_process(folder) as config:
            # One provider token for everyone, as in a deployment: APNs refuses a new one
            # within 20 minutes of the last.
            issued = int(time.time())
            token = apns.provider_token(apns_config(config["apns"]), issued)
            rates: dict[int, float] = {}
            raw: dict[int, float] = {}
            received = 0
            for count in sorted({1, workers}):
                phase = f"{count} bare HTTP/2 client(s)"
                report(phase, 0, pushes)
                raw[count] = raw_h2_rate(config["apns"], token, pushes, processes=count)
                report(phase, pushes, pushes)
                setup = _Setup(folder / f"w{count}", config, (token, issued), pushes)
                rates[count], received = _pipeline_rate(setup, count, report)
    return PushReport(
        pushes=pushes,
        workers=workers,
        sends_per_s=round(rates[workers]),
        raw_h2_requests_per_s=round(raw[workers]),
        fraction_of_raw=round(rates[workers] / raw[workers], 3),
        sends_per_s_by_workers={n: round(r) for n, r in rates.items()},
        raw_h2_requests_per_s_by_processes={n: round(r) for n, r in raw.items()},
        received_by_lookalike=received,
    )


@dataclass(frozen=True)
class _Setup:
    folder: Path
    config: dict[str, Any]
    provider_token: tuple[str, int]
    pushes: int


def _pipeline_rate(setup: _Setup, workers: int, report: Progress) -> tuple[float, int]:
    setup.folder.mkdir()
    settings = Settings(db=setup.folder / "bench.db")
    pushes = setup.pushes
    control = lookalike_control(setup.config)
    with control:
        control.delete("/_control/apns/received")
        key = asyncio.run(_prepare(settings, setup, report, f"{workers} worker(s)"))
        with LocalClarion(settings, standard_workers(workers, 0)) as local:
            accepted_at, event_id = send_event(
                local.url,
                key,
                {"type": "bench_push", "actor": CREATOR, "fan_out": "followers", "object": "p1"},
            )
            phase = f"pushing, {workers} worker(s)"
            status = wait_until_done(
                local.url, key, event_id, pushes, report, phase, outcomes=pushes
            )
            finished = time.time()
        received = int(control.get("/_control/apns/received", params={"count": 1}).json()["count"])
    if status["delivered"] != pushes or received != pushes:
        raise BackendError(
            f"expected {pushes} pushes; the look-alike got {received}; status: {status}"
        )
    return pushes / (finished - accepted_at), received


async def _prepare(settings: Settings, setup: _Setup, report: Progress, label: str) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        await runtime.stores.types.put(
            TypeSpec("bench_push", Priority.P1, (Channel.PUSH,), 3600), now
        )
        parsed = apns_config(setup.config["apns"])
        await runtime.stores.providers.put("apns", stored(parsed), now)
        token, issued = setup.provider_token
        await runtime.stores.provider_tokens.replace("apns", token, issued, expected=None)
        users = [UserId(f"u{i:08d}") for i in range(setup.pushes)]
        await runtime.stores.followers.add(CREATOR, users)
        for i, user in enumerate(users):
            device = Device(
                user, "phone", Platform.IOS, device_token(i), {}, registered_at=now, last_seen=now
            )
            await runtime.stores.devices.register(device, max_per_user=10)
            if (i + 1) % 1000 == 0 or i + 1 == setup.pushes:
                report(f"devices for {label}", i + 1, setup.pushes)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()
