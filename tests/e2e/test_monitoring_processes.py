"""Monitoring a real deployment: ``/metrics`` adds up the API and two worker processes
(prometheus-client's multi-process mode under ``clarion serve``), and ``/v1/ready`` goes
503 while PostgreSQL or Redis is away and comes back when they do."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clarion.config import Settings
from clarion.launch import LocalClarion
from clarion.runtime import open_runtime
from clarion.supervisor import WorkerSpec
from tests.backends import prepared
from tests.services import PostgresServer, RedisServer

pytestmark = pytest.mark.slow
EVENTS = 120


def _total(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def _wait_for(check: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_metrics_add_up_every_process(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "c.db", batch_size=10)
    key = prepared(settings)
    workers = [WorkerSpec("w1"), WorkerSpec("w2")]
    with LocalClarion(settings, workers) as local:
        api = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        for i in range(EVENTS):
            body = {"type": "note", "recipients": [f"u{i}-{n}" for n in range(5)]}
            assert api.post("/v1/notifications", json=body).status_code == 202

        def delivered() -> float:
            text = httpx.get(f"{local.url}/metrics").text
            inbox = {"channel": "in_app", "provider": "inbox", "outcome": "delivered"}
            return _total(text, "clarion_deliveries_total", **inbox)

        _wait_for(lambda: delivered() == EVENTS * 5, "every delivery counted")
        text = httpx.get(f"{local.url}/metrics").text
        assert _total(text, "clarion_ingest_accepted_events_total", priority="P1") == EVENTS
        api.close()
    stats = asyncio.run(_worker_stats(settings))
    assert {"w1", "w2"} <= stats  # both workers did part of what was counted


async def _worker_stats(settings: Settings) -> set[str]:
    runtime = open_runtime(settings)
    try:
        return {s.worker for s in await runtime.stores.stats.all() if s.items}
    finally:
        await runtime.close()


def test_ready_follows_the_database_and_the_queues(tmp_path: Path) -> None:
    redis, postgres = RedisServer(tmp_path / "redis"), PostgresServer()
    redis.start()
    postgres.start()
    try:
        settings = Settings(db=tmp_path / "c.db", broker=redis.url, store=postgres.dsn)
        prepared(settings)
        with LocalClarion(settings, [WorkerSpec("w1")]) as local:

            def ready() -> httpx.Response:
                return httpx.get(f"{local.url}/v1/ready", timeout=10)

            _wait_for(lambda: ready().status_code == 200, "ready at start")
            postgres.pause()
            _wait_for(lambda: ready().status_code == 503, "503 without the database")
            assert any("the database" in p for p in ready().json()["problems"])
            postgres.resume()
            _wait_for(lambda: ready().status_code == 200, "ready once the database is back")
            redis.kill()
            _wait_for(lambda: ready().status_code == 503, "503 without the queues")
            assert any("the queues" in p for p in ready().json()["problems"])
            redis.start()
            _wait_for(lambda: ready().status_code == 200, "ready once Redis is back", 60)
    finally:
        redis.kill()
        postgres.stop()
