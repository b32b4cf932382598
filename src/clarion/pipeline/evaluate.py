"""Evaluate recipient batches against preferences and deliver the in-app entries.

Per claim: one bulk read of the recipients' preference records (most users have none and
take the default fast path with no per-user Python beyond a set lookup), a pure decision for
each user who has a record, then one store transaction recording inbox entries, the
delivery log and event progress for every batch in the claim.
"""

from __future__ import annotations

from collections.abc import Sequence

from clarion.broker import Message
from clarion.clock import Clock
from clarion.models import Channel, Outcome
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import RecipientBatch, decode_batches
from clarion.policy.decide import Reason, decide
from clarion.policy.preferences import Preferences
from clarion.stores.base import (
    BatchResult,
    DeliveryOutcome,
    DeliveryStore,
    PreferenceStore,
    StoredPreferences,
)
from clarion.topics import EVALUATE
from clarion.types import UserId

_RECIPIENTS_PER_COMMIT = 4000
"""Bounds how long one commit holds the database's write lock (a few milliseconds)."""
_RECIPIENTS_PER_CLAIM = 2000
"""Claims are sized in recipients, not messages: two 1,000-recipient batches (so the next
batch is left for another worker), or 64 one-recipient OTPs (so they share one commit)."""
_MAX_CLAIM = 64


class EvaluateStage:
    name = EVALUATE

    def __init__(
        self,
        preferences: PreferenceStore,
        deliveries: DeliveryStore,
        clock: Clock,
        *,
        worker: str,
    ) -> None:
        self._preferences = preferences
        self._deliveries = deliveries
        self._clock = clock
        self._worker = worker
        self.claim_limit = 1
        """Messages to take next time, adapted to the size of the batches seen last."""

    def decode(self, body: bytes) -> list[RecipientBatch]:
        return decode_batches(body)

    async def handle(self, messages: Sequence[list[RecipientBatch]]) -> StageResult:
        items = [batch for batches in messages for batch in batches]
        per_message = sum(len(b.recipients) for b in items) / max(len(messages), 1)
        self.claim_limit = max(1, min(_MAX_CLAIM, int(_RECIPIENTS_PER_CLAIM / max(per_message, 1))))
        done = await self._deliveries.recorded([(b.header.seq, b.batch_key) for b in items])
        items = [b for b in items if (b.header.seq, b.batch_key) not in done]
        if not items:
            return StageResult()
        users = [u for batch in items for u in batch.recipients]
        records = await self._preferences.load_many(users)
        results = [evaluate_batch(batch, records) for batch in items]

        async def record() -> None:
            for group in _commit_groups(results):
                await self._deliveries.record_batches(group, self._worker, self._clock.now())

        return StageResult([], record, len(users))

    async def on_dead_letter(
        self, item: list[RecipientBatch] | None, message: Message, error: str
    ) -> None:
        """The batch stays in the dead-letter queue for an operator to replay."""


def evaluate_batch(batch: RecipientBatch, records: dict[UserId, StoredPreferences]) -> BatchResult:
    header = batch.header
    result = BatchResult(header.seq, batch.batch_key, len(batch.recipients))
    if Channel.IN_APP not in header.channels:
        _suppress_all(result, batch.recipients, Reason.NO_CHANNEL)
        return result
    suppressed: set[UserId] = set()
    with_records = records.keys() & set(batch.recipients) if records else ()
    for user in with_records:
        verdict = decide(
            Preferences.from_doc(records[user].doc),
            type_name=header.type,
            priority=header.priority,
            mandatory=header.mandatory,
        )
        if not verdict.deliver:
            suppressed.add(user)
            result.outcomes.append(
                DeliveryOutcome(user, Channel.IN_APP, Outcome.SUPPRESSED, verdict.reason)
            )
    result.suppressed = len(suppressed)
    result.inbox = (
        [u for u in batch.recipients if u not in suppressed] if suppressed else batch.recipients
    )
    return result


def _suppress_all(result: BatchResult, users: Sequence[UserId], reason: Reason) -> None:
    result.outcomes.extend(
        DeliveryOutcome(u, Channel.IN_APP, Outcome.SUPPRESSED, reason) for u in users
    )
    result.suppressed = len(users)


def _commit_groups(results: list[BatchResult]) -> list[list[BatchResult]]:
    groups: list[list[BatchResult]] = [[]]
    size = 0
    for result in results:
        if groups[-1] and size + result.recipients > _RECIPIENTS_PER_COMMIT:
            groups.append([])
            size = 0
        groups[-1].append(result)
        size += result.recipients
    return groups
