"""A provider's health, shared by every worker: the circuit breaker and the send buckets.

Pure functions over one record; a store applies them inside a transaction so that all
worker processes see and move the same breaker (``backends.sqlite.stores.health``).

The breaker, per provider::

    closed ──(error rate ≥ threshold over the window, enough requests;
              or a run of consecutive failures)──► open
    open ──(one worker sends a probe: first_probe_s after opening, then twice as long
            after each failed probe, up to probe_every_s)──► half-open if the probe works
    half-open (a fifth of the rate) ──(errors again)──► open
                                    ──(half_open_s without)──► closed

Only answers that say the provider itself is struggling count as errors: 5xx, timeouts,
dropped connections. A dead token or a bounced address is the provider working. A 429 is
the provider asking us to slow down: it tightens the send bucket for a while instead.

The window slides: the previous window's counts are weighed by how much of it still
overlaps the last ``window_s`` seconds. An error *rate* alone is slow to notice a provider
that was healthy at thousands of sends a second and then fails everything — the good
history dilutes the errors — so a run of ``consecutive_failures`` failed sends, in answers
each as bad as the threshold, opens the breaker too (measured: 1,200 refused pushes in half a
second left a rate-only breaker closed at 11% errors).

The buckets: sends never exceed the provider's ``rate_per_s`` (every worker together), and
retries take a second bucket at ``retry_share`` of that rate, so a crowd of retries after an
outage can never crowd out fresh traffic or trip the provider's own limits again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    window_s: float = 30.0
    error_rate: float = 0.3
    min_requests: int = 20
    """Fewer requests than this in the window never open the breaker."""
    consecutive_failures: int = 50
    first_probe_s: float = 2.0
    """The first probe after the breaker opens: a blip of a few seconds costs seconds."""
    probe_every_s: float = 30.0
    """The longest wait between probes (each failed probe doubles the wait up to this)."""
    probe_size: int = 1
    half_open_s: float = 10.0
    half_open_share: float = 0.2
    """Of the rate limit (or of each batch, without one) while half-open."""
    retry_share: float = 0.5
    throttle_s: float = 30.0
    throttle_share: float = 0.5
    """Of the rate limit for ``throttle_s`` after the provider answered 429."""
    burst_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Health:
    """One provider's shared record."""

    state: BreakerState = BreakerState.CLOSED
    changed_at: float = 0.0
    window_start: float = 0.0
    sent: int = 0
    failed: int = 0
    prev_sent: int = 0
    prev_failed: int = 0
    failing_run: int = 0
    """Failed sends in the current run of answers as bad as the threshold."""
    probe_at: float = 0.0
    probe_wait_s: float = 0.0
    """The wait before the current probe; the next one after a failure waits twice as long."""
    throttled_until: float = 0.0
    tokens: float | None = None
    tokens_at: float = 0.0
    retry_tokens: float | None = None
    retry_tokens_at: float = 0.0

    def sliding(self, now: float, window_s: float) -> tuple[float, float]:
        """(sent, failed) over the last ``window_s`` seconds, the previous window weighed
        by its overlap."""
        weight = max(0.0, 1.0 - (now - self.window_start) / window_s)
        return self.sent + self.prev_sent * weight, self.failed + self.prev_failed * weight

    def error_rate(self, now: float, window_s: float) -> float:
        sent, failed = self.sliding(now, window_s)
        return failed / sent if sent else 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "state": self.state.value
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Health:
        return cls(**(doc | {"state": BreakerState(doc["state"])}))


@dataclass(frozen=True, slots=True)
class Admission:
    granted: int
    """Send this many now."""
    wait_s: float
    """For the rest: when to come back."""
    state: BreakerState
    probing: bool = False


def admit(
    health: Health,
    want: int,
    *,
    retry: bool,
    now: float,
    rate_per_s: float | None,
    settings: BreakerSettings,
) -> tuple[Health, Admission]:
    """How many of ``want`` sends may go now, and the record to store."""
    if health.state is BreakerState.OPEN:
        if now < health.probe_at:
            return health, Admission(0, health.probe_at - now, health.state)
        # This caller is the prober; the next probe (if this one fails) waits twice as long.
        probe = min(want, settings.probe_size)
        wait = min(max(health.probe_wait_s, settings.first_probe_s) * 2, settings.probe_every_s)
        moved = replace(health, probe_at=now + wait, probe_wait_s=wait)
        return moved, Admission(probe, wait, health.state, probing=True)
    share = 1.0
    if health.state is BreakerState.HALF_OPEN:
        share = settings.half_open_share
    if now < health.throttled_until:
        share *= settings.throttle_share
    if rate_per_s is None:
        if share >= 1.0:
            return health, Admission(want, 0.0, health.state)
        granted = max(1, math.floor(want * share))
        return health, Admission(granted, 1.0, health.state)
    rate = rate_per_s * share
    tokens, granted, wait = _take(health.tokens, health.tokens_at, want, now, rate, settings)
    health = replace(health, tokens=tokens, tokens_at=now)
    if retry and granted:
        retry_rate = rate * settings.retry_share
        left, allowed, retry_wait = _take(
            health.retry_tokens, health.retry_tokens_at, granted, now, retry_rate, settings
        )
        # Tokens the retry bucket refused go back to the send bucket.
        health = replace(
            health,
            tokens=tokens + (granted - allowed),
            retry_tokens=left,
            retry_tokens_at=now,
        )
        wait = max(wait, retry_wait) if allowed < want else wait
        granted = allowed
    return health, Admission(granted, wait, health.state)


def _take(
    tokens: float | None,
    since: float,
    want: int,
    now: float,
    rate: float,
    settings: BreakerSettings,
) -> tuple[float, int, float]:
    """(tokens left, granted, wait for the next one) from a bucket refilling at ``rate``."""
    capacity = max(rate * settings.burst_s, 1.0)
    level = capacity if tokens is None else min(capacity, tokens + (now - since) * rate)
    granted = min(want, math.floor(level))
    level -= granted
    wait = 0.0 if granted == want else (1.0 - level % 1.0) / rate
    return level, granted, wait


def report(
    health: Health,
    *,
    sent: int,
    failed: int,
    throttled: bool,
    now: float,
    settings: BreakerSettings,
) -> Health:
    """Count the outcome of ``sent`` sends (``failed`` of them the provider's fault) and
    move the breaker."""
    elapsed = now - health.window_start
    if elapsed >= settings.window_s:
        recent = elapsed < 2 * settings.window_s
        health = replace(
            health,
            window_start=health.window_start + settings.window_s if recent else now,
            prev_sent=health.sent if recent else 0,
            prev_failed=health.failed if recent else 0,
            sent=0,
            failed=0,
        )
    # Sends in one answer went out together, in no order we know: an answer at least as bad
    # as the threshold continues the run, a better one ends it.
    bad = failed > 0 and failed >= sent * settings.error_rate
    run = health.failing_run + failed if bad else 0
    health = replace(
        health, sent=health.sent + sent, failed=health.failed + failed, failing_run=run
    )
    if throttled:
        health = replace(health, throttled_until=now + settings.throttle_s)
    in_window, _ = health.sliding(now, settings.window_s)
    error_rate = health.error_rate(now, settings.window_s)
    tripped = run >= settings.consecutive_failures or (
        in_window >= settings.min_requests and error_rate >= settings.error_rate
    )
    if health.state is BreakerState.CLOSED and tripped:
        return _move(health, BreakerState.OPEN, now, settings)
    if health.state is BreakerState.OPEN and sent:
        # Only a probe sends while open: its answer decides.
        return _move(health, BreakerState.HALF_OPEN if not failed else health.state, now, settings)
    if health.state is BreakerState.HALF_OPEN:
        if failed and error_rate >= settings.error_rate:
            return _move(health, BreakerState.OPEN, now, settings)
        if now - health.changed_at >= settings.half_open_s:
            return _move(health, BreakerState.CLOSED, now, settings)
    return health


def _move(health: Health, state: BreakerState, now: float, settings: BreakerSettings) -> Health:
    if state is health.state:
        return health
    return replace(
        health,
        state=state,
        changed_at=now,
        window_start=now,
        sent=0,
        failed=0,
        prev_sent=0,
        prev_failed=0,
        failing_run=0,
        probe_at=now + settings.first_probe_s if state is BreakerState.OPEN else 0.0,
        probe_wait_s=settings.first_probe_s if state is BreakerState.OPEN else 0.0,
    )
