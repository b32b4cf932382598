"""The Broker seam: durable named queues with at-least-once delivery under leases.

Delivery semantics, identical on every backend:

* ``publish`` makes messages durable before it returns; a ``delay_s`` keeps a message
  invisible until then.
* ``consume`` hands out up to ``limit`` visible messages of one topic, oldest first, each under
  a lease of ``lease_s`` seconds. While the lease runs no other consumer sees the message.
* ``renew`` restarts the lease of messages still held (a slow provider must not let a batch
  be handed to a second worker while the first is still sending it).
* ``ack`` removes a message for good. ``nack`` makes it visible again after ``delay_s``.
  A lease that ran out without an ack (the holder died or stalled) makes the message
  visible to everyone again: that is how a SIGKILLed worker's batch is redelivered.
  Acks and nacks carry the lease they were given; one arriving after another consumer
  took the message over is ignored.
* ``settle`` finishes a claim: publishes what handling it produced, runs the handler's
  bookkeeping, and acks it, in that order. A backend whose queues and stores share a
  database (SQLite) commits the publish with the first record and the ack with the last.
* ``Message.attempts`` counts deliveries, starting at 1. A message handed out
  ``max_attempts`` times without an ack is moved to the dead-letter queue instead of being
  handed out again, so a message that kills its worker cannot kill workers forever.

Consumers must therefore be idempotent: the pipeline dedups at batch and delivery level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Record = Callable[[], Awaitable[None]]
"""A stage's durable bookkeeping for a claim (``StageResult.records``)."""


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to publish."""

    topic: str
    body: bytes
    delay_s: float = 0.0
    dead_letter: str | None = None
    """Set: file the message straight in the dead-letter queue with this error (work given
    up on that an operator may replay), in the same commit as everything else published."""

    def as_dead_letter(self, error: str) -> Outbound:
        return Outbound(self.topic, self.body, 0.0, error)


@dataclass(frozen=True, slots=True)
class Message:
    """A message handed out under a lease."""

    id: str
    topic: str
    body: bytes
    attempts: int
    enqueued_at: float
    lease: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    topic: str
    body: bytes
    attempts: int
    error: str
    enqueued_at: float
    failed_at: float


class Broker(Protocol):
    lease_s: float

    async def publish(self, messages: Sequence[Outbound]) -> None: ...

    async def consume(self, topic: str, *, limit: int) -> list[Message]: ...

    async def renew(self, messages: Sequence[Message]) -> None: ...

    async def ack(self, messages: Sequence[Message]) -> None: ...

    async def nack(self, message: Message, *, delay_s: float) -> None: ...

    async def dead_letter(self, message: Message, *, error: str) -> None: ...

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        ...

    async def dead_letter_by_id(self, dead_id: str) -> DeadLetter | None: ...

    async def replay(self, dead_id: str) -> bool:
        """Put a dead letter back on its topic as a fresh message; False if there is none."""
        ...

    async def purge(self, dead_id: str | None = None) -> int:
        """Delete one dead letter, or all of them; returns how many went."""
        ...

    async def depths(self) -> dict[str, int]:
        """Every non-empty topic's depth, in one read (for the load level)."""
        ...

    async def settle(
        self, messages: Sequence[Message], outbound: Sequence[Outbound], records: Sequence[Record]
    ) -> None:
        """Publish ``outbound``, run ``records`` in order, then ack ``messages``."""
        ...

    async def running_low(self, topic: str, below: int) -> bool:
        """Whether fewer than ``below`` messages of ``topic`` wait for a worker: a cheap
        probe, asked every round (a backend may count those in flight as waiting)."""
        ...

    async def depth(self, topic: str) -> int:
        """Messages due or in flight on ``topic``: the backlog load shedding and backpressure
        act on. A message delayed to later (a batch held until quiet hours end, a retry's
        backoff) counts once due: a million people asleep is not a queue to shed for."""
        ...

    async def held(self) -> dict[str, int]:
        """Per topic, the messages delayed to later (batches held until quiet hours end or a
        cap frees, retries waiting out their backoff): not a backlog, but an operator's
        question ("where did those notifications go?")."""
        ...

    async def oldest(self, now: float) -> dict[str, float]:
        """Per topic with a message due by ``now`` or in flight: when its oldest such was
        enqueued (how far behind the stage is; a delayed retry is not late until due)."""
        ...

    async def dead_letter_count(self) -> int: ...

    async def wait(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, returning early when new messages may have arrived."""
        ...

    async def close(self) -> None: ...


async def settle_in_order(
    broker: Broker,
    messages: Sequence[Message],
    outbound: Sequence[Outbound],
    records: Sequence[Record],
) -> None:
    """``Broker.settle`` one step at a time, for brokers that cannot join a store's commit."""
    await broker.publish(outbound)
    for record in records:
        await record()
    await broker.ack(messages)
