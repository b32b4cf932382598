"""After a delivery attempt, person by person: delivered, retried, deferred, fallen back to
the next channel, or failed for good — and the message each of those leaves in.

* A person is delivered when any of their addresses took the message (three phones: one
  delivery); addresses that failed transiently are still retried.
* A transient failure is retried after the provider's Retry-After or a jittered backoff,
  within the event's retry budget (``RetryBudget``: so many retries within so long of the
  first attempt) and never past its TTL.
* A send that never reached a provider — its breaker is open, or no provider of the kind
  is configured yet — is not an attempt: it waits (the breaker's next probe; a growing
  pause for a missing provider) and comes back as the same attempt, until the TTL ends
  it. A P0 waits at most its retry budget's window. A person with another channel does
  not wait: they fall back to it at once.
* Deferred sends (held back by the provider's rate) come back later as the same attempt.
* When a channel has given up — budget spent, a permanent refusal — the person moves to
  the next channel of their routing (``DeliveryBatch.fallbacks``), or the failure is final;
  a final failure after retries also leaves a dead letter, so an operator can replay the
  batch once the provider is back.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from clarion.broker import Outbound
from clarion.broker.retry import backoff_s
from clarion.channels.base import SendResult, SendStatus
from clarion.models import Channel, Outcome, Priority
from clarion.pipeline.dispatch import Send
from clarion.pipeline.messages import DeliveryBatch
from clarion.stores.records import BatchResult, DeliveryOutcome, Invalidation
from clarion.types import UserId

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
RETRY_AFTER_SPREAD = 0.2


@dataclass(slots=True)
class _Person:
    delivered: list[Send] = field(default_factory=list)
    retryable: list[Send] = field(default_factory=list)
    """Transient failures at the provider."""
    deferred: list[Send] = field(default_factory=list)
    """Not sent: held back by the rate, a breaker or a missing provider (not attempts)."""
    failed: list[Send] = field(default_factory=list)

    def add(self, send: Send) -> None:
        status = _result(send).status
        if status is SendStatus.DELIVERED:
            self.delivered.append(send)
        elif status is SendStatus.TRANSIENT:
            self.retryable.append(send)
        elif status in _NOT_SENT:
            self.deferred.append(send)
        else:
            self.failed.append(send)

    def waiting_for(self) -> str | None:
        """Why this person's sends could not go out, if it was the provider's availability
        (not its rate): an open breaker, or no provider configured."""
        for send in self.deferred:
            if _result(send).status in _WAITS:
                return _result(send).reason
        return None


_WAITS = (SendStatus.UNAVAILABLE, SendStatus.UNCONFIGURED)
_NOT_SENT = (SendStatus.DEFERRED, *_WAITS)
UNCONFIGURED_MAX_WAIT_S = 300.0


@dataclass(slots=True)
class _Next:
    """Where the people of one batch go next."""

    retry: dict[str, list[str]] = field(default_factory=dict)
    retry_delay: float = 0.0
    counted: list[UserId] = field(default_factory=list)
    deferred: dict[str, list[str]] = field(default_factory=dict)
    defer_delay: float = 0.0
    fallback: dict[Channel, dict[UserId, tuple[Channel, ...]]] = field(default_factory=dict)
    exhausted: list[UserId] = field(default_factory=list)


def follow_up(
    channel: Channel, batches: Sequence[DeliveryBatch], sends: Sequence[Send], now: float
) -> tuple[list[BatchResult], list[Outbound]]:
    people: dict[tuple[int, UserId], _Person] = {}
    for send in sends:
        people.setdefault((send.batch, send.user), _Person()).add(send)
    results = [
        BatchResult(b.header.seq, b.batch_key, len(b.recipients), completes_batch=False)
        for b in batches
    ]
    plans = [_Next() for _ in batches]
    for (index, user), person in people.items():
        _decide(channel, batches[index], results[index], plans[index], user, person, now)
    outbound = []
    for batch, plan in zip(batches, plans, strict=True):
        outbound += _messages(batch, plan, now)
    return results, outbound


def _decide(
    channel: Channel,
    batch: DeliveryBatch,
    result: BatchResult,
    plan: _Next,
    user: UserId,
    person: _Person,
    now: float,
) -> None:
    result.invalidated += _invalidations(user, person)
    record = partial(_record, channel, batch, result, user)
    if person.delivered:
        if user not in batch.counted:
            result.delivered += 1
        first = _result(person.delivered[0])
        tried = len(person.delivered) + len(person.retryable) + len(person.failed)
        some = f"{len(person.delivered)} of {tried} addresses"
        record(Outcome.DELIVERED, None if tried == len(person.delivered) else some, first)
        delay = _delay(batch, person)
        if person.retryable and _may_retry(batch, now, now + delay):
            plan.retry[user] = [s.address.ref for s in person.retryable]
            plan.retry_delay = max(plan.retry_delay, delay)
            plan.counted.append(user)
        return
    if not person.retryable and person.deferred:
        reason = _wait(batch, plan, user, person, now, record)
        if reason is None:
            return
    else:
        reason = _undelivered(batch, plan, user, person, now)
    if reason is None:
        record(Outcome.FAILED, f"retrying: {_result(person.retryable[0]).reason}")
        return
    chain = batch.fallbacks.get(user, ())
    if chain:
        plan.fallback.setdefault(chain[0], {})[user] = chain[1:]
        record(Outcome.FAILED, f"{reason}; falling back to {chain[0].value}")
        return
    if person.retryable or person.waiting_for():
        plan.exhausted.append(user)  # a dead letter, to replay once the provider is back
    if user not in batch.counted:
        result.failed += 1
    record(Outcome.FAILED, reason)


def _wait(
    batch: DeliveryBatch,
    plan: _Next,
    user: UserId,
    person: _Person,
    now: float,
    record: Callable[[Outcome, str | None], None],
) -> str | None:
    """Plan to come back with the person's unsent addresses and return None, or return why
    this channel is done with them (their provider is away and they have another channel,
    or a P0 has waited its budget's window)."""
    pause = max(_pause(batch, s) for s in person.deferred)
    waiting_for = person.waiting_for()
    if waiting_for is not None:
        if batch.fallbacks.get(user):
            return waiting_for  # do not wait for a provider that is away: the next channel
        if batch.header.priority is Priority.P0:
            first_at = batch.first_at if batch.first_at is not None else now
            left = first_at + batch.header.budget.within_s - now
            if left < 0:
                return f"gave up waiting {now - first_at:.0f}s: {waiting_for}"
            pause = min(pause, left + 0.5)  # back in time to give up, if it comes to that
        if batch.deferrals == 0:
            record(Outcome.HELD, f"waiting: {waiting_for}")
    plan.deferred[user] = [s.address.ref for s in person.deferred]
    plan.defer_delay = max(plan.defer_delay, pause)
    return None


def _pause(batch: DeliveryBatch, send: Send) -> float:
    answer = _result(send)
    if answer.status is SendStatus.UNCONFIGURED:  # look again, less and less often
        growth = 2.0 ** min(batch.deferrals, 10)
        return min((answer.retry_after_s or 1.0) * growth, UNCONFIGURED_MAX_WAIT_S)
    return answer.retry_after_s or 0.0


def _undelivered(
    batch: DeliveryBatch, plan: _Next, user: UserId, person: _Person, now: float
) -> str | None:
    """Plan a retry and return None, or return why this channel is done with the person."""
    if not person.retryable:
        worst = _result(person.failed[0])
        return f"{worst.status.value}: {worst.reason}"
    worst = _result(person.retryable[0])
    delay = _delay(batch, person)
    if not _may_retry(batch, now, now + delay):
        return f"gave up after {batch.attempt} attempts: {worst.reason}"
    plan.retry[user] = [s.address.ref for s in person.retryable + person.deferred]
    plan.retry_delay = max(plan.retry_delay, delay)
    if user in batch.counted:
        plan.counted.append(user)
    return None


def _record(
    channel: Channel,
    batch: DeliveryBatch,
    result: BatchResult,
    user: UserId,
    outcome: Outcome,
    reason: str | None,
    answer: SendResult | None = None,
) -> None:
    ref = answer.provider_ref if answer is not None else None
    if batch.claims > 1 and outcome is Outcome.DELIVERED:
        # Whoever held it before may have sent it already: say so in the trail, so that a
        # second copy at the provider (same message id) is accounted for.
        reason = f"{reason + '; ' if reason else ''}resent on claim {batch.claims}"
    row = DeliveryOutcome(user, channel.value, outcome, reason, batch.attempt, ref)
    result.outcomes.append(row)


def _delay(batch: DeliveryBatch, person: _Person) -> float:
    """Jittered exponential backoff — or the provider's Retry-After, plus up to a fifth more
    so that everything it turned away does not come back in the same instant."""
    base = backoff_s(batch.attempt, base_s=BACKOFF_BASE_S, cap_s=BACKOFF_CAP_S)
    asked = max((_result(s).retry_after_s or 0.0 for s in person.retryable), default=0.0)
    if not asked:
        return base
    return max(base, asked + random.uniform(0.0, asked * RETRY_AFTER_SPREAD))


def _may_retry(batch: DeliveryBatch, now: float, at: float) -> bool:
    """Whether the budget and the TTL allow another attempt at ``at`` (``now`` is this
    attempt: the first one, when the batch does not say otherwise)."""
    first_at = batch.first_at if batch.first_at is not None else now
    return at < batch.header.expires_at and batch.header.budget.allows(batch.attempt, first_at, at)


def _messages(batch: DeliveryBatch, plan: _Next, now: float) -> list[Outbound]:
    base = _stem(batch.batch_key)
    first_at = batch.first_at if batch.first_at is not None else now
    out = []
    if plan.retry:
        retry = DeliveryBatch(
            batch.header,
            batch.channel,
            f"{base}#r{batch.attempt + 1}",
            [UserId(u) for u in plan.retry],
            batch.attempt + 1,
            plan.retry,
            plan.counted,
            {UserId(u): batch.fallbacks[UserId(u)] for u in plan.retry if u in batch.fallbacks},
            first_at,
            summary=batch.summary,
            digest_due=batch.digest_due,
        )
        out.append(retry.encode(delay_s=plan.retry_delay))
    if plan.deferred:
        later = DeliveryBatch(
            batch.header,
            batch.channel,
            f"{base}#r{batch.attempt}d{batch.deferrals + 1}",
            [UserId(u) for u in plan.deferred],
            batch.attempt,
            plan.deferred,
            [u for u in batch.counted if u in plan.deferred],
            {UserId(u): batch.fallbacks[UserId(u)] for u in plan.deferred if u in batch.fallbacks},
            first_at,  # the budget's window runs while it waits
            batch.deferrals + 1,
            summary=batch.summary,
            digest_due=batch.digest_due,
        )
        out.append(later.encode(delay_s=plan.defer_delay))
    for channel, chains in plan.fallback.items():
        moved = DeliveryBatch(
            # From this very message (retries of one batch fall back at different attempts,
            # and each must arrive): the full key, never the stem.
            batch.header,
            channel,
            f"{batch.batch_key}>{channel.value}",
            list(chains),
            fallbacks=chains,
            summary=batch.summary,
            digest_due=batch.digest_due,
        )
        out.append(moved.encode())
    if plan.exhausted:
        # A fresh key for a replay: its own attempts must not collide with these.
        again = DeliveryBatch(
            batch.header,
            batch.channel,
            f"{base}+{now:.0f}",
            plan.exhausted,
            summary=batch.summary,
            digest_due=batch.digest_due,
        )
        error = f"retry budget spent on {batch.channel.value} after {batch.attempt} attempts"
        out.append(again.encode().as_dead_letter(error))
    return out


def _stem(batch_key: str) -> str:
    """The key without this channel's retry suffix: ``a/push#r2>email#r3`` → ``a/push#r2>email``
    (the part before ``>`` names the message it fell back from and stays)."""
    head, arrow, tail = batch_key.rpartition(">")
    return head + arrow + tail.split("#")[0]


def _invalidations(user: UserId, person: _Person) -> list[Invalidation]:
    return [
        Invalidation(user, s.address.ref, _result(s).reason, _result(s).invalid_since)
        for s in person.failed
        if _result(s).status is SendStatus.INVALID_ADDRESS
    ]


def _result(send: Send) -> SendResult:
    assert send.result is not None, "every send has a result by now"
    return send.result
