"""``/metrics``, ``/v1/health`` and ``/v1/ready`` on both backends: the figures move by
exactly what a known run did, Prometheus's own checker accepts the output, and readiness
says what is wrong."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clarion.broker import Outbound
from clarion.stores.records import StageStats
from tests.conftest import Api, unique

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: Api) -> tuple[str, Samples]:
    answer = api.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return answer.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_promtool_accepts_the_metrics(api: Api) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: run `make test` (it installs it)"
    text, _ = scrape(api)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for family in (
        "clarion_ingest_accepted_events_total",
        "clarion_deliveries_total",
        "clarion_queue_depth",
        "clarion_queue_oldest_age_seconds",
        "clarion_dead_letters",
        "clarion_open_streams",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family


def test_counters_move_by_what_a_run_did(api: Api) -> None:
    kind = api.register_type(unique("note_"))
    quiet = unique("quiet")
    api.call("PUT", f"/v1/users/{quiet}/preferences", json={"types": {kind: {"enabled": False}}})
    _, before = scrape(api)
    for _ in range(3):
        sent = api.call(
            "POST", "/v1/notifications", json={"type": kind, "target": unique("reader")}
        )
        assert sent.status_code == 202
    once = {"type": kind, "target": quiet, "idempotency_key": unique("k")}
    codes = [api.call("POST", "/v1/notifications", json=once).status_code for _ in range(2)]
    assert codes == [202, 200]  # the repeat is a duplicate: accepted once
    refused = api.call("POST", "/v1/notifications", json={"type": kind, "target": 7})
    assert refused.status_code == 400
    api.drain()
    _, after = scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("clarion_ingest_accepted_events_total", priority="P1") == 4
    assert moved("clarion_ingest_refused_events_total", reason="invalid_request") == 1
    assert moved("clarion_failures_total", party="producer", priority="none") == 1
    inbox = {"channel": "in_app", "provider": "inbox", "outcome": "delivered"}
    assert moved("clarion_deliveries_total", **inbox) == 3
    assert moved("clarion_suppressions_total", reason="disabled_type") == 1
    observed = moved("clarion_ingest_to_delivery_seconds_count", priority="P1", channel="in_app")
    assert observed >= 1  # one observation per batch
    assert value(after, "clarion_queue_depth", stage="evaluate", priority="P1") == 0


def test_queue_depth_age_and_dead_letters_are_read_when_scraped(api: Api) -> None:
    topic = "deliver.push.p2"
    api.run(api.runtime.broker.publish([Outbound(topic, b"x")]))
    api.clock.advance(30)
    _, samples = scrape(api)
    labels = {"stage": "deliver.push", "priority": "P2"}
    assert value(samples, "clarion_queue_depth", **labels) == 1
    assert value(samples, "clarion_queue_oldest_age_seconds", **labels) >= 30
    (claimed,) = api.run(api.runtime.broker.consume(topic, limit=1))
    api.run(api.runtime.broker.dead_letter(claimed, error="test"))
    _, samples = scrape(api)
    assert value(samples, "clarion_queue_depth", **labels) == 0
    assert value(samples, "clarion_dead_letters") >= 1


def test_ready_says_what_is_missing_and_recovers(api: Api) -> None:
    assert api.client.get("/v1/health").json() == {"status": "ok"}
    stats = api.runtime.stores.stats
    api.run(stats.record("old-worker", [], api.clock.now() - 60))
    waiting = api.client.get("/v1/ready")
    assert waiting.status_code == 503
    assert any("no worker has checked in" in p for p in waiting.json()["problems"])
    api.run(
        stats.record(
            "worker-1", [StageStats("worker-1", "evaluate.p1", 1, 1, 0.1)], api.clock.now()
        )
    )
    ready = api.client.get("/v1/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["workers"] == 1
    api.run(api.runtime.broker.publish([Outbound("fanout.p1", b"stuck")]))
    api.clock.advance(api.runtime.settings.ready_stuck_s + 1)
    api.run(stats.record("worker-1", [], api.clock.now()))
    stuck = api.client.get("/v1/ready")
    assert stuck.status_code == 503
    assert any(p.startswith("fanout.p1 has waited") for p in stuck.json()["problems"])
    (message,) = api.run(api.runtime.broker.consume("fanout.p1", limit=1))
    api.run(api.runtime.broker.ack([message]))
    assert api.client.get("/v1/ready").status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/v1/health", "/v1/ready"])
def test_monitors_need_no_key(api: Api, path: str) -> None:
    assert api.client.get(path).status_code in (200, 503)
