"""Aggregation, between preference evaluation and routing (seed 001, Part 6).

For a type with an aggregation window, every notification that is going out joins its
key's window (``policy.aggregation``; the store makes it atomic): the first goes out as
usual, the others are only counted — they bring the key's inbox entry up to date (count,
newest actors, unread again) and go nowhere else. The first one counted schedules the
window's summary: a delayed evaluation batch for that person, due when the window ends,
which takes the summary once and sends it on every channel but in-app ("Bob, Carol and 47
others liked your photo"), or nothing if nothing new came.

If the windows cannot be reached, notifications go out one by one (seed 001: better to
over-notify than lose); a summary that cannot be taken waits for its claim's retry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from clarion.broker import Outbound
from clarion.errors import AggregatesUnavailableError
from clarion.models import Channel, Outcome
from clarion.pipeline.context import Context, notice, stopped
from clarion.pipeline.messages import RecipientBatch, encode_batches
from clarion.policy.aggregation import AggregateKey, Joined, JoinRequest, Role
from clarion.policy.decide import decide
from clarion.policy.preferences import DEFAULT
from clarion.stores.base import AggregateStore
from clarion.stores.records import ALL_CHANNELS, BatchResult, DeliveryOutcome, EntryUpdate
from clarion.types import UserId

log = logging.getLogger(__name__)


def key_of(batch: RecipientBatch, user: UserId) -> AggregateKey:
    return AggregateKey(user, batch.header.type, batch.header.object or "")


class Aggregator:
    """The aggregation step of an evaluation claim: one ``join`` and one ``take`` call."""

    def __init__(self, windows: AggregateStore) -> None:
        self._windows = windows

    async def prepare(self, items: Sequence[RecipientBatch], context: Context) -> None:
        """Fill ``context.joined`` and ``context.summaries`` for the claim."""
        requests = join_requests(items, context)
        if requests:
            try:
                answers = await self._windows.join(requests, context.now)
            except AggregatesUnavailableError as exc:
                log.warning("%s: delivering each notification on its own meanwhile", exc)
            else:
                context.joined = {
                    (r.key.user_id, r.seq): a for r, a in zip(requests, answers, strict=True)
                }
        due = [b for b in items if b.summary_of is not None and stopped(b, context) is None]
        if due:
            assert all(b.summary_of is not None for b in due)
            windows = [(key_of(b, b.recipients[0]), b.summary_of or 0) for b in due]
            taken = await self._windows.take(windows)
            context.summaries = {
                (b.header.seq, b.batch_key): s for b, s in zip(due, taken, strict=True)
            }


def join_requests(items: Sequence[RecipientBatch], context: Context) -> list[JoinRequest]:
    """Every notification of an aggregating type that its recipient is to get now (frequency
    caps aside: only what goes out counts toward them), in claim order."""
    requests = []
    for batch in items:
        header = batch.header
        if not header.aggregate_s or batch.summary_of is not None:
            continue
        if stopped(batch, context) is not None:
            continue
        rule = notice(batch)
        common = decide(DEFAULT, rule, now=context.now)
        for user in batch.recipients:
            prefs = context.prefs.get(user)
            verdict = (
                common
                if prefs is None
                else decide(prefs, rule, now=context.now, profile_zone=context.zones.get(user))
            )
            if verdict.deliver:
                key = key_of(batch, user)
                requests.append(JoinRequest(key, header.seq, header.actor, header.aggregate_s))
    return requests


def take_counted(
    batch: RecipientBatch, context: Context, result: BatchResult, recipients: list[UserId]
) -> tuple[list[UserId], list[Outbound]]:
    """Take the notifications aggregation only counts off ``recipients`` (of ``batch``):
    each brings its key's inbox entry up to date and is logged as aggregated. Returns the
    recipients left to route, and the summary timers this batch's notifications schedule."""
    if not batch.header.aggregate_s or not context.joined:
        return recipients, []
    seq, in_app = batch.header.seq, Channel.IN_APP in batch.header.channels
    rest: list[UserId] = []
    timers: list[Outbound] = []
    for user in recipients:
        joined = context.joined.get((user, seq))
        if joined is None or joined.role is Role.FIRST:
            rest.append(user)
            continue
        if joined.timer:
            timers.append(_timer(batch, user, joined, context.now))
        if in_app:
            result.entries.append(EntryUpdate(user, joined.entry, joined.count, joined.actors))
            result.delivered += 1
        else:
            result.suppressed += 1
        outcome = Outcome.DELIVERED if in_app else Outcome.SUPPRESSED
        why = f"aggregated: window {joined.window}, summary at {joined.ends_at:.0f}"
        result.outcomes.append(DeliveryOutcome(user, ALL_CHANNELS, outcome, why))
    return rest, timers


def entries_for_first(batch: RecipientBatch, context: Context, result: BatchResult) -> None:
    """The first notifications of windows land in their key's one inbox entry (a new one
    only for a key's very first) rather than in entries of their own."""
    if not batch.header.aggregate_s or not context.joined or not result.inbox:
        return
    seq = batch.header.seq
    kept: list[UserId] = []
    for user in result.inbox:
        joined = context.joined.get((user, seq))
        if joined is None:
            kept.append(user)
            continue
        result.entries.append(EntryUpdate(user, joined.entry, joined.count, joined.actors))
        result.outcomes.append(DeliveryOutcome(user, Channel.IN_APP.value, Outcome.DELIVERED))
        result.delivered += 1
    result.inbox = kept


def _timer(batch: RecipientBatch, user: UserId, joined: Joined, now: float) -> Outbound:
    """The summary of ``joined``'s window, due when it ends. Its key never holds the user
    id (which may contain any character): a short hash of it, unique enough per event."""
    tag = hashlib.blake2s(user.encode(), digest_size=6).hexdigest()
    due = RecipientBatch(
        batch.header, f"{batch.batch_key}@{joined.window}.{tag}", [user], summary_of=joined.window
    )
    return encode_batches([due], delay_s=max(joined.ends_at - now, 0.0))
