"""A realistic preference population for the benchmarks: everyone has a record, so every
recipient takes the full path (read, parsed, decided) rather than the shared default.

Of the followers: a fifth opted out of the type; a tenth are in their quiet hours right
now, across time zones; a twentieth sit near an hourly cap (two or three notifications
in the last hour against a cap of three); a third turned channels off or on; the rest
chose something that does not change this notification (an email digest).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from clarion.policy.frequency import FrequencyCaps, SlotRequest
from clarion.runtime import Runtime
from clarion.types import Seq, UserId

ZONES = ("America/New_York", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata")
_CHUNK = 20_000


async def realistic(runtime: Runtime, users: Sequence[UserId], type_name: str, now: float) -> None:
    """Give every one of ``users`` a preference record (and the near-capped their recent
    notifications), in bulk."""
    rng = random.Random(7)
    quiet = {zone: _quiet_now(zone, now) for zone in ZONES}
    capped: list[UserId] = []
    rows: list[tuple[str, str]] = []
    for user in users:
        roll = rng.random()
        doc: dict[str, Any]
        if roll < 0.20:
            doc = {"types": {type_name: {"enabled": False}}}
        elif roll < 0.30:
            doc = {"quiet_hours": quiet[rng.choice(ZONES)]}
        elif roll < 0.35:
            doc = {"frequency_caps": {"per_hour": 3}}
            capped.append(user)
        elif roll < 0.68:
            doc = {"channels": {"push": {"enabled": rng.random() < 0.5}, "sms": {"enabled": False}}}
        else:
            doc = {"channels": {"email": {"digest": "daily", "digest_at": "08:00"}}}
        rows.append((user, orjson.dumps(doc).decode()))
        if len(rows) >= _CHUNK:
            await _write(runtime, rows, now)
            rows = []
    if rows:
        await _write(runtime, rows, now)
    await _recently_notified(runtime, capped, rng, now)


def _quiet_now(zone: str, now: float) -> dict[str, str]:
    """Quiet hours that started an hour ago in ``zone`` and end in two."""
    local = dt.datetime.fromtimestamp(now, ZoneInfo(zone))
    start, end = (local.hour - 1) % 24, (local.hour + 2) % 24
    return {"start": f"{start:02d}:00", "end": f"{end:02d}:00", "timezone": zone}


async def _write(runtime: Runtime, rows: list[tuple[str, str]], now: float) -> None:
    if runtime._postgres is not None:
        await runtime._postgres.execute(
            "INSERT INTO preferences (user_id, doc, version, updated_at)"
            " SELECT u, d, 1, $3 FROM unnest($1::text[], $2::text[]) AS t(u, d)"
            " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc",
            [u for u, _ in rows],
            [d for _, d in rows],
            now,
        )
        return
    db = runtime._sqlite
    assert db is not None
    await db.write(
        lambda c: c.executemany(
            "INSERT OR REPLACE INTO preferences (user_id, doc, version, updated_at)"
            " VALUES (?, ?, 1, ?)",
            [(u, d, now) for u, d in rows],
        )
    )


async def _recently_notified(
    runtime: Runtime, users: list[UserId], rng: random.Random, now: float
) -> None:
    """Two or three places each in the last hour (events this run never sends)."""
    caps = FrequencyCaps(per_hour=3)
    for n, ago in enumerate((2400.0, 1200.0, 300.0)):
        chosen = users if n < 2 else [u for u in users if rng.random() < 0.5]
        for at in range(0, len(chosen), _CHUNK):
            requests = [SlotRequest(u, Seq(-1 - n), caps) for u in chosen[at : at + _CHUNK]]
            await runtime.stores.frequency.reserve(requests, now - ago)
