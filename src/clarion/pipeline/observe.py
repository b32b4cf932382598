"""The pipeline's figures for ``/metrics`` (``clarion.metrics``), counted from what each
stage decided — once per batch and reason, so the per-recipient path pays nothing.

Whose fault a failure was (seed 001 Part 10) is decided here too: a delivery handed over
later than its priority's budget (``clarion.slo``) is the platform's, a provider's error
or timeout the provider's; refusals at ingest (the producer's) are counted by the API.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from clarion import metrics
from clarion.channels.base import SendStatus
from clarion.models import Channel, Outcome, Priority
from clarion.pipeline.dispatch import Send
from clarion.pipeline.messages import DeliveryBatch, EventHeader, RecipientBatch
from clarion.slo import TARGETS
from clarion.stores.records import BatchResult
from clarion.stores.rows import label

log = logging.getLogger(__name__)
_PROVIDER_FAULTS = {SendStatus.TRANSIENT, SendStatus.PERMANENT}


def evaluated(
    batches: Sequence[RecipientBatch], results: Sequence[BatchResult], now: float
) -> None:
    """In-app entries and live messages (written by evaluation), and every suppression."""
    counted = metrics.metrics()
    reasons: Counter[str] = Counter()
    delivered: Counter[tuple[str, str]] = Counter()
    handovers = _Handovers(now)
    tell = log.isEnabledFor(logging.DEBUG)
    for batch, result in zip(batches, results, strict=True):
        header = batch.header
        if tell:
            fields = {**_fields(header, batch.batch_key), "in_app": len(result.inbox)}
            fields |= {"suppressed": result.suppressed, "held": result.held}
            log.debug("evaluated a batch", extra={"fields": fields})
        for users, channel, provider in (
            (result.inbox, Channel.IN_APP, "inbox"),
            (result.live, Channel.LIVE, "stream"),
        ):
            if users:
                delivered[(channel.value, provider)] += len(users)
                handovers.add(header, channel, len(users))
        why = Counter(o.reason for o in result.outcomes if o.outcome is Outcome.SUPPRESSED)
        for reason, n in why.items():  # labelled once per reason, not per person
            reasons[label(reason)] += n
        for _, reason, users in result.unreachable:
            reasons[label(reason)] += len(users)
    for (channel_name, provider), n in delivered.items():
        counted.deliveries.labels(channel_name, provider, "delivered").inc(n)
    for reason, n in reasons.items():
        counted.suppressions.labels(reason).inc(n)
    handovers.report()


def sent(
    channel: Channel, batches: Sequence[DeliveryBatch], sends: Sequence[Send], now: float
) -> None:
    """Each provider's answers, and when the delivered ones were handed over."""
    counted = metrics.metrics()
    answers: Counter[tuple[str, str]] = Counter()
    delivered: Counter[int] = Counter()
    faults: Counter[Priority] = Counter()
    for send in sends:
        if send.result is None:
            continue
        status = send.result.status
        answers[(send.address.provider, status.value)] += 1
        if status is SendStatus.DELIVERED:
            delivered[send.batch] += 1
        elif status in _PROVIDER_FAULTS:
            faults[batches[send.batch].header.priority] += 1
    for (provider, outcome), n in answers.items():
        counted.deliveries.labels(channel.value, provider, outcome).inc(n)
    if log.isEnabledFor(logging.DEBUG):
        for index, batch in enumerate(batches):
            fields = {**_fields(batch.header, batch.batch_key), "channel": channel.value}
            fields["delivered"] = delivered.get(index, 0)
            log.debug("sent a batch", extra={"fields": fields})
    handovers = _Handovers(now)
    for index, n in delivered.items():
        handovers.add(batches[index].header, channel, n)
    handovers.report()
    for priority, n in faults.items():
        counted.failures.labels("provider", priority.value).inc(n)


def dead_lettered(priority: Priority | None) -> None:
    """Work given up on: the platform's failure (the provider's show as its answers)."""
    metrics.metrics().failures.labels("platform", priority.value if priority else "none").inc()


class _Handovers:
    """Deliveries handed over in one call: how long each batch waited since its event was
    accepted, and those later than their priority's budget (the platform's failures).
    Reported once per label set: a packed claim holds hundreds of one-person batches, and
    each metric update in multi-process mode takes a lock and checks the process id."""

    def __init__(self, now: float) -> None:
        self._now = now
        self._waits: dict[tuple[Priority, Channel], list[float]] = {}
        self._late: Counter[Priority] = Counter()

    def add(self, header: EventHeader, channel: Channel, n: int) -> None:
        waited = max(self._now - header.created_at, 0.0)
        key = (header.priority, channel)
        if (waits := self._waits.get(key)) is None:
            waits = self._waits[key] = []
        waits.append(waited)
        target = TARGETS.get(header.priority)
        if target is not None and waited > target.within_s:
            self._late[header.priority] += n

    def report(self) -> None:
        counted = metrics.metrics()
        for (priority, channel), waits in self._waits.items():
            histogram = counted.to_delivery.labels(priority.value, channel.value)
            for waited in waits:
                histogram.observe(waited)
        for priority, n in self._late.items():
            counted.failures.labels("platform", priority.value).inc(n)


def _fields(header: EventHeader, batch_key: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"event_id": header.event_id, "batch_key": batch_key}
    if header.traceparent:
        fields["trace_id"] = header.trace_id
    return fields
