"""What a monitoring system scrapes: ``GET /metrics``, Prometheus's text format.

Two kinds of figures:

* **Counted where they happen** (``Metrics``): events accepted and refused at ingest,
  deliveries by channel, provider and outcome, suppressions by reason, failures by whose
  fault they were, provider call times, acceptance → delivery times, open streams. Every
  process counts its own; ``clarion serve`` gives them one directory
  (``PROMETHEUS_MULTIPROC_DIR``, prometheus-client's multi-process mode) and the API
  process that is scraped adds them all up, workers included.
* **Read when scraped** (``snapshot``): queue depth and oldest waiting message per stage and
  priority, breaker states, dead letters — the stores' current answer, not a count.

Labels are bounded sets (stages, priorities, channels, provider names, reasons); never a
person, an event or a message id.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from clarion.models import Priority
from clarion.resilience.breaker import BreakerState

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The counted figures. Made on first use (``metrics()``), after ``clarion serve`` has
    chosen the multi-process directory."""

    def __init__(self) -> None:
        self.accepted = Counter(
            "clarion_ingest_accepted_events", "Events accepted (202), by priority.", ["priority"]
        )
        self.refused = Counter(
            "clarion_ingest_refused_events",
            "Events refused at ingest, by the error answered (invalid_request,"
            " unauthenticated, forbidden, rate_limited, unavailable, …); a whole batch"
            " refused counts once.",
            ["reason"],
        )
        self.deliveries = Counter(
            "clarion_deliveries",
            "Deliveries handed over, by channel, provider (inbox and stream for in-app and"
            " live) and outcome (the provider's answer).",
            ["channel", "provider", "outcome"],
        )
        self.suppressions = Counter(
            "clarion_suppressions",
            "Notifications not delivered to someone on purpose, by reason.",
            ["reason"],
        )
        self.failures = Counter(
            "clarion_failures",
            "Failed or late deliveries and refused events, by whose they were: producer"
            " (refused input), platform (late past its priority's budget, dead letters) or"
            " provider (errors, timeouts).",
            ["party", "priority"],
        )
        self.provider_send = Histogram(
            "clarion_provider_send_seconds",
            "Time of one call to a provider (a batch of sends, made concurrently).",
            ["provider"],
            buckets=_SEND_BUCKETS,
        )
        self.to_delivery = Histogram(
            "clarion_ingest_to_delivery_seconds",
            "From an event's acceptance to a batch of its deliveries being handed over (one"
            " observation per batch and channel).",
            ["priority", "channel"],
            buckets=_LATENCY_BUCKETS,
        )
        self.open_streams = Gauge(
            "clarion_open_streams",
            "Live streams (SSE and WebSocket) open now, across the API processes.",
            multiprocess_mode="livesum",
        )


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def use_directory(directory: Path) -> None:
    """Count into ``directory`` from now on, as every process started from here will
    (they inherit the variable): call before anything is counted. Empties it — figures
    of an earlier run must not be added to this one's."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_ENV] = str(directory)
    # prometheus-client picks its value store when it is imported, which in this process
    # was before the directory was chosen.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def process_gone(pid: int) -> None:
    """A worker that exited no longer holds streams or live gauges."""
    if os.environ.get(MULTIPROCESS_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the stores say at scrape time."""

    depths: dict[str, int] = field(default_factory=dict)
    oldest_age_s: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, BreakerState] = field(default_factory=dict)
    dead_letters: int = 0
    campaigns: dict[str, int] = field(default_factory=dict)
    """Campaigns per state."""
    campaign_targeted: dict[str, int] = field(default_factory=dict)
    """Running campaigns: people written to the queues so far, per campaign name."""


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot
        depth = GaugeMetricFamily(
            "clarion_queue_depth",
            "Messages waiting or in flight, per stage and priority (delayed ones included).",
            labels=["stage", "priority"],
        )
        age = GaugeMetricFamily(
            "clarion_queue_oldest_age_seconds",
            "Age of the oldest message due or in flight, per stage and priority (0: none).",
            labels=["stage", "priority"],
        )
        for topic in sorted(s.depths.keys() | s.oldest_age_s.keys()):
            labels = _topic_labels(topic)
            depth.add_metric(labels, s.depths.get(topic, 0))
            age.add_metric(labels, max(s.oldest_age_s.get(topic, 0.0), 0.0))
        breaker = GaugeMetricFamily(
            "clarion_breaker_state",
            "Each provider's circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=["provider"],
        )
        for provider, state in sorted(s.breakers.items()):
            breaker.add_metric([provider], _BREAKER_VALUE[state])
        dead = GaugeMetricFamily(
            "clarion_dead_letters", "Messages given up on, waiting for an operator."
        )
        dead.add_metric([], s.dead_letters)
        campaigns = GaugeMetricFamily("clarion_campaigns", "Campaigns by state.", labels=["state"])
        for phase, n in sorted(s.campaigns.items()):
            campaigns.add_metric([phase], n)
        targeted = GaugeMetricFamily(
            "clarion_campaign_targeted",
            "Running campaigns: people handed to evaluation so far.",
            labels=["campaign"],
        )
        for name, n in sorted(s.campaign_targeted.items()):
            targeted.add_metric([name], n)
        yield from (depth, age, breaker, dead, campaigns, targeted)


_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def _topic_labels(topic: str) -> list[str]:
    stage, _, priority = topic.rpartition(".")
    return [stage or topic, priority.upper() if priority.upper() in Priority.__members__ else ""]


def _counted() -> CollectorRegistry:
    """Every process's counted figures: the shared directory's, else this process's."""
    metrics()  # so that a scrape before any traffic shows the families at zero
    directory = os.environ.get(MULTIPROCESS_ENV)
    if not directory:
        return REGISTRY
    counted = CollectorRegistry()
    multiprocess.MultiProcessCollector(counted, path=directory)  # type: ignore[no-untyped-call]
    return counted


def exposition(snapshot: Snapshot) -> bytes:
    """The whole scrape: every process's counted figures, then the snapshot."""
    read = CollectorRegistry(auto_describe=False)
    read.register(_SnapshotCollector(snapshot))
    return generate_latest(_counted()) + generate_latest(read)


_PLATFORM_REFUSALS = {"unavailable", "internal"}
"""Refusal codes that are Clarion's doing (shedding load, a store away), not the sender's."""


def refused(codes: Iterable[str]) -> None:
    """Events refused at ingest, by the error code they were answered with."""
    counted = metrics()
    for code, n in Tally(codes).items():  # one increment per code, not per event
        counted.refused.labels(code).inc(n)
        party = "platform" if code in _PLATFORM_REFUSALS else "producer"
        counted.failures.labels(party, "none").inc(n)


def accepted(priorities: Iterable[Priority]) -> None:
    """Events accepted, by priority: one increment per priority for a whole commit group
    (each costs a lock and a write to the shared metrics file)."""
    counted = metrics().accepted
    for priority, n in Tally(priorities).items():
        counted.labels(priority.value).inc(n)


@dataclass(frozen=True, slots=True)
class Totals:
    """Counted figures added up over every process, for the dashboard's charts."""

    accepted: float = 0.0
    delivered: float = 0.0
    p0_buckets: tuple[tuple[float, float], ...] = ()
    """The P0 acceptance → delivery histogram: (upper bound s, cumulative count)."""


def totals() -> Totals:
    counted = _counted()
    accepted = delivered = 0.0
    buckets: dict[float, float] = {}
    for family in counted.collect():
        for sample in family.samples:
            if sample.name == "clarion_ingest_accepted_events_total":
                accepted += sample.value
            elif sample.name == "clarion_deliveries_total":
                if sample.labels.get("outcome") == "delivered":
                    delivered += sample.value
            elif (
                sample.name == "clarion_ingest_to_delivery_seconds_bucket"
                and sample.labels.get("priority") == "P0"
            ):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Totals(accepted, delivered, tuple(sorted(buckets.items())))
