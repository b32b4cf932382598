"""Redis killed and restarted (append-only file on) while events stream in: every event the
API accepted is delivered, exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from clarion.config import Settings
from clarion.launch import LocalClarion
from clarion.supervisor import WorkerSpec
from tests.backends import prepared, query
from tests.services import RedisServer

pytestmark = pytest.mark.slow
PER_PHASE = 150


def _send(api: httpx.Client, first: int, count: int) -> dict[str, str]:
    """Post one event per user; returns user → event id of those the API accepted."""
    accepted = {}
    for i in range(first, first + count):
        reply = api.post("/v1/notifications", json={"type": "note", "recipients": [f"u{i}"]})
        if reply.status_code == 202:
            accepted[f"u{i}"] = reply.json()["event_id"]
    return accepted


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_redis_restart_loses_no_accepted_event(tmp_path: Path, store_url: str | None) -> None:
    """With the stores in SQLite or in PostgreSQL: either way the outbox is in the store."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        settings = Settings(db=tmp_path / "c.db", broker=redis.url, store=store_url, lease_s=3.0)
        key = prepared(settings)
        workers = [WorkerSpec("w1"), WorkerSpec("w2")]
        with LocalClarion(settings, workers, log_dir=tmp_path / "logs") as local:
            api = httpx.Client(
                base_url=local.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            accepted = _send(api, 0, PER_PHASE)
            redis.kill()
            # Ingest does not need Redis: events commit to the store's outbox meanwhile.
            accepted |= _send(api, PER_PHASE, PER_PHASE)
            time.sleep(1.0)
            redis.start()
            accepted |= _send(api, 2 * PER_PHASE, PER_PHASE)
            assert len(accepted) == 3 * PER_PHASE

            deadline = time.monotonic() + 60
            pending = set(accepted.values())
            while pending:
                assert time.monotonic() < deadline, f"{len(pending)} events never completed"
                pending = {
                    e
                    for e in pending
                    if api.get(f"/v1/notifications/{e}").json()["state"] != "completed"
                }
                time.sleep(0.1)
            api.close()
    finally:
        redis.kill()

    redis.start()  # for the runtime that looks at the result
    try:
        found = query(settings, "SELECT user_id, count(*) FROM inbox GROUP BY user_id")
    finally:
        redis.kill()
    assert dict(found) == dict.fromkeys(accepted, 1)
