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
                counted.deliveries.labels(channel.value, provider, "delivered").inc(len(users))
                _handed_over(header, channel, len(users), now)
        reasons.update(label(o.reason) for o in result.outcomes if o.outcome is Outcome.SUPPRESSED)
        for _, reason, users in result.unreachable:
            reasons[label(reason)] += len(users)
    for reason, n in reasons.items():
        counted.suppressions.labels(reason).inc(n)


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
    for index, n in delivered.items():
        _handed_over(batches[index].header, channel, n, now)
    for priority, n in faults.items():
        counted.failures.labels("provider", priority.value).inc(n)


def dead_lettered(priority: Priority | None) -> None:
    """Work given up on: the platform's failure (the provider's show as its answers)."""
    metrics.metrics().failures.labels("platform", priority.value if priority else "none").inc()


def _handed_over(header: EventHeader, channel: Channel, n: int, now: float) -> None:
    counted = metrics.metrics()
    waited = max(now - header.created_at, 0.0)
    counted.to_delivery.labels(header.priority.value, channel.value).observe(waited)
    target = TARGETS.get(header.priority)
    if target is not None and waited > target.within_s:
        counted.failures.labels("platform", header.priority.value).inc(n)


def _fields(header: EventHeader, batch_key: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"event_id": header.event_id, "batch_key": batch_key}
    if header.traceparent:
        fields["trace_id"] = header.trace_id
    return fields
