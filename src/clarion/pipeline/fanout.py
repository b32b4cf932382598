"""Fan-out: turn one event into recipient batches.

``direct`` events carry their recipients; ``followers`` events page the actor's followers
from the store by keyset (never all in memory), ``batch_size`` at a time, each page becoming
one batch with the deterministic key ``str(batch_no)``. Accounts with precomputed follower
partitions hand out partition references instead (``pipeline.partitions``).

Progress is a compare-and-set checkpoint on the event (``next_batch``): a turn runs only if
its task starts where the checkpoint says, and it moves the checkpoint only after its
batches and its continuation are published. So a crash at any point resumes from the last
checkpoint; a redelivered turn republishes the same batch keys (dropped downstream) and a
stale duplicate turn is ignored.

Backpressure: while its priority's evaluation queue holds ``pause_depth`` batches or more,
a follower fan-out hands its turn back for later instead of producing more (the checkpoint
does not move), so a celebrity post slows down rather than floods evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clarion.broker import Message, Outbound
from clarion.clock import Clock
from clarion.models import FanOut
from clarion.pipeline.base import StageResult
from clarion.pipeline.messages import FanoutTask, RecipientBatch, encode_batches
from clarion.pipeline.partitions import PartitionPlanner, PartitionTurn
from clarion.pipeline.switches import KillSwitchCache
from clarion.resilience.load import LoadMonitor, evaluation_depth
from clarion.stores.base import EventStore, FollowerStore
from clarion.stores.records import FanoutAdvance, FanoutPosition
from clarion.topics import FANOUT
from clarion.types import UserId


@dataclass(slots=True)
class _Turn:
    batches: list[list[UserId]]
    cursor: UserId | None
    finished: bool
    parts: PartitionTurn | None = None


PAUSE_S = 0.5


class FanoutStage:
    name = FANOUT
    claim_limit = 64

    def __init__(
        self,
        events: EventStore,
        followers: FollowerStore,
        switches: KillSwitchCache,
        clock: Clock,
        *,
        batch_size: int,
        slice_batches: int,
        load: LoadMonitor | None = None,
        pause_depth: int = 200,
        partitions: PartitionPlanner | None = None,
    ) -> None:
        self._partitions = partitions
        self._load = load
        self._pause_depth = pause_depth
        self._events = events
        self._followers = followers
        self._switches = switches
        self._clock = clock
        self._batch_size = batch_size
        self._slice_batches = slice_batches

    def decode(self, message: Message) -> FanoutTask:
        return FanoutTask.decode(message.body)

    async def handle(self, items: Sequence[FanoutTask]) -> StageResult:
        positions = await self._events.positions([t.header.seq for t in items])
        kills = await self._switches.current()
        outbound: list[Outbound] = []
        advances: list[FanoutAdvance] = []
        stopped: list[tuple[FanoutTask, str]] = []
        recipients = 0
        load = await self._load.current() if self._load is not None else None
        for task in items:
            if not _is_current(task, positions.get(task.header.seq)):
                continue
            header = task.header
            deep = load is not None and evaluation_depth(load, header.priority) >= self._pause_depth
            if deep and task.fan_out is not FanOut.DIRECT:
                outbound.append(task.encode(delay_s=PAUSE_S))  # the same turn, later
                continue
            kill = kills.stopping(
                type_name=header.type, sender=header.sender, campaign=header.campaign
            )
            if kill is not None:
                # Stop resolving recipients; batches already out are suppressed as they come.
                advances.append(FanoutAdvance(header.seq, task.batch_no, task.batch_no, 0, True))
                stopped.append((task, kill))
                continue
            turn = await self._turn(task)
            first = task.batch_no
            batches = [
                RecipientBatch(task.header, str(first + offset), users)
                for offset, users in enumerate(turn.batches)
            ]
            if turn.parts is not None:
                batches = [
                    RecipientBatch(task.header, str(first + offset), [], part)
                    for offset, part in enumerate(turn.parts.refs)
                ]
            outbound.extend(encode_batches([batch]) for batch in batches)
            end = first + len(batches)
            if not turn.finished:
                generation = None if turn.parts is None else turn.parts.generation
                outbound.append(
                    FanoutTask(
                        task.header, task.fan_out, end, turn.cursor, generation=generation
                    ).encode()
                )
            count = sum(len(b) for b in turn.batches)
            if turn.parts is not None:
                count = sum(turn.parts.counts)
            recipients += count
            advances.append(FanoutAdvance(task.header.seq, first, end, count, turn.finished))

        async def checkpoint() -> None:
            await self._events.advance(advances, self._clock.now())
            for task, kill in stopped:
                await self._events.fail(
                    task.header.seq, f"stopped by kill switch {kill}", state="killed"
                )

        return StageResult(outbound, [checkpoint] if advances else [], recipients)

    async def _turn(self, task: FanoutTask) -> _Turn:
        if task.fan_out is FanOut.DIRECT:
            size = self._batch_size
            users = list(task.recipients)
            return _Turn([users[i : i + size] for i in range(0, len(users), size)], None, True)
        if self._partitions is not None:
            parts = await self._partitions.turn(task, self._slice_batches)
            if parts is not None:
                return _Turn([], parts.cursor, parts.finished, parts)
        actor = UserId(task.header.actor or "")
        batches: list[list[UserId]] = []
        cursor = task.cursor
        while len(batches) < self._slice_batches:
            page = await self._followers.page(actor, after=cursor, limit=self._batch_size)
            if page:
                batches.append(page)
                cursor = page[-1]
            if len(page) < self._batch_size:
                return _Turn(batches, cursor, True)
        return _Turn(batches, cursor, False)

    async def on_dead_letter(self, item: FanoutTask | None, message: Message, error: str) -> None:
        if item is not None:
            await self._events.fail(
                item.header.seq,
                f"fan-out dead-lettered: {error}; fix the cause, then replay it"
                " (clarion dlq replay ID)",
                state="dead_lettered",
            )


def _is_current(task: FanoutTask, position: FanoutPosition | None) -> bool:
    """Only the turn the checkpoint is waiting for may run; anything else is a stale copy."""
    if position is None or position.failed or position.finished:
        return False
    return position.next_batch == task.batch_no
