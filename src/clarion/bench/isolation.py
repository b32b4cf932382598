"""P0 isolation: how long a one-time code takes, idle and under a marketing flood.

Everything real on the embedded backend: the API and worker processes as ``clarion serve``
starts them (general workers plus the P0-reserved one), the look-alikes in their own
process. An OTP is a P0 SMS to one person; its latency runs from just before our POST to
the moment the Twilio look-alike received the request (both wall clocks of this machine).

First OTPs are sent one at a time at a steady pace with nothing else going on (idle).
Then a P2 campaign to ``flood`` followers (in-app) is accepted and OTPs keep coming at the
same pace until it has been delivered; that is repeated ``rounds`` times (a new campaign to
the same followers each time) and the OTPs of every round are pooled. One million
recipients are delivered in under two seconds here, about 35 OTPs: their "p99" would be
their maximum, so one round is a poor estimate. Meanwhile we note what shedding did: P2
events the API refused with 429 and the load levels it reported.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clarion.bench.driver import Progress, fake_providers_process, lookalike_control
from clarion.bench.fanout import load_followers
from clarion.channels import parse
from clarion.channels.config import stored
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import open_runtime
from clarion.stores.records import UserProfile
from clarion.supervisor import standard_workers
from clarion.types import UserId

BRAND = UserId("brand")
OTP_EVERY_S = 0.05
WARM_UP_OTPS = 10
IDLE_OTPS = 300
"""As many as the floods give (about 100 a round): from 100, the idle "p99" was the second
largest of them, and one stray 72 ms OTP once made the flood look four times faster."""
"""Sent first and not timed: the first sends open connections and sign tokens."""
MAX_FLOOD_OTPS = 2000
"""OTPs sent under the floods at most (people with a phone are made for as many)."""


@dataclass
class IsolationReport:
    flood_recipients: int
    """Per round: each round is a campaign to this many people."""
    rounds: int
    p0_p50_idle_ms: float
    p0_p99_idle_ms: float
    p0_p50_flood_ms: float
    p0_p99_flood_ms: float
    p99_ratio: float
    p0_accept_p99_idle_ms: float
    """The API's part: POST → 202 (the rest is queue, worker and the SMS look-alike)."""
    p0_accept_p99_flood_ms: float
    otps_idle: int
    otps_flood: int
    flood_seconds: float
    """All rounds together."""
    flood_recipients_per_s: float
    p2_refused_during_flood: int
    p2_probes_during_flood: int
    load_levels_seen: list[str] = field(default_factory=list)
    workers: int = 0
    p0_workers: int = 0
    idle_ms: list[float] = field(default_factory=list)
    """Every idle OTP's time to the SMS look-alike (the distribution the report plots)."""
    flood_ms: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Run:
    """The scenario's moving parts."""

    api: httpx.Client
    sms: httpx.Client
    people: int
    """People with a phone: OTP ``i`` goes to person ``i``."""
    sent: dict[str, float] = field(default_factory=dict)
    """Phone number → when its OTP was posted."""
    accept_ms: dict[str, float] = field(default_factory=dict)
    """Phone number → how long the API took to answer 202."""
    refused: int = 0
    probes: int = 0
    levels: list[str] = field(default_factory=list)

    def send_otp(self, index: int) -> None:
        phone = _phone(index)
        self.sent[phone] = time.time()
        answer = self.api.post(
            "/v1/notifications",
            json={"type": "otp", "target": f"otp{index:05d}", "payload": {"code": "424242"}},
        )
        self.accept_ms[phone] = (time.time() - self.sent[phone]) * 1000
        if answer.status_code != 202:
            raise BackendError(f"an OTP was refused: {answer.status_code} {answer.text}")

    def probe_p2(self) -> None:
        """What a P2 sender meets now; and the load level the API reports."""
        promo = {"type": "promo", "target": "u000000000", "object": f"probe-{self.probes}"}
        answer = self.api.post("/v1/notifications", json=promo)
        self.probes += 1
        self.refused += answer.status_code == 429
        level = self.api.get("/v1/load").json()["level"]
        if not self.levels or self.levels[-1] != level:
            self.levels.append(level)

    def latencies_ms(self, phones: list[str], timeout_s: float = 60.0) -> list[float]:
        """Wait until the look-alike has every one of ``phones``; their latencies."""
        deadline = time.monotonic() + timeout_s
        wanted = set(phones)
        while True:
            received = self.sms.get("/_control/sms_twilio/received").json()
            arrived = {r["form"]["To"]: r["at"] for r in received}
            if wanted <= arrived.keys():
                return [(arrived[p] - self.sent[p]) * 1000 for p in phones]
            if time.monotonic() > deadline:
                raise BackendError(f"{len(wanted - arrived.keys())} OTPs never arrived")
            time.sleep(0.1)


def run_isolation(
    flood: int, *, otps_idle: int = IDLE_OTPS, rounds: int = 3, progress: Progress | None = None
) -> IsolationReport:
    report = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="clarion-bench-") as scratch:
        folder = Path(scratch)
        settings = Settings(db=folder / "bench.db", batch_size=1000, allow_private_targets=True)
        with fake_providers_process(folder) as config:
            key = asyncio.run(_prepare(settings, config, flood, otps_idle, report))
            workers = standard_workers(
                settings.workers, settings.p0_workers, bulk_nice=settings.bulk_worker_nice
            )
            with LocalClarion(settings, workers) as local:
                headers = {"Authorization": f"Bearer {key}"}
                api = httpx.Client(base_url=local.url, headers=headers, timeout=30)
                sms = lookalike_control(config)
                with api, sms:
                    run = _Run(api, sms, WARM_UP_OTPS + otps_idle + MAX_FLOOD_OTPS)
                    idle_phones = _idle(run, otps_idle, report)
                    flood_phones, flood_s = _floods(run, flood, rounds, report)
                    idle = run.latencies_ms(idle_phones)
                    under_flood = run.latencies_ms(flood_phones)
    return _summary(
        idle,
        under_flood,
        ([run.accept_ms[p] for p in idle_phones], [run.accept_ms[p] for p in flood_phones]),
        (flood, rounds),
        flood_s,
        run,
        settings,
    )


def _idle(run: _Run, count: int, report: Progress) -> list[str]:
    for i in range(WARM_UP_OTPS + count):
        run.send_otp(i)
        report("OTPs, idle", i + 1, WARM_UP_OTPS + count)
        time.sleep(OTP_EVERY_S)
    return [_phone(i) for i in range(WARM_UP_OTPS, WARM_UP_OTPS + count)]


def _floods(run: _Run, flood: int, rounds: int, report: Progress) -> tuple[list[str], float]:
    """Every round's OTPs, and the seconds the campaigns took together."""
    phones: list[str] = []
    seconds = 0.0
    for round_no in range(rounds):
        report("campaign rounds", round_no, rounds)
        started = time.time()
        phones += _flood(run, flood, f"sale-{round_no}", report)
        seconds += time.time() - started
    report("campaign rounds", rounds, rounds)
    return phones, seconds


def _flood(run: _Run, flood: int, campaign: str, report: Progress) -> list[str]:
    """The OTPs sent while a campaign to ``flood`` followers was being delivered."""
    answer = run.api.post(
        "/v1/notifications",
        json={"type": "promo", "actor": BRAND, "fan_out": "followers", "object": campaign},
    )
    if answer.status_code != 202:
        raise BackendError(f"the campaign was refused: {answer.status_code} {answer.text}")
    event_id = answer.json()["event_id"]
    polls = 0
    phones: list[str] = []
    while True:
        if len(run.sent) < run.people:
            index = len(run.sent)
            run.send_otp(index)
            phones.append(_phone(index))
        polls += 1
        if polls % 10 == 0:
            run.probe_p2()
            status = run.api.get(f"/v1/notifications/{event_id}").json()
            report("campaign delivered", status["delivered"], flood)
            if status["state"] in ("completed", "failed"):
                return phones
        time.sleep(OTP_EVERY_S)


def _summary(
    idle: list[float],
    under_flood: list[float],
    accepts: tuple[list[float], list[float]],
    campaigns: tuple[int, int],
    flood_s: float,
    run: _Run,
    settings: Settings,
) -> IsolationReport:
    p99_idle, p99_flood = _p99(idle), _p99(under_flood)
    recipients, rounds = campaigns
    return IsolationReport(
        flood_recipients=recipients,
        rounds=rounds,
        p0_p50_idle_ms=round(statistics.median(idle), 1),
        p0_p99_idle_ms=round(p99_idle, 1),
        p0_p50_flood_ms=round(statistics.median(under_flood), 1),
        p0_p99_flood_ms=round(p99_flood, 1),
        p99_ratio=round(p99_flood / p99_idle, 2) if p99_idle else 0.0,
        p0_accept_p99_idle_ms=round(_p99(accepts[0]), 1),
        p0_accept_p99_flood_ms=round(_p99(accepts[1]), 1),
        otps_idle=len(idle),
        otps_flood=len(under_flood),
        flood_seconds=round(flood_s, 2),
        flood_recipients_per_s=round(recipients * rounds / flood_s) if flood_s else 0,
        p2_refused_during_flood=run.refused,
        p2_probes_during_flood=run.probes,
        load_levels_seen=run.levels,
        workers=settings.workers,
        p0_workers=settings.p0_workers,
        idle_ms=[round(v, 2) for v in idle],
        flood_ms=[round(v, 2) for v in under_flood],
    )


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def _phone(index: int) -> str:
    return f"+1555{index:07d}"


async def _prepare(
    settings: Settings, config: dict[str, Any], flood: int, otps: int, report: Progress
) -> str:
    runtime = open_runtime(settings)
    try:
        now = runtime.clock.now()
        sms = parse("sms_twilio", config["sms_twilio"])
        await runtime.stores.providers.put("sms_twilio", stored(sms), now)
        otp = TypeSpec("otp", Priority.P0, (Channel.SMS,), 300, mandatory=True)
        promo = TypeSpec("promo", Priority.P2, (Channel.IN_APP,), 3600, default_enabled=True)
        for spec in (otp, promo):
            await runtime.stores.types.put(spec, now)
        for i in range(WARM_UP_OTPS + otps + MAX_FLOOD_OTPS):
            person = UserId(f"otp{i:05d}")
            await runtime.stores.users.put(
                UserProfile(person, phone=_phone(i), phone_verified=True, updated_at=now)
            )
        await load_followers(runtime, BRAND, flood, report)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()
