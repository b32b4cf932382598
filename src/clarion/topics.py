"""Queue names, built in one place: ``<stage>.<priority>`` such as ``fanout.p0``.

Each (stage, priority) pair is its own queue, so a deep P2 queue never sits in front of P0
work: workers look at P0 first and can be reserved for P0 alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from clarion.models import Priority

FANOUT = "fanout"
EVALUATE = "evaluate"
STAGES: tuple[str, ...] = (FANOUT, EVALUATE)


def topic(stage: str, priority: Priority) -> str:
    return f"{stage}.{priority.value.lower()}"


def consumption_order(
    stages: Iterable[str], priorities: Iterable[Priority]
) -> list[tuple[str, str]]:
    """``(stage, topic)`` pairs in the order a worker should look at them.

    Most urgent priority first; within a priority, the stage furthest down the pipeline
    first, so work already in flight finishes before new work is started (keeps queues
    shallow and the first inbox entry early).
    """
    wanted = set(stages)
    downstream_first = [s for s in reversed(STAGES) if s in wanted]
    return [
        (stage, topic(stage, priority))
        for priority in sorted(priorities, key=lambda p: p.rank)
        for stage in downstream_first
    ]
