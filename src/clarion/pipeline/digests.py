"""Email digests (``policy.digest``): what a person asked to get daily or weekly is collected
instead of emailed, and one email per period lists it.

At evaluation, an email routed to someone with a digest setting becomes an item of their
next digest (logged ``held`` / ``digest``); P0 and mandatory types never are. A type with
``overflow: "digest"`` sends what frequency caps would drop to the person's next digest too
(daily at 08:00 if they never chose one). An aggregated notification is one item: its
key's inbox entry, listed with its count.

The first item of a digest schedules it: an email delivery batch, due at the digest's
time, that takes the digest (``DigestStore.take``, the same items if taken again), sends
one email listing them, and logs ``delivered`` with the digest's id against each item.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from typing import Any

from clarion.broker import Outbound
from clarion.channels.base import Content
from clarion.models import Channel, EventContent, Outcome, Priority
from clarion.pipeline.context import Context
from clarion.pipeline.messages import DeliveryBatch, EventHeader, RecipientBatch
from clarion.pipeline.route import Routes
from clarion.policy.digest import DigestSchedule, next_due
from clarion.policy.preferences import Preferences
from clarion.stores.base import DigestStore, EventStore, InboxStore, TemplateStore
from clarion.stores.records import Aggregate, BatchResult, DeliveryOutcome, Digest, DigestItem
from clarion.templates import wording
from clarion.templates.render import DIGEST as DIGEST_VARIANT
from clarion.templates.render import RenderError, content, render
from clarion.types import Seq, UserId

DIGEST = "digest"
OVER_CAP = "digest: over frequency cap"


def exempt(batch: RecipientBatch) -> bool:
    """P0 and mandatory notifications always go at once."""
    return batch.header.priority is Priority.P0 or batch.header.mandatory


def divert(batch: RecipientBatch, context: Context, result: BatchResult, routes: Routes) -> None:
    """Take the emails of people who get digests off ``routes``: items of their next one."""
    emailed = routes.by_channel.get(Channel.EMAIL)
    if not emailed or exempt(batch):
        return
    kept: list[UserId] = []
    for user in emailed:
        prefs = context.prefs.get(user)
        if prefs is None or prefs.digest is None:
            kept.append(user)
            continue
        collect(batch, user, prefs.digest, context, result, DIGEST)
        routes.fallbacks.get(Channel.EMAIL, {}).pop(user, None)
    if kept:
        routes.by_channel[Channel.EMAIL] = kept
    else:
        del routes.by_channel[Channel.EMAIL]


def overflow(
    batch: RecipientBatch, user: UserId, prefs: Preferences, context: Context, result: BatchResult
) -> bool:
    """What the caps drop goes to the next digest, if the type says so and email reaches
    the person; returns whether it did."""
    reach = context.reach.get(user)
    if exempt(batch) or reach is None or Channel.EMAIL not in reach.channels:
        return False
    schedule = prefs.digest or DigestSchedule.parse("daily")
    collect(batch, user, schedule, context, result, OVER_CAP)
    return True


def collect(
    batch: RecipientBatch,
    user: UserId,
    schedule: DigestSchedule,
    context: Context,
    result: BatchResult,
    reason: str,
) -> None:
    header = batch.header
    prefs = context.prefs.get(user)
    quiet = prefs.quiet_hours if prefs is not None else None
    zone = (quiet.timezone if quiet is not None else None) or context.zones.get(user)
    due = next_due(schedule, zone, context.now)
    result.digest.append(DigestItem(user, due, header.seq, _entry(batch, user, context), reason))
    result.outcomes.append(DeliveryOutcome(user, Channel.EMAIL.value, Outcome.HELD, reason))


def _entry(batch: RecipientBatch, user: UserId, context: Context) -> Seq | None:
    """An aggregated notification is listed once, by its key's inbox entry."""
    seq = batch.header.seq
    summary = context.summaries.get((seq, batch.batch_key))
    if summary is not None:
        return summary.entry
    joined = context.joined.get((user, seq))
    return None if joined is None else joined.entry


async def schedule(
    store: DigestStore,
    items: Sequence[tuple[EventHeader, DigestItem]],
    now: float,
) -> list[Outbound]:
    """Put the items in their digests; one send for each digest an item opened."""
    if not items:
        return []
    landed = await store.add([item for _, item in items], now)
    sends = []
    for (header, item), (due, opens) in zip(items, landed, strict=True):
        if opens:
            tag = hashlib.blake2s(item.user_id.encode(), digest_size=6).hexdigest()
            send = DeliveryBatch(
                header, Channel.EMAIL, f"digest@{due!r}.{tag}", [item.user_id], digest_due=due
            )
            sends.append(send.encode(delay_s=max(due - now, 0.0)))
    return sends


def for_items(batch: DeliveryBatch, items: Sequence[Seq], digest_id: str) -> list[BatchResult]:
    """The trail of a sent digest: ``delivered`` with its id against each item's event."""
    reason = f"digest {digest_id}"
    return [
        BatchResult(
            seq,
            f"{batch.batch_key}:{seq}",
            1,
            completes_batch=False,
            delivered=1,
            outcomes=[
                DeliveryOutcome(batch.recipients[0], Channel.EMAIL.value, Outcome.DELIVERED, reason)
            ],
        )
        for seq in dict.fromkeys(items)
    ]


def compose(
    digest: Digest,
    contents: dict[Seq, EventContent],
    entries: dict[Seq, Aggregate],
    template: dict[str, Any] | None,
    locale: str | None,
) -> Content | RenderError:
    """The digest email: the digest template's ``digest`` variant given the items, or the
    built-in list. An aggregated item speaks for its whole entry ("Bob and 46 others")."""
    items = []
    for seq, entry in digest.items:
        event = contents.get(seq)
        if event is None:
            continue
        aggregate = entries.get(entry) if entry is not None else None
        many = aggregate is not None and aggregate.count > 1
        items.append(
            {
                "title": event.title,
                "body": wording.entry_body(aggregate) if many and aggregate else event.body,
                "type": event.type,
                "count": aggregate.count if aggregate is not None else 1,
                "actors": list(aggregate.actors) if aggregate is not None else [event.actor],
            }
        )
    data = {"digest_id": digest.digest_id, "items": len(items)}
    if template is not None:
        try:
            fields = render(template, DIGEST_VARIANT, locale, {"items": items, "count": len(items)})
        except RenderError as exc:
            return exc
        if fields:
            return content(fields, title=fields.get("subject", ""), body="", data=data)
    return _built_in(items, data)


def _built_in(items: list[dict[str, Any]], data: dict[str, Any]) -> Content:
    noun = "notification" if len(items) == 1 else "notifications"
    subject = f"Your digest: {len(items)} {noun}"
    lines = [f"• {i['title']}: {i['body']}" for i in items]
    rows = "".join(
        f"<li><strong>{html.escape(i['title'])}</strong> {html.escape(i['body'])}</li>"
        for i in items
    )
    return Content(
        title=subject,
        body=f"{len(items)} {noun}",
        subject=subject,
        text="\n".join(lines),
        html=f"<p>{html.escape(subject)}</p><ul>{rows}</ul>",
        data=data,
    )


class DigestComposer:
    """Takes a digest due for sending and writes its email (the email stage's helper)."""

    def __init__(
        self,
        digests: DigestStore,
        events: EventStore,
        inbox: InboxStore,
        templates: TemplateStore,
        *,
        template_id: str = DIGEST,
    ) -> None:
        self._digests = digests
        self._events = events
        self._inbox = inbox
        self._templates = templates
        self._template_id = template_id

    async def compose(
        self, batch: DeliveryBatch, locale: str | None
    ) -> tuple[Digest, Content | RenderError] | None:
        """The digest ``batch`` sends and its email; None if it holds nothing."""
        assert batch.digest_due is not None
        user = batch.recipients[0]
        digest = await self._digests.take(user, batch.digest_due)
        if digest is None or not digest.items:
            return None
        seqs = [seq for seq, _ in digest.items]
        contents = await self._events.contents(seqs)
        entries = [e for _, e in digest.items if e is not None]
        aggregates = await self._inbox.aggregates(user, entries) if entries else {}
        template = await self._templates.get(self._template_id)
        doc = None if template is None else template.doc
        return digest, compose(digest, contents, aggregates, doc, locale)
