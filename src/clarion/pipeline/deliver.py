"""Delivery stages: one per channel (push, email, sms, webhook).

Per claim: batches past their TTL are dropped unsent; for the rest, the recipients'
addresses in one read (active devices, verified unbounced email, verified phone), the
events' content once, a render per (event, locale) — then one send per address, handed to
the providers by the ``Dispatcher`` (failover, breakers, send rates), many in flight at
once. What follows — retries within the budget, deferrals, fallbacks to the next channel,
dead letters — is ``follow_up``'s. Dead tokens and bounced addresses are retired in the
same commit that records the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from clarion.broker import Message, Outbound
from clarion.channels.base import (
    Content,
    OutboundMessage,
    SendStatus,
    permanent,
)
from clarion.clock import Clock
from clarion.keyring import SigningKeys
from clarion.live import critical
from clarion.live.critical import REFRESH_TYPE
from clarion.models import Channel, EventContent, Outcome, Priority
from clarion.pipeline import collapse, digests, observe
from clarion.pipeline.base import StageResult
from clarion.pipeline.digests import DigestComposer
from clarion.pipeline.dispatch import Dispatcher, Send
from clarion.pipeline.follow_up import follow_up
from clarion.pipeline.messages import DeliveryBatch, EventHeader, message_id
from clarion.pipeline.statuses import StatusOutbox
from clarion.policy.aggregation import WindowSummary
from clarion.stores.base import (
    DeliveryStore,
    DeviceStore,
    EventStore,
    StateStore,
    TemplateStore,
    UserStore,
)
from clarion.stores.records import Address, BatchResult, DeliveryOutcome, Digest
from clarion.templates import wording
from clarion.templates.render import RenderError, content, render
from clarion.types import Seq, UserId
from clarion.unsubscribe import UnsubscribeScope, make_token

log = logging.getLogger(__name__)

_CONTENT_CACHE = 10_000


_SENDS_PER_CLAIM = 2000
"""Claims are sized in recipients: two 1,000-recipient batches, or 64 one-recipient messages
(direct notifications, summaries, digests), so those share one dispatch and their HTTP/2
streams go out together instead of one claim, one round trip each."""
_MAX_CLAIM = 64


class DeliverStage:
    def __init__(
        self,
        channel: Channel,
        *,
        devices: DeviceStore,
        users: UserStore,
        events: EventStore,
        templates: TemplateStore,
        deliveries: DeliveryStore,
        dispatcher: Dispatcher,
        statuses: StatusOutbox,
        composer: DigestComposer | None = None,
        acks: StateStore | None = None,
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
        self._dispatcher = dispatcher
        self._statuses = statuses
        self._composer = composer
        self._acks = acks
        self._keys = signing_keys
        self._clock = clock
        self._worker = worker
        self._public_url = public_url.rstrip("/")
        self._contents: dict[Seq, EventContent] = {}
        self.claim_limit = 4
        """Messages to take next time, adapted to the size of the batches seen last."""
        self._template_docs: dict[tuple[str, int | None], dict[str, Any] | None] = {}

    def decode(self, message: Message) -> DeliveryBatch:
        batch = DeliveryBatch.decode(message.body)
        return replace(batch, claims=message.attempts) if message.attempts > 1 else batch

    async def handle(self, items: Sequence[DeliveryBatch]) -> StageResult:
        per_message = sum(len(b.recipients) for b in items) / max(len(items), 1)
        self.claim_limit = max(1, min(_MAX_CLAIM, int(_SENDS_PER_CLAIM / max(per_message, 1))))
        done = await self._deliveries.recorded([(b.header.seq, b.batch_key) for b in items])
        batches = [b for b in items if (b.header.seq, b.batch_key) not in done]
        if not batches:
            return StageResult()
        now = self._clock.now()
        expired = [b for b in batches if now >= b.header.expires_at]
        batches = [b for b in batches if now < b.header.expires_at]
        results = [_expired(self.channel, b) for b in expired]
        outbound: list[Outbound] = []
        sends: list[Send] = []
        trails: list[BatchResult] = []
        if batches:
            await self._load_contents(batches)
            batches, gone = await self._overtaken(batches)
            batches, known = await self._acknowledged(batches)
            users = list({u for b in batches for u in b.recipients})
            addresses = await self._devices.addresses(self.channel, users)
            locales = await self._users.locales(users)
            composed = await self._compose_digests(batches, locales)
            sends = await self._plan(batches, addresses, locales, composed)
            await self._dispatcher.dispatch(sends)
            results, outbound = follow_up(self.channel, batches, sends, self._clock.now())
            for result, batch, users, acked in zip(results, batches, gone, known, strict=True):
                _not_sent(self.channel, batch, users, result, collapse.SUPERSEDED)
                _not_sent(self.channel, batch, acked, result, "acknowledged on its stream")
            trails = _digest_trails(batches, sends, composed, results)
            results += [_expired(self.channel, b) for b in expired]
        outbound += await self._statuses.for_results(batches + expired, results, self._clock.now())
        results += trails

        async def record() -> None:
            await self._deliveries.record_batches(results, self._worker, self._clock.now())
            observe.sent(self.channel, batches, sends, self._clock.now())

        return StageResult(outbound, [record], len(sends))

    async def _acknowledged(
        self, batches: list[DeliveryBatch]
    ) -> tuple[list[DeliveryBatch], list[list[UserId]]]:
        """A critical-state check (``live.critical``) goes only to the devices that have not
        acknowledged the change on their stream; returns the batches, and per batch the
        people none of whose devices owe it."""
        done: list[list[UserId]] = [[] for _ in batches]
        if self._acks is None or not any(b.header.type == REFRESH_TYPE for b in batches):
            return batches, done
        checked = []
        for batch, users in zip(batches, done, strict=True):
            if batch.header.type != REFRESH_TYPE:
                checked.append(batch)
                continue
            position = self._contents[batch.header.seq].payload.get("position")
            only: dict[str, list[str]] = {}
            for user in batch.recipients:
                acked = await self._acks.acked(user)
                devices = (await self._devices.addresses(self.channel, [user])).get(user, [])
                owed = [a.ref for a in devices if critical.owes(acked.get(a.ref), position)]
                if owed:
                    only[user] = owed
                else:
                    users.append(user)
            checked.append(replace(batch, recipients=[UserId(u) for u in only], only=only))
        return checked, done

    async def _overtaken(
        self, batches: list[DeliveryBatch]
    ) -> tuple[list[DeliveryBatch], list[list[UserId]]]:
        """Each batch without the recipients a newer notification of its collapse key has
        overtaken since it was queued (``pipeline.collapse``), and those recipients."""
        latest = await collapse.latest_of(self._deliveries, batches)
        gone = [collapse.overtaken(b, latest) for b in batches]
        kept = [
            replace(b, recipients=[u for u in b.recipients if u not in set(g)]) if g else b
            for b, g in zip(batches, gone, strict=True)
        ]
        return kept, gone

    # ── what to send ─────────────────────────────────────────────────────────────────

    async def _load_contents(self, batches: list[DeliveryBatch]) -> None:
        missing = list({b.header.seq for b in batches} - self._contents.keys())
        if missing:
            if len(self._contents) > _CONTENT_CACHE:
                self._contents.clear()
            self._contents.update(await self._events.contents([Seq(s) for s in missing]))

    async def _compose_digests(
        self, batches: list[DeliveryBatch], locales: dict[UserId, str]
    ) -> dict[int, tuple[Digest, Content | RenderError]]:
        composed = {}
        for index, batch in enumerate(batches):
            if batch.digest_due is not None and self._composer is not None:
                made = await self._composer.compose(batch, locales.get(batch.recipients[0]))
                if made is not None:
                    composed[index] = made
        return composed

    async def _plan(
        self,
        batches: list[DeliveryBatch],
        addresses: dict[UserId, list[Address]],
        locales: dict[UserId, str],
        composed: dict[int, tuple[Digest, Content | RenderError]],
    ) -> list[Send]:
        sends: list[Send] = []
        rendered: dict[tuple[Seq, str | None, WindowSummary | None], Content | RenderError] = {}
        for index, batch in enumerate(batches):
            header = batch.header
            if batch.digest_due is not None and index not in composed:
                continue  # an empty digest (or one another claim sent): nothing to send
            for user in batch.recipients:
                wanted = None if batch.only is None else set(batch.only.get(user, ()))
                found = [a for a in addresses.get(user, []) if wanted is None or a.ref in wanted]
                if not found:
                    sends.append(
                        Send(index, user, Address("none", "", ""), None, permanent("no_address"))
                    )
                    continue
                locale = locales.get(user)
                key = (header.seq, locale, batch.summary)
                if index in composed:
                    body = composed[index][1]
                elif key not in rendered:
                    body = rendered[key] = await self._content(header, locale, batch.summary)
                else:
                    body = rendered[key]
                for address in found:
                    if isinstance(body, RenderError):
                        sends.append(
                            Send(index, user, address, None, permanent(f"template: {body}"))
                        )
                        continue
                    message = self._message(batch, user, address, body)
                    sends.append(Send(index, user, address, message, retry=batch.attempt > 1))
        return sends

    async def _content(
        self, header: EventHeader, locale: str | None, summary: WindowSummary | None
    ) -> Content | RenderError:
        event = self._contents[header.seq]
        data = {"event_id": header.event_id, "type": event.type, "object": event.object or ""}
        body = event.body if summary is None else wording.summary_body(summary)
        if event.template is None:
            return content({}, title=event.title, body=body, data=data)
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
            **(wording.single(event.actor) if summary is None else wording.of_summary(summary)),
        }
        try:
            fields = render(doc, self.channel, locale, params)
        except RenderError as exc:
            return exc
        return content(fields, title=event.title, body=body, data=data)

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
            scope = (
                UnsubscribeScope(user, type=header.type, sender=header.sender)
                if batch.digest_due is None
                else UnsubscribeScope(user, channel=Channel.EMAIL, sender=header.sender)
            )
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
            collapse_key=_collapse_key(header, event),
            meta={**address.meta, "registered_at": address.registered_at},
            unsubscribe_url=unsubscribe,
            background=header.type == REFRESH_TYPE,
        )

    async def on_dead_letter(
        self, item: DeliveryBatch | None, message: Message, error: str
    ) -> None:
        """The batch stays in the dead-letter queue for an operator to replay."""

    async def close(self) -> None:
        await self._dispatcher.close()


def _collapse_key(header: EventHeader, event: EventContent) -> str | None:
    """The producer's collapse key; for an aggregating type, its key's type and object, so
    the summary replaces the first on the device instead of stacking under it."""
    if event.collapse_key is not None or not header.aggregate_s:
        return event.collapse_key
    return f"{header.type}:{header.object or ''}"[:64]


def _digest_trails(
    batches: list[DeliveryBatch],
    sends: list[Send],
    composed: dict[int, tuple[Digest, Content | RenderError]],
    results: list[BatchResult],
) -> list[BatchResult]:
    """``delivered`` with the digest's id against each item of each digest that went out:
    the send's own row (the event that scheduled it) says so, the others get one each."""
    went = {
        s.batch for s in sends if s.result is not None and s.result.status is SendStatus.DELIVERED
    }
    trails = []
    for index, (digest, _) in composed.items():
        if index not in went:
            continue
        batch, reason = batches[index], f"digest {digest.digest_id}"
        results[index].outcomes = [
            o._replace(reason=f"{reason}; {o.reason}" if o.reason else reason)
            if o.outcome is Outcome.DELIVERED
            else o
            for o in results[index].outcomes
        ]
        others = [seq for seq, _ in digest.items if seq != batch.header.seq]
        trails += digests.for_items(batch, others, digest.digest_id)
    return trails


def _not_sent(
    channel: Channel, batch: DeliveryBatch, users: list[UserId], result: BatchResult, why: str
) -> None:
    result.outcomes += [
        DeliveryOutcome(u, channel.value, Outcome.SUPPRESSED, why, batch.attempt) for u in users
    ]
    result.suppressed += len(users)


def _expired(channel: Channel, batch: DeliveryBatch) -> BatchResult:
    """Past the TTL: nothing is sent — a late notification is worse than none."""
    result = BatchResult(batch.header.seq, batch.batch_key, len(batch.recipients))
    result.completes_batch = False
    result.outcomes = [
        DeliveryOutcome(u, channel.value, Outcome.SUPPRESSED, "expired", batch.attempt)
        for u in batch.recipients
    ]
    result.suppressed = len(batch.recipients)
    return result
