"""Handing sends to providers: which provider, how many now, and what its health says after.

Per provider kind in a claim: the primary first, and while its breaker is open the
secondary takes over (failover); the shared send bucket decides how many go now — the rest
are *deferred*, unsent and not counted as an attempt; retries draw on their own, smaller
bucket so they never crowd out fresh traffic. Every answer then moves the shared breaker.
A provider refusing our credentials is paused in this worker: the fault is ours, every
further request would be refused too, and the messages wait instead of failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from clarion import metrics
from clarion.channels.base import (
    OutboundMessage,
    Provider,
    SendResult,
    SendStatus,
    transient,
)
from clarion.channels.providers import ProviderSet
from clarion.resilience.breaker import BreakerState
from clarion.resilience.health import ProviderHealth
from clarion.stores.records import Address
from clarion.types import UserId

log = logging.getLogger(__name__)

CREDENTIALS_PAUSE_S = 60.0
UNCONFIGURED_WAIT_S = 5.0
"""How soon a send with no provider to take it looks again (doubling while it waits)."""


@dataclass(slots=True)
class Send:
    """One message to one address of one person, and what became of it."""

    batch: int
    user: UserId
    address: Address
    message: OutboundMessage | None
    result: SendResult | None = None
    retry: bool = False


SEND_CHUNK = 400
"""Sends handed to a provider at once (concurrent streams); the breaker is consulted
between chunks."""


class Dispatcher:
    def __init__(
        self, providers: ProviderSet, health: ProviderHealth, now: Callable[[], float]
    ) -> None:
        self._providers = providers
        self._health = health
        self._now = now
        self._paused_until: dict[str, float] = {}

    async def dispatch(self, sends: list[Send]) -> None:
        """Give every send without a result one: the provider's answer, or why not."""
        by_kind: dict[tuple[str, bool], list[Send]] = {}
        for send in sends:
            if send.result is None:
                by_kind.setdefault((send.address.provider, send.retry), []).append(send)
        for (kind, retry), group in by_kind.items():
            await self._dispatch(kind, group, retry=retry)

    async def _dispatch(self, kind: str, sends: list[Send], *, retry: bool) -> None:
        paused = self._paused_until.get(kind, 0.0) - self._now()
        if paused > 0:
            _answer(sends, transient("provider paused: credentials refused", paused))
            return
        candidates = await self._providers.candidates(kind)
        if not candidates:
            reason = f"no provider configured for {kind}: PUT /v1/providers/{kind}"
            _answer(sends, SendResult(SendStatus.UNCONFIGURED, reason, UNCONFIGURED_WAIT_S))
            return
        pending, wait, unavailable = sends, 0.0, True
        for provider, config in candidates:
            admission = await self._health.admit(
                provider.name, len(pending), retry=retry, rate_per_s=config.rate_per_s
            )
            opened = False
            if admission.granted:
                now, pending = pending[: admission.granted], pending[admission.granted :]
                unsent = await self._send(kind, provider, now)
                opened, pending = bool(unsent), unsent + pending
            if not pending:
                return
            wait = self._health.settings.first_probe_s if opened else admission.wait_s
            unavailable = opened or admission.state is BreakerState.OPEN
            if not unavailable:
                break  # held back by the rate: wait for it rather than spill over
        if unavailable:
            reason = f"unavailable: {kind} circuit open"
            _answer(pending, SendResult(SendStatus.UNAVAILABLE, reason, wait))
        else:
            _answer(pending, SendResult(SendStatus.DEFERRED, f"deferred: {kind} rate", wait))

    async def _send(self, kind: str, provider: Provider, sends: list[Send]) -> list[Send]:
        """Send in chunks, each answer moving the breaker; returns what was left unsent
        because the breaker opened on the way (a claim's worth of sends does not all go
        to a provider that is failing: at most one chunk is refused)."""
        for at in range(0, len(sends), SEND_CHUNK):
            chunk = sends[at : at + SEND_CHUNK]
            started = time.perf_counter()
            results = await provider.send([s.message for s in chunk if s.message is not None])
            took = time.perf_counter() - started
            metrics.metrics().provider_send.labels(provider.name).observe(took)
            failed = throttled = 0
            for send, result in zip(chunk, results, strict=True):
                if result.status is SendStatus.CREDENTIALS:
                    self._pause(kind, provider.name, result.reason)
                    result = transient(f"credentials: {result.reason}", CREDENTIALS_PAUSE_S)
                elif result.throttled:
                    throttled += 1
                elif result.status is SendStatus.TRANSIENT:
                    failed += 1
                send.result = result
            state = await self._health.report(
                provider.name, sent=len(chunk), failed=failed, throttled=throttled > 0
            )
            if state is BreakerState.OPEN:
                return sends[at + SEND_CHUNK :]
        return []

    def _pause(self, kind: str, name: str, reason: str) -> None:
        if self._paused_until.get(kind, 0.0) > self._now():
            return
        log.error(
            "provider %s refuses our credentials (%s): pausing it for %.0fs; fix the"
            " configuration (PUT /v1/providers/%s)",
            name,
            reason,
            CREDENTIALS_PAUSE_S,
            name,
        )
        self._paused_until[kind] = self._now() + CREDENTIALS_PAUSE_S

    async def close(self) -> None:
        await self._providers.close()


def _answer(sends: list[Send], result: SendResult) -> None:
    for send in sends:
        send.result = result
