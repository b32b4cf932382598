"""Latest-wins collapse (seed 002: the playback position goes to every device once a minute,
and only the newest matters).

Per (recipient, ``collapse_key``) only the newest notification — created later, then the
later event — counts:

* evaluation drops one older than what was already recorded for the person (it arrived
  late), as ``superseded``;
* when its batch is recorded, a notification becomes the person's newest and its in-app
  entry replaces theirs — decided again inside that commit, so two workers racing with two
  versions leave the newer one (``DeliveryStore.record_batches``);
* a delivery stage skips a queued send that a newer one has overtaken since, as
  ``superseded``;
* and push carries the key (APNs ``apns-collapse-id``, FCM ``collapse_key``, Web Push
  ``Topic``), so a device shows only the newest too.
"""

from __future__ import annotations

from collections.abc import Sequence

from clarion.models import Outcome
from clarion.pipeline.context import Context
from clarion.pipeline.messages import DeliveryBatch, RecipientBatch
from clarion.stores.base import DeliveryStore
from clarion.stores.records import ALL_CHANNELS, BatchResult, Collapsing, DeliveryOutcome
from clarion.types import Seq, UserId

SUPERSEDED = "superseded"

Latest = dict[tuple[UserId, str], tuple[Seq, float]]


async def latest_of(
    deliveries: DeliveryStore, batches: Sequence[RecipientBatch | DeliveryBatch]
) -> Latest:
    """The newest recorded notification per (recipient, key) of the collapsing batches."""
    pairs = [
        (user, b.header.collapse_key)
        for b in batches
        if b.header.collapse_key is not None
        for user in b.recipients
    ]
    return await deliveries.latest(pairs) if pairs else {}


def drop_late(batch: RecipientBatch, context: Context, result: BatchResult) -> list[UserId]:
    """The recipients ``batch`` is still the newest for; the others are logged as
    superseded and counted as suppressed."""
    key = batch.header.collapse_key
    if key is None or not context.latest:
        return batch.recipients
    collapsing = Collapsing(key, batch.header.created_at)
    seq = batch.header.seq
    kept = []
    for user in batch.recipients:
        if collapsing.beaten_by(seq, context.latest.get((user, key))):
            result.outcomes.append(
                DeliveryOutcome(user, ALL_CHANNELS, Outcome.SUPPRESSED, SUPERSEDED)
            )
            result.suppressed += 1
        else:
            kept.append(user)
    return kept


def mark(batch: RecipientBatch, result: BatchResult, reached: Sequence[UserId]) -> None:
    """Have the commit make this notification the newest of ``reached`` (``Collapsing``)."""
    key = batch.header.collapse_key
    if key is not None and reached:
        result.collapse = Collapsing(key, batch.header.created_at, tuple(reached))


def overtaken(batch: DeliveryBatch, latest: Latest) -> list[UserId]:
    """Recipients of a queued send whose newer notification of the same key is recorded."""
    key = batch.header.collapse_key
    if key is None or not latest:
        return []
    collapsing = Collapsing(key, batch.header.created_at)
    return [
        u for u in batch.recipients if collapsing.beaten_by(batch.header.seq, latest.get((u, key)))
    ]
