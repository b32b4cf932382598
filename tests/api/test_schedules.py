"""Recurring sends on both backends: a schedule fires its event at each run of its cron in
its zone (DST-correct), a run missed while everything was down fires once, schedulers
racing for the same run send it once, and a bad schedule is refused by its field."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from clarion.runtime import open_runtime
from clarion.scheduling.scheduler import Scheduler
from tests.conftest import Api, unique

PARIS_9AM = {"cron": "0 9 * * *", "timezone": "Europe/Paris"}


def _utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _schedule(api: Api, **fields: Any) -> tuple[dict[str, Any], str]:
    kind = api.register_type(unique("digest_"))
    user = unique("reader")
    body = {**PARIS_9AM, "event": {"type": kind, "target": user}, **fields}
    made = api.call("POST", "/v1/schedules", json=body)
    assert made.status_code == 201, made.text
    return made.json(), user


def _tick(api: Api, schedulers: int = 1) -> int:
    """Every scheduler looks once, at the same moment; returns the runs they fired."""

    async def tick() -> int:
        runtimes = [open_runtime(api.runtime.settings, clock=api.clock) for _ in range(schedulers)]
        try:
            fired = await asyncio.gather(*(Scheduler(rt).tick() for rt in runtimes))
            return sum(fired)
        finally:
            for rt in runtimes:
                await rt.close()

    fired = api.run(tick())
    api.drain()
    return fired


def _received(api: Api, user: str) -> int:
    return len(api.call("GET", f"/v1/users/{user}/inbox").json()["items"])


def test_a_schedule_fires_at_each_local_run_across_a_dst_change(api: Api) -> None:
    api.clock.set(_utc("2026-03-27T12:00:00"))
    made, user = _schedule(api)
    assert made["next_run_at"] == "2026-03-28T08:00:00.000Z"  # 09:00 in Paris, winter
    _tick(api)
    assert _received(api, user) == 0
    api.clock.set(_utc("2026-03-28T08:00:01"))
    _tick(api)
    _tick(api)  # that run is done: not again
    assert _received(api, user) == 1
    again = api.call("GET", f"/v1/schedules/{made['id']}").json()
    assert again["next_run_at"] == "2026-03-29T07:00:00.000Z"  # 09:00 in Paris, summer
    api.clock.set(_utc("2026-03-29T07:00:00"))
    _tick(api)
    assert _received(api, user) == 2


def test_runs_missed_while_down_fire_once(api: Api) -> None:
    api.clock.set(_utc("2026-05-01T12:00:00"))
    made, user = _schedule(api)
    api.clock.set(_utc("2026-05-04T12:00:00"))  # three runs missed
    _tick(api)
    _tick(api)
    assert _received(api, user) == 1
    after = api.call("GET", f"/v1/schedules/{made['id']}").json()
    assert after["next_run_at"] == "2026-05-05T07:00:00.000Z"


def test_racing_schedulers_send_a_run_once(api: Api) -> None:
    api.clock.set(_utc("2026-06-01T12:00:00"))
    _, user = _schedule(api)
    api.clock.set(_utc("2026-06-02T07:00:00"))
    _tick(api, schedulers=3)
    assert _received(api, user) == 1


def test_a_bad_schedule_is_refused_by_its_field(api: Api) -> None:
    kind = api.register_type(unique("digest_"))
    for body, field in (
        ({"cron": "every day", "event": {"type": kind, "target": "a"}}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus", "event": {"type": kind}}, "timezone"),
        ({"cron": "0 9 * * *", "event": {"type": "nope", "target": "a"}}, "event.type"),
        ({"cron": "0 9 * * *", "event": {"type": kind, "target": 5}}, "event.target"),
    ):
        refused = api.call("POST", "/v1/schedules", json=body)
        assert refused.status_code == 400, refused.text
        assert field in {e["field"] for e in refused.json()["errors"]}
    made, _ = _schedule(api)
    assert api.call("DELETE", f"/v1/schedules/{made['id']}").status_code == 204
    assert api.call("GET", f"/v1/schedules/{made['id']}").status_code == 404
