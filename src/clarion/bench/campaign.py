"""Campaigns at seed 003's scale: a million-id audience uploaded over HTTP; a segment over a
million people with attributes; an unthrottled campaign to a million people (every one
with a preference record, as ``bench.population`` makes them) into their inboxes; and a
throttled one, whose rate is measured against what it was asked.

* upload: ids/s from the first byte sent to the 201 (the API parses, folds repeats and
  writes them; the ids are new);
* segment: people/s through the store's paging, as a campaign's expansion reads them
  (pages of ``campaigns.expansion.step_size``), with a filter on three attributes;
* campaign: recipients/s from the campaign's start to its last batch evaluated, with the
  API process and two workers (each one a scheduler);
* throttle: the expansion's rate over the measured window, and its error against the
  throttle asked.

What the figures leave out: everything shares two cores; the campaign goes to the
in-app inbox only (no provider look-alike in the loop).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from clarion.bench.backends import owned_backends
from clarion.bench.driver import Progress
from clarion.bench.population import realistic
from clarion.campaigns import segments
from clarion.campaigns.expansion import step_size
from clarion.config import Settings
from clarion.errors import BackendError
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.models import Channel, Priority, TypeSpec
from clarion.runtime import Runtime, open_runtime
from clarion.supervisor import standard_workers
from clarion.types import UserId

SEGMENT = {"plan": "premium", "country": {"in": ["FR", "BE"]}, "age_days": {"gte": 30}}


@dataclass
class CampaignReport:
    people: int
    upload_ids_per_s: float
    segment_users_per_s: float
    segment_matched: int
    campaign_recipients: int
    campaign_seconds: float
    campaign_recipients_per_s: float
    throttle_per_s: float
    throttle_seconds: float
    throttle_measured_per_s: float
    throttle_error_pct: float
    backend: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_campaign(
    people: int = 1_000_000,
    *,
    throttle: float = 10_000.0,
    throttle_seconds: float = 60.0,
    broker: str | None = None,
    store: str | None = None,
    progress: Progress | None = None,
) -> CampaignReport:
    report = progress or (lambda *_: None)
    with owned_backends(broker, store), tempfile.TemporaryDirectory(prefix="clarion-") as scratch:
        settings = Settings(
            db=Path(scratch) / "campaign.db", broker=broker, store=store,
            campaign_approval_over=people * 10,
        )  # fmt: skip
        ids = [UserId(f"u{i:09d}") for i in range(people)]
        key = asyncio.run(_prepare(settings, ids, report))
        segment_rate, matched = asyncio.run(_segment(settings, report))
        with LocalClarion(settings, standard_workers(2, 0)) as local:
            api = httpx.Client(
                base_url=local.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
            )
            upload_rate, audience = _upload(api, ids, report)
            seconds = _unthrottled(api, audience, people, report)
            measured = _throttled(api, settings, throttle, throttle_seconds, report)
            api.close()
    return CampaignReport(
        people=people,
        upload_ids_per_s=round(upload_rate),
        segment_users_per_s=round(segment_rate),
        segment_matched=matched,
        campaign_recipients=people,
        campaign_seconds=round(seconds, 2),
        campaign_recipients_per_s=round(people / seconds),
        throttle_per_s=throttle,
        throttle_seconds=throttle_seconds,
        throttle_measured_per_s=round(measured, 1),
        throttle_error_pct=round(abs(measured - throttle) / throttle * 100, 2),
        backend="redis+postgresql" if store else ("redis" if broker else "sqlite"),
    )


async def _prepare(settings: Settings, ids: list[UserId], report: Progress) -> str:
    """A million people with attributes and preference records (not timed)."""
    runtime = open_runtime(settings)
    try:
        now = time.time()
        spec = TypeSpec("promo", Priority.P2, (Channel.IN_APP,), default_enabled=True)
        await runtime.stores.types.put(spec, now)
        await _attributes(runtime, ids, report)
        report("preference records", 0, len(ids))
        await realistic(runtime, ids, "promo", now)
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="bench", admin=True)
        return secret
    finally:
        await runtime.close()


async def _attributes(runtime: Runtime, ids: list[UserId], report: Progress) -> None:
    rng = random.Random(3)
    chunk = 20_000
    for at in range(0, len(ids), chunk):
        rows = [
            (
                user,
                orjson.dumps(
                    {
                        "plan": rng.choice(("free", "free", "premium")),
                        "country": rng.choice(("FR", "BE", "US", "DE", "JP")),
                        "age_days": rng.randrange(400),
                    }
                ).decode(),
            )
            for user in ids[at : at + chunk]
        ]
        await _write_users(runtime, rows)
        report("people with attributes", at + len(rows), len(ids))


async def _write_users(runtime: Runtime, rows: list[tuple[UserId, str]]) -> None:
    if runtime._postgres is not None:
        await runtime._postgres.execute(
            "INSERT INTO users (user_id, updated_at, attributes)"
            " SELECT u, 0, a::jsonb FROM unnest($1::text[], $2::text[]) AS t(u, a)",
            [u for u, _ in rows],
            [a for _, a in rows],
        )
        return
    db = runtime._sqlite
    assert db is not None
    await db.write(
        lambda c: c.executemany(
            "INSERT INTO users (user_id, updated_at, attributes) VALUES (?, 0, ?)", rows
        )
    )


async def _segment(settings: Settings, report: Progress) -> tuple[float, int]:
    """Page through the segment as a campaign's expansion does: every person is looked at
    (the filter runs in the store), the matching ones come back a page at a time."""
    runtime = open_runtime(settings)
    try:
        conditions = segments.parse(SEGMENT)
        total = await runtime.stores.users.count_matching(None)
        report("segment", 0, None)
        started = time.perf_counter()
        after, matched = None, 0
        size = step_size(settings)
        while page := await runtime.stores.users.matching(conditions, after, size):
            matched += len(page)
            after = page[-1]
            report("segment", matched, None)
        return total / (time.perf_counter() - started), matched
    finally:
        await runtime.close()


def _upload(api: httpx.Client, ids: list[UserId], report: Progress) -> tuple[float, str]:
    body = "".join(f"{u}\n" for u in ids).encode()

    def chunks() -> Iterator[bytes]:
        for at in range(0, len(body), 1 << 20):
            report("uploading", at, len(body))
            yield body[at : at + (1 << 20)]

    started = time.perf_counter()
    answer = api.post(
        "/v1/audiences", params={"name": "everyone"}, content=chunks(),
        headers={"Content-Type": "text/plain"},
    )  # fmt: skip
    took = time.perf_counter() - started
    if answer.status_code != 201:
        raise BackendError(f"upload refused: {answer.status_code} {answer.text}")
    return len(ids) / took, str(answer.json()["id"])


def _unthrottled(api: httpx.Client, audience: str, people: int, report: Progress) -> float:
    made = _create(api, {"audience": audience}, throttle=None)
    started = time.time()
    while True:
        shown = api.get(f"/v1/campaigns/{made}").json()
        settled = shown["delivered"] + shown["suppressed"] + shown["held"] + shown["failed"]
        report("campaign", settled, people)
        if shown["state"] == "completed" and settled >= people:
            return time.time() - started
        time.sleep(0.05)


def _throttled(
    api: httpx.Client, settings: Settings, rate: float, seconds: float, report: Progress
) -> float:
    made = _create(api, {"all": True}, throttle=rate)
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds + 3:
        shown = api.get(f"/v1/campaigns/{made}").json()
        samples.append((time.monotonic(), int(shown["targeted"])))
        report("throttled campaign", int(time.monotonic() - started), int(seconds + 3))
        time.sleep(0.5)
    moving = [s for s in samples if s[1] > 0]
    if len(moving) < 2:
        raise BackendError("the throttled campaign did not move")
    (t0, n0) = moving[0]
    (t1, n1) = max((s for s in moving if s[0] - t0 <= seconds), key=lambda s: s[0])
    api.post(f"/v1/campaigns/{made}/cancel")
    return (n1 - n0) / (t1 - t0)


def _create(api: httpx.Client, audience: dict[str, Any], *, throttle: float | None) -> str:
    body: dict[str, Any] = {
        "name": "bench",
        "type": "promo",
        "audience": audience,
        "payload": {"title": "Spring sale", "body": "Everything must go"},
    }
    if throttle is not None:
        body["throttle_per_s"] = throttle
    answer = api.post("/v1/campaigns", json=body)
    if answer.status_code != 201:
        raise BackendError(f"campaign refused: {answer.status_code} {answer.text}")
    return str(answer.json()["id"])
