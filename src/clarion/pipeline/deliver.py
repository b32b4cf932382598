"""Delivery stages: one per channel (push, email, sms, webhook).

Per claim: the recipients' addresses in one read (active devices, verified unbounced email,
verified phone), the events' content once, a render per (event, locale) — then one send per
address through the provider that speaks to it, many in flight at once. A person counts as
delivered when any of their addresses took the message (three phones: three pushes, one
person). Transient failures come back as a delayed retry batch holding only the addresses
still to do, with the provider's Retry-After honoured; dead tokens and bounced addresses
are retired in the same commit that records the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clarion.broker import Message, Outbound
from clarion.broker.retry import backoff_s
from clarion.channels.base import (
    Content,
    OutboundMessage,
    SendResult,
    SendStatus,
    permanent,
    transient,
)
from clarion.channels.providers import ProviderSet
from clarion.clock import Clock
from clarion.models import Channel, EventContent, Outcome, Priority
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import DeliveryBatch, message_id
from clarion.pipeline.statuses import StatusOutbox
from clarion.stores.base import DeliveryStore, DeviceStore, EventStore, TemplateStore, UserStore
from clarion.stores.records import Address, BatchResult, DeliveryOutcome, Invalidation
from clarion.templates.render import RenderError, content, render
from clarion.types import Seq, UserId
from clarion.unsubscribe import SigningKeys, UnsubscribeScope, make_token

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
_CONTENT_CACHE = 10_000
CREDENTIALS_PAUSE_S = 60.0
"""After a provider refuses our credentials, stop sending to it for this long (per worker):
the fault is ours, every further request would be refused too, and the affected messages
wait and retry rather than fail — an operator fixing the key gets them out."""


@dataclass(slots=True)
class _Send:
    batch: int
    user: UserId
    address: Address
    message: OutboundMessage | None
    result: SendResult | None = None


@dataclass(slots=True)
class _Person:
    delivered: list[_Send] = field(default_factory=list)
    transient: list[_Send] = field(default_factory=list)
    failed: list[_Send] = field(default_factory=list)


class DeliverStage:
    claim_limit = 4

    def __init__(
        self,
        channel: Channel,
        *,
        devices: DeviceStore,
        users: UserStore,
        events: EventStore,
        templates: TemplateStore,
        deliveries: DeliveryStore,
        providers: ProviderSet,
        statuses: StatusOutbox,
        signing_keys: SigningKeys,
        clock: Clock,
        worker: str,
        public_url: str,
    ) -> None:
        self.channel = channel
        self.name = channel.value
        self._devices = devices
        self._users = users
        self._events = events
        self._templates = templates
        self._deliveries = deliveries
        self._providers = providers
        self._statuses = statuses
        self._keys = signing_keys
        self._clock = clock
        self._worker = worker
        self._public_url = public_url.rstrip("/")
        self._contents: dict[Seq, EventContent] = {}
        self._paused_until: dict[str, float] = {}
        self._template_docs: dict[tuple[str, int | None], dict[str, Any] | None] = {}

    def decode(self, body: bytes) -> DeliveryBatch:
        return DeliveryBatch.decode(body)

    async def handle(self, items: Sequence[DeliveryBatch]) -> StageResult:
        done = await self._deliveries.recorded([(b.header.seq, b.batch_key) for b in items])
        batches = [b for b in items if (b.header.seq, b.batch_key) not in done]
        if not batches:
            return StageResult()
        users = list({u for b in batches for u in b.recipients})
        addresses = await self._devices.addresses(self.channel, users)
        await self._load_contents(batches)
        locales = await self._users.locales(users)
        sends = await self._plan(batches, addresses, locales)
        await self._send(sends)
        results, outbound = self._outcomes(batches, sends)
        outbound += await self._statuses.for_results(batches, results, self._clock.now())

        async def record() -> None:
            await self._deliveries.record_batches(results, self._worker, self._clock.now())

        return StageResult(outbound, record, len(sends))

    # ── what to send ─────────────────────────────────────────────────────────────────

    async def _load_contents(self, batches: list[DeliveryBatch]) -> None:
        missing = list({b.header.seq for b in batches} - self._contents.keys())
        if missing:
            if len(self._contents) > _CONTENT_CACHE:
                self._contents.clear()
            self._contents.update(await self._events.contents([Seq(s) for s in missing]))

    async def _plan(
        self,
        batches: list[DeliveryBatch],
        addresses: dict[UserId, list[Address]],
        locales: dict[UserId, str],
    ) -> list[_Send]:
        sends: list[_Send] = []
        rendered: dict[tuple[Seq, str | None], Content | RenderError] = {}
        for index, batch in enumerate(batches):
            header = batch.header
            for user in batch.recipients:
                wanted = None if batch.only is None else set(batch.only.get(user, ()))
                found = [a for a in addresses.get(user, []) if wanted is None or a.ref in wanted]
                if not found:
                    sends.append(
                        _Send(index, user, Address("none", "", ""), None, permanent("no_address"))
                    )
                    continue
                locale = locales.get(user)
                key = (header.seq, locale)
                if key not in rendered:
                    rendered[key] = await self._content(header.seq, header.event_id, locale)
                body = rendered[key]
                for address in found:
                    if isinstance(body, RenderError):
                        sends.append(
                            _Send(index, user, address, None, permanent(f"template: {body}"))
                        )
                        continue
                    sends.append(
                        _Send(index, user, address, self._message(batch, user, address, body))
                    )
        return sends

    async def _content(self, seq: Seq, event_id: str, locale: str | None) -> Content | RenderError:
        event = self._contents[seq]
        data = {"event_id": event_id, "type": event.type, "object": event.object or ""}
        if event.template is None:
            return content({}, title=event.title, body=event.body, data=data)
        key = (event.template, event.template_version)
        if key not in self._template_docs:
            found = await self._templates.get(event.template, event.template_version)
            self._template_docs[key] = None if found is None else found.doc
        doc = self._template_docs[key]
        if doc is None:
            return RenderError(f"template {event.template!r} is gone")
        params = {
            **event.payload,
            "payload": event.payload,
            "actor": event.actor,
            "object": event.object,
            "type": event.type,
        }
        try:
            fields = render(doc, self.channel, locale, params)
        except RenderError as exc:
            return exc
        return content(fields, title=event.title, body=event.body, data=data)

    def _message(
        self, batch: DeliveryBatch, user: UserId, address: Address, body: Content
    ) -> OutboundMessage:
        header = batch.header
        unsubscribe = None
        if (
            self.channel is Channel.EMAIL
            and header.priority is not Priority.P0
            and not header.mandatory
        ):
            scope = UnsubscribeScope(user, type=header.type, sender=header.sender)
            token = make_token(scope, self._keys)
            unsubscribe = f"{self._public_url}/v1/unsubscribe/{token}"
        event = self._contents[header.seq]
        return OutboundMessage(
            id=message_id(header.event_id, user, address.ref),
            event_id=header.event_id,
            user_id=user,
            address=address.value,
            content=body,
            priority=header.priority,
            expires_at=header.expires_at,
            collapse_key=event.collapse_key,
            meta={**address.meta, "registered_at": address.registered_at},
            unsubscribe_url=unsubscribe,
        )

    async def _send(self, sends: list[_Send]) -> None:
        by_provider: dict[str, list[_Send]] = {}
        for send in sends:
            if send.result is None:
                by_provider.setdefault(send.address.provider, []).append(send)
        for kind, group in by_provider.items():
            await self._send_group(kind, group)

    async def _send_group(self, kind: str, group: list[_Send]) -> None:
        paused = self._paused_until.get(kind, 0.0) - self._clock.now()
        if paused > 0:
            for send in group:
                send.result = transient("provider paused: credentials refused", paused)
            return
        provider = await self._providers.choose(kind)
        if provider is None:
            for send in group:
                send.result = permanent(f"no_provider: configure {kind!r}")
            return
        results = await provider.send([s.message for s in group if s.message is not None])
        refused = [r for r in results if r.status is SendStatus.CREDENTIALS]
        if refused:
            log.error(
                "provider %s refuses our credentials (%s): pausing it for %.0fs; fix the"
                " configuration (PUT /v1/providers/%s)",
                provider.name,
                refused[0].reason,
                CREDENTIALS_PAUSE_S,
                provider.name,
            )
            self._paused_until[kind] = self._clock.now() + CREDENTIALS_PAUSE_S
        for send, result in zip(group, results, strict=True):
            if result.status is SendStatus.CREDENTIALS:
                result = transient(f"credentials: {result.reason}", CREDENTIALS_PAUSE_S)
            send.result = result

    # ── what happened ────────────────────────────────────────────────────────────────

    def _outcomes(
        self, batches: list[DeliveryBatch], sends: list[_Send]
    ) -> tuple[list[BatchResult], list[Outbound]]:
        people: dict[tuple[int, UserId], _Person] = {}
        for send in sends:
            assert send.result is not None
            person = people.setdefault((send.batch, send.user), _Person())
            if send.result.status is SendStatus.DELIVERED:
                person.delivered.append(send)
            elif send.result.status is SendStatus.TRANSIENT:
                person.transient.append(send)
            else:
                person.failed.append(send)
        results = [
            BatchResult(b.header.seq, b.batch_key, len(b.recipients), completes_batch=False)
            for b in batches
        ]
        retries: dict[int, dict[str, list[str]]] = {}
        counted: dict[int, list[UserId]] = {}
        delays: dict[int, float] = {}
        for (index, user), person in people.items():
            batch, result = batches[index], results[index]
            result.invalidated += _invalidations(user, person)
            outcome, reason, ref = verdict(batch.attempt, person)
            result.outcomes.append(
                DeliveryOutcome(user, self.channel.value, outcome, reason, batch.attempt, ref)
            )
            already = user in batch.counted
            if outcome is Outcome.DELIVERED and not already:
                result.delivered += 1
            if person.transient and batch.attempt < MAX_ATTEMPTS:
                retries.setdefault(index, {})[user] = [s.address.ref for s in person.transient]
                if outcome is Outcome.DELIVERED or already:
                    counted.setdefault(index, []).append(user)
                waits = [s.result.retry_after_s or 0.0 for s in person.transient if s.result]
                delays[index] = max(delays.get(index, 0.0), *waits, backoff_s(batch.attempt))
            elif outcome is Outcome.FAILED and not already:
                result.failed += 1
        outbound = [
            DeliveryBatch(
                batches[i].header,
                self.channel,
                f"{batches[i].batch_key.split('/r')[0]}/r{batches[i].attempt + 1}",
                [UserId(u) for u in only],
                batches[i].attempt + 1,
                only,
                counted.get(i, []),
            ).encode(delay_s=delays[i])
            for i, only in retries.items()
        ]
        return results, outbound

    async def on_dead_letter(
        self, item: DeliveryBatch | None, message: Message, error: str
    ) -> None:
        """The batch stays in the dead-letter queue for an operator to replay."""

    async def close(self) -> None:
        await self._providers.close()


def _invalidations(user: UserId, person: _Person) -> list[Invalidation]:
    return [
        Invalidation(user, s.address.ref, s.result.reason, s.result.invalid_since)
        for s in person.failed
        if s.result is not None and s.result.status is SendStatus.INVALID_ADDRESS
    ]


def verdict(attempt: int, person: _Person) -> tuple[Outcome, str | None, str | None]:
    """One person's outcome on this channel: delivered if any address took it."""
    if person.delivered:
        first = person.delivered[0].result
        assert first is not None
        tried = len(person.delivered) + len(person.transient) + len(person.failed)
        partial = f"{len(person.delivered)} of {tried} addresses"
        return (
            Outcome.DELIVERED,
            None if tried == len(person.delivered) else partial,
            (first.provider_ref),
        )
    worst = (person.transient or person.failed)[0].result
    assert worst is not None
    if person.transient and attempt < MAX_ATTEMPTS:
        return Outcome.FAILED, f"retrying: {worst.reason}", None
    if person.transient:
        return Outcome.FAILED, f"gave up after {attempt} attempts: {worst.reason}", None
    return Outcome.FAILED, f"{worst.status.value}: {worst.reason}", None
