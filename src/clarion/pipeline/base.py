"""The Stage seam: take decoded messages, return what to publish next.

A stage never touches the broker. It reads its stores, decides, and returns a
``StageResult``; the runner has the broker settle it (``Broker.settle``): publish
``outbound``, then run ``records`` in order (the stage's own durable bookkeeping, which must
only happen once the outbound messages are safe), then ack; then it calls ``settled``. A
crash anywhere in that sequence redelivers the input, which every stage tolerates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from clarion.broker import Message, Outbound, Record

T = TypeVar("T")


@dataclass(slots=True)
class StageResult:
    outbound: list[Outbound] = field(default_factory=list)
    records: Sequence[Record] = ()
    """Each a commit of its own, at most: a bound on how long one holds the write lock."""
    items: int = 0
    """Units of work done (recipients, events), for throughput statistics."""
    settled: Callable[[], None] | None = None
    """Called once the broker has settled the result: what only counts once it is
    durable (metrics), and need not hold the write lock while it runs."""


class Stage(Protocol[T]):
    name: str
    claim_limit: int
    """How many messages to take per claim."""

    def decode(self, message: Message) -> T:
        """The work a claimed message carries (raise ``MessageError`` if it is not ours)."""
        ...

    async def handle(self, items: Sequence[T]) -> StageResult: ...

    async def on_dead_letter(self, item: T | None, message: Message, error: str) -> None:
        """Called once a message of this stage is given up on."""
        ...
