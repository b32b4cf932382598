"""Frequency caps with four worker processes racing: 50 people, 20 events each, all
arriving together and spread over many small messages, so every person's notifications are
decided by several workers at once and several at a time in one claim."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from clarion.config import Settings
from clarion.keys import create_key
from clarion.launch import LocalClarion
from clarion.runtime import open_runtime
from clarion.supervisor import standard_workers
from tests.backends import query

pytestmark = pytest.mark.slow

PEOPLE = [f"p{i:02d}" for i in range(50)]
EVENTS_EACH = 20


async def _admin(settings: Settings) -> str:
    runtime = open_runtime(settings)
    try:
        _, secret = await create_key(runtime.stores.keys, runtime.clock, sender="t", admin=True)
        return secret
    finally:
        await runtime.close()


def _race(settings: Settings, caps: dict[str, int]) -> dict[str, int]:
    """Send the events with four workers running; returns inbox entries per person."""
    key = asyncio.run(_admin(settings))
    with LocalClarion(settings, standard_workers(4, 0)) as local:
        api = httpx.Client(
            base_url=local.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert api.put("/v1/types/like", json={"priority": "P1"}).status_code == 200
        for person in PEOPLE:
            reply = api.put(f"/v1/users/{person}/preferences", json={"frequency_caps": caps})
            assert reply.status_code == 200, reply.text
        events: list[dict[str, Any]] = [
            {"type": "like", "target": person, "object": f"photo{n}"}
            for n in range(EVENTS_EACH)
            for person in PEOPLE
        ]
        for start in range(0, len(events), 250):  # 4 requests, each 50 messages of 5
            reply = api.post(
                "/v1/notifications/batch", json={"events": events[start : start + 250]}
            )
            assert reply.json()["accepted"] == 250, reply.text
        deadline = time.monotonic() + 120
        while query(settings, "SELECT count(*) FROM batches")[0][0] < len(events):
            assert time.monotonic() < deadline, "evaluation did not finish"
            time.sleep(0.2)
        workers = query(settings, "SELECT count(DISTINCT worker) FROM batches")[0][0]
        api.close()
    assert workers >= 2, "the race needs several workers deciding"
    found = query(settings, "SELECT user_id, count(*) FROM inbox GROUP BY user_id")
    return {user: count for user, count in found}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_hourly_cap_holds_exactly_across_four_workers(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(db=tmp_path / "c.db", broker=broker_url, store=store_url, batch_size=5)
    assert _race(settings, {"per_hour": 3}) == {person: 3 for person in PEOPLE}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_daily_cap_holds_exactly_across_four_workers(
    tmp_path: Path, broker_url: str | None, store_url: str | None
) -> None:
    settings = Settings(db=tmp_path / "c.db", broker=broker_url, store=store_url, batch_size=5)
    assert _race(settings, {"per_day": 2}) == {person: 2 for person in PEOPLE}
    # The suppression counters, written by four workers at once, add up to what was dropped.
    counted = query(settings, "SELECT reason, sum(people) FROM suppressions GROUP BY reason")
    assert [(reason, int(n)) for reason, n in counted] == [
        ("freq_cap", (EVENTS_EACH - 2) * len(PEOPLE))
    ]
