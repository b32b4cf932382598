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
from clarion.pipeline.messages import RecipientBatch
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


class EvaluateStage:
    name = EVALUATE
    claim_limit = 4

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

    def decode(self, body: bytes) -> RecipientBatch:
        return RecipientBatch.decode(body)

    async def handle(self, items: Sequence[RecipientBatch]) -> StageResult:
        done = await self._deliveries.recorded([(b.header.seq, b.batch_key) for b in items])
        items = [b for b in items if (b.header.seq, b.batch_key) not in done]
        if not items:
            return StageResult()
        users = [u for batch in items for u in batch.recipients]
        records = await self._preferences.load_many(users)
        results = [evaluate_batch(batch, records) for batch in items]

        async def record() -> None:
            await self._deliveries.record_batches(results, self._worker, self._clock.now())

        return StageResult([], record, len(users))

    async def on_dead_letter(
        self, item: RecipientBatch | None, message: Message, error: str
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
